"""No enumeration (ARCHITECTURE §4, OWASP ASVS 5.0 6.3.8): nothing a terminal can send before the card has proved
possession may tell whether a card, a resident or another terminal's procedure exists — not the status, not the
body, and (measured, printed) not the response time.
"""

from __future__ import annotations

import copy
import secrets
import statistics
import time
from typing import Any

import pytest
from secworld import API, SecWeb

from jpki_remote.terminal.client import ServerClient

VOLATILE = {"id", "expires_at"}


def _unknown_card_id() -> str:
    return "9" + "".join(secrets.choice("0123456789") for _ in range(14))


def _stable(response: Any) -> tuple[int, Any]:
    body = response.json()
    if isinstance(body, dict):
        body = {k: v for k, v in body.items() if k not in VOLATILE}
        if isinstance(body.get("exchange"), dict):
            body["exchange"] = {k: v for k, v in body["exchange"].items() if k != "seq"}
    return response.status_code, body


def _start(web: SecWeb, terminal: ServerClient, kind: str, target: str, card_id: str, **extra: Any) -> Any:
    return terminal.http.post(
        f"{API}/procedures",
        json={"kind": kind, "target": target, "card_id": card_id, **extra},
        headers=web.auth(terminal),
    )


def _cancel(web: SecWeb, terminal: ServerClient, response: Any) -> None:
    if response.status_code == 201:
        terminal.http.post(f"{API}/procedures/{response.json()['id']}/cancel", headers=web.auth(terminal))


REMOTE_STARTS = [
    ("kiosk", "renewal", "certificates", {}),
    ("app", "renewal", "certificates", {}),
    ("kiosk", "pin_reset", "sign_password", {}),
    ("app", "pin_reset", "auth_pin", {}),
    ("kiosk", "pin_reset", "residence_pin", {"known_pin": "sign_password"}),
    ("app", "pin_reset", "text_pin", {}),
    ("kiosk", "pin_change", "auth_pin", {}),
    ("app", "pin_change", "sign_password", {}),
    ("kiosk", "revocation", "signature", {}),
    ("app", "revocation", "all", {}),
    ("app", "loss_report", "card", {}),
]


@pytest.mark.parametrize(("terminal_kind", "kind", "target", "extra"), REMOTE_STARTS)
def test_starting_answers_the_same_for_known_and_unknown_cards(
    module_web: SecWeb, terminal_kind: str, kind: str, target: str, extra: dict[str, Any]
) -> None:
    web = module_web
    issued = web.world.issue_card()
    terminal = web.terminal(terminal_kind)
    known = _start(web, terminal, kind, target, issued.card_id, **extra)
    _cancel(web, terminal, known)
    unknown = _start(web, terminal, kind, target, _unknown_card_id(), **extra)
    _cancel(web, terminal, unknown)
    assert known.status_code in (201, 403), known.text
    assert _stable(known) == _stable(unknown)


def test_counter_start_answers_the_same_for_known_and_unknown_cards(module_web: SecWeb) -> None:
    web = module_web
    issued = web.world.issue_card()
    counter = web.terminal("counter")
    answers = []
    for card_id in (issued.card_id, _unknown_card_id()):
        response = counter.http.post(
            f"{API}/counter/procedures",
            json={"kind": "renewal", "target": "certificates", "card_id": card_id, "staff_id": "staff-1"},
            headers=web.auth(counter),
        )
        _cancel(web, counter, response)
        answers.append(_stable(response))
    assert answers[0] == answers[1]


def test_registry_event_for_another_municipality_looks_like_an_unknown_resident(module_web: SecWeb) -> None:
    """A counter terminal only sees its own municipality's residents; others read exactly like unknown ones."""
    from jpki_remote.registry import service as registry

    web = module_web
    with web.world.db.session() as s:
        if s.get(registry.Municipality, "271004") is None:
            registry.create_municipality(s, "27100", "大阪市", "大阪府")
        from datetime import date

        other = registry.add_resident(
            s, "271004", family_name="他市", given_name="太郎", address="大阪府大阪市北区中之島1-3-20",
            birth_date=date(1970, 1, 1), sex=1,
        ).id
    counter = web.terminal("counter")
    headers = web.staff_login(counter)  # counter routes need a signed-in member of staff
    body = {"kind": "address_changed", "changes": {"address": "x"}, "documents": ["passport"]}
    answers = [
        _stable(counter.http.post(f"{API}/counter/registry-events", json={**body, "resident_id": resident},
                                  headers=headers))
        for resident in (other, "r" + secrets.token_hex(8))
    ]
    assert answers[0] == answers[1]
    assert answers[0][0] == 404
    assert answers[0][1]["error"]["code"] == "resident_unknown"


