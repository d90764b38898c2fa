"""Issued certificates, parsed with cryptography: every field and extension of the four profiles; outside checks
with openssl (x509 -text, verify -crl_check against the certificate's shard) and the pkilint CLI."""

from __future__ import annotations

import shutil
import subprocess
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import AuthorityInformationAccessOID, ExtendedKeyUsageOID, ExtensionOID, NameOID

from jpki_remote.ca import distribution
from jpki_remote.ca.authority import CertificateAuthority, IssuedPair
from jpki_remote.ca.der import tlv
from jpki_remote.ca.holder import HolderIdentity, OtherNameOid
from jpki_remote.ca.models import AuthorityKind
from jpki_remote.ca.signing import sign_crl
from jpki_remote.ca.validity import end_of_day_utc

SIG, AUTH = AuthorityKind.SIGNATURE, AuthorityKind.AUTHENTICATION
ISSUED_AT = datetime(2026, 7, 1, 3, 0, tzinfo=UTC)


@pytest.fixture
def pair(
    sqlite_authority: CertificateAuthority, holder: HolderIdentity, holder_keys: list[rsa.RSAPrivateKey]
) -> IssuedPair:
    return sqlite_authority.issue_pair(
        "req-profile", holder, holder_keys[0].public_key(), holder_keys[1].public_key(), date(2035, 6, 10), ISSUED_AT
    )


def _ext(cert: x509.Certificate, oid: x509.ObjectIdentifier) -> x509.Extension:
    return cert.extensions.get_extension_for_oid(oid)


def _common_checks(cert: x509.Certificate, ca: x509.Certificate, kind: AuthorityKind, shard: int) -> None:
    assert cert.version is x509.Version.v3
    assert cert.signature_algorithm_oid == x509.SignatureAlgorithmOID.RSA_WITH_SHA256
    assert cert.issuer == ca.subject
    cert.verify_directly_issued_by(ca)
    assert 2**126 <= cert.serial_number < 2**127
    public_key = cert.public_key()
    assert isinstance(public_key, rsa.RSAPublicKey) and public_key.key_size == 2048
    assert _ext(cert, ExtensionOID.SUBJECT_KEY_IDENTIFIER).value == x509.SubjectKeyIdentifier.from_public_key(
        public_key
    )
    aki = _ext(cert, ExtensionOID.AUTHORITY_KEY_IDENTIFIER).value
    assert aki.key_identifier == _ext(ca, ExtensionOID.SUBJECT_KEY_IDENTIFIER).value.digest
    cdp = _ext(cert, ExtensionOID.CRL_DISTRIBUTION_POINTS)
    assert not cdp.critical
    assert cdp.value[0].full_name == [
        x509.UniformResourceIdentifier(f"http://127.0.0.1:8080/crl/{kind.value}/{shard}.crl")
    ]
    assert shard == distribution.shard_for_serial(cert.serial_number, 16)
    aia = _ext(cert, ExtensionOID.AUTHORITY_INFORMATION_ACCESS).value
    assert [(d.access_method, d.access_location.value) for d in aia] == [
        (AuthorityInformationAccessOID.OCSP, f"http://127.0.0.1:8080/ocsp/{kind.value}")
    ]
    assert cert.not_valid_before_utc == ISSUED_AT
    with pytest.raises(x509.ExtensionNotFound):
        _ext(cert, ExtensionOID.BASIC_CONSTRAINTS)


