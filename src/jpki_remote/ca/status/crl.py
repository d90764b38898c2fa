"""Partitioned CRLs: one CRL per (authority, shard), built in the background and stored in ``ca_crl_shards``.

Each shard CRL carries a critical issuingDistributionPoint built by
:func:`jpki_remote.ca.distribution.issuing_distribution_point` — the same function issuance uses for the
certificates' cRLDistributionPoints, so the names match byte for byte (RFC 5280 §6.3.3). CRL numbers increase per
shard. Certificates past notAfter are left out (RFC 5280 §3.3 allows it); reason codes (except ``unspecified``) and
invalidity dates are written as recorded.

Speed: the revoked-certificate list is encoded straight to DER while the rows stream from the database (one shard
in memory at a time); pyca/cryptography's builder is not used here (about 14 s per million entries, and adding
entries one at a time is quadratic). The TBS is linted with pkilint before the real signature: in full up to
:data:`FULL_LINT_ENTRIES` entries, above that a *lint twin* — the identical header and extensions with a sample of
the entries that covers every entry shape produced — because pkilint needs ~0.25 ms and ~10 KB per entry. After
signing, the whole CRL is parsed by cryptography and its signature verified before it is stored.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import datetime, timedelta

from cryptography import x509
from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError

from jpki_remote.ca.der import SHA256_WITH_RSA, integer, length, sequence, signed_structure
from jpki_remote.ca.distribution import issuing_distribution_point
from jpki_remote.ca.keystore import CaKey, KeyStore
from jpki_remote.ca.lint import Finding, lint_crl
from jpki_remote.ca.models import Authority, AuthorityKind, Certificate, CertificateState, CrlShard, LintFinding
from jpki_remote.ca.status.asn1 import explicit, extension, oid, x509_time
from jpki_remote.ca.status.signing import utcnow
from jpki_remote.config import Settings
from jpki_remote.store import Database

log = logging.getLogger(__name__)

FULL_LINT_ENTRIES = 2000
TWIN_SAMPLE = 64
FETCH_ROWS = 20_000

_REASON_OID = oid("2.5.29.21")
_INVALIDITY_OID = oid("2.5.29.24")
_REASON_EXTENSIONS = {code: extension(_REASON_OID, bytes((0x0A, 1, code))) for code in range(11) if code != 7}
_DUMMY_SIGNATURE = bytes(256)  # stands in for the RSA-2048 signature while linting (pkilint does not verify it)


class CrlLintError(Exception):
    """pkilint found errors in a shard CRL; nothing was signed or published."""

    def __init__(self, message: str, findings: list[Finding]) -> None:
        super().__init__(message)
        self.findings = findings


@dataclass(frozen=True)
class PublishedShard:
    kind: AuthorityKind
    shard: int
    crl_number: int
    entries: int
    size: int
    this_update: datetime
    next_update: datetime
    seconds: float
    lint: str  # "full" or "twin(N)"


@dataclass(frozen=True)
class CrlIssuer:
    """What every shard CRL of one authority shares: issuer name, AKI, signing key."""

    kind: AuthorityKind
    name_der: bytes
    aki_extension: bytes
    public_key: object
    key: CaKey

    @classmethod
    def load(cls, db: Database, keys: KeyStore, kind: AuthorityKind) -> CrlIssuer:
        with db.session() as session:
            row = session.execute(
                select(Authority.certificate_der, Authority.key_label).where(Authority.kind == kind)
            ).first()
        if row is None:
            raise LookupError(f"authority {kind.value} is not set up")
        certificate = x509.load_der_x509_certificate(row[0])
        try:
            ski = certificate.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
            aki = x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski)
        except x509.ExtensionNotFound:
            aki = x509.AuthorityKeyIdentifier.from_issuer_public_key(certificate.public_key())  # type: ignore[arg-type]
        return cls(
            kind,
            certificate.subject.public_bytes(),
            extension(oid("2.5.29.35"), aki.public_bytes()),
            certificate.public_key(),
            keys.get(row[1]),
        )


def shard_fingerprint(db: Database, kind: AuthorityKind, shard: int) -> str:
    """``count:max(revoked_at)`` of the shard's revocations — changes whenever a certificate is revoked or released."""
    with db.session() as session:
        count, latest = session.execute(
            select(func.count(), func.max(Certificate.revoked_at)).where(
                Certificate.authority == kind, Certificate.shard == shard, Certificate.state == CertificateState.REVOKED
            )
        ).one()
    return f"{count}:{latest.isoformat() if latest else '-'}"


