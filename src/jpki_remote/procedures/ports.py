"""What the procedure engine needs from the other packages, as small interfaces, plus the adapters to the real ones.

The engine never imports a sibling's internals directly: it calls these ports. :func:`default_ports` wires the real
components (CA, issuer master key, face verification + liveness, security codes, notices, audit log) from the
settings. Where a sibling's API had not landed when this was written, the adapter says so in its docstring and
fails closed (the proof is refused with a clear error) rather than pretending.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date
from typing import Any, Protocol

from jpki_remote.card.scp03 import CardStaticKeys, diversify
from jpki_remote.config import Settings
from jpki_remote.issuer_keys import FileIssuerKeys as FileIssuerKeys  # re-export (procedures' old home)
from jpki_remote.issuer_keys import IssuerKeys, issuer_keys_from_settings
from jpki_remote.store import Database

log = logging.getLogger(__name__)


# ---- issuer master key ----------------------------------------------------------------------------------------
# The issuer's SCP03 master keys live in :mod:`jpki_remote.issuer_keys` (file store for development, PKCS#11 store in
# production: the master key never leaves the HSM). The engine asks only for the static keys of the card it serves
# (``card_keys(version, kdd)``); ``FileIssuerKeys`` and ``IssuerKeys`` are re-exported for existing callers.
@dataclass
class StaticIssuerKeys:
    """One master key held in memory (tests and tools): every key version maps to it."""

    key: bytes

    def master_key(self, key_version: int) -> bytes:
        del key_version
        return self.key

    def card_keys(self, key_version: int, kdd: bytes) -> CardStaticKeys:
        return CardStaticKeys.from_dict(diversify(self.key, bytes(kdd)), bytes(kdd), key_version)


# ---- face ------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class FaceResult:
    matched: bool
    retry_allowed: bool
    reason: str  # match / no_match / live_quality / liveness_failed / reference_unusable / …
    distance: float | None = None
    detail: dict[str, Any] = field(default_factory=dict)


class FacePort(Protocol):
    model: str

    def new_challenge(self) -> dict[str, Any]:
        """A fresh liveness challenge (JSON-able; the terminal shows its steps)."""
        ...

    def encode_reference(self, image: bytes) -> list[float] | None:
        """Encoding of a reference photo (card photo, enrolment photo); None when no usable face."""
        ...

    def verify(
        self,
        frames: Sequence[bytes],
        *,
        card_photo: list[float] | None,
        enrolled: list[float] | None,
        challenge: dict[str, Any],
        card_id: str | None,
    ) -> FaceResult: ...


class ProofingFace:
    """Adapter over :class:`jpki_remote.proofing.face.verifier.FaceVerifier` and
    :func:`jpki_remote.proofing.liveness.check_liveness`: liveness on the whole frame sequence (same identity
    throughout, matching the reference), then the face decision of the first (frontal) frame against the card photo
    and the enrolled photo."""

    def __init__(self, settings: Settings) -> None:
        from jpki_remote.proofing.face.verifier import FaceVerifier

        self._threshold = settings.face_threshold
        self._verifier = FaceVerifier(settings.face_threshold)
        self.model = "dlib-resnet-v1"

    def new_challenge(self) -> dict[str, Any]:
        from jpki_remote.proofing.liveness import LivenessChallenge

        return LivenessChallenge.new().to_dict()

    def encode_reference(self, image: bytes) -> list[float] | None:
        from jpki_remote.proofing.face.verifier import Reference, ReferenceKind

        encoding, _verdict, _cached = self._verifier.encode_reference(Reference(ReferenceKind.CARD_PHOTO, image=image))
        return None if encoding is None else [float(v) for v in encoding]

    def verify(
        self,
        frames: Sequence[bytes],
        *,
        card_photo: list[float] | None,
        enrolled: list[float] | None,
        challenge: dict[str, Any],
        card_id: str | None,
    ) -> FaceResult:
        import numpy as np

        from jpki_remote.proofing.face.verifier import Reference, ReferenceKind
        from jpki_remote.proofing.liveness import LivenessChallenge, check_liveness

        if not frames:
            return FaceResult(False, True, "no_frames")
        try:
            parsed = LivenessChallenge.from_dict(challenge)
        except (KeyError, ValueError, TypeError):
            return FaceResult(False, False, "liveness_unavailable")
        primary = card_photo if card_photo is not None else enrolled
        liveness = check_liveness(
            parsed, list(frames), reference=None if primary is None else np.array(primary), threshold=self._threshold
        )
        if not liveness.passed:
            reasons = [r.value for r in liveness.reasons]
            return FaceResult(False, True, "liveness_failed", detail={"liveness_reasons": reasons})
        references = []
        if card_photo is not None:
            references.append(Reference(ReferenceKind.CARD_PHOTO, encoding=np.array(card_photo), card_id=card_id))
        if enrolled is not None:
            kind = ReferenceKind.ENROLLED_PHOTO if card_photo is not None else ReferenceKind.CARD_PHOTO
            references.append(Reference(kind, encoding=np.array(enrolled)))
        decision = self._verifier.verify(frames[0], references)
        distances = {k: v for k, v in decision.distances.items() if v is not None}
        reason = str(getattr(decision.reason, "value", decision.reason))
        return FaceResult(
            reason == "match",
            bool(getattr(decision.reason, "retry_allowed", False)),
            reason,
            distance=min(distances.values()) if distances else None,
            detail={"distances": {k: round(v, 4) for k, v in distances.items()}},
        )


# ---- security codes and notices ---------------------------------------------------------------------------------
class CodePort(Protocol):
    def issue(self, procedure_id: str, purpose: str, contact: object) -> Any: ...

    def verify(self, procedure_id: str, purpose: str, entered: object) -> Any: ...


class NoticePort(Protocol):
    def notify(self, contacts: Sequence[object], event: dict[str, Any]) -> int:
        """Tell the holder on every contact; returns how many notices were queued or sent."""
        ...


class ProofingNotices:
    """Holder notices through the retrying outbox of :func:`jpki_remote.proofing.notify.notify_holder`:
    one durable row per contact is written first, then sent; a notice that cannot be sent now (SMTP down, gateway
    busy) stays pending and is delivered later by ``deliver_pending`` — the background worker of ``serve`` or
    ``jpki-remote notify deliver-pending`` from cron. The same event is never queued twice for one contact."""

    def __init__(self, db: Database, settings: Settings, deliverer: Any = None) -> None:
        from jpki_remote.proofing.delivery.routing import deliverer_from_settings

        self._db = db
        self._settings = settings
        self._deliverer = deliverer if deliverer is not None else deliverer_from_settings(settings, db)

    def notify(self, contacts: Sequence[object], event: dict[str, Any]) -> int:
        """Queue (and try to send) one notice per contact; returns how many were queued or sent."""
        from jpki_remote.proofing.messages import EventKind, HolderEvent
        from jpki_remote.proofing.notify import notify_holder

        result = notify_holder(
            contacts,
            HolderEvent(
                kind=EventKind(event["kind"]),
                procedure_id=event["procedure_id"],
                channel=event.get("channel", "online"),
                pin_kind=event.get("pin_kind"),
            ),
            db=self._db,
            settings=self._settings,
            deliverer=self._deliverer,
        )
        if result.pending or result.failed:
            log.warning(
                "procedure %s: %d notice(s) sent, %d pending retry, %d failed",
                event["procedure_id"],
                result.sent,
                result.pending,
                result.failed,
            )
        return result.sent + result.pending


# ---- audit ------------------------------------------------------------------------------------------------------
class AuditPort(Protocol):
    def record(
        self,
        *,
        actor: str,
        event_type: str,
        outcome: str,
        terminal_id: str | None,
        procedure_id: str | None,
        detail: dict[str, Any],
    ) -> None: ...


class _SessionDatabase:
    """A ``Database`` whose ``session()`` is one open session (no commit, no close): lets :class:`AuditLog` append
    inside the caller's transaction, so a step and its audit event commit together or not at all."""

    def __init__(self, session: Any) -> None:
        self._session = session

    @contextmanager
    def session(self) -> Iterator[Any]:
        yield self._session


