"""Precomputed OCSP responses (RFC 6960 §2.5): one signed response per certificate per CertID hash algorithm.

:func:`refresh` re-signs the responses of given serials (called by the CA's status-change hook after issuance and
revocation); :func:`refresh_due` is the background sweep: responses that are missing, disagree with the
certificate's state, were signed by another OCSP signer certificate than the authority's current one (``ca setup``
renewed or replaced it: every row records its signer in ``signer_sha256``), or will go stale within
``ocsp_refresh_before_hours``. A newer response is never overwritten by an older one (the upsert compares
producedAt), so the hook and the sweep may race safely; a late write by a refresher that still held the old signer
is found again by its signer.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import datetime, timedelta

from sqlalchemy import and_, delete, or_, select
from sqlalchemy.orm import Session

from jpki_remote.ca.keystore import KeyStore
from jpki_remote.ca.models import AuthorityKind, Certificate, CertificateState, OcspResponse
from jpki_remote.ca.status.ocsp_response import PRECOMPUTED_ALGORITHMS, single_response
from jpki_remote.ca.status.signing import OcspSigner, load_identities, read_statuses, utcnow
from jpki_remote.config import Settings
from jpki_remote.store import Database

log = logging.getLogger(__name__)

EXPIRED_GRACE = timedelta(days=7)  # keep answering for a week after notAfter, then stop precomputing
BATCH = 200


def refresh(
    db: Database,
    keys: KeyStore,
    settings: Settings,
    kind: AuthorityKind | str,
    serials: Iterable[int],
    *,
    now: datetime | None = None,
) -> int:
    """Sign and store fresh responses for ``serials`` of authority ``kind``; returns the number of certificates.

    Serials that were never issued are skipped (the responder answers ``unknown`` for them).
    """
    kind = AuthorityKind(kind)
    identity = load_identities(db).get(kind)
    if identity is None:
        raise LookupError(f"authority {kind.value} is not set up")
    signer = OcspSigner.open(identity, keys)
    serial_list = sorted(set(serials))
    done = 0
    for offset in range(0, len(serial_list), BATCH):
        done += _refresh_batch(db, signer, settings, kind, serial_list[offset : offset + BATCH], now)
    return done


def _refresh_batch(
    db: Database, signer: OcspSigner, settings: Settings, kind: AuthorityKind, serials: list[int], now: datetime | None
) -> int:
    produced = now or utcnow()  # read the status no earlier than producedAt, so a newer response always wins
    next_update = produced + timedelta(hours=settings.ocsp_response_validity_hours)
    with db.session() as session:
        statuses = read_statuses(session, kind, serials)
    rows = []
    expired = []
    for serial, stored in statuses.items():
        if stored.not_after is not None and _naive(stored.not_after) < _naive(produced) - EXPIRED_GRACE:
            expired.append(format(serial, "x"))
            continue
        for algorithm in PRECOMPUTED_ALGORITHMS:
            single = single_response(signer.identity.cert_id(algorithm, serial), stored.status, produced, next_update)
            rows.append(
                {
                    "authority": kind,
                    "serial_hex": format(serial, "x"),
                    "hash_algorithm": algorithm,
                    "der": signer.sign([single], produced),
                    "cert_status": stored.status.status,
                    "produced_at": produced,
                    "next_update": next_update,
                    "signer_sha256": signer.identity.signer_fingerprint,
                }
            )
    with db.session() as session:
        if rows:
            upsert_responses(session, rows)
        if expired:
            session.execute(
                delete(OcspResponse).where(OcspResponse.authority == kind, OcspResponse.serial_hex.in_(expired))
            )
    return len(rows) // len(PRECOMPUTED_ALGORITHMS)


def upsert_responses(session: Session, rows: list[dict[str, object]]) -> None:
    """Insert or replace precomputed responses, keeping whichever was produced later."""
    if session.get_bind().dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    stmt = insert(OcspResponse)
    stmt = stmt.on_conflict_do_update(
        index_elements=[OcspResponse.authority, OcspResponse.serial_hex, OcspResponse.hash_algorithm],
        set_={
            "der": stmt.excluded.der,
            "cert_status": stmt.excluded.cert_status,
            "produced_at": stmt.excluded.produced_at,
            "next_update": stmt.excluded.next_update,
            "signer_sha256": stmt.excluded.signer_sha256,
        },
        where=OcspResponse.produced_at <= stmt.excluded.produced_at,
    )
    session.execute(stmt, rows)


def refresh_due(
    db: Database,
    keys: KeyStore,
    settings: Settings,
    *,
    now: datetime | None = None,
    limit: int | None = 10_000,
    kinds: Iterable[AuthorityKind | str] | None = None,
) -> int:
    """Background sweep: refresh missing, mismatched, old-signer and soon-stale responses (at most ``limit``
    certificates; ``None``: all of them) of every authority, or of ``kinds``."""
    now = now or utcnow()
    threshold = now + timedelta(hours=settings.ocsp_refresh_before_hours)
    wanted = None if kinds is None else {AuthorityKind(kind) for kind in kinds}
    total = 0
    for kind, identity in load_identities(db).items():
        if wanted is not None and kind not in wanted:
            continue
        signer = identity.signer_fingerprint
        while limit is None or total < limit:
            batch = BATCH * 5 if limit is None else min(BATCH * 5, limit - total)
            serials = _due_serials(db, kind, threshold, batch, signer)
            if not serials:
                break
            done = refresh(db, keys, settings, kind, serials, now=now)
            total += len(serials)
            if done == 0 and not _has_progress(db, kind, serials, threshold, signer):
                log.warning("OCSP refresh made no progress for %d %s serials", len(serials), kind.value)
                break
    return total


def _due_serials(db: Database, kind: AuthorityKind, threshold: datetime, limit: int, signer: str) -> list[int]:
    response = OcspResponse.__table__.alias("r")
    with db.session() as session:
        missing = session.execute(
            select(Certificate.serial_hex)
            .select_from(Certificate)
            .outerjoin(
                response,
                and_(
                    response.c.authority == Certificate.authority,
                    response.c.serial_hex == Certificate.serial_hex,
                    response.c.hash_algorithm == "sha256",
                ),
            )
            .where(
                Certificate.authority == kind,
                Certificate.state.in_((CertificateState.ISSUED, CertificateState.REVOKED)),
                or_(
                    response.c.serial_hex.is_(None),
                    and_(Certificate.state == CertificateState.REVOKED, response.c.cert_status != "revoked"),
                    and_(Certificate.state == CertificateState.ISSUED, response.c.cert_status != "good"),
                ),
                or_(Certificate.not_after.is_(None), Certificate.not_after >= threshold - EXPIRED_GRACE),
            )
            .limit(limit)
        ).scalars()
        found = {int(serial_hex, 16) for serial_hex in missing}
        if len(found) < limit:
            stale = session.execute(
                select(OcspResponse.serial_hex)
                .where(
                    OcspResponse.authority == kind,
                    or_(OcspResponse.next_update < threshold, OcspResponse.signer_sha256 != signer),
                )
                .distinct()
                .limit(limit - len(found))
            ).scalars()
            found.update(int(serial_hex, 16) for serial_hex in stale)
    return sorted(found)


def _has_progress(db: Database, kind: AuthorityKind, serials: list[int], threshold: datetime, signer: str) -> bool:
    return set(_due_serials(db, kind, threshold, len(serials) + 1, signer)) != set(serials)


def _naive(moment: datetime) -> datetime:
    return moment.replace(tzinfo=None) if moment.tzinfo else moment
