"""Renewing or replacing an authority's delegated OCSP signer (`ca setup`): the precomputed responses made under the
old certificate are re-signed at once, the responder switches to the new one by itself, and nothing signed by the old
signer is served after the refresh — checked through our responder and with `openssl ocsp`, on SQLite and
PostgreSQL."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding
from cryptography.x509 import ocsp
from sqlalchemy import select, update
from status_helpers import StatusEnv, run_openssl

from jpki_remote.ca.authority import IssuedCertificate
from jpki_remote.ca.lint import lint_ocsp_response
from jpki_remote.ca.models import Authority, AuthorityKind, OcspResponse
from jpki_remote.ca.setup import setup_authorities
from jpki_remote.ca.status import precompute
from jpki_remote.ca.status.responder import OcspResponder
from jpki_remote.ca.status.signing import OcspSigner

AUTH = AuthorityKind.AUTHENTICATION
SIGN = AuthorityKind.SIGNATURE
SHA1 = hashes.SHA1()  # noqa: S303 - OCSP CertIDs still use SHA-1 (RFC 6960); we must answer them
SHA256 = hashes.SHA256()


def _signer_certificate(env: StatusEnv, kind: AuthorityKind) -> x509.Certificate:
    with env.service.db.session() as session:
        row = session.get(Authority, kind)
        assert row is not None
        return x509.load_der_x509_certificate(row.ocsp_certificate_der)


def _rows(env: StatusEnv) -> list[OcspResponse]:
    with env.service.db.session() as session:
        return list(session.execute(select(OcspResponse)).scalars())


def _fingerprint(certificate: x509.Certificate) -> str:
    return certificate.fingerprint(hashes.SHA256()).hex()


def _assert_signed_by(der: bytes, signer: x509.Certificate) -> ocsp.OCSPResponse:
    """``der`` embeds ``signer``, its signature verifies with ``signer``'s key, and pkilint finds no error."""
    response = ocsp.load_der_ocsp_response(der)
    assert response.response_status is ocsp.OCSPResponseStatus.SUCCESSFUL
    assert response.certificates == [signer]
    signer.public_key().verify(  # type: ignore[union-attr, call-arg]
        response.signature, response.tbs_response_bytes, padding.PKCS1v15(), hashes.SHA256()
    )
    assert not lint_ocsp_response(der).errors
    return response


def _request(env: StatusEnv, issued: IssuedCertificate, kind: AuthorityKind, algorithm: hashes.HashAlgorithm) -> bytes:
    builder = ocsp.OCSPRequestBuilder().add_certificate(
        x509.load_der_x509_certificate(issued.der), env.ca.authority_certificate(kind), algorithm
    )
    return builder.build().public_bytes(serialization.Encoding.DER)


def _openssl(env: StatusEnv, url: str, issued: IssuedCertificate, kind: AuthorityKind, *extra: str | Path):
    out = env.directory / f"r-{issued.serial:x}.der"
    result = run_openssl(
        "ocsp", *extra, "-issuer", env.ca_pem(kind), "-cert", env.pem(issued), "-url", f"{url}/ocsp/{kind.value}",
        "-CAfile", env.ca_pem(kind), "-respout", out,
    )  # fmt: skip
    return result, out


@pytest.fixture
def population(status_env: StatusEnv) -> Iterator[list[tuple[AuthorityKind, IssuedCertificate]]]:
    """Certificates of both authorities, one of them revoked, whose responses were precomputed by the old signer."""
    issued = [(AUTH, status_env.issue()), (AUTH, status_env.issue()), (SIGN, status_env.issue(SIGN))]
    status_env.ca.revoke(AUTH, issued[1][1].serial, "keyCompromise")
    yield issued


