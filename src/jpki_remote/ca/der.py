"""Minimal DER helpers for assembling signed structures (certificates, CRLs, OCSP responses) from TBS bytes."""

from __future__ import annotations

# AlgorithmIdentifier for sha256WithRSAEncryption (1.2.840.113549.1.1.11) with NULL parameters.
SHA256_WITH_RSA = bytes.fromhex("300d06092a864886f70d01010b0500")


def length(n: int) -> bytes:
    if n < 0x80:
        return bytes([n])
    body = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(body)]) + body


def tlv(tag: int, value: bytes) -> bytes:
    return bytes([tag]) + length(len(value)) + value


def sequence(*parts: bytes) -> bytes:
    return tlv(0x30, b"".join(parts))


def integer(value: int) -> bytes:
    if value < 0:
        raise ValueError("negative INTEGER not supported")
    body = value.to_bytes(value.bit_length() // 8 + 1, "big")  # keeps a leading 0x00 when the top bit is set
    return tlv(0x02, body)


def bit_string(value: bytes) -> bytes:
    return tlv(0x03, b"\x00" + value)


def signed_structure(tbs_der: bytes, signature: bytes, algorithm: bytes = SHA256_WITH_RSA) -> bytes:
    """``SEQUENCE { tbs, signatureAlgorithm, signatureValue BIT STRING }`` — X.509 certificate and CRL shape."""
    return sequence(tbs_der, algorithm, bit_string(signature))