def test_signature_certificate_profile(pair: IssuedPair, sqlite_authority: CertificateAuthority) -> None:
    assert pair.signature is not None
    cert = pair.signature.certificate
    _common_checks(cert, sqlite_authority.authority_certificate(SIG), SIG, pair.signature.shard)
    subject = [(a.oid, a.value) for a in cert.subject]
    assert subject[:3] == [
        (NameOID.COUNTRY_NAME, "JP"),
        (NameOID.LOCALITY_NAME, "Tokyo-to"),
        (NameOID.LOCALITY_NAME, "Kiyose-shi"),
    ]
    assert subject[3][0] == NameOID.COMMON_NAME and subject[3][1].endswith("13221") and "山田" not in subject[3][1]
    assert len(subject) == 4
    ku = _ext(cert, ExtensionOID.KEY_USAGE)
    assert ku.critical
    assert ku.value.digital_signature and ku.value.content_commitment
    assert not (ku.value.key_encipherment or ku.value.key_cert_sign or ku.value.crl_sign or ku.value.key_agreement)
    san = _ext(cert, ExtensionOID.SUBJECT_ALTERNATIVE_NAME)
    values = {n.type_id.dotted_string: n.value for n in san.value.get_values_for_type(x509.OtherName)}

    def utf8(text: str) -> bytes:
        return tlv(0x0C, text.encode())

    assert values == {
        OtherNameOid.NAME.dotted_string: utf8("山田 太郎"),
        OtherNameOid.NAME_SUBSTITUTE.dotted_string: utf8("山田 太郎"),
        OtherNameOid.SEX.dotted_string: utf8("1"),
        OtherNameOid.BIRTH_DATE.dotted_string: utf8("419900610"),
        OtherNameOid.ADDRESS.dotted_string: utf8("東京都清瀬市中里一丁目2番3号"),
        OtherNameOid.ADDRESS_SUBSTITUTE.dotted_string: utf8("東京都清瀬市中里1-2-3"),
    }
    # The raw extension carries each value as otherName [0] EXPLICIT UTF8String.
    raw = san.value.public_bytes()
    assert b"\xa0\x03\x0c\x011" in raw  # otherName value [0] EXPLICIT UTF8String "1" (sex)
    policies = _ext(cert, ExtensionOID.CERTIFICATE_POLICIES).value
    assert [p.policy_identifier.dotted_string for p in policies] == ["1.2.392.200149.8.5.1.1.20"]
    assert cert.not_valid_after_utc == end_of_day_utc(date(2031, 6, 10))  # 5th birthday after 2026-07-01
    oids = {e.oid for e in cert.extensions}
    assert oids == {
        ExtensionOID.KEY_USAGE,
        ExtensionOID.SUBJECT_ALTERNATIVE_NAME,
        ExtensionOID.CERTIFICATE_POLICIES,
        ExtensionOID.CRL_DISTRIBUTION_POINTS,
        ExtensionOID.AUTHORITY_INFORMATION_ACCESS,
        ExtensionOID.SUBJECT_KEY_IDENTIFIER,
        ExtensionOID.AUTHORITY_KEY_IDENTIFIER,
    }


def test_auth_certificate_profile_has_no_personal_data(
    pair: IssuedPair, sqlite_authority: CertificateAuthority
) -> None:
    cert = pair.authentication.certificate
    _common_checks(cert, sqlite_authority.authority_certificate(AUTH), AUTH, pair.authentication.shard)
    assert [a.oid for a in cert.subject] == [NameOID.COUNTRY_NAME, NameOID.COMMON_NAME]
    ku = _ext(cert, ExtensionOID.KEY_USAGE)
    assert ku.critical and ku.value.digital_signature and not ku.value.content_commitment
    with pytest.raises(x509.ExtensionNotFound):
        _ext(cert, ExtensionOID.SUBJECT_ALTERNATIVE_NAME)
    policies = _ext(cert, ExtensionOID.CERTIFICATE_POLICIES).value
    assert [p.policy_identifier.dotted_string for p in policies] == ["1.2.392.200149.8.5.1.3.30"]
    der = pair.authentication.der
    for personal in ("山田", "清瀬", "419900610", "Kiyose"):
        assert personal.encode() not in der
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value != (
        pair.signature.certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value  # type: ignore[union-attr]
    )


