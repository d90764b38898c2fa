"""The allow-list of audit detail keys per event type, with the type and bounds of each value (security finding S-13).

A detail key is recorded only if its event type lists it, and only with a value of the listed kind: identifiers are
lower-case-bearing names without digit runs, counts are bounded integers, serials are ``0x`` + hex, times are ISO
8601. Anything else — a new key nobody reviewed, a PIN under an innocent key, a number out of its range — is refused
(:class:`jpki_remote.audit.detail.AllowListViolation`). The deny checks of :mod:`jpki_remote.audit.detail` still
run on every value as a second line.

Event types: every procedure event is ``<procedure kind>.<event>`` (:data:`PROCEDURE_KINDS` × :data:`PROCEDURE_EVENTS`,
all with :data:`PROCEDURE_COMMON`); other producers are listed in :data:`OTHER_EVENTS`. :data:`ANY_EVENT` applies to
every event (``{"detail": "refused"}`` is what a refused detail is recorded as). The lists were derived from every
call site (``Engine._audit``/``_queue_audit``, ``proofing.limits``); ``tests/audit/test_allowlist.py`` reads the
source and fails when a call site uses an event or a key that is not listed here — add it here, with the narrowest
kind that fits, in the same change.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Kind:
    """A value kind: ``check(value)`` returns None when the value fits, else why not."""

    name: str
    max_length: int = 64
    low: float = 0
    high: float = 0
    pattern: str = ""
    choices: tuple[str, ...] = ()

    def check(self, value: Any) -> str | None:
        if value is None:
            return None
        if self.name in ("int", "number"):
            if isinstance(value, bool) or not isinstance(value, int | float):
                return "is not a number"
            if self.name == "int" and not isinstance(value, int):
                return "is not an integer"
            if isinstance(value, float) and not math.isfinite(value):
                return "is not finite"
            return None if self.low <= value <= self.high else f"is outside {self.low:g}…{self.high:g}"
        if self.name == "names":
            if not isinstance(value, list | tuple) or len(value) > 16:
                return "is not a list of up to 16 names"
            return next((f"[{i}] {e}" for i, v in enumerate(value) if (e := NAME.check(v))), None)
        if not isinstance(value, str):
            return "is not a string"
        if len(value) > self.max_length:
            return f"is longer than {self.max_length}"
        if self.choices:
            return None if value in self.choices else f"is not one of {', '.join(self.choices)}"
        if self.pattern and not re.fullmatch(self.pattern, value):
            return f"is not a {self.name}"
        if self.name in ("name", "names_csv") and not _name_like(value):
            return "is not a name (needs a lower-case letter and no run of 4 digits)"
        return None


def _name_like(value: str) -> bool:
    """A human-chosen identifier: has a lower-case letter (sign passwords are A–Z0–9 only), no run of 4+ digits."""
    return any("a" <= c <= "z" for c in value) and not re.search(r"\d{4}", value)


NAME = Kind("name", pattern=r"[A-Za-z][A-Za-z0-9_.:-]{0,63}")
NAMES = Kind("names")
NAMES_CSV = Kind("names_csv", max_length=256, pattern=r"[a-z][a-z0-9_]*(,[a-z][a-z0-9_]*)*")
REF = Kind("ref", pattern=r"[A-Za-z0-9][A-Za-z0-9_.:@/+-]{0,127}", max_length=128)  # ids chosen by the system
SERIAL = Kind("serial", pattern=r"0x[0-9a-f]{1,40}", max_length=42)
TIMESTAMP = Kind("timestamp", pattern=r"\d{4}-\d{2}-\d{2}(T\d{2}:\d{2}(:\d{2}(\.\d{1,6})?)?(Z|[+-]\d{2}:\d{2})?)?")
TEXT = Kind("text", max_length=200)  # free text typed by staff: the deny checks are all that applies
TRIES = Kind("int", high=16)
COUNT = Kind("int", high=1000)
SECONDS = Kind("int", high=10**9)
SCORE = Kind("number", high=10)
REFUSED = Kind("const", choices=("refused",))

ANY_EVENT: dict[str, Kind] = {"detail": REFUSED, "delayed_seconds": SECONDS}

PROCEDURE_KINDS = ("renewal", "pin_reset", "pin_change", "revocation", "loss_report", "issuance", "registry_event")
PROCEDURE_COMMON: dict[str, Kind] = {"channel": NAME, "target": NAME}
PROCEDURE_EVENTS: dict[str, dict[str, Kind]] = {
    "start": {"card_proof": NAME, "reason": NAME},
    "limits": {"attempt_kind": NAME, "reason": NAME},
    "code_sent": {"contact_kind": NAME},
    "code_verify": {"result": NAME, "tries_left": TRIES},
    # liveness_reasons: the liveness checker's reason codes of a refused capture (codes only, never an image)
    "face_match": {"result": NAME, "score": SCORE, "attempt_count": COUNT, "liveness_reasons": NAMES},
    "staff_check": {"staff_id": REF, "document_types": NAMES},
    "pin_verify": {"pin_kind": NAME, "tries_left": TRIES},
    "card_proof": {"reason": NAME, "proof_kind": NAME},
    "card_face": {"reason": NAME},
    "card_surface": {"reason": NAME, "fields": NAMES_CSV, "key_label": REF},
    "keys_generated": {},
    "certificates_written": {},
    "committed": {"new_auth_serial": SERIAL},
    "new_keys_proven": {},
    "pin_set": {"pin_kind": NAME},
    "pin_changed": {"pin_kind": NAME, "reason": NAME},
    "issued": {"reason": NAME, "auth_serial": SERIAL, "sign_serial": SERIAL},
    # other_count: a loss report's sweep of the lost card's other valid certificates (a pair an ended procedure issued)
    "revoked": {"reason": NAME, "authentication_serial": SERIAL, "signature_serial": SERIAL, "other_count": COUNT},
    "completed": {"notice_count": COUNT},
    # ended_by: the kind of procedure that ended this one (a loss report taking the card: card_reported_lost); its id
    # is in the procedure's journal (a procedure id is 32 hex digits, which the deny checks take for a hash)
    "ended": {"reason": NAME, "ended_by": NAME},
}
OTHER_EVENTS: dict[str, dict[str, Kind]] = {
    # limits: which table was lifted ("loss_report": the online loss reports' own per-card limits; absent: ordinary)
    "limits.lockout_lifted": {
        "scope": NAME,
        "subject": REF,
        "reason": NAME,
        "locked_until": TIMESTAMP,
        "note": TEXT,
        "limits": NAME,
    },
}


def fields_for(event_type: str | None) -> dict[str, Kind] | None:
    """The allowed keys of ``event_type`` (with :data:`ANY_EVENT`), or None if the event type is not listed."""
    if not event_type:
        return None
    if event_type in OTHER_EVENTS:
        return {**ANY_EVENT, **OTHER_EVENTS[event_type]}
    kind, _, name = event_type.partition(".")
    if kind in PROCEDURE_KINDS and name in PROCEDURE_EVENTS:
        return {**ANY_EVENT, **PROCEDURE_COMMON, **PROCEDURE_EVENTS[name]}
    return None


def listed_namespace(event_type: str | None) -> bool:
    """Whether ``event_type`` belongs to a producer whose events are all listed (a procedure kind, ``limits``)."""
    prefix = (event_type or "").partition(".")[0]
    return prefix in PROCEDURE_KINDS or any(t.partition(".")[0] == prefix for t in OTHER_EVENTS)


def violation(detail: Mapping[str, Any], fields: Mapping[str, Kind], event_type: str) -> str | None:
    """Why ``detail`` breaks the allow-list (a key not listed, a value not of its kind), or None when it fits."""
    for key, value in detail.items():
        kind = fields.get(key) if isinstance(key, str) else None
        if kind is None:
            return f"detail key {key!r} is not on the allow-list of {event_type}"
        problem = kind.check(value)
        if problem:
            return f"detail {key!r} of {event_type} {problem}"
    return None
