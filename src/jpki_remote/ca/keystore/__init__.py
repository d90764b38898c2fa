"""CA key store: one interface, two back ends (encrypted key files, PKCS#11 HSM)."""

from jpki_remote.ca.keystore.base import CaKey, KeyStore, KeyStoreError

__all__ = ["CaKey", "KeyStore", "KeyStoreError"]
