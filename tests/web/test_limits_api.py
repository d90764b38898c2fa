"""Rate limits over HTTP: the client address behind a trusted proxy, the 429 ``locked_out`` answer (the same for an
unknown card), address lockouts, and counter staff lifting a card's lockout through the API."""

from __future__ import annotations

import secrets
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from procedure_world import make_world
from web_world import Web

from jpki_remote.proofing.limits import DEFAULT_RULES, AttemptKind, Scope
from jpki_remote.store import Database
from jpki_remote.web.app import create_app
from jpki_remote.web.client_address import client_address, parse_trusted

API = "/api/v1"
PROXY = "10.0.0.1"
CARD_STARTS = next(r.limit for r in DEFAULT_RULES if r.kind is AttemptKind.START and r.scope is Scope.CARD)
ADDRESS_STARTS = next(r.limit for r in DEFAULT_RULES if r.kind is AttemptKind.START and r.scope is Scope.ADDRESS)


@pytest.fixture
def proxied(sqlite_database: Database, tmp_path: Path, faces_dir: Path) -> Web:
    """The app behind a reverse proxy at 10.0.0.1 (trusted); holders' addresses arrive in X-Forwarded-For."""
    world = make_world(sqlite_database, tmp_path, faces_dir)
    settings = world.settings.with_overrides(admin_token="admin-" + "y" * 30, trusted_proxies=f"{PROXY},10.1.0.0/16")
    app = create_app(settings, db=world.db, ports=world.ports, mount_status=False)
    return Web(world, TestClient(app, raise_server_exceptions=False, client=(PROXY, 40000)), settings.admin_token)


def _auth(server, address: str | None = None) -> dict[str, str]:
    headers = {"Authorization": f"Bearer {server._token}"}
    if address:
        headers["X-Forwarded-For"] = f"{address}, 10.1.2.3"  # the client, then an inner trusted proxy
    return headers


def _start(web: Web, server, card_id: str, address: str):
    return web.client.post(
        f"{API}/procedures",
        headers=_auth(server, address),
        json={"kind": "renewal", "target": "certificates", "card_id": card_id},
    )


def _starts_until_refused(web: Web, server, card_id: str, address: str) -> tuple[int, dict]:
    for count in range(1, 100):
        response = _start(web, server, card_id, address)
        if response.status_code != 201:
            assert response.status_code == 429, response.text
            return count, response.json()
        cancel = web.client.post(f"{API}/procedures/{response.json()['id']}/cancel", headers=_auth(server))
        assert cancel.status_code == 200
    raise AssertionError("never refused")


def test_card_lockout_is_the_same_for_an_unknown_card_and_staff_lift_it(proxied: Web, tmp_path: Path) -> None:
    issued = proxied.world.issue_card()
    kiosk = proxied.terminal("kiosk", tmp_path)
    unknown = "".join(secrets.choice("0123456789") for _ in range(15))
    known_count, known = _starts_until_refused(proxied, kiosk, issued.card_id, "198.51.100.10")
    unknown_count, other = _starts_until_refused(proxied, kiosk, unknown, "198.51.100.11")
    assert known_count == unknown_count == CARD_STARTS + 1
    assert known == other
    assert known["error"]["code"] == "locked_out" and "窓口へお越しください" in known["error"]["message_ja"]
    assert "counter" in known["error"]["message_en"]

    counter = proxied.terminal("counter", tmp_path, "c")
    staff = {**_auth(counter), **proxied.staff_login("s1")}  # the staff id comes from the sign-in, not the body
    status = proxied.client.get(f"{API}/registry/cards/{issued.card_id}/limits", headers=staff).json()
    assert status["locked"] and status["lockouts"][0]["scope"] == "card"
    # a kiosk may not lift anything; staff must name the documents they checked
    assert (
        proxied.client.post(
            f"{API}/registry/cards/{issued.card_id}/unlock",
            headers=_auth(kiosk),
            json={"staff_id": "s1", "documents": ["passport"]},
        ).status_code
        == 403
    )
    refused = proxied.client.post(
        f"{API}/registry/cards/{issued.card_id}/unlock", headers=staff, json={"staff_id": "s1"}
    )
    assert refused.status_code == 422
    lifted = proxied.client.post(
        f"{API}/registry/cards/{issued.card_id}/unlock",
        headers=staff,
        json={"documents": ["driver_licence"]},
    )
    assert lifted.status_code == 200 and lifted.json()["lifted"][0]["reason"] == "card_procedure_starts"
    assert _start(proxied, kiosk, issued.card_id, "198.51.100.10").status_code == 201
    # the unknown card is not a card of this municipality: staff cannot lift it (and learn nothing new)
    missing = proxied.client.get(f"{API}/registry/cards/{unknown}/limits", headers=staff)
    assert missing.status_code == 404
    lifted_events = [e for e in proxied.world.audit.events(limit=500) if e.event_type == "limits.lockout_lifted"]
    assert len(lifted_events) == 1 and lifted_events[0].actor == "staff:s1"
    assert "driver_licence" in str(lifted_events[0].detail)


def test_client_address_lockout_from_behind_the_proxy(proxied: Web, tmp_path: Path) -> None:
    kiosk = proxied.terminal("app", tmp_path)
    cards = ["".join(secrets.choice("0123456789") for _ in range(15)) for _ in range(ADDRESS_STARTS + 1)]
    answers = [_start(proxied, kiosk, card, "203.0.113.50").status_code for card in cards]
    assert answers == [201] * ADDRESS_STARTS + [429]
    refused = _start(proxied, kiosk, cards[0], "203.0.113.50").json()
    assert refused["error"]["code"] == "rate_limited"
    # another holder behind the same proxy is a different address: not affected
    assert _start(proxied, kiosk, cards[-1], "203.0.113.51").status_code == 201


def test_client_address_rules() -> None:
    trusted = "10.0.0.1, 10.1.0.0/16"
    assert client_address("192.0.2.5", "1.2.3.4", "") == "192.0.2.5"  # no trusted proxy: the header is ignored
    assert client_address("192.0.2.5", "1.2.3.4", trusted) == "192.0.2.5"  # peer not trusted: ignored
    assert client_address("10.0.0.1", "1.2.3.4, 10.1.9.9", trusted) == "1.2.3.4"
    assert client_address("10.0.0.1", "6.6.6.6, 1.2.3.4", trusted) == "1.2.3.4"  # a forged left part is ignored
    assert client_address("10.0.0.1", "garbage, 1.2.3.4", trusted) == "1.2.3.4"
    assert client_address("10.0.0.1", "1.2.3.4, garbage", trusted) == "10.0.0.1"  # stops at the last trusted hop
    assert client_address("10.0.0.1", None, trusted) == "10.0.0.1"
    assert client_address("10.0.0.1", "[2001:db8::1]", trusted) == "2001:db8::1"
    assert client_address(None, "1.2.3.4", trusted) is None
    with pytest.raises(ValueError, match="not an IP"):
        parse_trusted("10.0.0.1, proxy.example")
