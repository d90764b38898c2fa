"""Rate limits over HTTP: the client address behind a trusted proxy; starts without the card neither lock a card out
nor tell it from an unknown one (S-5); a locked-out card's procedure ends with ``locked_out`` at its card proof;
address lockouts; counter staff lifting a card's lockout through the API (its online loss reports' lockout too)."""

from __future__ import annotations

import secrets
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from procedure_world import PINS, IssuedCard, make_world
from web_world import Web

from jpki_remote.procedures.ports import FaceResult
from jpki_remote.proofing.limits import DEFAULT_RULES, LOSS_REPORT_RULES, AttemptKind, Scope
from jpki_remote.registry import service as registry
from jpki_remote.store import Database
from jpki_remote.terminal.agent import AgentCore, ScriptedPinPad, drive
from jpki_remote.web.app import create_app
from jpki_remote.web.client_address import client_address, parse_trusted

API = "/api/v1"
PROXY = "10.0.0.1"
CARD_STARTS = next(r.limit for r in DEFAULT_RULES if r.kind is AttemptKind.START and r.scope is Scope.CARD)
LOSS_FACES = next(r.limit for r in LOSS_REPORT_RULES if r.kind is AttemptKind.FACE)
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


def _start(web: Web, server, card_id: str, address: str, kind: str = "renewal", target: str = "certificates"):
    return web.client.post(
        f"{API}/procedures",
        headers=_auth(server, address),
        json={"kind": kind, "target": target, "card_id": card_id},
    )


def _proven(web: Web, server, issued: IssuedCard, address: str) -> dict:
    """A revocation at the kiosk whose card proves possession (auth PIN + signature): the card is taken there."""
    response = _start(web, server, issued.card_id, address, "revocation", "signature")
    assert response.status_code == 201, response.text
    core = AgentCore(issued.card.transmit, ScriptedPinPad(pins={"auth_pin": PINS["auth_pin"]}))
    reply = response.json()
    return drive(lambda body: server.exchange(reply["id"], body), core, reply)


def _stable(body: dict) -> dict:
    return {k: v for k, v in body.items() if k not in ("id", "expires_at")}


def test_starts_without_the_card_lock_nothing_out_and_look_alike(proxied: Web, tmp_path: Path) -> None:
    issued = proxied.world.issue_card()
    kiosk = proxied.terminal("kiosk", tmp_path)
    unknown = "".join(secrets.choice("0123456789") for _ in range(15))
    for i in range(CARD_STARTS + 2):  # more than the card's daily start limit, each from another address
        answers = []
        for n, card_id in enumerate((issued.card_id, unknown)):
            response = _start(proxied, kiosk, card_id, f"198.51.100.{2 * i + n + 1}")
            assert response.status_code == 201, response.text
            answers.append(_stable(response.json()))
            proxied.client.post(f"{API}/procedures/{response.json()['id']}/cancel", headers=_auth(kiosk))
        assert answers[0] == answers[1]
    reply = _proven(proxied, kiosk, issued, "198.51.100.99")  # the holder is not locked out
    assert reply["status"] == "active" and reply["state"] == "proofs", reply["error"]


def test_a_locked_out_card_ends_at_its_proof_and_staff_lift_it(proxied: Web, tmp_path: Path) -> None:
    issued = proxied.world.issue_card()
    kiosk = proxied.terminal("kiosk", tmp_path)
    for _ in range(CARD_STARTS):  # the card's starts are counted once it has proved possession
        reply = _proven(proxied, kiosk, issued, "198.51.100.10")
        assert reply["status"] == "active" and reply["state"] == "proofs", reply["error"]
        proxied.client.post(f"{API}/procedures/{reply['id']}/cancel", headers=_auth(kiosk))
    refused = _proven(proxied, kiosk, issued, "198.51.100.10")
    assert refused["status"] == "failed" and refused["error"]["code"] == "locked_out", refused
    assert "窓口へお越しください" in refused["error"]["ja"] and "counter" in refused["error"]["en"]

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
    reply = _proven(proxied, kiosk, issued, "198.51.100.10")
    assert reply["status"] == "active" and reply["state"] == "proofs", reply["error"]
    # an unknown card is not a card of this municipality: staff cannot lift it (and learn nothing new)
    unknown = "".join(secrets.choice("0123456789") for _ in range(15))
    missing = proxied.client.get(f"{API}/registry/cards/{unknown}/limits", headers=staff)
    assert missing.status_code == 404
    lifted_events = [e for e in proxied.world.audit.events(limit=500) if e.event_type == "limits.lockout_lifted"]
    assert len(lifted_events) == 1 and lifted_events[0].actor == "staff:s1"
    assert "driver_licence" in str(lifted_events[0].detail)


