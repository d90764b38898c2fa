"""The OCSP request parser on good and hostile input (no database)."""

from __future__ import annotations

import contextlib

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509 import ocsp
from hypothesis import given, settings
from hypothesis import strategies as st

from jpki_remote.ca.der import integer, sequence
from jpki_remote.ca.status.asn1 import explicit, extension, octet_string, oid
from jpki_remote.ca.status.ocsp_request import MalformedRequest, parse_ocsp_request
from jpki_remote.ca.status.ocsp_response import HASH_ALGORITHM_IDS

NONCE = "1.3.6.1.5.5.7.48.1.2"


def _cert_id(serial: int, algorithm: str = "sha256", size: int = 32) -> bytes:
    return sequence(
        HASH_ALGORITHM_IDS[algorithm], octet_string(b"n" * size), octet_string(b"k" * size), integer(serial)
    )


def _request(*cert_ids: bytes, extensions: bytes | None = None) -> bytes:
    tbs = [sequence(*(sequence(c) for c in cert_ids))]
    if extensions is not None:
        tbs.append(explicit(2, sequence(extensions)))
    return sequence(sequence(*tbs))


def test_several_certificates_and_nonce() -> None:
    nonce = extension(oid(NONCE), octet_string(b"0123456789abcdef"))
    parsed = parse_ocsp_request(_request(_cert_id(5), _cert_id(0x80, "sha1", 20), extensions=nonce))
    assert [c.serial for c in parsed.cert_ids] == [5, 0x80]
    assert [c.hash_algorithm for c in parsed.cert_ids] == ["sha256", "sha1"]
    assert parsed.nonce_extension == nonce
    assert parsed.cert_ids[0].raw == _cert_id(5)


def test_matches_pyca_requests() -> None:
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "t")])
    import datetime

    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(123456789).not_valid_before(now).not_valid_after(now + datetime.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )  # fmt: skip
    der = (
        ocsp.OCSPRequestBuilder()
        .add_certificate(cert, cert, hashes.SHA256())
        .build()
        .public_bytes(serialization.Encoding.DER)
    )
    reference = ocsp.load_der_ocsp_request(der)
    parsed = parse_ocsp_request(der).cert_ids[0]
    assert parsed.serial == reference.serial_number
    assert parsed.name_hash == reference.issuer_name_hash
    assert parsed.key_hash == reference.issuer_key_hash


@pytest.mark.parametrize(
    "der",
    [
        b"",
        b"\x30",
        b"\x30\x80\x00\x00",  # indefinite length
        b"\x30\x00",  # no TBSRequest
        _request(_cert_id(1)) + b"\x00",  # trailing bytes
        sequence(sequence(sequence())),  # empty requestList
        _request(_cert_id(1, "sha256", 20)),  # hash size does not fit the algorithm
        _request(*[_cert_id(i) for i in range(1, 40)]),  # too many certificates
        _request(_cert_id(1), extensions=extension(oid(NONCE), octet_string(b"x" * 64))),  # nonce too long
        _request(_cert_id(1), extensions=extension(oid("1.2.3.4"), b"\x05\x00", critical=True)),  # unknown critical
        _request(sequence(HASH_ALGORITHM_IDS["sha1"], octet_string(b"n" * 20))),  # short CertID
    ],
)
def test_malformed(der: bytes) -> None:
    with pytest.raises(MalformedRequest):
        parse_ocsp_request(der)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_fuzz_never_raises_anything_but_malformed(data: bytes) -> None:
    with contextlib.suppress(MalformedRequest):
        parse_ocsp_request(data)


@settings(max_examples=200, deadline=None)
@given(st.integers(min_value=0, max_value=len(_request(_cert_id(7))) - 1), st.integers(min_value=0, max_value=255))
def test_fuzz_single_byte_mutations(position: int, value: int) -> None:
    data = bytearray(_request(_cert_id(7)))
    data[position] = value
    with contextlib.suppress(MalformedRequest):
        parse_ocsp_request(bytes(data))
