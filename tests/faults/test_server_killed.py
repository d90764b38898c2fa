"""Kill the server (SIGKILL) at every exchange round trip of a counter renewal, restart it on the same data, and let
the real agent resume: the renewal completes, exactly one new certificate pair is issued, the old certificates are
revoked only once the card has committed the new keys, the card signs with its new keys, the audit log verifies.

Two variants per step k: the agent got the k-th answer before the kill (``answered``), or the server did the work
but the answer never reached the agent, which sends the same request again to the new process (``lost``)."""

from __future__ import annotations

import hashlib
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, utils
from fault_world import (
    PINS,
    CertificateState,
    HookedTransport,
    ServerProcess,
    Template,
    card_auth_serial,
    certificates,
    counter_run,
    free_port,
    new_certificates,
    run_cli,
)

from jpki_remote.card.client import CardClient
from jpki_remote.card.store import CardStore

SHA256_PREFIX = bytes.fromhex("3031300d060960864801650304020105000420")


@dataclass
class Outcome:
    k: int
    variant: str
    status: str = ""
    exchanges: int = 0
    seconds: float = 0.0
    problems: list[str] = field(default_factory=list)


def _database_url(root: Path) -> str:
    return f"sqlite:///{root / 'data' / 'jpki.db'}"


def _check_card_signs(root: Path, template: Template, new_rows: list[tuple[str, str, str]], out: Outcome) -> None:
    """The card signs with its new keys; the signatures verify against the new certificates from the CA."""
    from jpki_remote.ca.models import Certificate
    from jpki_remote.store import Database

    db = Database(_database_url(root))
    try:
        with db.session() as s:
            ders = {
                str(r.authority): bytes(r.der)
                for r in s.query(Certificate).filter(Certificate.serial_hex.in_([row[1] for row in new_rows]))
            }
    finally:
        db.dispose()
    client = CardClient(CardStore(root / "cards").open(template.card_id))
    digest = hashlib.sha256(f"fault test {out.variant} {out.k}".encode()).digest()
    signatures = {
        "authentication": client.sign_with_auth_key(PINS["auth_pin"], SHA256_PREFIX + digest),
        "signature": client.sign_with_sign_key(PINS["sign_password"], SHA256_PREFIX + digest),
    }
    for authority, signature in signatures.items():
        certificate = x509.load_der_x509_certificate(ders[authority])
        try:
            certificate.public_key().verify(  # type: ignore[union-attr, call-arg]
                signature, digest, padding.PKCS1v15(), utils.Prehashed(hashes.SHA256())
            )
        except Exception as exc:
            out.problems.append(f"{authority} signature does not verify with the new certificate: {exc!r}")


def renewal_with_kill(template: Template, root: Path, k: int, variant: str) -> Outcome:
    """One counter renewal on a copy of the template, the server SIGKILLed after the k-th exchange (k=0: none)."""
    out = Outcome(k, variant)
    began = time.monotonic()
    template.copy(root)
    url = _database_url(root)
    old_auth = format(template.auth_serial, "x")
    server = ServerProcess(root / "data", free_port(), log_path=root / "server.log")
    server.start()

    def hook(n: int, response: httpx.Response) -> httpx.Response:
        if n != k:
            return response
        server.kill()
        # the server is dead: nothing moves; look at the database and the card as they are
        rows = certificates(url, template.card_id)
        fresh = new_certificates(rows, template)
        if len(fresh) > 2:
            out.problems.append(f"at the kill: {len(fresh)} new certificates {fresh}")
        old_state = next(state for _, serial, state in rows if serial == old_auth)
        on_card = card_auth_serial(root / "cards", template.card_id)
        if old_state == str(CertificateState.REVOKED) and on_card == template.auth_serial:
            out.problems.append("at the kill: old auth certificate revoked but the card still has it active")
        server.start()
        if variant == "lost":
            raise httpx.ReadError("the answer was lost with the server")
        return response

    transport = HookedTransport(hook)
    run = counter_run(server, template, root / "cards", transport)
    try:
        procedure_id = run.start_renewal(template.card_id)
        final = run.follow(procedure_id)
        out.status = final["status"]
        out.exchanges = transport.exchanges
        assert run.agent.service.wait(20) == "done", run.local.get("/v1/status").json()
    finally:
        run.close()
        server.stop()
    if k and server.starts != 2:
        out.problems.append(f"the server was started {server.starts} times (the kill at {k} did not happen)")
    if out.status != "completed":
        out.problems.append(f"procedure ended {out.status}: {final.get('error')}")
    rows = certificates(url, template.card_id)
    fresh = new_certificates(rows, template)
    kinds = sorted(authority for authority, _, _ in fresh)
    if kinds != ["authentication", "signature"] or any(s != str(CertificateState.ISSUED) for _, _, s in fresh):
        out.problems.append(f"expected exactly one new issued pair, got {fresh}")
    old = {serial: state for _, serial, state in rows if serial not in {r[1] for r in fresh}}
    if any(state != str(CertificateState.REVOKED) for state in old.values()):
        out.problems.append(f"old certificates not all revoked: {old}")
    if card_auth_serial(root / "cards", template.card_id) != int(
        next(s for a, s, _ in fresh if a == "authentication") if fresh else "0", 16
    ):
        out.problems.append("the card's active auth certificate is not the new one")
    if not out.problems:
        _check_card_signs(root, template, fresh, out)
    verify = run_cli(root / "data", "audit", "verify")
    if verify.returncode != 0:
        out.problems.append(f"audit verify failed: {verify.stdout} {verify.stderr}")
    out.seconds = time.monotonic() - began
    return out


def test_undisturbed_counter_renewal_as_a_subprocess(sqlite_template: Template, tmp_path: Path) -> None:
    out = renewal_with_kill(sqlite_template, tmp_path / "run", 0, "none")
    assert out.problems == [], out
    assert out.exchanges >= 3, out
    print(f"\nundisturbed counter renewal: {out.exchanges} exchange round trips, {out.seconds:.1f} s")


def kill_points(steps: int) -> list[int]:
    """Every step with JPKI_FAULT_SWEEP=all (2 x ~54 server restarts, ~25 min); by default a spread over the renewal:
    the first steps (possession), the quarter points (key generation, issuance, writing) and the last (COMMIT, end)."""
    if os.environ.get("JPKI_FAULT_SWEEP") == "all":
        return list(range(1, steps + 1))
    return sorted({1, 2, steps // 4, steps // 2, (3 * steps) // 4, steps - 1, steps} - {0})


@pytest.mark.slow
@pytest.mark.parametrize("variant", ["answered", "lost"])
def test_server_killed_at_every_step_of_a_renewal(sqlite_template: Template, tmp_path: Path, variant: str) -> None:
    baseline = renewal_with_kill(sqlite_template, tmp_path / "baseline", 0, "none")
    assert baseline.problems == [], baseline
    steps = baseline.exchanges
    outcomes = [renewal_with_kill(sqlite_template, tmp_path / f"k{k}", k, variant) for k in kill_points(steps)]
    for out in outcomes:
        print(f"{variant} k={out.k}/{steps}: {out.status} in {out.seconds:.1f} s, {out.exchanges} exchanges")
    failed = [out for out in outcomes if out.problems]
    assert failed == [], "\n".join(f"k={o.k}: {o.problems}" for o in failed)
