"""The key-store interface every CA component signs through.

Keys never leave the store: callers get a :class:`CaKey` handle that exposes the public key and signs bytes
(``sha256WithRSAEncryption``, PKCS#1 v1.5; or raw PKCS#1 v1.5 over a caller-built DigestInfo).
Certificates, CRLs and OCSP responses are therefore built as TBS DER, signed through the handle, and assembled with
:func:`jpki_remote.ca.der.signed_structure`.
"""

from __future__ import annotations

from typing import Protocol

from cryptography.hazmat.primitives.asymmetric import rsa


class KeyStoreError(Exception):
    """The store cannot give or use a key (missing label, wrong passphrase, token gone). The message says why."""


class KeyNotFoundError(KeyStoreError):
    """No key under this label in the store."""


class CaKey(Protocol):
    label: str

    def public_key(self) -> rsa.RSAPublicKey: ...

    def sign_sha256_rsa(self, data: bytes) -> bytes:
        """RSASSA-PKCS1-v1_5 signature with SHA-256 over ``data`` (the DER of a TBS structure)."""
        ...

    def sign_pkcs1_v15_raw(self, payload: bytes) -> bytes:
        """RSASSA-PKCS1-v1_5 over ``payload`` exactly as given — EMSA type-1 padding, no hashing, no DigestInfo
        added (the caller passes the DigestInfo; the card-face signature format). At most key size − 11 bytes;
        a longer or empty payload raises :class:`KeyStoreError`."""
        ...


class KeyStore(Protocol):
    def generate_rsa(self, label: str, bits: int = 2048) -> CaKey:
        """Create a new RSA key under ``label``; an existing label is an error (keys are never overwritten)."""
        ...

    def get(self, label: str) -> CaKey: ...

    def labels(self) -> list[str]: ...

    def close(self) -> None: ...
