"""``jpki-remote demo --scripted``: every procedure, headless, against a fresh data directory.

The server runs in this process on a free loopback port, with the terminal package's agents (virtual readers) for a
kiosk, the holder's app and a counter. The script plays each terminal's page (:class:`~jpki_remote.demo.client.
TerminalPage`): the same JSON API calls, the agent's page API to relay the card and to type PINs on the keypad, a live
capture built from the resident's real photo (blinking and turning as the random liveness challenge asks) and the
security code read from the development outbox. Refusals are part of the run: another person's face and a wrong
security code must be refused.

Then everything is checked from outside: the renewed certificates are ``good`` and the replaced / revoked ones
``revoked`` by the server's OCSP endpoint (requests built with ``cryptography``), the audit log verifies, and the
admin live statistics (analytics API) count the run. The exit code is 0 only if every procedure ended as expected
and every check passed; a procedure the back end cannot complete yet is reported FAILED with the reason.
"""

from __future__ import annotations

import base64
import contextlib
import json
import shutil
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TextIO

from jpki_remote.config import Settings
from jpki_remote.demo import residents as people
from jpki_remote.demo.checks import Check, check_audit, check_ocsp, check_statistics, ocsp_status
from jpki_remote.demo.client import ApiFailure, PinNotKnown, TerminalPage, latest_code
from jpki_remote.demo.provision import DemoEnvironment, demo_mobile, provision
from jpki_remote.demo.residents import DEMO_PINS, NEW_PINS

STAFF = people.DEMO_STAFF_ID
DOCUMENTS = ["passport"]


@dataclass
class Result:
    name: str
    resident: str
    expected: str
    outcome: str = "not run"
    ok: bool = False
    seconds: float = 0.0
    detail: str = ""


@dataclass
class Report:
    results: list[Result] = field(default_factory=list)
    checks: list[Check] = field(default_factory=list)
    setup_seconds: float = 0.0
    total_seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return bool(self.results) and all(r.ok for r in self.results) and all(c.ok for c in self.checks)

    def as_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "setup_seconds": round(self.setup_seconds, 2),
            "total_seconds": round(self.total_seconds, 2),
            "procedures": [asdict(r) for r in self.results],
            "checks": [asdict(c) for c in self.checks],
        }


class Unexpected(Exception):
    """The procedure did not go as the script expects; the message says where."""


@dataclass
class Run:
    env: DemoEnvironment
    base_url: str
    kiosk: TerminalPage
    app: TerminalPage
    counter: TerminalPage
    expectations: list[tuple[str, int, str, str]] = field(default_factory=list)  # (kind, serial, status, why)
    issued: dict[str, Any] | None = None  # the card issued at the counter

    def photo(self, key: str) -> bytes:
        return people.photo_path(self.env.faces, people.resident(key), "camera").read_bytes()

    def card_row(self, key: str) -> Any:
        from jpki_remote.registry import service as registry

        with self.env.db.session() as session:
            card = registry.get_card(session, self.env.card(key).card_id)
            assert card is not None
            session.expunge(card)
            return card

    def ocsp(self, kind: str, serial_hex: str | None) -> str:
        from cryptography import x509

        if not serial_hex:
            return "none"
        certificate = x509.load_der_x509_certificate(self.env.ca.certificate(kind, int(serial_hex, 16)).der)
        return ocsp_status(self.base_url, certificate, self.env.ca.authority_certificate(kind), kind)

    def expect_status(self, kind: str, serial_hex: str | None, status: str, why: str) -> None:
        if serial_hex:
            self.expectations.append((kind, int(serial_hex, 16), status, why))


# ---------------------------------------------------------------------------------------------- building blocks
def _face(run: Run, terminal: TerminalPage, view: dict[str, Any], photo: bytes) -> dict[str, Any]:
    """The page's camera: a live capture doing the challenge's steps in order."""
    from jpki_remote.demo.live_capture import capture

    challenge = view.get("face_challenge") or {}
    steps = challenge.get("steps") if isinstance(challenge, dict) else challenge
    if not steps:
        raise Unexpected(f"no liveness challenge in state {view.get('state')}")
    return terminal.submit_face(view["id"], capture(photo, steps, neutral=2))


def _code(run: Run, terminal: TerminalPage, view: dict[str, Any], address: str) -> str:
    """The page asks for a code; the holder reads it on their phone (the development outbox)."""
    terminal.request_code(view["id"])
    code = latest_code(run.env.db, address)
    if code is None:
        raise Unexpected("no security code in the development outbox")
    return code


