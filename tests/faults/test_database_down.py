"""The database briefly down during a counter renewal: the real server (`jpki-remote serve`, one process for the
whole module, never restarted) on PostgreSQL through a TCP proxy that drops every connection and refuses new
ones for a few seconds, the real terminal agent relaying the card, and the counter page's calls.

Each fault point uses its own card. The outage is started either when the agent receives a given answer (the
card then carries on while the database is away) or when the server sends a given statement (the statement is
lost with the connection, or — for a COMMIT — delivered just before the cut, its outcome unknown to the server).
After each outage the renewal completes (resumed) or, when the staff cancel it during the outage, is rolled back
cleanly; in both cases: the server answered 503 with Retry-After (never another 5xx), the card is in a known state
(old certificates active and valid, or the new ones committed and the old revoked), no certificate was issued
twice, an issued but uncommitted certificate is revoked, the card signs with its active keys, and the audit log
verifies."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, utils
from db_proxy import DatabaseProxy, create_database, drop_database, proxied
from fault_world import (
    PINS,
    CardRef,
    CertificateState,
    HookedTransport,
    ServerProcess,
    Template,
    build_template,
    card_auth_serial,
    counter_run,
    free_port,
)

from jpki_remote.audit.log import AuditLog
from jpki_remote.audit.signing import signer_from_settings
from jpki_remote.ca.models import Certificate
from jpki_remote.card.client import CardClient
from jpki_remote.card.store import CardStore
from jpki_remote.config import Settings
from jpki_remote.store import Database

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

OUTAGE_SECONDS = 3.0
SHA256_PREFIX = bytes.fromhex("3031300d060960864801650304020105000420")
STORE_ISSUED = b"UPDATE ca_certificates SET state=$1, der"  # the CA stores a signed certificate
REVOKE = b"UPDATE ca_certificates SET state=$1, revoked_at"  # the CA revokes one


def _commit_apdu(view: dict[str, Any]) -> bool:
    """The answer that carries COMMIT (issuer INS F3) to the card."""
    return view["state"] == "commit" and any(
        str(r.get("apdu", ""))[2:4].lower() == "f3" for r in view["exchange"]["requests"]
    )


@dataclass(frozen=True)
class Fault:
    name: str
    what: str
    at_answer: Callable[[int, dict[str, Any]], bool] | None = None  # cut when the agent receives this answer
    at_statement: tuple[bytes, bytes | None, bool] | None = None  # (pattern, after, forward) sent by the server
    cancel: bool = False  # the staff cancel the renewal during the outage (the agent stops relaying first)
    relay_budget: float | None = None  # the relay's retry budget, when shorter than the outage
    outage: float = OUTAGE_SECONDS  # 0: every connection dropped, the database back at once (a blip)


FAULTS = [
    Fault(
        "proofing",
        "during the card-possession proof, before any change to the card",
        at_answer=lambda n, view: view["state"] == "card_proof" and n == 2,
    ),
    Fault(
        "issuance_lost",
        "the CA's store of the signed certificates is lost (new keys pending on the card)",
        at_statement=(STORE_ISSUED, None, False),
    ),
    Fault(
        "issuance_blip",
        "every connection dropped while the CA stores the certificates, the database back at once",
        at_statement=(STORE_ISSUED, None, False),
        outage=0.0,
    ),
    Fault(
        "issuance_commit_unknown",
        "the CA's COMMIT of the issued certificates reaches the database, its answer does not",
        at_statement=(b"COMMIT", STORE_ISSUED, True),
    ),
    Fault(
        "card_commits_meanwhile",
        "the COMMIT has left for the card: the card commits while the database is away",
        at_answer=lambda n, view: _commit_apdu(view),
    ),
    Fault(
        "revocation",
        "revoking the old certificates after the card committed",
        at_statement=(REVOKE, None, False),
    ),
    Fault(
        "cancelled_after_issuance",
        "certificates issued, not yet on the card; the staff cancel while the database is away",
        at_answer=lambda n, view: view["state"] == "write_certificates",
        cancel=True,
    ),
    Fault(
        "relay_gives_up",
        "down longer than the relay's retry budget: it ends with a clear error, the page drives it again",
        at_answer=lambda n, view: view["state"] == "generate_keys" and n >= 12,
        relay_budget=1.0,
    ),
]


@dataclass
class DatabaseDownWorld:
    template: Template
    database_url: str  # straight to PostgreSQL, for the checks
    proxy: DatabaseProxy
    server: ServerProcess

    @property
    def root(self) -> Path:
        return self.template.root


@pytest.fixture(scope="module")
def down_world(tmp_path_factory: pytest.TempPathFactory, faces_dir: Path) -> Iterator[DatabaseDownWorld]:
    root = tmp_path_factory.mktemp("database-down") / "world"
    url = create_database()
    try:
        template = build_template(root, faces_dir, database_url=url, cards=len(FAULTS))
        with proxied(url) as (proxy, through):
            server = ServerProcess(root / "data", free_port(), database_url=through, log_path=root / "server.log")
            server.start()
            try:
                yield DatabaseDownWorld(template, url, proxy, server)
            finally:
                server.stop()
    finally:
        drop_database(url)


@dataclass
class Outcome:
    fault: str
    status: str = ""
    error: str | None = None
    seconds: float = 0.0
    problems: list[str] = field(default_factory=list)


def _rows(url: str, card_id: str) -> list[Certificate]:
    db = Database(url)
    try:
        with db.session() as s:
            return list(s.query(Certificate).filter(Certificate.holder_ref == card_id))
    finally:
        db.dispose()


def _signs_with(world: DatabaseDownWorld, card: CardRef, ders: dict[str, bytes], out: Outcome) -> None:
    """The card signs with its active keys; the signatures verify against ``ders`` (authority → certificate)."""
    client = CardClient(CardStore(world.root / "cards").open(card.card_id))
    digest = hashlib.sha256(f"database down {out.fault}".encode()).digest()
    signatures = {
        "authentication": client.sign_with_auth_key(PINS["auth_pin"], SHA256_PREFIX + digest),
        "signature": client.sign_with_sign_key(PINS["sign_password"], SHA256_PREFIX + digest),
    }
    for authority, signature in signatures.items():
        key = x509.load_der_x509_certificate(ders[authority]).public_key()
        try:
            key.verify(signature, digest, padding.PKCS1v15(), utils.Prehashed(hashes.SHA256()))  # type: ignore[union-attr, call-arg]
        except Exception as exc:
            out.problems.append(f"the card's {authority} signature does not verify with {authority} cert: {exc!r}")


def _audit_verifies(world: DatabaseDownWorld) -> bool:
    db = Database(world.database_url)
    try:
        settings = Settings(data_dir=world.root / "data", database_url=world.database_url)
        return AuditLog(db, signer_from_settings(settings)).verify(None).ok
    finally:
        db.dispose()


def _check(
    world: DatabaseDownWorld, card: CardRef, fault: Fault, out: Outcome, transport: HookedTransport, log: str
) -> None:
    proxy = world.proxy
    if "database unavailable on " not in log:
        out.problems.append("the server did not log a refused request")
    if "Traceback" in log:
        out.problems.append("a stack trace in the server log: " + log[log.index("Traceback") :][:3000])
    if not _audit_verifies(world):
        out.problems.append("the audit log does not verify")
    if [c.reason for c in proxy.cuts if c.reason == fault.name] != [fault.name]:
        out.problems.append(f"the outage did not happen as planned: {proxy.cuts}")
    if transport.unavailable == 0:
        out.problems.append("the agent never got a 503 with Retry-After")
    if transport.server_errors:
        out.problems.append(f"other 5xx answers: {transport.server_errors}")
    if world.server.process is None or world.server.process.poll() is not None or world.server.starts != 1:
        out.problems.append("the server process did not survive or was restarted")
    rows = _rows(world.database_url, card.card_id)
    old_serials = {format(card.auth_serial, "x"), format(card.sign_serial or 0, "x")}
    old = [r for r in rows if r.serial_hex in old_serials]
    new = [r for r in rows if r.serial_hex not in old_serials]
    kinds = sorted(str(r.authority) for r in new)
    if kinds != ["authentication", "signature"]:  # one pair: issued once, no stray reservation
        out.problems.append(f"expected one new pair, got {[(str(r.authority), str(r.state)) for r in new]}")
    on_card = card_auth_serial(world.root / "cards", card.card_id)
    if fault.cancel:
        expected = ("rolled_back", "cancelled")
        if any(r.state != CertificateState.ISSUED for r in old):
            out.problems.append(f"old certificates not valid after the rollback: {[str(r.state) for r in old]}")
        if any(r.state != CertificateState.REVOKED for r in new):
            out.problems.append(f"issued but uncommitted certificates not revoked: {[str(r.state) for r in new]}")
        if on_card != card.auth_serial:
            out.problems.append("the card's active auth certificate is not the old one after the rollback")
        active = old
    else:
        expected = ("completed", None)
        if any(r.state != CertificateState.ISSUED for r in new):
            out.problems.append(f"new certificates not all issued: {[str(r.state) for r in new]}")
        if any(r.state != CertificateState.REVOKED for r in old):
            out.problems.append(f"old certificates not all revoked: {[str(r.state) for r in old]}")
        if not new or on_card != int(next(r.serial_hex for r in new if str(r.authority) == "authentication"), 16):
            out.problems.append("the card's active auth certificate is not the new one")
        active = new
    if (out.status, out.error) != expected:
        out.problems.append(f"procedure ended {out.status} ({out.error}), expected {expected}")
    if not out.problems:
        _signs_with(world, card, {str(r.authority): bytes(r.der) for r in active}, out)


def renewal_with_outage(world: DatabaseDownWorld, fault: Fault) -> Outcome:
    out = Outcome(fault.name)
    began = time.monotonic()
    card = world.template.cards[FAULTS.index(fault)]
    proxy = world.proxy
    proxy.drop_connections()  # each statement's text on the wire again (see DatabaseProxy.drop_connections)
    if fault.at_statement is not None:
        pattern, after, forward = fault.at_statement
        proxy.cut_on(pattern, after=after, forward=forward, seconds=fault.outage, reason=fault.name)
    armed = [fault.at_answer]

    def hook(n: int, response: httpx.Response) -> httpx.Response:
        if armed[0] is not None and armed[0](n, response.json()):
            armed[0] = None
            proxy.cut(fault.outage, reason=fault.name)
        return response

    log_path = world.root / "server.log"
    log_start = log_path.stat().st_size
    transport = HookedTransport(hook)
    run = counter_run(world.server, world.template, world.root / "cards", transport, fault.relay_budget)
    try:
        procedure_id = run.start_renewal(card.card_id)
        if fault.cancel:
            run.follow(procedure_id, until=lambda: bool(proxy.cuts) and proxy.cuts[-1].reason == fault.name)
            assert run.local.post("/v1/cancel").status_code == 204  # the page stops the agent, then the server
            final = run.call("POST", f"/procedures/{procedure_id}/cancel")  # retried while the database is away
        elif fault.relay_budget is not None:
            view = run.follow(procedure_id, relay_error_ends=True)
            relay = run.local.get("/v1/status").json()["relay"]
            if relay != {"state": "error", "error": "unavailable"} or view.get("status") != "active":
                out.problems.append(f"the relay did not end with a clear error: {relay}, {view.get('status')}")
            assert proxy.wait_restored(30)
            assert run.local.post(f"/v1/procedures/{procedure_id}/drive", json={}).status_code == 202
            final = run.follow(procedure_id)
        else:
            final = run.follow(procedure_id)
        out.status, out.error = final["status"], (final.get("error") or {}).get("code")
        assert proxy.wait_restored(30)
        if out.status == "completed":
            assert run.agent.service.wait(20) == "done", run.local.get("/v1/status").json()
    finally:
        run.close()
    with log_path.open("rb") as handle:
        handle.seek(log_start)
        log = handle.read().decode(errors="replace")
    _check(world, card, fault, out, transport, log)
    out.seconds = time.monotonic() - began
    return out


@pytest.mark.parametrize("fault", FAULTS, ids=[f.name for f in FAULTS])
def test_database_briefly_down_during_a_renewal(down_world: DatabaseDownWorld, fault: Fault) -> None:
    out = renewal_with_outage(down_world, fault)
    print(f"\n{fault.name} ({fault.what}): {out.status} in {out.seconds:.1f} s")
    assert out.problems == [], out
