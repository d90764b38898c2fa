"""Issuance and revocation through CertificateAuthority, stored in SQLite and PostgreSQL."""

from __future__ import annotations

import threading
from dataclasses import replace
from datetime import UTC, date, datetime

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import rsa
from sqlalchemy import func, select

from jpki_remote.ca import hooks
from jpki_remote.ca.authority import CertificateAuthority
from jpki_remote.ca.errors import (
    HolderDataError,
    NotSetUpError,
    RequestConflictError,
    RevocationError,
    UnderAgeError,
    UnknownCertificateError,
    UnsupportedKeyError,
    ValidityError,
)
from jpki_remote.ca.holder import HolderIdentity
from jpki_remote.ca.keystore.files import FileKeyStore
from jpki_remote.ca.models import AuthorityKind, Certificate, CertificateState
from jpki_remote.config import Settings
from jpki_remote.store import Database

SIG, AUTH = AuthorityKind.SIGNATURE, AuthorityKind.AUTHENTICATION
EXPIRY = date(2035, 6, 10)


def _rows(db: Database) -> list[Certificate]:
    with db.session() as session:
        return list(session.execute(select(Certificate).order_by(Certificate.reserved_at)).scalars())


@pytest.fixture
def changes() -> list[hooks.StatusChange]:
    seen: list[hooks.StatusChange] = []
    listener = hooks.on_status_change(seen.append)
    yield seen
    hooks.remove_status_listener(listener)


def test_issue_pair_stores_both_and_calls_hooks(
    authority: CertificateAuthority,
    holder: HolderIdentity,
    holder_keys: list[rsa.RSAPrivateKey],
    changes: list[hooks.StatusChange],
) -> None:
    pair = authority.issue_pair("req-1", holder, holder_keys[0].public_key(), holder_keys[1].public_key(), EXPIRY)
    assert pair.signature is not None
    rows = _rows(authority.db)
    assert {(r.authority, r.state) for r in rows} == {(AUTH, CertificateState.ISSUED), (SIG, CertificateState.ISSUED)}
    for row in rows:
        assert row.holder_ref == "card-0001" and row.request_id == "req-1"
        assert row.der in (pair.signature.der, pair.authentication.der)
        assert "山田" not in row.holder_ref
    assert [(c.kind, c.serial, c.state) for c in changes] == [
        (AUTH, pair.authentication.serial, CertificateState.ISSUED),
        (SIG, pair.signature.serial, CertificateState.ISSUED),
    ]
    assert all(c.db is authority.db for c in changes)
    status = authority.status(SIG, pair.signature.serial)
    assert (
        status is not None and status.state is CertificateState.ISSUED and status.not_after == pair.signature.not_after
    )
    assert authority.certificate(SIG, pair.signature.serial).der == pair.signature.der
    assert authority.status(SIG, pair.authentication.serial) is None  # serials belong to one authority


def test_retry_returns_the_same_certificates(
    authority: CertificateAuthority,
    holder: HolderIdentity,
    holder_keys: list[rsa.RSAPrivateKey],
    changes: list[hooks.StatusChange],
) -> None:
    keys = holder_keys[0].public_key(), holder_keys[1].public_key()
    first = authority.issue_pair("req-1", holder, *keys, EXPIRY, datetime(2026, 7, 1, tzinfo=UTC))
    again = authority.issue_pair("req-1", holder, *keys, EXPIRY, datetime(2026, 7, 2, tzinfo=UTC))
    assert again == first
    assert len(_rows(authority.db)) == 2
    assert len(changes) == 2  # the retry changed nothing


def test_reused_request_id_with_other_content_is_refused(
    authority: CertificateAuthority, holder: HolderIdentity, holder_keys: list[rsa.RSAPrivateKey]
) -> None:
    authority.issue(AUTH, "req-1", holder, holder_keys[0].public_key(), EXPIRY)
    with pytest.raises(RequestConflictError):
        authority.issue(AUTH, "req-1", holder, holder_keys[1].public_key(), EXPIRY)
    with pytest.raises(RequestConflictError):
        authority.issue(AUTH, "req-1", replace(holder, holder_ref="card-0002"), holder_keys[0].public_key(), EXPIRY)
    assert len(_rows(authority.db)) == 1


