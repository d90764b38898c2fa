"""The world of the end-to-end browser tests: every component real, each in its own process where it is in production.

* :class:`E2EWorld` — one data directory (SQLite, the CAs' key files, issuer master key, card directory), the CAs set
  up, the municipality and its residents with personalised virtual cards (certificates from the project's CAs, issued
  backdated so the renewal window is open), registered contacts, terminals registered with their Ed25519 keys;
* :class:`ServerProcess` — ``jpki-remote serve`` (uvicorn) on a free loopback port over that data directory;
* :class:`AgentProcess` — ``jpki-remote terminal agent`` for one terminal with one virtual card on its reader,
  serving the page's loopback API;
* checks from outside: ``openssl ocsp`` against the server's OCSP endpoint (:meth:`E2EWorld.ocsp`), ``jpki-remote
  audit verify`` (:meth:`E2EWorld.audit_verify`), the card itself through :class:`CardClient` (:meth:`card_pin_ok`,
  :meth:`card_certificates`).

Nothing here reaches into the server's memory: the tests talk to it over HTTP (the browser) and read its database only
for what a person at the demo would read off a screen (the development outbox with the security code).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import io
import os
import re
import secrets
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

REPO = Path(__file__).resolve().parents[2]
CLI = [sys.executable, "-m", "jpki_remote"]
MUNICIPALITY = ("13103", "港区", "東京都")
# The PINs every holder of these tests starts with (test data, never real).
PINS = {"auth_pin": "1234", "sign_password": "ABC123", "residence_pin": "5678", "text_pin": "2468"}
# Where each PIN lives on the card: (applet, key reference).
PIN_REFS = {
    "auth_pin": ("jpki", 0x0018),
    "sign_password": ("jpki", 0x001B),
    "residence_pin": ("juki", 0x001C),
    "text_pin": ("text", 0x0011),
}
# Which photo of a person is on the card (the camera shows 1.jpg: never the same picture).
CARD_PHOTO = {"obama": "3.jpg", "biden": "2.jpg", "kit_harington": "3.jpg", "rose_leslie": "2.jpg",
              "alex_lacamoire": "2.jpg", "eric_clapton": "2.jpg", "john_lennon": "2.jpg"}


def free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def clean_env(**jpki: str) -> dict[str, str]:
    """The environment of a child process: no JPKI_ setting of the caller's shell, only ``jpki``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("JPKI_")}
    env.update({f"JPKI_{k.upper()}": v for k, v in jpki.items()})
    env.setdefault("JPKI_ALLOW_DEV_OUTBOX", "1")  # test servers use the development outbox (`serve` refuses it: S-14)
    env["PYTHONUNBUFFERED"] = "1"
    return env


class OutputTail:
    """Reads a child's combined output in a thread: the lines so far, and waiting for a line that matches."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        self.lines: list[str] = []
        self._cond = threading.Condition()
        self._thread = threading.Thread(target=self._read, args=(process,), daemon=True)
        self._thread.start()

    def _read(self, process: subprocess.Popen[str]) -> None:
        assert process.stdout is not None
        for line in process.stdout:
            with self._cond:
                self.lines.append(line.rstrip("\n"))
                self._cond.notify_all()

    def wait_for(self, pattern: str, timeout: float, alive: Any) -> re.Match[str]:
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        seen = 0
        with self._cond:
            while True:
                for line in self.lines[seen:]:
                    match = regex.search(line)
                    if match:
                        return match
                seen = len(self.lines)
                if not alive() or time.monotonic() > deadline:
                    raise RuntimeError(f"no line matching {pattern!r}; output:\n" + "\n".join(self.lines[-40:]))
                self._cond.wait(0.2)

    def text(self) -> str:
        with self._cond:
            return "\n".join(self.lines)


def _stop(process: subprocess.Popen[str], timeout: float = 15) -> None:
    """SIGTERM to the child we started (by its pid), SIGKILL if it does not go."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)


