"""A throw-away two-CA hierarchy (auth + sign) made with ``cryptography``, shaped like J-LIS's, for card tests.

Certificates for the card's on-card keys are issued with :meth:`TestCa.issue_auth` / :meth:`TestCa.issue_sign`.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID

AUTH_CA_OU = "JPKI for user authentication"
SIGN_CA_OU = "JPKI for digital signature"


def _ca_name(ou: str) -> x509.Name:
    return x509.Name([
        x509.NameAttribute(NameOID.COUNTRY_NAME, "JP"),
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "JPKI-TEST"),
        x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, ou),
        x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, "jpki-remote test suite"),
    ])


@dataclass
class Authority:
    key: rsa.RSAPrivateKey
    certificate: x509.Certificate

    @property
    def der(self) -> bytes:
        return self.certificate.public_bytes(Encoding.DER)


def _self_signed(ou: str, key: rsa.RSAPrivateKey, now: dt.datetime) -> Authority:
    name = _ca_name(ou)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return Authority(key, cert)


class TestCa:
    """Auth CA and sign CA. ``key_source()`` supplies the CA keys (a session key pool keeps tests fast)."""

    __test__ = False  # not a pytest test class

    def __init__(self, auth_key: rsa.RSAPrivateKey, sign_key: rsa.RSAPrivateKey) -> None:
        now = dt.datetime.now(dt.UTC)
        self.auth = _self_signed(AUTH_CA_OU, auth_key, now)
        self.sign = _self_signed(SIGN_CA_OU, sign_key, now)

    def _issue(self, ca: Authority, subject: x509.Name, public_key: rsa.RSAPublicKey, *, sign: bool,
               days: int) -> bytes:
        now = dt.datetime.now(dt.UTC)
        usage = x509.KeyUsage(True, sign, False, False, False, False, False, False, False)
        cert = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(ca.certificate.subject)
            .public_key(public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=days))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(usage, critical=True)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca.key.public_key()), critical=False)
            .sign(ca.key, hashes.SHA256())
        )
        return cert.public_bytes(Encoding.DER)

    def issue_auth(self, public_key: rsa.RSAPublicKey, holder_id: str, days: int = 1825) -> bytes:
        """An auth certificate: no personal data, an opaque CN."""
        subject = x509.Name([x509.NameAttribute(NameOID.COUNTRY_NAME, "JP"),
                             x509.NameAttribute(NameOID.COMMON_NAME, holder_id)])
        return self._issue(self.auth, subject, public_key, sign=False, days=days)

    def issue_sign(self, public_key: rsa.RSAPublicKey, holder_id: str, locality: str = "Tokyo",
                   days: int = 1825) -> bytes:
        """A sign certificate (digitalSignature + nonRepudiation)."""
        subject = x509.Name([x509.NameAttribute(NameOID.COUNTRY_NAME, "JP"),
                             x509.NameAttribute(NameOID.LOCALITY_NAME, locality),
                             x509.NameAttribute(NameOID.COMMON_NAME, holder_id)])
        return self._issue(self.sign, subject, public_key, sign=True, days=days)
