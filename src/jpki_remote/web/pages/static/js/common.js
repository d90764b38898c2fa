// Shared helpers for every page: configuration, bilingual text, the large-text toggle. No dependencies.
"use strict";
(function () {
  const configElement = document.getElementById("page-config");
  const config = configElement ? JSON.parse(configElement.textContent) : {};

  /** Put Japanese + English (marked lang="en") into element `target`. */
  function setBilingual(target, ja, en) {
    if (!target) return;
    target.textContent = "";
    const jaSpan = document.createElement("span");
    jaSpan.className = "ja";
    jaSpan.textContent = ja || "";
    target.appendChild(jaSpan);
    if (en) {
      target.appendChild(document.createTextNode(" "));
      const enSpan = document.createElement("span");
      enSpan.className = "en";
      enSpan.lang = "en";
      enSpan.textContent = en;
      target.appendChild(enSpan);
    }
  }

  function toast(text) {
    const box = document.getElementById("toast");
    if (!box) return;
    box.textContent = text;
    box.hidden = false;
    clearTimeout(toast.timer);
    toast.timer = setTimeout(() => { box.hidden = true; }, 4000);
  }

  function formatTime(iso) {
    if (!iso) return "";
    const date = new Date(iso);
    if (Number.isNaN(date.getTime())) return String(iso);
    return date.toLocaleString("ja-JP", { timeZone: "Asia/Tokyo", dateStyle: "medium", timeStyle: "medium" }) + " (JST)";
  }

  // The large-text preference is the one thing kept in localStorage (it is not personal data).
  function initLargeText() {
    const button = document.getElementById("large-text-toggle");
    const root = document.documentElement;
    let on = false;
    try { on = localStorage.getItem("jpki.largeText") === "1"; } catch (e) { on = false; }
    const apply = () => {
      root.classList.toggle("large-text", on);
      if (button) button.setAttribute("aria-pressed", on ? "true" : "false");
    };
    apply();
    if (button) {
      button.addEventListener("click", () => {
        on = !on;
        try { localStorage.setItem("jpki.largeText", on ? "1" : "0"); } catch (e) { /* private mode */ }
        apply();
      });
    }
  }

  window.JPKI = Object.assign(window.JPKI || {}, { config, setBilingual, toast, formatTime });
  document.addEventListener("DOMContentLoaded", initLargeText);
})();