# ------------------------------------------------------------------------------------------------------ the server
class ServerProcess:
    """``jpki-remote serve`` on ``port`` over ``env``'s data directory."""

    def __init__(self, env: dict[str, str], port: int, log_file: Path) -> None:
        self.url = f"http://127.0.0.1:{port}"
        self.log_file = log_file
        self._log = log_file.open("w")
        self.process = subprocess.Popen(
            [*CLI, "serve", "--host", "127.0.0.1", "--port", str(port)],
            env=env, stdout=self._log, stderr=subprocess.STDOUT, text=True, cwd=REPO,
        )
        deadline = time.monotonic() + 90
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"the server exited ({self.process.returncode}):\n{self.log()[-4000:]}")
            try:
                if httpx.get(self.url + "/api/v1/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"the server did not answer in time:\n{self.log()[-4000:]}")
            time.sleep(0.25)

    def log(self) -> str:
        return self.log_file.read_text(errors="replace")

    def stop(self) -> None:
        _stop(self.process)
        self._log.close()


# ------------------------------------------------------------------------------------------------------ the agent
class AgentProcess:
    """``jpki-remote terminal agent`` of one terminal, one virtual card on its reader, its API on the loopback."""

    def __init__(self, env: dict[str, str], server_url: str, terminal: Terminal, card_id: str | None,
                 cards_dir: Path) -> None:
        port = free_port()
        command = [*CLI, "terminal", "agent", "--terminal-id", terminal.terminal_id, "--key-file",
                   str(terminal.key_file), "--server", server_url, "--cards-dir", str(cards_dir),
                   "--listen", f"127.0.0.1:{port}"]
        if card_id is not None:
            command += ["--card", card_id]
        self.process = subprocess.Popen(
            command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=REPO,
        )
        self.output = OutputTail(self.process)
        match = self.output.wait_for(r"page: (\S+)", 60, lambda: self.process.poll() is None)
        self.first_page_url = match.group(1)
        self.base_url = f"http://127.0.0.1:{port}"
        self.terminal = terminal

    @property
    def token(self) -> str:
        """The per-launch token of the agent's loopback API (from the fragment of the page URL it printed)."""
        from urllib.parse import parse_qs, urlsplit

        return parse_qs(urlsplit(self.first_page_url).fragment)["agent_token"][0]

    def call(self, method: str, path: str, json: dict[str, Any] | None = None) -> httpx.Response:
        return httpx.request(method, self.base_url + path, json=json, headers={"X-Agent-Token": self.token},
                             timeout=30)

    def insert(self, card_id: str) -> None:
        """Put the card on the (virtual) reader, as the holder does at the kiosk."""
        response = self.call("POST", "/v1/card", {"card_id": card_id})
        assert response.status_code == 204, response.text

    def status(self) -> dict[str, Any]:
        response = self.call("GET", "/v1/status")
        assert response.status_code == 200, response.text
        return dict(response.json())

    def stop(self) -> None:
        _stop(self.process)


# ------------------------------------------------------------------------------------------------------ the world
@dataclass
class Terminal:
    kind: str
    terminal_id: str
    key_file: Path


@dataclass
class Holder:
    person: str
    card_id: str
    resident_id: str
    code_b: str  # 照合番号B printed on the card face
    email: str
    pins: dict[str, str] = field(default_factory=lambda: dict(PINS))


@dataclass
class OcspAnswer:
    status: str  # good / revoked / unknown
    reason: str | None
    output: str


class E2EWorld:
    """The CAs, the registry, virtual cards and terminals in one data directory, served by a real server."""

    def __init__(self, data_dir: Path, faces_dir: Path) -> None:
        from jpki_remote.ca.authority import CertificateAuthority
        from jpki_remote.ca.keystore import open_keystore
        from jpki_remote.ca.setup import setup_authorities
        from jpki_remote.config import Settings
        from jpki_remote.issuer_keys import FileIssuerKeys
        from jpki_remote.registry import service as registry
        from jpki_remote.store import Database

        self.data_dir = data_dir
        self.faces_dir = faces_dir
        self.port = free_port()
        self.admin_token = secrets.token_urlsafe(24)
        self.env = clean_env(data_dir=str(data_dir), public_base_url=f"http://127.0.0.1:{self.port}",
                             admin_token=self.admin_token, delivery="outbox")
        self.settings = Settings(data_dir=data_dir, public_base_url=f"http://127.0.0.1:{self.port}",
                                 admin_token=self.admin_token, delivery="outbox")
        data_dir.mkdir(parents=True, exist_ok=True)
        self.db = Database(self.settings.effective_database_url)
        self.db.create_schema()
        self.keystore = open_keystore(self.settings)
        setup_authorities(self.db, self.keystore, self.settings)
        self.ca = CertificateAuthority(self.db, self.keystore, self.settings)
        self.master_key = FileIssuerKeys(data_dir / "issuer-keys").master_key(0)
        self.cards_dir = data_dir / "cards"
        with self.db.session() as session:
            self.municipality = registry.normalise_municipality_code(MUNICIPALITY[0])
            if session.get(registry.Municipality, self.municipality) is None:
                registry.create_municipality(session, *MUNICIPALITY)
        self.server: ServerProcess | None = None
        self._agents: list[AgentProcess] = []
        self._portraits: dict[str, bytes] = {}

    # ---- processes ---------------------------------------------------------------------------------------------
    def start_server(self) -> ServerProcess:
        self.server = ServerProcess(self.env, self.port, self.data_dir / "server.log")
        return self.server

    @property
    def url(self) -> str:
        assert self.server is not None
        return self.server.url

    def start_agent(self, terminal: Terminal, card_id: str | None, **settings: str) -> AgentProcess:
        """The terminal's agent; ``settings`` are its own ``JPKI_`` settings (e.g. ``terminal_retry_seconds``)."""
        env = {**self.env, **{f"JPKI_{name.upper()}": value for name, value in settings.items()}}
        agent = AgentProcess(env, self.url, terminal, card_id, self.cards_dir)
        self._agents.append(agent)
        return agent

    def stop_agent(self, agent: AgentProcess) -> None:
        agent.stop()
        if agent in self._agents:
            self._agents.remove(agent)

    def close(self) -> None:
        for agent in list(self._agents):
            self.stop_agent(agent)
        if self.server is not None:
            self.server.stop()
        self.db.dispose()

    # ---- registry, cards, terminals -----------------------------------------------------------------------------
    def portrait(self, person: str, photo: str | None = None) -> bytes:
        """The card-photo condition (greyscale JPEG 2000 portrait) of ``person``'s card photo."""
        from jpki_remote.proofing.face.card_photo import card_photo_from
        from jpki_remote.proofing.face.decode import decode_image
        from jpki_remote.proofing.face.engine import FaceEngine

        name = photo or CARD_PHOTO[person]
        key = f"{person}/{name}"
        if key not in self._portraits:
            rgb = decode_image((self.faces_dir / person / name).read_bytes())
            boxes = FaceEngine.shared().detect(rgb).boxes
            assert len(boxes) == 1, f"{key} must show one face"
            self._portraits[key] = card_photo_from(rgb, boxes[0])
        return self._portraits[key]

    def add_holder(self, person: str, *, birthday_in_days: int = 40, enrol_face: bool = True) -> Holder:
        """A resident of the municipality with a personalised card whose certificates expire in about
        ``birthday_in_days`` days (renewal window open), an e-mail contact and (optionally) the enrolled face."""
        from cryptography.hazmat.primitives import serialization

        from jpki_remote.ca.holder import HolderIdentity, Sex
        from jpki_remote.card import layout
        from jpki_remote.card.factory import CardPins, IssuedCertificates, create_card, test_holder
        from jpki_remote.card.issuer import IssuerSession
        from jpki_remote.card.store import CardStore
        from jpki_remote.procedures.ports import ProofingFace
        from jpki_remote.procedures.surface import sign_card_surface, surface_key
        from jpki_remote.registry import service as registry

        today = dt.date.today()
        birthday = today + dt.timedelta(days=birthday_in_days)
        if (birthday.month, birthday.day) == (2, 29):
            birthday += dt.timedelta(days=1)
        birth_date = birthday.replace(year=birthday.year - 45)
        issued_at = dt.datetime.now(dt.UTC) - dt.timedelta(days=5 * 365 - birthday_in_days - 5)
        card_expiry = today + dt.timedelta(days=5 * 365)
        card_id = "".join(secrets.choice("0123456789") for _ in range(12))
        name = f"試験\u3000{person.split('_')[0].capitalize()}"
        address = "東京都港区芝公園１丁目５番２５号"
        identity = HolderIdentity(holder_ref=card_id, municipality_code=MUNICIPALITY[0], birth_date=birth_date,
                                  name=name, sex=Sex.MALE, address=address, prefecture=MUNICIPALITY[2],
                                  city=MUNICIPALITY[1])
        issued: dict[str, Any] = {}

        def certificates(auth: Any, sign: Any, _holder: Any) -> IssuedCertificates:
            pair = self.ca.issue_pair(f"e2e-{card_id}", identity, auth, sign, card_expiry, issued_at=issued_at)
            issued["pair"] = pair
            der = serialization.Encoding.DER
            return IssuedCertificates(
                auth=pair.authentication.der,
                auth_ca=self.ca.authority_certificate("authentication").public_bytes(der),
                sign=pair.signature.der if pair.signature else None,
                sign_ca=self.ca.authority_certificate("signature").public_bytes(der),
            )

        portrait = self.portrait(person)
        made = create_card(
            test_holder(portrait, name=name, address=address, birth_date=birth_date, sex="1",
                        municipality_code=MUNICIPALITY[0], card_expiry=card_expiry,
                        security_code=f"{secrets.randbelow(10000):04d}"),
            issuer_master_key=self.master_key,
            pins=CardPins(auth=PINS["auth_pin"], sign=PINS["sign_password"], text=PINS["text_pin"],
                          juki=PINS["residence_pin"]),
            certificates=certificates,
            store=CardStore(self.cards_dir),
            card_id=card_id,
        )
        # the card centre signs the card face with its key in the CA key store; the server checks that signature
        sign_card_surface(made.card.transmit, self.master_key, made.verification_code_b, surface_key(self.keystore))
        made.card.reset()
        with IssuerSession(made.card, self.master_key) as issuer:
            surface = issuer.read_public_key("surface", layout.SURFACE_AP_KEY)
        made.card.reset()
        pair = issued["pair"]
        email = f"{person}.{card_id[-4:]}@example.jp"
        encoding = ProofingFace(self.settings).encode_reference(portrait) if enrol_face else None
        with self.db.session() as session:
            resident = registry.add_resident(session, MUNICIPALITY[0], family_name="試験",
                                             given_name=person.split("_")[0].capitalize(), address=address,
                                             birth_date=birth_date, sex=1)
            registry.register_card(
                session, card_id=card_id, resident_id=resident.id, card_expiry=card_expiry,
                diversification_data=made.card.state.kdd, issuer_key_version=0,
                card_public_key_der=surface.public_bytes(serialization.Encoding.DER,
                                                         serialization.PublicFormat.SubjectPublicKeyInfo),
            )
            registry.set_current_certificates(
                session, card_id, auth_serial=format(pair.authentication.serial, "x"),
                sign_serial=format(pair.signature.serial, "x"), facts_version=resident.facts_version,
            )
            registry.add_contact(session, resident.id, "email", email, verified=True)
            if encoding is not None:
                registry.enrol_face(session, card_id, encoding, "dlib-resnet-v1")
            resident_id = resident.id
        return Holder(person, card_id, resident_id, made.verification_code_b, email)

    def waiting_resident(self, person: str) -> tuple[str, str, str]:
        """A resident with no card yet and the card the card centre delivered for them (new issuance).
        Returns (resident id, card id, the card's 照合番号B)."""
        from jpki_remote.card.factory import deliver_card, test_holder
        from jpki_remote.card.store import CardStore
        from jpki_remote.registry import service as registry

        birth_date = dt.date(1990, 6, 12)
        address = "東京都港区六本木６丁目１０番１号"
        name = f"交付\u3000{person.split('_')[0].capitalize()}"
        with self.db.session() as session:
            resident = registry.add_resident(session, MUNICIPALITY[0], family_name="交付",
                                             given_name=person.split("_")[0].capitalize(), address=address,
                                             birth_date=birth_date, sex=2)
            resident_id = resident.id
        card_id = "".join(secrets.choice("0123456789") for _ in range(12))
        delivered = deliver_card(
            test_holder(self.portrait(person), name=name, address=address, birth_date=birth_date, sex="2",
                        municipality_code=MUNICIPALITY[0], card_expiry=dt.date.today() + dt.timedelta(days=3650),
                        security_code=f"{secrets.randbelow(10000):04d}"),
            issuer_master_key=self.master_key, store=CardStore(self.cards_dir), card_id=card_id,
        )
        return resident_id, card_id, delivered.verification_code_b

    def register_terminal(self, kind: str) -> Terminal:
        from jpki_remote.terminal.keys import load_or_create_key, public_bytes
        from jpki_remote.terminal.service import register_terminal

        key_file = self.data_dir / "terminals" / f"{kind}-{secrets.token_hex(4)}.key"
        key = load_or_create_key(key_file)
        with self.db.session() as session:
            row = register_terminal(session, kind=kind, name=f"試験{kind}端末 {key_file.stem[-4:]}",
                                    public_key=public_bytes(key),
                                    municipality_code=self.municipality if kind == "counter" else None)
            return Terminal(kind, row.id, key_file)

    def add_staff(self, staff_id: str, password: str) -> None:
        """A counter staff account of the municipality (``jpki-remote staff add``, password on stdin)."""
        result = subprocess.run(
            [*CLI, "staff", "add", staff_id, "--municipality", MUNICIPALITY[0], "--password-stdin"],
            input=password + "\n", env=self.env, capture_output=True, text=True, timeout=120, cwd=REPO,
        )
        assert result.returncode == 0, result.stdout + result.stderr

    # ---- what the holder receives ----------------------------------------------------------------------------
    def outbox_ids(self) -> int:
        from sqlalchemy import func, select

        from jpki_remote.proofing.models import DevOutboxMessage

        with self.db.session() as session:
            return int(session.scalar(select(func.coalesce(func.max(DevOutboxMessage.id), 0))) or 0)

    def security_code(self, address: str, *, after: int = 0, timeout: float = 30) -> str:
        """The security code in the newest development-outbox message to ``address`` (what the holder's phone or
        mailbox would show)."""
        from sqlalchemy import select

        from jpki_remote.proofing.models import DevOutboxMessage

        deadline = time.monotonic() + timeout
        while True:
            with self.db.session() as session:
                bodies = session.scalars(
                    select(DevOutboxMessage.body)
                    .where(DevOutboxMessage.address == address, DevOutboxMessage.id > after)
                    .order_by(DevOutboxMessage.id.desc())
                ).all()
            for body in bodies:
                match = re.search(r"(?<!\d)(\d{6,8})(?!\d)", body)
                if match:
                    return match.group(1)
            if time.monotonic() > deadline:
                raise AssertionError(f"no security code was sent to {address}")
            time.sleep(0.3)

    def messages_to(self, address: str) -> list[str]:
        from sqlalchemy import select

        from jpki_remote.proofing.models import DevOutboxMessage

        with self.db.session() as session:
            return list(session.scalars(select(DevOutboxMessage.body).where(DevOutboxMessage.address == address)))

    # ---- the card, from outside ----------------------------------------------------------------------------------
    @contextlib.contextmanager
    def card(self, card_id: str) -> Iterator[Any]:
        """A :class:`CardClient` on the card file (the agent using it must be stopped first)."""
        from jpki_remote.card.client import CardClient
        from jpki_remote.card.store import CardStore

        store = CardStore(self.cards_dir)
        with store.lock(card_id, timeout=10):
            card = store.open(card_id)
            try:
                yield CardClient(card)
            finally:
                card.reset()

    def card_certificates(self, card_id: str, sign_password: str) -> tuple[bytes, bytes]:
        """(auth certificate DER, signature certificate DER) as the card gives them."""
        with self.card(card_id) as client:
            auth = client.read_auth_certificate()
            sign = client.read_sign_certificate(sign_password)
        return _der(auth), _der(sign)

    def card_pin_ok(self, card_id: str, kind: str, value: str) -> bool:
        """VERIFY ``value`` as the ``kind`` PIN on the card: True if accepted, False if refused (counted)."""
        from jpki_remote.card.client import PinBlockedError, PinIncorrectError

        applet, ref = PIN_REFS[kind]
        with self.card(card_id) as client:
            client.select_ap(applet)
            try:
                client.verify(ref, value)
            except (PinIncorrectError, PinBlockedError):
                return False
        return True

    def card_pin_tries(self, card_id: str, kind: str) -> int:
        applet, ref = PIN_REFS[kind]
        with self.card(card_id) as client:
            client.select_ap(applet)
            return client.pin_tries(ref)

    # ---- status and audit, from outside ----------------------------------------------------------------------------
    def ocsp(self, der: bytes, kind: str, workdir: Path) -> OcspAnswer:
        """``openssl ocsp`` for one certificate against the server's OCSP endpoint, response verified against the
        CA certificate."""
        from cryptography import x509
        from cryptography.hazmat.primitives.serialization import Encoding

        certificate = x509.load_der_x509_certificate(der)
        workdir.mkdir(parents=True, exist_ok=True)
        ca_pem = workdir / f"ca-{kind}.pem"
        ca_pem.write_bytes(self.ca.authority_certificate(kind).public_bytes(Encoding.PEM))
        leaf = workdir / f"{kind}-{certificate.serial_number:x}.pem"
        leaf.write_bytes(certificate.public_bytes(Encoding.PEM))
        result = subprocess.run(
            ["openssl", "ocsp", "-issuer", str(ca_pem), "-cert", str(leaf), "-url", f"{self.url}/ocsp/{kind}",
             "-CAfile", str(ca_pem)],
            capture_output=True, text=True, timeout=60,
        )
        output = result.stdout + result.stderr
        assert result.returncode == 0, output
        assert "Response verify OK" in result.stderr, output
        match = re.search(rf"{re.escape(str(leaf))}: (\w+)", result.stdout)
        assert match, output
        reason = re.search(r"Reason: (\w+)", result.stdout)
        return OcspAnswer(match.group(1), reason.group(1) if reason else None, output)

    def audit_verify(self) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*CLI, "audit", "verify"], env=self.env, capture_output=True, text=True,
                              timeout=300, cwd=REPO)

    def procedures_of(self, card_id: str) -> list[Any]:
        from sqlalchemy import select

        from jpki_remote.procedures.models import Procedure

        with self.db.session() as session:
            rows = session.scalars(select(Procedure).where(Procedure.card_id == card_id)
                                   .order_by(Procedure.created_at)).all()
            return [(r.kind, r.target, r.channel, r.status.value, r.state, r.error_code) for r in rows]


    def audit_events(self, card_id: str, event_type: str) -> list[Any]:
        """The audit events ``<procedure kind>.<event_type>`` of every procedure on the card (what an auditor reads)."""
        from sqlalchemy import select

        from jpki_remote.audit.log import AuditLog
        from jpki_remote.procedures.models import Procedure

        with self.db.session() as session:
            ids = list(session.scalars(select(Procedure.id).where(Procedure.card_id == card_id)))
        log = AuditLog(self.db)
        found = []
        for procedure_id in ids:
            events = log.events(procedure_id=procedure_id, limit=500)
            found += [e for e in events if e.event_type.rsplit(".", 1)[-1] == event_type]
        return found


    def audit_events_of_type(self, event_type: str) -> list[Any]:
        """Every audit event of exactly that type (also those outside a procedure, e.g. limits lifted)."""
        from jpki_remote.audit.log import AuditLog

        log = AuditLog(self.db)
        found, after = [], 0
        while True:
            batch = log.events(after_seq=after or None, limit=500)
            found += [e for e in batch if e.event_type == event_type]
            if len(batch) < 500:
                return found
            after = batch[-1].seq