def test_a_card_busy_elsewhere_is_not_revealed(module_web: SecWeb) -> None:
    """The holder's card is in a procedure at a kiosk (it proved possession there, so the procedure holds it): a start
    for that card from any other terminal answers exactly like one for an unknown card id — no "busy" oracle, and
    nobody can keep a card busy by starting procedures with its number (finding S-5, docs/security.md)."""
    from procedure_world import PINS

    from jpki_remote.terminal.agent import AgentCore, ScriptedPinPad, drive

    web = module_web
    issued = web.world.issue_card()
    somewhere, prober = web.terminal("kiosk"), web.terminal("app")
    started = _start(web, somewhere, "revocation", "signature", issued.card_id)
    assert started.status_code == 201
    core = AgentCore(issued.card.transmit, ScriptedPinPad(pins={"auth_pin": PINS["auth_pin"]}))
    held = drive(lambda body: somewhere.exchange(started.json()["id"], body), core, started.json())
    assert held["status"] == "active" and held["state"] == "proofs", held["error"]  # the card is taken there
    for kind, target in (("pin_change", "auth_pin"), ("renewal", "certificates")):
        known = _start(web, prober, kind, target, issued.card_id)
        unknown = _start(web, prober, kind, target, _unknown_card_id())
        _cancel(web, prober, known)
        _cancel(web, prober, unknown)
        assert known.status_code == 201 and _stable(known) == _stable(unknown)
    assert somewhere._call("GET", f"/procedures/{held['id']}")["status"] == "active"  # undisturbed


def test_loss_report_answers_the_same_for_known_and_unknown_cards(sec_web: SecWeb, faces_dir: Any) -> None:
    """An online loss report has no card to prove anything before the face: every answer until the face matches the
    card's enrolled photo — start, view, code request and entry (refused: nobody identified yet), face captures of
    another person doing the liveness steps, unreadable captures — is the same for a real card with an enrolled
    photo as for an unknown card id (finding S-17: the face step used to answer ``wrong_step`` for a card without an
    enrolled photo, and a code could never be sent)."""
    import base64

    from procedure_world import capture_frames, card_photo, enrol_photo

    from jpki_remote.procedures.ports import ProofingFace

    web = sec_web
    face = ProofingFace(web.world.settings)
    challenge = face.new_challenge()
    # One random order of the liveness steps for both procedures: what the checker says about another person's
    # captures depends on the order (which step it finds missing first), and must differ by nothing but the card.
    face.new_challenge = lambda: copy.deepcopy(challenge)  # type: ignore[method-assign]
    web.world.ports.face = face
    web.world.photo = card_photo(faces_dir / "obama" / "3.jpg")
    issued = web.world.issue_card()
    enrol_photo(web.world, issued.card_id, faces_dir / "obama" / "3.jpg")

    def stable(response: Any) -> tuple[int, Any]:
        status, body = _stable(response)
        if isinstance(body, dict):
            body.pop("face_challenge", None)  # a fresh random order of the liveness steps for every procedure
        return status, body

    answers = []
    for card_id in (issued.card_id, _unknown_card_id()):
        app = web.terminal("app")
        started = _start(web, app, "loss_report", "card", card_id)
        pid = started.json()["id"]
        steps = started.json()["face_challenge"]["steps"]
        other_face = [base64.b64encode(f).decode() for f in capture_frames(faces_dir / "biden" / "1.jpg", steps)]
        seen = [stable(started)]
        for method, suffix, payload in (
            ("GET", "", None),
            ("POST", "/code/request", None),
            ("POST", "/code/verify", {"code": "123456"}),
            ("POST", "/face", {"frames": other_face}),
            ("POST", "/face", {"frames": [base64.b64encode(b"not an image").decode()]}),
            ("POST", "/code/request", None),
            ("GET", "", None),
        ):
            response = app.http.request(method, f"{API}/procedures/{pid}{suffix}", json=payload, headers=web.auth(app))
            seen.append(stable(response))
        answers.append(seen)
    assert answers[0] == answers[1]
    statuses = [status for status, _ in answers[0]]
    assert statuses == [201, 200, 409, 409, 200, 200, 409, 200], answers[0]
    assert answers[0][4][1]["face_result"]["reason"] != "match" and answers[0][7][1]["status"] == "active"
    assert web.world.ports.limits.status(card_id=issued.card_id) == []  # and the card's own limits were not touched