def _proofs(view: dict[str, Any]) -> list[str]:
    return list(view.get("proofs_done") or [])


def _ended(view: dict[str, Any]) -> str:
    error = view.get("error") or {}
    message = view.get("message") or {}
    return f"{view.get('status')} in {view.get('state')} ({error.get('code') or message.get('code') or '-'})"


def _at_proofs(view: dict[str, Any]) -> bool:
    """The card part is done and the page must collect a proof (face or code)."""
    return view.get("state") == "proofs" and view.get("waiting_for") in ("face_liveness", "security_code")


def _waiting_for_code(view: dict[str, Any]) -> bool:
    return view.get("waiting_for") == "security_code"


@contextlib.contextmanager
def card_in(terminal: TerminalPage, card_id: str) -> Iterator[None]:
    """The holder's card on the terminal's reader for the length of a procedure."""
    terminal.insert(card_id)
    try:
        yield
    finally:
        terminal.remove()


def remote_procedure(
    run: Run,
    terminal: TerminalPage,
    card_id: str,
    kind: str,
    target: str,
    *,
    camera: bytes,
    contact: str,
    pins: dict[str, str],
    new_pins: dict[str, str] | None = None,
    known_pin: str | None = None,
) -> dict[str, Any]:
    """Kiosk / online: card proof on the agent (PIN on the keypad, 照合番号B), face with liveness and the security
    code in the page, then the card update relayed by the agent."""
    with card_in(terminal, card_id):
        view = terminal.start(kind, target, known_pin)
        terminal.drive(view["id"])
        view = terminal.follow(view["id"], pins=pins, until=_at_proofs)
        if view["status"] != "active" or view["waiting_for"] != "face_liveness":
            raise Unexpected(f"after the card proof: {_ended(view)}")
        view = _face(run, terminal, view, camera)
        if "face_liveness" not in _proofs(view):
            reason = (view.get("face_result") or {}).get("reason")
            raise Unexpected(f"face refused for the holder ({reason}): {_ended(view)}")
        view = terminal.verify_code(view["id"], _code(run, terminal, view, contact))
        if "security_code" not in _proofs(view):
            raise Unexpected(f"security code refused: {_ended(view)}")
        view = terminal.follow(view["id"], pins=pins, new_pins=new_pins)
    if view["status"] != "completed":
        raise Unexpected(_ended(view))
    return view


def verify_pin(run: Run, card_id: str, kind: str, value: str) -> None:
    """From outside: the PIN works on the card (a VERIFY through the card's own APDU interface)."""
    from jpki_remote.card.client import CardClient, CardError
    from jpki_remote.card.store import CardStore
    from jpki_remote.demo.provision import PIN_FIDS

    card = CardStore(run.env.cards_dir).open(card_id)
    applet, fid = PIN_FIDS[kind]
    try:
        client = CardClient(card)
        client.select_ap(applet)
        client.verify(fid, value)
    except CardError as exc:
        raise Unexpected(f"the new {kind} does not work on the card: {exc}") from None
    finally:
        card.reset()


# ---------------------------------------------------------------------------------------------- the procedures
def renewal(run: Run, terminal: TerminalPage, key: str) -> str:
    before = run.env.card(key)
    remote_procedure(
        run,
        terminal,
        before.card_id,
        "renewal",
        "certificates",
        camera=run.photo(key),
        contact=demo_mobile(key),
        pins={"auth_pin": DEMO_PINS["auth_pin"], "code_b": before.code_b},
    )
    after = run.card_row(key)
    if after.auth_cert_serial in (None, before.auth_serial):
        raise Unexpected("the registry still lists the old auth certificate")
    run.expect_status("authentication", before.auth_serial, "revoked", f"{key}: old auth certificate")
    run.expect_status("signature", before.sign_serial, "revoked", f"{key}: old signature certificate")
    run.expect_status("authentication", after.auth_cert_serial, "good", f"{key}: new auth certificate")
    run.expect_status("signature", after.sign_cert_serial, "good", f"{key}: new signature certificate")
    return f"completed, new auth certificate {after.auth_cert_serial[:12]}…"


