"""The HTTP surface: terminal authentication, rate limits, security headers, CSRF/CORS exposure, crashes found by
fuzzing, the OpenAPI document. Protections that work are plain tests; open findings are strict xfails (their ids
match docs/security.md)."""

from __future__ import annotations

import base64
import secrets

import pytest
from secworld import API, SecWeb

from jpki_remote.terminal.service import auth_message

PAGES = ["/", "/kiosk", "/portal", "/counter", "/admin", "/admin/audit", "/admin/stats"]


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


# ---- terminal authentication -----------------------------------------------------------------------------------
def test_terminal_session_needs_the_terminal_key(module_web: SecWeb) -> None:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    web = module_web
    kiosk = web.terminal("kiosk")
    nonce = web.client.post(f"{API}/terminals/challenge", json={"terminal_id": kiosk.terminal_id}).json()["nonce"]
    raw = base64.urlsafe_b64decode(nonce + "=" * (-len(nonce) % 4))
    stranger = Ed25519PrivateKey.generate().sign(auth_message(kiosk.terminal_id, raw))
    response = web.client.post(
        f"{API}/terminals/session", json={"terminal_id": kiosk.terminal_id, "nonce": nonce, "signature": _b64(stranger)}
    )
    assert response.status_code == 401
    # a signature for another terminal id (same nonce) is not accepted either
    other = web.terminal("kiosk")
    nonce = web.client.post(f"{API}/terminals/challenge", json={"terminal_id": other.terminal_id}).json()["nonce"]
    raw = base64.urlsafe_b64decode(nonce + "=" * (-len(nonce) % 4))
    signature = _b64(kiosk._key.sign(auth_message(kiosk.terminal_id, raw)))
    response = web.client.post(
        f"{API}/terminals/session", json={"terminal_id": kiosk.terminal_id, "nonce": nonce, "signature": signature}
    )
    assert response.status_code == 401


def test_a_used_challenge_cannot_open_a_second_session(module_web: SecWeb) -> None:
    web = module_web
    kiosk = web.terminal("kiosk")
    nonce = web.client.post(f"{API}/terminals/challenge", json={"terminal_id": kiosk.terminal_id}).json()["nonce"]
    raw = base64.urlsafe_b64decode(nonce + "=" * (-len(nonce) % 4))
    body = {"terminal_id": kiosk.terminal_id, "nonce": nonce, "signature": _b64(kiosk._key.sign(auth_message(
        kiosk.terminal_id, raw)))}
    assert web.client.post(f"{API}/terminals/session", json=body).status_code == 200
    assert web.client.post(f"{API}/terminals/session", json=body).status_code == 401


def test_a_challenge_is_used_up_by_a_failed_attempt(module_web: SecWeb) -> None:
    web = module_web
    kiosk = web.terminal("kiosk")
    nonce = web.client.post(f"{API}/terminals/challenge", json={"terminal_id": kiosk.terminal_id}).json()["nonce"]
    bad = {"terminal_id": kiosk.terminal_id, "nonce": nonce, "signature": "A" * 86}
    assert web.client.post(f"{API}/terminals/session", json=bad).status_code == 401
    raw = base64.urlsafe_b64decode(nonce + "=" * (-len(nonce) % 4))
    good = {**bad, "signature": _b64(kiosk._key.sign(auth_message(kiosk.terminal_id, raw)))}
    assert web.client.post(f"{API}/terminals/session", json=good).status_code == 401


def test_browser_session_cannot_drive_the_card_or_outlive_its_terminal(module_web: SecWeb) -> None:
    from jpki_remote.terminal.service import disable_terminal

    web = module_web
    kiosk = web.terminal("kiosk")
    code = kiosk.browser_link()
    token = web.client.post(f"{API}/terminals/browser-session", json={"code": code}).json()["token"]
    headers = {"Authorization": f"Bearer {token}"}
    assert web.client.post(f"{API}/terminals/browser-link", headers=headers).status_code == 403  # no link chains
    with web.world.db.session() as s:
        disable_terminal(s, kiosk.terminal_id)
    assert web.client.get(f"{API}/terminals/procedure", headers=headers).status_code == 401
    assert web.client.get(f"{API}/terminals/procedure", headers=web.auth(kiosk)).status_code == 401