def test_another_terminals_procedure_reads_like_a_missing_one(module_web: SecWeb) -> None:
    web = module_web
    issued = web.world.issue_card()
    owner, other = web.terminal("kiosk"), web.terminal("kiosk")
    pid = _start(web, owner, "pin_change", "auth_pin", issued.card_id).json()["id"]
    missing = secrets.token_hex(16)
    for method, suffix, payload in (
        ("GET", "", None),
        ("POST", "/exchange", {"responses": []}),
        ("POST", "/code/request", None),
        ("POST", "/code/verify", {"code": "123456"}),
        ("POST", "/face", {"frames": ["AAAA"]}),
        ("POST", "/cancel", None),
    ):
        answers = [
            _stable(other.http.request(method, f"{API}/procedures/{p}{suffix}", json=payload, headers=web.auth(other)))
            for p in (pid, missing)
        ]
        assert answers[0] == answers[1], (suffix, answers)
        assert answers[0][0] == 404
    # and the owner's procedure was not disturbed by any of it
    assert owner._call("GET", f"/procedures/{pid}")["status"] == "active"


def test_terminal_challenge_and_session_do_not_reveal_terminals(module_web: SecWeb) -> None:
    web = module_web
    kiosk = web.terminal("kiosk")
    answers = []
    for terminal_id in (kiosk.terminal_id, "t" + secrets.token_hex(12)):
        challenge = web.client.post(f"{API}/terminals/challenge", json={"terminal_id": terminal_id})
        assert challenge.status_code == 200
        session = web.client.post(
            f"{API}/terminals/session",
            json={"terminal_id": terminal_id, "nonce": challenge.json()["nonce"], "signature": "A" * 86},
        )
        answers.append(_stable(session))
    assert answers[0] == answers[1] and answers[0][0] == 401


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def test_start_timing_known_vs_unknown(sec_web: SecWeb, capsys: pytest.CaptureFixture[str]) -> None:
    """Median and p95 of the start answer for known and unknown card ids, interleaved (printed, not asserted:
    a shared 2-core machine is no place for timing bounds). Limits are off here: they never look a card up, so
    they cost the same for both, and they would stop the run."""
    web = sec_web
    if hasattr(web.world.ports, "limits"):
        web.world.ports.limits = None
    cards = [web.world.issue_card() for _ in range(3)]
    terminal = web.terminal("kiosk")
    rounds = 60
    timings: dict[str, list[float]] = {"known": [], "unknown": []}
    statuses: set[tuple[str, int]] = set()
    for i in range(rounds):
        order = [("known", cards[i % len(cards)].card_id), ("unknown", _unknown_card_id())]
        if i % 2:
            order.reverse()
        for label, card_id in order:
            began = time.perf_counter()
            response = _start(web, terminal, "pin_change", "auth_pin", card_id)
            timings[label].append((time.perf_counter() - began) * 1000)
            statuses.add((label, response.status_code))
            _cancel(web, terminal, response)
    median = {k: statistics.median(v) for k, v in timings.items()}
    p95 = {k: _percentile(v, 0.95) for k, v in timings.items()}
    with capsys.disabled():
        print(
            f"\nenumeration timing, POST /procedures (pin_change), {rounds} each, interleaved: "
            f"known median {median['known']:.2f} ms p95 {p95['known']:.2f} ms; "
            f"unknown median {median['unknown']:.2f} ms p95 {p95['unknown']:.2f} ms; "
            f"difference median {median['known'] - median['unknown']:+.2f} ms "
            f"p95 {p95['known'] - p95['unknown']:+.2f} ms"
        )
    assert statuses == {("known", 201), ("unknown", 201)}