def publish_shard(
    db: Database,
    keys: KeyStore,
    settings: Settings,
    kind: AuthorityKind | str,
    shard: int,
    *,
    force: bool = False,
    now: datetime | None = None,
    issuer: CrlIssuer | None = None,
) -> PublishedShard | None:
    """Build, lint, sign and store the CRL of one shard. Returns None when the stored one is still current."""
    started = time.perf_counter()
    kind = AuthorityKind(kind)
    now = now or utcnow()
    fingerprint = shard_fingerprint(db, kind, shard)
    with db.session() as session:
        current = session.execute(
            select(CrlShard.crl_number, CrlShard.next_update, CrlShard.source_fingerprint).where(
                CrlShard.authority == kind, CrlShard.shard == shard
            )
        ).first()
    if current is not None and not force:
        margin = timedelta(hours=settings.crl_republish_before_hours)
        if current.source_fingerprint == fingerprint and _naive(current.next_update) - margin > _naive(now):
            return None
    issuer = issuer or CrlIssuer.load(db, keys, kind)
    crl_number = (current.crl_number + 1) if current is not None else 1
    next_update = now + timedelta(hours=settings.crl_validity_hours)

    entries, shapes = _revoked_entries(db, kind, shard, now)
    header = (
        b"\x02\x01\x01" + SHA256_WITH_RSA + issuer.name_der + x509_time(now) + x509_time(next_update)
    )  # version v2, signature, issuer, thisUpdate, nextUpdate
    idp = issuing_distribution_point(settings, kind, shard).public_bytes()
    extensions = explicit(
        0,
        sequence(
            issuer.aki_extension,
            extension(oid("2.5.29.20"), integer(crl_number)),
            extension(oid("2.5.29.28"), idp, critical=True),
        ),
    )

    lint_mode = _lint(db, kind, shard, crl_number, header, extensions, entries, shapes)
    tbs = _tbs(header, entries, extensions)
    der = signed_structure(tbs, issuer.key.sign_sha256_rsa(tbs))
    del tbs
    _verify(der, issuer, len(entries))

    row = {
        "crl_number": crl_number,
        "this_update": now,
        "next_update": next_update,
        "der": der,
        "entries": len(entries),
        "source_fingerprint": fingerprint,
    }
    with db.session() as session:
        if current is None:
            session.add(CrlShard(authority=kind, shard=shard, **row))
            try:
                session.flush()
            except IntegrityError:
                log.info("CRL %s/%d was published concurrently; keeping the other one", kind.value, shard)
                return None
        else:
            changed = session.execute(
                update(CrlShard)
                .where(
                    CrlShard.authority == kind,
                    CrlShard.shard == shard,
                    CrlShard.crl_number == current.crl_number,
                )
                .values(**row)
            ).rowcount
            if changed != 1:
                log.info("CRL %s/%d was published concurrently; keeping the other one", kind.value, shard)
                return None
    return PublishedShard(
        kind, shard, crl_number, len(entries), len(der), now, next_update, time.perf_counter() - started, lint_mode
    )


def publish_all(
    db: Database,
    keys: KeyStore,
    settings: Settings,
    *,
    force: bool = False,
    kinds: list[AuthorityKind] | None = None,
    now: datetime | None = None,
) -> list[PublishedShard]:
    """Publish every shard of every authority (or of ``kinds``) that changed or nears nextUpdate."""
    with db.session() as session:
        present = [AuthorityKind(k) for k in session.execute(select(Authority.kind)).scalars()]
    published = []
    for kind in kinds or present:
        if kind not in present:
            raise LookupError(f"authority {kind.value} is not set up")
        issuer = CrlIssuer.load(db, keys, kind)
        for shard in range(settings.crl_shards):
            result = publish_shard(db, keys, settings, kind, shard, force=force, now=now, issuer=issuer)
            if result is not None:
                log.info(
                    "published CRL %s/%d #%d: %d entries, %d bytes",
                    kind.value,
                    shard,
                    result.crl_number,
                    result.entries,
                    result.size,
                )
                published.append(result)
    return published


# --- entries -----------------------------------------------------------------------------------------------------


