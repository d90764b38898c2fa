"""Raw RSASSA-PKCS1-v1_5 (EMSA type-1 padding over a caller-built DigestInfo, no hashing) for a key held in process.

This is the card-face signature format (券面事項確認AP DF28): the signer is given the DigestInfo itself. When the
payload is a DigestInfo of a hash OpenSSL knows, the signature is made by OpenSSL with ``Prehashed`` (the bytes are
identical: PKCS#1 v1.5 is deterministic and OpenSSL builds the very same DigestInfo); any other payload is signed
with the private numbers, CRT with RSA blinding (random ``r`` from :mod:`secrets`) and a verify-after-sign check.
"""

from __future__ import annotations

import secrets

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa, utils

from jpki_remote.ca.keystore.base import KeyStoreError

#: DER prefixes of DigestInfo (RFC 8017 §9.2 note 1) → the hash they announce (SHA-2 only; anything else,
#: SHA-1 included, takes the in-process path).
DIGEST_INFO_PREFIXES: tuple[tuple[bytes, hashes.HashAlgorithm], ...] = (
    (bytes.fromhex("302d300d06096086480165030402040500041c"), hashes.SHA224()),
    (bytes.fromhex("3031300d060960864801650304020105000420"), hashes.SHA256()),
    (bytes.fromhex("3041300d060960864801650304020205000430"), hashes.SHA384()),
    (bytes.fromhex("3051300d060960864801650304020305000440"), hashes.SHA512()),
)


def max_payload(key_size_bits: int) -> int:
    """The longest payload type-1 padding allows (at least 8 bytes of 0xFF)."""
    return (key_size_bits + 7) // 8 - 11


def check_payload(payload: bytes, key_size_bits: int) -> bytes:
    if not isinstance(payload, bytes | bytearray | memoryview):
        raise KeyStoreError("the payload to sign must be bytes")
    payload = bytes(payload)
    if not 1 <= len(payload) <= max_payload(key_size_bits):
        raise KeyStoreError(
            f"a raw PKCS#1 v1.5 payload must be 1..{max_payload(key_size_bits)} bytes, not {len(payload)}"
        )
    return payload


def sign_raw(private_key: rsa.RSAPrivateKey, payload: bytes) -> bytes:
    """RSASSA-PKCS1-v1_5 over ``payload`` exactly as given."""
    payload = check_payload(payload, private_key.key_size)
    for prefix, algorithm in DIGEST_INFO_PREFIXES:
        if len(payload) == len(prefix) + algorithm.digest_size and payload.startswith(prefix):
            digest = payload[len(prefix) :]
            return private_key.sign(digest, padding.PKCS1v15(), utils.Prehashed(algorithm))
    return _sign_blinded(private_key, payload)


def _sign_blinded(private_key: rsa.RSAPrivateKey, payload: bytes) -> bytes:
    k = (private_key.key_size + 7) // 8
    m = int.from_bytes(b"\x00\x01" + b"\xff" * (k - 3 - len(payload)) + b"\x00" + payload, "big")
    numbers = private_key.private_numbers()
    n, e = numbers.public_numbers.n, numbers.public_numbers.e
    while True:
        r = secrets.randbelow(n - 2) + 2
        try:
            r_inverse = pow(r, -1, n)
        except ValueError:  # not invertible (shares a factor with n): draw again
            continue
        break
    blinded = (m * pow(r, e, n)) % n
    s1 = pow(blinded % numbers.p, numbers.dmp1, numbers.p)
    s2 = pow(blinded % numbers.q, numbers.dmq1, numbers.q)
    s = s2 + ((numbers.iqmp * (s1 - s2)) % numbers.p) * numbers.q
    signature = (s * r_inverse) % n
    if pow(signature, e, n) != m:
        raise KeyStoreError("raw RSA signature self-check failed")
    return signature.to_bytes(k, "big")
