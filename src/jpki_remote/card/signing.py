"""The card's RSA operations: COMPUTE DIGITAL SIGNATURE schemes (P1 00–05) and key generation/encoding.

Schemes (reference §1.3, measured on a real card): ``00`` PKCS#1 v1.5 type-1 padding over the data as sent (1–245
bytes, normally a DER DigestInfo); ``01`` card SHA-256, bare 32-byte hash padded; ``02`` 32-byte hash, card wraps it
in a SHA-256 DigestInfo; ``03`` card hashes and wraps; ``04`` RSASSA-PSS over a supplied SHA-256 hash; ``05`` card
hashes then PSS.
"""

from __future__ import annotations

import hashlib

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa, utils

from jpki_remote.card.apdu import SW, ApduError
from jpki_remote.card.tlv import tlv

SHA256_DIGEST_INFO_PREFIX = bytes.fromhex("3031300d060960864801650304020105000420")
MODULUS_BYTES = 256
MAX_VERBATIM = MODULUS_BYTES - 11  # 245


def sha256_digest_info(digest: bytes) -> bytes:
    """DER DigestInfo for a 32-byte SHA-256 digest."""
    if len(digest) != 32:
        raise ValueError("a SHA-256 digest is 32 bytes")
    return SHA256_DIGEST_INFO_PREFIX + digest


def raw_pkcs1_sign(key: rsa.RSAPrivateKey, payload: bytes) -> bytes:
    """RSASSA-PKCS1-v1_5 signature over ``payload`` exactly as given (EMSA type-1 padding, no DigestInfo added)."""
    k = (key.key_size + 7) // 8
    if not 1 <= len(payload) <= k - 11:
        raise ApduError(SW.CONDITIONS_NOT_SATISFIED, "payload does not fit PKCS#1 v1.5 padding")
    em = b"\x00\x01" + b"\xff" * (k - 3 - len(payload)) + b"\x00" + payload
    m = int.from_bytes(em, "big")
    priv = key.private_numbers()
    # CRT
    s1 = pow(m % priv.p, priv.dmp1, priv.p)
    s2 = pow(m % priv.q, priv.dmq1, priv.q)
    h = (priv.iqmp * (s1 - s2)) % priv.p
    s = s2 + h * priv.q
    pub = priv.public_numbers
    if pow(s, pub.e, pub.n) != m:  # fault check, as cards do
        raise ApduError(SW.NO_PRECISE_DIAGNOSIS, "signature self-check failed")
    return s.to_bytes(k, "big")


def compute_signature(key: rsa.RSAPrivateKey, scheme: int, data: bytes) -> bytes:
    """Sign ``data`` with scheme P1 = ``scheme``; bad P1 -> 6A86, bad input length -> 6700/6985."""
    if scheme not in range(6):
        raise ApduError(SW.INCORRECT_P1P2, f"unknown signature scheme {scheme:02X}")
    if not data:
        raise ApduError(SW.WRONG_LENGTH, "no data to sign")
    if scheme == 0x00:
        if len(data) > MAX_VERBATIM:
            raise ApduError(SW.CONDITIONS_NOT_SATISFIED, "more than 245 bytes to pad")
        return raw_pkcs1_sign(key, data)
    if scheme == 0x01:
        return raw_pkcs1_sign(key, hashlib.sha256(data).digest())
    if scheme in (0x02, 0x04) and len(data) != 32:
        raise ApduError(SW.WRONG_LENGTH, "a SHA-256 hash is 32 bytes")
    if scheme == 0x02:
        return raw_pkcs1_sign(key, sha256_digest_info(data))
    if scheme == 0x03:
        return raw_pkcs1_sign(key, sha256_digest_info(hashlib.sha256(data).digest()))
    digest = data if scheme == 0x04 else hashlib.sha256(data).digest()
    pss = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32)
    return key.sign(digest, pss, utils.Prehashed(hashes.SHA256()))


def generate_key() -> rsa.RSAPrivateKey:
    """A fresh RSA-2048 key, e = 65537 (what the card generates on board)."""
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def private_to_der(key: rsa.RSAPrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def private_from_der(der: bytes) -> rsa.RSAPrivateKey:
    key = serialization.load_der_private_key(der, password=None)
    if not isinstance(key, rsa.RSAPrivateKey):
        raise ValueError("not an RSA key")
    return key


def card_public_key(public: rsa.RSAPublicKey) -> bytes:
    """The card's RSA public key encoding: ``90`` exponent, ``91`` modulus (as in surface AP DF24)."""
    nums = public.public_numbers()
    e = nums.e.to_bytes((nums.e.bit_length() + 7) // 8, "big")
    n = nums.n.to_bytes((public.key_size + 7) // 8, "big")
    return tlv(0x90, e) + tlv(0x91, n)


def parse_card_public_key(data: bytes) -> rsa.RSAPublicKey:
    """Inverse of :func:`card_public_key`; raises ``ValueError`` on malformed input."""
    from jpki_remote.card.tlv import TlvError, iterate

    e = n = None
    try:
        for obj in iterate(data, stop_at_filler=False):
            if obj.tag == 0x90:
                e = int.from_bytes(obj.value, "big")
            elif obj.tag == 0x91:
                n = int.from_bytes(obj.value, "big")
    except TlvError as exc:
        raise ValueError(str(exc)) from exc
    if not e or not n:
        raise ValueError("public key needs tags 90 and 91")
    return rsa.RSAPublicNumbers(e, n).public_key()
