"""The OpenAPI document declares the error answers (finding S-12): one error model for every error status, the
statuses each route really answers — and real answers (the 413 of the body cap, a 429 of the rate limits, …) have
that status documented on their operation and a body the model accepts, with no other keys."""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Any

import pytest
from web_world import Web

from jpki_remote.web.error_answers import ErrorBody

API = "/api/v1"
ERROR_REF = "#/components/schemas/ErrorBody"
OPEN = {  # operations anyone may call
    ("get", "/api/v1/health"),
    ("post", "/api/v1/terminals/challenge"),
    ("get", "/api/v1/login/session"),
    ("post", "/api/v1/logout"),
}

NO_DATABASE = {("get", "/api/v1/health")}


@pytest.fixture
def document(web: Web) -> dict[str, Any]:
    return web.client.get(f"{API}/openapi.json").json()


def _operations(document: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [(method, path, op) for path, ops in document["paths"].items() for method, op in ops.items()]


def test_every_error_answer_is_the_shared_error_model(document: dict[str, Any]) -> None:
    errors = 0
    for method, path, operation in _operations(document):
        for status, answer in operation["responses"].items():
            if int(status) >= 400:
                errors += 1
                schema = answer["content"]["application/json"]["schema"]
                assert schema == {"$ref": ERROR_REF}, (method, path, status, schema)
    assert errors > 100
    assert "HTTPValidationError" not in str(document), "FastAPI's own 422 body is not what this API answers"
    model = document["components"]["schemas"]["ErrorInfo"]
    assert model["additionalProperties"] is False and set(model["required"]) == {"code", "message_ja", "message_en"}


def test_each_route_declares_what_its_callers_and_inputs_can_cause(document: dict[str, Any]) -> None:
    for method, path, operation in _operations(document):
        statuses = set(operation["responses"])
        if (method, path) not in OPEN and not path.startswith(f"{API}/login/"):
            assert "401" in statuses, (method, path, sorted(statuses))
        if path.startswith(API) and (method, path) not in NO_DATABASE:
            assert "503" in statuses, (method, path, sorted(statuses))  # the database briefly unreachable
        if "requestBody" in operation:
            assert {"400", "413", "422"} <= statuses, (method, path, sorted(statuses))
        if any(p["in"] == "query" for p in operation.get("parameters", [])):
            assert "422" in statuses, (method, path, sorted(statuses))
        if path.startswith(f"{API}/counter/") or path.startswith(f"{API}/registry/"):
            assert "403" in statuses, (method, path, sorted(statuses))  # not a counter, another municipality, CSRF
    start = document["paths"][f"{API}/procedures"]["post"]["responses"]
    assert {"401", "403", "413", "422", "429"} <= set(start) and "409" not in start  # a start takes no card (S-5)
    issuance = document["paths"][f"{API}/counter/issuance"]["post"]["responses"]
    assert "409" in issuance  # card_busy: the card registered in another running procedure
    view = document["paths"][f"{API}/procedures/{{procedure_id}}"]["get"]["responses"]
    assert {"401", "404"} <= set(view) and "409" not in view and "413" not in view  # only what it can answer
    assert set(document["paths"][f"{API}/admin/policy"]["get"]["responses"]) == {"200", "401", "503"}


def _check(document: dict[str, Any], method: str, template: str, response: Any, status: int) -> dict[str, Any]:
    assert response.status_code == status, (template, response.status_code, response.text)
    documented = document["paths"][template][method]["responses"]
    assert str(status) in documented, (method, template, status, sorted(documented))
    body = response.json()
    ErrorBody.model_validate(body, strict=True)  # the documented model, no other keys
    return body["error"]


def test_real_error_answers_match_the_documented_model(web: Web, document: dict[str, Any], tmp_path: Path) -> None:
    kiosk = web.terminal("kiosk", tmp_path, "kiosk")
    auth = {"Authorization": f"Bearer {kiosk._token}"}
    issued = web.world.issue_card()

    missing = web.client.get(f"{API}/terminals/procedure")
    assert _check(document, "get", f"{API}/terminals/procedure", missing, 401)["code"] == "unauthenticated"

    counter = web.client.post(
        f"{API}/counter/procedures", headers=auth, json={"kind": "revocation", "target": "signature", "card_id": "1"}
    )
    assert _check(document, "post", f"{API}/counter/procedures", counter, 403)["code"] == "forbidden"

    unknown = web.client.get(f"{API}/procedures/p{secrets.token_hex(8)}", headers=auth)
    assert _check(document, "get", f"{API}/procedures/{{procedure_id}}", unknown, 404)["code"] == "not_found"

    pid = kiosk.start("renewal", "certificates", issued.card_id)["id"]
    early = web.client.post(f"{API}/procedures/{pid}/code/request", headers=auth)  # before the card proved itself
    code_request = f"{API}/procedures/{{procedure_id}}/code/request"
    assert _check(document, "post", code_request, early, 409)["code"] == "wrong_step"

    malformed = web.client.post(f"{API}/procedures", headers=auth, json={"kind": "renewal"})
    error = _check(document, "post", f"{API}/procedures", malformed, 422)
    assert error["code"] == "invalid_request" and "target" in error["fields"]

    unreadable = web.client.post(
        f"{API}/procedures", headers={**auth, "Content-Type": "application/json"}, content=b'{"kind": "\xff"}'
    )
    assert _check(document, "post", f"{API}/procedures", unreadable, 400)["code"] == "bad_request"

    too_large = web.client.post(f"{API}/procedures", headers=auth, content=b"x" * 2_000_001)  # the body cap
    assert _check(document, "post", f"{API}/procedures", too_large, 413)["code"] == "too_large"


def test_a_rate_limit_answer_matches_the_documented_model(web: Web, document: dict[str, Any], tmp_path: Path) -> None:
    """Starts of always new (unknown) card ids from one terminal and address: the address / terminal limits refuse
    with a 429 whose body carries ``detail.counter_visit`` — inside the model."""
    kiosk = web.terminal("kiosk", tmp_path, "kiosk")
    auth = {"Authorization": f"Bearer {kiosk._token}"}
    for _ in range(100):
        card_id = "9" + "".join(secrets.choice("0123456789") for _ in range(14))
        response = web.client.post(
            f"{API}/procedures", headers=auth, json={"kind": "renewal", "target": "certificates", "card_id": card_id}
        )
        if response.status_code != 201:
            break
    error = _check(document, "post", f"{API}/procedures", response, 429)
    assert error["code"] in ("rate_limited", "locked_out") and isinstance(error["detail"]["counter_visit"], bool)
