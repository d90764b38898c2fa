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
signing, the signature is verified with the CA certificate's public key before the CRL is stored.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from jpki_remote.ca.der import SHA256_WITH_RSA, integer, length, sequence, signed_structure
from jpki_remote.ca.distribution import issuing_distribution_point
from jpki_remote.ca.keystore import CaKey, KeyStore
from jpki_remote.ca.lint import Finding, lint_crl
from jpki_remote.ca.models import Authority, AuthorityKind, CertificateState, CrlShard, LintFinding
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


def shard_fingerprint(db: Database, kind: AuthorityKind, shard: int, now: datetime) -> str:
    """``count:latest revocation:sum of reasons`` of the entries the shard's CRL would hold now (unexpired).

    It changes when a certificate of the shard is revoked, released from hold, or expires off the list; the
    publisher computes the same value while it streams the entries.
    """
    revoked, _, where = _sql_parts(db)
    columns = f"count(*), max({revoked}), coalesce(sum(revocation_reason), 0)"
    sql = f"SELECT {columns} FROM ca_certificates WHERE {where}"  # noqa: S608 - constants only
    connection = db.engine.raw_connection()
    try:
        cursor = connection.cursor()
        cursor.execute(sql, (kind.name, shard, CertificateState.REVOKED.name, _bind_time(db, now)))
        count, latest, reasons = cursor.fetchone()
        cursor.close()
        connection.commit()
    finally:
        connection.close()
    return _fingerprint(count, latest, int(reasons))


def _fingerprint(count: int, latest: str | None, reasons: int) -> str:
    """Changes on a new or released revocation, an entry expiring, or a reason change (e.g. to keyCompromise)."""
    return f"{count}:{latest or '-'}:{reasons}"


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
    with db.session() as session:
        current = session.execute(
            select(CrlShard.crl_number, CrlShard.next_update, CrlShard.source_fingerprint).where(
                CrlShard.authority == kind, CrlShard.shard == shard
            )
        ).first()
    if current is not None and not force:
        fingerprint = shard_fingerprint(db, kind, shard, now)
        margin = timedelta(hours=settings.crl_republish_before_hours)
        if current.source_fingerprint == fingerprint and _naive(current.next_update) - margin > _naive(now):
            return None
    issuer = issuer or CrlIssuer.load(db, keys, kind)
    crl_number = (current.crl_number + 1) if current is not None else 1
    next_update = now + timedelta(hours=settings.crl_validity_hours)

    entries, shapes, fingerprint = _revoked_entries(db, kind, shard, now)
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
    signature = issuer.key.sign_sha256_rsa(tbs)
    _verify(tbs, signature, issuer)
    der = signed_structure(tbs, signature)
    del tbs

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


def _sql_parts(db: Database) -> tuple[str, str, str]:
    """Dialect SQL pieces: revoked/invalidity times as ``YYYYMMDDHHMMSS`` text (UTC), the bind marker, the filter."""
    if db.is_postgresql:
        revoked = "to_char(revoked_at AT TIME ZONE 'UTC', 'YYYYMMDDHH24MISS')"
        invalid = "to_char(invalidity_date AT TIME ZONE 'UTC', 'YYYYMMDDHH24MISS')"
        mark = "%s"
    else:
        revoked = "strftime('%Y%m%d%H%M%S', revoked_at)"
        invalid = "strftime('%Y%m%d%H%M%S', invalidity_date)"
        mark = "?"
    where = f"authority = {mark} AND shard = {mark} AND state = {mark} AND (not_after IS NULL OR not_after >= {mark})"
    return revoked, invalid, where


def _revoked_entries(
    db: Database, kind: AuthorityKind, shard: int, now: datetime
) -> tuple[list[bytes], dict[tuple[int | None, bool], int], str]:
    """DER of every unexpired revoked certificate of the shard, one index per entry shape (for the twin), and the
    shard fingerprint of exactly these entries.

    Rows stream through a plain DB-API cursor (server-side on PostgreSQL) — this loop is the hot path of
    publication, so it avoids ORM/Core row objects and does only bytes work per entry.
    """
    # Enum columns store member names (SQLAlchemy's default for non-native enums).
    params = (kind.name, shard, CertificateState.REVOKED.name, _bind_time(db, now))
    entries: list[bytes] = []
    shapes: dict[tuple[int | None, bool], int] = {}
    append = entries.append
    reasons = _REASON_EXTENSIONS
    fromhex = bytes.fromhex
    fallback_time = now.strftime("%Y%m%d%H%M%S")
    plain_shape_seen = False
    latest = ""
    reason_sum = 0
    connection = db.engine.raw_connection()
    try:
        cursor = connection.cursor(name="crl_rows") if db.is_postgresql else connection.cursor()
        if db.is_postgresql:
            cursor.itersize = FETCH_ROWS
        revoked_sql, invalid_sql, where = _sql_parts(db)
        columns = f"serial_hex, {revoked_sql}, revocation_reason, {invalid_sql}"
        sql = f"SELECT {columns} FROM ca_certificates WHERE {where}"  # noqa: S608 - constants only
        cursor.execute(sql, params)
        while True:
            rows = cursor.fetchmany(FETCH_ROWS)
            if not rows:
                break
            for serial_hex, revoked_at, reason, invalidity in rows:
                serial = fromhex(serial_hex if not len(serial_hex) & 1 else "0" + serial_hex)
                if serial[0] & 0x80:
                    serial = b"\x00" + serial
                if revoked_at is None:
                    revoked_at = fallback_time
                elif revoked_at > latest:
                    latest = revoked_at
                stamp = revoked_at.encode()
                if stamp < b"2050":
                    body = b"\x02%c%b\x17\x0d%bZ" % (len(serial), serial, stamp[2:])
                else:
                    body = b"\x02%c%b\x18\x0f%bZ" % (len(serial), serial, stamp)
                if reason:
                    reason_sum += reason
                if reason or invalidity is not None:
                    ext = reasons.get(reason, b"") if reason else b""
                    if invalidity is not None:
                        ext += _invalidity_extension(invalidity)
                    if ext:
                        body += b"\x30" + length(len(ext)) + ext
                    shape = (reason, invalidity is not None)
                    if shape not in shapes:
                        shapes[shape] = len(entries)
                elif not plain_shape_seen:
                    plain_shape_seen = True
                    shapes[(None, False)] = len(entries)
                size = len(body)
                append((b"\x30%c" % size if size < 0x80 else b"\x30\x81%c" % size) + body)
        cursor.close()
        connection.commit()
    finally:
        connection.close()
    return entries, shapes, _fingerprint(len(entries), latest or None, reason_sum)


def _bind_time(db: Database, moment: datetime) -> object:
    """``moment`` as the driver expects it: PostgreSQL takes the datetime, SQLite compares SQLAlchemy's text form."""
    if db.is_postgresql:
        return moment
    naive = _naive(moment.astimezone(UTC) if moment.tzinfo else moment)
    return naive.strftime("%Y-%m-%d %H:%M:%S.%f")


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


def _verify(tbs: bytes, signature: bytes, issuer: CrlIssuer) -> None:
    """Check the key store's signature over the TBS with the CA certificate's public key before storing."""
    try:
        issuer.public_key.verify(signature, tbs, padding.PKCS1v15(), hashes.SHA256())  # type: ignore[attr-defined]
    except InvalidSignature:
        raise RuntimeError(f"the key store returned a bad CRL signature for {issuer.kind.value}") from None


def _naive(moment: datetime) -> datetime:
    return moment.replace(tzinfo=None) if moment.tzinfo else moment
