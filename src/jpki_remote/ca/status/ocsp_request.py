"""Parse an RFC 6960 ``OCSPRequest`` (untrusted input) into the parts the responder needs.

Several certificates per request are supported (pyca/cryptography's loader accepts only one). Anything that is not
a well-formed request raises :class:`MalformedRequest`; the responder answers ``malformedRequest`` for it.
"""

from __future__ import annotations

from dataclasses import dataclass

from jpki_remote.ca.status.asn1 import (
    TAG_BOOLEAN,
    TAG_INTEGER,
    TAG_NULL,
    TAG_OCTET_STRING,
    TAG_OID,
    TAG_SEQUENCE,
    DerError,
    children,
    decode_integer,
    decode_oid,
    expect,
    read_tlv,
)

HASH_OIDS = {
    "1.3.14.3.2.26": "sha1",
    "2.16.840.1.101.3.4.2.1": "sha256",
    "2.16.840.1.101.3.4.2.2": "sha384",
    "2.16.840.1.101.3.4.2.3": "sha512",
}
HASH_SIZES = {"sha1": 20, "sha256": 32, "sha384": 48, "sha512": 64}
NONCE_OID = "1.3.6.1.5.5.7.48.1.2"
MAX_REQUESTS = 32  # RFC 9919 lets responders bound the work per request
MAX_NONCE_OCTETS = 32  # RFC 9654: responders reject longer nonces


class MalformedRequest(ValueError):
    """Not an OCSP request we can parse; the message says why (never echoed to the client)."""


@dataclass(frozen=True, slots=True)
class CertId:
    """One ``CertID`` as sent: ``raw`` is its exact DER, echoed verbatim in a live-signed response."""

    raw: bytes
    hash_algorithm: str | None  # sha1 / sha256 / sha384 / sha512, or None for an algorithm we do not know
    name_hash: bytes
    key_hash: bytes
    serial: int


@dataclass(frozen=True, slots=True)
class OcspRequest:
    cert_ids: tuple[CertId, ...]
    nonce_extension: bytes | None  # the whole Extension TLV, echoed verbatim in the response


def parse_ocsp_request(der: bytes) -> OcspRequest:
    try:
        return _parse(der)
    except DerError as exc:
        raise MalformedRequest(str(exc)) from exc
    except (IndexError, ValueError) as exc:
        raise MalformedRequest(f"undecodable request: {exc}") from exc


def _parse(der: bytes) -> OcspRequest:
    end = len(der)
    start, stop = expect(der, 0, end, TAG_SEQUENCE, "OCSPRequest")
    if stop != end:
        raise MalformedRequest("trailing bytes after OCSPRequest")
    parts = children(der, start, stop)
    if not parts or parts[0][0] != TAG_SEQUENCE:
        raise MalformedRequest("OCSPRequest has no TBSRequest")
    if len(parts) > 2 or (len(parts) == 2 and parts[1][0] != 0xA0):
        raise MalformedRequest("unexpected fields after TBSRequest")
    _, _, tbs_start, tbs_end = parts[0]
    fields = children(der, tbs_start, tbs_end)
    index = 0
    if index < len(fields) and fields[index][0] == 0xA0:  # version [0] EXPLICIT, must be v1 (0)
        _, _, vstart, vend = fields[index]
        istart, istop = expect(der, vstart, vend, TAG_INTEGER, "version")
        if istop != vend or decode_integer(der[istart:istop]) != 0:
            raise MalformedRequest("unsupported OCSP request version")
        index += 1
    if index < len(fields) and fields[index][0] == 0xA1:  # requestorName, ignored
        index += 1
    if index >= len(fields) or fields[index][0] != TAG_SEQUENCE:
        raise MalformedRequest("missing requestList")
    _, _, list_start, list_end = fields[index]
    index += 1
    nonce = None
    if index < len(fields) and fields[index][0] == 0xA2:
        _, _, estart, eend = fields[index]
        nonce = _request_extensions(der, estart, eend)
        index += 1
    if index != len(fields):
        raise MalformedRequest("unexpected fields in TBSRequest")
    requests = children(der, list_start, list_end)
    if not requests:
        raise MalformedRequest("empty requestList")
    if len(requests) > MAX_REQUESTS:
        raise MalformedRequest(f"more than {MAX_REQUESTS} certificates in one request")
    cert_ids = []
    for tag, _, rstart, rend in requests:
        if tag != TAG_SEQUENCE:
            raise MalformedRequest("Request is not a SEQUENCE")
        inner = children(der, rstart, rend)
        if not inner or inner[0][0] != TAG_SEQUENCE:
            raise MalformedRequest("Request has no CertID")
        for extra in inner[1:]:
            if extra[0] != 0xA0 or len(inner) > 2:
                raise MalformedRequest("unexpected fields in Request")
            _check_extensions(der, extra[2], extra[3], allowed=())
        _, cert_start, cstart, cend = inner[0]
        cert_ids.append(_cert_id(der, cert_start, cstart, cend))
    return OcspRequest(tuple(cert_ids), nonce)


