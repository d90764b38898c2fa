"""Creating the two authorities (署名用認証局, 利用者証明用認証局) and their delegated OCSP responders.

:func:`setup_authorities` is idempotent: an authority that exists is left alone (its keys are never replaced);
only its OCSP responder certificate is re-issued, with the same key, when it nears its end (or when asked:
``renew_ocsp``; ``new_ocsp_key`` replaces the responder key too). A CA key already in the key store without a
database row (e.g. a new database over an existing HSM) is reused, never overwritten. Setup also creates the card
centre's card-surface signing key (``card-surface``) when the store lacks it.

A renewed or replaced OCSP signer makes every precomputed OCSP response signed under the old certificate due (the
rows record their signer); unless ``refresh_ocsp=False``, setup re-signs them with the new signer before it returns
(:func:`jpki_remote.ca.status.precompute.refresh_due`). Responders notice the new signer by themselves
(:mod:`jpki_remote.ca.status.responder`).
"""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

from cryptography import x509
from sqlalchemy.exc import IntegrityError

from jpki_remote.ca import profiles
from jpki_remote.ca.errors import LintFailedError, NotSetUpError
from jpki_remote.ca.keystore.base import CaKey, KeyNotFoundError, KeyStore, KeyStoreError
from jpki_remote.ca.lint import LintReport, lint_certificate
from jpki_remote.ca.models import Authority, AuthorityKind, LintFinding
from jpki_remote.ca.serials import new_serial, serial_hex
from jpki_remote.ca.signing import prepare_certificate, sign_tbs
from jpki_remote.config import Settings
from jpki_remote.store import Database

log = logging.getLogger(__name__)


def ca_key_label(kind: AuthorityKind) -> str:
    return f"ca-{kind.value}"


def ocsp_key_label(kind: AuthorityKind) -> str:
    return f"ocsp-{kind.value}"


#: The card centre's key that signs the card face (券面事項確認AP DF28); ``procedures.surface.surface_key`` uses it.
CARD_SURFACE_KEY_LABEL = "card-surface"


def ensure_card_surface_key(keystore: KeyStore, label: str = CARD_SURFACE_KEY_LABEL) -> tuple[CaKey, bool]:
    """The card-surface signing key (RSA-2048), created when missing; ``(key, created)``. Idempotent and safe
    against a concurrent creator (the store never overwrites a key: the loser reads the winner's)."""
    try:
        return keystore.get(label), False
    except KeyNotFoundError:
        pass
    try:
        key = keystore.generate_rsa(label, 2048)
    except KeyStoreError:  # created by another process between our get and generate
        return keystore.get(label), False
    log.info("generated the card-surface key %s", label)
    return key, True


