"""Certificate profiles, modelled on the real JPKI certificates (see design/reference/jpki-card-and-domain.md §3).

Every function returns an unsigned :class:`~cryptography.x509.CertificateBuilder`; :mod:`jpki_remote.ca.signing`
turns it into a linted TBS and signs that through the key store. A builder depends only on its arguments, so the
same reservation always yields the same TBS (idempotent issuance relies on this).

* CA (self-signed): ``C=JP, O=<org>, OU=JPKI for digital signature|user authentication, OU=<J-LIS>``;
  basicConstraints CA (critical), keyUsage keyCertSign+cRLSign (critical), SKI, AKI.
* OCSP responder: ``C=JP, O, OU, CN=… OCSP Responder``; keyUsage digitalSignature (critical), EKU OCSPSigning,
  id-pkix-ocsp-nocheck, SKI, AKI; shorter validity.
* signature (署名用): ``C=JP, L=<prefecture>, L=<city>, CN=<opaque id>``; keyUsage digitalSignature+nonRepudiation
  (critical), SAN otherNames (基本4情報), policy 1.2.392.200149.8.5.1.1.20, CDP (the shard), AIA (OCSP), SKI, AKI.
* auth (利用者証明用): ``C=JP, CN=<opaque id>``; keyUsage digitalSignature (critical), policy
  1.2.392.200149.8.5.1.3.30, CDP, AIA, SKI, AKI — no personal data.

certificatePolicies is non-critical (the policy identifies the CP; marking it critical would only make generic
relying-party software reject the certificates).
"""

from __future__ import annotations

import base64
import hashlib
from datetime import datetime

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from jpki_remote.ca import distribution
from jpki_remote.ca.errors import UnsupportedKeyError
from jpki_remote.ca.holder import HolderIdentity
from jpki_remote.ca.models import AuthorityKind
from jpki_remote.config import Settings

SIGNATURE_POLICY = x509.ObjectIdentifier("1.2.392.200149.8.5.1.1.20")
AUTHENTICATION_POLICY = x509.ObjectIdentifier("1.2.392.200149.8.5.1.3.30")
POLICY = {AuthorityKind.SIGNATURE: SIGNATURE_POLICY, AuthorityKind.AUTHENTICATION: AUTHENTICATION_POLICY}

CA_UNIT = {
    AuthorityKind.SIGNATURE: "JPKI for digital signature",
    AuthorityKind.AUTHENTICATION: "JPKI for user authentication",
}
JLIS_UNIT = "Japan Agency for Local Authority Information Systems"


def ca_name(settings: Settings, kind: AuthorityKind) -> x509.Name:
    """``C=JP, O=<org>, OU=JPKI for digital signature|user authentication, OU=Japan Agency for …``."""
    return x509.Name(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, "JP"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, settings.ca_organization),
            x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, CA_UNIT[kind]),
            x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, JLIS_UNIT),
        ]
    )


def ocsp_responder_name(settings: Settings, kind: AuthorityKind) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, "JP"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, settings.ca_organization),
            x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, CA_UNIT[kind]),
            x509.NameAttribute(NameOID.COMMON_NAME, f"{CA_UNIT[kind]} OCSP Responder"),
        ]
    )


def check_subject_key(public_key: object) -> rsa.RSAPublicKey:
    """Holder keys are RSA-2048 with e=65537, as the card generates them."""
    if not isinstance(public_key, rsa.RSAPublicKey):
        raise UnsupportedKeyError(f"subject key must be RSA, not {type(public_key).__name__}")
    numbers = public_key.public_numbers()
    if public_key.key_size != 2048 or numbers.e != 65537:
        raise UnsupportedKeyError(f"subject key must be RSA-2048 with e=65537 (got {public_key.key_size} bits)")
    return public_key


def opaque_subject_id(kind: AuthorityKind, serial: int, municipality_code: str) -> str:
    """The subject CN: 16 opaque characters derived from the serial, then the municipality code.

    Like the real CNs (e.g. ``997794E9AGCIEG13221003A``) it names no person. It is derived from the (already
    public) serial so that re-building a reserved certificate yields the identical TBS.
    """
    digest = hashlib.sha256(f"jpki-subject:{kind.value}:{serial:x}".encode()).digest()
    return base64.b32encode(digest).decode()[:16] + municipality_code


