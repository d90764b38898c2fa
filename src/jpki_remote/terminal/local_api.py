"""The agent's loopback HTTP API, used by the terminal's own browser page (contract: ``docs/ui.md``).

::

    GET    /v1/status                 {terminal_id, terminal_kind, terminal_name, reader, card_present, card_id,
                                       procedure_id, pin_request: {kind, new, attempt} | null,
                                       card: {diversification_data, expiry, public_key} | null, relay: {state, error},
                                       retry_seconds}  (the relay's retry budget, JPKI_TERMINAL_RETRY_SECONDS)
    POST   /v1/procedures/{id}/drive  202  relay that procedure's card exchanges until it ends
    POST   /v1/pin {kind, value, new} 204  answer the open pin_request (409 none/other open, 422 wrong format)
    POST   /v1/cancel                 204  drop the open request and any PIN held, stop relaying
    POST   /v1/card {card_id}         204  put a card of the card directory on the virtual reader (404 unknown)
    DELETE /v1/card                   204  take it off
    POST   /v1/browser-link           200  {code}: a fresh one-time browser-link code for the page (see below)
    GET    /                          303  to the terminal's page with a fresh browser-link code (see below)

**Why a page can't be driven by another one.** The PIN goes from the page to this API and from here to the card; it
never passes the server. So this API must answer only the terminal's page:

1. *Loopback only*: the server binds 127.0.0.1 / ::1 (anything else is refused at start), so nothing off the machine
   reaches it.
2. *Per-launch token*: every ``/v1`` request carries ``X-Agent-Token`` with a random 256-bit token made at start. The
   page learns it from the fragment of the URL the agent opens (``#link=CODE&agent_token=TOKEN``): a fragment is
   never sent to any server nor written to a log, and no other web page can read this page's URL. A request without
   the token gets 401 — including one from any other local web page or program that does not have it.
3. *CORS for the server's origin only*: the preflight (which the token header and the JSON body force on every
   cross-origin call) is answered only for the configured page origin(s); a request carrying any other ``Origin``
   is refused with 403, so even a leaked token is useless from another site's script.
4. *Host check*: the ``Host`` header must name the loopback, so a DNS-rebinding site (its own name resolving to
   127.0.0.1, making it "same origin") is refused before anything else.
5. PINs: bodies are parsed here (never echoed in an error), the value is handed to :class:`PagePinPad` and dropped
   as soon as the relay has used it; uvicorn's access log is off and nothing here logs a body.

``GET /`` mints a one-time browser-link code from the server (the page's session is bound to this terminal) and
redirects to ``{server}/{kiosk|portal|counter}?agent=http://127.0.0.1:PORT#link=CODE&agent_token=TOKEN``: a kiosk
browser can be pointed at ``http://127.0.0.1:PORT/`` for ever, whereas a printed link code expires in 2 minutes.
A cross-site navigation to it opens the terminal page, which the navigating site cannot read. The page keeps its
browser session in memory only (finding S-15), so after a reload, or after its inactivity wipe ended the session,
it asks ``POST /v1/browser-link`` (token and origin checked like every ``/v1`` call) for a fresh code and redeems it.
Both mint at most one code per second.
"""

from __future__ import annotations

import hmac
import ipaddress
import json
import logging
import secrets
import threading
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response

from jpki_remote.terminal.pinpad import PinRefused
from jpki_remote.terminal.readers import ReaderNotVirtual
from jpki_remote.terminal.relay import AgentService

log = logging.getLogger(__name__)