# ---- rate limits -----------------------------------------------------------------------------------------------
def test_procedure_starts_are_limited_per_card_once_it_proves_possession(module_web: SecWeb) -> None:
    """Stolen card: each new procedure would give fresh face and code budgets, so a card's starts are limited (ASVS
    6.3, SP 800-63B §3.2.2) — counted when the card proves possession (S-5). Starts with a card number alone, real or
    not, are neither counted against the card nor answered differently: nobody locks a holder out with the number."""
    from procedure_world import PINS

    from jpki_remote.proofing.limits import DEFAULT_RULES, AttemptKind, Scope
    from jpki_remote.terminal.agent import AgentCore, ScriptedPinPad, drive

    card_starts = next(r.limit for r in DEFAULT_RULES if r.kind is AttemptKind.START and r.scope is Scope.CARD)
    web = module_web
    issued = web.world.issue_card()
    unknown = "8" + secrets.token_hex(7)[:14].translate(str.maketrans("abcdef", "012345"))
    answers: dict[str, list[int]] = {}
    for label, card_id in (("known", issued.card_id), ("unknown", unknown)):
        statuses = []
        for _ in range(card_starts + 4):
            terminal = web.terminal("app")  # a new terminal and address each time: only the card is in common
            response = terminal.http.post(
                f"{API}/procedures",
                json={"kind": "renewal", "target": "certificates", "card_id": card_id},
                headers=web.auth(terminal),
            )
            statuses.append(response.status_code)
            if response.status_code == 201:
                terminal.http.post(f"{API}/procedures/{response.json()['id']}/cancel", headers=web.auth(terminal))
        answers[label] = statuses
    assert answers["known"] == answers["unknown"] == [201] * (card_starts + 4), answers
    ends = []
    for _ in range(card_starts + 1):  # now with the card: its proof counts, whatever the terminal and address
        terminal = web.terminal("app")
        reply = terminal.start("revocation", "signature", issued.card_id)
        core = AgentCore(issued.card.transmit, ScriptedPinPad(pins={"auth_pin": PINS["auth_pin"]}))
        reply = drive(lambda body, t=terminal, pid=reply["id"]: t.exchange(pid, body), core, reply)
        ends.append(reply["state"] if reply["status"] == "active" else reply["error"]["code"])
        if reply["status"] == "active":
            terminal.http.post(f"{API}/procedures/{reply['id']}/cancel", headers=web.auth(terminal))
    assert ends == ["proofs"] * card_starts + ["locked_out"], ends


# ---- security headers, cookies, CSRF, CORS ---------------------------------------------------------------------
@pytest.mark.parametrize("page", PAGES)
def test_pages_carry_strict_security_headers(module_web: SecWeb, page: str) -> None:
    client = module_web.client
    if page.startswith("/admin"):  # served to a signed-in admin only (else a redirect to the sign-in form)
        client = module_web.client_from("10.255.0.1")
        assert client.get(page, follow_redirects=False).status_code == 303
        assert client.post(f"{API}/login/admin", json={"token": module_web.admin_token}).status_code == 200
    response = client.get(page)
    assert response.status_code == 200, (page, response.status_code)
    csp = response.headers.get("content-security-policy", "")
    directives = {d.strip().split(" ")[0]: d.strip() for d in csp.split(";") if d.strip()}
    assert "frame-ancestors 'none'" in csp and "object-src 'none'" in csp and "base-uri 'none'" in csp, csp
    assert directives.get("script-src") == "script-src 'self'", csp  # no inline script, no eval
    assert "unsafe-inline" not in csp and "unsafe-eval" not in csp, csp
    assert response.headers.get("cache-control") == "no-store"
    assert response.headers.get("x-content-type-options") == "nosniff"
    assert response.headers.get("referrer-policy") == "no-referrer"
    assert "set-cookie" not in response.headers  # pages set no cookie (only the sign-in does: SameSite=Strict)


@pytest.mark.parametrize("agent", ["http://evil.example:8080", "http://127.0.0.1.evil.example:80", "https://127.0.0.1:1",
                                   "http://user@127.0.0.1:9", "javascript:alert(1)", "http://[::1]:9/x"])
def test_pages_ignore_an_agent_that_is_not_on_this_machine(module_web: SecWeb, agent: str) -> None:
    response = module_web.client.get("/kiosk", params={"agent": agent})
    assert response.status_code == 200
    assert "evil" not in response.headers["content-security-policy"]
    assert agent not in response.text


