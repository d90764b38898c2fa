"""Signed tree heads: the Ed25519 key that signs them and the exact bytes that are signed.

The signed bytes follow RFC 6962 §3.5's ``TreeHeadSignature`` layout — version ``0`` (v1), signature type ``1``
(tree_hash), ``uint64`` timestamp in milliseconds, ``uint64`` tree size, 32-byte root — so a head can be checked
with any Ed25519 implementation and the public key alone.

The key is a PKCS#8 PEM file created on first use with mode 0600 in a 0700 directory (``Settings.audit_signing_key``
or ``<data_dir>/audit/signing-key.pem``); it never leaves the file. ``key_id`` is the first 16 hex digits of
SHA-256 over the raw public key. Auditors verify with the exported public key (``jpki-remote audit public-key``).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from jpki_remote.config import Settings


class TreeHeadSigner(Protocol):
    key_id: str

    def sign(self, data: bytes) -> bytes: ...

    def public_key(self) -> Ed25519PublicKey: ...


@dataclass(frozen=True)
class SignedTreeHead:
    tree_size: int
    timestamp_ms: int
    root_hash: bytes
    key_id: str
    signature: bytes

    def signed_bytes(self) -> bytes:
        return tree_head_bytes(self.tree_size, self.timestamp_ms, self.root_hash)


def tree_head_bytes(tree_size: int, timestamp_ms: int, root_hash: bytes) -> bytes:
    return struct.pack(">BBQQ", 0, 1, timestamp_ms, tree_size) + root_hash


def key_id_of(public_key: Ed25519PublicKey) -> str:
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def verify_head(head: SignedTreeHead, public_key: Ed25519PublicKey) -> bool:
    try:
        public_key.verify(head.signature, head.signed_bytes())
    except InvalidSignature:
        return False
    return True


class Ed25519Signer:
    def __init__(self, private_key: Ed25519PrivateKey) -> None:
        self._key = private_key
        self.key_id = key_id_of(private_key.public_key())

    def sign(self, data: bytes) -> bytes:
        return self._key.sign(data)

    def public_key(self) -> Ed25519PublicKey:
        return self._key.public_key()


def _write_private(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)


def load_or_create_signer(path: Path) -> Ed25519Signer:
    """The signer kept in ``path``; a new key is generated and stored (0600) if the file does not exist."""
    if not path.exists():
        key = Ed25519PrivateKey.generate()
        pem = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        with contextlib.suppress(FileExistsError):  # another process created it first: use theirs
            _write_private(path, pem)
    if path.stat().st_mode & 0o077:
        raise PermissionError(f"audit signing key {path} is readable by others; chmod 600 it")
    loaded = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(loaded, Ed25519PrivateKey):
        raise ValueError(f"{path} does not hold an Ed25519 private key")
    return Ed25519Signer(loaded)


def signing_key_path(settings: Settings) -> Path:
    if settings.audit_signing_key:
        return Path(settings.audit_signing_key)
    return settings.data_dir / "audit" / "signing-key.pem"


def signer_from_settings(settings: Settings) -> Ed25519Signer:
    return load_or_create_signer(signing_key_path(settings))


def load_public_key(path: Path) -> Ed25519PublicKey:
    loaded = serialization.load_pem_public_key(path.read_bytes())
    if not isinstance(loaded, Ed25519PublicKey):
        raise ValueError(f"{path} does not hold an Ed25519 public key")
    return loaded


def public_key_pem(public_key: Ed25519PublicKey) -> bytes:
    return public_key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
