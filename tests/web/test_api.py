"""The JSON API: a renewal over HTTP with the real agent logic, authentication and binding, enumeration, garbage."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
from procedure_world import PINS, capture_frames, card_photo, code_from_outbox, enrol_photo
from web_world import Web

from jpki_remote.ca.models import CertificateState
from jpki_remote.terminal.agent import AgentCore, ScriptedPinPad, drive
from jpki_remote.terminal.client import ServerError

API = "/api/v1"


def _auth(server) -> dict[str, str]:
    return {"Authorization": f"Bearer {server._token}"}


def test_counter_renewal_over_http(web: Web, tmp_path: Path) -> None:
    issued = web.world.issue_card()
    counter = web.terminal("counter", tmp_path)
    staff = {**_auth(counter), **web.staff_login("staff-1")}
    response = web.client.post(
        f"{API}/counter/procedures",
        headers=staff,
        json={"kind": "renewal", "target": "certificates", "card_id": issued.card_id},
    )
    assert response.status_code == 201, response.text
    reply = response.json()
    core = AgentCore(issued.card.transmit, ScriptedPinPad(pins=dict(PINS)))
    reply = drive(lambda body: counter.exchange(reply["id"], body), core, reply)
    assert reply["waiting_for"] == "staff_check"
    response = web.client.post(
        f"{API}/counter/procedures/{reply['id']}/staff-check",
        headers=staff,
        json={"documents": ["driver_licence"]},
    )
    reply = drive(lambda body: counter.exchange(reply["id"], body), core, response.json())
    assert reply["status"] == "completed"
    assert web.world.ca.status("authentication", issued.auth_serial).state is CertificateState.REVOKED
    status = web.client.get(f"{API}/procedures/{reply['id']}", headers=_auth(counter)).json()
    assert status["status"] == "completed"


@pytest.mark.slow
def test_online_loss_report_over_http(web: Web, tmp_path: Path, faces_dir: Path) -> None:
    """紛失届 from the holder's app, without the card: face (enrolled photo, liveness), then the security code."""
    import base64

    from jpki_remote.procedures.ports import ProofingFace
    from jpki_remote.registry import service as registry
    from jpki_remote.registry.models import CardState

    web.world.ports.face = ProofingFace(web.world.settings)
    web.world.photo = card_photo(faces_dir / "obama" / "3.jpg")
    issued = web.world.issue_card()
    enrol_photo(web.world, issued.card_id, faces_dir / "obama" / "3.jpg")
    app = web.terminal("app", tmp_path)
    body = {"kind": "loss_report", "target": "card", "card_id": issued.card_id}
    response = web.client.post(f"{API}/procedures", headers=_auth(app), json=body)
    assert response.status_code == 201, response.text
    reply = response.json()
    assert reply["waiting_for"] == "face_enrolled"
    url = f"{API}/procedures/{reply['id']}"
    frames = capture_frames(faces_dir / "obama" / "1.jpg", reply["face_challenge"]["steps"])
    response = web.client.post(
        f"{url}/face", headers=_auth(app), json={"frames": [base64.b64encode(f).decode() for f in frames]}
    )
    assert response.status_code == 200 and response.json()["waiting_for"] == "security_code", response.text
    response = web.client.post(f"{url}/code/request", headers=_auth(app))
    assert response.status_code == 200 and response.json()["code_sent_to"], response.text
    response = web.client.post(f"{url}/code/verify", headers=_auth(app), json={"code": code_from_outbox(web.world)})
    assert response.status_code == 200 and response.json()["status"] == "completed", response.text
    for kind, serial in (("signature", issued.sign_serial), ("authentication", issued.auth_serial)):
        assert web.world.ca.status(kind, serial).reason_name == "keyCompromise"
    with web.world.db.session() as s:
        assert registry.get_card(s, issued.card_id).state is CardState.LOST


