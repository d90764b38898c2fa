"""HTTP semantics shared by the fast asyncio server and the ASGI router: paths, GET decoding, caching headers.

Paths (they match :mod:`jpki_remote.ca.distribution`): ``POST /ocsp/{kind}``, ``GET /ocsp/{kind}/{base64 request}``
(RFC 6960 Appendix A / RFC 9919: base64, then URL-encoded; the URL-safe alphabet is accepted too) and
``GET /crl/{kind}/{shard}.crl``.
"""

from __future__ import annotations

import base64
import binascii
import time
from dataclasses import dataclass, field
from email.utils import formatdate
from typing import TYPE_CHECKING
from urllib.parse import unquote

from jpki_remote.ca.models import AuthorityKind
from jpki_remote.ca.status.responder import MALFORMED, OcspAnswer

if TYPE_CHECKING:
    from jpki_remote.ca.status.service import StatusService

OCSP_REQUEST_TYPE = "application/ocsp-request"
OCSP_RESPONSE_TYPE = "application/ocsp-response"
CRL_TYPE = "application/pkix-crl"
MAX_OCSP_REQUEST = 16 * 1024
KINDS = {kind.value: kind for kind in AuthorityKind}


@dataclass(frozen=True, slots=True)
class Route:
    target: str  # "ocsp" | "crl" | "health"
    kind: AuthorityKind | None = None
    shard: int = -1
    encoded_request: str = ""  # GET /ocsp/{kind}/{this}


@dataclass(slots=True)
class HttpResult:
    status: int
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""


def match(path: str) -> Route | None:
    """Route a request path (without query string); None means 404."""
    if path == "/healthz":
        return Route("health")
    if path.startswith("/ocsp"):
        rest = path[5:]
        if rest in ("", "/"):
            return Route("ocsp")  # CertID decides the authority
        head, _, tail = rest[1:].partition("/")
        kind = KINDS.get(head)
        if kind is None:
            return Route("ocsp", encoded_request=rest[1:]) if rest.startswith("/") else None
        return Route("ocsp", kind, encoded_request=tail)
    if path.startswith("/crl/"):
        head, _, name = path[5:].partition("/")
        kind = KINDS.get(head)
        if kind is None or not name.endswith(".crl"):
            return None
        number = name[:-4]
        if not number.isdigit() or len(number) > 6:
            return None
        return Route("crl", kind, int(number))
    return None


def decode_get_request(encoded: str) -> bytes | None:
    """The DER of a GET request path segment, or None if it is not base64 (percent-decoding applied first)."""
    text = unquote(encoded).strip()
    if not text or len(text) > MAX_OCSP_REQUEST * 2:
        return None
    text = text.replace("-", "+").replace("_", "/").replace(" ", "+")  # URL-safe alphabet; '+' mangled to space
    text += "=" * (-len(text) % 4)
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return None


_date_cache: tuple[int, str] = (0, "")


def http_date(moment: float | None = None) -> str:
    global _date_cache
    if moment is not None:
        return formatdate(moment, usegmt=True)
    now = int(time.time())
    if _date_cache[0] != now:
        _date_cache = (now, formatdate(now, usegmt=True))
    return _date_cache[1]


def ocsp_result(answer: OcspAnswer, *, get: bool, if_none_match: str | None = None) -> HttpResult:
    """HTTP 200 with the OCSP response; cacheable answers get RFC 9919 §6 caching headers."""
    headers = [("Content-Type", OCSP_RESPONSE_TYPE)]
    if answer.next_update is None:
        headers.append(("Cache-Control", "no-store"))
        return HttpResult(200, headers, answer.body)
    now = time.time()
    max_age = max(0, int(answer.next_update - now))
    etag = f'"{answer.etag}"'
    headers += [
        ("Cache-Control", f"max-age={max_age}, public, no-transform, must-revalidate"),
        ("Last-Modified", http_date(answer.this_update)),
        ("Expires", http_date(answer.next_update)),
        ("ETag", etag),
    ]
    if get and if_none_match is not None and etag in _tags(if_none_match):
        return HttpResult(304, headers)
    return HttpResult(200, headers, answer.body)