def pin_reset(run: Run, terminal: TerminalPage, key: str, target: str, known: str) -> str:
    card = run.env.card(key)
    remote_procedure(
        run,
        terminal,
        card.card_id,
        "pin_reset",
        target,
        camera=run.photo(key),
        contact=demo_mobile(key),
        pins={known: DEMO_PINS[known], "code_b": card.code_b},
        new_pins={target: NEW_PINS[target]},
        known_pin=known,
    )
    verify_pin(run, card.card_id, target, NEW_PINS[target])
    return "completed, new PIN works on the card"


def pin_change(run: Run, terminal: TerminalPage, key: str, target: str) -> str:
    card_id = run.env.card(key).card_id
    with card_in(terminal, card_id):
        view = terminal.start("pin_change", target)
        terminal.drive(view["id"])
        view = terminal.follow(view["id"], pins={target: DEMO_PINS[target]}, new_pins={target: NEW_PINS[target]})
    if view["status"] != "completed":
        raise Unexpected(_ended(view))
    verify_pin(run, card_id, target, NEW_PINS[target])
    return "completed, new PIN works on the card"


def face_mismatch(run: Run, terminal: TerminalPage, key: str, impostor: str) -> str:
    """Another person in front of the camera with this resident's card: the face step must refuse."""
    card = run.env.card(key)
    view: dict[str, Any] = {}
    with card_in(terminal, card.card_id):
        try:
            view = terminal.start("pin_reset", "text_pin", "auth_pin")
            terminal.drive(view["id"])
            view = terminal.follow(
                view["id"], pins={"auth_pin": DEMO_PINS["auth_pin"], "code_b": card.code_b}, until=_at_proofs
            )
            if view["status"] != "active" or view["waiting_for"] != "face_liveness":
                raise Unexpected(f"after the card proof: {_ended(view)}")
            view = _face(run, terminal, view, run.photo(impostor))
            if "face_liveness" in _proofs(view):
                raise Unexpected("ACCEPTED another person's face")
            result = view.get("face_result") or {}
            return f"refused ({result.get('reason', '?')}), {result.get('attempts_left', '?')} attempts left"
        finally:
            if view.get("status") == "active":
                terminal.cancel(view["id"])


def wrong_code(run: Run, terminal: TerminalPage, key: str) -> str:
    """A wrong security code (revocation request online): refused, nothing revoked."""
    card = run.env.card(key)
    view: dict[str, Any] = {}
    with card_in(terminal, card.card_id):
        try:
            view = terminal.start("revocation", "signature")
            terminal.drive(view["id"])
            view = terminal.follow(view["id"], pins={"auth_pin": DEMO_PINS["auth_pin"]}, until=_waiting_for_code)
            if view["status"] != "active" or view.get("waiting_for") != "security_code":
                raise Unexpected(f"after the card proof: {_ended(view)}")
            real = _code(run, terminal, view, demo_mobile(key))
            wrong = f"{(int(real) + 1) % 10 ** len(real):0{len(real)}d}"
            view = terminal.verify_code(view["id"], wrong)
            if "security_code" in _proofs(view) or view["status"] == "completed":
                raise Unexpected("ACCEPTED a wrong security code")
            code = (view.get("message") or {}).get("code", "?")
            status = run.ocsp("signature", card.sign_serial)
            if status != "good":
                raise Unexpected(f"the signature certificate is {status} after a refused code")
            return f"refused ({code}), {view.get('code_tries_left', '?')} tries left"
        finally:
            if view.get("status") == "active":
                terminal.cancel(view["id"])


