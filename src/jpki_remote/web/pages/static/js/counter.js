// The counter (staff) screens: login, lookup and unlocking, new issuance, renewal/PIN reset at the counter.
// The card is on the counter terminal's reader (its agent); the holder types PINs on the counter PIN pad here.
"use strict";
(function () {
  const J = window.JPKI;
  const { api, agent, setBilingual } = J;
  const $ = (id) => document.getElementById(id);
  const POLL_MS = 700;
  let pinEntry = null;
  let run = null;  // {id, timer, pinKey, newFirst}
  let photoBlob = null;
  let camera = null;

  function showError(ja, en) {
    const box = $("error-box");
    box.hidden = !ja;
    $("error-ja").textContent = ja || "";
    $("error-en").textContent = en || "";
  }
  function apiError(e) {
    if (e && e.status === 401) { showLogin(); return; }
    showError((e && e.ja) || "エラーが発生しました。", (e && e.en) || String(e));
  }
  function checkedDocuments(form) {
    return Array.from(form.querySelectorAll('input[name="documents"]:checked')).map((input) => input.value);
  }

  // ------------------------------------------------------------------------------------------------ login
  function showLogin() {
    $("login").hidden = false;
    $("work").hidden = true;
    $("logout").hidden = true;
    $("login-user").focus();
  }
  // The screen is bound to this counter's terminal (browser link from its agent, like the kiosk); the member of
  // staff signs in (cookie session, POST /api/v1/login/staff) and the API records them with every action.
  let staffId = null;
  function showWork(id) {
    staffId = id;
    $("login").hidden = true;
    $("work").hidden = false;
    $("logout").hidden = false;
    setBilingual($("staff-badge"), "職員: " + id, "staff " + id);
  }
  async function checkLogin() {
    const hash = new URLSearchParams(location.hash.replace(/^#/, ""));
    const link = hash.get("link");
    if (link) {
      history.replaceState(null, "", location.pathname + location.search);
      try { await api.redeemLink(link); } catch (e) { /* reported below */ }
    } else {
      await api.ensureSession();  // a reload: the session was in memory only, the agent gives a new link
    }
    try {
      await api.currentProcedure();
    } catch (e) {
      showError("この画面は窓口端末から開いてください。", "Please open this screen from the counter terminal.");
    }
    try {
      const session = await api.request("GET", api.PATHS.loginSession());
      if (session && session.staff) { showWork(session.staff.staff_id); return; }
    } catch (e) { /* not signed in */ }
    showLogin();
  }

  async function signIn(event) {
    event.preventDefault();
    const id = $("login-user").value.trim();
    const password = $("login-password").value;
    if (!/^[\w.@-]{1,64}$/.test(id) || !password) {
      showError("職員IDとパスワードを入力してください。", "Enter your staff id and password."); return;
    }
    $("login-password").value = "";
    try {
      const data = await api.request("POST", api.PATHS.staffLogin(), { json: { staff_id: id, password } });
      showError(null);
      showWork((data && data.staff_id) || id);
    } catch (e) {
      if (e && e.status === 401) showError("職員IDまたはパスワードが違います。", "Wrong staff id or password.");
      else showError((e && e.ja) || "サインインできませんでした。", (e && e.en) || String(e));
      $("login-password").focus();
    }
  }

  async function signOut() {
    staffId = null;
    $("login-user").value = "";
    try { await api.request("POST", api.PATHS.logout(), { json: { role: "staff" } }); } catch (e) { /* ended already */ }
    showLogin();
  }

  // ------------------------------------------------------------------------------------------------ tabs
  function selectTab(tab) {
    document.querySelectorAll('[role="tab"]').forEach((t) => {
      const on = t === tab;
      t.setAttribute("aria-selected", on ? "true" : "false");
      t.tabIndex = on ? 0 : -1;
      $(t.getAttribute("aria-controls")).hidden = !on;
    });
    tab.focus();
  }
  function tabKeys(event) {
    const tabs = Array.from(document.querySelectorAll('[role="tab"]'));
    const index = tabs.indexOf(event.target);
    if (index < 0) return;
    let next = null;
    if (event.key === "ArrowRight") next = tabs[(index + 1) % tabs.length];
    if (event.key === "ArrowLeft") next = tabs[(index - 1 + tabs.length) % tabs.length];
    if (event.key === "Home") next = tabs[0];
    if (event.key === "End") next = tabs[tabs.length - 1];
    if (next) { event.preventDefault(); selectTab(next); }
  }

  // ------------------------------------------------------------------------------------------------ lookup
  async function lookup(event) {
    event.preventDefault();
    const params = new URLSearchParams();
    new FormData($("lookup-form")).forEach((value, key) => { if (String(value).trim()) params.set(key, String(value).trim()); });
    const body = $("lookup-table").tBodies[0];
    body.textContent = "";
    try {
      const data = await api.request("GET", api.PATHS.residents() + "?" + params.toString());
      const residents = Array.isArray(data) ? data : data.residents || [];
      residents.forEach((resident) => {
        const cards = resident.cards && resident.cards.length ? resident.cards : [null];
        cards.forEach((card) => body.appendChild(lookupRow(resident, card)));
      });
      setBilingual($("lookup-status"), residents.length + " 件", residents.length + " result(s)");
    } catch (e) {
      apiError(e);
    }
  }

  function lookupRow(resident, card) {
    const tr = document.createElement("tr");
    const limited = card && (card.remote_locked || card.sent_to_counter || (card.limits && card.limits.locked));
    const values = [resident.name, resident.birth_date, resident.status, card ? card.id : "—", card ? card.state : "—",
      limited ? "制限中 (limited)" : "—"];
    values.forEach((value, i) => {
      const cell = document.createElement(i === 0 ? "th" : "td");
      if (i === 0) cell.scope = "row";
      cell.textContent = value === undefined || value === null ? "" : String(value);
      if (i === 3) cell.className = "mono";
      tr.appendChild(cell);
    });
    const actions = document.createElement("td");
    const pick = document.createElement("button");
    pick.type = "button";
    pick.className = "btn btn-secondary";
    setBilingual(pick, "交付に使う", "use for issuance");
    pick.addEventListener("click", () => { $("i-resident").value = resident.id; selectTab($("tab-issuance")); });
    actions.appendChild(pick);
    if (card && limited) {
      const unlock = document.createElement("button");
      unlock.type = "button";
      unlock.className = "btn btn-primary";
      setBilingual(unlock, "制限を解除", "unlock");
      unlock.addEventListener("click", () => openUnlock(card.id));
      actions.appendChild(unlock);
    }
    tr.appendChild(actions);
    return tr;
  }

  function openUnlock(cardId) {
    const form = $("unlock-form");
    form.dataset.card = cardId;
    $("unlock-card").textContent = "カード card: " + cardId;
    form.hidden = false;
    form.querySelector("h2").tabIndex = -1;
    form.querySelector("h2").focus();
  }
  async function submitUnlock(event) {
    event.preventDefault();
    const form = $("unlock-form");
    const documents = checkedDocuments(form);
    if (!documents.length) { showError("確認した本人確認書類を選んでください。", "Select the ID documents you checked."); return; }
    try {
      await api.request("POST", api.PATHS.unlock(form.dataset.card), { json: { staff_id: staffId, documents } });
      showError(null);
      J.toast("制限を解除しました。 (Limits lifted)");
      form.hidden = true;
      lookup(new Event("submit"));
    } catch (e) { apiError(e); }
  }

  // ------------------------------------------------------------------------------------------------ issuance
  async function startCamera() {
    camera = camera || new J.Camera($("i-video"), $("i-canvas"));
    try { await camera.open(); } catch (e) { showError(e.ja, e.en); }
  }
  async function snap() {
    if (!camera || !camera.stream) await startCamera();
    try {
      photoBlob = await camera.grab(0.92);
      showPhoto(photoBlob);
    } catch (e) { showError(e.ja, e.en); }
  }
  function showPhoto(blob) {
    const img = $("i-photo-preview");
    if (img.src) URL.revokeObjectURL(img.src);
    img.src = URL.createObjectURL(blob);
    img.hidden = false;
  }

  async function submitIssuance(event) {
    event.preventDefault();
    const form = $("issuance-form");
    const documents = checkedDocuments(form);
    const resident = $("i-resident").value.trim();
    const mobile = $("i-mobile").value.trim();
    const email = $("i-email").value.trim();
    if (!resident) { showError("住民を選んでください。", "Pick a resident."); $("i-resident").focus(); return; }
    if (!documents.length) { showError("確認した本人確認書類を選んでください。", "Select the ID documents you checked."); return; }
    if (!photoBlob) { showError("顔写真を登録してください。", "Enrol a photo."); return; }
    if (!mobile && !email) { showError("連絡先を1つ以上登録してください。", "Register at least one contact."); $("i-mobile").focus(); return; }
    const status = await agent.status().catch(() => null);
    if (!status || !status.card_present || !status.card_id) {
      showError("カードリーダーに新しいカードを置いてください。", "Place the new card on the reader."); return;
    }
    const card = status.card || {};
    if (!card.diversification_data || !card.expiry) {
      showError("カードの情報を読み取れません。カードを置き直してください。", "The card's data could not be read. Place it again.");
      return;
    }
    const contacts = [];
    if (mobile) contacts.push({ kind: "mobile", address: mobile });
    if (email) contacts.push({ kind: "email", address: email });
    const body = {
      resident_id: resident, card_id: status.card_id, diversification_data: card.diversification_data,
      card_expiry: card.expiry, staff_id: staffId, documents, contacts,
      photo: await new Promise((resolve, reject) => {
        const reader = new FileReader();
        reader.onload = () => resolve(String(reader.result));
        reader.onerror = () => reject(reader.error);
        reader.readAsDataURL(photoBlob);
      }),
    };
    if (card.public_key) body.card_public_key = card.public_key;
    try {
      const view = await api.request("POST", api.PATHS.issuance(), { json: body });
      if (camera) camera.close();
      photoBlob = null;
      startRun(view);
    } catch (e) { apiError(e); }
  }

  // ------------------------------------------------------------------------------------------------ counter procedures
  async function submitProcedure(event) {
    event.preventDefault();
    const form = $("procedure-form");
    const documents = checkedDocuments(form);
    if (!documents.length) { showError("確認した本人確認書類を選んでください。", "Select the ID documents you checked."); return; }
    const [kind, target] = $("p-what").value.split(":");
    const status = await agent.status().catch(() => null);
    if (!status || !status.card_present || !status.card_id) {
      showError("カードリーダーにカードを置いてください。", "Place the card on the reader."); return;
    }
    try {
      let view = await api.counterStart({ kind, target, card_id: status.card_id, staff_id: staffId });
      view = await api.staffCheck(view.id, staffId, documents);
      startRun(view);
    } catch (e) { apiError(e); }
  }

  // ------------------------------------------------------------------------------------------------ running
  // A blip — the server restarting, its database briefly down (503 + Retry-After) — is waited out like on the
  // holder's pages (api.Reconnect): polling goes on at the server's Retry-After, a calm status shows (also while the
  // agent's relay reports `reconnecting`); only when the relay ends `error` or the server stays away longer than the
  // relay's budget does a clear error show, with "Resume" (the agent drives the procedure again).
  const reconnect = new api.Reconnect();

  function showReconnecting(on) {
    const status = $("reconnect-status");
    if (on && !status.textContent) {
      setBilingual(status, "再接続しています… 手続はそのまま続きます。", "Reconnecting… The procedure is kept.");
    } else if (!on && status.textContent) {
      status.textContent = "";
    }
  }

  /** The relay gave up, or the server stayed away too long: stop following, say so clearly, offer "Resume". */
  function paused(outage) {
    clearTimeout(run.timer);
    run.timer = null;
    reconnect.recovered();
    showReconnecting(false);
    if (outage) {
      showError("サーバーに接続できない状態が続いたため、手続を中断しました。手続は保存されています。「続きから再開」で続けられます。",
        "The server could not be reached for a while; the procedure is paused and kept. Press Resume to continue.");
    } else {
      showError("カードリーダーの処理が止まりました。「続きから再開」で続けられます。",
        "The card reader stopped relaying the procedure. Press Resume to continue.");
    }
    $("run-resume").hidden = false;
  }

  async function resumeRun() {
    if (!run) return;
    $("run-resume").hidden = true;
    showError(null);
    try { await agent.drive(run.id); } catch (e) { showError("カードリーダーに接続できません。", "The card reader is not reachable."); }
    clearTimeout(run.timer);
    poll();
  }

  function startRun(view) {
    showError(null);
    reconnect.recovered();
    showReconnecting(false);
    $("run-resume").hidden = true;
    run = { id: view.id, timer: null, pinKey: null, newFirst: null };
    $("run").hidden = false;
    $("run-result").textContent = "";
    $("run").querySelector("h2").tabIndex = -1;
    $("run").querySelector("h2").focus();
    agent.drive(view.id).catch(() => showError("カードリーダーに接続できません。", "The card reader is not reachable."));
    renderRun(view, null);
    poll();
  }

  async function poll() {
    if (!run) return;
    let failure = null;
    const [view, status] = await Promise.all([api.view(run.id).catch((e) => { failure = e; return null; }),
      agent.status().catch(() => null)]);
    if (!run) return;
    let wait = POLL_MS;
    if (failure && api.isTransient(failure)) {
      wait = reconnect.failed(failure, status && status.retry_seconds);
      if (wait === null) { paused(true); return; }
    } else if (failure) {
      apiError(failure);
    } else {
      reconnect.recovered();
    }
    const relay = status && status.procedure_id === run.id && status.relay ? status.relay : null;
    showReconnecting(reconnect.active || Boolean(relay && relay.state === "reconnecting"));
    if (view) renderRun(view, status);
    if (view && view.status !== "active") { run = null; showReconnecting(false); return; }
    if (relay && relay.state === "error") {
      paused(["unavailable", "server_unreachable"].includes(relay.error) || /^http_5/.test(relay.error || ""));
      return;
    }
    run.timer = setTimeout(poll, wait);
  }

  function renderRun(view, status) {
    setBilingual($("run-state"), "状態: " + view.status + " / " + view.state, "procedure " + view.id);
    if (view.message && view.message.ja) showError(view.message.ja, view.message.en);
    const request = status && status.procedure_id === view.id ? status.pin_request : null;
    const form = $("pin-form");
    if (request) {
      const key = request.kind + (request.new ? ":new" : ":cur") + ":" + (request.attempt || 0);
      if (run && run.pinKey !== key) {
        run.pinKey = key;
        run.newFirst = null;
        const format = J.PIN_FORMATS[request.kind] || J.PIN_FORMATS.auth_pin;
        setBilingual($("pin-title"), (request.new ? "ご本人が新しい" : "ご本人が") + format.ja + "を入力してください（" + format.hintJa + "）",
          (request.new ? "Holder: choose the new " : "Holder: enter the ") + format.en.toLowerCase());
        pinEntry.configure(request.kind, [format.ja, format.en]);
        form.hidden = false;
        pinEntry.focus();
      }
    } else {
      form.hidden = true;
      if (run) run.pinKey = null;
    }
    if (view.status === "completed") {
      form.hidden = true;
      const box = document.createElement("div");
      box.className = "ok-box";
      setBilingual(box, "完了しました。", "Completed.");
      $("run-result").replaceChildren(box);
    } else if (view.status !== "active") {
      form.hidden = true;
      const error = view.error || {};
      showError(error.ja || "手続を完了できませんでした。", error.en || view.status);
    }
  }

  async function onPin(value) {
    const status = await agent.status().catch(() => null);
    const request = status && status.pin_request;
    if (!request || !run) return;
    if (request.new && run.newFirst === null) {
      run.newFirst = value;
      setBilingual($("pin-title"), "確認のため、もう一度入力してください", "Enter it again to confirm");
      pinEntry.configure(request.kind, ["確認", "again"]);
      pinEntry.focus();
      return;
    }
    if (request.new && run.newFirst !== value) {
      run.newFirst = null;
      showError("2回の入力が一致しません。最初から入力してください。", "The two entries differ.");
      pinEntry.configure(request.kind, ["新しい暗証番号", "new PIN"]);
      return;
    }
    run.newFirst = null;
    try { await agent.sendPin(request.kind, value, request.new); } catch (e) { showError("カードリーダーとの通信が切れました。", "Lost contact with the reader."); }
    $("pin-form").hidden = true;
  }

  async function cancelRun() {
    if (!run) { $("run").hidden = true; return; }
    const id = run.id;
    clearTimeout(run.timer);
    run = null;
    reconnect.recovered();
    showReconnecting(false);
    $("run-resume").hidden = true;
    agent.cancel();
    try { await api.cancel(id); } catch (e) { /* ended already */ }
    $("run").hidden = true;
  }

  document.addEventListener("DOMContentLoaded", () => {
    pinEntry = J.createPinEntry({ form: $("pin-form"), input: $("pin-input"), keypad: $("keypad"), count: $("pin-count"),
      submit: $("pin-submit"), label: $("pin-label") }, onPin);
    $("login-form").addEventListener("submit", signIn);
    $("logout").addEventListener("click", signOut);
    document.querySelectorAll('[role="tab"]').forEach((tab) => {
      tab.addEventListener("click", () => selectTab(tab));
      tab.addEventListener("keydown", tabKeys);
    });
    $("lookup-form").addEventListener("submit", lookup);
    $("unlock-form").addEventListener("submit", submitUnlock);
    $("unlock-cancel").addEventListener("click", () => { $("unlock-form").hidden = true; });
    $("i-camera").addEventListener("click", startCamera);
    $("i-snap").addEventListener("click", snap);
    $("i-photo-file").addEventListener("change", (event) => {
      const file = event.target.files && event.target.files[0];
      if (file) { photoBlob = file; showPhoto(file); }
    });
    $("issuance-form").addEventListener("submit", submitIssuance);
    $("procedure-form").addEventListener("submit", submitProcedure);
    $("run-cancel").addEventListener("click", cancelRun);
    $("run-resume").addEventListener("click", resumeRun);
    window.addEventListener("pagehide", () => { if (camera) camera.close(); });
    checkLogin();
  });
})();