def test_pin_reset_new_pin_route(web: Web, tmp_path: Path) -> None:
    issued = web.world.issue_card()
    counter = web.terminal("counter", tmp_path)
    staff = {**_auth(counter), **web.staff_login("s1")}
    reply = web.client.post(
        f"{API}/counter/procedures",
        headers=staff,
        json={"kind": "pin_reset", "target": "text_pin", "card_id": issued.card_id},
    ).json()
    core = AgentCore(issued.card.transmit, ScriptedPinPad(new_pins={"text_pin": "4321"}))
    reply = drive(lambda body: counter.exchange(reply["id"], body), core, reply)
    reply = web.client.post(
        f"{API}/counter/procedures/{reply['id']}/staff-check",
        headers=staff,
        json={"documents": ["passport"]},
    ).json()
    reply = drive(lambda body: counter.exchange(reply["id"], body), core, reply)
    assert reply["status"] == "completed"


def test_terminal_binding_and_roles(web: Web, tmp_path: Path) -> None:
    issued = web.world.issue_card()
    kiosk = web.terminal("kiosk", tmp_path, "k1")
    other = web.terminal("kiosk", tmp_path, "k2")
    reply = kiosk.start("renewal", "certificates", issued.card_id)
    # another terminal sees nothing (same answer as for an unknown id)
    for path in (f"/procedures/{reply['id']}", "/procedures/ffffffffffffffffffffffffffffffff"):
        with pytest.raises(ServerError) as err:
            other._call("GET", path)
        assert err.value.status == 404
    # a browser session bound to the kiosk may read and post proofs, but not drive the card
    code = kiosk.browser_link()
    browser = web.client.post(f"{API}/terminals/browser-session", json={"code": code}).json()
    headers = {"Authorization": f"Bearer {browser['token']}"}
    assert web.client.get(f"{API}/procedures/{reply['id']}", headers=headers).status_code == 200
    assert (
        web.client.post(f"{API}/procedures/{reply['id']}/exchange", headers=headers, json={"responses": []}).status_code
        == 403
    )
    assert web.client.post(f"{API}/terminals/browser-session", json={"code": code}).status_code == 401  # one use
    # a kiosk cannot use the counter routes; the channel follows the terminal (no kiosk issuance)
    assert (
        web.client.post(
            f"{API}/counter/procedures",
            headers=_auth(kiosk),
            json={"kind": "renewal", "target": "certificates", "card_id": issued.card_id, "staff_id": "x"},
        ).status_code
        == 403
    )


def test_bad_terminal_signature_is_refused(web: Web, tmp_path: Path) -> None:
    kiosk = web.terminal("kiosk", tmp_path)
    nonce = web.client.post(f"{API}/terminals/challenge", json={"terminal_id": kiosk.terminal_id}).json()["nonce"]
    response = web.client.post(
        f"{API}/terminals/session", json={"terminal_id": kiosk.terminal_id, "nonce": nonce, "signature": "A" * 86}
    )
    assert response.status_code == 401 and response.json()["error"]["code"] == "terminal_auth_failed"
    unknown = web.client.post(f"{API}/terminals/challenge", json={"terminal_id": "tnosuchterminal"})
    assert unknown.status_code == 200  # a challenge is issued for any id


def test_start_does_not_reveal_whether_a_card_exists(web: Web, tmp_path: Path) -> None:
    issued = web.world.issue_card()
    kiosk = web.terminal("kiosk", tmp_path)
    known = web.client.post(
        f"{API}/procedures",
        headers=_auth(kiosk),
        json={"kind": "pin_change", "target": "auth_pin", "card_id": issued.card_id},
    )
    unknown = web.client.post(
        f"{API}/procedures",
        headers=_auth(kiosk),
        json={"kind": "pin_change", "target": "auth_pin", "card_id": "999999999999999"},
    )
    assert known.status_code == unknown.status_code == 201
    strip = {"id", "expires_at"}
    a = {k: v for k, v in known.json().items() if k not in strip}
    b = {k: v for k, v in unknown.json().items() if k not in strip}
    assert a == b