def _revoked_entries(
    db: Database, kind: AuthorityKind, shard: int, now: datetime
) -> tuple[list[bytes], dict[tuple[int | None, bool], int]]:
    """DER of every unexpired revoked certificate of the shard, plus one index per entry shape (for the twin)."""
    if db.is_postgresql:
        revoked = func.to_char(func.timezone("UTC", Certificate.revoked_at), "YYYYMMDDHH24MISS")
        invalid = func.to_char(func.timezone("UTC", Certificate.invalidity_date), "YYYYMMDDHH24MISS")
    else:
        revoked = func.strftime("%Y%m%d%H%M%S", Certificate.revoked_at)
        invalid = func.strftime("%Y%m%d%H%M%S", Certificate.invalidity_date)
    query = select(Certificate.serial_hex, revoked, Certificate.revocation_reason, invalid).where(
        Certificate.authority == kind,
        Certificate.shard == shard,
        Certificate.state == CertificateState.REVOKED,
        (Certificate.not_after.is_(None)) | (Certificate.not_after >= now),
    )
    entries: list[bytes] = []
    shapes: dict[tuple[int | None, bool], int] = {}
    append = entries.append
    reasons = _REASON_EXTENSIONS
    fallback_time = now.strftime("%Y%m%d%H%M%S")
    with db.engine.connect() as connection:
        result = connection.execution_options(stream_results=True, yield_per=FETCH_ROWS).execute(query)
        for rows in result.partitions():
            for serial_hex, revoked_at, reason, invalidity in rows:
                if len(serial_hex) & 1:
                    serial_hex = "0" + serial_hex
                serial = bytes.fromhex(serial_hex)
                if serial[0] & 0x80:
                    serial = b"\x00" + serial
                stamp = (revoked_at or fallback_time).encode()
                if stamp < b"2050":
                    body = b"\x02" + bytes((len(serial),)) + serial + b"\x17\x0d" + stamp[2:] + b"Z"
                else:
                    body = b"\x02" + bytes((len(serial),)) + serial + b"\x18\x0f" + stamp + b"Z"
                ext = reasons.get(reason, b"") if reason else b""
                if invalidity is not None:
                    ext += _invalidity_extension(invalidity)
                if ext:
                    body += b"\x30" + length(len(ext)) + ext
                    shape = (reason, invalidity is not None)
                    if shape not in shapes:
                        shapes[shape] = len(entries)
                elif (None, False) not in shapes:
                    shapes[(None, False)] = len(entries)
                append(b"\x30" + length(len(body)) + body)
    return entries, shapes


def _invalidity_extension(stamp: str) -> bytes:
    return extension(_INVALIDITY_OID, b"\x18\x0f" + stamp.encode() + b"Z")


def _tbs(header: bytes, entries: list[bytes], extensions: bytes) -> bytes:
    if not entries:  # RFC 5280 §5.1.2.6: absent, not empty, when nothing is revoked
        return sequence(header, extensions)
    revoked = b"".join(entries)
    return sequence(header, b"\x30" + length(len(revoked)) + revoked, extensions)


def _lint(
    db: Database,
    kind: AuthorityKind,
    shard: int,
    crl_number: int,
    header: bytes,
    extensions: bytes,
    entries: list[bytes],
    shapes: dict[tuple[int | None, bool], int],
) -> str:
    """pkilint the TBS (in full, or its twin) under a dummy signature; raise CrlLintError on ERROR or FATAL."""
    if len(entries) <= FULL_LINT_ENTRIES:
        sample, mode = entries, "full"
    else:
        picks = sorted(set(range(TWIN_SAMPLE)) | set(shapes.values()) | {len(entries) - 1})
        sample = [entries[i] for i in picks]
        mode = f"twin({len(sample)})"
    errors = list(lint_crl(signed_structure(_tbs(header, sample, extensions), _DUMMY_SIGNATURE)).errors)
    if errors:
        with db.session() as session:
            for finding in errors:
                session.add(
                    LintFinding(
                        authority=kind,
                        serial_hex=f"crl:{shard}:{crl_number}",
                        severity=finding.severity,
                        code=finding.code,
                        message=f"{finding.path}: {finding.message}"[:2000],
                        found_at=utcnow(),
                    )
                )
        raise CrlLintError(f"CRL {kind.value}/{shard} #{crl_number} failed lint: {errors[0]}", errors)
    return mode


def _verify(der: bytes, issuer: CrlIssuer, expected_entries: int) -> None:
    """Parse the signed CRL with an independent decoder and check its signature before it is stored."""
    parsed = x509.load_der_x509_crl(der)
    if not parsed.is_signature_valid(issuer.public_key):  # type: ignore[arg-type]
        raise RuntimeError(f"the key store returned a bad CRL signature for {issuer.kind.value}")
    if len(parsed) != expected_entries:
        raise RuntimeError("CRL entry count changed in encoding")


def _naive(moment: datetime) -> datetime:
    return moment.replace(tzinfo=None) if moment.tzinfo else moment
