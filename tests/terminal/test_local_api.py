"""The agent's loopback API answers only its own page: token, Origin (CORS), Host (DNS rebinding), loopback bind;
PIN answers checked against the open request and never echoed; cards put on and taken off the virtual reader."""

from __future__ import annotations

import threading
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from agent_world import API, AgentWorld

from jpki_remote.terminal.launch import parse_listen
from jpki_remote.terminal.local_api import TOKEN_HEADER, LocalServer, origin_of
from jpki_remote.terminal.relay import wait_for


def test_token_origin_and_host_are_required(agent_world: AgentWorld) -> None:
    agent = agent_world.agent("kiosk", "k-guard")
    raw = agent_world.client(agent.base_url)
    assert raw.get("/v1/status").status_code == 401
    assert raw.get("/v1/status", headers={TOKEN_HEADER: "x" * 43}).status_code == 401
    good = {TOKEN_HEADER: agent.token}
    assert raw.get("/v1/status", headers=good).status_code == 200
    # another site's script: refused whatever it sends, and no CORS grant that would let it read anything
    evil = raw.get("/v1/status", headers={**good, "Origin": "https://evil.example"})
    assert evil.status_code == 403 and "access-control-allow-origin" not in evil.headers
    for method in ("POST", "GET"):
        pre = raw.options(
            "/v1/pin",
            headers={"Origin": "https://evil.example", "Access-Control-Request-Method": method},
        )
        assert pre.status_code == 403 and "access-control-allow-origin" not in pre.headers
    # the server's own page: preflight granted (also for Private Network Access), answers readable
    origin = origin_of(agent_world.url)
    pre = raw.options(
        "/v1/pin",
        headers={
            "Origin": origin,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": f"content-type,{TOKEN_HEADER.lower()}",
            "Access-Control-Request-Private-Network": "true",
        },
    )
    assert pre.status_code == 204 and pre.headers["access-control-allow-origin"] == origin
    assert TOKEN_HEADER in pre.headers["access-control-allow-headers"]
    assert pre.headers["access-control-allow-private-network"] == "true"
    ok = raw.get("/v1/status", headers={**good, "Origin": origin})
    assert ok.status_code == 200 and ok.headers["access-control-allow-origin"] == origin
    assert ok.headers["cache-control"] == "no-store"
    # DNS rebinding: a foreign name resolving to 127.0.0.1 is refused even with the token
    rebound = raw.get("/v1/status", headers={**good, "Host": f"evil.example:{agent.server.port}"})
    assert rebound.status_code == 403
    assert raw.get("/v1/status", headers={**good, "Host": f"localhost:{agent.server.port}"}).status_code == 200


def test_loopback_only() -> None:
    assert parse_listen("127.0.0.1:8765") == ("127.0.0.1", 8765)
    assert parse_listen("[::1]:0") == ("::1", 0)
    for bad in ("0.0.0.0:8765", "192.168.1.5:8765", "example.org:80", "127.0.0.1", "127.0.0.1:http"):
        with pytest.raises(ValueError):
            parse_listen(bad)
    with pytest.raises(ValueError):
        LocalServer(object(), "0.0.0.0", 0)  # type: ignore[arg-type]


def test_pin_answers_fit_the_open_request_and_are_never_echoed(agent_world: AgentWorld) -> None:
    agent = agent_world.agent("kiosk", "k-pin")
    page = agent_world.page(agent)
    pad = agent.service.pinpad
    assert page.agent.post("/v1/pin", json={"kind": "auth_pin", "value": "1234", "new": False}).status_code == 409

    got: list[str | None] = []
    asking = threading.Thread(target=lambda: got.append(pad.pin("auth_pin")))
    asking.start()
    assert wait_for(lambda: page.status()["pin_request"] is not None, 5)
    request = page.status()["pin_request"]
    assert request["kind"] == "auth_pin" and request["new"] is False and request["attempt"] == 0
    wrong_kind = page.agent.post("/v1/pin", json={"kind": "sign_password", "value": "ABC123", "new": False})
    assert wrong_kind.status_code == 409 and wrong_kind.json()["error"]["code"] == "wrong_request"
    assert page.agent.post("/v1/pin", json={"kind": "auth_pin", "value": "1234", "new": True}).status_code == 409
    bad = page.agent.post("/v1/pin", json={"kind": "auth_pin", "value": "98x7", "new": False})
    assert bad.status_code == 422 and "98x7" not in bad.text
    for junk in (b"{", b"[]", b'{"kind": "auth_pin", "value": "1234", "extra": 1}', b"x" * 5000):
        response = page.agent.post("/v1/pin", content=junk, headers={"Content-Type": "application/json"})
        assert response.status_code == 422 and "1234" not in response.text
    assert page.agent.post("/v1/pin", json={"kind": "auth_pin", "value": "2580", "new": False}).status_code == 204
    asking.join(5)
    assert got == ["2580"] and page.status()["pin_request"] is None and not pad.holding


