"""Sign OCSP responses through the key store, and read certificate status from the store.

Shared by the precomputation (refresh) and the responder's live path (nonces, several certificates, unknown serials).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from jpki_remote.ca.keystore import CaKey, KeyStore
from jpki_remote.ca.models import Authority, AuthorityKind, Certificate, CertificateState
from jpki_remote.ca.status.ocsp_response import (
    GOOD,
    UNKNOWN,
    CertStatus,
    ResponderIdentity,
    assemble,
    response_data,
)
from jpki_remote.store import Database


def utcnow() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def load_identities(db: Database) -> dict[AuthorityKind, ResponderIdentity]:
    """Every authority set up in ``db``, keyed by kind (empty before ``jpki-remote ca setup``)."""
    with db.session() as session:
        rows = session.execute(
            select(Authority.kind, Authority.certificate_der, Authority.ocsp_certificate_der, Authority.ocsp_key_label)
        ).all()
    return {
        AuthorityKind(kind): ResponderIdentity.build(AuthorityKind(kind), ca_der, ocsp_der, label)
        for kind, ca_der, ocsp_der, label in rows
    }


class OcspSigner:
    """Signs ``ResponseData`` for one authority with its delegated OCSP key (the key stays in the store)."""

    def __init__(self, identity: ResponderIdentity, key: CaKey) -> None:
        self.identity = identity
        self._key = key

    @classmethod
    def open(cls, identity: ResponderIdentity, keys: KeyStore) -> OcspSigner:
        return cls(identity, keys.get(identity.responder_key_label))

    def sign(self, singles: list[bytes], produced_at: datetime, nonce: bytes | None = None) -> bytes:
        tbs = response_data(self.identity, produced_at, singles, nonce)
        return assemble(self.identity, tbs, self._key.sign_sha256_rsa(tbs))


@dataclass(frozen=True, slots=True)
class StoredStatus:
    status: CertStatus
    not_after: datetime | None


def read_statuses(session: Session, kind: AuthorityKind, serials: Iterable[int]) -> dict[int, StoredStatus]:
    """Status of each serial we issued; serials never issued (or only reserved) are absent from the result."""
    wanted = {format(serial, "x"): serial for serial in serials if serial > 0}
    out: dict[int, StoredStatus] = {}
    keys = list(wanted)
    for offset in range(0, len(keys), 500):
        rows = session.execute(
            select(
                Certificate.serial_hex,
                Certificate.state,
                Certificate.revoked_at,
                Certificate.revocation_reason,
                Certificate.not_after,
            ).where(
                Certificate.authority == kind,
                Certificate.serial_hex.in_(keys[offset : offset + 500]),
                Certificate.state.in_((CertificateState.ISSUED, CertificateState.REVOKED)),
            )
        ).all()
        for serial_hex, state, revoked_at, reason, not_after in rows:
            if state == CertificateState.REVOKED:
                status = CertStatus("revoked", revoked_at or utcnow(), reason)
            else:
                status = GOOD
            out[wanted[serial_hex]] = StoredStatus(status, not_after)
    return out


def status_of(statuses: dict[int, StoredStatus], serial: int) -> CertStatus:
    found = statuses.get(serial)
    return found.status if found else UNKNOWN