def test_under_15_pair_without_signature_key(
    authority: CertificateAuthority, holder: HolderIdentity, holder_keys: list[rsa.RSAPrivateKey]
) -> None:
    child = replace(holder, birth_date=date(2015, 4, 1))
    issued_at = datetime(2026, 7, 1, tzinfo=UTC)
    with pytest.raises(UnderAgeError):
        authority.issue_pair(
            "req-c", child, holder_keys[0].public_key(), holder_keys[1].public_key(), EXPIRY, issued_at
        )
    assert _rows(authority.db) == []  # refused before any serial was reserved
    pair = authority.issue_pair("req-c", child, holder_keys[0].public_key(), None, EXPIRY, issued_at)
    assert pair.signature is None
    assert pair.authentication.not_after.year == 2031  # 5th birthday after 2026-07-01 is 2031-04-01
    assert [r.authority for r in _rows(authority.db)] == [AUTH]


def test_bad_requests_are_clear_errors_and_reserve_nothing(
    authority: CertificateAuthority, holder: HolderIdentity, holder_keys: list[rsa.RSAPrivateKey]
) -> None:
    key = holder_keys[0].public_key()
    small = rsa.generate_private_key(public_exponent=65537, key_size=1024).public_key()  # noqa: S505 - must be refused
    with pytest.raises(UnsupportedKeyError):
        authority.issue(AUTH, "r", holder, small, EXPIRY)
    from cryptography.hazmat.primitives.asymmetric import ec

    with pytest.raises(UnsupportedKeyError):
        authority.issue(AUTH, "r", holder, ec.generate_private_key(ec.SECP256R1()).public_key(), EXPIRY)  # type: ignore[arg-type]
    with pytest.raises(HolderDataError):
        authority.issue(SIG, "r", replace(holder, address=""), key, EXPIRY)
    with pytest.raises(ValidityError):
        authority.issue(AUTH, "r", holder, key, date(2020, 1, 1))
    with pytest.raises(Exception, match="request_id"):
        authority.issue(AUTH, "", holder, key, EXPIRY)
    assert _rows(authority.db) == []


def test_revocation_reasons(
    authority: CertificateAuthority,
    holder: HolderIdentity,
    holder_keys: list[rsa.RSAPrivateKey],
    changes: list[hooks.StatusChange],
) -> None:
    pair = authority.issue_pair("req-1", holder, holder_keys[0].public_key(), holder_keys[1].public_key(), EXPIRY)
    assert pair.signature is not None
    sig, auth = pair.signature.serial, pair.authentication.serial
    with pytest.raises(RevocationError, match="signature certificate only"):
        authority.revoke(AUTH, auth, "affiliationChanged")
    with pytest.raises(RevocationError, match="release_hold"):
        authority.revoke(SIG, sig, "removeFromCRL")
    with pytest.raises(RevocationError, match="unknown revocation reason"):
        authority.revoke(SIG, sig, "bored")
    with pytest.raises(UnknownCertificateError):
        authority.revoke(SIG, 12345, "superseded")

    at = datetime(2027, 1, 1, 9, 0, tzinfo=UTC)
    status = authority.revoke(SIG, sig, x509.ReasonFlags.affiliation_changed, at=at)
    assert (status.state, status.reason, status.reason_name, status.revoked_at) == (
        CertificateState.REVOKED,
        3,
        "affiliationChanged",
        at,
    )
    assert authority.revoke(SIG, sig, "affiliation_changed").revoked_at == at  # repeat: no-op
    with pytest.raises(RevocationError, match="already revoked"):
        authority.revoke(SIG, sig, "superseded")
    assert authority.revoke(SIG, sig, "keyCompromise").reason == 1  # escalation to keyCompromise is allowed
    assert [(c.kind, c.state, c.reason) for c in changes[2:]] == [
        (SIG, CertificateState.REVOKED, 3),
        (SIG, CertificateState.REVOKED, 1),
    ]

    # suspension and its release (certificateHold, then removeFromCRL)
    held = authority.revoke(AUTH, auth, "certificateHold")
    assert held.on_hold
    released = authority.release_hold(AUTH, auth)
    assert released.state is CertificateState.ISSUED and released.reason is None and released.revoked_at is None
    with pytest.raises(RevocationError, match="not on hold"):
        authority.release_hold(AUTH, auth)
    authority.revoke(AUTH, auth, "certificateHold")
    final = authority.revoke(AUTH, auth, "cessationOfOperation")  # the hold becomes permanent
    assert final.reason == 5 and final.revoked_at == held.revoked_at
    assert changes[-1].state is CertificateState.REVOKED and changes[-1].reason == 5