def test_cancel_wakes_the_relay_and_drops_what_is_held(agent_world: AgentWorld) -> None:
    agent = agent_world.agent("kiosk", "k-cancel")
    page = agent_world.page(agent)
    pad = agent.service.pinpad
    got: list[object] = []
    asking = threading.Thread(target=lambda: got.append(pad.retry({"code": "code_b_incorrect"})))
    asking.start()
    assert wait_for(lambda: page.status()["pin_request"] is not None, 5)
    assert page.status()["pin_request"]["retry"] is True
    assert page.agent.post("/v1/cancel", json={}).status_code == 204
    asking.join(5)
    assert got == [False] and page.status()["pin_request"] is None and not pad.holding


def test_cards_on_and_off_the_virtual_reader(agent_world: AgentWorld) -> None:
    issued = agent_world.world.issue_card()
    card_id = agent_world.put_in_directory(issued.card)
    agent = agent_world.agent("app", "pc-1")
    page = agent_world.page(agent)
    assert page.status()["terminal_kind"] == "app"
    assert page.agent.post("/v1/card", json={"card_id": "999999999999999"}).status_code == 404
    assert page.agent.post("/v1/card", json={"card_id": "../etc/passwd"}).status_code == 404
    assert page.agent.post("/v1/card", json={"card_id": 5}).status_code == 422
    assert page.agent.post("/v1/card", json={"card_id": card_id}).status_code == 204
    assert page.status()["card_id"] == card_id
    assert page.agent.delete("/v1/card").status_code == 204
    status = page.status()
    assert status["card_present"] is False and status["card_id"] is None and status["card"] is None
    assert page.agent.post("/v1/procedures/not a valid id/drive", json={}).status_code in (404, 422)


def test_the_launcher_opens_the_page_with_a_fresh_link(agent_world: AgentWorld) -> None:
    agent = agent_world.agent("kiosk", "k-launch")
    raw = agent_world.client(agent.base_url)
    for _ in range(2):
        answer = raw.get("/")
        assert answer.status_code == 303
        target = urlsplit(answer.headers["location"])
        assert f"{target.scheme}://{target.netloc}" == agent_world.url and target.path == "/kiosk"
        assert parse_qs(target.query)["agent"] == [agent.base_url]
        fragment = parse_qs(target.fragment)
        assert fragment["agent_token"] == [agent.token]
        session = httpx.post(f"{agent_world.url}{API}/terminals/browser-session", json={"code": fragment["link"][0]})
        assert session.status_code == 200 and session.json()["role"] == "browser"
    assert raw.get("/", headers={"Host": "evil.example"}).status_code == 403
    page = httpx.get(answer.headers["location"].split("#")[0])
    assert page.status_code == 200 and agent.base_url in page.headers["content-security-policy"]


def test_the_page_gets_a_fresh_link_code_from_the_agent(agent_world: AgentWorld) -> None:
    """After a reload or a wipe the page has no session (it stores none, finding S-15): it asks its agent for a new
    link code — with the agent token, from its own origin only — and redeems it for a session on this terminal."""
    agent = agent_world.agent("kiosk", "k-relink")
    raw = agent_world.client(agent.base_url)
    origin = {"Origin": origin_of(agent_world.url)}
    assert raw.post("/v1/browser-link", json={}, headers=origin).status_code == 401
    evil = {TOKEN_HEADER: agent.token, "Origin": "https://evil.example"}
    assert raw.post("/v1/browser-link", json={}, headers=evil).status_code == 403
    codes = []
    for _ in range(2):
        answer = raw.post("/v1/browser-link", json={}, headers={TOKEN_HEADER: agent.token, **origin})
        assert answer.status_code == 200 and answer.headers["access-control-allow-origin"] == origin["Origin"]
        assert answer.headers["cache-control"] == "no-store"
        codes.append(answer.json()["code"])
    assert codes[0] != codes[1]
    for code in codes:
        session = httpx.post(f"{agent_world.url}{API}/terminals/browser-session", json={"code": code})
        assert session.status_code == 200 and session.json()["role"] == "browser"
        me = httpx.get(
            f"{agent_world.url}{API}/terminals/me", headers={"Authorization": f"Bearer {session.json()['token']}"}
        )
        assert me.json()["terminal_id"] == agent.service.identity.terminal_id
    again = httpx.post(f"{agent_world.url}{API}/terminals/browser-session", json={"code": codes[0]})
    assert again.status_code == 401  # one-time
