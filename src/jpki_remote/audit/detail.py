"""What an audit event may carry: the field checks and the *detail* validator.

The audit log is kept for years and read by auditors, so it must never hold a secret or a biometric. Every event's
``detail`` (a small JSON object) passes :func:`validate_detail`, which refuses:

* **keys** whose words (split on ``_``, ``-``, ``.``, spaces and camelCase) include a secret or image word —
  ``pin``, ``pins``, ``code``, ``otp``, ``password``, ``passwd``, ``passphrase``, ``secret``, ``token``, ``key``,
  ``photo``, ``image``, ``picture``, ``portrait``, ``selfie``, ``frame``, ``jpeg``, ``jpg``, ``png``, ``jp2``,
  ``biometric``, ``template``, ``encoding`` — unless the key's *last* word marks metadata about it: ``kind``,
  ``type``, ``id``, ``status``, ``purpose``, ``channel``, ``count``, ``tries``, ``left``, ``length``, ``quality``,
  ``score``, ``reason``, ``result``, ``outcome``, ``label``, ``fingerprint``, ``algorithm``, ``size``, ``serial``,
  ``hash`` (so ``pin_kind`` and ``code_tries_left`` are fine, ``new_pin``,
  ``security_code`` and ``photo`` are not);
* **string values** that look like a PIN or a one-time code (4–16 digits, spaces ignored; dates such as
  ``2026-12-04`` are fine) or that carry an image (``data:`` URLs, base64 of JPEG / PNG / JPEG 2000 magic
  numbers) — counts and other numbers are JSON numbers, never digit strings;
* any single value larger than 4 KB once serialized, a whole detail larger than 8 KB, nesting deeper than 4,
  non-JSON types (bytes, sets, NaN/Infinity), non-string keys.

The other event fields (actor, terminal, procedure id, event type, outcome) are short identifiers checked by
:func:`check_identifier`.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from typing import Any

MAX_VALUE_BYTES = 4096
MAX_DETAIL_BYTES = 8192
MAX_DEPTH = 4

FORBIDDEN_WORDS = frozenset(
    {
        "pin", "pins", "code", "codes", "otp", "password", "passwd", "passphrase", "secret", "token", "key",
        "photo", "image", "picture", "portrait", "selfie", "frame", "jpeg", "jpg", "png", "jp2", "biometric",
        "template", "encoding",
    }
)  # fmt: skip
METADATA_SUFFIXES = frozenset(
    {
        "kind", "type", "id", "status", "purpose", "channel", "count", "tries", "left", "length", "quality",
        "score", "reason", "result", "outcome", "label", "fingerprint", "algorithm", "size", "serial", "hash",
    }
)  # fmt: skip

_WORD_SPLIT = re.compile(r"[^A-Za-z0-9]+|(?<=[a-z0-9])(?=[A-Z])")
_PIN_LIKE = re.compile(r"\d{4,16}")
_IMAGE_MARKERS = ("data:image", "/9j/", "ivborw0kggo", "aaaadgpqican", "/0//uqaaaaxpaqi")  # JPEG, PNG, JP2, J2K
_IDENTIFIER = re.compile(r"[\w.:@/+\-]{1,128}", re.UNICODE)


class DetailRejected(ValueError):
    """The event would put something into the log that must not be there; the message names the key."""


def key_words(key: str) -> list[str]:
    return [w.lower() for w in _WORD_SPLIT.split(key) if w]


def _check_key(key: object, path: str) -> str:
    if not isinstance(key, str) or not key:
        raise DetailRejected(f"detail key at {path or 'top level'} must be a non-empty string")
    words = key_words(key)
    if any(w in FORBIDDEN_WORDS for w in words) and (not words or words[-1] not in METADATA_SUFFIXES):
        raise DetailRejected(f"detail key {path + key!r} names a secret or an image; audit events never carry one")
    return key


def _check_string(value: str, where: str) -> None:
    if len(value) <= 64 and _PIN_LIKE.fullmatch(value.replace(" ", "").replace("\u3000", "")):
        raise DetailRejected(f"detail value at {where} looks like a PIN or a code; use a JSON number for counts")
    lowered = value[:64].lower()
    if any(marker in lowered for marker in _IMAGE_MARKERS):
        raise DetailRejected(f"detail value at {where} looks like an image")


def _check_value(value: object, where: str, depth: int) -> None:
    if depth > MAX_DEPTH:
        raise DetailRejected(f"detail nests deeper than {MAX_DEPTH} at {where}")
    if value is None or isinstance(value, bool | int):
        pass
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise DetailRejected(f"detail value at {where} is not a finite number")
    elif isinstance(value, str):
        _check_string(value, where)
    elif isinstance(value, list | tuple):
        for i, item in enumerate(value):
            _check_value(item, f"{where}[{i}]", depth + 1)
    elif isinstance(value, Mapping):
        for k, v in value.items():
            _check_value(v, f"{where}.{_check_key(k, where + '.')}", depth + 1)
    else:
        raise DetailRejected(f"detail value at {where} has type {type(value).__name__}; only JSON types are allowed")
    if len(json.dumps(value, ensure_ascii=False).encode()) > MAX_VALUE_BYTES:
        raise DetailRejected(f"detail value at {where} is larger than {MAX_VALUE_BYTES} bytes")


def canonical_json(value: Any) -> str:
    """The one serialization used for hashing: sorted keys, no spaces, UTF-8 characters kept."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def validate_detail(detail: Mapping[str, Any] | None) -> str:
    """Check ``detail`` against the rules above and return its canonical JSON text."""
    if detail is None:
        return "{}"
    if not isinstance(detail, Mapping):
        raise DetailRejected("detail must be a JSON object (a mapping)")
    for key, value in detail.items():
        _check_value(value, _check_key(key, ""), 1)
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
