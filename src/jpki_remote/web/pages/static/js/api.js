// The JSON API client (/api/v1). Every path the pages use is listed in PATHS, in one place.
// Errors come back as ApiError with a bilingual message; nothing here ever logs a request body.
"use strict";
(function () {
  const base = (window.JPKI && window.JPKI.config.api) || "/api/v1";
  // The terminal-bound browser session lives in this page's memory only, never in localStorage or sessionStorage
  // (finding S-15): no other page or tab of the origin can read it, and it is gone with the page. A reload or a wipe
  // binds a new one through the terminal agent (ensureSession); leaving the page ends it on the server as well.
  let sessionToken = null;
  let binding = null;  // the ensureSession() in flight
  // What older versions left in localStorage (the session token, the procedure id): removed at once.
  try { ["jpki.browserSession", "jpki.procedure"].forEach((key) => localStorage.removeItem(key)); } catch (e) { /* none */ }
  // admin pages send no bearer token: the admin sign-in's cookie session (+ its CSRF token) is the credential
  const isAdminPage = document.documentElement.classList.contains("page-admin");

  const PATHS = {
    redeemLink: () => "/terminals/browser-session",
    currentProcedure: () => "/terminals/procedure",
    endSession: () => "/terminals/session",
    procedures: () => "/procedures",
    procedure: (id) => "/procedures/" + encodeURIComponent(id),
    requestCode: (id) => "/procedures/" + encodeURIComponent(id) + "/code/request",
    verifyCode: (id) => "/procedures/" + encodeURIComponent(id) + "/code/verify",
    face: (id) => "/procedures/" + encodeURIComponent(id) + "/face",
    cancel: (id) => "/procedures/" + encodeURIComponent(id) + "/cancel",
    counterStart: () => "/counter/procedures",
    staffCheck: (id) => "/counter/procedures/" + encodeURIComponent(id) + "/staff-check",
    residents: () => "/registry/residents",
    resident: (id) => "/registry/residents/" + encodeURIComponent(id),
    cards: () => "/registry/cards",
    card: (id) => "/registry/cards/" + encodeURIComponent(id),
    unlock: (id) => "/registry/cards/" + encodeURIComponent(id) + "/unlock",
    issuance: () => "/counter/issuance",
    issuanceStep: (id) => "/counter/issuance/" + encodeURIComponent(id),
    staffLogin: () => "/login/staff",
    loginSession: () => "/login/session",
    logout: () => "/logout",
    auditEvents: () => "/admin/audit",
    auditProof: (seq) => "/admin/audit/" + encodeURIComponent(seq) + "/proof",
  };

  class ApiError extends Error {
    constructor(status, code, ja, en, body, retryAfter = null) {
      super(en || ja || code);
      this.status = status;
      this.code = code;
      this.ja = ja;
      this.en = en;
      this.body = body;
      this.retryAfter = retryAfter;  // seconds, from the answer's Retry-After (503 unavailable, 429), else null
    }
  }

  /** Retry-After: delay-seconds or an HTTP date → seconds (null when absent or unreadable). */
  function retryAfterOf(response) {
    const value = response.headers.get("retry-after");
    if (!value) return null;
    const seconds = /^\d+$/.test(value.trim()) ? Number(value) : (Date.parse(value) - Date.now()) / 1000;
    return Number.isFinite(seconds) ? Math.max(0, seconds) : null;
  }

  // ---- waiting out a blip --------------------------------------------------------------------------------------
  // No answer at all (the network, a server restarting) or 502/503/504 — a 503 `unavailable` with Retry-After while
  // the database is briefly down — is a blip, not a failure: the pages keep polling and driving through it, within
  // the terminal relay's own retry budget (the agent's `retry_seconds`, JPKI_TERMINAL_RETRY_SECONDS), and only then
  // show an error. Any other error (a 500 bug included) is not waited out.
  const DEFAULT_RETRY_SECONDS = 120;  // the relay's default budget, when the agent does not say
  const BACKOFF_MS = [1000, 2000, 4000, 5000];  // without a Retry-After: 1, 2, 4, then every 5 s
  const MIN_WAIT_MS = 500;
  const MAX_WAIT_MS = 10000;  // a Retry-After is followed up to this (bounded back-off)

  function isTransient(e) {
    return e instanceof ApiError && [0, 502, 503, 504].includes(e.status);
  }

  /** One page's outage clock: failed() after each blip says how long to wait (or null once the budget is spent),
   *  recovered() once the server answers again. */
  class Reconnect {
    constructor() { this.since = null; this.tries = 0; }
    get active() { return this.since !== null; }
    failed(error, budgetSeconds) {
      const now = Date.now();
      if (this.since === null) this.since = now;
      const budget = (Number(budgetSeconds) > 0 ? Number(budgetSeconds) : DEFAULT_RETRY_SECONDS) * 1000;
      if (now - this.since >= budget) return null;
      const backoff = BACKOFF_MS[Math.min(this.tries, BACKOFF_MS.length - 1)];
      this.tries += 1;
      const hinted = error && typeof error.retryAfter === "number" ? error.retryAfter * 1000 : backoff;
      return Math.min(MAX_WAIT_MS, Math.max(MIN_WAIT_MS, hinted));
    }
    /** The server answered: whether there had been a blip. */
    recovered() {
      const was = this.since !== null;
      this.since = null;
      this.tries = 0;
      return was;
    }
  }

  const GENERIC = {
    0: ["サーバーに接続できません。係員にお知らせください。", "The server cannot be reached. Please tell staff."],
    401: ["この端末の接続が切れました。最初からやり直してください。", "This terminal's session ended. Please start again."],
    403: ["この操作は許可されていません。", "This action is not allowed."],
    404: ["見つかりません。", "Not found."],
    409: ["今はこの操作はできません。", "This action is not possible now."],
    413: ["データが大きすぎます。", "The data is too large."],
    422: ["入力内容が正しくありません。", "The input is not valid."],
    429: ["しばらく時間をおいてからお試しください。", "Please wait a moment and try again."],
    500: ["システムエラーが発生しました。", "A system error occurred."],
  };

  /** Any of the shapes an error body may have: {code, message_ja, message_en}, {error: {...}}, {detail: ...}. */
  function normalizeError(status, body, retryAfter = null) {
    let source = body;
    if (source && typeof source === "object" && source.error && typeof source.error === "object") source = source.error;
    // FastAPI's own {detail: {...}}; our errors carry a code and may add a `detail` object of their own (kept as is)
    if (source && typeof source === "object" && !source.code && source.detail && typeof source.detail === "object"
        && !Array.isArray(source.detail)) source = source.detail;
    const code = (source && source.code) || "http_" + status;
    let ja = source && (source.message_ja || source.ja);
    let en = source && (source.message_en || source.en);
    if (!ja) {
      const generic = GENERIC[status] || GENERIC[status >= 500 ? 500 : 422];
      ja = generic[0];
      en = en || (typeof (body && body.detail) === "string" ? body.detail : generic[1]);
    }
    return new ApiError(status, code, ja, en, body, retryAfter);
  }

  function storedToken() {
    if (isAdminPage) return null;
    return sessionToken;
  }

  function blobToBase64(blob) {
    return new Promise((resolve, reject) => {
      const reader = new FileReader();
      reader.onload = () => resolve(String(reader.result).split(",", 2)[1] || "");
      reader.onerror = () => reject(reader.error);
      reader.readAsDataURL(blob);
    });
  }

  /** The CSRF token of the staff (counter) or admin sign-in: a readable cookie, sent back on every state change. */
  function csrfToken() {
    const name = (isAdminPage ? "jpki_admin_csrf" : "jpki_staff_csrf") + "=";
    const found = document.cookie.split(";").map((c) => c.trim()).find((c) => c.startsWith(name));
    return found ? decodeURIComponent(found.slice(name.length)) : null;
  }

  async function request(method, path, { json, form, signal, keepalive, token = storedToken() } = {}) {
    const headers = { Accept: "application/json" };
    if (token) headers.Authorization = "Bearer " + token;
    const csrf = method === "GET" || method === "HEAD" ? null : csrfToken();
    if (csrf) headers["X-CSRF-Token"] = csrf;
    let body;
    if (json !== undefined) {
      headers["Content-Type"] = "application/json";
      body = JSON.stringify(json);
    } else if (form !== undefined) {
      body = form;
    }
    let response;
    try {
      response = await fetch(base + path,
        { method, headers, body, credentials: "same-origin", cache: "no-store", signal, keepalive: Boolean(keepalive) });
    } catch (e) {
      if (e && e.name === "AbortError") throw e;
      throw normalizeError(0, null);
    }
    let data = null;
    const type = response.headers.get("content-type") || "";
    if (type.includes("json")) {
      try { data = await response.json(); } catch (e) { data = null; }
    }
    if (!response.ok) throw normalizeError(response.status, data, retryAfterOf(response));
    return data;
  }

  const api = {
    PATHS,
    ApiError,
    Reconnect,
    isTransient,
    DEFAULT_RETRY_SECONDS,
    request,
    setToken(token) { sessionToken = token || null; },
    hasToken: () => Boolean(storedToken()),
    async redeemLink(code) {
      const data = await request("POST", PATHS.redeemLink(), { json: { code } });
      if (data && data.token) api.setToken(data.token);
      return data;
    },
    /** Make sure this page has a session: when it has none (a reload, after a wipe, expired), a fresh one-time link
     *  from the local terminal agent is redeemed. Resolves to whether the page has a session now. */
    ensureSession() {
      if (sessionToken) return Promise.resolve(true);
      const agent = window.JPKI && window.JPKI.agent;
      if (!agent || !agent.available || !agent.browserLink) return Promise.resolve(false);
      if (!binding) {
        binding = (async () => {
          try {
            const code = await agent.browserLink();
            if (code) await api.redeemLink(code);
          } catch (e) { /* no agent, no server: the caller says what to do */ }
          return Boolean(sessionToken);
        })().finally(() => { binding = null; });
      }
      return binding;
    },
    /** The procedure this terminal is running ({procedure: view | null}); also proves the session is valid. */
    currentProcedure: () => request("GET", PATHS.currentProcedure()),
    /** Forget this page's session now and end it on the server (best effort; `keepalive` when the page goes). */
    endSession({ keepalive = false } = {}) {
      const token = sessionToken;
      sessionToken = null;
      if (!token) return Promise.resolve(null);
      return request("DELETE", PATHS.endSession(), { token, keepalive }).catch(() => null);
    },
    /** body: {kind, target, card_id, known_pin?} — the channel follows from the terminal's kind. */
    start: (body) => request("POST", PATHS.procedures(), { json: body }),
    view: (id) => request("GET", PATHS.procedure(id)),
    requestCode: (id) => request("POST", PATHS.requestCode(id), { json: {} }),
    verifyCode: (id, code) => request("POST", PATHS.verifyCode(id), { json: { code } }),
    async submitFace(id, blobs) {
      const frames = await Promise.all(blobs.map(blobToBase64));  // JPEG frames, in capture order
      return request("POST", PATHS.face(id), { json: { frames } });
    },
    cancel: (id) => request("POST", PATHS.cancel(id), { json: {} }),
    counterStart: (body) => request("POST", PATHS.counterStart(), { json: body }),
    staffCheck: (id, staffId, documents) => request("POST", PATHS.staffCheck(id), { json: { staff_id: staffId, documents } }),
  };
  window.JPKI = Object.assign(window.JPKI || {}, { api });
  // Leaving or closing the page (or reloading it) ends its session: nothing usable stays behind.
  window.addEventListener("pagehide", () => { api.endSession({ keepalive: true }); });
})();
