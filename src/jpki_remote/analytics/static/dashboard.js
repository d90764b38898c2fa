// jpki-remote admin dashboard: live statistics and the kiosk/online what-if slider. No dependencies.
(function () {
  "use strict";
  const SVG = "http://www.w3.org/2000/svg";
  const root = document.querySelector("[data-analytics]");
  if (!root) return;
  const api = root.dataset.api;
  const number = new Intl.NumberFormat("ja-JP", { maximumFractionDigits: 0 });
  // On jpki-remote's admin page the API calls ride on the admin sign-in (cookie session): when it has ended (401),
  // back to the sign-in form, which returns here. Elsewhere a 401 is shown like any other error.
  const signIn = document.documentElement.classList.contains("page-admin")
    ? "/login?role=admin&next=" + encodeURIComponent(location.pathname) : null;

  function answer(r) {
    if (r.status === 401 && signIn) { window.location.assign(signIn); return new Promise(() => {}); }
    return r.ok ? r.json() : Promise.reject(new Error("HTTP " + r.status));
  }

  function format(value, kind) {
    if (value === null || value === undefined) return kind === "wait" ? "過負荷 overloaded" : "–";
    if (kind === "percent") return (value * 100).toFixed(1) + "%";
    if (kind === "hours") return (value < 10 ? value.toFixed(1) : number.format(value)) + " h";
    if (kind === "wait") return value < 120 ? number.format(value) + " 分 min" : (value / 60).toFixed(1) + " 時間 h";
    return number.format(value);
  }

  function pick(data, path) {
    return path.split(".").reduce((v, key) => (v === null || v === undefined ? v : v[key]), data);
  }

  function fill(attribute, data) {
    root.querySelectorAll("[" + attribute + "]").forEach((el) => {
      const value = pick(data, el.getAttribute(attribute));
      if (el.dataset.format || typeof value === "number" || value === null) el.textContent = format(value, el.dataset.format);
    });
  }

  function showError(id, message) {
    const el = root.querySelector("#" + id);
    el.textContent = message;
    el.hidden = !message;
  }

  function node(name, attributes, text) {
    const el = document.createElementNS(SVG, name);
    Object.entries(attributes || {}).forEach(([k, v]) => el.setAttribute(k, v));
    if (text !== undefined) el.textContent = text;
    return el;
  }

  function clearChart(svg) {
    Array.from(svg.childNodes).forEach((child) => {
      if (child.nodeName !== "title" && child.nodeName !== "desc") svg.removeChild(child);
    });
  }

  function drawHours(stats) {
    const svg = root.querySelector("#jpa-hours-chart");
    clearChart(svg);
    const counts = stats.by_hour_jst || new Array(24).fill(0);
    const max = Math.max(1, ...counts);
    const left = 28, bottom = 140, width = 440, height = 120, step = width / 24;
    svg.appendChild(node("rect", { x: left + 8.5 * step, y: bottom - height, width: 8.75 * step, height: height, fill: "#eef3fa" }));
    counts.forEach((count, hour) => {
      const h = (count / max) * height;
      const bar = node("rect", { x: left + hour * step + 1, y: bottom - h, width: step - 2, height: h, fill: "#1f77b4" });
      bar.appendChild(node("title", {}, hour + "時 " + count));
      svg.appendChild(bar);
      if (hour % 3 === 0) svg.appendChild(node("text", { x: left + hour * step, y: bottom + 14 }, hour + "時"));
    });
    svg.appendChild(node("text", { x: 0, y: bottom - height + 4 }, number.format(max)));
    svg.appendChild(node("line", { x1: left, x2: left + width, y1: bottom, y2: bottom, stroke: "#888" }));
    const busiest = counts.indexOf(max);
    root.querySelector("#jpa-hours-desc").textContent =
      "最多は" + busiest + "時台 (" + counts[busiest] + "件). Busiest hour " + busiest + ":00 JST.";
  }

  function drawMunicipalities(stats) {
    const body = root.querySelector("#jpa-municipalities tbody");
    body.replaceChildren();
    Object.entries(stats.municipalities || {}).forEach(([code, m]) => {
      const row = document.createElement("tr");
      [
        (m.name ? m.name + " " : "") + code,
        format(m.by_channel.kiosk),
        format(m.by_channel.online),
        format(m.by_channel.counter),
        format(m.counter_visits_avoided),
        format(m.outside_counter_hours_share, "percent"),
      ].forEach((text) => {
        const cell = document.createElement("td");
        cell.textContent = text;
        row.appendChild(cell);
      });
      body.appendChild(row);
    });
  }

  function loadLive() {
    fetch(api + "/live", { headers: { Accept: "application/json" }, credentials: "same-origin" })
      .then(answer)
      .then((stats) => {
        fill("data-stat", stats);
        drawHours(stats);
        drawMunicipalities(stats);
        showError("jpa-live-error", "");
      })
      .catch((e) => showError("jpa-live-error", "統計を読み込めませんでした / statistics unavailable (" + e.message + ")"));
  }

  function drawLoad(data) {
    const svg = root.querySelector("#jpa-load-chart");
    clearChart(svg);
    const months = data.months;
    const left = 48, bottom = 210, width = 660, height = 190;
    const max = Math.max(1, ...months.map((m) => m.counter_visits));
    const step = width / months.length;
    const y = (v) => bottom - (v / max) * height;
    [0, 0.5, 1].forEach((f) => {
      svg.appendChild(node("line", { x1: left, x2: left + width, y1: y(max * f), y2: y(max * f), stroke: "#e3e3e3" }));
      svg.appendChild(node("text", { x: 0, y: y(max * f) + 4 }, number.format(max * f)));
    });
    months.forEach((m, i) => {
      svg.appendChild(node("rect", { x: left + i * step, y: y(m.counter_visits), width: Math.max(step - 0.5, 0.5), height: bottom - y(m.counter_visits), fill: "#c9ced6" }));
      if (m.month.endsWith("-04") && i * step < width - 30) svg.appendChild(node("text", { x: left + i * step, y: bottom + 14 }, "FY" + m.month.slice(0, 4)));
    });
    const points = months.map((m, i) => (left + (i + 0.5) * step).toFixed(1) + "," + y(m.counter_visits_moved).toFixed(1));
    svg.appendChild(node("polyline", { points: points.join(" "), fill: "none", stroke: "#1f77b4", "stroke-width": 2 }));
    const s = data.summary;
    root.querySelector("#jpa-load-desc").textContent =
      Math.round(data.share * 100) + "% をキオスク・オンラインへ移すと年 " + number.format(s.hours_saved_per_year) +
      " 時間の削減。Moving " + Math.round(data.share * 100) + "% saves " + number.format(s.hours_saved_per_year) +
      " staff hours a year; peak month " + s.peak_month + ".";
  }

  const slider = root.querySelector("#jpa-share");
  const output = root.querySelector("#jpa-share-out");
  let timer = null;
  let inflight = null;

  function loadWhatIf() {
    const share = Number(slider.value) / 100;
    if (inflight) inflight.abort();
    inflight = new AbortController();
    const source = encodeURIComponent(root.querySelector("#jpa-source").value);
    fetch(api + "/load?share=" + share + "&source=" + source, { signal: inflight.signal, credentials: "same-origin" })
      .then(answer)
      .then((data) => {
        fill("data-load", Object.assign({}, data.summary, { source: null }));
        root.querySelector("[data-load=source]").textContent =
          data.source === "database" ? "（稼働中のデータベースから from the live database）" : "（港区の例 Minato example）";
        drawLoad(data);
        showError("jpa-load-error", "");
      })
      .catch((e) => {
        if (e.name !== "AbortError") showError("jpa-load-error", "試算できませんでした / what-if unavailable (" + e.message + ")");
      });
  }

  slider.addEventListener("input", () => {
    output.value = slider.value + "%";
    slider.setAttribute("aria-valuetext", slider.value + "% moved to kiosk/online");
    clearTimeout(timer);
    timer = setTimeout(loadWhatIf, 150);
  });

  root.querySelector("#jpa-source").addEventListener("change", loadWhatIf);
  loadLive();
  loadWhatIf();
})();
