"""The audit event: what callers hand in (:class:`AuditEvent`), what the log returns (:class:`RecordedEvent`), and
the exact leaf bytes that are hashed into the tree (:func:`leaf_data`).

The leaf is the canonical JSON (sorted keys, no spaces, UTF-8) of every stored field including the sequence number
and the detail text verbatim, so changing, moving or swapping any row changes its leaf hash.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from jpki_remote.audit.detail import (
    AllowListViolation,
    AuditSchemaError,
    DetailRejected,
    canonical_json,
    check_identifier,
    strict_mode,
    validate_detail,
)

OUTCOMES = ("success", "failure", "refused", "error", "info")


@dataclass(frozen=True)
class AuditEvent:
    """One step of a procedure (or an operator action) to be recorded.

    ``actor`` — who acted: ``holder:<card ref>``, ``staff:<id>``, ``system``, ``terminal:<id>``;
    ``event_type`` — dotted name, e.g. ``renewal.face_match``; ``outcome`` — one of :data:`OUTCOMES`;
    ``detail`` — small JSON object, checked by :func:`jpki_remote.audit.detail.validate_detail` against the
    allow-list of ``event_type`` (:mod:`jpki_remote.audit.allowlist`) and the deny checks.
    """

    actor: str
    event_type: str
    outcome: str
    terminal_id: str | None = None
    procedure_id: str | None = None
    detail: Mapping[str, Any] = field(default_factory=dict)

    def validated_detail(self) -> str:
        """Check every field; return the canonical detail text. Raises ``DetailRejected`` — or, in strict mode (tests),
        :class:`AuditSchemaError` for an allow-list violation, so a new key cannot slip by as a "refused" record."""
        check_identifier(self.actor, "actor")
        check_identifier(self.event_type, "event type")
        check_identifier(self.terminal_id, "terminal id", required=False)
        check_identifier(self.procedure_id, "procedure id", required=False)
        if self.outcome not in OUTCOMES:
            raise DetailRejected(f"outcome must be one of {', '.join(OUTCOMES)} (got {self.outcome!r})")
        try:
            return validate_detail(self.detail, self.event_type)
        except AllowListViolation as exc:
            if strict_mode():
                raise AuditSchemaError(f"{exc} (add it to jpki_remote/audit/allowlist.py)") from exc
            raise


@dataclass(frozen=True)
class RecordedEvent:
    seq: int
    occurred_at: datetime
    actor: str
    event_type: str
    outcome: str
    terminal_id: str | None
    procedure_id: str | None
    detail_json: str
    leaf_hash: bytes

    @property
    def detail(self) -> dict[str, Any]:
        return json.loads(self.detail_json)


def as_utc(moment: datetime) -> datetime:
    """SQLite returns naive datetimes; everything in the log is UTC."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def format_time(moment: datetime) -> str:
    return as_utc(moment).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def leaf_data(
    seq: int,
    occurred_at: datetime,
    actor: str,
    terminal_id: str | None,
    procedure_id: str | None,
    event_type: str,
    outcome: str,
    detail_json: str,
) -> bytes:
    return canonical_json(
        {
            "v": 1,
            "seq": seq,
            "time": format_time(occurred_at),
            "actor": actor,
            "terminal": terminal_id,
            "procedure": procedure_id,
            "type": event_type,
            "outcome": outcome,
            "detail": detail_json,
        }
    ).encode()
