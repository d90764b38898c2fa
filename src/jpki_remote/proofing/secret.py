"""The proofing server secret: the HMAC key under which security codes are hashed and rate-limit subjects
(card ids, terminal ids, client addresses) are pseudonymised.

``Settings.proofing_secret`` (hex, at least 32 bytes) wins; when it is empty a random 32-byte secret is generated
once with :mod:`secrets` and kept in ``<data_dir>/secrets/proofing.key`` (mode 0600, directory 0700). Every app
server of a deployment must see the same secret (set the setting, or share the data directory). Purpose-specific
keys are derived with HMAC-SHA-256(secret, label) so one key never serves two purposes.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import os
import secrets
from functools import lru_cache
from pathlib import Path

from jpki_remote.config import Settings

SECRET_BYTES = 32


class SecretError(ValueError):
    """The configured secret is unusable (too short, not hex, file readable by others)."""


def _parse_hex(value: str, where: str) -> bytes:
    try:
        raw = bytes.fromhex(value.strip())
    except ValueError:
        raise SecretError(f"{where} is not hexadecimal") from None
    if len(raw) < SECRET_BYTES:
        raise SecretError(f"{where} must hold at least {SECRET_BYTES} bytes (64 hex digits)")
    return raw


def secret_path(settings: Settings) -> Path:
    return settings.data_dir / "secrets" / "proofing.key"


def load_or_create_secret(path: Path) -> bytes:
    """The secret kept in ``path``; generated (0600) on first use. Concurrent first uses agree on one file."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        with contextlib.suppress(FileExistsError):
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as handle:
                handle.write(secrets.token_hex(SECRET_BYTES) + "\n")
    if path.stat().st_mode & 0o077:
        raise SecretError(f"{path} is readable by others; chmod 600 it")
    return _parse_hex(path.read_text(), str(path))


@lru_cache(maxsize=8)
def _cached(path: Path) -> bytes:
    return load_or_create_secret(path)


def server_secret(settings: Settings) -> bytes:
    if settings.proofing_secret:
        return _parse_hex(settings.proofing_secret, "JPKI_PROOFING_SECRET")
    return _cached(secret_path(settings))


def derive_key(secret: bytes, label: str) -> bytes:
    return hmac.new(secret, b"jpki-remote proofing key: " + label.encode(), hashlib.sha256).digest()
