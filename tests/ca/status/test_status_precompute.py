"""Precomputed OCSP responses: written by the CA hook, refreshed before they go stale, never overwritten by an older
one; the background worker publishes a revoked certificate's shard without being asked."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

from cryptography.x509 import ocsp
from sqlalchemy import select, update
from status_helpers import StatusEnv

from jpki_remote.ca.models import AuthorityKind, CrlShard, OcspResponse
from jpki_remote.ca.status import precompute

AUTH = AuthorityKind.AUTHENTICATION


def _responses(env: StatusEnv, serial: int) -> dict[str, OcspResponse]:
    with env.service.db.session() as session:
        rows = session.execute(
            select(OcspResponse).where(OcspResponse.authority == AUTH, OcspResponse.serial_hex == format(serial, "x"))
        ).scalars()
        return {row.hash_algorithm: row for row in rows}


def test_issue_and_revoke_write_both_hash_algorithms(status_env: StatusEnv) -> None:
    issued = status_env.issue()
    stored = _responses(status_env, issued.serial)
    assert set(stored) == {"sha1", "sha256"}
    for algorithm, row in stored.items():
        parsed = ocsp.load_der_ocsp_response(row.der)
        assert parsed.hash_algorithm.name == algorithm
        assert parsed.certificate_status is ocsp.OCSPCertStatus.GOOD
        assert row.cert_status == "good"
    status_env.ca.revoke(AUTH, issued.serial, "keyCompromise")
    revoked = _responses(status_env, issued.serial)
    assert {row.cert_status for row in revoked.values()} == {"revoked"}
    assert ocsp.load_der_ocsp_response(revoked["sha256"].der).certificate_status is ocsp.OCSPCertStatus.REVOKED


def test_refresh_due_resigns_stale_missing_and_mismatched(status_env: StatusEnv) -> None:
    db, keys, settings = status_env.service.db, status_env.service.keys, status_env.settings
    stale = status_env.issue()
    missing = status_env.issue()
    mismatched = status_env.issue()
    soon = datetime.now(UTC) + timedelta(hours=1)  # inside ocsp_refresh_before_hours
    with db.session() as session:
        session.execute(
            update(OcspResponse).where(OcspResponse.serial_hex == format(stale.serial, "x")).values(next_update=soon)
        )
        session.execute(OcspResponse.__table__.delete().where(OcspResponse.serial_hex == format(missing.serial, "x")))
    status_env.service.close()  # unsubscribes: the revocation below must be found by the sweep alone
    status_env.ca.revoke(AUTH, mismatched.serial, "superseded")
    assert {r.cert_status for r in _responses(status_env, mismatched.serial).values()} == {"good"}

    done = precompute.refresh_due(db, keys, settings)
    assert done >= 3
    assert all(r.cert_status == "revoked" for r in _responses(status_env, mismatched.serial).values())
    assert set(_responses(status_env, missing.serial)) == {"sha1", "sha256"}
    for row in _responses(status_env, stale.serial).values():
        next_update = row.next_update if row.next_update.tzinfo else row.next_update.replace(tzinfo=UTC)
        assert next_update > datetime.now(UTC) + timedelta(hours=settings.ocsp_refresh_before_hours)
    assert precompute.refresh_due(db, keys, settings) == 0  # nothing left to do


def test_an_older_response_never_replaces_a_newer_one(status_env: StatusEnv) -> None:
    db, keys, settings = status_env.service.db, status_env.service.keys, status_env.settings
    issued = status_env.issue()
    status_env.ca.revoke(AUTH, issued.serial, "keyCompromise")
    newest = _responses(status_env, issued.serial)["sha1"].produced_at
    # a refresher that read the status earlier (still "good" then) finishes late: its write must lose
    precompute.refresh(db, keys, settings, AUTH, [issued.serial], now=datetime.now(UTC) - timedelta(hours=2))
    after = _responses(status_env, issued.serial)
    assert after["sha1"].produced_at == newest
    assert after["sha1"].cert_status == "revoked"


def test_background_worker_publishes_the_revoked_shard(status_env: StatusEnv) -> None:
    worker = status_env.service.start_background(interval=3600)
    try:
        deadline = time.monotonic() + 30
        while worker.runs < 1 and time.monotonic() < deadline:
            time.sleep(0.05)
        issued = status_env.issue(shard=2)
        with status_env.service.db.session() as session:
            before = session.get(CrlShard, (AUTH, 2)).crl_number
        status_env.ca.revoke(AUTH, issued.serial, "cessationOfOperation")  # the hook wakes the worker
        while time.monotonic() < deadline:
            with status_env.service.db.session() as session:
                if session.get(CrlShard, (AUTH, 2)).crl_number > before:
                    break
            time.sleep(0.05)
        with status_env.service.db.session() as session:
            assert session.get(CrlShard, (AUTH, 2)).crl_number == before + 1
    finally:
        worker.stop()