class _OtherFace:
    """A face port that never matches (someone else in front of the camera)."""

    model = "stub-face-v1"

    def new_challenge(self) -> dict:
        return {"steps": ["blink"]}

    def encode_reference(self, image: bytes) -> None:
        return None

    def verify(self, frames, **_: object) -> FaceResult:
        return FaceResult(False, True, "no_match", distance=0.9)


def test_staff_unlock_lifts_the_cards_loss_report_lockout_too(proxied: Web, tmp_path: Path) -> None:
    """A stranger who knows the card number exhausts the card's online loss reports (S-17): staff see that lockout
    with the card's limits, and the one audited unlock lifts it with them; the holder can report the loss online."""
    world = proxied.world
    world.ports.face = _OtherFace()
    issued = world.issue_card()
    with world.db.session() as s:
        registry.enrol_face(s, issued.card_id, [0.1] * 128, _OtherFace.model)
    engine = world.engine()
    reply = engine.start(kind="loss_report", target="card", channel="online", card_id=issued.card_id,
                         terminal_id="t-x", address="198.51.100.66")  # fmt: skip
    for _ in range(LOSS_FACES + 1):
        reply = engine.submit_face(reply["id"], "t-x", [b"frame"], address="198.51.100.66")
    assert reply["status"] == "failed" and reply["error"]["code"] == "locked_out"

    counter = proxied.terminal("counter", tmp_path, "c")
    staff = {**_auth(counter), **proxied.staff_login("s1")}
    status = proxied.client.get(f"{API}/registry/cards/{issued.card_id}/limits", headers=staff).json()
    assert status["locked"] and [lock["reason"] for lock in status["lockouts"]] == ["loss_report_face_attempts"]
    lifted = proxied.client.post(
        f"{API}/registry/cards/{issued.card_id}/unlock", headers=staff, json={"documents": ["passport"]}
    )
    assert lifted.status_code == 200, lifted.text
    assert [lock["reason"] for lock in lifted.json()["lifted"]] == ["loss_report_face_attempts"]
    assert world.ports.limits.for_loss_reports().status(card_id=issued.card_id) == []
    status = proxied.client.get(f"{API}/registry/cards/{issued.card_id}/limits", headers=staff).json()
    assert not status["locked"] and status["lockouts"] == []
    events = [e for e in world.audit.events(limit=500) if e.event_type == "limits.lockout_lifted"]
    assert [(e.outcome, e.detail.get("limits"), e.detail.get("reason")) for e in events] == [
        ("info", None, None),  # the card's ordinary limits: nothing was in force
        ("success", "loss_report", "loss_report_face_attempts"),
    ]
    assert all(e.actor == "staff:s1" and "passport" in e.detail["note"] for e in events)
    # the loss-report counts were reset too: a new online loss report has every face attempt again
    again = engine.start(kind="loss_report", target="card", channel="online", card_id=issued.card_id,
                         terminal_id="t-y", address="198.51.100.67")  # fmt: skip
    again = engine.submit_face(again["id"], "t-y", [b"frame"], address="198.51.100.67")
    assert again["status"] == "active" and again["face_result"]["attempts_left"] == LOSS_FACES - 1


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
