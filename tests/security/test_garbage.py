"""Hand-written garbage against the JSON API: malformed JSON, wrong content types, huge and deeply nested bodies,
unicode oddities, path traversal in ids, negative and huge numbers, lying headers.

Every answer must be a clear 4xx with the API's JSON error body and no trace of internals — never a 5xx.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from fuzzing import LEAK
from secworld import API, SecWeb


@pytest.fixture
def ctx(module_web: SecWeb) -> dict[str, Any]:
    """A fresh card, kiosk and procedure per test (a test's garbage must not lock out the next one)."""
    card = module_web.world.issue_card()
    kiosk = module_web.terminal("kiosk")
    pid = kiosk.start("renewal", "certificates", card.card_id)["id"]
    return {"web": module_web, "kiosk": kiosk, "pid": pid, "headers": module_web.auth(kiosk), "client": kiosk.http}


def _clean_4xx(response: Any, *allowed: int) -> dict[str, Any]:
    where = f"{response.request.method} {response.request.url.path} -> {response.status_code}: {response.text[:200]}"
    assert 400 <= response.status_code < 500, where
    if allowed:
        assert response.status_code in allowed, where
    assert not LEAK.search(response.text), where
    body = response.json()
    assert body["error"]["code"] and body["error"]["message_ja"] and body["error"]["message_en"], where
    return body


def _post(ctx: dict[str, Any], path: str, content: bytes | str, content_type: str = "application/json") -> Any:
    headers = {**ctx["headers"], "Content-Type": content_type}
    return ctx["client"].post(API + path.format(pid=ctx["pid"]), content=content, headers=headers)


BODY_ROUTES = [
    "/procedures",
    "/procedures/{pid}/exchange",
    "/procedures/{pid}/new-pin",
    "/procedures/{pid}/face",
    "/procedures/{pid}/code/verify",
    "/terminals/challenge",
    "/terminals/session",
    "/terminals/browser-session",
]

MALFORMED_JSON = [
    b"{",
    b"{not json}",
    b'{"kind": "renewal",}',
    b"\xff\xfe\x00{",
    b"null",
    b"[]",
    b'"a string"',
    b"12345",
    b'{"a": NaN}',
    b'{"a": Infinity}',
]


@pytest.mark.parametrize("route", BODY_ROUTES)
def test_malformed_json_is_a_clean_4xx(ctx: dict[str, Any], route: str) -> None:
    for blob in MALFORMED_JSON:
        _clean_4xx(_post(ctx, route, blob), 400, 401, 422)
    # a UTF-8 byte-order mark before a well-formed body is tolerated (json.loads of bytes accepts it), never a crash
    response = _post(ctx, route, b"\xef\xbb\xbf{}")
    assert response.status_code < 500 and not LEAK.search(response.text), response.text


@pytest.mark.parametrize(
    "content_type",
    ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x", "application/xml", ""],
)
def test_wrong_content_types(ctx: dict[str, Any], content_type: str) -> None:
    for route in BODY_ROUTES[:5]:
        body = json.dumps({"kind": "renewal", "target": "certificates", "card_id": "123456789012345"})
        response = _post(ctx, route, body, content_type)
        _clean_4xx(response, 400, 409, 415, 422)


def test_huge_bodies_are_refused_before_parsing(ctx: dict[str, Any]) -> None:
    cap = 2_000_000  # secworld's max_request_bytes
    big = b'{"code": "' + b"1" * (cap + 10) + b'"}'
    _clean_4xx(_post(ctx, "/procedures/{pid}/code/verify", big), 413)
    # a lying or absurd Content-Length is refused without reading
    for declared in ("-1", "abc", str(10**18)):
        response = ctx["client"].post(
            f"{API}/procedures",
            content=b"{}",
            headers={**ctx["headers"], "Content-Type": "application/json", "Content-Length": declared},
        )
        assert response.status_code in (400, 413), (declared, response.status_code)

    # streamed without Content-Length: counted while reading
    def chunks():
        yield b'{"code": "'
        for _ in range(40):
            yield b"9" * 65536
        yield b'"}'

    response = ctx["client"].post(
        API + "/procedures/{pid}/code/verify".format(pid=ctx["pid"]),
        content=chunks(),
        headers={**ctx["headers"], "Content-Type": "application/json"},
    )
    _clean_4xx(response, 400, 413)  # FastAPI turns the limit's error while reading into "cannot parse the body"


@pytest.mark.parametrize("depth", [100, 5_000, 100_000])
def test_deeply_nested_json(ctx: dict[str, Any], depth: int) -> None:
    for route in ("/procedures", "/procedures/{pid}/exchange", "/terminals/session"):
        _clean_4xx(_post(ctx, route, b"[" * depth + b"]" * depth), 400, 413, 422)
        _clean_4xx(_post(ctx, route, b'{"a":' * depth + b"1" + b"}" * depth), 400, 413, 422)


UNICODE_ODDITIES = [
    "１２３４５６",  # full-width digits
    "123\u200b456",  # zero-width space
    "\u202e654321",  # right-to-left override
    "1\u03002\u03003\u0300",  # combining marks
    "\U0001f600" * 8,
    "\x00" * 6,
    "\ud800\udc00\ud800",  # surrogates (escaped in the JSON)
    "123456\x00",
    "A" * 32,
    "'; DROP TABLE procedures; --",
    "${jndi:ldap://127.0.0.1/x}",
    "{{7*7}}",
    "<script>alert(1)</script>",
]


def test_unicode_oddities_in_every_string_field(ctx: dict[str, Any]) -> None:
    kiosk_headers = ctx["headers"]
    for odd in UNICODE_ODDITIES:
        cases = [
            ("/procedures", {"kind": "renewal", "target": "certificates", "card_id": odd}),
            ("/procedures", {"kind": odd, "target": "certificates", "card_id": "123456789012345"}),
            ("/procedures", {"kind": "pin_reset", "target": odd, "card_id": "123456789012345"}),
            ("/procedures/{pid}/code/verify", {"code": odd}),
            ("/procedures/{pid}/exchange", {"responses": [odd]}),
            ("/procedures/{pid}/new-pin", {"responses": [], "new_pin": odd}),
            ("/procedures/{pid}/face", {"frames": [odd]}),
            ("/terminals/challenge", {"terminal_id": odd}),
            ("/terminals/session", {"terminal_id": odd, "nonce": odd, "signature": odd}),
            ("/terminals/browser-session", {"code": odd * 2}),
        ]
        for route, body in cases:
            response = ctx["client"].post(
                API + route.format(pid=ctx["pid"]),
                content=json.dumps(body),
                headers={**kiosk_headers, "Content-Type": "application/json"},
            )
            assert response.status_code < 500, (route, odd, response.text)
            assert not LEAK.search(response.text), (route, odd, response.text)
            if response.status_code >= 400:
                _clean_4xx(response)
            # the engine never echoes what was sent in a string field
            if odd not in ("A" * 32,) and len(odd) > 3:
                assert odd not in response.text, (route, odd, response.text)


TRAVERSALS = [
    "..",
    "../../etc/passwd",
    "..%2F..%2Fetc%2Fpasswd",
    "%2e%2e%2f%2e%2e%2f",
    "..\\..\\windows",
    "%00",
    "a" * 5000,
    "%ff%fe",
    "~root",
    "0" * 32 + "%00.json",
]


def test_path_traversal_in_ids(ctx: dict[str, Any]) -> None:
    web, headers = ctx["web"], ctx["headers"]
    for evil in TRAVERSALS:
        for method, path in (
            ("GET", f"/procedures/{evil}"),
            ("POST", f"/procedures/{evil}/cancel"),
            ("POST", f"/procedures/{evil}/code/request"),
            ("GET", f"/admin/audit/{evil}/proof"),
        ):
            response = web.client.request(method, API + path, headers={**headers, **web.admin} if "admin" in path
                                           else headers)
            assert response.status_code in (404, 405, 422), (method, path, response.status_code, response.text)
            assert "root:" not in response.text and not LEAK.search(response.text)
    for evil in ("../app.py", "..%2Fapp.py", "%2e%2e/%2e%2e/web/app.py", "/etc/passwd", "....//....//app.py"):
        for prefix in ("/static/", "/static/pages/", "/static/js/"):
            response = web.client.get(prefix + evil)
            assert response.status_code == 404, (prefix + evil, response.status_code)
            assert "import" not in response.text and "root:" not in response.text


@pytest.mark.parametrize("seq", [-1, 0, 2**31, 2**63, 10**30, -(10**30)])
def test_negative_and_huge_numbers(ctx: dict[str, Any], seq: int) -> None:
    web, headers = ctx["web"], ctx["headers"]
    response = ctx["client"].post(
        API + f"/procedures/{ctx['pid']}/exchange", json={"seq": seq, "responses": ["9000"]}, headers=headers
    )
    assert response.status_code in (409, 422), response.text
    _clean_4xx(response)
    for after, limit in ((-1, -1), (0, 10**6), (0, -(2**40)), (2**62, 1)):
        response = web.client.get(API + "/admin/audit", params={"after": after, "limit": limit}, headers=web.admin)
        assert response.status_code in (200, 422), response.text
    for after in (2**63, 10**30):  # beyond 64 bits (finding S-7, fixed): a 422, not a driver overflow
        _clean_4xx(web.client.get(API + "/admin/audit", params={"after": after}, headers=web.admin), 422)
    for raw in (b'{"seq": 1e309, "responses": []}', b'{"seq": 1.5, "responses": []}', b'{"seq": true}'):
        _clean_4xx(_post(ctx, "/procedures/{pid}/exchange", raw), 409, 422)


def test_garbage_authorization_headers(ctx: dict[str, Any]) -> None:
    web = ctx["web"]
    for value in ("Bearer", "Bearer " + "x" * 10_000, "Basic dXNlcjpwYXNz", "Bearer \t\t", "bearer " + "A" * 43):
        response = web.client.get(API + f"/procedures/{ctx['pid']}", headers={"Authorization": value})
        body = _clean_4xx(response, 401)
        assert body["error"]["code"] == "unauthenticated"
    response = web.client.get(
        API + f"/procedures/{ctx['pid']}", headers=[("Authorization", "Bearer a"), ("Authorization", "Bearer b")]
    )
    _clean_4xx(response, 401)
