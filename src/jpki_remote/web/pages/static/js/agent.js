// The terminal agent on this machine (loopback only; the page refuses any other host, see routes.py).
// The agent owns the card reader and relays the server's APDUs. The page gives it what the holder types on the
// keypad — a PIN goes from here to the agent and from the agent to the card, never to the server, a log or storage.
//
// Local API (JSON, CORS for this page's origin):
//   GET  /v1/status -> {terminal_id, terminal_kind, terminal_name, reader, card_present, card_id,
//                       procedure_id, pin_request: {kind, new, attempt} | null,
//                       card: {diversification_data, expiry, public_key?} (counter issuance of a new card),
//                       relay: {state, error} (state "reconnecting" while the server is briefly away, "error" when
//                       it gave up), retry_seconds (that budget: the page waits out a blip as long)}
//   POST /v1/procedures/{id}/drive   -> 202   relay this procedure's card exchanges until it ends
//   POST /v1/pin {kind, value, new}  -> 204   answer the pending pin_request
//   POST /v1/cancel                  -> 204   drop the pending request and any PIN held, stop relaying
//   POST /v1/browser-link            -> {code}  a fresh one-time browser-link code: the page binds a new session
//                                               after a reload or a wipe (its session is never stored, see api.js)
// Every call carries X-Agent-Token: the agent's per-launch token, which it puts in the fragment of the page URL it
// opens (#link=CODE&agent_token=TOKEN). It is taken out of the address bar at once and kept in this tab only.
"use strict";
(function () {
  const base = window.JPKI && window.JPKI.config.agent;
  const TOKEN_KEY = "jpki.agentToken";

  function takeToken() {
    const hash = new URLSearchParams(location.hash.replace(/^#/, ""));
    const fresh = hash.get("agent_token");
    if (fresh) {
      hash.delete("agent_token");
      const rest = hash.toString();
      history.replaceState(null, "", location.pathname + location.search + (rest ? "#" + rest : ""));
    }
    try {
      if (fresh) sessionStorage.setItem(TOKEN_KEY, fresh);
      return fresh || sessionStorage.getItem(TOKEN_KEY);
    } catch (e) {
      return fresh;
    }
  }
  const token = takeToken();

  class AgentError extends Error {}

  async function call(method, path, json) {
    if (!base) throw new AgentError("no agent");
    const options = { method, headers: { Accept: "application/json" }, cache: "no-store", mode: "cors", credentials: "omit" };
    if (token) options.headers["X-Agent-Token"] = token;
    if (json !== undefined) {
      options.headers["Content-Type"] = "application/json";
      options.body = JSON.stringify(json);
    }
    let response;
    try {
      response = await fetch(base + path, options);
    } catch (e) {
      throw new AgentError("the terminal agent is not reachable");
    }
    if (!response.ok) throw new AgentError("agent answered " + response.status);
    if (response.status === 204) return null;
    const type = response.headers.get("content-type") || "";
    return type.includes("json") ? response.json() : null;
  }

  const agent = {
    available: Boolean(base),
    base,
    AgentError,
    status: () => call("GET", "/v1/status"),
    drive: (procedureId) => call("POST", "/v1/procedures/" + encodeURIComponent(procedureId) + "/drive", {}),
    // `value` is passed straight into the request body and not kept anywhere by this module.
    sendPin: (kind, value, isNew) => call("POST", "/v1/pin", { kind, value, new: Boolean(isNew) }),
    cancel: () => call("POST", "/v1/cancel", {}).catch(() => null),
    /** A fresh one-time code for POST /terminals/browser-session (api.ensureSession redeems it at once). */
    browserLink: async () => { const data = await call("POST", "/v1/browser-link", {}); return data && data.code; },
  };
  window.JPKI = Object.assign(window.JPKI || {}, { agent });
})();
