"""Encrypted key files: the embedded default key store.

Each key is ``<directory>/<label>.key.pem``: PKCS#8, encrypted with ``BestAvailableEncryption`` under the store
passphrase (from settings, or a random one generated with :mod:`secrets` and kept beside the keys in
``.passphrase``, mode 0600). The directory is 0700. A key file is created with ``link()`` from a private temp file,
so an existing key is never overwritten, even by a concurrent process. Decrypted keys stay in this process only.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import threading
from pathlib import Path

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from jpki_remote.ca.keystore.base import CaKey, KeyNotFoundError, KeyStoreError
from jpki_remote.ca.keystore.raw import sign_raw

LABEL_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
PASSPHRASE_FILE = ".passphrase"  # noqa: S105 - a file name, not a secret
KEY_SUFFIX = ".key.pem"


def check_label(label: str) -> str:
    if not LABEL_RE.match(label):
        raise KeyStoreError(f"invalid key label {label!r}: use 1-64 of A-Z a-z 0-9 _ . - (not starting with . _ -)")
    return label


class FileCaKey:
    """An RSA key decrypted into this process; signs PKCS#1 v1.5 with SHA-256."""

    def __init__(self, label: str, private_key: rsa.RSAPrivateKey) -> None:
        self.label = label
        self._private_key = private_key
        self._public_key = private_key.public_key()

    def public_key(self) -> rsa.RSAPublicKey:
        return self._public_key

    def sign_sha256_rsa(self, data: bytes) -> bytes:
        return self._private_key.sign(data, padding.PKCS1v15(), hashes.SHA256())

    def sign_pkcs1_v15_raw(self, payload: bytes) -> bytes:
        return sign_raw(self._private_key, payload)

    def __repr__(self) -> str:
        return f"<FileCaKey {self.label}>"


def _write_exclusive(path: Path, data: bytes) -> None:
    """Create ``path`` with ``data`` (mode 0600), atomically and never replacing an existing file."""
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.link(tmp, path)  # fails with FileExistsError instead of overwriting
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


class FileKeyStore:
    """Key store over a directory of encrypted PKCS#8 files."""

    def __init__(self, directory: Path, passphrase: str = "") -> None:
        self.directory = Path(directory)
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        self._passphrase = (passphrase or self._stored_passphrase()).encode()
        self._keys: dict[str, FileCaKey] = {}
        self._lock = threading.Lock()

    def _stored_passphrase(self) -> str:
        path = self.directory / PASSPHRASE_FILE
        if not path.exists():
            with contextlib.suppress(FileExistsError):  # another process created it first: use theirs
                _write_exclusive(path, secrets.token_urlsafe(32).encode())
        if path.stat().st_mode & 0o077:
            raise KeyStoreError(f"{path} must not be readable by group or others (chmod 600)")
        value = path.read_text().strip()
        if not value:
            raise KeyStoreError(f"{path} is empty")
        return value

    def _path(self, label: str) -> Path:
        return self.directory / f"{check_label(label)}{KEY_SUFFIX}"

    def generate_rsa(self, label: str, bits: int = 2048) -> CaKey:
        path = self._path(label)
        if path.exists():
            raise KeyStoreError(f"key {label!r} already exists in {self.directory}; keys are never overwritten")
        private_key = rsa.generate_private_key(public_exponent=65537, key_size=bits)
        pem = private_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(self._passphrase),
        )
        try:
            _write_exclusive(path, pem)
        except FileExistsError as exc:
            raise KeyStoreError(
                f"key {label!r} already exists in {self.directory}; keys are never overwritten"
            ) from exc
        key = FileCaKey(label, private_key)
        with self._lock:
            self._keys[label] = key
        return key

    def get(self, label: str) -> CaKey:
        with self._lock:
            cached = self._keys.get(label)
        if cached is not None:
            return cached
        path = self._path(label)
        try:
            pem = path.read_bytes()
        except FileNotFoundError as exc:
            raise KeyNotFoundError(f"no key {label!r} in {self.directory}") from exc
        try:
            private_key = serialization.load_pem_private_key(pem, password=self._passphrase)
        except (ValueError, TypeError) as exc:
            raise KeyStoreError(f"cannot decrypt key {label!r}: wrong passphrase or damaged file") from exc
        if not isinstance(private_key, rsa.RSAPrivateKey):
            raise KeyStoreError(f"key {label!r} is not an RSA key")
        key = FileCaKey(label, private_key)
        with self._lock:
            return self._keys.setdefault(label, key)

    def labels(self) -> list[str]:
        return sorted(p.name[: -len(KEY_SUFFIX)] for p in self.directory.glob(f"*{KEY_SUFFIX}"))

    def close(self) -> None:
        with self._lock:
            self._keys.clear()

    def __repr__(self) -> str:
        return f"<FileKeyStore {self.directory}>"
