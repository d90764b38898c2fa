"""Append-only Merkle-tree audit log (RFC 6962 hashing), signed tree heads, inclusion/consistency proofs.

Other packages use::

    from jpki_remote.audit import AuditEvent, AuditLog, signer_from_settings
    log = AuditLog(db, signer_from_settings(settings), sth_interval_seconds=settings.audit_sth_interval_seconds)
    seq = log.append(AuditEvent(actor=..., event_type=..., outcome="success", terminal_id=..., procedure_id=...,
                                detail={...}))

Never put PINs, codes or images in an event; :mod:`jpki_remote.audit.detail` refuses them (``DetailRejected``).
"""

from jpki_remote.audit.detail import DetailRejected
from jpki_remote.audit.events import AuditEvent, RecordedEvent
from jpki_remote.audit.log import AuditLog, InclusionProof, VerifyReport
from jpki_remote.audit.merkle import ProofError
from jpki_remote.audit.signing import SignedTreeHead, signer_from_settings

__all__ = [
    "AuditEvent",
    "AuditLog",
    "DetailRejected",
    "InclusionProof",
    "ProofError",
    "RecordedEvent",
    "SignedTreeHead",
    "VerifyReport",
    "signer_from_settings",
]
