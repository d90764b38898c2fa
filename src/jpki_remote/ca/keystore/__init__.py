"""CA key store: one interface, two back ends (encrypted key files, PKCS#11 HSM). Use :func:`open_keystore`."""

from __future__ import annotations

from typing import TYPE_CHECKING

from jpki_remote.ca.keystore.base import CaKey, KeyNotFoundError, KeyStore, KeyStoreError

if TYPE_CHECKING:
    from jpki_remote.config import Settings

__all__ = ["CaKey", "KeyNotFoundError", "KeyStore", "KeyStoreError", "open_keystore"]


def open_keystore(settings: Settings) -> KeyStore:
    """The key store configured by ``settings.keystore``: ``file`` (default) or ``pkcs11``."""
    kind = settings.keystore.strip().lower()
    if kind == "file":
        from jpki_remote.ca.keystore.files import FileKeyStore

        return FileKeyStore(settings.data_dir / "keys", settings.keystore_passphrase)
    if kind == "pkcs11":
        from jpki_remote.ca.keystore.pkcs11 import Pkcs11KeyStore

        return Pkcs11KeyStore(settings.pkcs11_module, settings.pkcs11_token_label, settings.pkcs11_user_pin)
    raise KeyStoreError(f"unknown key store {settings.keystore!r}; use 'file' or 'pkcs11'")