class AuditLogPort:
    """Appends to :class:`jpki_remote.audit.log.AuditLog`. A refused detail is logged and recorded without it.

    ``record_batch(records, session=s)`` appends in the caller's transaction (the engine's fail-closed audit: if the
    append fails the step's transaction rolls back); ``record(...)`` appends on its own."""

    def __init__(self, log_: Any) -> None:
        self._log = log_
        self._last_signed = 0.0

    def _event(self, record: dict[str, Any]) -> Any:
        from jpki_remote.audit.detail import DetailRejected
        from jpki_remote.audit.events import AuditEvent

        event = AuditEvent(
            record["actor"],
            record["event_type"],
            record["outcome"],
            record.get("terminal_id"),
            record.get("procedure_id"),
            record.get("detail") or {},
        )
        try:
            event.validated_detail()
        except DetailRejected as exc:
            log.error("audit detail refused for %s: %s", record["event_type"], exc)
            event = AuditEvent(event.actor, event.event_type, event.outcome, event.terminal_id, event.procedure_id,
                               {"detail": "refused"})  # fmt: skip
        return event

    def record(
        self,
        *,
        actor: str,
        event_type: str,
        outcome: str,
        terminal_id: str | None,
        procedure_id: str | None,
        detail: dict[str, Any],
    ) -> None:
        self._log.append(
            self._event(
                {
                    "actor": actor,
                    "event_type": event_type,
                    "outcome": outcome,
                    "terminal_id": terminal_id,
                    "procedure_id": procedure_id,
                    "detail": detail,
                }
            )
        )

    def record_batch(self, records: Sequence[dict[str, Any]], *, session: Any) -> None:
        from jpki_remote.audit.log import AuditLog

        if not records:
            return
        interval = float(getattr(self._log, "sth_interval_seconds", 60.0))
        due = self._log.signer is not None and time.monotonic() - self._last_signed >= interval
        bound = AuditLog(_SessionDatabase(session), self._log.signer, sth_interval_seconds=interval)  # type: ignore[arg-type]
        bound.append_batch([self._event(r) for r in records], sign=due)
        if due:
            self._last_signed = time.monotonic()