def crl_result(
    der: bytes,
    this_update: float,
    next_update: float,
    etag: str,
    *,
    if_none_match: str | None,
    if_modified_since: str | None,
) -> HttpResult:
    max_age = max(0, int(next_update - time.time()))
    headers = [
        ("Content-Type", CRL_TYPE),
        ("Cache-Control", f"max-age={max_age}, public, no-transform"),
        ("Last-Modified", http_date(this_update)),
        ("Expires", http_date(next_update)),
        ("ETag", etag),
    ]
    if if_none_match is not None:
        if etag in _tags(if_none_match) or if_none_match.strip() == "*":
            return HttpResult(304, headers)
    elif if_modified_since is not None and _not_modified_since(if_modified_since, this_update):
        return HttpResult(304, headers)
    return HttpResult(200, headers, der)


def error_result(status: int, message: str) -> HttpResult:
    return HttpResult(
        status, [("Content-Type", "text/plain; charset=utf-8"), ("Cache-Control", "no-store")], message.encode() + b"\n"
    )


def _tags(header: str) -> set[str]:
    return {tag.strip().removeprefix("W/") for tag in header.split(",")}


def _not_modified_since(header: str, this_update: float) -> bool:
    from email.utils import parsedate_to_datetime

    try:
        return parsedate_to_datetime(header).timestamp() >= int(this_update)
    except (TypeError, ValueError, IndexError, OverflowError):
        return False


# --- dispatch (shared by the asyncio server and the ASGI router) ---------------------------------------------------


@dataclass(slots=True)
class Request:
    method: str
    path: str
    body: bytes = b""
    if_none_match: str | None = None
    if_modified_since: str | None = None


def respond_fast(service: StatusService, request: Request) -> HttpResult | None:
    """Answer from memory (no database, no signature), or None: then call :func:`respond_blocking` in a thread."""
    return _respond(service, request, blocking=False)


def respond_blocking(service: StatusService, request: Request) -> HttpResult:
    result = _respond(service, request, blocking=True)
    assert result is not None
    return result


def _respond(service: StatusService, request: Request, *, blocking: bool) -> HttpResult | None:
    route = match(request.path)
    if route is None:
        return error_result(404, "not found")
    if route.target == "health":
        return HttpResult(200, [("Content-Type", "text/plain"), ("Cache-Control", "no-store")], b"ok\n")
    if route.target == "ocsp":
        if request.method == "POST":
            if route.encoded_request:
                return error_result(404, "POST goes to /ocsp/{kind}")
            if len(request.body) > MAX_OCSP_REQUEST:
                return error_result(413, "OCSP request too large")
            der: bytes | None = request.body
        elif request.method in ("GET", "HEAD"):
            der = decode_get_request(route.encoded_request)
        else:
            return HttpResult(405, [("Allow", "GET, POST")], b"")
        get = request.method != "POST"
        if not der:
            return ocsp_result(MALFORMED, get=get)
        answer = service.responder.answer(der) if blocking else service.responder.answer_from_memory(der)
        if answer is None:
            return None
        return ocsp_result(answer, get=get, if_none_match=request.if_none_match)
    if request.method not in ("GET", "HEAD"):
        return HttpResult(405, [("Allow", "GET, HEAD")], b"")
    assert route.kind is not None
    if route.shard >= service.settings.crl_shards:
        return error_result(404, "no such CRL shard")
    if blocking:
        stored = service.crls.get(route.kind, route.shard)
    else:
        fresh, stored = service.crls.peek(route.kind, route.shard)
        if not fresh:
            return None
    if stored is None:
        return error_result(404, "CRL not published yet")
    return crl_result(
        stored.der,
        stored.this_update,
        stored.next_update,
        stored.etag,
        if_none_match=request.if_none_match,
        if_modified_since=request.if_modified_since,
    )