def _cert_id(der: bytes, tlv_start: int, start: int, end: int) -> CertId:
    fields = children(der, start, end)
    if len(fields) != 4 or [f[0] for f in fields] != [TAG_SEQUENCE, TAG_OCTET_STRING, TAG_OCTET_STRING, TAG_INTEGER]:
        raise MalformedRequest("CertID is not SEQUENCE { AlgorithmIdentifier, OCTET STRING, OCTET STRING, INTEGER }")
    alg = children(der, fields[0][2], fields[0][3])
    if not alg or alg[0][0] != TAG_OID or len(alg) > 2 or (len(alg) == 2 and alg[1][0] != TAG_NULL):
        raise MalformedRequest("bad hashAlgorithm")
    if len(alg) == 2 and alg[1][3] != alg[1][2]:
        raise MalformedRequest("hashAlgorithm parameters must be NULL or absent")
    algorithm = HASH_OIDS.get(decode_oid(der[alg[0][2] : alg[0][3]]))
    name_hash = der[fields[1][2] : fields[1][3]]
    key_hash = der[fields[2][2] : fields[2][3]]
    if algorithm is not None and not len(name_hash) == len(key_hash) == HASH_SIZES[algorithm]:
        raise MalformedRequest("issuer hashes do not have the size of their algorithm")
    serial = decode_integer(der[fields[3][2] : fields[3][3]])
    return CertId(der[tlv_start:end], algorithm, name_hash, key_hash, serial)


def _request_extensions(der: bytes, start: int, end: int) -> bytes | None:
    return _check_extensions(der, start, end, allowed=(NONCE_OID,))


def _check_extensions(der: bytes, start: int, end: int, allowed: tuple[str, ...]) -> bytes | None:
    """Validate ``[n] EXPLICIT Extensions``; return the nonce Extension TLV if present. Unknown critical → error."""
    seq_start, seq_end = expect(der, start, end, TAG_SEQUENCE, "Extensions")
    if seq_end != end:
        raise MalformedRequest("trailing bytes after Extensions")
    nonce = None
    seen: set[str] = set()
    for tag, ext_tlv_start, estart, eend in children(der, seq_start, seq_end):
        if tag != TAG_SEQUENCE:
            raise MalformedRequest("Extension is not a SEQUENCE")
        parts = children(der, estart, eend)
        if len(parts) not in (2, 3) or parts[0][0] != TAG_OID or parts[-1][0] != TAG_OCTET_STRING:
            raise MalformedRequest("bad Extension")
        critical = False
        if len(parts) == 3:
            if parts[1][0] != TAG_BOOLEAN or parts[1][3] - parts[1][2] != 1:
                raise MalformedRequest("bad Extension critical flag")
            critical = der[parts[1][2]] != 0
        ext_oid = decode_oid(der[parts[0][2] : parts[0][3]])
        if ext_oid in seen:
            raise MalformedRequest(f"extension {ext_oid} repeated")
        seen.add(ext_oid)
        if ext_oid == NONCE_OID and NONCE_OID in allowed:
            value = der[parts[-1][2] : parts[-1][3]]
            tag_n, nstart, nend = read_tlv(value, 0, len(value))
            if tag_n != TAG_OCTET_STRING or nend != len(value) or not 1 <= nend - nstart <= MAX_NONCE_OCTETS:
                raise MalformedRequest(f"nonce must be an OCTET STRING of 1..{MAX_NONCE_OCTETS} octets")
            nonce = der[ext_tlv_start:eend]
        elif critical:
            raise MalformedRequest(f"unsupported critical extension {ext_oid}")
    return nonce
