// The audit-log browser: newest events first, each with a button that fetches its inclusion proof and checks it
// here with SubtleCrypto (merkle.js). Staff/admin session required by the API.
"use strict";
(function () {
  const J = window.JPKI;
  const { api, merkle, setBilingual } = J;
  const $ = (id) => document.getElementById(id);
  const PAGE = 50;
  let head = null;
  let oldest = null;

  function pick(event, ...names) {
    for (const name of names) if (event[name] !== undefined && event[name] !== null) return event[name];
    return "";
  }

  async function loadHead() {
    const list = $("tree-head");
    try {
      head = await api.request("GET", api.PATHS.auditHead());
      list.textContent = "";
      const add = (ja, en, value, mono) => {
        const dt = document.createElement("dt");
        setBilingual(dt, ja, en);
        const dd = document.createElement("dd");
        dd.textContent = value;
        if (mono) dd.className = "mono";
        list.append(dt, dd);
      };
      const sth = head.signed_head || head;
      add("記録数", "tree size", String(sth.tree_size));
      add("署名日時", "signed at", J.formatTime(new Date(Number(sth.timestamp_ms)).toISOString()));
      add("根ハッシュ", "root hash", sth.root_hash, true);
      add("鍵ID", "key id", sth.key_id || "", true);
    } catch (e) {
      setBilingual(list, e.ja || "読み込めませんでした。", e.en || "");
    }
  }

  function outcomeBadge(outcome) {
    const span = document.createElement("span");
    span.className = "badge " + (outcome === "success" ? "badge-ok" : outcome === "failure" ? "badge-bad" : "badge-muted");
    span.textContent = outcome;
    return span;
  }

  function row(event) {
    const tr = document.createElement("tr");
    const seq = pick(event, "seq");
    tr.dataset.seq = String(seq);
    const cells = [String(seq), J.formatTime(pick(event, "time", "occurred_at")), pick(event, "event_type", "type"), null,
      pick(event, "actor"), pick(event, "terminal_id", "terminal"), pick(event, "procedure_id", "procedure")];
    cells.forEach((value, i) => {
      const td = document.createElement(i === 0 ? "th" : "td");
      if (i === 0) td.scope = "row";
      if (i === 3) td.appendChild(outcomeBadge(pick(event, "outcome")));
      else td.textContent = value;
      if (i >= 5) td.className = "mono";
      tr.appendChild(td);
    });
    const td = document.createElement("td");
    const button = document.createElement("button");
    button.type = "button";
    button.className = "btn btn-secondary verify";
    setBilingual(button, "証明を検証", "Verify proof");
    button.setAttribute("aria-label", "記録 " + seq + " の包含証明を検証 (verify proof of event " + seq + ")");
    const result = document.createElement("div");
    result.className = "proof-detail";
    result.setAttribute("aria-live", "polite");
    button.addEventListener("click", () => verify(seq, button, result));
    td.append(button, result);
    tr.appendChild(td);
    return tr;
  }

  async function verify(seq, button, result) {
    button.disabled = true;
    result.textContent = "…";
    try {
      const proof = await api.request("GET", api.PATHS.auditProof(seq));
      const publicKey = (proof.signed_head && proof.signed_head.public_key) || (head && (head.public_key || (head.signed_head && head.signed_head.public_key)));
      const report = await merkle.verifyInclusion(proof, { publicKeyHex: publicKey || null });
      result.textContent = "";
      const badge = document.createElement("span");
      badge.className = "badge " + (report.ok ? "badge-ok" : "badge-bad");
      badge.dataset.verified = report.ok ? "yes" : "no";
      setBilingual(badge, report.ok ? "検証済み" : "検証失敗", report.ok ? "verified" : "NOT verified");
      result.appendChild(badge);
      const list = document.createElement("ol");
      report.steps.forEach((step) => {
        const li = document.createElement("li");
        setBilingual(li, (step.ok === true ? "✔ " : step.ok === false ? "✘ " : "– ") + step.ja, step.en);
        list.appendChild(li);
      });
      const info = document.createElement("p");
      info.textContent = "tree size " + proof.tree_size + ", root " + String(proof.root_hash).slice(0, 16) + "…";
      result.append(list, info);
    } catch (e) {
      result.textContent = "";
      setBilingual(result, e.ja || "証明を取得できませんでした。", e.en || String(e));
    } finally {
      button.disabled = false;
    }
  }

  async function load(reset) {
    const form = $("audit-filter");
    const params = new URLSearchParams();
    params.set("limit", String(PAGE));
    ["procedure_id", "event_type"].forEach((name) => { const v = form.elements[name].value.trim(); if (v) params.set(name, v); });
    if (!reset && oldest !== null) params.set("before", String(oldest));
    const body = $("audit-table").tBodies[0];
    if (reset) { body.textContent = ""; oldest = null; }
    try {
      const data = await api.request("GET", api.PATHS.auditEvents() + "?" + params.toString());
      const events = Array.isArray(data) ? data : data.events || [];
      events.forEach((event) => body.appendChild(row(event)));
      if (events.length) oldest = Math.min(...events.map((e) => Number(e.seq)));
      $("audit-more").hidden = events.length < PAGE || oldest === 0;
      setBilingual($("audit-status"), body.rows.length + " 件を表示", body.rows.length + " event(s) shown");
    } catch (e) {
      setBilingual($("audit-status"), e.ja || "読み込めませんでした。", e.en || "");
    }
  }

  document.addEventListener("DOMContentLoaded", () => {
    $("audit-filter").addEventListener("submit", (event) => { event.preventDefault(); load(true); });
    $("audit-more").addEventListener("click", () => load(false));
    loadHead();
    load(true);
  });
})();