def _key_ids(subject_key: rsa.RSAPublicKey, issuer_key: rsa.RSAPublicKey) -> list[tuple[x509.ExtensionType, bool]]:
    return [
        (x509.SubjectKeyIdentifier.from_public_key(subject_key), False),
        (x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key), False),
    ]


def _builder(
    subject: x509.Name,
    issuer: x509.Name,
    public_key: rsa.RSAPublicKey,
    serial: int,
    not_before: datetime,
    not_after: datetime,
    extensions: list[tuple[x509.ExtensionType, bool]],
) -> x509.CertificateBuilder:
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(serial)
        .not_valid_before(not_before)
        .not_valid_after(not_after)
    )
    for extension, critical in extensions:
        builder = builder.add_extension(extension, critical=critical)
    return builder


def ca_certificate(
    settings: Settings,
    kind: AuthorityKind,
    public_key: rsa.RSAPublicKey,
    serial: int,
    not_before: datetime,
    not_after: datetime,
) -> x509.CertificateBuilder:
    """The self-signed root of one authority."""
    name = ca_name(settings, kind)
    return _builder(
        name,
        name,
        public_key,
        serial,
        not_before,
        not_after,
        [
            (x509.BasicConstraints(ca=True, path_length=None), True),
            (_key_usage(key_cert_sign=True, crl_sign=True), True),
            *_key_ids(public_key, public_key),
        ],
    )


def ocsp_signer_certificate(
    settings: Settings,
    kind: AuthorityKind,
    public_key: rsa.RSAPublicKey,
    issuer_key: rsa.RSAPublicKey,
    serial: int,
    not_before: datetime,
    not_after: datetime,
) -> x509.CertificateBuilder:
    """The delegated OCSP signing certificate (RFC 6960 §4.2.2.2): EKU OCSPSigning, id-pkix-ocsp-nocheck."""
    return _builder(
        ocsp_responder_name(settings, kind),
        ca_name(settings, kind),
        public_key,
        serial,
        not_before,
        not_after,
        [
            (_key_usage(digital_signature=True), True),
            (x509.ExtendedKeyUsage([ExtendedKeyUsageOID.OCSP_SIGNING]), False),
            (x509.OCSPNoCheck(), False),
            *_key_ids(public_key, issuer_key),
        ],
    )


def holder_certificate(
    settings: Settings,
    kind: AuthorityKind,
    holder: HolderIdentity,
    public_key: rsa.RSAPublicKey,
    issuer_key: rsa.RSAPublicKey,
    serial: int,
    shard: int,
    not_before: datetime,
    not_after: datetime,
) -> x509.CertificateBuilder:
    """The signature (署名用) or auth (利用者証明用) certificate of a holder."""
    check_subject_key(public_key)
    cn = x509.NameAttribute(NameOID.COMMON_NAME, opaque_subject_id(kind, serial, holder.municipality_code))
    extensions: list[tuple[x509.ExtensionType, bool]]
    if kind is AuthorityKind.SIGNATURE:
        holder.check_for_signature()
        subject = x509.Name(
            [
                x509.NameAttribute(NameOID.COUNTRY_NAME, "JP"),
                x509.NameAttribute(NameOID.LOCALITY_NAME, holder.prefecture),
                x509.NameAttribute(NameOID.LOCALITY_NAME, holder.city),
                cn,
            ]
        )
        extensions = [
            (_key_usage(digital_signature=True, content_commitment=True), True),
            (x509.SubjectAlternativeName(holder.subject_alt_names()), False),
        ]
    else:
        holder.check_common()
        subject = x509.Name([x509.NameAttribute(NameOID.COUNTRY_NAME, "JP"), cn])
        extensions = [(_key_usage(digital_signature=True), True)]
    extensions += [
        (x509.CertificatePolicies([x509.PolicyInformation(POLICY[kind], None)]), False),
        (distribution.crl_distribution_points(settings, kind, shard), False),
        (distribution.authority_information_access(settings, kind), False),
        *_key_ids(public_key, issuer_key),
    ]
    return _builder(subject, _issuer_name(settings, kind), public_key, serial, not_before, not_after, extensions)


def _issuer_name(settings: Settings, kind: AuthorityKind) -> x509.Name:
    return ca_name(settings, kind)


def _key_usage(
    *,
    digital_signature: bool = False,
    content_commitment: bool = False,
    key_cert_sign: bool = False,
    crl_sign: bool = False,
) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=digital_signature,
        content_commitment=content_commitment,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=key_cert_sign,
        crl_sign=crl_sign,
        encipher_only=False,
        decipher_only=False,
    )
