"""OCSP and CRL endpoints for the FastAPI application (``jpki-remote serve``).

The web package mounts them with::

    app.include_router(create_status_router(service))

Routes: ``POST /ocsp``, ``POST /ocsp/{kind}``, ``GET /ocsp/{kind}/{request}`` (and ``GET /ocsp/{request}``),
``GET|HEAD /crl/{kind}/{shard}.crl``. The semantics (and bytes) are those of the fast server in
:mod:`jpki_remote.ca.status.server`, which is the one to put in front of relying parties at volume.
"""

from __future__ import annotations

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from jpki_remote.ca.status.routing import MAX_OCSP_REQUEST, HttpResult, error_result, respond_blocking, respond_fast
from jpki_remote.ca.status.routing import Request as StatusRequest
from jpki_remote.ca.status.service import StatusService


def _response(result: HttpResult, head: bool) -> Response:
    headers = dict(result.headers)
    media_type = headers.pop("Content-Type", None)
    body = b"" if head or result.status == 304 else result.body
    response = Response(body, status_code=result.status, headers=headers, media_type=media_type)
    if head:
        response.headers["Content-Length"] = str(len(result.body))
    return response


def create_status_router(service: StatusService) -> APIRouter:
    router = APIRouter(tags=["status (OCSP / CRL)"])

    async def handle(request: Request) -> Response:
        if request.method == "POST":
            declared = request.headers.get("content-length")
            if declared is not None and declared.isdigit() and int(declared) > MAX_OCSP_REQUEST:
                return _response(error_result(413, "OCSP request too large"), False)
            body = await request.body()
        else:
            body = b""
        status_request = StatusRequest(
            request.method,
            request.url.path,
            body,
            request.headers.get("if-none-match"),
            request.headers.get("if-modified-since"),
        )
        result = respond_fast(service, status_request)
        if result is None:
            result = await run_in_threadpool(respond_blocking, service, status_request)
        return _response(result, request.method == "HEAD")

    router.add_api_route("/ocsp", handle, methods=["POST"], include_in_schema=True, summary="OCSP (RFC 6960)")
    router.add_api_route("/ocsp/{path:path}", handle, methods=["GET", "POST"], summary="OCSP (RFC 6960, GET form)")
    router.add_api_route("/crl/{kind}/{name}", handle, methods=["GET", "HEAD"], summary="Shard CRL (RFC 5280)")
    return router


def create_status_app(service: StatusService) -> FastAPI:
    """A stand-alone ASGI app with only the status endpoints (for ``uvicorn``)."""
    app = FastAPI(title="jpki-remote status", docs_url=None, redoc_url=None)
    app.include_router(create_status_router(service))
    return app