def test_renewal_then_background_refresh_serves_only_the_new_signer(
    status_env: StatusEnv, status_server: str, population: list[tuple[AuthorityKind, IssuedCertificate]]
) -> None:
    old = {kind: _signer_certificate(status_env, kind) for kind in AuthorityKind}
    rows = _rows(status_env)
    assert len(rows) == 2 * len(population)
    assert {row.signer_sha256 for row in rows} == {_fingerprint(c) for c in old.values()}
    for kind, issued in population:  # the server holds the old answers in memory now
        result, _ = _openssl(status_env, status_server, issued, kind, "-no_nonce")
        assert "Response verify OK" in result.stderr, result.stderr

    # `ca setup` in another process renews both signers and leaves the re-signing to the background refresher
    renewed = setup_authorities(
        status_env.service.db, status_env.service.keys, status_env.settings, renew_ocsp=True, refresh_ocsp=False
    )
    assert all(r.ocsp_renewed and r.ocsp_refreshed == 0 for r in renewed)
    new = {kind: _signer_certificate(status_env, kind) for kind in AuthorityKind}
    for kind in AuthorityKind:
        assert new[kind] != old[kind]
        assert new[kind].public_key() == old[kind].public_key()  # renewed: same key, new certificate
    due = precompute._due_serials(  # every old-signer row is due although none is near its nextUpdate
        status_env.service.db, AUTH, precompute.utcnow(), 100, _fingerprint(new[AUTH])
    )
    assert sorted(due) == sorted(i.serial for k, i in population if k == AUTH)

    _, refreshed = status_env.service.run_background_once()
    assert refreshed == len(population)
    rows = _rows(status_env)
    assert len(rows) == 2 * len(population)
    for row in rows:
        assert row.signer_sha256 == _fingerprint(new[row.authority])
        _assert_signed_by(row.der, new[row.authority])

    pems = {kind: status_env.write(f"ocsp-{kind.value}.pem", new[kind].public_bytes(serialization.Encoding.PEM))
            for kind in AuthorityKind}  # fmt: skip
    for kind, issued in population:
        for flag in ("-sha1", "-sha256"):  # precomputed path: the stored bytes come back
            result, out = _openssl(status_env, status_server, issued, kind, "-no_nonce", flag,
                                   "-no_intern", "-VAfile", pems[kind])  # fmt: skip
            assert result.returncode == 0, result.stderr
            assert "Response verify OK" in result.stderr, result.stderr
            response = _assert_signed_by(out.read_bytes(), new[kind])
            assert response.serial_number == issued.serial
        result, out = _openssl(status_env, status_server, issued, kind, "-no_intern", "-VAfile", pems[kind])
        assert "Response verify OK" in result.stderr and "WARNING" not in result.stderr  # live (nonce) path
        _assert_signed_by(out.read_bytes(), new[kind])
    revoked = population[1][1]
    result, _ = _openssl(status_env, status_server, revoked, AUTH, "-no_nonce")
    assert f"ee-{revoked.serial:x}.pem: revoked" in result.stdout and "Reason: keyCompromise" in result.stdout
    for kind, issued in population:  # and through the responder itself, both CertID hashes
        for algorithm in (SHA1, SHA256):
            answer = status_env.service.responder.answer(_request(status_env, issued, kind, algorithm))
            _assert_signed_by(answer.body, new[kind])


def test_setup_re_signs_at_once_and_a_responder_that_missed_it_follows_the_rows(
    status_env: StatusEnv, population: list[tuple[AuthorityKind, IssuedCertificate]], monkeypatch: pytest.MonkeyPatch
) -> None:
    db, keys, settings = status_env.service.db, status_env.service.keys, status_env.settings
    # a responder of another server process: no memory cache, and it would not look at the signers for an hour
    responder = OcspResponder(db, keys, settings, cache_ttl=0, signer_check_seconds=3600)
    kind, issued = population[0]
    request = _request(status_env, issued, kind, SHA256)
    before = responder.answer(request).body
    _assert_signed_by(before, _signer_certificate(status_env, kind))

    renewed = setup_authorities(db, keys, settings, renew_ocsp=True)  # `ca setup --renew-ocsp`: refreshes itself
    counts = {r.kind: r.ocsp_refreshed for r in renewed}
    assert counts == {AUTH: 2, SIGN: 1}
    new = _signer_certificate(status_env, kind)
    assert {row.signer_sha256 for row in _rows(status_env) if row.authority == kind} == {_fingerprint(new)}

    signatures: list[bytes] = []
    original = OcspSigner.sign
    monkeypatch.setattr(OcspSigner, "sign", lambda self, *a, **k: signatures.append(b"") or original(self, *a, **k))
    after = responder.answer(request).body
    _assert_signed_by(after, new)
    stored = {row.hash_algorithm: row.der for row in _rows(status_env) if row.serial_hex == format(issued.serial, "x")}
    assert after == stored["sha256"]  # the re-signed precomputed response, served as stored
    assert signatures == []  # serving still costs no signature
    # reading a row by an unknown signer made it adopt the new one at once: its live answers use it too
    nonce = ocsp.OCSPRequestBuilder().add_certificate(
        x509.load_der_x509_certificate(issued.der), status_env.ca.authority_certificate(kind), SHA256
    ).add_extension(x509.OCSPNonce(secrets.token_bytes(16)), critical=False)
    _assert_signed_by(responder.answer(nonce.build().public_bytes(serialization.Encoding.DER)).body, new)
    assert len(signatures) == 1


