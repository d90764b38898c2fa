"""The issuer's SCP03 master keys: every card's static secure-messaging keys are diversified from one of them.

A neutral module (no package above ``config`` is imported) so that both the card tooling (``jpki-remote card new``
manufactures cards under the master key) and the server (``jpki_remote.procedures`` opens issuer sessions with it)
use the same keys without importing each other.

:class:`FileIssuerKeys` keeps one AES key per key version in ``<directory>/issuer-master-<vv>.key`` (``vv``: the key
version in two lower-case hex digits), as 64 (AES-256) or 32 (AES-128) hex characters, mode 0600 in a 0700
directory — the on-disk format data directories already have (``<data_dir>/issuer-keys``). A key file is created
complete or not at all (private temp file, fsync, hard link into place), so a concurrent reader never sees a half
written key and two processes creating the same version agree on one key. A file readable by group or others is
refused. A production deployment keeps the master keys in the HSM behind the same :class:`IssuerKeys` interface.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import stat
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

DIRECTORY_NAME = "issuer-keys"
KEY_SIZES = (16, 32)
_NAME = re.compile(r"issuer-master-([0-9a-f]{2})\.key")


class IssuerKeyError(ValueError):
    """A master key file is unusable (wrong content or permissions); the message says which file and why."""


class IssuerKeys(Protocol):
    """Where the issuer's SCP03 master keys live."""

    def master_key(self, key_version: int) -> bytes:
        """The AES master key of ``key_version`` (16 or 32 bytes)."""
        ...

    def create(self, key_version: int) -> bytes:
        """Create the master key of ``key_version`` (``FileExistsError`` if it exists) and return it."""
        ...


def _check_version(key_version: int) -> int:
    if not isinstance(key_version, int) or not 0 <= key_version <= 0xFF:
        raise ValueError(f"an issuer key version is 0–255, got {key_version!r}")
    return key_version


@dataclass
class FileIssuerKeys:
    """Master keys as 0600 files in ``directory``. ``create_missing``: :meth:`master_key` creates a key version
    that does not exist yet (the first use of a fresh data directory) instead of raising ``FileNotFoundError``."""

    directory: Path
    create_missing: bool = True

    def path(self, key_version: int) -> Path:
        return Path(self.directory) / f"issuer-master-{_check_version(key_version):02x}.key"

    def versions(self) -> list[int]:
        """The key versions present."""
        if not Path(self.directory).is_dir():
            return []
        found = (_NAME.fullmatch(p.name) for p in Path(self.directory).iterdir())
        return sorted(int(m.group(1), 16) for m in found if m)

    def master_key(self, key_version: int) -> bytes:
        path = self.path(key_version)
        try:
            return self._read(path)
        except FileNotFoundError:
            if not self.create_missing:
                raise FileNotFoundError(f"no issuer master key version {key_version} ({path})") from None
        try:
            return self.create(key_version)
        except FileExistsError:  # another process created it first: use that one
            return self._read(path)

    def create(self, key_version: int, *, size: int = 32) -> bytes:
        if size not in KEY_SIZES:
            raise ValueError("an issuer master key is an AES-128 or AES-256 key (16 or 32 bytes)")
        path = self.path(key_version)
        directory = Path(self.directory)
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        key = secrets.token_bytes(size)
        fd, tmp = tempfile.mkstemp(prefix=".issuer-master-", suffix=".tmp", dir=directory)  # mode 0600
        try:
            with os.fdopen(fd, "w") as handle:
                handle.write(key.hex())
                handle.flush()
                os.fsync(handle.fileno())
            os.link(tmp, path)  # atomic, never over an existing key
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
        _fsync_dir(directory)
        return key

    @staticmethod
    def _read(path: Path) -> bytes:
        with open(path, encoding="ascii", errors="replace") as handle:
            mode = os.fstat(handle.fileno()).st_mode
            if mode & (stat.S_IRWXG | stat.S_IRWXO):
                raise IssuerKeyError(f"{path} is accessible to group or others (mode {stat.S_IMODE(mode):04o}); "
                                     f"run chmod 600 on it")
            text = handle.read(200).strip()
        try:
            key = bytes.fromhex(text)
        except ValueError:
            key = b""
        if len(key) not in KEY_SIZES:
            raise IssuerKeyError(f"{path} does not hold an AES-128/256 key as hex")
        return key


def issuer_keys_from_settings(settings: Any) -> FileIssuerKeys:
    """The deployment's issuer master keys: ``<data_dir>/issuer-keys`` (shared by ``card new`` and the server)."""
    return FileIssuerKeys(Path(settings.data_dir) / DIRECTORY_NAME)


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