def test_ca_and_ocsp_responder_profiles(sqlite_authority: CertificateAuthority) -> None:
    for kind, unit in ((SIG, "JPKI for digital signature"), (AUTH, "JPKI for user authentication")):
        loaded = sqlite_authority.authority(kind)
        ca = loaded.certificate
        assert [(a.oid, a.value) for a in ca.subject] == [
            (NameOID.COUNTRY_NAME, "JP"),
            (NameOID.ORGANIZATION_NAME, "JPKI-TEST"),
            (NameOID.ORGANIZATIONAL_UNIT_NAME, unit),
            (NameOID.ORGANIZATIONAL_UNIT_NAME, "Japan Agency for Local Authority Information Systems"),
        ]
        assert ca.subject == ca.issuer
        ca.verify_directly_issued_by(ca)
        bc = _ext(ca, ExtensionOID.BASIC_CONSTRAINTS)
        assert bc.critical and bc.value.ca
        ku = _ext(ca, ExtensionOID.KEY_USAGE)
        assert ku.critical and ku.value.key_cert_sign and ku.value.crl_sign and not ku.value.digital_signature
        assert _ext(ca, ExtensionOID.AUTHORITY_KEY_IDENTIFIER).value.key_identifier == (
            _ext(ca, ExtensionOID.SUBJECT_KEY_IDENTIFIER).value.digest
        )
        assert ca.public_key().key_size == 2048  # type: ignore[union-attr]
        assert ca.signature_algorithm_oid == x509.SignatureAlgorithmOID.RSA_WITH_SHA256

        ocsp = loaded.ocsp_certificate
        ocsp.verify_directly_issued_by(ca)
        assert ocsp.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == f"{unit} OCSP Responder"
        assert list(_ext(ocsp, ExtensionOID.EXTENDED_KEY_USAGE).value) == [ExtendedKeyUsageOID.OCSP_SIGNING]
        assert isinstance(_ext(ocsp, ExtensionOID.OCSP_NO_CHECK).value, x509.OCSPNoCheck)
        oku = _ext(ocsp, ExtensionOID.KEY_USAGE)
        assert oku.critical and oku.value.digital_signature and not oku.value.key_cert_sign
        assert ocsp.not_valid_after_utc - ocsp.not_valid_before_utc == timedelta(days=365)
        assert ca.not_valid_after_utc - ca.not_valid_before_utc > timedelta(days=3650)
        assert ocsp.public_key() != ca.public_key()


# -- tools we did not write -------------------------------------------------------------------------------------
def _write(path: Path, cert: x509.Certificate) -> Path:
    path.write_bytes(cert.public_bytes(Encoding.PEM))
    return path


@pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl not installed")
def test_openssl_reads_and_verifies_the_chain(
    pair: IssuedPair, sqlite_authority: CertificateAuthority, tmp_path: Path
) -> None:
    sig_ca = _write(tmp_path / "sig-ca.pem", sqlite_authority.authority_certificate(SIG))
    auth_ca = _write(tmp_path / "auth-ca.pem", sqlite_authority.authority_certificate(AUTH))
    sig = _write(tmp_path / "sig.pem", pair.signature.certificate)  # type: ignore[union-attr]
    auth = _write(tmp_path / "auth.pem", pair.authentication.certificate)
    text = subprocess.run(
        ["openssl", "x509", "-in", sig, "-noout", "-text"], capture_output=True, text=True, check=True
    ).stdout
    assert "Digital Signature, Non Repudiation" in text
    assert "othername: 1.2.392.200149.8.5.5.1::山田 太郎" in text
    assert "othername: 1.2.392.200149.8.5.5.4::419900610" in text
    assert "Policy: 1.2.392.200149.8.5.1.1.20" in text
    assert "URI:http://127.0.0.1:8080/crl/signature/" in text
    assert "OCSP - URI:http://127.0.0.1:8080/ocsp/signature" in text
    ok = subprocess.run(["openssl", "verify", "-CAfile", sig_ca, sig], capture_output=True, text=True)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    ok = subprocess.run(["openssl", "verify", "-CAfile", auth_ca, auth], capture_output=True, text=True)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    wrong = subprocess.run(["openssl", "verify", "-CAfile", auth_ca, sig], capture_output=True, text=True)
    assert wrong.returncode != 0  # the signature certificate does not chain to the auth CA
    for kind, ca_file in ((SIG, sig_ca), (AUTH, auth_ca)):
        ocsp = _write(tmp_path / f"ocsp-{kind.value}.pem", sqlite_authority.authority(kind).ocsp_certificate)
        ok = subprocess.run(
            ["openssl", "verify", "-CAfile", ca_file, "-purpose", "ocsphelper", ocsp], capture_output=True, text=True
        )
        assert ok.returncode == 0, ok.stdout + ok.stderr


@pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl not installed")
def test_openssl_crl_check_against_the_certificates_shard(
    sqlite_authority: CertificateAuthority,
    holder: HolderIdentity,
    holder_keys: list[rsa.RSAPrivateKey],
    tmp_path: Path,
) -> None:
    """A shard CRL whose IDP comes from ca.distribution is accepted by OpenSSL for the certificate naming it."""
    ca = sqlite_authority
    first = ca.issue(AUTH, "crl-a", holder, holder_keys[0].public_key(), date(2035, 1, 1))
    second = ca.issue(AUTH, "crl-b", holder, holder_keys[1].public_key(), date(2035, 1, 1))
    ca.revoke(AUTH, first.serial, "keyCompromise")
    now = datetime.now(UTC).replace(microsecond=0)
    ca_cert = ca.authority_certificate(AUTH)
    ca_file = _write(tmp_path / "ca.pem", ca_cert)
    for issued, revoked in ((first, True), (second, False)):
        entries = []
        if revoked:
            entries.append(
                x509.RevokedCertificateBuilder()
                .serial_number(issued.serial)
                .revocation_date(now)
                .add_extension(x509.CRLReason(x509.ReasonFlags.key_compromise), False)
                .build()
            )
        builder = (
            x509.CertificateRevocationListBuilder(revoked_certificates=entries)
            .issuer_name(ca_cert.subject)
            .last_update(now)
            .next_update(now + timedelta(hours=6))
            .add_extension(x509.CRLNumber(1), False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_cert.public_key()), False)  # type: ignore[arg-type]
            .add_extension(distribution.issuing_distribution_point(ca.settings, AUTH, issued.shard), True)
        )
        der, report = sign_crl(builder, ca.authority(AUTH).key)
        assert report.ok, report.summary()
        crl = x509.load_der_x509_crl(der)
        assert crl.is_signature_valid(ca_cert.public_key())  # type: ignore[arg-type]
        crl_file = tmp_path / f"{issued.serial}.crl.pem"
        crl_file.write_bytes(crl.public_bytes(Encoding.PEM))
        cert_file = _write(tmp_path / f"{issued.serial}.pem", issued.certificate)
        result = subprocess.run(
            ["openssl", "verify", "-crl_check", "-CAfile", ca_file, "-CRLfile", crl_file, cert_file],
            capture_output=True,
            text=True,
        )
        if revoked:
            assert result.returncode != 0 and "certificate revoked" in result.stdout + result.stderr
        else:
            assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.skipif(
    shutil.which("lint_pkix_cert") is None and not Path(".venv/bin/lint_pkix_cert").exists(),
    reason="pkilint CLI not installed",
)
def test_pkilint_cli_on_issued_certificates(
    pair: IssuedPair, sqlite_authority: CertificateAuthority, tmp_path: Path
) -> None:
    """The pkilint command-line tool (a separate process) finds nothing at WARNING or above."""
    import sys

    cli = Path(sys.executable).with_name("lint_pkix_cert")
    files = [
        _write(tmp_path / "sig.pem", pair.signature.certificate),  # type: ignore[union-attr]
        _write(tmp_path / "auth.pem", pair.authentication.certificate),
        _write(tmp_path / "ca.pem", sqlite_authority.authority_certificate(SIG)),
        _write(tmp_path / "ocsp.pem", sqlite_authority.authority(SIG).ocsp_certificate),
    ]
    for path in files:
        result = subprocess.run([str(cli), "lint", "-s", "WARNING", str(path)], capture_output=True, text=True)
        assert result.returncode == 0, f"{path.name}: {result.stdout}{result.stderr}"


def test_real_signature_is_by_the_ca_key(pair: IssuedPair, sqlite_authority: CertificateAuthority) -> None:
    cert = pair.authentication.certificate
    ca_key = sqlite_authority.authority_certificate(AUTH).public_key()
    ca_key.verify(cert.signature, cert.tbs_certificate_bytes, padding.PKCS1v15(), hashes.SHA256())  # type: ignore[union-attr,call-arg]