def test_api_is_not_open_to_other_origins_and_ignores_cookies(module_web: SecWeb) -> None:
    web = module_web
    kiosk = web.terminal("kiosk")
    response = web.client.options(
        f"{API}/procedures",
        headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "POST",
                 "Access-Control-Request-Headers": "authorization,content-type"},
    )
    assert "access-control-allow-origin" not in response.headers
    response = web.client.get(f"{API}/terminals/procedure", headers={"Origin": "https://evil.example", **web.auth(
        kiosk)})
    assert "access-control-allow-origin" not in response.headers
    # a token in a cookie (what a CSRF would ride on) is not a credential
    web.client.cookies.set("token", kiosk._token or "")
    try:
        assert web.client.get(f"{API}/terminals/procedure").status_code == 401
    finally:
        web.client.cookies.clear()


def test_api_answers_are_not_cacheable(module_web: SecWeb) -> None:
    web = module_web
    kiosk = web.terminal("kiosk")
    nonce = web.client.post(f"{API}/terminals/challenge", json={"terminal_id": kiosk.terminal_id}).json()["nonce"]
    raw = base64.urlsafe_b64decode(nonce + "=" * (-len(nonce) % 4))
    session = web.client.post(f"{API}/terminals/session", json={
        "terminal_id": kiosk.terminal_id, "nonce": nonce, "signature": _b64(kiosk._key.sign(auth_message(
            kiosk.terminal_id, raw)))})
    audit = web.client.get(f"{API}/admin/audit", headers=web.admin)
    for response in (session, audit):
        assert response.status_code == 200
        assert "no-store" in response.headers.get("cache-control", ""), response.request.url
        assert response.headers.get("pragma") == "no-cache"
    # errors too (a 401 and a 413 from the body cap)
    for response in (web.client.get(f"{API}/terminals/procedure"),
                     web.client.post(f"{API}/terminals/challenge", content=b"x" * 3_000_000)):
        assert response.status_code in (401, 413) and response.headers.get("cache-control") == "no-store"


# ---- crashes found by fuzzing (S-7) ----------------------------------------------------------------------------
def test_non_ascii_face_frame_is_a_4xx(module_web: SecWeb) -> None:
    web = module_web
    issued = web.world.issue_card()
    kiosk = web.terminal("kiosk")
    pid = kiosk.start("renewal", "certificates", issued.card_id)["id"]
    response = kiosk.http.post(f"{API}/procedures/{pid}/face", json={"frames": ["画像"]}, headers=web.auth(kiosk))
    assert 400 <= response.status_code < 500, response.text


def test_admin_audit_with_a_huge_offset_is_a_4xx(module_web: SecWeb) -> None:
    web = module_web
    for after in (10**30, 2**63, -(10**30)):
        response = web.client.get(f"{API}/admin/audit", params={"after": after}, headers=web.admin)
        assert response.status_code == 422, response.text
        assert response.json()["error"]["code"]
    response = web.client.get(f"{API}/admin/audit/{2**64}/proof", headers=web.admin)
    assert response.status_code == 422, response.text


def test_counter_issuance_with_a_bad_photo_is_a_4xx(module_web: SecWeb) -> None:
    """A photo that is not base64 (non-ASCII, stray characters, bad padding) is a 422 with the JSON error."""
    web = module_web
    counter = web.terminal("counter")
    headers = web.staff_login(counter)
    body = {"resident_id": "r" + "0" * 15, "card_id": "0" * 15, "diversification_data": "00" * 10,
            "card_expiry": "2035-01-01", "documents": ["passport"], "contacts": []}
    for photo in ("写真", "@@@@", "QUJ", "data:image/jpeg;base64,!!"):
        response = counter.http.post(f"{API}/counter/issuance", json={**body, "photo": photo}, headers=headers)
        assert 400 <= response.status_code < 500, (photo, response.text)
        assert response.json()["error"]["code"], response.text


# ---- the OpenAPI document --------------------------------------------------------------------------------------
def test_openapi_documents_the_error_answers(module_web: SecWeb) -> None:
    document = module_web.client.get(f"{API}/openapi.json").json()
    operation = document["paths"]["/api/v1/procedures/{procedure_id}"]["get"]
    assert {"401", "404"} <= set(operation["responses"]), sorted(operation["responses"])
    start = document["paths"]["/api/v1/procedures"]["post"]
    assert {"401", "403", "422", "429"} <= set(start["responses"]), sorted(start["responses"])
    assert "409" not in start["responses"]  # a start takes no card: no card_busy (S-5); counter issuance still may
    assert "409" in document["paths"]["/api/v1/counter/issuance"]["post"]["responses"]