def public_key_fingerprint(key: CaKey) -> str:
    """SHA-256 of the key's SubjectPublicKeyInfo, hex with colons (for operators comparing keys)."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    digest = hashes.Hash(hashes.SHA256())
    digest.update(key.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo))
    return digest.finalize().hex(":")


@dataclass(frozen=True)
class SetupResult:
    kind: AuthorityKind
    created: bool  # the authority was created by this call
    ocsp_renewed: bool  # its OCSP responder certificate was re-issued by this call
    certificate: x509.Certificate
    ocsp_certificate: x509.Certificate
    ocsp_refreshed: int = 0  # certificates whose precomputed OCSP responses were re-signed with the new signer


@dataclass(frozen=True)
class LoadedAuthority:
    """One authority, ready to sign: its certificate and key handles."""

    kind: AuthorityKind
    certificate: x509.Certificate
    key: CaKey
    ocsp_certificate: x509.Certificate
    ocsp_key_label: str

    @property
    def name(self) -> x509.Name:
        return self.certificate.subject


def _key(keystore: KeyStore, label: str) -> CaKey:
    try:
        return keystore.get(label)
    except KeyNotFoundError:
        log.info("generating RSA-2048 key %s", label)
        return keystore.generate_rsa(label, 2048)


def _record_findings(db: Database, kind: AuthorityKind, serial: int, report: LintReport, now: datetime) -> None:
    with db.session() as session:
        for finding in report.findings:
            session.add(
                LintFinding(
                    authority=kind,
                    serial_hex=serial_hex(serial),
                    severity=finding.severity,
                    code=finding.code[:200],
                    message=f"{finding.path}: {finding.message}",
                    found_at=now,
                )
            )


def _issue_linted(
    db: Database, kind: AuthorityKind, builder: x509.CertificateBuilder, serial: int, key: CaKey, now: datetime
) -> bytes:
    prepared = prepare_certificate(builder)
    report = lint_certificate(prepared.lint_copy)
    if not report.ok:
        _record_findings(db, kind, serial, report, now)
        raise LintFailedError(
            f"{kind.value} authority certificate refused by the linter: {report.summary()}", report.errors
        )
    return sign_tbs(prepared.tbs, key)


def _ocsp_certificate(
    db: Database,
    settings: Settings,
    kind: AuthorityKind,
    ca_key: CaKey,
    ocsp_key: CaKey,
    now: datetime,
    ca_not_after: datetime,
) -> bytes:
    serial = new_serial()
    not_after = min(now + timedelta(days=settings.ocsp_signer_validity_days), ca_not_after)
    builder = profiles.ocsp_signer_certificate(
        settings, kind, ocsp_key.public_key(), ca_key.public_key(), serial, now, not_after
    )
    return _issue_linted(db, kind, builder, serial, ca_key, now)


def setup_authorities(
    db: Database,
    keystore: KeyStore,
    settings: Settings,
    now: datetime | None = None,
    *,
    renew_ocsp: bool = False,
    new_ocsp_key: bool = False,
    refresh_ocsp: bool = True,
) -> list[SetupResult]:
    """Create whichever authority is missing; renew OCSP responder certificates in their last quarter (every
    existing one with ``renew_ocsp``; with a freshly generated key with ``new_ocsp_key``); create the card-surface
    key when missing (:func:`ensure_card_surface_key`). After a renewal, the precomputed OCSP responses of that
    authority are re-signed with the new signer (``refresh_ocsp``; else the background refresher does it)."""
    now = (now or datetime.now(UTC)).replace(microsecond=0)
    ensure_card_surface_key(keystore)
    results = []
    for kind in AuthorityKind:
        with db.session() as session:
            existing = session.get(Authority, kind)
        if existing is None:
            results.append(_create(db, keystore, settings, kind, now))
        else:
            force = renew_ocsp or new_ocsp_key
            results.append(_check_and_renew(db, keystore, settings, existing, now, force=force, new_key=new_ocsp_key))
    if refresh_ocsp:
        results = [_refresh_after_renewal(db, keystore, settings, result) for result in results]
    return results


def _refresh_after_renewal(db: Database, keystore: KeyStore, settings: Settings, result: SetupResult) -> SetupResult:
    """Re-sign, with the new signer, the precomputed OCSP responses that embed the old one (and whatever else is
    due for that authority)."""
    if not result.ocsp_renewed:
        return result
    from jpki_remote.ca.status import precompute

    refreshed = precompute.refresh_due(db, keystore, settings, kinds=[result.kind], limit=None)
    log.info("re-signed the %s OCSP responses of %d certificates with the new signer", result.kind.value, refreshed)
    return replace(result, ocsp_refreshed=refreshed)


def _create(db: Database, keystore: KeyStore, settings: Settings, kind: AuthorityKind, now: datetime) -> SetupResult:
    ca_key = _key(keystore, ca_key_label(kind))
    ocsp_key = _key(keystore, ocsp_key_label(kind))
    serial = new_serial()
    not_after = now + timedelta(days=365 * settings.ca_validity_years + settings.ca_validity_years // 4)
    builder = profiles.ca_certificate(settings, kind, ca_key.public_key(), serial, now, not_after)
    ca_der = _issue_linted(db, kind, builder, serial, ca_key, now)
    ocsp_der = _ocsp_certificate(db, settings, kind, ca_key, ocsp_key, now, not_after)
    certificate = x509.load_der_x509_certificate(ca_der)
    try:
        with db.session() as session:
            session.add(
                Authority(
                    kind=kind,
                    subject=certificate.subject.rfc4514_string(),
                    certificate_der=ca_der,
                    key_label=ca_key.label,
                    ocsp_certificate_der=ocsp_der,
                    ocsp_key_label=ocsp_key.label,
                    created_at=now,
                )
            )
    except IntegrityError:  # another process set this authority up at the same moment: theirs stands
        with db.session() as session:
            existing = session.get(Authority, kind)
        assert existing is not None
        return _check_and_renew(db, keystore, settings, existing, now)
    log.info("created %s authority %s", kind.value, certificate.subject.rfc4514_string())
    return SetupResult(kind, True, False, certificate, x509.load_der_x509_certificate(ocsp_der))


def _check_and_renew(
    db: Database,
    keystore: KeyStore,
    settings: Settings,
    row: Authority,
    now: datetime,
    *,
    force: bool = False,
    new_key: bool = False,
) -> SetupResult:
    authority = load_authority(db, keystore, row.kind, row=row)
    ocsp = authority.ocsp_certificate
    remaining = ocsp.not_valid_after_utc - now
    renew = force or remaining < timedelta(days=settings.ocsp_signer_validity_days) / 4
    if renew:
        if new_key:  # under a new label: the store never overwrites a key, and the old one stays for the record
            label = f"{ocsp_key_label(row.kind)}-{now:%Y%m%d}-{secrets.token_hex(4)}"
            log.info("generating RSA-2048 key %s to replace %s", label, row.ocsp_key_label)
            ocsp_key = keystore.generate_rsa(label, 2048)
        else:
            ocsp_key = keystore.get(row.ocsp_key_label)
        ocsp_der = _ocsp_certificate(
            db, settings, row.kind, authority.key, ocsp_key, now, authority.certificate.not_valid_after_utc
        )
        with db.session() as session:
            stored = session.get(Authority, row.kind)
            assert stored is not None
            stored.ocsp_certificate_der = ocsp_der
            stored.ocsp_key_label = ocsp_key.label
        ocsp = x509.load_der_x509_certificate(ocsp_der)
        log.info("renewed the %s OCSP responder certificate until %s", row.kind.value, ocsp.not_valid_after_utc)
    return SetupResult(row.kind, False, renew, authority.certificate, ocsp)


def load_authority(
    db: Database, keystore: KeyStore, kind: AuthorityKind, *, row: Authority | None = None
) -> LoadedAuthority:
    """The authority ``kind`` with its key handle; checks that the key store holds the certified key."""
    if row is None:
        with db.session() as session:
            row = session.get(Authority, kind)
    if row is None:
        raise NotSetUpError(f"the {kind.value} authority is not set up; run `jpki-remote ca setup`")
    certificate = x509.load_der_x509_certificate(row.certificate_der)
    key = keystore.get(row.key_label)
    if key.public_key().public_numbers() != certificate.public_key().public_numbers():  # type: ignore[union-attr]
        raise KeyStoreError(f"key {row.key_label!r} in the key store does not match the {kind.value} CA certificate")
    return LoadedAuthority(
        kind, certificate, key, x509.load_der_x509_certificate(row.ocsp_certificate_der), row.ocsp_key_label
    )
