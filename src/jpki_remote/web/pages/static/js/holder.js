// The holder's flow on the kiosk and the online portal. The server's procedure view decides the screen; the local
// terminal agent relays the card and asks for PINs. One clear action per screen; errors in Japanese and English.
// Two flows: with the card (renewal, PIN reset) and the loss report (紛失届), which has no card: the holder types the
// card number, passes the face check against the enrolled photo and the security code, confirms, and the
// certificates are revoked — the page never waits for a card or asks the agent to relay one.
"use strict";
(function () {
  const J = window.JPKI;
  const { api, agent, config, setBilingual } = J;
  const $ = (id) => document.getElementById(id);
  const POLL_MS = 700;
  // The steps of each flow, as the indicator shows them (#steps li[data-flow]).
  const FLOWS = {
    card: ["card", "pin", "face", "code", "update", "done"],
    loss: ["number", "face", "code", "confirm", "done"],
  };
  const STEP_NAMES = {
    card: ["カード確認", "Card"], pin: ["暗証番号", "PIN"], face: ["顔認証", "Face"],
    code: ["セキュリティーコード", "Security code"], update: ["更新/再設定", "Renew / reset"], done: ["完了", "Done"],
    number: ["カード番号", "Card number"], confirm: ["確認", "Confirm"],
  };
  const KIND_LABELS = {
    renewal: ["電子証明書の更新", "Certificate renewal"],
    pin_reset: ["暗証番号の初期化・再設定", "PIN reset"],
    loss_report: ["カードの紛失の届出", "Loss report"],
  };
  const CARD_NUMBER = /^[0-9A-Z]{8,32}$/;  // the registry's card id (registry/service.py _CARD_ID)
  const TARGET_LABELS = {
    certificates: ["署名用・利用者証明用電子証明書", "both certificates"],
    sign_password: ["署名用電子証明書のパスワード", "signature password"],
    auth_pin: ["利用者証明用電子証明書の暗証番号", "authentication PIN"],
    residence_pin: ["住民基本台帳用の暗証番号", "residence registry PIN"],
    text_pin: ["券面事項入力補助用の暗証番号", "card-text PIN"],
  };
  const CHALLENGE_TEXT = {
    blink: { label: ["まばたき", "Blink"], say: ["ゆっくりまばたきをしてください", "Blink slowly"] },
    turn_left: { label: ["顔を左に", "Turn left"], say: ["顔をゆっくり左に向けて、正面に戻してください", "Turn your head to your left, then back"] },
    turn_right: { label: ["顔を右に", "Turn right"], say: ["顔をゆっくり右に向けて、正面に戻してください", "Turn your head to your right, then back"] },
  };
  const WORKING_TEXT = {
    card_proof: ["カードを確認しています", "Checking the card"],
    read_face: ["カードの顔写真を読み取っています", "Reading the card photo"],
    keys_request: ["新しい鍵を準備しています", "Preparing new keys"],
    generate_keys: ["カードの中で新しい鍵を作っています", "Generating new keys on the card"],
    issue: ["新しい電子証明書を発行しています", "Issuing the new certificates"],
    write_certificates: ["新しい電子証明書を書き込んでいます", "Writing the new certificates"],
    commit: ["書き込みを確定しています", "Committing"],
    confirm: ["書き込みを確認しています", "Confirming"],
    set_pin: ["新しい暗証番号を設定しています", "Setting the new PIN"],
    revoke: ["電子証明書を失効させています", "Revoking the certificates"],
    finish: ["手続を完了しています", "Finishing"],
  };
  // Refusals after which the holder must go to the counter, and what to tell them.
  const COUNTER_CODES = new Set(["face_limit", "face_refused", "card_unavailable", "certificate_invalid", "no_contact",
    "pin_blocked", "not_allowed", "all_pins_forgotten", "locked_out"]);
  const SOFT_MESSAGES = new Set(["pin_incorrect", "code_wrong", "code_expired", "face_retry", "code_b_incorrect",
    "card_removed", "new_pin_invalid"]);

  // Nothing of the holder's visit is kept in browser storage (finding S-15): the procedure id and the session are in
  // memory; after a reload the server says which procedure runs on this terminal (connect()).
  const state = {
    procedureId: null, kind: null, target: null, knownPin: null, view: null, agentStatus: null,
    screen: null, step: null, pinRequestKey: null, newPinFirst: null, capturing: false, codeRequested: false,
    polling: false, pollTimer: null, finished: false, faceResult: null,
    // the loss report: which flow, the card number typed (shown back), the code held between its entry and the
    // holder's confirmation (memory only, dropped once sent or wiped), a verification under way
    flow: "card", lossCard: null, pendingCode: null, verifying: false,
  };

  // ------------------------------------------------------------------------------------------------ screens
  function show(name) {
    if (state.screen === name) return;
    state.screen = name;
    document.querySelectorAll("[data-screen]").forEach((section) => { section.hidden = section.dataset.screen !== name; });
    const heading = document.querySelector('[data-screen="' + name + '"] h1');
    if (heading) { heading.tabIndex = -1; heading.focus({ preventScroll: true }); }
    window.scrollTo(0, 0);
  }

  /** Show what belongs to ``flow`` ("card" or "loss": every element marked data-flow) and number its steps. */
  function setFlow(flow) {
    state.flow = flow;
    document.querySelectorAll("[data-flow]").forEach((element) => {
      element.hidden = !element.dataset.flow.split(" ").includes(flow);
    });
    const steps = FLOWS[flow];
    document.querySelectorAll("#steps li").forEach((li) => {
      const i = steps.indexOf(li.dataset.step);
      if (i >= 0) li.querySelector(".num").textContent = String(i + 1);
    });
    state.step = undefined;  // the indicator is drawn again by the next setStep
  }

  function setStep(step) {
    if (state.step === step) return;
    state.step = step;
    const steps = FLOWS[state.flow];
    const index = steps.indexOf(step);
    document.querySelectorAll("#steps li").forEach((li) => {
      const i = steps.indexOf(li.dataset.step);
      li.classList.toggle("done", index >= 0 && i >= 0 && i < index);
      if (i >= 0 && i === index) li.setAttribute("aria-current", "step"); else li.removeAttribute("aria-current");
    });
    const label = $("step-announcer");
    if (index >= 0) {
      label.textContent = "ステップ " + (index + 1) + " / " + steps.length + ": " + STEP_NAMES[step][0] + "（"
        + STEP_NAMES[step][1] + "）";
    } else {
      label.textContent = "";
    }
  }

  function showError(ja, en) {
    const box = $("error-box");
    if (!ja) { box.hidden = true; $("error-ja").textContent = ""; $("error-en").textContent = ""; return; }
    $("error-ja").textContent = ja;
    $("error-en").textContent = en || "";
    box.hidden = false;
  }

  /** The clear error screen. ``resumable``: the procedure is still on the server (the server stayed away longer
   *  than the retry budget, or the relay stopped): the agent keeps what it holds for it (the card's answers the
   *  server never got), "Resume" drives it again, and "Back to start" cancels it. */
  function fail(code, ja, en, { resumable = false } = {}) {
    stopPolling();
    state.finished = !resumable;
    if (J.camera) J.camera.abort();
    showError(null);
    reconnect.recovered();
    showReconnecting();
    $("failed-ja").textContent = ja;
    $("failed-en").textContent = en || "";
    const counter = COUNTER_CODES.has(code);
    const lost = state.flow === "loss";  // no card: nothing to leave on the reader or to take
    if (resumable && lost) {
      setBilingual($("failed-next"), "手続は保存されています。「続きから再開」を押すと中断したところから続けます。",
        "Your procedure is kept. Press Resume to continue.");
    } else if (lost) {
      setBilingual($("failed-next"),
        counter ? "お住まいの市区町村の窓口で紛失を届け出てください。本人確認書類をお持ちください（カードは要りません）。"
          : "もう一度、最初からお試しください。",
        counter ? "Please report the loss at your municipal counter with an ID document (no card needed)."
          : "Please start again.");
    } else if (resumable) {
      setBilingual($("failed-next"), "手続は保存されています。カードはそのままで、「続きから再開」を押すと中断した"
        + "ところから続けます。", "Your procedure is kept. Leave the card on the reader and press Resume to continue.");
    } else {
      setBilingual($("failed-next"),
        counter ? "お住まいの市区町村の窓口へお越しください。マイナンバーカードと本人確認書類をお持ちください。"
          : "もう一度、最初からお試しください。",
        counter ? "Please visit your municipal counter with your card and an ID document." : "Please start again.");
    }
    $("failed-resume").hidden = !resumable;
    $("failed-take-card").hidden = resumable || lost;  // the card stays on the reader for "Resume"
    show("failed");
    if (!resumable) agent.cancel();
  }

  // ------------------------------------------------------------------------------------------------ reconnecting
  // A blip — the server restarting, its database briefly down (503 unavailable + Retry-After), the network gone for
  // a moment — is waited out, never shown as a failure: polling goes on at the server's Retry-After (bounded), a
  // request the holder made is sent again as it was (a capture, a code: nothing to redo), and a calm bilingual
  // status says so — also while the terminal agent's relay reports `reconnecting`. Only when the relay itself ends
  // `error`, or the server stays away longer than the relay's budget, does the clear error screen come.
  const reconnect = new api.Reconnect();

  function relayOf(status) {
    return status && state.procedureId && status.procedure_id === state.procedureId && status.relay ? status.relay : null;
  }

  function showReconnecting() {
    const relay = relayOf(state.agentStatus);
    const following = state.polling && Boolean(state.procedureId);
    const on = following && (reconnect.active || Boolean(relay && relay.state === "reconnecting"));
    const status = $("reconnect-status");
    if (on && !status.textContent) {
      setBilingual(status, "再接続しています… 手続はそのまま続きます。", "Reconnecting… Your procedure is kept.");
    } else if (!on && status.textContent) {
      status.textContent = "";
    }
  }

  /** After a blip: how long to wait (ms) before trying again, or null once the relay's budget is spent (the error
   *  screen is then shown). */
  function blip(error) {
    const budget = state.agentStatus && state.agentStatus.retry_seconds;
    const wait = reconnect.failed(error, budget);
    if (wait === null) {
      fail("server_unreachable", "サーバーに接続できない状態が続いたため、手続を中断しました。",
        "The server could not be reached for a while, so the procedure was paused.", { resumable: true });
      return null;
    }
    showReconnecting();
    return wait;
  }

  function recovered() {
    if (reconnect.recovered()) showReconnecting();
  }

  /** A request the holder made (a capture, a code): a blip is waited out and the same request sent again. Resolves
   *  to its answer, or null when the budget was spent or the screen was wiped meanwhile; other errors reject. */
  async function persist(call) {
    const id = state.procedureId;
    for (;;) {
      try {
        const answer = await call();
        recovered();
        return answer;
      } catch (e) {
        if (!api.isTransient(e)) throw e;
        const wait = blip(e);
        if (wait === null) return null;
        await new Promise((resolve) => setTimeout(resolve, wait));
        if (state.procedureId !== id || state.screen === "failed") return null;
      }
    }
  }

  /** The relay gave up on this procedure (`error`): the clear error screen, the procedure kept for "Resume". */
  function checkRelay() {
    const relay = relayOf(state.agentStatus);
    if (!state.polling || !relay || relay.state !== "error") return;
    const outage = relay.error === "unavailable" || relay.error === "server_unreachable"
      || /^http_5/.test(relay.error || "");
    if (outage) {
      fail(relay.error, "サーバーに接続できない状態が続いたため、手続を中断しました。",
        "The server could not be reached for a while, so the procedure was paused.", { resumable: true });
    } else {
      fail(relay.error || "relay_error", "カードリーダーの処理が止まりました。",
        "The card reader stopped relaying the procedure.", { resumable: true });
    }
  }

  /** "Resume" on the error screen: the agent drives the procedure again (the card's answers the server missed go
   *  first), and the page follows it from where it stands. */
  async function resume() {
    const id = state.procedureId;
    if (!id) { wipe("cancel"); return; }
    $("failed-resume").hidden = true;
    state.finished = false;
    setBilingual($("working-step"), "再開しています", "Resuming");
    show("working");
    if (state.flow !== "loss") {  // a loss report has no card for the agent to relay
      try {
        await agent.drive(id);
      } catch (e) {
        handleError(e);
      }
    }
    startPolling();
  }

  // ------------------------------------------------------------------------------------------------ wipe
  /** Wipe the screen and everything typed; tell the server and the agent to abandon the procedure; end this
   *  screen's session (the next holder's start binds a new one through the agent). */
  async function wipe(reason) {
    stopPolling();
    const id = state.procedureId;
    if (J.camera) J.camera.abort();
    if (pinEntry) pinEntry.clear();
    $("code-input").value = "";
    $("loss-card-input").value = "";
    $("loss-card-input").removeAttribute("aria-invalid");
    state.newPinFirst = null;
    showError(null);
    Object.assign(state, { procedureId: null, kind: null, target: null, knownPin: null, view: null, pinRequestKey: null,
      capturing: false, codeRequested: false, finished: false, faceResult: null, lossCard: null, pendingCode: null,
      verifying: false });
    reconnect.recovered();
    showReconnecting();
    agent.cancel();
    if (id && reason !== "finished") {
      try { await api.cancel(id); } catch (e) { /* already ended, or the server is gone: it expires by itself */ }
    }
    api.endSession();  // forgotten at once; ended on the server in the background
    setFlow("card");
    setStep(null);
    show("menu");
    if (reason === "idle") J.toast("操作がなかったため、手続を中止しました。 (Cancelled after inactivity)");
    if (reason === "cancel") J.toast("手続を中止しました。 (Cancelled)");
  }

  // ------------------------------------------------------------------------------------------------ idle
  const idle = { last: Date.now(), timer: null };
  function touch() { idle.last = Date.now(); if (!$("idle-overlay").hidden) $("idle-overlay").hidden = true; }
  function idleTick() {
    const away = (Date.now() - idle.last) / 1000;
    const quiet = state.screen === "menu" || state.screen === "connect";
    const busy = state.capturing || state.screen === "working" || reconnect.active;  // a blip is not the holder's
    if (quiet || busy) { idle.last = busy ? Date.now() : idle.last; $("idle-overlay").hidden = true; return; }
    if (away >= config.idle_wipe) { $("idle-overlay").hidden = true; wipe("idle"); return; }
    if (away >= config.idle_warn) {
      const overlay = $("idle-overlay");
      $("idle-seconds").textContent = String(Math.max(0, Math.ceil(config.idle_wipe - away)));
      if (overlay.hidden) { overlay.hidden = false; $("idle-continue").focus(); }
    }
  }

  // ------------------------------------------------------------------------------------------------ agent
  async function agentStatus() {
    try {
      const status = await agent.status();
      state.agentStatus = status;
      renderBadge(status);
      return status;
    } catch (e) {
      state.agentStatus = null;
      renderBadge(null);
      return null;
    }
  }

  function renderBadge(status) {
    const badge = $("terminal-badge");
    if (!status) { setBilingual(badge, "端末エージェント未接続", "terminal agent not connected"); return; }
    const name = status.terminal_name || status.terminal_id || "";
    const reader = status.reader || "—";
    setBilingual(badge, "端末: " + name + " ／ リーダー: " + reader, "terminal " + (status.terminal_id || "") + ", reader " + reader);
  }

  // ------------------------------------------------------------------------------------------------ start
  function labelUpdateStep(kind) {
    document.querySelector("[data-update-ja]").textContent = kind === "renewal" ? "更新" : "再設定";
    document.querySelector("[data-update-en]").textContent = kind === "renewal" ? "Renew" : "Reset";
  }

  function choose(kind, target, knownPin) {
    Object.assign(state, { kind, target, knownPin, finished: false, codeRequested: false, faceResult: null });
    setFlow("card");
    labelUpdateStep(kind);
    setStep("card");
    show("card");
    waitForCard();
  }

  async function waitForCard() {
    if (!agent.available) {
      fail("no_agent", "カードリーダー（端末エージェント）に接続できません。係員にお知らせください。",
        "The card reader (terminal agent) is not connected. Please tell staff.");
      return;
    }
    while (state.screen === "card" && !state.procedureId) {
      const status = await agentStatus();
      if (status && status.card_present && status.card_id) {
        await startProcedure(status.card_id);
        return;
      }
      setBilingual($("reader-line"), status ? "リーダー: " + (status.reader || "—") : "端末エージェントを待っています…",
        status ? "reader " + (status.reader || "—") : "waiting for the terminal agent…");
      await new Promise((resolve) => setTimeout(resolve, 600));
    }
  }

  /** Start, with this screen's session — bound anew when the last wipe ended it or it expired while idle. */
  async function startWithSession(body) {
    await api.ensureSession();
    try {
      return await api.start(body);
    } catch (e) {
      if (!(e instanceof api.ApiError) || e.status !== 401) throw e;
      api.setToken(null);
      if (!(await api.ensureSession())) throw e;
      return api.start(body);
    }
  }

  async function startProcedure(cardId) {
    const body = { kind: state.kind, target: state.target, card_id: cardId };
    if (state.knownPin) body.known_pin = state.knownPin;
    try {
      const view = await startWithSession(body);
      state.procedureId = view.id;
      await agent.drive(view.id);
      state.view = view;
      startPolling();
      render(view);
    } catch (e) {
      handleError(e);
    }
  }

  // ------------------------------------------------------------------------------------------------ loss report
  /** "I lost my card": the card number screen. No card, no reader: nothing here waits for the agent's reader. */
  function chooseLoss() {
    Object.assign(state, { kind: "loss_report", target: "card", knownPin: null, finished: false, codeRequested: false,
      faceResult: null, lossCard: null, pendingCode: null, verifying: false });
    setFlow("loss");
    setStep("number");
    showError(null);
    $("loss-card-input").value = "";
    $("loss-card-input").removeAttribute("aria-invalid");
    show("loss-number");
  }

  /** What the holder typed as the card number, as the registry writes it (full-width → half-width, upper case, no
   *  spaces or hyphens), or null when it cannot be one. */
  function cardNumberOf(typed) {
    const value = String(typed || "").normalize("NFKC").toUpperCase().replace(/[\s\-]/g, "");
    return CARD_NUMBER.test(value) ? value : null;
  }

  async function submitLossNumber(event) {
    event.preventDefault();
    const input = $("loss-card-input");
    const cardId = cardNumberOf(input.value);
    if (!cardId) {
      input.setAttribute("aria-invalid", "true");
      showError("カード番号は英数字 8〜32 文字です。入力した番号を確かめてください。",
        "A card number has 8 to 32 letters and digits. Please check what you typed.");
      input.focus();
      return;
    }
    input.removeAttribute("aria-invalid");
    showError(null);
    state.lossCard = cardId;
    $("loss-submit").disabled = true;
    try {
      const view = await startWithSession({ kind: "loss_report", target: "card", card_id: cardId });
      state.procedureId = view.id;  // no agent.drive: there is no card to relay
      state.view = view;
      startPolling();
      render(view);
    } catch (e) {
      handleError(e);
    } finally {
      $("loss-submit").disabled = false;
    }
  }

  /** The code is typed: one last look at what reporting the loss does before it is sent (sending it revokes). */
  function confirmLoss(code) {
    state.pendingCode = code;
    // the number typed on this page; after a reload it is not known (nothing of the visit is kept in storage, S-15)
    if (state.lossCard) {
      setBilingual($("loss-confirm-which"), "カード番号 " + state.lossCard + " の紛失を届け出ます。",
        "You are reporting card " + state.lossCard + " as lost.");
    } else {
      setBilingual($("loss-confirm-which"), "最初に入力したカード番号のカードの紛失を届け出ます。",
        "You are reporting the card whose number you entered as lost.");
    }
    showError(null);
    setStep("confirm");
    show("loss-confirm");
  }

  function backToCode() {
    state.pendingCode = null;
    setStep("code");
    show("code");
    $("code-input").focus();
  }

  async function reportLoss() {
    const code = state.pendingCode;
    state.pendingCode = null;
    if (!code || !state.procedureId) { backToCode(); return; }
    state.verifying = true;
    $("loss-confirm-submit").disabled = true;
    setBilingual($("working-step"), "紛失を届け出ています", "Reporting the loss");
    show("working");
    try {
      const id = state.procedureId;
      const reply = await persist(() => api.verifyCode(id, code));  // a blip: the same code again
      state.verifying = false;
      if (!reply) return;
      if (reply.message && reply.message.code) showError(reply.message.ja, reply.message.en);
      else showError(null);
      render(reply);  // a wrong code: back on the code screen with the tries left
    } catch (e) {
      state.verifying = false;
      handleError(e);
    } finally {
      state.verifying = false;
      $("loss-confirm-submit").disabled = false;
    }
  }

  function finishLoss(view) {
    $("loss-receipt-card").textContent = state.lossCard || "";
    $("loss-receipt-card").hidden = !state.lossCard;  // not known after a reload (S-15)
    $("loss-receipt-card-label").hidden = !state.lossCard;
    $("loss-receipt-ref").textContent = String(view.id).replace(/(.{4})(?=.)/g, "$1 ");
    $("loss-receipt-time").textContent = J.formatTime(view.completed_at || new Date().toISOString());
    setStep("done");
    show("loss-done");
  }

  // ------------------------------------------------------------------------------------------------ following
  function startPolling() {
    if (state.polling) return;
    state.polling = true;
    const loop = async () => {
      if (!state.polling) return;
      const wait = await refresh();
      if (state.polling && wait !== null) state.pollTimer = setTimeout(loop, wait);
    };
    loop();
  }
  function stopPolling() { state.polling = false; clearTimeout(state.pollTimer); }

  /** One poll of the view and the agent; returns when to poll next (ms; the server's Retry-After after a blip), or
   *  null when the page stopped following. */
  async function refresh() {
    if (!state.procedureId) return POLL_MS;
    let failure = null;
    const [view] = await Promise.all([
      api.view(state.procedureId).catch((e) => { failure = e; return null; }),
      agentStatus(),
    ]);
    if (!state.polling) return null;
    if (failure && api.isTransient(failure)) return blip(failure);
    if (failure) { handleError(failure); return POLL_MS; }
    recovered();
    showReconnecting();  // the relay's own state too
    if (view) render(view);
    checkRelay();
    return POLL_MS;
  }

  function handleError(e) {
    if (api.isTransient(e) && state.procedureId && state.polling) {  // polling waits it out
      blip(e);
      return;
    }
    if (e instanceof api.ApiError) {
      if (e.status === 401) {
        stopPolling();
        setBilingual($("connect-detail"), "端末から画面を開き直してください。", "Please reopen this screen from the terminal.");
        show("connect");
        return;
      }
      if (e.status === 404 && state.procedureId) { fail("not_found", e.ja, e.en); return; }
      // locked_out: the card's limits sent the holder to the counter; rate_limited: this terminal or address, later
      if (["card_busy", "not_allowed", "invalid_request", "not_found", "locked_out", "rate_limited"].includes(e.code)
          || e.status >= 500) {
        fail(e.code, e.ja, e.en);
        return;
      }
      showError(e.ja, e.en);
      return;
    }
    if (e instanceof agent.AgentError) {
      showError("カードリーダーとの通信が切れました。", "Lost contact with the card reader.");
      return;
    }
    showError("エラーが発生しました。", String(e && e.message ? e.message : e));
  }

  function messageOf(view) {
    const message = view && view.message;
    if (!message) return null;
    return { code: message.code, ja: message.ja || message.message_ja, en: message.en || message.message_en };
  }

  function render(view) {
    state.view = view;
    if (view.status === "completed") { finish(view); return; }
    if (view.status !== "active") {
      const error = view.error || { code: view.status, ja: "手続を完了できませんでした。", en: "The procedure ended." };
      fail(error.code, error.ja || error.message_ja, error.en || error.message_en);
      return;
    }
    const message = messageOf(view);
    if (message && (SOFT_MESSAGES.has(message.code) || !message.code)) showError(message.ja, message.en);
    const pinRequest = state.agentStatus && state.agentStatus.procedure_id === view.id ? state.agentStatus.pin_request : null;
    if (pinRequest) { showPin(pinRequest, view); return; }
    state.pinRequestKey = null;
    if (view.state === "proofs" && view.waiting_for) {
      if (view.waiting_for.startsWith("face")) { showFace(view); return; }
      if (view.waiting_for === "security_code") { showCode(view); return; }
    }
    const exchange = view.exchange || {};
    const lost = state.flow === "loss";  // no card: never the card screen
    if (!lost && (exchange.status === "insert_card" || (message && message.code === "card_removed"))) {
      setStep("card"); show("card"); return;
    }
    const text = WORKING_TEXT[view.state] || ["処理しています", "Working"];
    setBilingual($("working-step"), text[0], text[1]);
    if (lost) {
      setStep("confirm");
      if (!state.capturing) show("working");
      return;
    }
    const updateStates = ["keys_request", "generate_keys", "issue", "write_certificates", "commit", "confirm", "set_pin", "finish"];
    if (updateStates.includes(view.state)) setStep("update");
    else if (view.state === "read_face") setStep("face");
    else if (view.state === "card_proof") setStep(state.step === "pin" ? "pin" : "card");
    if (!state.capturing) show("working");
  }

  // ------------------------------------------------------------------------------------------------ PIN
  let pinEntry = null;
  function showPin(request, view) {
    const key = request.kind + ":" + (request.new ? "new" : "cur") + ":" + (request.attempt || 0);
    const isNew = Boolean(request.new);
    setStep(isNew ? "update" : request.kind === "code_b" ? "face" : "pin");
    if (state.pinRequestKey === key && state.screen === "pin") return;
    state.pinRequestKey = key;
    state.newPinFirst = null;
    const format = J.PIN_FORMATS[request.kind] || J.PIN_FORMATS.auth_pin;
    if (isNew) {
      setBilingual($("pin-title-ja"), "新しい" + format.ja + "を決めてください");
      $("pin-title-en").textContent = "Choose a new " + format.en.toLowerCase();
    } else {
      setBilingual($("pin-title-ja"), format.ja + "を入力してください");
      $("pin-title-en").textContent = "Enter your " + format.en.toLowerCase();
    }
    $("pin-hint-ja").textContent = format.hintJa + "。入力した文字は表示されません。";
    $("pin-hint-en").textContent = format.hintEn + ". What you type is not shown.";
    pinEntry.configure(request.kind, isNew ? ["新しい暗証番号", "new PIN"] : [format.ja, format.en]);
    const tries = $("pin-tries");
    const message = messageOf(view);
    if (message && (message.code === "pin_incorrect" || message.code === "code_b_incorrect")) {
      tries.hidden = false;
      setBilingual(tries, message.ja + "もう一度入力してください。", (message.en || "") + " Please try again.");
    } else {
      tries.hidden = true;
    }
    show("pin");
    pinEntry.focus();
  }

  async function onPinEntered(value) {
    const status = state.agentStatus;
    const request = status && status.pin_request;
    if (!request) return;
    if (request.new && state.newPinFirst === null) {
      state.newPinFirst = value;  // kept in this closure only until the second entry
      setBilingual($("pin-title-ja"), "確認のため、もう一度入力してください");
      $("pin-title-en").textContent = "Enter the new PIN again to confirm";
      pinEntry.configure(request.kind, ["新しい暗証番号（確認）", "new PIN (again)"]);
      pinEntry.focus();
      return;
    }
    if (request.new && state.newPinFirst !== value) {
      state.newPinFirst = null;
      showError("2回の入力が一致しません。最初から入力してください。", "The two entries differ. Please enter the new PIN again.");
      const format = J.PIN_FORMATS[request.kind] || J.PIN_FORMATS.auth_pin;
      setBilingual($("pin-title-ja"), "新しい" + format.ja + "を決めてください");
      $("pin-title-en").textContent = "Choose a new " + format.en.toLowerCase();
      pinEntry.configure(request.kind, ["新しい暗証番号", "new PIN"]);
      pinEntry.focus();
      return;
    }
    state.newPinFirst = null;
    showError(null);
    try {
      await agent.sendPin(request.kind, value, request.new);
    } catch (e) {
      handleError(e);
      return;
    }
    value = null;  // eslint-disable-line no-param-reassign
    state.pinRequestKey = null;
    setBilingual($("working-step"), "カードで確認しています", "Checking on the card");
    show("working");
  }

  // ------------------------------------------------------------------------------------------------ face
  function challengeSteps(view) {
    const challenge = view.face_challenge;
    if (Array.isArray(challenge)) return challenge;
    if (challenge && Array.isArray(challenge.steps)) return challenge.steps;
    return [];
  }

  function showFace(view) {
    setStep("face");
    if (state.capturing) return;
    const steps = challengeSteps(view);
    const list = $("challenge");
    const signature = steps.join(",");
    if (list.dataset.signature !== signature) {
      list.dataset.signature = signature;
      list.textContent = "";
      steps.forEach((step, index) => {
        const li = document.createElement("li");
        li.dataset.step = step;
        const mark = document.createElement("span");
        mark.className = "mark";
        mark.textContent = String(index + 1);
        mark.setAttribute("aria-hidden", "true");
        const text = document.createElement("span");
        const labels = (CHALLENGE_TEXT[step] || { label: [step, step] }).label;
        setBilingual(text, labels[0], labels[1]);
        li.append(mark, text);
        list.appendChild(li);
      });
    }
    // the attempts left: in every view once a capture was counted (face_attempts_left), and in a capture's answer
    if (view.face_result) state.faceResult = view.face_result;
    const result = state.faceResult;
    const left = typeof view.face_attempts_left === "number" ? view.face_attempts_left
      : (result && typeof result.attempts_left === "number" ? result.attempts_left : null);
    const attempts = $("face-attempts");
    if (left !== null) {
      attempts.hidden = false;
      setBilingual(attempts, "あと " + left + " 回まで撮り直せます。", left + " attempt(s) left.");
    } else {
      attempts.hidden = true;
    }
    if (state.screen !== "face") {
      setBilingual($("face-instruction"), "準備ができたら「撮影を始める」を押してください。", "Press Start when you are ready.");
      setProgress(0);
      show("face");
      J.camera.open().catch((e) => showError(e.ja || "カメラを起動できませんでした。", e.en));
    }
  }

  // What the liveness check saw wrong (its reason codes, with their texts), after the general "try again".
  function showFaceRefusal(reply) {
    const message = messageOf(reply);
    const reasons = (reply.face_result && Array.isArray(reply.face_result.liveness_reasons))
      ? reply.face_result.liveness_reasons : [];
    if (!message || !reasons.length) return;
    showError([message.ja].concat(reasons.map((r) => r.ja)).join(" "),
      [message.en].concat(reasons.map((r) => r.en)).join(" "));
  }

  function setProgress(fraction) {
    const percent = Math.round(fraction * 100);
    $("face-progress-bar").style.width = percent + "%";
    $("face-progress").setAttribute("aria-valuenow", String(percent));
  }

  async function captureFace() {
    const view = state.view;
    if (!view || state.capturing) return;
    const steps = challengeSteps(view);
    state.capturing = true;
    showError(null);
    $("face-start").disabled = true;
    const items = Array.from($("challenge").children);
    let frames = null;
    try {
      frames = await J.camera.captureChallenge(steps, {
        onStep(index) {
          items.forEach((li, i) => { li.classList.toggle("done", i < index); li.classList.toggle("current", i === index); });
          if (index < 0) setBilingual($("face-instruction"), "カメラを見てください", "Look at the camera");
          else if (index >= steps.length) setBilingual($("face-instruction"), "正面を向いてください", "Look straight ahead");
          else {
            const say = (CHALLENGE_TEXT[steps[index]] || { say: [steps[index], steps[index]] }).say;
            setBilingual($("face-instruction"), say[0], say[1]);
          }
        },
        onProgress: setProgress,
      });
      J.camera.close();
      setBilingual($("face-instruction"), "照合しています…", "Checking…");
      const reply = await persist(() => api.submitFace(view.id, frames));  // a blip: the same frames again
      frames = null;
      state.capturing = false;
      if (!reply) return;
      render(reply);
      if (state.screen === "face") {  // refused, may try again: the camera back on, the next step said plainly
        showFaceRefusal(reply);
        setProgress(0);
        setBilingual($("face-instruction"), "準備ができたら「撮影を始める」を押して、もう一度撮影してください。",
          "Press Start to try again.");
        J.camera.open().catch((e) => showError(e.ja || "カメラを起動できませんでした。", e.en));
      }
    } catch (e) {
      frames = null;
      state.capturing = false;
      if (e instanceof J.CameraError) {
        if (e.code !== "aborted") showError(e.ja, e.en);
      } else {
        handleError(e);
      }
    } finally {
      state.capturing = false;
      $("face-start").disabled = false;
    }
  }

  // ------------------------------------------------------------------------------------------------ security code
  function showCode(view) {
    // the loss report's confirmation, or its code on the way: the poll does not take the holder back to the entry
    if (state.screen === "loss-confirm" || state.verifying) return;
    setStep("code");
    if (view.code_sent_to) {
      setBilingual($("code-sent"), view.code_sent_to + " にセキュリティーコードを送りました。届いたコードを入力してください。",
        "We sent a security code to " + view.code_sent_to + ".");
    } else {
      setBilingual($("code-sent"), "登録されている連絡先にセキュリティーコードを送ります…", "Sending a security code to your registered contact…");
    }
    if (typeof view.code_tries_left === "number") {
      setBilingual($("code-tries"), "あと " + view.code_tries_left + " 回入力できます。", view.code_tries_left + " tries left.");
    }
    if (state.screen !== "code") {
      show("code");
      $("code-input").focus();
    }
    if (!view.code_sent_to && !state.codeRequested) {
      state.codeRequested = true;
      persist(() => api.requestCode(view.id)).then((reply) => { if (reply) render(reply); }).catch(handleError);
    }
  }

  async function submitCode(event) {
    event.preventDefault();
    const input = $("code-input");
    const code = input.value.replace(/\D/g, "");
    if (!code) { showError("セキュリティーコードを入力してください。", "Please enter the security code."); input.focus(); return; }
    input.value = "";
    if (state.flow === "loss") { confirmLoss(code); return; }  // sending it revokes: confirm first
    $("code-submit").disabled = true;
    try {
      const id = state.procedureId;
      const reply = await persist(() => api.verifyCode(id, code));  // a blip: the same code again
      if (!reply) return;
      if (reply.message && reply.message.code) showError(reply.message.ja, reply.message.en);
      else showError(null);
      render(reply);
      if (state.screen === "code") input.focus();
    } catch (e) {
      handleError(e);
    } finally {
      $("code-submit").disabled = false;
    }
  }

  async function resendCode() {
    $("code-resend").disabled = true;
    try {
      const id = state.procedureId;
      const reply = await persist(() => api.requestCode(id));
      if (!reply) return;
      J.toast("セキュリティーコードを再送信しました。 (Sent again)");
      showError(null);
      render(reply);
    } catch (e) {
      handleError(e);
    } finally {
      setTimeout(() => { $("code-resend").disabled = false; }, 3000);
    }
  }

  // ------------------------------------------------------------------------------------------------ done
  function finish(view) {
    stopPolling();
    state.finished = true;
    showError(null);
    if (view.kind === "loss_report") { finishLoss(view); return; }
    const kind = KIND_LABELS[view.kind] || [view.kind, view.kind];
    const target = TARGET_LABELS[view.target] || [view.target, view.target];
    setBilingual($("receipt-kind"), kind[0] + "（" + target[0] + "）", kind[1] + " (" + target[1] + ")");
    $("receipt-ref").textContent = String(view.id).replace(/(.{4})(?=.)/g, "$1 ");
    $("receipt-time").textContent = J.formatTime(view.completed_at || new Date().toISOString());
    setStep("done");
    show("done");
  }

  // ------------------------------------------------------------------------------------------------ connect
  async function connect() {
    show("connect");
    const hash = new URLSearchParams(location.hash.replace(/^#/, ""));
    const link = hash.get("link");
    if (link) {
      history.replaceState(null, "", location.pathname + location.search);  // the code is single-use: drop it
      try {
        await api.redeemLink(link);
      } catch (e) {
        setBilingual($("connect-detail"), "端末の接続に失敗しました。端末から開き直してください。",
          "Could not bind this screen to the terminal. Please reopen it from the terminal.");
        return;
      }
    } else {
      await api.ensureSession();  // a reload: the session was in memory only, the agent gives a new link
    }
    let current = null;
    try {
      current = await api.currentProcedure();  // also checks that this screen's terminal session is valid
    } catch (e) {
      setBilingual($("connect-detail"), "この画面は端末から開いてください。", "Please open this screen from the terminal.");
      return;
    }
    await agentStatus();
    // A procedure already running on this terminal (a reload, or the screen reopened) continues where it is.
    const view = current && current.procedure;
    if (view && view.status === "active") {
      state.procedureId = view.id;
      state.kind = view.kind;
      state.target = view.target;
      setFlow(view.kind === "loss_report" ? "loss" : "card");
      labelUpdateStep(view.kind);
      startPolling();
      render(view);
      return;
    }
    show("menu");
  }

  // ------------------------------------------------------------------------------------------------ wiring
  function knownOptions(target) {
    const table = config.reset_known || {};
    return table[target] || ["auth_pin", "sign_password"];
  }

  document.addEventListener("DOMContentLoaded", () => {
    J.camera = new J.Camera($("camera-video"), $("camera-canvas"));
    pinEntry = J.createPinEntry({
      form: $("pin-form"), input: $("pin-input"), keypad: $("keypad"), count: $("pin-count"), submit: $("pin-submit"),
      label: $("pin-label"),
    }, onPinEntered);

    document.addEventListener("click", (event) => {
      const button = event.target.closest("button");
      if (!button) return;
      const action = button.dataset.action;
      if (action === "home") wipe(state.finished ? "finished" : "cancel");
      else if (action === "cancel") wipe("cancel");
      else if (action === "resume") resume();
      else if (action === "choose-renewal") choose("renewal", "certificates", null);
      else if (action === "choose-reset") { setStep(null); show("reset-kind"); }
      else if (action === "choose-loss") chooseLoss();
      else if (button.dataset.target) {
        state.target = button.dataset.target;
        const options = knownOptions(state.target);
        document.querySelectorAll("[data-known]").forEach((b) => {
          b.hidden = b.dataset.known !== "none" && !options.includes(b.dataset.known);
        });
        show("known-pin");
      } else if (button.dataset.known) {
        if (button.dataset.known === "none") {
          const text = config.all_pins_forgotten || {};
          fail("all_pins_forgotten", text.ja || "暗証番号をすべて忘れた場合は、市区町村の窓口で手続してください。",
            text.en || "If every PIN is forgotten, please visit your municipality's counter.");
        } else {
          choose("pin_reset", state.target, button.dataset.known);
        }
      }
    });
    $("face-start").addEventListener("click", captureFace);
    $("code-form").addEventListener("submit", submitCode);
    $("code-resend").addEventListener("click", resendCode);
    $("loss-form").addEventListener("submit", submitLossNumber);
    $("loss-confirm-submit").addEventListener("click", reportLoss);
    $("loss-confirm-back").addEventListener("click", backToCode);
    $("idle-continue").addEventListener("click", touch);
    ["pointerdown", "keydown", "touchstart", "input"].forEach((name) => document.addEventListener(name, touch, { passive: true }));
    setInterval(idleTick, 1000);
    window.addEventListener("pagehide", () => { if (J.camera) J.camera.close(); });
    window.addEventListener("pageshow", (event) => { if (event.persisted) connect(); });  // back from the bfcache
    connect();
  });
})();
