"""Every error leaves the API as JSON: ``{"error": {"code", "message_ja", "message_en"}}`` with a stable code."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import SQLAlchemyError
from starlette.exceptions import HTTPException as StarletteHTTPException

from jpki_remote.procedures.errors import ProcedureError
from jpki_remote.store import database_unavailable

log = logging.getLogger(__name__)

RETRY_AFTER_SECONDS = 5  # what a 503 tells the caller (Retry-After): the terminal agent and the pages try again
DATABASE_UNAVAILABLE = (  # the generic 503 code: callers need not know which back end is down (the log says)
    "unavailable",
    "ただいま混み合っているため処理できません。しばらく時間をおいてから、もう一度お試しください。",
    "The service is temporarily unavailable. Please try again in a little while.",
)

HTTP_CODES: dict[int, tuple[str, str, str]] = {
    400: ("bad_request", "要求が正しくありません。", "Bad request."),
    401: ("unauthenticated", "端末の認証が必要です。", "Terminal authentication required."),
    403: ("forbidden", "この操作は許可されていません。", "This operation is not permitted."),
    404: ("not_found", "見つかりません。", "Not found."),
    405: ("method_not_allowed", "この方法では操作できません。", "Method not allowed."),
    413: ("too_large", "送信データが大きすぎます。", "Request body too large."),
    415: ("unsupported_media_type", "JSON で送信してください。", "Send JSON."),
    422: ("invalid_request", "要求の内容が正しくありません。", "The request is malformed."),
    429: ("rate_limited", "しばらく待ってから再度お試しください。", "Too many requests; try again later."),
    503: ("unavailable", "ただいま利用できません。", "Temporarily unavailable."),
}


def error_body(status: int, code: str | None = None, ja: str | None = None, en: str | None = None) -> dict:
    default = HTTP_CODES.get(status, ("error", "エラーが発生しました。", "An error occurred."))
    return {"error": {"code": code or default[0], "message_ja": ja or default[1], "message_en": en or default[2]}}


class ApiError(Exception):
    def __init__(
        self,
        status: int,
        code: str | None = None,
        ja: str | None = None,
        en: str | None = None,
        *,
        headers: dict[str, str] | None = None,  # e.g. Retry-After with a 429
    ) -> None:
        super().__init__(code or str(status))
        self.status = status
        self.code = code
        self.ja, self.en = ja, en
        self.headers = headers or {}


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ProcedureError)
    async def _procedure(_request: Request, exc: ProcedureError) -> JSONResponse:
        headers = _retry(exc.http_status)
        if exc.retry_after is not None:  # a 429 of the rate limits: seconds until the lockout ends
            headers["Retry-After"] = str(max(1, int(exc.retry_after)))
        return JSONResponse({"error": exc.as_dict()}, status_code=exc.http_status, headers=headers)

    @app.exception_handler(ApiError)
    async def _api(_request: Request, exc: ApiError) -> JSONResponse:
        body = error_body(exc.status, exc.code, exc.ja, exc.en)
        return JSONResponse(body, status_code=exc.status, headers={**_retry(exc.status), **exc.headers})

    @app.exception_handler(RequestValidationError)
    async def _validation(_request: Request, exc: RequestValidationError) -> JSONResponse:
        fields = sorted({".".join(str(p) for p in err.get("loc", ())[1:]) for err in exc.errors()})[:10]
        body = error_body(422)
        body["error"]["fields"] = fields  # names only: never echo the values (they may be PINs or codes)
        return JSONResponse(body, status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return JSONResponse(error_body(exc.status_code), status_code=exc.status_code, headers=exc.headers)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return JSONResponse(
            error_body(500, "internal", "システムエラーが発生しました。", "A system error occurred."), status_code=500
        )

    @app.exception_handler(SQLAlchemyError)
    async def _database(request: Request, exc: SQLAlchemyError) -> JSONResponse:
        """The database briefly unreachable (restart, failover, network): 503 with Retry-After, one log line, no
        stack trace — the engine's pool reconnects by itself (pre-ping) once it is back. Anything else is a bug."""
        if not database_unavailable(exc):
            return await _unexpected(request, exc)
        cause = type(getattr(exc, "orig", None) or exc).__name__
        log.warning("database unavailable on %s %s: %s", request.method, request.url.path, cause)
        return JSONResponse(error_body(503, *DATABASE_UNAVAILABLE), status_code=503, headers=_retry(503))


def _retry(status: int) -> dict[str, str]:
    return {"Retry-After": str(RETRY_AFTER_SECONDS)} if status == 503 else {}
