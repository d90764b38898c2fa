"""The certification authority service: issue (idempotent per request id), revoke, look up status.

Issuance of a certificate, in order:

1. check the request (holder facts, key, validity — UnderAgeError etc.) before anything is written;
2. **reserve** a random serial in ``ca_certificates`` (state RESERVED) together with its validity and CRL shard, in
   one transaction for both certificates of a pair. The row is keyed by ``(authority, request_id)``: a retried or
   concurrent request finds the existing row instead of reserving a second serial;
3. build the TBS from the reservation only (so every attempt builds the identical TBS), **lint** a throwaway-signed
   copy with pkilint; a blocking finding sets LINT_FAILED, records the findings and raises :class:`LintFailedError`;
4. **sign** the TBS through the key store, verify the signature;
5. **store**: ``UPDATE … SET state=ISSUED WHERE state=RESERVED`` for both certificates in one transaction. When two
   workers race on one request id, both produce byte-identical certificates (RSA PKCS#1 v1.5 is deterministic) and
   exactly one UPDATE wins; the other returns the stored certificate. Never two certificates per request;
6. call the status hooks (:mod:`jpki_remote.ca.hooks`) after commit.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from sqlalchemy import bindparam, select, update
from sqlalchemy.exc import IntegrityError, OperationalError

from jpki_remote.ca import hooks, profiles, reasons
from jpki_remote.ca.distribution import shard_for_serial
from jpki_remote.ca.errors import (
    CaError,
    LintFailedError,
    RequestConflictError,
    RevocationError,
    UnknownCertificateError,
)
from jpki_remote.ca.holder import HolderIdentity
from jpki_remote.ca.keystore.base import KeyStore
from jpki_remote.ca.lint import Finding, Linter, LintReport
from jpki_remote.ca.models import AuthorityKind, Certificate, CertificateState, LintFinding
from jpki_remote.ca.serials import new_serial, serial_hex
from jpki_remote.ca.setup import LoadedAuthority, load_authority
from jpki_remote.ca.signing import prepare_certificate, sign_tbs, signature_length
from jpki_remote.ca.validity import certificate_validity
from jpki_remote.config import Settings
from jpki_remote.store import Database

log = logging.getLogger(__name__)

RESERVE_ATTEMPTS = 8

# The issuance statements, built once: building a Core statement and its cache key costs more than running it on
# SQLite, and issuance runs them for every certificate.
_CERTIFICATES = Certificate.__table__
_FIND_RESERVATIONS = select(
    _CERTIFICATES.c.authority,
    _CERTIFICATES.c.serial_hex,
    _CERTIFICATES.c.state,
    _CERTIFICATES.c.shard,
    _CERTIFICATES.c.not_before,
    _CERTIFICATES.c.not_after,
    _CERTIFICATES.c.der,
    _CERTIFICATES.c.request_digest,
).where(
    _CERTIFICATES.c.request_id == bindparam("request_id"),
    _CERTIFICATES.c.authority.in_(bindparam("kinds", expanding=True)),
)
_INSERT_RESERVATION = _CERTIFICATES.insert()
_STORE_ISSUED = (
    _CERTIFICATES.update()
    .where(
        _CERTIFICATES.c.authority == bindparam("kind"),
        _CERTIFICATES.c.serial_hex == bindparam("serial"),
        _CERTIFICATES.c.state == CertificateState.RESERVED,
    )
    .values(state=CertificateState.ISSUED, der=bindparam("der"), issued_at=bindparam("issued_at"))
)


def _aware(value: datetime | None) -> datetime | None:
    """SQLite returns naive datetimes for timezone=True columns; everything here is UTC."""
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=UTC)


@dataclass(frozen=True)
class IssuedCertificate:
    kind: AuthorityKind
    serial: int
    request_id: str
    der: bytes
    not_before: datetime
    not_after: datetime
    shard: int

    @property
    def certificate(self) -> x509.Certificate:
        return x509.load_der_x509_certificate(self.der)

    @property
    def pem(self) -> bytes:
        return self.certificate.public_bytes(serialization.Encoding.PEM)


@dataclass(frozen=True)
class IssuedPair:
    authentication: IssuedCertificate
    signature: IssuedCertificate | None  # None when no signature key was given (e.g. holder under 15)


@dataclass(frozen=True)
class CertificateStatus:
    kind: AuthorityKind
    serial: int
    state: CertificateState
    holder_ref: str
    request_id: str
    shard: int
    not_before: datetime | None
    not_after: datetime | None
    issued_at: datetime | None
    revoked_at: datetime | None
    reason: int | None  # RFC 5280 CRLReason code while REVOKED
    invalidity_date: datetime | None = None  # RFC 5280 §5.3.2: when the key is known or suspected to be compromised

    @property
    def reason_name(self) -> str | None:
        return reasons.reason_name(self.reason)

    @property
    def on_hold(self) -> bool:
        return self.state is CertificateState.REVOKED and self.reason == reasons.CERTIFICATE_HOLD

    @classmethod
    def of(cls, row: Certificate) -> CertificateStatus:
        return cls(
            kind=AuthorityKind(row.authority),
            serial=int(row.serial_hex, 16),
            state=CertificateState(row.state),
            holder_ref=row.holder_ref,
            request_id=row.request_id,
            shard=row.shard,
            not_before=_aware(row.not_before),
            not_after=_aware(row.not_after),
            issued_at=_aware(row.issued_at),
            revoked_at=_aware(row.revoked_at),
            reason=row.revocation_reason,
            invalidity_date=_aware(row.invalidity_date),
        )


def _invalidity(invalidity_date: datetime | None, revoked_at: datetime) -> datetime | None:
    """The invalidity date to record (UTC, whole seconds), checked: timezone-aware and not after the revocation."""
    if invalidity_date is None:
        return None
    if invalidity_date.tzinfo is None:
        raise RevocationError("the invalidity date must have a UTC offset")
    invalid = invalidity_date.astimezone(UTC).replace(microsecond=0)
    if invalid > revoked_at:
        raise RevocationError(
            f"the invalidity date {invalid.isoformat()} is after the revocation time {revoked_at.isoformat()}"
        )
    return invalid


@dataclass(frozen=True)
class _Request:
    kind: AuthorityKind
    request_id: str
    holder: HolderIdentity
    public_key: rsa.RSAPublicKey
    card_expiry: date
    digest: str


@dataclass
class _Reservation:
    serial: int
    state: CertificateState
    shard: int
    not_before: datetime
    not_after: datetime
    der: bytes | None


def _request_digest(kind: AuthorityKind, holder: HolderIdentity, public_key: rsa.RSAPublicKey, expiry: date) -> str:
    spki = public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    facts = {
        "kind": kind.value,
        "holder": {k: (str(v) if v is not None else None) for k, v in vars(holder).items()},
        "spki": spki.hex(),
        "card_expiry": expiry.isoformat(),
    }
    return hashlib.sha256(json.dumps(facts, sort_keys=True, ensure_ascii=False).encode()).hexdigest()


class CertificateAuthority:
    """Both authorities over one database and key store. Thread-safe; create one per process and share it."""

    def __init__(self, db: Database, keystore: KeyStore, settings: Settings, *, linter: Linter | None = None) -> None:
        self.db = db
        self.keystore = keystore
        self.settings = settings
        self.linter = linter or Linter(settings.ca_lint_workers)
        self._authorities: dict[AuthorityKind, LoadedAuthority] = {}
        self._lock = threading.Lock()

    # -- authorities ----------------------------------------------------------------------------------------------
    def authority(self, kind: AuthorityKind | str) -> LoadedAuthority:
        """The set-up authority ``kind`` (raises :class:`NotSetUpError` before ``ca setup``)."""
        kind = AuthorityKind(kind)
        loaded = self._authorities.get(kind)
        if loaded is None:
            loaded = load_authority(self.db, self.keystore, kind)
            with self._lock:
                self._authorities[kind] = loaded
        return loaded

    def authority_certificate(self, kind: AuthorityKind | str) -> x509.Certificate:
        return self.authority(kind).certificate

    # -- issuance -------------------------------------------------------------------------------------------------
    def issue(
        self,
        kind: AuthorityKind | str,
        request_id: str,
        holder: HolderIdentity,
        public_key: rsa.RSAPublicKey,
        card_expiry: date,
        issued_at: datetime | None = None,
    ) -> IssuedCertificate:
        """Issue one certificate; a retry with the same ``request_id`` returns the same certificate."""
        kind = AuthorityKind(kind)
        request = self._request(kind, request_id, holder, public_key, card_expiry)
        return self._issue([request], issued_at)[0]

    def issue_pair(
        self,
        request_id: str,
        holder: HolderIdentity,
        auth_public_key: rsa.RSAPublicKey,
        sign_public_key: rsa.RSAPublicKey | None,
        card_expiry: date,
        issued_at: datetime | None = None,
    ) -> IssuedPair:
        """Issue the auth certificate and, when ``sign_public_key`` is given, the signature certificate — both or
        neither. Holders under 15 get no signature certificate: pass ``sign_public_key=None`` (a key raises
        :class:`UnderAgeError`). Idempotent per ``request_id``."""
        requests = [self._request(AuthorityKind.AUTHENTICATION, request_id, holder, auth_public_key, card_expiry)]
        if sign_public_key is not None:
            requests.append(self._request(AuthorityKind.SIGNATURE, request_id, holder, sign_public_key, card_expiry))
        issued = self._issue(requests, issued_at)
        return IssuedPair(issued[0], issued[1] if len(issued) > 1 else None)

    def _request(
        self,
        kind: AuthorityKind,
        request_id: str,
        holder: HolderIdentity,
        public_key: rsa.RSAPublicKey,
        card_expiry: date,
    ) -> _Request:
        if not request_id or len(request_id) > 64:
            raise CaError("request_id must be 1-64 characters")
        profiles.check_subject_key(public_key)
        if kind is AuthorityKind.SIGNATURE:
            holder.check_for_signature()
        else:
            holder.check_common()
        return _Request(
            kind, request_id, holder, public_key, card_expiry, _request_digest(kind, holder, public_key, card_expiry)
        )

    def _issue(self, requests: list[_Request], issued_at: datetime | None) -> list[IssuedCertificate]:
        issued_at = (issued_at or datetime.now(UTC)).astimezone(UTC).replace(microsecond=0)
        for request in requests:  # raises UnderAgeError / ValidityError before any row is written
            certificate_validity(request.kind, request.holder.birth_date, issued_at, request.card_expiry)
        authorities = [self.authority(r.kind) for r in requests]
        reservations = self._reserve(requests, issued_at)

        failed = [
            (r, res) for r, res in zip(requests, reservations, strict=True) if res.state is CertificateState.LINT_FAILED
        ]
        if failed:
            raise self._stored_lint_failure(failed)
        pending = [i for i, res in enumerate(reservations) if res.state is CertificateState.RESERVED]
        if pending:
            prepared = [
                prepare_certificate(
                    self._builder(requests[i], reservations[i], authorities[i]),
                    signature_length(authorities[i].certificate),
                )
                for i in pending
            ]
            reports = self.linter.lint_certificates([p.lint_copy for p in prepared])
            if not all(report.ok for report in reports):
                self._mark_lint_failed([requests[i] for i in pending], [reservations[i] for i in pending], reports)
                blocking = [f for report in reports for f in report.errors]
                raise LintFailedError(
                    "certificate refused by the linter, nothing signed: "
                    + "; ".join(report.summary() for report in reports if not report.ok),
                    blocking,
                )
            ders = [sign_tbs(p.tbs, authorities[i].key) for i, p in zip(pending, prepared, strict=True)]
            self._store([requests[i] for i in pending], [reservations[i] for i in pending], ders, issued_at)
        return [
            IssuedCertificate(
                r.kind, res.serial, r.request_id, res.der or b"", res.not_before, res.not_after, res.shard
            )
            for r, res in zip(requests, reservations, strict=True)
        ]

    def _builder(
        self, request: _Request, reservation: _Reservation, authority: LoadedAuthority
    ) -> x509.CertificateBuilder:
        return profiles.holder_certificate(
            self.settings,
            request.kind,
            request.holder,
            request.public_key,
            authority.certificate.public_key(),  # type: ignore[arg-type]
            reservation.serial,
            reservation.shard,
            reservation.not_before,
            reservation.not_after,
        )

    def _reserve(self, requests: list[_Request], issued_at: datetime) -> list[_Reservation]:
        """Find or create the rows of ``requests`` in one transaction (retried on a lost insert race).

        Core statements on one connection: one SELECT for all requests, one multi-row INSERT for the new ones.
        """
        request_id = requests[0].request_id
        assert all(r.request_id == request_id for r in requests)
        last: Exception | None = None
        for _attempt in range(RESERVE_ATTEMPTS):
            try:
                with self.db.engine.begin() as connection:
                    found = {
                        AuthorityKind(row.authority): row
                        for row in connection.execute(
                            _FIND_RESERVATIONS, {"request_id": request_id, "kinds": [r.kind for r in requests]}
                        )
                    }
                    new_rows = []
                    reservations = []
                    for request in requests:
                        row = found.get(request.kind)
                        if row is None:
                            values = self._new_row(request, issued_at)
                            new_rows.append(values)
                            reservations.append(
                                _Reservation(
                                    int(values["serial_hex"], 16),
                                    CertificateState.RESERVED,
                                    values["shard"],
                                    values["not_before"],
                                    values["not_after"],
                                    None,
                                )
                            )
                        elif row.request_digest != request.digest:
                            raise RequestConflictError(
                                f"request id {request.request_id!r} was already used for a different "
                                f"{request.kind.value} certificate request"
                            )
                        else:
                            reservations.append(
                                _Reservation(
                                    int(row.serial_hex, 16),
                                    CertificateState(row.state),
                                    row.shard,
                                    _aware(row.not_before),
                                    _aware(row.not_after),
                                    row.der,
                                )  # type: ignore[arg-type]
                            )
                    if new_rows:
                        connection.execute(_INSERT_RESERVATION, new_rows)
                    return reservations
            except IntegrityError as exc:  # a concurrent request with the same id committed first: read theirs
                last = exc
            except OperationalError as exc:  # SQLite: a concurrent writer; try again
                if not self.db.url.startswith("sqlite"):
                    raise
                last = exc
        raise CaError(f"could not reserve a serial number after {RESERVE_ATTEMPTS} attempts") from last

    def _new_row(self, request: _Request, issued_at: datetime) -> dict[str, object]:
        validity = certificate_validity(request.kind, request.holder.birth_date, issued_at, request.card_expiry)
        serial = new_serial()
        return {
            "authority": request.kind,
            "serial_hex": serial_hex(serial),
            "request_id": request.request_id,
            "request_digest": request.digest,
            "state": CertificateState.RESERVED,
            "holder_ref": request.holder.holder_ref,
            "shard": shard_for_serial(serial, self.settings.crl_shards),
            "not_before": validity.not_before,
            "not_after": validity.not_after,
            "reserved_at": datetime.now(UTC),
        }

    def _store(
        self, requests: list[_Request], reservations: list[_Reservation], ders: list[bytes], issued_at: datetime
    ) -> None:
        table = Certificate.__table__
        won: list[bool] = []
        for attempt in range(RESERVE_ATTEMPTS):
            try:
                with self.db.engine.begin() as connection:
                    won = []
                    for request, reservation, der in zip(requests, reservations, ders, strict=True):
                        result = connection.execute(
                            _STORE_ISSUED,
                            {
                                "kind": request.kind,
                                "serial": serial_hex(reservation.serial),
                                "der": der,
                                "issued_at": issued_at,
                            },
                        )
                        won.append(result.rowcount == 1)
                break
            except OperationalError:
                if not self.db.url.startswith("sqlite") or attempt == RESERVE_ATTEMPTS - 1:
                    raise
        changes = []
        for request, reservation, der, mine in zip(requests, reservations, ders, won, strict=True):
            if mine:
                reservation.state, reservation.der = CertificateState.ISSUED, der
                changes.append(
                    hooks.StatusChange(
                        self.db, request.kind, reservation.serial, CertificateState.ISSUED, reservation.not_after
                    )
                )
                continue
            with self.db.engine.connect() as connection:  # a concurrent attempt stored it first: return what is stored
                row = connection.execute(
                    select(table.c.state, table.c.der).where(
                        table.c.authority == request.kind, table.c.serial_hex == serial_hex(reservation.serial)
                    )
                ).one()
            reservation.state, reservation.der = CertificateState(row.state), row.der
            if reservation.der != der:
                log.warning("request %s: stored certificate differs from the rebuilt one", request.request_id)
        hooks.notify(changes)

    def _mark_lint_failed(
        self, requests: list[_Request], reservations: list[_Reservation], reports: list[LintReport]
    ) -> None:
        now = datetime.now(UTC)
        with self.db.session() as session:
            for request, reservation, report in zip(requests, reservations, reports, strict=True):
                session.execute(
                    update(Certificate)
                    .where(
                        Certificate.authority == request.kind,
                        Certificate.serial_hex == serial_hex(reservation.serial),
                        Certificate.state == CertificateState.RESERVED,
                    )
                    .values(state=CertificateState.LINT_FAILED)
                )
                for finding in report.findings:
                    if finding.severity in ("FATAL", "ERROR", "WARNING"):
                        session.add(
                            LintFinding(
                                authority=request.kind,
                                serial_hex=serial_hex(reservation.serial),
                                severity=finding.severity,
                                code=finding.code[:200],
                                message=f"{finding.path}: {finding.message}",
                                found_at=now,
                            )
                        )
        log.error(
            "lint refused request %s: %s", requests[0].request_id, "; ".join(r.summary() for r in reports if not r.ok)
        )

    def _stored_lint_failure(self, failed: list[tuple[_Request, _Reservation]]) -> LintFailedError:
        findings = []
        with self.db.session() as session:
            for request, reservation in failed:
                rows = session.execute(
                    select(LintFinding).where(
                        LintFinding.authority == request.kind,
                        LintFinding.serial_hex == serial_hex(reservation.serial),
                    )
                ).scalars()
                findings += [Finding(r.severity, r.code, r.message, "") for r in rows]
        return LintFailedError(
            f"request {failed[0][0].request_id!r} was refused by the linter before; use a new request id", findings
        )

    # -- revocation -----------------------------------------------------------------------------------------------
    def revoke(
        self,
        kind: AuthorityKind | str,
        serial: int,
        reason: x509.ReasonFlags | str | int,
        at: datetime | None = None,
        invalidity_date: datetime | None = None,
    ) -> CertificateStatus:
        """Revoke one certificate. Repeating the same revocation is a no-op; a hold may become permanent; a
        revoked certificate may be escalated to keyCompromise. affiliationChanged is for signature certificates.

        ``invalidity_date`` (aware, not after the revocation time) is recorded with the change and published as the
        CRL entry's invalidityDate; it cannot be changed by repeating a revocation (only with the change itself)."""
        kind = AuthorityKind(kind)
        code = self._check_reason(kind, reason)
        at = (at or datetime.now(UTC)).astimezone(UTC).replace(microsecond=0)
        invalid = _invalidity(invalidity_date, at)
        with self.db.session() as session:
            row = session.execute(
                select(Certificate)
                .where(Certificate.authority == kind, Certificate.serial_hex == serial_hex(serial))
                .with_for_update()
            ).scalar_one_or_none()
            if row is None:
                raise UnknownCertificateError(f"no {kind.value} certificate with serial {serial_hex(serial)}")
            changed = self._apply_revocation(row, code, at, invalid)
            status = CertificateStatus.of(row)
        if changed:
            hooks.notify([self._change(status)])
        return status

    def revoke_for_holder(
        self,
        holder_ref: str,
        reason: x509.ReasonFlags | str | int,
        *,
        kinds: Iterable[AuthorityKind | str] | None = None,
        keep_serials: Collection[int] = (),
        at: datetime | None = None,
        invalidity_date: datetime | None = None,
    ) -> list[CertificateStatus]:
        """Revoke every valid (or held) certificate of ``holder_ref`` in ``kinds`` except ``keep_serials``.

        Default kinds: both, except for affiliationChanged (basic four facts changed), which revokes only the
        signature certificate — the auth certificate survives a move. Returns the certificates that changed."""
        code = reasons.reason_code(reason)
        if kinds is None:
            selected = [AuthorityKind.SIGNATURE] if code == reasons.AFFILIATION_CHANGED else list(AuthorityKind)
        else:
            selected = [AuthorityKind(k) for k in kinds]
        for kind in selected:
            self._check_reason(kind, code)
        keep = {serial_hex(s) for s in keep_serials}
        at = (at or datetime.now(UTC)).astimezone(UTC).replace(microsecond=0)
        invalid = _invalidity(invalidity_date, at)
        changed = []
        with self.db.session() as session:
            rows = session.execute(
                select(Certificate)
                .where(
                    Certificate.holder_ref == holder_ref,
                    Certificate.authority.in_(selected),
                    Certificate.state.in_([CertificateState.ISSUED, CertificateState.REVOKED]),
                )
                .order_by(Certificate.authority, Certificate.serial_hex)
                .with_for_update()
            ).scalars()
            for row in rows:
                if row.serial_hex in keep:
                    continue
                if row.state is CertificateState.REVOKED and row.revocation_reason != reasons.CERTIFICATE_HOLD:
                    continue  # already permanently revoked: leave its reason alone
                if self._apply_revocation(row, code, at, invalid):
                    changed.append(CertificateStatus.of(row))
        hooks.notify([self._change(status) for status in changed])
        return changed

    def release_hold(self, kind: AuthorityKind | str, serial: int) -> CertificateStatus:
        """End a suspension (certificateHold → valid again; the next CRL drops the entry, i.e. removeFromCRL)."""
        kind = AuthorityKind(kind)
        with self.db.session() as session:
            row = session.execute(
                select(Certificate)
                .where(Certificate.authority == kind, Certificate.serial_hex == serial_hex(serial))
                .with_for_update()
            ).scalar_one_or_none()
            if row is None:
                raise UnknownCertificateError(f"no {kind.value} certificate with serial {serial_hex(serial)}")
            if row.state is not CertificateState.REVOKED or row.revocation_reason != reasons.CERTIFICATE_HOLD:
                raise RevocationError(f"{kind.value} certificate {serial_hex(serial)} is not on hold")
            row.state, row.revoked_at, row.revocation_reason = CertificateState.ISSUED, None, None
            row.invalidity_date = None
            status = CertificateStatus.of(row)
        hooks.notify([self._change(status)])
        return status

    @staticmethod
    def _check_reason(kind: AuthorityKind, reason: x509.ReasonFlags | str | int) -> int:
        try:
            code = reasons.reason_code(reason)
        except ValueError as exc:
            raise RevocationError(str(exc)) from exc
        if code == reasons.REMOVE_FROM_CRL:
            raise RevocationError("removeFromCRL is not a revocation; use release_hold()")
        if code not in reasons.REVOCATION_CODES:
            raise RevocationError(f"{reasons.reason_name(code)} does not apply to JPKI holder certificates")
        if code == reasons.AFFILIATION_CHANGED and kind is not AuthorityKind.SIGNATURE:
            raise RevocationError(
                "affiliationChanged (basic four facts changed) revokes the signature certificate only"
            )
        return code

    @staticmethod
    def _apply_revocation(row: Certificate, code: int, at: datetime, invalidity_date: datetime | None = None) -> bool:
        """Change ``row``; False when it already says exactly this."""
        state = CertificateState(row.state)
        if state in (CertificateState.RESERVED, CertificateState.LINT_FAILED):
            raise RevocationError(f"certificate {row.serial_hex} was never issued ({state.value})")
        if state is CertificateState.ISSUED:
            row.state, row.revoked_at, row.revocation_reason = CertificateState.REVOKED, at, code
            row.invalidity_date = invalidity_date
            return True
        current = row.revocation_reason
        if current == code:
            recorded = _aware(row.invalidity_date)
            if invalidity_date is not None and invalidity_date != recorded:
                raise RevocationError(
                    f"certificate {row.serial_hex} is already revoked ({reasons.reason_name(code)}) with invalidity "
                    f"date {recorded.isoformat() if recorded else 'none'}; it cannot be changed by a repeat"
                )
            return False
        if current == reasons.CERTIFICATE_HOLD or code == reasons.KEY_COMPROMISE:
            # the hold becomes permanent, or the reason is escalated to keyCompromise (RFC 5280 permits that);
            # the revocation date stays, an invalidity date given now is recorded
            row.revocation_reason = code
            if invalidity_date is not None:
                row.invalidity_date = invalidity_date
            return True
        raise RevocationError(
            f"certificate {row.serial_hex} is already revoked ({reasons.reason_name(current)}); "
            f"cannot change the reason to {reasons.reason_name(code)}"
        )

    def _change(self, status: CertificateStatus) -> hooks.StatusChange:
        assert status.not_after is not None
        return hooks.StatusChange(
            self.db, status.kind, status.serial, status.state, status.not_after, status.revoked_at, status.reason
        )

    # -- lookup ---------------------------------------------------------------------------------------------------
    def status(self, kind: AuthorityKind | str, serial: int) -> CertificateStatus | None:
        """The status of a serial, or None if this authority never reserved it."""
        with self.db.session() as session:
            row = session.get(Certificate, (AuthorityKind(kind), serial_hex(serial)))
            return None if row is None else CertificateStatus.of(row)

    def certificate(self, kind: AuthorityKind | str, serial: int) -> IssuedCertificate:
        """The issued certificate (also when revoked)."""
        kind = AuthorityKind(kind)
        with self.db.session() as session:
            row = session.get(Certificate, (kind, serial_hex(serial)))
            if row is None or row.der is None:
                raise UnknownCertificateError(f"no {kind.value} certificate with serial {serial_hex(serial)}")
            return IssuedCertificate(
                kind,
                serial,
                row.request_id,
                row.der,
                _aware(row.not_before),  # type: ignore[arg-type]
                _aware(row.not_after),
                row.shard,
            )  # type: ignore[arg-type]

    def certificates_for_holder(self, holder_ref: str) -> list[CertificateStatus]:
        with self.db.session() as session:
            rows = session.execute(
                select(Certificate)
                .where(Certificate.holder_ref == holder_ref)
                .order_by(Certificate.reserved_at, Certificate.authority)
            ).scalars()
            return [CertificateStatus.of(row) for row in rows]

    def lint_findings(self, kind: AuthorityKind | str, serial: int) -> list[Finding]:
        with self.db.session() as session:
            rows = session.execute(
                select(LintFinding).where(
                    LintFinding.authority == AuthorityKind(kind), LintFinding.serial_hex == serial_hex(serial)
                )
            ).scalars()
            return [Finding(r.severity, r.code, r.message, "") for r in rows]

    def close(self) -> None:
        self.linter.close()
