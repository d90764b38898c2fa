"""HTTP behaviour of the fast server and of the FastAPI router: GET and POST, malformed and foreign requests,
caching headers, keep-alive pipelining, overload."""

from __future__ import annotations

import base64
import socket
import time
from pathlib import Path
from urllib.parse import quote

import httpx
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509 import ocsp
from fastapi.testclient import TestClient
from status_helpers import StatusEnv

from jpki_remote.ca.lint import lint_ocsp_response
from jpki_remote.ca.models import AuthorityKind
from jpki_remote.ca.status import sandbox
from jpki_remote.ca.status.http import create_status_app
from jpki_remote.ca.status.server import ServerThread
from jpki_remote.store import Database

AUTH = AuthorityKind.AUTHENTICATION
MALFORMED = bytes.fromhex("30030a0101")
UNAUTHORIZED = bytes.fromhex("30030a0106")
TRY_LATER = bytes.fromhex("30030a0103")
SHA256 = hashes.SHA256()
SHA1 = hashes.SHA1()  # noqa: S303 - OCSP CertIDs still use SHA-1 (RFC 6960); we must answer them


def _request(env: StatusEnv, issued_der: bytes, algorithm: hashes.HashAlgorithm = SHA256) -> bytes:
    certificate = x509.load_der_x509_certificate(issued_der)
    builder = ocsp.OCSPRequestBuilder().add_certificate(certificate, env.ca.authority_certificate(AUTH), algorithm)
    return builder.build().public_bytes(serialization.Encoding.DER)


def _get_path(der: bytes) -> str:
    return "/ocsp/authentication/" + quote(base64.b64encode(der).decode(), safe="")


def test_get_and_post_give_the_same_precomputed_answer_with_caching_headers(
    status_env: StatusEnv, status_server: str
) -> None:
    issued = status_env.issue()
    der = _request(status_env, issued.der)
    with httpx.Client(base_url=status_server) as client:
        post = client.post("/ocsp/authentication", content=der, headers={"Content-Type": "application/ocsp-request"})
        get = client.get(_get_path(der))
        urlsafe = client.get("/ocsp/authentication/" + base64.urlsafe_b64encode(der).decode().rstrip("="))
    for response in (post, get, urlsafe):
        assert response.status_code == 200
        assert response.headers["content-type"] == "application/ocsp-response"
        parsed = ocsp.load_der_ocsp_response(response.content)
        assert parsed.certificate_status is ocsp.OCSPCertStatus.GOOD
    assert post.content == get.content == urlsafe.content  # one stored, precomputed response
    assert not lint_ocsp_response(get.content).errors
    max_age = int(get.headers["cache-control"].split("max-age=")[1].split(",")[0])
    assert 0 < max_age <= status_env.settings.ocsp_response_validity_hours * 3600
    assert "public" in get.headers["cache-control"]
    assert get.headers["etag"] and get.headers["last-modified"] and get.headers["expires"]
    with httpx.Client(base_url=status_server) as client:
        again = client.get(_get_path(der), headers={"If-None-Match": get.headers["etag"]})
    assert again.status_code == 304 and again.content == b""


def test_malformed_and_foreign_requests(status_env: StatusEnv, status_server: str, tmp_path: Path) -> None:
    keys = sandbox.MemoryKeyStore()
    elsewhere = Database(f"sqlite:///{tmp_path / 'foreign.db'}")
    elsewhere.create_schema()
    foreign_ca = sandbox.create_authority(elsewhere, keys, AuthorityKind.SIGNATURE)
    foreign = sandbox.issue_certificate(elsewhere, keys, status_env.settings, foreign_ca)
    elsewhere.dispose()
    foreign_request = (
        ocsp.OCSPRequestBuilder()
        .add_certificate(foreign, foreign_ca.certificate, SHA1)
        .build()
        .public_bytes(serialization.Encoding.DER)
    )
    valid = _request(status_env, status_env.issue().der)
    with httpx.Client(base_url=status_server) as client:
        garbage = client.post("/ocsp/authentication", content=b"\x30\x03garbage")
        truncated = client.post("/ocsp/authentication", content=valid[:-3])
        empty = client.post("/ocsp/authentication", content=b"")
        bad_base64 = client.get("/ocsp/authentication/%%%not-base64!!")
        foreign_answer = client.post("/ocsp/authentication", content=foreign_request)
        too_big = client.post("/ocsp/authentication", content=b"\x30" * 20000)
        no_route = client.get("/nothing-here")
        wrong_method = client.delete("/ocsp/authentication")
    for response in (garbage, truncated, empty, bad_base64):
        assert response.status_code == 200 and response.content == MALFORMED
        assert (
            ocsp.load_der_ocsp_response(response.content).response_status is ocsp.OCSPResponseStatus.MALFORMED_REQUEST
        )
    assert foreign_answer.content == UNAUTHORIZED
    assert too_big.status_code == 413
    assert no_route.status_code == 404
    assert wrong_method.status_code == 405