def issuance(run: Run, terminal: TerminalPage) -> str:
    """New issuance at the counter: the card the card centre delivered is on the counter's reader (the page takes
    its diversification data and expiry from the agent), the signed-in member of staff records the ID documents
    checked, the photo is enrolled, a contact registered; the holder types 照合番号B and chooses every PIN on the
    counter PIN pad; keys are generated on the card and the certificates issued through the legal flow."""
    from jpki_remote.demo.delivery import deliver

    waiting = people.WAITING
    resident_id = run.env.manifest.waiting_resident_id
    if resident_id is None:
        raise Unexpected("no resident waiting for a card")
    photo = run.env.faces.joinpath(waiting.person, waiting.photo).read_bytes()
    facts = deliver(
        run.env.settings.data_dir,
        run.env.master_key,
        photo,
        name=waiting.name,
        address=waiting.address,
        birth_date=waiting.birth_date,
        sex=waiting.sex,
        kana=waiting.kana,
    )
    with card_in(terminal, facts["card_id"]):
        status = terminal.agent_status()
        card = status.get("card") or {}
        if not card.get("diversification_data") or not card.get("expiry"):
            raise Unexpected(f"the agent cannot read the new card's data: {card}")
        body = {
            "resident_id": resident_id,
            "card_id": status["card_id"],
            "diversification_data": card["diversification_data"],
            "card_expiry": card["expiry"],
            "staff_id": STAFF,
            "documents": DOCUMENTS,
            "photo": "data:image/jpeg;base64," + base64.b64encode(photo).decode(),
            "contacts": [{"kind": "email", "address": waiting.email}],
        }
        if card.get("public_key"):
            body["card_public_key"] = card["public_key"]
        view = terminal.call("POST", "/counter/issuance", body)
        terminal.drive(view["id"])
        view = terminal.follow(
            view["id"], pins={"auth_pin": DEMO_PINS["auth_pin"], "code_b": facts["code_b"]}, new_pins=dict(DEMO_PINS)
        )
    if view["status"] != "completed":
        raise Unexpected(_ended(view))
    from jpki_remote.registry import service as registry

    with run.env.db.session() as session:
        row = registry.get_card(session, facts["card_id"])
        auth_serial, sign_serial = (row.auth_cert_serial, row.sign_cert_serial) if row else (None, None)
    if not auth_serial:
        raise Unexpected("no auth certificate recorded for the new card")
    run.issued = facts
    run.expect_status("authentication", auth_serial, "good", "new card: auth certificate")
    run.expect_status("signature", sign_serial, "good", "new card: signature certificate")
    return "completed, keys generated on the card, certificates issued"


def reset_new_card(run: Run, terminal: TerminalPage) -> str:
    """The card just issued at the counter, at the kiosk: its holder resets the text PIN (face against the photo the
    card centre put on the card) — the walk-through of a person with their own new card."""
    facts = run.issued
    if facts is None:
        raise Unexpected("no card was issued at the counter")
    waiting = people.WAITING
    remote_procedure(
        run,
        terminal,
        facts["card_id"],
        "pin_reset",
        "text_pin",
        camera=run.env.faces.joinpath(waiting.person, waiting.photo).read_bytes(),
        contact=waiting.email,
        pins={"auth_pin": DEMO_PINS["auth_pin"], "code_b": facts["code_b"]},
        new_pins={"text_pin": NEW_PINS["text_pin"]},
        known_pin="auth_pin",
    )
    verify_pin(run, facts["card_id"], "text_pin", NEW_PINS["text_pin"])
    return "completed, new PIN works on the newly issued card"


def loss_report(run: Run, terminal: TerminalPage, key: str) -> str:
    card = run.env.card(key)
    body = {"kind": "loss_report", "target": "card", "card_id": card.card_id, "staff_id": STAFF}
    view = terminal.call("POST", "/counter/procedures", body)
    view = terminal.call(
        "POST", f"/counter/procedures/{view['id']}/staff-check", {"staff_id": STAFF, "documents": DOCUMENTS}
    )
    if view["status"] != "completed":
        raise Unexpected(_ended(view))
    state = run.card_row(key).state.value
    if state != "lost":
        raise Unexpected(f"card state is {state}, not lost")
    run.expect_status("authentication", card.auth_serial, "revoked", f"{key}: lost card, auth certificate")
    run.expect_status("signature", card.sign_serial, "revoked", f"{key}: lost card, signature certificate")
    return "completed, card locked (lost), both certificates revoked"