def test_revoke_for_holder(
    authority: CertificateAuthority, holder: HolderIdentity, holder_keys: list[rsa.RSAPrivateKey]
) -> None:
    keys = [k.public_key() for k in holder_keys]
    old = authority.issue_pair("old", holder, keys[0], keys[1], EXPIRY)
    other = authority.issue_pair("other", replace(holder, holder_ref="card-0002"), keys[0], keys[1], EXPIRY)
    # a move: affiliationChanged revokes only the signature certificate; the auth certificate survives
    moved = authority.revoke_for_holder("card-0001", "affiliationChanged")
    assert [(s.kind, s.serial) for s in moved] == [(SIG, old.signature.serial)]  # type: ignore[union-attr]
    with pytest.raises(RevocationError):
        authority.revoke_for_holder("card-0001", "affiliationChanged", kinds=[AUTH])
    # renewal: the new pair is kept, the old auth certificate is superseded; the revoked signature one keeps its reason
    new = authority.issue_pair("new", holder, keys[2], keys[3], EXPIRY)
    renewed = authority.revoke_for_holder(
        "card-0001",
        "superseded",
        keep_serials=[new.authentication.serial, new.signature.serial],  # type: ignore[union-attr]
    )
    assert [(s.kind, s.serial, s.reason) for s in renewed] == [(AUTH, old.authentication.serial, 4)]
    assert authority.status(SIG, old.signature.serial).reason == 3  # type: ignore[union-attr]
    # death: everything of the holder
    died = authority.revoke_for_holder("card-0001", "cessationOfOperation")
    assert sorted(s.serial for s in died) == sorted([new.authentication.serial, new.signature.serial])  # type: ignore[union-attr]
    assert all(s.reason == 5 for s in died)
    # the other holder is untouched
    assert {s.state for s in authority.certificates_for_holder("card-0002")} == {CertificateState.ISSUED}
    assert other.signature is not None


def test_listener_errors_do_not_undo_issuance(
    authority: CertificateAuthority, holder: HolderIdentity, holder_keys: list[rsa.RSAPrivateKey]
) -> None:
    def broken(change: hooks.StatusChange) -> None:
        raise RuntimeError("listener bug")

    hooks.on_status_change(broken)
    try:
        issued = authority.issue(AUTH, "r", holder, holder_keys[0].public_key(), EXPIRY)
    finally:
        hooks.remove_status_listener(broken)
    assert authority.status(AUTH, issued.serial).state is CertificateState.ISSUED  # type: ignore[union-attr]


def test_not_set_up(
    database: Database,
    shared_keystore: FileKeyStore,
    settings: Settings,
    holder: HolderIdentity,
    holder_keys: list[rsa.RSAPrivateKey],
) -> None:
    ca = CertificateAuthority(database, shared_keystore, settings)
    with pytest.raises(NotSetUpError, match="ca setup"):
        ca.issue(AUTH, "r", holder, holder_keys[0].public_key(), EXPIRY)


def test_concurrent_requests_with_one_request_id_yield_one_pair(
    authority: CertificateAuthority,
    holder: HolderIdentity,
    holder_keys: list[rsa.RSAPrivateKey],
    changes: list[hooks.StatusChange],
) -> None:
    """Threads racing with the same request id (a client retrying while the first attempt is still running)."""
    keys = holder_keys[0].public_key(), holder_keys[1].public_key()
    barrier = threading.Barrier(4)
    results: list[object] = []
    errors: list[BaseException] = []

    def issue() -> None:
        try:
            barrier.wait()
            results.append(authority.issue_pair("race", holder, *keys, EXPIRY))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=issue) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert len(results) == 4 and all(r == results[0] for r in results)
    with authority.db.session() as session:
        count = session.execute(select(func.count()).select_from(Certificate)).scalar_one()
    assert count == 2
    assert len(changes) == 2  # exactly one winner per certificate notified the listeners
