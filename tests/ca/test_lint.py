"""Lint before sign: pkilint in-process (and in worker processes); a blocking finding stops issuance."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509 import ocsp
from cryptography.x509.oid import NameOID
from sqlalchemy import select

from jpki_remote.ca import hooks, lint
from jpki_remote.ca.authority import CertificateAuthority
from jpki_remote.ca.errors import LintFailedError
from jpki_remote.ca.holder import HolderIdentity
from jpki_remote.ca.keystore.files import FileKeyStore
from jpki_remote.ca.models import AuthorityKind, Certificate, CertificateState, LintFinding
from jpki_remote.config import Settings
from jpki_remote.store import Database

NOW = datetime.now(UTC).replace(microsecond=0)


def _self_signed(key: rsa.RSAPrivateKey, *, ca_without_key_usage: bool) -> bytes:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Throwaway Test")])
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW)
        .not_valid_after(NOW + timedelta(days=30))
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(key.public_key()), False)
    )
    if ca_without_key_usage:
        builder = builder.add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
    return builder.sign(key, hashes.SHA256()).public_bytes(Encoding.DER)


def test_lint_reports_errors_as_pkilint_does(holder_keys: list[rsa.RSAPrivateKey]) -> None:
    bad = lint.lint_certificate(_self_signed(holder_keys[0], ca_without_key_usage=True))
    assert not bad.ok
    assert "pkix.ca_certificate_no_ku_extension" in {f.code for f in bad.errors}
    # the cached validator container gives the same answers on every call, in any order
    good = lint.lint_certificate(_self_signed(holder_keys[0], ca_without_key_usage=False))
    assert good.ok
    assert {f.code for f in lint.lint_certificate(_self_signed(holder_keys[0], ca_without_key_usage=True)).errors} == {
        f.code for f in bad.errors
    }


def test_garbage_is_fatal() -> None:
    for junk in (b"", b"\x30\x03\x02\x01", b"not der at all", b"\x30\x80" + b"\x00" * 10):
        report = lint.lint_certificate(junk)
        assert not report.ok
        assert report.errors[0].severity == "FATAL"


def test_allow_list_never_covers_fatal() -> None:
    finding = lint.Finding("FATAL", "anything", "", "")
    assert finding.blocking
    assert all(reason.strip() for reason in lint.ACCEPTED_FINDINGS.values())


def test_worker_processes_give_the_same_findings(holder_keys: list[rsa.RSAPrivateKey]) -> None:
    ders = [_self_signed(holder_keys[0], ca_without_key_usage=flag) for flag in (True, False, True)]
    linter = lint.Linter(workers=2)
    try:
        pooled = linter.lint_certificates(ders)
    finally:
        linter.close()
    assert [r.findings for r in pooled] == [lint.lint_certificate(d).findings for d in ders]
    assert [r.ok for r in pooled] == [False, True, False]


def test_a_killed_worker_does_not_stop_linting(
    holder_keys: list[rsa.RSAPrivateKey], caplog: pytest.LogCaptureFixture
) -> None:
    import os
    import signal

    der = _self_signed(holder_keys[0], ca_without_key_usage=True)
    linter = lint.Linter(workers=1)
    try:
        assert not linter.lint_certificates([der])[0].ok
        for pid in linter.worker_pids():
            os.kill(pid, signal.SIGKILL)  # the worker dies (OOM killer, operator)
        reports = linter.lint_certificates([der, der])
        assert [r.ok for r in reports] == [False, False]
        assert any("pool broke" in r.getMessage() for r in caplog.records)
        assert not linter.lint_certificates([der])[0].ok  # a fresh pool
    finally:
        linter.close()


def test_crl_and_ocsp_response_linting(holder_keys: list[rsa.RSAPrivateKey]) -> None:
    key = holder_keys[0]
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Test CA")])
    crl = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(name)
        .last_update(NOW)
        .next_update(NOW + timedelta(days=1))
        .add_extension(x509.CRLNumber(7), False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(key.public_key()), False)
        .sign(key, hashes.SHA256())
    )
    assert lint.lint_crl(crl.public_bytes(Encoding.DER)).ok
    no_number = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(name)
        .last_update(NOW)
        .next_update(NOW + timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    assert not lint.lint_crl(no_number.public_bytes(Encoding.DER)).ok  # RFC 5280: CRLs MUST carry a CRL number
    response = ocsp.OCSPResponseBuilder.build_unsuccessful(ocsp.OCSPResponseStatus.MALFORMED_REQUEST)
    assert lint.lint_ocsp_response(response.public_bytes(Encoding.DER)).ok


@pytest.fixture
def misconfigured(database: Database, shared_keystore: FileKeyStore, settings: Settings) -> CertificateAuthority:
    """A CA whose public base URL has a space in it: the CDP/AIA URIs are invalid and pkilint must catch it."""
    from jpki_remote.ca.setup import setup_authorities

    bad = settings.with_overrides(public_base_url="http://127.0.0.1:8080/jpki ca")
    setup_authorities(database, shared_keystore, bad)
    return CertificateAuthority(database, shared_keystore, bad)


def test_lint_error_stops_issuance_and_is_recorded(
    misconfigured: CertificateAuthority, holder: HolderIdentity, holder_keys: list[rsa.RSAPrivateKey]
) -> None:
    seen: list[hooks.StatusChange] = []
    hooks.on_status_change(seen.append)
    try:
        with pytest.raises(LintFailedError) as info:
            misconfigured.issue_pair(
                "req-bad", holder, holder_keys[0].public_key(), holder_keys[1].public_key(), date(2035, 1, 1)
            )
        assert {f.code for f in info.value.findings} == {"pkix.invalid_uri_syntax"}
        with misconfigured.db.session() as session:
            rows = list(session.execute(select(Certificate)).scalars())
            findings = list(session.execute(select(LintFinding)).scalars())
        assert {(r.authority, r.state) for r in rows} == {
            (AuthorityKind.AUTHENTICATION, CertificateState.LINT_FAILED),
            (AuthorityKind.SIGNATURE, CertificateState.LINT_FAILED),
        }
        assert all(r.der is None and r.issued_at is None for r in rows)  # nothing was signed or stored
        assert {f.serial_hex for f in findings} == {r.serial_hex for r in rows}
        assert {f.code for f in findings} == {"pkix.invalid_uri_syntax"}
        assert all(f.severity == "ERROR" and "jpki ca" in f.message for f in findings)
        # A retry of the same request fails the same way, from the record, without a new serial.
        with pytest.raises(LintFailedError, match="new request id") as again:
            misconfigured.issue_pair(
                "req-bad", holder, holder_keys[0].public_key(), holder_keys[1].public_key(), date(2035, 1, 1)
            )
        assert {f.code for f in again.value.findings} == {"pkix.invalid_uri_syntax"}
        with misconfigured.db.session() as session:
            assert len(list(session.execute(select(Certificate)).scalars())) == 2
        assert seen == []
    finally:
        hooks.remove_status_listener(seen.append)


def test_the_lint_copy_is_the_final_certificate_but_for_the_signature(
    authority: CertificateAuthority, holder: HolderIdentity, holder_keys: list[rsa.RSAPrivateKey]
) -> None:
    """The copy pkilint sees has the final TBS and a placeholder signature of the CA key's length, and pkilint
    finds exactly what it finds on the signed certificate — for clean certificates and for faulty ones."""
    from jpki_remote.ca.der import signed_structure
    from jpki_remote.ca.signing import prepare_certificate, signature_length

    pair = authority.issue_pair(
        "req-lint-copy", holder, holder_keys[0].public_key(), holder_keys[1].public_key(), date(2035, 1, 1)
    )
    assert pair.signature is not None
    for issued in (pair.authentication, pair.signature):
        final = x509.load_der_x509_certificate(issued.der)
        issuer = authority.authority_certificate(issued.kind)
        copy = signed_structure(final.tbs_certificate_bytes, bytes(signature_length(issuer)))
        assert len(copy) == len(issued.der) and copy != issued.der
        assert lint.lint_certificate(copy).findings == lint.lint_certificate(issued.der).findings
    faulty = x509.load_der_x509_certificate(_self_signed(holder_keys[2], ca_without_key_usage=True))
    builder = (
        x509.CertificateBuilder()
        .subject_name(faulty.subject)
        .issuer_name(faulty.issuer)
        .public_key(faulty.public_key())
        .serial_number(faulty.serial_number)
        .not_valid_before(faulty.not_valid_before_utc)
        .not_valid_after(faulty.not_valid_after_utc)
    )
    for extension in faulty.extensions:
        builder = builder.add_extension(extension.value, extension.critical)
    prepared = prepare_certificate(builder)
    assert prepared.tbs == faulty.tbs_certificate_bytes  # the throwaway key's size changes no TBS byte
    copy_findings = lint.lint_certificate(prepared.lint_copy).findings
    assert copy_findings == lint.lint_certificate(faulty.public_bytes(Encoding.DER)).findings
    assert "pkix.ca_certificate_no_ku_extension" in {f.code for f in copy_findings}
