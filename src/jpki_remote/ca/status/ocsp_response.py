"""Encode RFC 6960 OCSP responses as DER (the key store signs the ``ResponseData``; keys never leave it).

Profile (RFC 9919, the lightweight profile): ``BasicOCSPResponse`` signed with sha256WithRSAEncryption by the
authority's delegated OCSP certificate, ResponderID ``byKey``, the responder certificate included, thisUpdate and
nextUpdate on every SingleResponse, no extensions except an echoed nonce.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import datetime

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from jpki_remote.ca.der import SHA256_WITH_RSA, bit_string, integer, sequence, tlv
from jpki_remote.ca.models import AuthorityKind
from jpki_remote.ca.status.asn1 import children, enumerated, explicit, generalized_time, octet_string, oid, read_tlv

# OCSPResponseStatus values (RFC 6960 §4.2.1) and the unsigned responses that carry them.
SUCCESSFUL = 0
MALFORMED_REQUEST = 1
INTERNAL_ERROR = 2
TRY_LATER = 3
UNAUTHORIZED = 6


def error_response(status: int) -> bytes:
    """``OCSPResponse`` without responseBytes — the only shape allowed for the error statuses."""
    return sequence(enumerated(status))


MALFORMED_REQUEST_RESPONSE = error_response(MALFORMED_REQUEST)
INTERNAL_ERROR_RESPONSE = error_response(INTERNAL_ERROR)
TRY_LATER_RESPONSE = error_response(TRY_LATER)
UNAUTHORIZED_RESPONSE = error_response(UNAUTHORIZED)

HASH_ALGORITHM_IDS = {  # AlgorithmIdentifier DER with NULL parameters, as OpenSSL and most clients send them
    "sha1": sequence(oid("1.3.14.3.2.26"), b"\x05\x00"),
    "sha256": sequence(oid("2.16.840.1.101.3.4.2.1"), b"\x05\x00"),
    "sha384": sequence(oid("2.16.840.1.101.3.4.2.2"), b"\x05\x00"),
    "sha512": sequence(oid("2.16.840.1.101.3.4.2.3"), b"\x05\x00"),
}
PRECOMPUTED_ALGORITHMS = ("sha1", "sha256")
_BASIC_OID = oid("1.3.6.1.5.5.7.48.1.1")


@dataclass(frozen=True, slots=True)
class CertStatus:
    """What a SingleResponse says: ``good``, ``revoked`` (with time and optional reason) or ``unknown``."""

    status: str
    revoked_at: datetime | None = None
    reason: int | None = None

    def encode(self) -> bytes:
        if self.status == "good":
            return b"\x80\x00"  # [0] IMPLICIT NULL
        if self.status == "unknown":
            return b"\x82\x00"  # [2] IMPLICIT NULL
        if self.status != "revoked" or self.revoked_at is None:
            raise ValueError(f"bad certificate status {self!r}")
        body = generalized_time(self.revoked_at)
        if self.reason:  # unspecified (0) is left out, as for CRLs (RFC 5280 §5.3.1)
            body += explicit(0, enumerated(self.reason))
        return tlv(0xA1, body)  # [1] IMPLICIT RevokedInfo


GOOD = CertStatus("good")
UNKNOWN = CertStatus("unknown")


@dataclass(frozen=True)
class ResponderIdentity:
    """One authority as seen by its OCSP responder: issuer hashes per algorithm and the delegated signer."""

    kind: AuthorityKind
    ca_certificate_der: bytes
    responder_certificate_der: bytes
    responder_key_label: str
    name_hashes: dict[str, bytes] = field(default_factory=dict)
    key_hashes: dict[str, bytes] = field(default_factory=dict)
    responder_key_id: bytes = b""
    #: SHA-256 (hex) of the responder certificate: which signer a stored response was made by (renewal detection)
    signer_fingerprint: str = ""

    @classmethod
    def build(
        cls, kind: AuthorityKind, ca_der: bytes, responder_der: bytes, responder_key_label: str
    ) -> ResponderIdentity:
        ca = x509.load_der_x509_certificate(ca_der)
        responder = x509.load_der_x509_certificate(responder_der)
        subject = ca.subject.public_bytes()
        key_bits = _subject_public_key_bits(ca)
        names = {alg: hashlib.new(alg, subject).digest() for alg in HASH_ALGORITHM_IDS}
        keys = {alg: hashlib.new(alg, key_bits).digest() for alg in HASH_ALGORITHM_IDS}
        key_id = hashlib.sha1(_subject_public_key_bits(responder)).digest()  # noqa: S324 - RFC 6960 KeyHash is SHA-1
        fingerprint = hashlib.sha256(responder_der).hexdigest()
        return cls(kind, ca_der, responder_der, responder_key_label, names, keys, key_id, fingerprint)

    def cert_id_prefix(self, algorithm: str) -> bytes:
        """The CertID content before the serial: AlgorithmIdentifier, issuerNameHash, issuerKeyHash."""
        return (
            HASH_ALGORITHM_IDS[algorithm]
            + octet_string(self.name_hashes[algorithm])
            + octet_string(self.key_hashes[algorithm])
        )

    def cert_id(self, algorithm: str, serial: int) -> bytes:
        return sequence(self.cert_id_prefix(algorithm), integer(serial))


def _subject_public_key_bits(certificate: x509.Certificate) -> bytes:
    """The subjectPublicKey BIT STRING content (for RSA: the PKCS#1 RSAPublicKey DER)."""
    spki = certificate.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    # SubjectPublicKeyInfo ::= SEQUENCE { AlgorithmIdentifier, BIT STRING }: skip the outer header and the algorithm.
    _, start, end = read_tlv(spki, 0, len(spki))
    parts = children(spki, start, end)
    _, _, bits_start, bits_end = parts[1]
    return spki[bits_start + 1 : bits_end]  # drop the unused-bits octet


def single_response(cert_id_der: bytes, status: CertStatus, this_update: datetime, next_update: datetime) -> bytes:
    return sequence(
        cert_id_der, status.encode(), generalized_time(this_update), explicit(0, generalized_time(next_update))
    )


def response_data(
    identity: ResponderIdentity, produced_at: datetime, singles: list[bytes], nonce: bytes | None
) -> bytes:
    """``ResponseData`` (v1 omitted as DEFAULT): responderID byKey, producedAt, responses, optional nonce."""
    parts = [
        explicit(2, octet_string(identity.responder_key_id)),
        generalized_time(produced_at),
        sequence(*singles),
    ]
    if nonce is not None:
        parts.append(explicit(1, sequence(nonce)))
    return sequence(*parts)


def assemble(identity: ResponderIdentity, tbs: bytes, signature: bytes) -> bytes:
    """Wrap signed ``ResponseData`` into BasicOCSPResponse (with the responder certificate) and OCSPResponse."""
    basic = sequence(
        tbs,
        SHA256_WITH_RSA,
        bit_string(signature),
        explicit(0, sequence(identity.responder_certificate_der)),
    )
    response_bytes = sequence(_BASIC_OID, octet_string(basic))
    return sequence(enumerated(SUCCESSFUL), explicit(0, response_bytes))
