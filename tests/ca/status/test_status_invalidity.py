"""Revocation with an invalidity date (RFC 5280 §5.3.2): recorded by ``revoke`` and ``revoke_for_holder``, checked,
published in the shard CRL entry as openssl prints it, cleared when a hold is released."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from status_helpers import StatusEnv, run_openssl

from jpki_remote.ca.errors import RevocationError
from jpki_remote.ca.models import AuthorityKind, CrlShard
from jpki_remote.ca.status.crl import publish_shard

AUTH = AuthorityKind.AUTHENTICATION
JST = timezone(timedelta(hours=9))


def _crl_text(env: StatusEnv, shard: int) -> str:
    with env.service.db.session() as session:
        row = session.get(CrlShard, (AUTH, shard))
        assert row is not None
        der = row.der
    pem = x509.load_der_x509_crl(der).public_bytes(serialization.Encoding.PEM)
    result = run_openssl("crl", "-noout", "-text", "-in", env.write(f"crl-{shard}.pem", pem))
    assert result.returncode == 0, result.stderr
    return result.stdout


def _entry_block(text: str, serial: int) -> str:
    marker = f"Serial Number: {serial:X}"
    start = text.index(marker)
    following = text.find("Serial Number:", start + len(marker))
    return text[start : following if following != -1 else len(text)]


def test_invalidity_date_is_recorded_and_published(status_env: StatusEnv) -> None:
    compromised = status_env.issue(shard=1)
    plain = status_env.issue(shard=1)
    revoked_at = datetime(2026, 7, 1, 9, 0, tzinfo=JST)
    since = datetime(2026, 6, 28, 18, 30, 15, tzinfo=JST)
    status = status_env.ca.revoke(AUTH, compromised.serial, "keyCompromise", at=revoked_at, invalidity_date=since)
    assert status.invalidity_date == since.astimezone(UTC)
    assert status_env.ca.status(AUTH, compromised.serial).invalidity_date == since.astimezone(UTC)  # type: ignore[union-attr]
    status_env.ca.revoke(AUTH, plain.serial, "cessationOfOperation", at=revoked_at)

    published = publish_shard(status_env.service.db, status_env.service.keys, status_env.settings, AUTH, 1)
    assert published is not None and published.entries == 2
    text = _crl_text(status_env, 1)
    entry = _entry_block(text, compromised.serial)
    assert "Key Compromise" in entry
    assert "Invalidity Date" in entry and "Jun 28 09:30:15 2026 GMT" in entry
    other = _entry_block(text, plain.serial)
    assert "Cessation Of Operation" in other and "Invalidity Date" not in other

    # the same revocation again is a no-op; a different invalidity date by repetition is refused
    assert status_env.ca.revoke(AUTH, compromised.serial, "keyCompromise", invalidity_date=since) == status
    with pytest.raises(RevocationError, match="cannot be changed"):
        status_env.ca.revoke(AUTH, compromised.serial, "keyCompromise", invalidity_date=since - timedelta(days=1))


def test_invalidity_date_checks_and_hold_release(status_env: StatusEnv) -> None:
    issued = status_env.issue(shard=2)
    at = datetime(2026, 7, 1, tzinfo=UTC)
    with pytest.raises(RevocationError, match="after the revocation"):
        status_env.ca.revoke(AUTH, issued.serial, "keyCompromise", at=at, invalidity_date=at + timedelta(seconds=1))
    with pytest.raises(RevocationError, match="UTC offset"):
        status_env.ca.revoke(AUTH, issued.serial, "keyCompromise", at=at, invalidity_date=datetime(2026, 6, 1))
    assert status_env.ca.status(AUTH, issued.serial).revoked_at is None  # type: ignore[union-attr]

    held = status_env.ca.revoke(AUTH, issued.serial, "certificateHold", at=at, invalidity_date=at - timedelta(hours=1))
    assert held.invalidity_date == at - timedelta(hours=1)
    released = status_env.ca.release_hold(AUTH, issued.serial)
    assert released.invalidity_date is None and released.revoked_at is None

    changed = status_env.ca.revoke_for_holder(
        status_env.holder.holder_ref, "keyCompromise", kinds=[AUTH], at=at, invalidity_date=at - timedelta(days=2)
    )
    assert [(c.serial, c.invalidity_date) for c in changed if c.serial == issued.serial] == [
        (issued.serial, at - timedelta(days=2))
    ]