TOKEN_HEADER = "X-Agent-Token"  # noqa: S105 - a header name
PAGE_OF_KIND = {"kiosk": "kiosk", "app": "portal", "counter": "counter"}
LOOPBACK_NAMES = {"127.0.0.1", "localhost", "::1"}
MAX_BODY = 2048
ERRORS: dict[str, tuple[int, str, str]] = {
    "forbidden_host": (403, "この端末以外からは操作できません。", "Only this machine's own page may call the agent."),
    "forbidden_origin": (403, "この画面からは操作できません。", "This page may not call the terminal agent."),
    "unauthenticated": (401, "端末エージェントの合言葉がありません。", "The agent token is missing or wrong."),
    "not_found": (404, "見つかりません。", "Not found."),
    "invalid_request": (422, "要求の内容が正しくありません。", "The request is malformed."),
    "no_request": (409, "暗証番号は今は求められていません。", "No PIN is being asked for now."),
    "wrong_request": (409, "求められている暗証番号と違います。", "That is not the PIN being asked for."),
    "bad_format": (422, "暗証番号の形式が正しくありません。", "The PIN has the wrong format."),
    "unknown_card": (404, "そのカードはありません。", "No such card."),
    "not_virtual": (409, "このカードリーダーではできません。", "Only the virtual reader takes cards by command."),
    "server_unavailable": (503, "サーバーに接続できません。", "The server cannot be reached."),
}


def error(code: str) -> JSONResponse:
    status, ja, en = ERRORS[code]
    return JSONResponse({"error": {"code": code, "message_ja": ja, "message_en": en}}, status_code=status)