def test_admin_routes_need_the_token(web: Web) -> None:
    assert web.client.get(f"{API}/admin/policy").status_code == 401
    assert web.client.get(f"{API}/admin/policy", headers={"Authorization": "Bearer wrong"}).status_code == 401
    policy = web.client.get(f"{API}/admin/policy", headers={"Authorization": f"Bearer {web.admin_token}"}).json()
    assert len(policy["rules"]) == 42 and policy["renewal_window"]["months_before_expiry"] == 3
    audit = web.client.get(f"{API}/admin/audit", headers={"Authorization": f"Bearer {web.admin_token}"})
    assert audit.status_code == 200


def test_openapi_document(web: Web) -> None:
    document = web.client.get(f"{API}/openapi.json").json()
    paths = set(document["paths"])
    for path in (
        "/api/v1/procedures",
        "/api/v1/procedures/{procedure_id}/exchange",
        "/api/v1/procedures/{procedure_id}/face",
        "/api/v1/terminals/session",
        "/api/v1/admin/policy",
    ):
        assert path in paths


def test_garbage_gets_clear_4xx_never_500(web: Web, tmp_path: Path) -> None:
    kiosk = web.terminal("kiosk", tmp_path)
    headers = _auth(kiosk)
    pid = kiosk.start("renewal", "certificates", "123456789012345")["id"]
    cases = [
        ("POST", "/procedures", b"{not json", 422),
        ("POST", "/procedures", json.dumps({"kind": 5, "target": [], "card_id": None}).encode(), 422),
        (
            "POST",
            "/procedures",
            json.dumps({"kind": "renewal", "target": "x", "card_id": "1234567890", "extra": 1}).encode(),
            422,
        ),
        (
            "POST",
            "/procedures",
            json.dumps({"kind": "renewal", "target": "bogus", "card_id": "12345678"}).encode(),
            422,
        ),
        (
            "POST",
            "/procedures",
            json.dumps({"kind": "renewal", "target": "certificates", "card_id": "bad id!"}).encode(),
            422,
        ),
        ("POST", f"/procedures/{pid}/exchange", json.dumps({"seq": "1", "responses": ["zz"]}).encode(), 422),
        ("POST", f"/procedures/{pid}/exchange", json.dumps({"seq": 99, "responses": ["9000"]}).encode(), 409),
        ("POST", f"/procedures/{pid}/exchange", json.dumps({"responses": [], "event": "boom"}).encode(), 422),
        ("POST", f"/procedures/{pid}/face", json.dumps({"frames": []}).encode(), 422),
        ("POST", f"/procedures/{pid}/code/verify", json.dumps({"code": 123456}).encode(), 422),
        ("POST", f"/procedures/{'x' * 40}/exchange", json.dumps({"responses": []}).encode(), 404),
        ("GET", f"/procedures/{'0' * 32}", b"", 404),
        ("POST", "/terminals/session", json.dumps({"terminal_id": "t", "nonce": "!!", "signature": "$"}).encode(), 401),
        ("POST", "/counter/registry-events", b"[]", 403),
        ("PUT", "/procedures", b"{}", 405),
        ("POST", "/procedures", b"x" * 3_000_000, 413),
    ]
    for method, path, body, expected in cases:
        response = web.client.request(
            method, API + path, content=body, headers={**headers, "Content-Type": "application/json"}
        )
        assert response.status_code == expected, (path, body[:60], response.text)
        error = response.json()["error"]
        assert error["code"] and error["message_ja"] and error["message_en"]
    rng = random.Random(5)
    for _ in range(200):
        blob = bytes(rng.randrange(256) for _ in range(rng.randrange(0, 64)))
        path = rng.choice(
            [
                "/procedures",
                f"/procedures/{pid}/exchange",
                f"/procedures/{pid}/code/verify",
                "/terminals/session",
                f"/procedures/{pid}/new-pin",
                f"/procedures/{pid}/face",
            ]
        )
        response = web.client.post(API + path, content=blob, headers={**headers, "Content-Type": "application/json"})
        assert 400 <= response.status_code < 500, (path, blob, response.text)
