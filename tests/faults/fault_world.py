"""Process-level fault tests: the real server (`jpki-remote serve`) as a subprocess over a data directory, the real
terminal agent (relay, loopback API, virtual reader) talking to it over HTTP, and a page doing what the counter
page's scripts do. Faults are injected from outside: SIGKILL of the server process, a TCP proxy cut in front of
PostgreSQL, the card pulled from the agent's reader.

A *template* data directory (CA set up, issuer master key, audit key, one resident with a card in the renewal
window, a counter terminal and a staff account) is built once; every scenario runs on a copy of it, so each costs
only the renewal itself plus the server restarts.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "procedures"))
from procedure_world import PINS, World

from jpki_remote.audit.log import AuditLog
from jpki_remote.audit.signing import signer_from_settings
from jpki_remote.ca.authority import CertificateAuthority
from jpki_remote.ca.keystore import open_keystore
from jpki_remote.ca.models import Certificate, CertificateState
from jpki_remote.ca.setup import setup_authorities
from jpki_remote.card.store import CardStore
from jpki_remote.config import Settings
from jpki_remote.issuer_keys import FileIssuerKeys
from jpki_remote.procedures.legal_flow import LegalFlow
from jpki_remote.procedures.ports import AuditLogPort, Ports, ProofingNotices, StaticIssuerKeys
from jpki_remote.procedures.surface import surface_key
from jpki_remote.proofing.codes import SecurityCodes
from jpki_remote.store import Database
from jpki_remote.terminal.keys import load_or_create_key, public_bytes
from jpki_remote.terminal.launch import RunningAgent, start_agent
from jpki_remote.terminal.local_api import TOKEN_HEADER
from jpki_remote.terminal.readers import VirtualReader
from jpki_remote.terminal.service import register_terminal
from jpki_remote.terminal.staff import add_staff

API = "/api/v1"
CLI = Path(sys.executable).with_name("jpki-remote")
STAFF_ID, STAFF_PASSWORD = "fault-staff", "counter password 1"
ADMIN_TOKEN = "admin-" + "f" * 30
PROOFING_SECRET = "5" * 64
EXCHANGE_ROUTES = ("/exchange", "/new-pin")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def server_env(data_dir: Path, database_url: str = "") -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("JPKI_")}
    env.update(
        JPKI_DATA_DIR=str(data_dir),
        JPKI_DELIVERY="outbox",
        JPKI_ALLOW_DEV_OUTBOX="1",  # the development outbox (codes readable by the test); serve refuses it otherwise
        JPKI_PROOFING_SECRET=PROOFING_SECRET,
        JPKI_ADMIN_TOKEN=ADMIN_TOKEN,
    )
    if database_url:
        env["JPKI_DATABASE_URL"] = database_url
    return env


@dataclass
class ServerProcess:
    """`jpki-remote serve` on a fixed loopback port; killed with SIGKILL and started again on the same data."""

    data_dir: Path
    port: int
    database_url: str = ""
    log_path: Path | None = None
    process: subprocess.Popen[bytes] | None = None
    starts: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 60.0) -> None:
        log = open(self.log_path or os.devnull, "ab")  # noqa: SIM115 - handed to the child
        self.process = subprocess.Popen(
            [str(CLI), "serve", "--host", "127.0.0.1", "--port", str(self.port)],
            env=server_env(self.data_dir, self.database_url),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        self.starts += 1
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited with {self.process.returncode}; log {self.log_path}")
            try:
                if httpx.get(f"{self.url}{API}/health", timeout=1.0).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        raise RuntimeError(f"server not ready in {timeout} s; log {self.log_path}")

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(10)
        self.process = None

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()
        self.process = None


def run_cli(data_dir: Path, *args: str, database_url: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(CLI), *args], env=server_env(data_dir, database_url), capture_output=True, text=True, timeout=120
    )


# ---- the template ------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class CardRef:
    card_id: str
    auth_serial: int
    sign_serial: int | None


@dataclass
class Template:
    root: Path  # holds data/ (the server's data dir, SQLite inside unless a database URL is given), cards/, keys
    card_id: str
    auth_serial: int
    sign_serial: int | None
    terminal_id: str
    cards: list[CardRef] = field(default_factory=list)  # every card in the renewal window, the first one above

    def copy(self, target: Path) -> Path:
        shutil.copytree(self.root, target, symlinks=True)
        return target


def build_template(root: Path, faces_dir: Path, database_url: str = "", cards: int = 1) -> Template:
    """CA, issuer key (file, as the server reads it), audit key, ``cards`` residents each with a card in the renewal
    window, a counter terminal and a staff account — all in ``root``; the database is SQLite in ``root/data`` unless
    given."""
    data = root / "data"
    settings = Settings(data_dir=data, database_url=database_url, delivery="outbox", proofing_secret=PROOFING_SECRET)
    db = Database(settings.effective_database_url)
    db.create_schema()
    try:
        keystore = open_keystore(settings)
        setup_authorities(db, keystore, settings)
        ca = CertificateAuthority(db, keystore, settings)
        master = FileIssuerKeys(data / "issuer-keys").create(0)
        audit = AuditLog(db, signer_from_settings(settings))
        ports = Ports(
            ca=ca,
            issuer_keys=StaticIssuerKeys(master),
            codes=SecurityCodes(db, settings),
            notices=ProofingNotices(db, settings),
            audit=AuditLogPort(audit),
            legal_flow=LegalFlow(db, ca, data / "messaging-keys"),
            surface=surface_key(keystore),
        )
        photo = sorted((faces_dir / "amy_adams").iterdir())[0].read_bytes()
        world = World(db, settings, ca, master, ports, audit, photo)
        refs = []
        for _ in range(cards):
            issued = world.issue_card()
            CardStore(root / "cards").add(issued.card.state)
            refs.append(CardRef(issued.card_id, issued.auth_serial, issued.sign_serial))
        key = load_or_create_key(root / "counter.key")
        with db.session() as s:
            terminal = register_terminal(
                s, kind="counter", name="fault-window", public_key=public_bytes(key), municipality_code="131016"
            )
            terminal_id = terminal.id
            add_staff(s, STAFF_ID, STAFF_PASSWORD, municipality_code="131016")
    finally:
        db.dispose()
    first = refs[0]
    return Template(root, first.card_id, first.auth_serial, first.sign_serial, terminal_id, refs)


# ---- what can be checked while the server is down ----------------------------------------------------------------
def certificates(database_url: str, card_id: str) -> list[tuple[str, str, str]]:
    """(authority, serial hex, state) of every certificate row of the card, read straight from the database."""
    db = Database(database_url)
    try:
        with db.session() as s:
            rows = s.query(Certificate).filter(Certificate.holder_ref == card_id).all()
            return [(str(r.authority), r.serial_hex, str(r.state)) for r in rows]
    finally:
        db.dispose()


def card_auth_serial(cards_dir: Path, card_id: str) -> int:
    """The serial of the auth certificate the card holds *as active* now (read from its state file, not written)."""
    from cryptography import x509

    from jpki_remote.card.client import CardClient
    from jpki_remote.card.virtual import VirtualCard

    card = VirtualCard(CardStore(cards_dir).load(card_id))  # no persist: a read-only look
    return x509.load_der_x509_certificate(CardClient(card).read_auth_certificate()).serial_number


# ---- the agent's connection to the server, with a fault hook ------------------------------------------------------
class HookedTransport(httpx.HTTPTransport):
    """The agent's HTTP transport. ``hook(n, response)`` runs after the n-th exchange round trip has been answered
    by the server (before the agent sees the answer); it returns the response, or raises to make it look lost.
    Answers 5xx are counted: ``unavailable`` (503 with Retry-After) and ``server_errors`` (any other)."""

    def __init__(self, hook: Callable[[int, httpx.Response], httpx.Response] | None = None) -> None:
        super().__init__()
        self.hook = hook
        self.exchanges = 0
        self.unavailable = 0
        self.server_errors: list[tuple[int, str]] = []
        self.lock = threading.Lock()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = super().handle_request(request)
        if response.status_code >= 500:
            response.read()
            with self.lock:
                if response.status_code == 503 and response.headers.get("retry-after"):
                    self.unavailable += 1
                else:
                    self.server_errors.append((response.status_code, response.text[:300]))
        if request.method == "POST" and request.url.path.endswith(EXCHANGE_ROUTES):
            response.read()
            with self.lock:
                self.exchanges += 1
                n = self.exchanges
            if self.hook is not None and response.status_code < 500:
                return self.hook(n, response)
        return response


# ---- the counter page --------------------------------------------------------------------------------------------
@dataclass
class CounterRun:
    """A counter renewal: the agent with its hooked transport, and the page (browser session, staff signed in)."""

    server: ServerProcess
    agent: RunningAgent
    transport: HookedTransport
    page: httpx.Client
    local: httpx.Client
    token: str = ""
    csrf: dict[str, str] = field(default_factory=dict)
    page_errors: int = 0

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}", **self.csrf} if self.token else {}

    def call(self, method: str, path: str, json: Any = None, *, timeout: float = 60.0) -> dict[str, Any]:
        """A page call, retried while the server is down or answers 5xx (the page's scripts retry too)."""
        deadline = time.monotonic() + timeout
        last: object = None
        while True:
            try:
                response = self.page.request(method, API + path, json=json, headers=self.auth)
                if response.status_code < 500:
                    assert response.status_code < 300, (path, response.status_code, response.text)
                    return response.json()
                last = (response.status_code, response.text[:300])
            except httpx.TransportError as exc:
                last = exc
            self.page_errors += 1
            if time.monotonic() > deadline:
                raise AssertionError(f"{method} {path}: server unavailable for {timeout} s ({last!r})")
            time.sleep(0.1)

    def open_page(self) -> None:
        code = self.agent.service.browser_link()
        self.token = self.call("POST", "/terminals/browser-session", {"code": code})["token"]
        answer = self.call("POST", "/login/staff", {"staff_id": STAFF_ID, "password": STAFF_PASSWORD})
        self.csrf = {"X-CSRF-Token": answer["csrf_token"]}

    def start_renewal(self, card_id: str) -> str:
        assert self.local.post("/v1/card", json={"card_id": card_id}).status_code == 204
        view = self.call(
            "POST", "/counter/procedures", {"kind": "renewal", "target": "certificates", "card_id": card_id}
        )
        assert self.local.post(f"/v1/procedures/{view['id']}/drive", json={}).status_code == 202
        return str(view["id"])

    def follow(
        self,
        procedure_id: str,
        *,
        timeout: float = 120.0,
        until: Callable[[], bool] | None = None,
        relay_error_ends: bool = False,
    ) -> dict[str, Any]:
        """Poll like the page: type the auth PIN when the agent asks, record the staff check, stop at the end (or
        once ``until()`` holds, or — with ``relay_error_ends`` — when the relay ended ``error``)."""
        deadline = time.monotonic() + timeout
        answered: set[tuple[str, bool, int]] = set()
        view: dict[str, Any] = {}
        while time.monotonic() < deadline:
            if until is not None and until():
                return view
            view = self.call("GET", f"/procedures/{procedure_id}")
            if view["status"] != "active":
                return view
            status = self.local.get("/v1/status").json()
            relay = status["relay"]["state"]
            if relay_error_ends and relay == "error":
                return view
            assert relay not in ("error", "failed", "stopped"), status
            request = status["pin_request"]
            if request is not None and (request["kind"], request["new"], request["attempt"]) not in answered:
                answered.add((request["kind"], request["new"], request["attempt"]))
                typed = {"kind": request["kind"], "value": PINS[request["kind"]], "new": request["new"]}
                assert self.local.post("/v1/pin", json=typed).status_code == 204
                continue
            if view.get("waiting_for") == "staff_check":
                self.call("POST", f"/counter/procedures/{procedure_id}/staff-check", {"documents": ["driver_licence"]})
                continue
            time.sleep(0.05)
        raise AssertionError(f"procedure {procedure_id} did not end in {timeout} s: {view}")

    def close(self) -> None:
        self.agent.stop()
        self.page.close()
        self.local.close()


def counter_run(
    server: ServerProcess,
    template: Template,
    cards_dir: Path,
    transport: HookedTransport,
    retry_seconds: float | None = None,
) -> CounterRun:
    """The agent (the relay's own retry budget unless ``retry_seconds`` is given) and the page, signed in."""
    key = load_or_create_key(template.root / "counter.key")
    agent = start_agent(
        server_url=server.url,
        terminal_id=template.terminal_id,
        key=key,
        reader=VirtualReader(cards_dir),
        listen="127.0.0.1:0",
        http=httpx.Client(base_url=server.url, timeout=30.0, transport=transport),
        poll_seconds=0.05,
    )
    agent.service.retry_delays = (0.2, 0.5, 1.0, 2.0)  # then every 5 s, for the relay's budget
    if retry_seconds is not None:
        agent.service.retry_seconds = retry_seconds
    page = httpx.Client(base_url=server.url, timeout=30.0)
    local = httpx.Client(base_url=agent.base_url, timeout=30.0, headers={TOKEN_HEADER: agent.token})
    run = CounterRun(server, agent, transport, page, local)
    run.open_page()
    return run


def new_certificates(rows: list[tuple[str, str, str]], template: Template) -> list[tuple[str, str, str]]:
    old = {format(template.auth_serial, "x"), format(template.sign_serial or 0, "x")}
    return [r for r in rows if r[1] not in old and r[2] != str(CertificateState.RESERVED)]


__all__ = ["PINS", "CardRef", "CertificateState", "Template"]