def origin_of(url: str) -> str:
    """``scheme://host[:port]`` of ``url`` (the browser's Origin for a page served from it)."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"not an http(s) URL: {url!r}")
    default = {"http": 80, "https": 443}[parts.scheme]
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    return f"{parts.scheme}://{host}" + (f":{parts.port}" if parts.port and parts.port != default else "")


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _host_name(header: str) -> str:
    header = header.strip().lower()
    if header.startswith("["):
        return header[1 : header.find("]")] if "]" in header else header
    return header.rsplit(":", 1)[0] if header.count(":") == 1 else header


def page_url(server: str, kind: str, agent_base: str, code: str | None, token: str) -> str:
    """The terminal's page with the agent's base URL (query) and the link code and token (fragment)."""
    from urllib.parse import urlencode

    fragment = urlencode({**({"link": code} if code else {}), "agent_token": token})
    return f"{server.rstrip('/')}/{PAGE_OF_KIND.get(kind, 'kiosk')}?{urlencode({'agent': agent_base})}#{fragment}"


def create_local_app(
    service: AgentService,
    *,
    token: str,
    origins: set[str],
    server_url: str,
    agent_base: Callable[[], str],
) -> FastAPI:
    """The loopback API over ``service``. ``origins``: the page origins allowed by CORS."""
    app = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)
    launcher = {"last": 0.0}
    launcher_lock = threading.Lock()

    def cors_headers(origin: str | None) -> dict[str, str]:
        if origin is None:
            return {}
        return {"Access-Control-Allow-Origin": origin, "Vary": "Origin"}

    @app.middleware("http")
    async def guard(request: Request, call_next: Callable[[Request], Any]) -> Response:
        if _host_name(request.headers.get("host", "")) not in LOOPBACK_NAMES:
            return error("forbidden_host")
        origin = request.headers.get("origin")
        if origin is not None and origin not in origins:
            return error("forbidden_origin")
        if request.method == "OPTIONS":
            response = Response(status_code=204)
            response.headers.update(cors_headers(origin))
            response.headers["Access-Control-Allow-Methods"] = "GET, POST, DELETE"
            response.headers["Access-Control-Allow-Headers"] = f"Content-Type, {TOKEN_HEADER}"
            response.headers["Access-Control-Max-Age"] = "600"
            if request.headers.get("access-control-request-private-network") == "true":
                response.headers["Access-Control-Allow-Private-Network"] = "true"
            return response
        if request.url.path.startswith("/v1/"):
            given = request.headers.get(TOKEN_HEADER.lower(), "")
            if not hmac.compare_digest(given.encode(), token.encode()):
                response = error("unauthenticated")
                response.headers.update(cors_headers(origin))
                return response
        response = await call_next(request)
        response.headers.update(cors_headers(origin))
        response.headers["Cache-Control"] = "no-store"
        response.headers["X-Content-Type-Options"] = "nosniff"
        return response

    async def json_body(request: Request) -> dict[str, Any] | None:
        raw = await request.body()
        if len(raw) > MAX_BODY:
            return None
        try:
            body = json.loads(raw or b"{}")
        except (ValueError, UnicodeDecodeError):
            return None
        return body if isinstance(body, dict) else None

    @app.get("/v1/status")
    def status() -> dict[str, Any]:
        return service.status()

    @app.post("/v1/procedures/{procedure_id}/drive", status_code=202)
    def drive(procedure_id: str) -> Response:
        try:
            service.drive(procedure_id)
        except ValueError:
            return error("invalid_request")
        return JSONResponse({"procedure_id": procedure_id}, status_code=202)

    @app.post("/v1/pin")
    async def pin(request: Request) -> Response:
        body = await json_body(request)
        if body is None or set(body) - {"kind", "value", "new"}:
            return error("invalid_request")
        try:
            service.pinpad.answer(body.get("kind"), body.get("value"), body.get("new", False))
        except PinRefused as refused:
            return error(refused.code)
        finally:
            body.clear()  # the PIN is not kept here
        return Response(status_code=204)

    @app.post("/v1/cancel")
    def cancel() -> Response:
        service.cancel()
        return Response(status_code=204)

    @app.post("/v1/card")
    async def insert(request: Request) -> Response:
        body = await json_body(request)
        card_id = (body or {}).get("card_id")
        if not isinstance(card_id, str) or not 1 <= len(card_id) <= 64:
            return error("invalid_request")
        inserter = getattr(service.reader, "insert", None)
        if inserter is None:
            return error("not_virtual")
        try:
            inserter(card_id)
        except KeyError:
            return error("unknown_card")
        except ReaderNotVirtual:
            return error("not_virtual")
        return Response(status_code=204)

    @app.delete("/v1/card")
    def remove() -> Response:
        remover = getattr(service.reader, "remove", None)
        if remover is None:
            return error("not_virtual")
        remover()
        return Response(status_code=204)

    def fresh_link() -> str | None:
        """A one-time browser-link code from the server (at most one per second), None when it cannot be had."""
        with launcher_lock:
            wait = launcher["last"] + 1.0 - time.monotonic()
            if wait > 0:
                time.sleep(wait)
            launcher["last"] = time.monotonic()
        try:
            return service.browser_link()
        except Exception as exc:  # any server failure is the same "not reachable" for the page
            log.warning("browser link not available: %s", type(exc).__name__)
            return None

    @app.post("/v1/browser-link")
    def browser_link() -> Response:
        """A fresh link code for this terminal's own page, which binds a new browser session with it."""
        code = fresh_link()
        if code is None:
            return error("server_unavailable")
        return JSONResponse({"code": code})

    @app.get("/")
    def launch() -> Response:
        """Open the terminal's page with a fresh one-time link code."""
        code = fresh_link()
        if code is None:
            return error("server_unavailable")
        url = page_url(server_url, service.identity.kind, agent_base(), code, token)
        return RedirectResponse(url, status_code=303, headers={"Referrer-Policy": "no-referrer"})

    return app


def new_token() -> str:
    return secrets.token_urlsafe(32)


class LocalServer:
    """uvicorn serving the loopback API in a background thread (``port`` 0: any free port)."""

    def __init__(self, app: FastAPI, host: str = "127.0.0.1", port: int = 8765) -> None:
        import uvicorn

        if not is_loopback(host):
            raise ValueError(f"the agent listens on the loopback only, not {host!r}")
        self.host = host
        config = uvicorn.Config(app, host=host, port=port, log_level="warning", access_log=False, lifespan="off")
        self.server = uvicorn.Server(config)
        self._thread: threading.Thread | None = None

    def start(self, timeout: float = 10.0) -> LocalServer:
        self._thread = threading.Thread(target=self.server.run, name="agent-http", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self.server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise OSError(f"the agent could not listen on {self.host}")
            time.sleep(0.02)
        return self

    @property
    def port(self) -> int:
        return int(self.server.servers[0].sockets[0].getsockname()[1])

    @property
    def base_url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def stop(self) -> None:
        self.server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)
