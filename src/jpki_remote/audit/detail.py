"""What an audit event may carry: the field checks and the *detail* validator.

The audit log is kept for years and read by auditors, so it must never hold a secret or a biometric. Every event's
``detail`` (a small JSON object) passes :func:`validate_detail`. Two lines of defence (security finding S-13):

1. **Allow-list** (:mod:`jpki_remote.audit.allowlist`): for a listed event type, every key must be one the event
   lists and its value of the listed kind and bounds (:class:`AllowListViolation`). Unlisted event types of a
   producer whose events are all listed (procedure kinds, ``limits``) are found by a test that reads the call sites.
2. **Deny checks**, on every detail whatever its event type:

   * **keys** must be ASCII identifiers (``[A-Za-z][A-Za-z0-9_]*``, at most 64) — so no ``暗証番号`` — and their
     words (split on ``_``, camelCase and letter/digit boundaries, so ``pin1`` is ``pin`` ``1``) must not include
     a secret or image word (``pin``, ``code``, ``password``, ``secret``, ``token``, ``key``, ``photo``,
     ``image``, ``frame``, ``jpeg``, ``biometric``, ``template``, ``encoding``, ``hash``, ``digest`` …) unless the
     key's *last* word marks metadata about it (``kind``, ``type``, ``id``, ``status``, ``count``, ``tries``,
     ``left``, ``length``, ``quality``, ``score``, ``reason``, ``result``, ``label``, ``fingerprint`` …) —
     ``pin_kind`` and ``code_tries_left`` are fine, ``new_pin``, ``pin_hash`` and ``photo`` are not;
   * **strings** that are or contain a PIN or one-time code (4–16 digits alone, or as a word of a text — a value
     with white space — once dates and times are set aside), a sign password (6–16 of ``A–Z0–9`` with a digit,
     alone or as a word), an image
     (``data:`` URLs, base64 or hex of JPEG / PNG / JPEG 2000 magic numbers, any hex blob over 128 digits), or a
     bare hash (32–128 hex digits) — allowed only under a ``…fingerprint`` key or as a ``0x`` serial, and never
     the unkeyed hash of a 4-digit PIN;
   * any single value larger than 4 KB once serialized, a whole detail larger than 8 KB, nesting deeper than 4,
     non-JSON types (bytes, sets, NaN/Infinity), non-string keys.

:class:`AuditEvent.validated_detail` refuses a detail that breaks either line with :class:`DetailRejected`; the
procedure engine's audit port then records ``{"detail": "refused"}`` instead. In *strict* mode — under pytest, or
with ``JPKI_AUDIT_STRICT=1`` — an allow-list violation raises :class:`AuditSchemaError` (not a ``DetailRejected``)
so that a test exercising a new event key fails loudly instead of quietly recording "refused".

The other event fields (actor, terminal, procedure id, event type, outcome) are short identifiers checked by
:func:`check_identifier`.
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import os
import re
from collections.abc import Mapping
from typing import Any

from jpki_remote.audit import allowlist

MAX_VALUE_BYTES = 4096
MAX_DETAIL_BYTES = 8192
MAX_DEPTH = 4

FORBIDDEN_WORDS = frozenset(
    {
        "pin", "pins", "code", "codes", "otp", "password", "passwd", "passphrase", "passcode", "secret", "token",
        "key", "photo", "image", "picture", "portrait", "selfie", "frame", "jpeg", "jpg", "png", "jp2", "biometric",
        "template", "encoding", "hash", "digest", "hmac",
    }
)  # fmt: skip
METADATA_SUFFIXES = frozenset(
    {
        "kind", "type", "id", "status", "purpose", "channel", "count", "tries", "left", "length", "quality",
        "score", "reason", "result", "outcome", "label", "fingerprint", "algorithm", "size", "serial",
    }
)  # fmt: skip

_KEY = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,63}")
_WORD_SPLIT = re.compile(r"[^A-Za-z0-9]+|(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Za-z])(?=[0-9])|(?<=[0-9])(?=[A-Za-z])")
_PIN_LIKE = re.compile(r"\d{4,16}")
_DATE_TIME = re.compile(
    r"\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:?\d{2})?)?|\d{2}:\d{2}(?::\d{2})?"
)
_SPACE = re.compile(r"\s")
_DIGIT_WORD = re.compile(r"(?<![0-9A-Za-z])\d{4,16}(?![0-9A-Za-z])")
_SIGN_PASSWORD = re.compile(r"(?<![0-9A-Za-z])(?=[A-Z]*[0-9])(?=[0-9]*[A-Z])[A-Z0-9]{6,16}(?![0-9A-Za-z])")
_HEX_RUN = re.compile(r"(?i)(?<![0-9a-f])(?:0x)?([0-9a-f]{16,})(?![0-9a-f])")
_HASH_LENGTHS = frozenset({32, 40, 56, 64, 96, 128})
_HEX_IMAGE_MAGIC = ("ffd8ff", "89504e470d0a1a0a", "0000000c6a502020", "ff4fff51")  # JPEG, PNG, JP2, J2K
_IMAGE_MARKERS = ("data:image", "/9j/", "ivborw0kggo", "aaaadgpqican", "/0//uqaaaaxpaqi")  # JPEG, PNG, JP2, J2K
_IDENTIFIER = re.compile(r"[\w.:@/+\-]{1,128}", re.UNICODE)


class DetailRejected(ValueError):
    """The event would put something into the log that must not be there; the message names the key."""


class AllowListViolation(DetailRejected):
    """A listed event type got a key it does not list, or a value not of the listed kind."""


class AuditSchemaError(RuntimeError):
    """Strict mode (tests): an allow-list violation, raised past the callers that turn a ``DetailRejected`` into a
    ``{"detail": "refused"}`` record — add the key to :mod:`jpki_remote.audit.allowlist`."""


def strict_mode() -> bool:
    """``JPKI_AUDIT_STRICT`` (1/0) if set, else whether pytest is running a test."""
    value = os.environ.get("JPKI_AUDIT_STRICT", "").strip().lower()
    if value:
        return value in ("1", "true", "yes", "on")
    return "PYTEST_CURRENT_TEST" in os.environ


def key_words(key: str) -> list[str]:
    return [w.lower() for w in _WORD_SPLIT.split(key) if w]


def _check_key(key: object, path: str) -> str:
    if not isinstance(key, str) or not key:
        raise DetailRejected(f"detail key at {path or 'top level'} must be a non-empty string")
    if not _KEY.fullmatch(key):
        raise DetailRejected(f"detail key {path + key[:40]!r} is not an ASCII identifier")
    words = key_words(key)
    if any(w in FORBIDDEN_WORDS for w in words) and (not words or words[-1] not in METADATA_SUFFIXES):
        raise DetailRejected(f"detail key {path + key!r} names a secret or an image; audit events never carry one")
    return key


@functools.cache
def _pin_hashes() -> frozenset[str]:
    """Unkeyed hashes (MD5, SHA-1, SHA-256, SHA-512) of every 4-digit PIN: such a "fingerprint" is the PIN."""
    found = set()
    for n in range(10_000):
        pin = f"{n:04d}".encode()
        for name in ("md5", "sha1", "sha256", "sha512"):
            found.add(hashlib.new(name, pin).hexdigest())
    return frozenset(found)


def _check_string(value: str, where: str, key: str = "") -> None:
    compact = value.replace(" ", "").replace("\u3000", "")
    if len(value) <= 64 and _PIN_LIKE.fullmatch(compact):
        raise DetailRejected(f"detail value at {where} looks like a PIN or a code; use a JSON number for counts")
    lowered = value.lower()
    if any(marker in lowered[:64] for marker in _IMAGE_MARKERS):
        raise DetailRejected(f"detail value at {where} looks like an image")
    if _SPACE.search(value) and _DIGIT_WORD.search(_DATE_TIME.sub(" ", value)):  # a number as a word of a text
        raise DetailRejected(f"detail value at {where} contains a PIN- or code-like number")
    if _SIGN_PASSWORD.search(value):
        raise DetailRejected(f"detail value at {where} contains a sign-password-like word (6–16 of A–Z0–9)")
    fingerprint = bool(key) and key_words(key)[-1] == "fingerprint"
    for match in _HEX_RUN.finditer(value):
        digits = match.group(1).lower()
        if digits.startswith(_HEX_IMAGE_MAGIC) or len(digits) > 128:
            raise DetailRejected(f"detail value at {where} carries binary data (an image?) as hex")
        serial = match.group(0)[:2].lower() == "0x"  # certificate serials are written 0x…, 32 digits for 126 bits
        if len(digits) in _HASH_LENGTHS and (not (fingerprint or serial) or digits in _pin_hashes()):
            raise DetailRejected(f"detail value at {where} is a bare hash (of a PIN or code?)")


def _check_value(value: object, where: str, depth: int, key: str = "") -> None:
    if depth > MAX_DEPTH:
        raise DetailRejected(f"detail nests deeper than {MAX_DEPTH} at {where}")
    if value is None or isinstance(value, bool | int):
        pass
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise DetailRejected(f"detail value at {where} is not a finite number")
    elif isinstance(value, str):
        _check_string(value, where, key)
    elif isinstance(value, list | tuple):
        for i, item in enumerate(value):
            _check_value(item, f"{where}[{i}]", depth + 1, key)
    elif isinstance(value, Mapping):
        for k, v in value.items():
            name = _check_key(k, where + ".")
            _check_value(v, f"{where}.{name}", depth + 1, name)
    else:
        raise DetailRejected(f"detail value at {where} has type {type(value).__name__}; only JSON types are allowed")
    if len(json.dumps(value, ensure_ascii=False).encode()) > MAX_VALUE_BYTES:
        raise DetailRejected(f"detail value at {where} is larger than {MAX_VALUE_BYTES} bytes")


def canonical_json(value: Any) -> str:
    """The one serialization used for hashing: sorted keys, no spaces, UTF-8 characters kept."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def validate_detail(detail: Mapping[str, Any] | None, event_type: str | None = None) -> str:
    """Check ``detail`` against the rules above — the allow-list of ``event_type`` when it is listed, the deny checks
    always — and return its canonical JSON text."""
    if detail is None:
        return "{}"
    if not isinstance(detail, Mapping):
        raise DetailRejected("detail must be a JSON object (a mapping)")
    fields = allowlist.fields_for(event_type)
    if fields is not None:
        problem = allowlist.violation(detail, fields, str(event_type))
        if problem:
            raise AllowListViolation(problem)
    for key, value in detail.items():
        name = _check_key(key, "")
        _check_value(value, name, 1, name)
    text = canonical_json(dict(detail))
    if len(text.encode()) > MAX_DETAIL_BYTES:
        raise DetailRejected(f"detail is larger than {MAX_DETAIL_BYTES} bytes")
    return text


def check_identifier(value: str | None, name: str, *, required: bool = True) -> str | None:
    """Actor, terminal, procedure id, event type and outcome: 1–128 word characters and ``.:@/+-``."""
    if value is None or value == "":
        if required:
            raise DetailRejected(f"{name} is required")
        return None
    if not isinstance(value, str) or not _IDENTIFIER.fullmatch(value):
        raise DetailRejected(f"{name} must be 1–128 letters, digits or ._:@/+- (got {str(value)[:40]!r})")
    return value