# ---- the bundle --------------------------------------------------------------------------------------------------
@dataclass
class Ports:
    ca: Any  # jpki_remote.ca.authority.CertificateAuthority
    issuer_keys: IssuerKeys
    face: FacePort | None = None
    codes: CodePort | None = None
    notices: NoticePort | None = None
    audit: AuditPort | None = None
    legal_flow: Any = None  # jpki_remote.procedures.legal_flow.LegalFlow
    limits: Any = None  # jpki_remote.proofing.limits.Limits (None: no rate limits — tests and tools only)
    surface: Any = None  # jpki_remote.procedures.surface.SurfaceSigner: the card centre's card-face key


def default_ports(db: Database, settings: Settings) -> Ports:
    """The real components, configured from ``settings``."""
    from jpki_remote.ca.authority import CertificateAuthority
    from jpki_remote.ca.keystore import open_keystore
    from jpki_remote.procedures.legal_flow import LegalFlow
    from jpki_remote.procedures.surface import surface_key
    from jpki_remote.proofing.codes import SecurityCodes
    from jpki_remote.proofing.limits import Limits

    keystore = open_keystore(settings)
    ca = CertificateAuthority(db, keystore, settings)
    audit: AuditPort | None = None
    audit_log = None
    try:
        from jpki_remote.audit.log import AuditLog
        from jpki_remote.audit.signing import signer_from_settings

        audit_log = AuditLog(
            db, signer_from_settings(settings), sth_interval_seconds=settings.audit_sth_interval_seconds
        )
        audit = AuditLogPort(audit_log)
    except (ImportError, AttributeError) as exc:
        log.warning("audit log not available (%s): procedure events are not audited", exc)
    return Ports(
        ca=ca,
        issuer_keys=issuer_keys_from_settings(settings),
        face=ProofingFace(settings),
        codes=SecurityCodes(db, settings),
        notices=ProofingNotices(db, settings),
        audit=audit,
        legal_flow=LegalFlow(db, ca, settings.data_dir / "messaging-keys"),
        limits=Limits.from_settings(settings, db, audit=audit_log),
        surface=surface_key(keystore),
    )


def card_expiry_date(value: object) -> date:
    return value if isinstance(value, date) else date.fromisoformat(str(value))
