"""The error answers in the OpenAPI document: one error model and the ``responses=`` the routes declare.

Every error of the API has the same JSON body (:mod:`jpki_remote.web.errors`, :class:`ProcedureError.as_dict`)::

    {"error": {"code": "...", "message_ja": "...", "message_en": "...",
               "fields": [...],     # 422 from request validation only: the names of the fields in error
               "detail": {...}}}    # a few refusals only, e.g. 429 code_refused: {"reason": "cooldown"}

:class:`ErrorBody` describes exactly that (no other keys). The groups below are the reasons a route can fail —
its caller, its body, what it acts on — each a ``{status: {"model": ErrorBody, "description": …}}`` dict; a route
declares the union of those that apply (``responses=TERMINAL | JSON_BODY | STEP``), so the document lists the
statuses the route really answers and no other (finding S-12).
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from pydantic import BaseModel, ConfigDict, Field
from pydantic.json_schema import SkipJsonSchema

Responses = dict[int | str, dict[str, Any]]


class ErrorInfo(BaseModel):
    """What went wrong: a stable code for programs, the message for people (Japanese and English)."""

    model_config = ConfigDict(extra="forbid")

    code: str = Field(description="stable machine-readable code, e.g. `unauthenticated`, `card_busy`, `locked_out`")
    message_ja: str = Field(description="message to show (Japanese)")
    message_en: str = Field(description="message to show (English)")
    fields: list[str] | SkipJsonSchema[None] = Field(
        None, description="422 from request validation: the names of the fields in error (never their values)"
    )
    detail: dict[str, Any] | SkipJsonSchema[None] = Field(
        None, description='facts some refusals add, e.g. `{"reason": "cooldown"}` with 429 `code_refused`'
    )


class ErrorBody(BaseModel):
    """The body of every error answer of the API."""

    model_config = ConfigDict(extra="forbid")

    error: ErrorInfo


DESCRIPTIONS: dict[int, str] = {
    400: "`bad_request`: the request body could not be read (not UTF-8, broken encoding)",
    401: "`unauthenticated`, `terminal_auth_failed`, `staff_login_required`, `login_failed`: no valid terminal "
    "session, admin token or sign-in",
    403: "`forbidden`, `not_allowed`, `csrf_failed`: this caller may not do this here (wrong terminal kind or "
    "session role, another municipality, not offered on this channel, a cookie request without its CSRF token)",
    404: "`not_found`, `resident_unknown`: unknown — or another terminal's procedure, another municipality's "
    "resident or card, which read exactly the same",
    409: "`wrong_step`, `not_active`, `proof_not_required`, `out_of_sequence`, `no_contact`: not possible in the "
    "procedure's present state; `card_busy` on counter issuance only (the card is in another running procedure — "
    "a remote procedure whose card is busy ends with `card_busy` at its card proof instead, answered 200)",
    413: "`too_large`: the request body is over the size cap",
    422: "`invalid_request` (with `fields`), `photo_unreadable`, `face_refused`, `criteria_required`, …: the "
    "request is malformed or its content is refused",
    429: "`rate_limited` (the terminal or the client address: try again later), `code_refused` (a new code is not "
    "sent yet): the rate limits. A card's own lockout is no HTTP answer: it ends the procedure (`locked_out`)",
    503: "`unavailable` (the database briefly unreachable), `audit_unavailable`, `face_refused`, `code_refused`: a "
    "service the request needs is unavailable; try again later (the `/api/v1` answers carry `Retry-After`)",
}


def error_answers(*statuses: int) -> Responses:
    """``responses=`` entries for these error statuses, each with the shared :class:`ErrorBody`."""
    return {status: {"model": ErrorBody, "description": DESCRIPTIONS[status]} for status in statuses}


# ---- who calls (sessions live in the database: 503 `unavailable` while it is unreachable) --------------------------
TERMINAL = error_answers(401, 503)  # a terminal session (agent or browser), bearer token
AGENT = error_answers(401, 403, 503)  # the terminal agent's own session (a browser session is refused)
COUNTER = error_answers(401, 403, 503)  # a counter terminal and signed-in staff of its municipality (+ CSRF)
ADMIN = error_answers(401, 503)  # the admin token (bearer) or the admin sign-in (cookie)
ADMIN_CHANGE = error_answers(401, 403, 503)  # the same, a state change: a cookie request needs its CSRF token
DATABASE = error_answers(503)  # anything else that reads or writes the database
# ---- what is sent ------------------------------------------------------------------------------------------------
JSON_BODY = error_answers(400, 413, 422)  # unreadable, over the body cap, invalid
PARAMETERS = error_answers(422)  # path or query parameters out of range / malformed
# ---- what it acts on ---------------------------------------------------------------------------------------------
ENGINE = error_answers(503)  # the procedure engine's audit log (or a service it needs) unavailable
PROCEDURE = error_answers(404, 503)  # reading a procedure of this terminal
STEP = error_answers(404, 409, 503)  # acting on a procedure: also "not now" (wrong step, ended, …)
STARTING = error_answers(403, 503)  # starting one: not offered here (a start takes no card: no card_busy, S-5)
ISSUING = error_answers(403, 409, 503)  # counter issuance: not offered here, the card busy in another procedure
NOT_FOUND = error_answers(404)
LIMITED = error_answers(429)  # counted by the rate limits (per card, terminal and address)
LIMITED_RETRY_AFTER = {  # the same, and the answer says when to try again (terminal challenges, procedures)
    429: {
        **LIMITED[429],
        "headers": {
            "Retry-After": {
                "description": "seconds until the lockout ends (or until the next security code may be sent); "
                "absent when waiting does not help (`too_many_codes`)",
                "schema": {"type": "integer", "minimum": 1},
            }
        },
    }
}


def document_error_answers(app: FastAPI) -> None:
    """Make ``app``'s OpenAPI document show only the error answers the routes declare.

    FastAPI adds a 422 with its own validation body (``HTTPValidationError``) to every operation that has any
    parameter — an ``Authorization`` header is enough. This API's 422 is :class:`ErrorBody` and is declared where
    it can happen (``JSON_BODY``, ``PARAMETERS``), so the generated ones are taken out, with their schemas. And an
    error of a route that answers HTML (the analytics dashboard) is JSON all the same, not its route's media type.
    """
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        document = generate()
        for operations in document.get("paths", {}).values():
            for operation in operations.values():
                answers = operation.get("responses", {})
                if "HTTPValidationError" in str(answers.get("422", {})):
                    del answers["422"]
                for status, answer in answers.items():
                    content = answer.get("content") or {}
                    if status[0] in "45" and content and "application/json" not in content:
                        answer["content"] = {"application/json": next(iter(content.values()))}
        schemas = document.get("components", {}).get("schemas", {})
        for name in ("HTTPValidationError", "ValidationError"):
            schemas.pop(name, None)
        return document

    app.openapi = openapi  # type: ignore[method-assign]