def online_loss_report(run: Run, terminal: TerminalPage) -> str:
    """The card just issued at the counter is lost: its holder reports it online, with nothing on the reader — the
    card number, the face against the photo enrolled at issuance (liveness), then the security code (the portal's
    loss report, docs/ui.md). Both certificates are revoked, the card is locked out of remote procedures."""
    from jpki_remote.registry import service as registry

    facts = run.issued
    if facts is None:
        raise Unexpected("no card was issued at the counter")
    card_id = facts["card_id"]
    with run.env.db.session() as session:
        row = registry.get_card(session, card_id)
        serials = {"authentication": row.auth_cert_serial, "signature": row.sign_cert_serial} if row else {}
    if not serials.get("authentication"):
        raise Unexpected("no certificate recorded for the new card")
    view = terminal.call("POST", "/procedures", {"kind": "loss_report", "target": "card", "card_id": card_id})
    if view["status"] != "active" or view.get("waiting_for") != "face_enrolled":
        raise Unexpected(f"at the start: {_ended(view)}")
    camera = run.env.faces.joinpath(people.WAITING.person, people.WAITING.photo).read_bytes()
    view = _face(run, terminal, view, camera)
    if "face_enrolled" not in _proofs(view):
        reason = (view.get("face_result") or {}).get("reason")
        raise Unexpected(f"face refused for the holder ({reason}): {_ended(view)}")
    view = terminal.verify_code(view["id"], _code(run, terminal, view, people.WAITING.email))
    if view["status"] != "completed":
        raise Unexpected(_ended(view))
    state = _card_state(run, card_id)
    if state != "lost":
        raise Unexpected(f"card state is {state}, not lost")
    # the certificates the counter issued are expected revoked now, no longer good
    revoked = {(kind, int(serial, 16)) for kind, serial in serials.items() if serial}
    run.expectations = [e for e in run.expectations if (e[0], e[1]) not in revoked]
    for kind, serial in serials.items():
        run.expect_status(kind, serial, "revoked", f"new card reported lost online: {kind} certificate")
    return "completed, no card on the reader, card locked (lost), both certificates revoked"


def _card_state(run: Run, card_id: str) -> str:
    from jpki_remote.registry import service as registry

    with run.env.db.session() as session:
        row = registry.get_card(session, card_id)
        return row.state.value if row else "missing"


def registry_move(run: Run, terminal: TerminalPage, key: str) -> str:
    card = run.env.card(key)
    answer = terminal.call(
        "POST",
        "/counter/registry-events",
        {
            "resident_id": card.resident_id,
            "kind": "moved_out",
            "changes": {"address": "大阪府大阪市北区中之島１丁目３番２０号"},
            "staff_id": STAFF,
            "documents": ["moving_out_notice"],
        },
    )
    view = answer.get("procedure") or {}
    if view.get("status") != "completed":
        raise Unexpected(f"registry-event procedure: {_ended(view)}")
    run.expect_status("signature", card.sign_serial, "revoked", f"{key}: moved out, signature certificate")
    run.expect_status("authentication", card.auth_serial, "good", f"{key}: moved out, auth certificate kept")
    return f"completed, signature certificate revoked, card {run.card_row(key).state.value}"


PROCEDURES: list[tuple[str, str, str, Callable[[Run], str]]] = [
    ("renewal · kiosk", "minato", "completed", lambda r: renewal(r, r.kiosk, "minato")),
    ("renewal · online (expired certificates)", "shiba", "completed", lambda r: renewal(r, r.app, "shiba")),
    (
        "PIN reset sign password · kiosk (locked)",
        "azabu",
        "completed",
        lambda r: pin_reset(r, r.kiosk, "azabu", "sign_password", "auth_pin"),
    ),
    (
        "PIN reset auth PIN · online (locked)",
        "akasaka",
        "completed",
        lambda r: pin_reset(r, r.app, "akasaka", "auth_pin", "sign_password"),
    ),
    (
        "PIN reset residence PIN · kiosk (locked)",
        "aoyama",
        "completed",
        lambda r: pin_reset(r, r.kiosk, "aoyama", "residence_pin", "auth_pin"),
    ),
    (
        "PIN reset text PIN · online (locked)",
        "roppongi",
        "completed",
        lambda r: pin_reset(r, r.app, "roppongi", "text_pin", "auth_pin"),
    ),
    ("PIN change auth PIN · online", "takanawa", "completed", lambda r: pin_change(r, r.app, "takanawa", "auth_pin")),
    (
        "face mismatch · kiosk (another person)",
        "shirokane",
        "refused",
        lambda r: face_mismatch(r, r.kiosk, "shirokane", "takanawa"),
    ),
    ("wrong security code · online", "shirokane", "refused", lambda r: wrong_code(r, r.app, "shirokane")),
    ("new issuance · counter", "shibaura", "completed", lambda r: issuance(r, r.counter)),
    ("PIN reset text PIN · kiosk (the new card)", "shibaura", "completed", lambda r: reset_new_card(r, r.kiosk)),
    ("loss report · online (the new card, no card)", "shibaura", "completed", lambda r: online_loss_report(r, r.app)),
    ("revocation on loss · counter", "shirokane", "completed", lambda r: loss_report(r, r.counter, "shirokane")),
    ("registry event: move out · counter", "daiba", "completed", lambda r: registry_move(r, r.counter, "daiba")),
]