def _der(value: bytes) -> bytes:
    """A certificate EF holds the DER and filler: cut at the DER's own length."""
    from cryptography import x509

    if len(value) < 4 or value[0] != 0x30:
        raise ValueError("not a DER certificate")
    if value[1] < 0x80:
        length = 2 + value[1]
    else:
        count = value[1] & 0x7F
        length = 2 + count + int.from_bytes(value[2 : 2 + count], "big")
    der = value[:length]
    x509.load_der_x509_certificate(der)
    return der


def serial_of(der: bytes) -> int:
    from cryptography import x509

    return x509.load_der_x509_certificate(der).serial_number


def png_size(data: bytes) -> tuple[int, int]:
    from PIL import Image

    with Image.open(io.BytesIO(data)) as image:
        return image.size


PKCS11_MODULE = Path("/usr/lib/x86_64-linux-gnu/opensc-pkcs11.so")
AUTH_TOKEN = "JPKI (User Authentication PIN)"


def opensc_auth_login(stack_env: dict[str, str], workdir: Path, pin: str) -> subprocess.CompletedProcess[str]:
    """OpenSC's PKCS#11 module (``pkcs11-tool --login``) on the JPKI auth token of the card in the vpcd reader:
    logs in with ``pin`` and signs a few bytes with the auth key (a client we did not write)."""
    workdir.mkdir(parents=True, exist_ok=True)
    conf = workdir / "opensc.conf"
    conf.write_text("app default {\n  framework pkcs15 {\n    use_file_caching = no;\n  }\n}\n")
    home = workdir / "home"
    home.mkdir(exist_ok=True)
    data = workdir / "challenge.bin"
    data.write_bytes(b"jpki-remote e2e " + secrets.token_bytes(16))
    env = {**stack_env, "OPENSC_CONF": str(conf), "HOME": str(home), "XDG_CACHE_HOME": str(home / ".cache"),
           "LC_ALL": "C"}
    env.pop("OPENSC_DEBUG", None)
    return subprocess.run(
        ["pkcs11-tool", "--module", str(PKCS11_MODULE), "--token-label", AUTH_TOKEN, "--login", "--pin", pin,
         "--sign", "--mechanism", "SHA256-RSA-PKCS", "--id", "01", "--input-file", str(data),
         "--output-file", str(workdir / "signature.bin")],
        env=env, cwd=workdir, capture_output=True, text=True, timeout=120,
    )


class ScriptedDemo:
    """``jpki-remote demo --scripted`` on a fresh data directory, started in the background (it takes minutes; the
    other end-to-end tests run meanwhile) and waited for by the test that needs its data."""

    def __init__(self, data_dir: Path, report: Path, faces_dir: Path) -> None:
        self.data_dir = data_dir
        self.report = report
        self.log_file = data_dir.parent / "demo-scripted.log"
        self._log = self.log_file.open("w")
        env = clean_env()
        self.process = subprocess.Popen(
            [*CLI, "demo", "--scripted", "--data-dir", str(data_dir), "--faces", str(faces_dir),
             "--report", str(report)],
            env=env, stdout=self._log, stderr=subprocess.STDOUT, text=True, cwd=REPO,
        )

    def wait(self, timeout: float = 900) -> tuple[int, str]:
        code = self.process.wait(timeout)
        self._log.close()
        return code, self.log_file.read_text(errors="replace")

    def stop(self) -> None:
        _stop(self.process)
        if not self._log.closed:
            self._log.close()
