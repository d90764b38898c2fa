"""`openssl ocsp` (a client we did not write) against our fast responder, on SQLite and PostgreSQL."""

from __future__ import annotations

from cryptography.x509 import ocsp
from status_helpers import StatusEnv, run_openssl

from jpki_remote.ca.lint import lint_ocsp_response
from jpki_remote.ca.models import AuthorityKind

AUTH = AuthorityKind.AUTHENTICATION


def _ask(env: StatusEnv, url: str, *certs: str, extra: tuple[str, ...] = (), kind: AuthorityKind = AUTH):
    args = ["ocsp", "-issuer", env.ca_pem(kind), *extra]
    for cert in certs:
        args += ["-cert", cert]
    args += ["-url", f"{url}/ocsp/{kind.value}", "-CAfile", env.ca_pem(kind), "-respout", env.directory / "r.der"]
    return run_openssl(*args)


def test_good_revoked_with_reason_and_several_in_one_request(status_env: StatusEnv, status_server: str) -> None:
    good = status_env.issue()
    revoked = status_env.issue()
    status_env.ca.revoke(AUTH, revoked.serial, "keyCompromise")  # the hook re-signs its OCSP responses

    result = _ask(status_env, status_server, status_env.pem(good), status_env.pem(revoked))

    assert result.returncode == 0, result.stderr
    assert "Response verify OK" in result.stderr
    assert "WARNING" not in result.stderr  # the nonce OpenSSL sent by default came back
    lines = result.stdout.splitlines()
    assert any(line.endswith(f"ee-{good.serial:x}.pem: good") for line in lines)
    assert any(line.endswith(f"ee-{revoked.serial:x}.pem: revoked") for line in lines)
    assert "Reason: keyCompromise" in result.stdout
    response = ocsp.load_der_ocsp_response((status_env.directory / "r.der").read_bytes())
    assert len(list(response.responses)) == 2


def test_precomputed_single_request_sha1_and_sha256_echo(status_env: StatusEnv, status_server: str) -> None:
    issued = status_env.issue(AuthorityKind.SIGNATURE)
    pem = status_env.pem(issued)
    for flag, name in (("-sha1", "sha1"), ("-sha256", "sha256")):
        result = _ask(status_env, status_server, pem, extra=("-no_nonce", flag), kind=AuthorityKind.SIGNATURE)
        assert result.returncode == 0, result.stderr
        assert "Response verify OK" in result.stderr
        assert f"{pem}: good" in result.stdout
        der = (status_env.directory / "r.der").read_bytes()
        response = ocsp.load_der_ocsp_response(der)
        assert response.hash_algorithm.name == name
        assert response.serial_number == issued.serial
        assert response.responder_key_hash is not None  # ResponderID byKey
        assert response.certificates  # the delegated responder certificate is included
        assert not lint_ocsp_response(der).errors
    # answered from the precomputed table: the stored bytes are what came back
    assert status_env.service.responder.cache.hits + status_env.service.responder.cache.misses >= 1


def test_unknown_serial(status_env: StatusEnv, status_server: str) -> None:
    result = run_openssl(
        "ocsp",
        "-issuer",
        status_env.ca_pem(),
        "-serial",
        "0x5eed5eed5eed5eed",
        "-url",
        f"{status_server}/ocsp/authentication",
        "-CAfile",
        status_env.ca_pem(),
        "-respout",
        status_env.directory / "u.der",
    )
    assert result.returncode == 0, result.stderr
    assert "Response verify OK" in result.stderr
    assert ": unknown" in result.stdout
    assert not lint_ocsp_response((status_env.directory / "u.der").read_bytes()).errors


def test_revocation_shows_at_once_for_a_cached_response(status_env: StatusEnv, status_server: str) -> None:
    issued = status_env.issue()
    pem = status_env.pem(issued)
    first = _ask(status_env, status_server, pem, extra=("-no_nonce",))
    assert f"{pem}: good" in first.stdout
    status_env.ca.revoke(AUTH, issued.serial, "superseded")
    second = _ask(status_env, status_server, pem, extra=("-no_nonce",))
    assert f"{pem}: revoked" in second.stdout, second.stdout
    assert "Reason: superseded" in second.stdout