# ---------------------------------------------------------------------------------------------- the run
def _line(result: Result) -> str:
    mark = "OK    " if result.ok else "FAILED"
    return f"{mark} {result.name:<44} {result.resident:<10} {result.outcome}  [{result.seconds:5.1f} s]"


def run_scripted(
    faces: Path,
    *,
    data_dir: Path | None = None,
    keep: bool = False,
    out: TextIO | None = None,
    report_file: Path | None = None,
) -> int:
    """Run every procedure; print one line each, then the checks and a summary. Returns the exit code."""
    from jpki_remote.demo.server import DemoServer, free_port

    stream = out or sys.stdout

    def say(text: str) -> None:
        print(text, file=stream, flush=True)

    started = time.monotonic()
    temporary = data_dir is None
    directory = Path(tempfile.mkdtemp(prefix="jpki-demo-scripted-")) if temporary else Path(data_dir)
    if not temporary and directory.exists() and any(directory.iterdir()):
        say(f"error: {directory} is not empty; the scripted run needs a fresh data directory")
        return 2
    port = free_port()
    settings = Settings(
        data_dir=directory,
        public_base_url=f"http://127.0.0.1:{port}",
        host="127.0.0.1",
        port=port,
        delivery="outbox",
        ocsp_cache_seconds=0.0,  # the checks right after a revocation must see it (production: a few seconds)
    )
    report = Report()
    env: DemoEnvironment | None = None
    server: DemoServer | None = None
    clients: list[TerminalPage] = []
    try:
        say(f"jpki-remote demo --scripted — data directory {directory} (fresh{', temporary' if temporary else ''})")
        say("setting up: CAs, 港区, residents with virtual cards, terminals …")
        env = provision(settings, faces, enrol_faces=False)
        server = DemoServer(settings, env.db, host="127.0.0.1", port=port)
        base_url = server.start()
        report.setup_seconds = time.monotonic() - started
        say(f"server {base_url} ready after {report.setup_seconds:.1f} s\n")
        terminals = env.manifest.terminals
        clients = [TerminalPage(base_url, terminals[k], env.cards_dir) for k in ("kiosk", "app", "counter")]
        clients[2].sign_in_staff(people.DEMO_STAFF_ID, people.DEMO_STAFF_PASSWORD)
        run = Run(env, base_url, *clients)
        for name, resident, expected, action in PROCEDURES:
            result = Result(name, resident, expected)
            begin = time.monotonic()
            try:
                result.outcome = action(run)
                result.ok = result.outcome.startswith(expected)
            except Unexpected as exc:
                result.outcome = f"FAILED: {exc}"
            except (ApiFailure, PinNotKnown, TimeoutError) as exc:
                result.outcome = f"FAILED: {exc}"
            except Exception as exc:  # a broken step must not stop the other procedures
                result.outcome = f"FAILED: {type(exc).__name__}: {exc}"
                result.detail = traceback.format_exc(limit=6)
            result.seconds = time.monotonic() - begin
            report.results.append(result)
            say(_line(result))
        say("\nchecks from outside:")
        for check in [
            *check_ocsp(run.env, run.base_url, run.expectations),
            check_audit(run.env),
            check_statistics(run.env, run.base_url, report.results),
        ]:
            report.checks.append(check)
            say(f"{'OK    ' if check.ok else 'FAILED'} {check.name}: {check.detail}")
    except Exception as exc:
        report.checks.append(Check("scripted run", False, f"{type(exc).__name__}: {exc}"))
        say(f"FAILED the scripted run stopped: {type(exc).__name__}: {exc}")
        say(traceback.format_exc(limit=8))
    finally:
        for client in clients:
            client.close()
        if server is not None:
            server.stop()
        if env is not None:
            env.close()
        report.total_seconds = time.monotonic() - started
        if report_file is not None:
            report_file.write_text(json.dumps(report.as_dict(), ensure_ascii=False, indent=2), encoding="utf-8")
        if temporary and not keep:
            shutil.rmtree(directory, ignore_errors=True)
    passed = sum(1 for r in report.results if r.ok)
    checks = sum(1 for c in report.checks if c.ok)
    say(
        f"\nsummary: {passed}/{len(report.results)} procedures as expected, {checks}/{len(report.checks)} checks "
        f"passed, {report.total_seconds:.1f} s in total (set-up {report.setup_seconds:.1f} s) — "
        f"{'ALL OK' if report.ok else 'FAILED'}"
    )
    return 0 if report.ok else 1
