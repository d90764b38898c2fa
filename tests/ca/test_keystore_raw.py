"""Raw PKCS#1 v1.5 signing (``CaKey.sign_pkcs1_v15_raw``): the card-face format, on both back ends."""

from __future__ import annotations

import hashlib

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding

from jpki_remote.ca.keystore import KeyStoreError
from jpki_remote.ca.keystore.files import FileKeyStore
from jpki_remote.ca.keystore.pkcs11 import Pkcs11KeyStore
from jpki_remote.ca.keystore.raw import DIGEST_INFO_PREFIXES, _sign_blinded
from jpki_remote.ca.keystore.softhsm import SoftHsmToken

SHA256_PREFIX = DIGEST_INFO_PREFIXES[1][0]


def digest_info(data: bytes) -> bytes:
    return SHA256_PREFIX + hashlib.sha256(data).digest()


def check_raw_signing(key: object) -> None:
    public = key.public_key()  # type: ignore[attr-defined]
    sign = key.sign_pkcs1_v15_raw  # type: ignore[attr-defined]
    # A SHA-256 DigestInfo: the signature is an ordinary sha256WithRSA signature of the data.
    signature = sign(digest_info(b"card face"))
    assert len(signature) == 256
    public.verify(signature, b"card face", padding.PKCS1v15(), hashes.SHA256())
    assert public.recover_data_from_signature(signature, padding.PKCS1v15(), None) == digest_info(b"card face")
    with pytest.raises(InvalidSignature):
        public.verify(signature, b"another face", padding.PKCS1v15(), hashes.SHA256())
    # Any payload up to k - 11 bytes is signed exactly as given (no DigestInfo added, no hashing).
    for payload in (b"\x01", b"not a DigestInfo", bytes(range(245))):
        recovered = public.recover_data_from_signature(sign(payload), padding.PKCS1v15(), None)
        assert recovered == payload
    for bad in (b"", bytes(246)):
        with pytest.raises(KeyStoreError, match=r"1\.\.245"):
            sign(bad)


def test_file_store_raw_signing(file_keystore: FileKeyStore) -> None:
    key = file_keystore.generate_rsa("card-surface")
    check_raw_signing(key)
    check_raw_signing(file_keystore.get("card-surface"))


def test_blinded_path_matches_openssl_for_a_digest_info(file_keystore: FileKeyStore) -> None:
    # The in-process fallback and OpenSSL's Prehashed path produce the same (deterministic) signature.
    key = file_keystore.generate_rsa("k1")
    payload = digest_info(b"x")
    assert _sign_blinded(key._private_key, payload) == key.sign_pkcs1_v15_raw(payload)  # type: ignore[attr-defined]


@pytest.mark.hsm
def test_pkcs11_raw_signing_survives_a_dropped_session(softhsm: SoftHsmToken) -> None:
    store = Pkcs11KeyStore(softhsm.module, softhsm.label, softhsm.user_pin)
    try:
        key = store.generate_rsa("card-surface")
        check_raw_signing(key)
        store._local.session.close()  # the session drops under us
        check_raw_signing(store.get("card-surface"))
        # Same key, same payload, same bytes as signing it through the token's hashing mechanism.
        assert key.sign_pkcs1_v15_raw(digest_info(b"tbs")) == key.sign_sha256_rsa(b"tbs")
    finally:
        store.close()