def test_between_renewal_and_refresh_an_old_signer_row_is_re_signed_on_demand_once(
    status_env: StatusEnv, population: list[tuple[AuthorityKind, IssuedCertificate]], monkeypatch: pytest.MonkeyPatch
) -> None:
    db, keys, settings = status_env.service.db, status_env.service.keys, status_env.settings
    responder = OcspResponder(db, keys, settings, cache_ttl=0, signer_check_seconds=0)
    setup_authorities(db, keys, settings, renew_ocsp=True, refresh_ocsp=False)
    new = _signer_certificate(status_env, AUTH)
    kind, issued = population[1]  # the revoked one
    serial_hex = format(issued.serial, "x")
    signatures: list[bytes] = []
    original = OcspSigner.sign
    monkeypatch.setattr(OcspSigner, "sign", lambda self, *a, **k: signatures.append(b"") or original(self, *a, **k))

    first = responder.answer(_request(status_env, issued, kind, SHA1)).body
    response = _assert_signed_by(first, new)
    assert response.certificate_status is ocsp.OCSPCertStatus.REVOKED
    assert len(signatures) == 1  # signed on demand with the new signer...
    rows = {r.hash_algorithm: r for r in _rows(status_env) if r.serial_hex == serial_hex}
    assert rows["sha1"].der == first and rows["sha1"].signer_sha256 == _fingerprint(new)  # ...and stored back
    assert rows["sha256"].signer_sha256 != _fingerprint(new)  # the other hash is still due
    assert responder.answer(_request(status_env, issued, kind, SHA1)).body == first
    assert len(signatures) == 1  # the second request is served from the table again


def test_replaced_signer_key_and_rows_from_before_the_signer_column(
    status_env: StatusEnv, status_server: str, population: list[tuple[AuthorityKind, IssuedCertificate]]
) -> None:
    db, keys, settings = status_env.service.db, status_env.service.keys, status_env.settings
    with db.session() as session:  # as after the 0002 migration: the signer of existing rows is not known
        session.execute(update(OcspResponse).where(OcspResponse.authority == SIGN).values(signer_sha256=""))
    assert precompute.refresh_due(db, keys, settings) == 1  # due at once, though far from stale
    sign_signer = _fingerprint(_signer_certificate(status_env, SIGN))
    assert {row.signer_sha256 for row in _rows(status_env) if row.authority == SIGN} == {sign_signer}

    old = _signer_certificate(status_env, AUTH)
    with db.session() as session:
        old_label = session.get(Authority, AUTH).ocsp_key_label  # type: ignore[union-attr]
    results = setup_authorities(db, keys, settings, new_ocsp_key=True)  # `ca setup --new-ocsp-key`
    new = _signer_certificate(status_env, AUTH)
    with db.session() as session:
        assert session.get(Authority, AUTH).ocsp_key_label != old_label  # type: ignore[union-attr]
    assert new.public_key() != old.public_key()
    assert {r.kind: r.ocsp_refreshed for r in results} == {AUTH: 2, SIGN: 1}
    assert precompute.refresh_due(db, keys, settings) == 0
    assert all(row.signer_sha256 == _fingerprint(_signer_certificate(status_env, row.authority))
               for row in _rows(status_env))  # fmt: skip

    status_env.service.run_background_once()  # the server's refresher pass: it adopts the new signer too
    new_pem = status_env.write("ocsp-new.pem", new.public_bytes(serialization.Encoding.PEM))
    for _, issued in (p for p in population if p[0] == AUTH):
        for extra in (("-no_nonce",), ()):  # precomputed and live (nonce) answers
            result, out = _openssl(status_env, status_server, issued, AUTH, *extra, "-no_intern", "-VAfile", new_pem)
            assert result.returncode == 0 and "Response verify OK" in result.stderr, result.stderr
            response = _assert_signed_by(out.read_bytes(), new)
            with pytest.raises(InvalidSignature):  # the replaced key signs nothing any more
                old.public_key().verify(  # type: ignore[union-attr, call-arg]
                    response.signature, response.tbs_response_bytes, padding.PKCS1v15(), hashes.SHA256()
                )
