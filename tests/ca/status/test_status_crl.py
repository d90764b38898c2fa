"""Shard CRLs: `openssl verify -crl_check` against the right (and a wrong) shard, pkilint, CRL numbers, reasons,
invalidity dates, expired entries, change detection, and the lint twin of large shards."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from sqlalchemy import update
from status_helpers import StatusEnv, run_openssl

from jpki_remote.ca import distribution
from jpki_remote.ca.lint import lint_crl
from jpki_remote.ca.models import AuthorityKind, Certificate, CertificateState, CrlShard
from jpki_remote.ca.status import crl as crl_module
from jpki_remote.ca.status.crl import publish_all, publish_shard

AUTH = AuthorityKind.AUTHENTICATION


def _stored(env: StatusEnv, kind: AuthorityKind, shard: int) -> CrlShard:
    with env.service.db.session() as session:
        row = session.get(CrlShard, (kind, shard))
        assert row is not None
        return row


def _crl_pem(env: StatusEnv, kind: AuthorityKind, shard: int) -> str:
    der = _stored(env, kind, shard).der
    pem = x509.load_der_x509_crl(der).public_bytes(serialization.Encoding.PEM)
    return str(env.write(f"crl-{kind.value}-{shard}.pem", pem))


def test_openssl_verify_crl_check_right_and_wrong_shard(status_env: StatusEnv) -> None:
    revoked = status_env.issue(shard=1)
    kept = status_env.issue(shard=1)
    other = status_env.issue(shard=2)
    status_env.ca.revoke(AUTH, revoked.serial, "keyCompromise")
    published = publish_all(status_env.service.db, status_env.service.keys, status_env.settings)
    assert {(p.kind, p.shard) for p in published} == {(k, s) for k in AuthorityKind for s in range(4)}

    ca = status_env.ca_pem()
    shard1 = _crl_pem(status_env, AUTH, 1)
    shard2 = _crl_pem(status_env, AUTH, 2)

    ok = run_openssl("verify", "-crl_check", "-CAfile", ca, "-CRLfile", shard1, status_env.pem(kept))
    assert ok.returncode == 0, ok.stdout + ok.stderr
    bad = run_openssl("verify", "-crl_check", "-CAfile", ca, "-CRLfile", shard1, status_env.pem(revoked))
    assert bad.returncode != 0
    assert "certificate revoked" in bad.stdout + bad.stderr
    # another shard's CRL does not cover this certificate: OpenSSL refuses it by scope (IDP ≠ CDP)
    scope = run_openssl("verify", "-crl_check", "-CAfile", ca, "-CRLfile", shard2, status_env.pem(kept))
    assert scope.returncode != 0
    assert "different CRL scope" in scope.stdout + scope.stderr
    # and shard 2's own certificate verifies against it
    own = run_openssl("verify", "-crl_check", "-CAfile", ca, "-CRLfile", shard2, status_env.pem(other))
    assert own.returncode == 0, own.stdout + own.stderr


def test_crl_content_lint_and_numbering(status_env: StatusEnv) -> None:
    db, keys, settings = status_env.service.db, status_env.service.keys, status_env.settings
    first = status_env.issue(shard=3)
    second = status_env.issue(shard=3)
    expired = status_env.issue(shard=3)
    status_env.ca.revoke(AUTH, first.serial, "keyCompromise")
    status_env.ca.revoke(AUTH, second.serial, "cessationOfOperation")
    status_env.ca.revoke(AUTH, expired.serial, "superseded")
    compromised_since = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    with db.session() as session:
        session.execute(
            update(Certificate)
            .where(Certificate.authority == AUTH, Certificate.serial_hex == format(first.serial, "x"))
            .values(invalidity_date=compromised_since)
        )
        session.execute(
            update(Certificate)
            .where(Certificate.authority == AUTH, Certificate.serial_hex == format(expired.serial, "x"))
            .values(not_after=datetime.now(UTC) - timedelta(days=1))
        )

    result = publish_shard(db, keys, settings, AUTH, 3)
    assert result is not None and result.crl_number == 1 and result.entries == 2 and result.lint == "full"
    der = _stored(status_env, AUTH, 3).der
    assert not lint_crl(der).errors
    parsed = x509.load_der_x509_crl(der)
    assert parsed.is_signature_valid(status_env.ca.authority_certificate(AUTH).public_key())
    assert parsed.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number == 1
    idp = parsed.extensions.get_extension_for_class(x509.IssuingDistributionPoint)
    assert idp.critical
    assert idp.value == distribution.issuing_distribution_point(settings, AUTH, 3)
    cdp = first.certificate.extensions.get_extension_for_class(x509.CRLDistributionPoints).value
    assert cdp[0].full_name == idp.value.full_name
    entries = {entry.serial_number: entry for entry in parsed}
    assert set(entries) == {first.serial, second.serial}  # the expired certificate was dropped
    reason = entries[first.serial].extensions.get_extension_for_class(x509.CRLReason).value.reason
    assert reason is x509.ReasonFlags.key_compromise
    invalidity = entries[first.serial].extensions.get_extension_for_class(x509.InvalidityDate).value
    assert invalidity.invalidity_date_utc == compromised_since
    assert (
        entries[second.serial].extensions.get_extension_for_class(x509.CRLReason).value.reason
        is x509.ReasonFlags.cessation_of_operation
    )
    assert parsed.next_update_utc - parsed.last_update_utc == timedelta(hours=settings.crl_validity_hours)

    assert publish_shard(db, keys, settings, AUTH, 3) is None  # unchanged: not rebuilt
    another = status_env.issue(shard=3)
    status_env.ca.revoke(AUTH, another.serial, "superseded")
    again = publish_shard(db, keys, settings, AUTH, 3)
    assert again is not None and again.crl_number == 2 and again.entries == 3
    status_env.ca.revoke(AUTH, another.serial, "keyCompromise")  # escalated: same time, new reason
    escalated = publish_shard(db, keys, settings, AUTH, 3)
    assert escalated is not None and escalated.crl_number == 3
    forced = publish_shard(db, keys, settings, AUTH, 3, force=True)
    assert forced is not None and forced.crl_number == 4


def test_empty_shard_crl_has_no_revoked_list_and_lints(status_env: StatusEnv) -> None:
    result = publish_shard(status_env.service.db, status_env.service.keys, status_env.settings, AUTH, 0)
    assert result is not None and result.entries == 0
    der = _stored(status_env, AUTH, 0).der
    assert len(x509.load_der_x509_crl(der)) == 0
    assert not lint_crl(der).errors


def test_large_shard_is_linted_through_its_twin(status_env: StatusEnv, monkeypatch: pytest.MonkeyPatch) -> None:
    db = status_env.service.db
    now = datetime.now(UTC).replace(microsecond=0)
    rows = [
        {
            "authority": AUTH,
            "serial_hex": format((1 << 70) + 4 * i + 2, "x"),
            "request_id": f"bulk-{i}",
            "state": CertificateState.REVOKED,
            "holder_ref": "bulk",
            "shard": 2,
            "not_after": now + timedelta(days=30),
            "reserved_at": now,
            "revoked_at": now - timedelta(minutes=i),
            "revocation_reason": (None, 1, 4, 5)[i % 4],
        }
        for i in range(300)
    ]
    with db.session() as session:
        session.execute(Certificate.__table__.insert(), rows)
    monkeypatch.setattr(crl_module, "FULL_LINT_ENTRIES", 50)
    result = publish_shard(db, status_env.service.keys, status_env.settings, AUTH, 2)
    assert result is not None and result.entries == 300
    assert result.lint.startswith("twin(")
    parsed = x509.load_der_x509_crl(_stored(status_env, AUTH, 2).der)
    assert len(parsed) == 300
    assert parsed.get_revoked_certificate_by_serial_number((1 << 70) + 4 * 7 + 2) is not None


def test_a_lint_error_stops_publication(status_env: StatusEnv, monkeypatch: pytest.MonkeyPatch) -> None:
    # a CRL number beyond 20 octets violates RFC 5280 §5.2.3: pkilint must stop it before anything is signed
    db, keys, settings = status_env.service.db, status_env.service.keys, status_env.settings
    original = crl_module.integer
    monkeypatch.setattr(crl_module, "integer", lambda _value: original(1 << 170))
    with pytest.raises(crl_module.CrlLintError):
        publish_shard(db, keys, settings, AUTH, 1)
    with db.session() as session:
        assert session.get(CrlShard, (AUTH, 1)) is None
