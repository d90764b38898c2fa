"""A throwaway PKI for the status benchmarks (and tests): in-memory keys, two CAs, delegated OCSP signers, and
certificate rows inserted straight into the store.

Not for production: :class:`MemoryKeyStore` keeps private keys in process memory and can export them (the OCSP
benchmark hands the responder key to ``openssl ocsp`` so both responders sign with the same key).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from jpki_remote.ca.distribution import authority_information_access, crl_distribution_points, shard_for_serial
from jpki_remote.ca.keystore import KeyNotFoundError
from jpki_remote.ca.models import Authority, AuthorityKind, Certificate, CertificateState
from jpki_remote.config import Settings
from jpki_remote.store import Database


class MemoryCaKey:
    def __init__(self, label: str, private_key: rsa.RSAPrivateKey) -> None:
        self.label = label
        self._private_key = private_key

    def public_key(self) -> rsa.RSAPublicKey:
        return self._private_key.public_key()

    def sign_sha256_rsa(self, data: bytes) -> bytes:
        return self._private_key.sign(data, padding.PKCS1v15(), hashes.SHA256())


class MemoryKeyStore:
    """The KeyStore interface over keys held in memory (benchmarks and tests only)."""

    def __init__(self) -> None:
        self._keys: dict[str, rsa.RSAPrivateKey] = {}

    def generate_rsa(self, label: str, bits: int = 2048) -> MemoryCaKey:
        if label in self._keys:
            raise ValueError(f"key {label!r} exists")
        self._keys[label] = rsa.generate_private_key(65537, bits)
        return self.get(label)

    def get(self, label: str) -> MemoryCaKey:
        try:
            return MemoryCaKey(label, self._keys[label])
        except KeyError:
            raise KeyNotFoundError(f"no key {label!r}") from None

    def labels(self) -> list[str]:
        return sorted(self._keys)

    def close(self) -> None:
        return None

    def private_key(self, label: str) -> rsa.RSAPrivateKey:
        return self._keys[label]

    def import_pem(self, label: str, pem: bytes) -> MemoryCaKey:
        key = serialization.load_pem_private_key(pem, password=None)
        if not isinstance(key, rsa.RSAPrivateKey):
            raise ValueError("only RSA keys")
        self._keys[label] = key
        return self.get(label)

    def export_pem(self, label: str) -> bytes:
        return self._keys[label].private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )


@dataclass
class SandboxAuthority:
    kind: AuthorityKind
    certificate: x509.Certificate
    ocsp_certificate: x509.Certificate
    key_label: str
    ocsp_key_label: str


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, "JP"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "JPKI-SANDBOX"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def create_authority(
    db: Database, keys: MemoryKeyStore, kind: AuthorityKind, now: datetime | None = None
) -> SandboxAuthority:
    """A self-signed CA and its delegated OCSP signer (id-kp-OCSPSigning, ocsp-nocheck), stored in ca_authorities."""
    now = now or datetime.now(UTC)
    ca_label, ocsp_label = f"sandbox-{kind.value}-ca", f"sandbox-{kind.value}-ocsp"
    ca_key = keys.private_key(keys.generate_rsa(ca_label).label)
    ocsp_key = keys.private_key(keys.generate_rsa(ocsp_label).label)
    ca_name = _name(f"Sandbox {kind.value} CA")
    ca_ski = x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key())
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
        .add_extension(ca_ski, critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    aki = x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski)
    ocsp = (
        x509.CertificateBuilder()
        .subject_name(_name(f"Sandbox {kind.value} OCSP Responder"))
        .issuer_name(ca_name)
        .public_key(ocsp_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=365))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(True, False, False, False, False, False, False, False, False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.OCSP_SIGNING]), critical=False)
        .add_extension(x509.OCSPNoCheck(), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ocsp_key.public_key()), critical=False)
        .add_extension(aki, critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    with db.session() as session:
        session.add(
            Authority(
                kind=kind,
                subject=ca_name.rfc4514_string(),
                certificate_der=ca.public_bytes(serialization.Encoding.DER),
                key_label=ca_label,
                ocsp_certificate_der=ocsp.public_bytes(serialization.Encoding.DER),
                ocsp_key_label=ocsp_label,
                created_at=now,
            )
        )
    return SandboxAuthority(kind, ca, ocsp, ca_label, ocsp_label)


_EE_KEY: rsa.RSAPrivateKey | None = None


def issue_certificate(
    db: Database,
    keys: MemoryKeyStore,
    settings: Settings,
    authority: SandboxAuthority,
    *,
    serial: int | None = None,
    not_after: datetime | None = None,
    now: datetime | None = None,
) -> x509.Certificate:
    """An end-entity certificate with the shard's CDP and the AIA, stored as ISSUED (one shared subject key)."""
    global _EE_KEY
    if _EE_KEY is None:
        _EE_KEY = rsa.generate_private_key(65537, 2048)
    now = now or datetime.now(UTC)
    serial = serial or (secrets.randbits(63) | (1 << 63))
    shard = shard_for_serial(serial, settings.crl_shards)
    not_after = not_after or now + timedelta(days=365)
    ca_key = keys.private_key(authority.key_label)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"sandbox {serial:x}")]))
        .issuer_name(authority.certificate.subject)
        .public_key(_EE_KEY.public_key())
        .serial_number(serial)
        .not_valid_before(now - timedelta(hours=1))
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(True, False, False, False, False, False, False, False, False), critical=True)
        .add_extension(crl_distribution_points(settings, authority.kind, shard), critical=False)
        .add_extension(authority_information_access(settings, authority.kind), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    with db.session() as session:
        session.add(
            Certificate(
                authority=authority.kind,
                serial_hex=format(serial, "x"),
                request_id=secrets.token_hex(16),
                state=CertificateState.ISSUED,
                holder_ref=secrets.token_hex(8),
                shard=shard,
                not_before=now - timedelta(hours=1),
                not_after=not_after,
                der=certificate.public_bytes(serialization.Encoding.DER),
                reserved_at=now,
                issued_at=now,
            )
        )
    return certificate


def revoke(
    db: Database,
    kind: AuthorityKind,
    serial: int,
    reason: int | None,
    *,
    when: datetime | None = None,
    invalidity_date: datetime | None = None,
) -> None:
    """Mark a sandbox certificate revoked (the CA's revocation API does this in production)."""
    from sqlalchemy import update

    with db.session() as session:
        session.execute(
            update(Certificate)
            .where(Certificate.authority == kind, Certificate.serial_hex == format(serial, "x"))
            .values(
                state=CertificateState.REVOKED,
                revoked_at=when or datetime.now(UTC).replace(microsecond=0),
                revocation_reason=reason,
                invalidity_date=invalidity_date,
            )
        )