def test_keep_alive_pipelining_and_overload(status_env: StatusEnv) -> None:
    issued = status_env.issue()
    der = _request(status_env, issued.der)
    server = ServerThread(status_env.service, max_inflight=0).start()  # every live signature is refused
    try:
        status_env.service.responder.cache.clear()
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
            one = f"POST /ocsp/authentication HTTP/1.1\r\nHost: x\r\nContent-Length: {len(der)}\r\n\r\n".encode() + der
            sock.sendall(one + one)  # two pipelined requests in one segment
            data = b""
            deadline = time.monotonic() + 10
            while data.count(b"HTTP/1.1 200") < 2 and time.monotonic() < deadline:
                data += sock.recv(65536)
        assert data.count(b"HTTP/1.1 200 OK") == 2
        # cold cache + no capacity for the database path: tryLater, never a hang
        assert TRY_LATER in data
        # nonce requests need a live signature: refused the same way
        with_nonce = (
            ocsp.OCSPRequestBuilder()
            .add_certificate(issued.certificate, status_env.ca.authority_certificate(AUTH), SHA1)
            .add_extension(x509.OCSPNonce(b"0123456789abcdef"), critical=False)
            .build()
            .public_bytes(serialization.Encoding.DER)
        )
        answer = httpx.post(f"http://127.0.0.1:{server.port}/ocsp/authentication", content=with_nonce)
        assert answer.content == TRY_LATER
    finally:
        server.stop()


def test_fastapi_router_serves_ocsp_and_crl_with_headers(status_env: StatusEnv) -> None:
    revoked = status_env.issue(shard=1)
    status_env.ca.revoke(AUTH, revoked.serial, "keyCompromise")
    status_env.service.publish_crls()
    client = TestClient(create_status_app(status_env.service))
    der = _request(status_env, revoked.der, SHA1)
    post = client.post("/ocsp/authentication", content=der)
    get = client.get(_get_path(der))
    for response in (post, get):
        parsed = ocsp.load_der_ocsp_response(response.content)
        assert parsed.certificate_status is ocsp.OCSPCertStatus.REVOKED
        assert parsed.revocation_reason is x509.ReasonFlags.key_compromise
        assert parsed.hash_algorithm.name == "sha1"
    assert client.post("/ocsp/authentication", content=b"junk").content == MALFORMED

    crl = client.get("/crl/authentication/1.crl")
    assert crl.status_code == 200
    assert crl.headers["content-type"] == "application/pkix-crl"
    parsed_crl = x509.load_der_x509_crl(crl.content)
    assert parsed_crl.get_revoked_certificate_by_serial_number(revoked.serial) is not None
    max_age = int(crl.headers["cache-control"].split("max-age=")[1].split(",")[0])
    expected = (parsed_crl.next_update_utc - parsed_crl.last_update_utc).total_seconds()
    assert expected - 120 < max_age <= expected
    assert crl.headers["last-modified"] and crl.headers["etag"]
    assert client.get("/crl/authentication/1.crl", headers={"If-None-Match": crl.headers["etag"]}).status_code == 304
    modified = client.get("/crl/authentication/1.crl", headers={"If-Modified-Since": crl.headers["last-modified"]})
    assert modified.status_code == 304
    head = client.head("/crl/authentication/1.crl")
    assert head.status_code == 200 and head.content == b""
    assert client.get("/crl/authentication/99.crl").status_code == 404
    assert client.get("/crl/nobody/1.crl").status_code == 404


def test_fast_server_crl_matches_stored_and_changes_etag(status_env: StatusEnv, status_server: str) -> None:
    status_env.service.publish_crls()
    with httpx.Client(base_url=status_server) as client:
        first = client.get("/crl/signature/0.crl")
        assert first.status_code == 200 and first.headers["content-type"] == "application/pkix-crl"
        status_env.service.publish_crls(force=True)
        time.sleep(0.6)  # the cache re-checks the CRL number after its TTL
        second = client.get("/crl/signature/0.crl")
    assert second.headers["etag"] != first.headers["etag"]
    number = x509.load_der_x509_crl(second.content).extensions.get_extension_for_class(x509.CRLNumber).value
    assert number.crl_number == 2
