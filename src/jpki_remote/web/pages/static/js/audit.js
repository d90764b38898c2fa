// The audit-log browser: newest events first, each with a button that fetches its inclusion proof and checks it
// here with SubtleCrypto (merkle.js). The page is served to a signed-in admin only, and the API calls ride on that
// sign-in (cookie session); when it has ended (401) the page goes back to the sign-in form.
"use strict";
(function () {
  const J = window.JPKI;
  const { api, merkle, setBilingual } = J;
  const $ = (id) => document.getElementById(id);
  const PAGE = 50;
  const SIGN_IN = "/login?role=admin&next=" + encodeURIComponent("/admin/audit");
  let head = null;

  function signInAgain(e) {
    if (e && e.status === 401) { window.location.assign(SIGN_IN); return true; }
    return false;
  }

  function pick(event, ...names) {
    for (const name of names) if (event[name] !== undefined && event[name] !== null) return event[name];
    return "";
  }

  function showHead(size, signedHead) {
    const list = $("tree-head");
    list.textContent = "";
    const add = (ja, en, value, mono) => {
      const dt = document.createElement("dt");
      setBilingual(dt, ja, en);
      const dd = document.createElement("dd");
      dd.textContent = value;
      if (mono) dd.className = "mono";
      list.append(dt, dd);
    };
    add("記録数", "events in the log", String(size));
    if (signedHead) {
      head = signedHead;
      add("署名付きツリーヘッドの大きさ", "signed tree head size", String(signedHead.tree_size));
      add("署名日時", "signed at", J.formatTime(new Date(Number(signedHead.timestamp_ms)).toISOString()));
      add("根ハッシュ", "root hash", signedHead.root_hash, true);
      add("鍵ID", "key id", signedHead.key_id || "", true);
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
      const publicKey = (proof.signed_head && proof.signed_head.public_key) || (head && head.public_key) || null;
      if (proof.signed_head && (!head || proof.signed_head.tree_size >= head.tree_size)) showHead(size, proof.signed_head);
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
      if (signInAgain(e)) return;
      result.textContent = "";
      setBilingual(result, e.ja || "証明を取得できませんでした。", e.en || String(e));
    } finally {
      button.disabled = false;
    }
  }

  let size = 0;
  let shown = PAGE;  // newest first; "more" asks for a longer list (the API caps it at 500)

  async function load(reset) {
    const body = $("audit-table").tBodies[0];
    if (reset) shown = PAGE; else shown = Math.min(500, shown + PAGE);
    const params = new URLSearchParams({ limit: String(shown), newest_first: "true" });
    const procedure = $("audit-filter").elements.procedure_id.value.trim();
    const type = $("audit-filter").elements.event_type.value.trim();
    if (procedure) params.set("procedure_id", procedure);
    try {
      const data = await api.request("GET", api.PATHS.auditEvents() + "?" + params.toString());
      size = Number(data.size || 0);
      showHead(size, head);
      body.textContent = "";
      const events = (data.events || []).filter((e) => !type || String(e.event_type || "").includes(type));
      events.forEach((event) => body.appendChild(row(event)));
      $("audit-more").hidden = (data.events || []).length < shown || shown >= 500;
      setBilingual($("audit-status"), body.rows.length + " 件を表示（全 " + size + " 件）", body.rows.length + " of " + size + " event(s) shown");
    } catch (e) {
      if (signInAgain(e)) return;
      setBilingual($("audit-status"), e.ja || "読み込めませんでした。", e.en || "");
    }
  }

  document.addEventListener("DOMContentLoaded", () => {
    $("audit-filter").addEventListener("submit", (event) => { event.preventDefault(); load(true); });
    $("audit-more").addEventListener("click", () => load(false));
    load(true);
  });
})();
