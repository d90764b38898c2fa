"""Page routes: ``/`` (index), ``/kiosk``, ``/portal``, ``/counter``, ``/admin`` (+ ``/admin/audit``,
``/admin/stats``) and the pages' own static files under ``/static/pages/``.

The routes only render templates; every dynamic action goes through the JSON API (``/api/v1``) from the pages'
scripts. The policy table is rendered here, on the server, straight from the policy data the engine uses, so what
the admin sees is what the engine enforces. Every admin page (``/admin``, ``/admin/audit``, ``/admin/stats``) is
rendered only for a signed-in admin (the admin sign-in's cookie session, :mod:`jpki_remote.web.login`; its scripts
call the API on that session); anyone else — a bearer header or a staff session included — is redirected to the
sign-in form, which comes back to the page.

Every page answer carries a strict Content-Security-Policy (scripts and styles from this origin only; the camera
stream as ``blob:``/``mediastream:``; ``connect-src`` adds the loopback terminal agent) and ``Cache-Control:
no-store`` — a kiosk page must not survive in a shared browser's cache.
"""

from __future__ import annotations

import json
import mimetypes
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates

from jpki_remote.web.pages import policy_view

PACKAGE_DIR = Path(str(resources.files("jpki_remote.web.pages")))
STATIC_DIR = (PACKAGE_DIR / "static").resolve()
TEMPLATES = Jinja2Templates(directory=str(PACKAGE_DIR / "templates"))
API_BASE = "/api/v1"
STATIC_URL = "/static/pages"

# Inactivity before the kiosk warns, and before it wipes the screen (seconds). The online portal is more patient.
KIOSK_IDLE_WARN = 45
KIOSK_IDLE_WIPE = 60
PORTAL_IDLE_WARN = 240
PORTAL_IDLE_WIPE = 300

router = APIRouter(include_in_schema=False)


def loopback_agent_url(raw: str | None) -> str | None:
    """The terminal agent's base URL if ``raw`` is an ``http://`` URL on the loopback interface, else None.

    PINs typed on the page go to the agent, so only an agent on this very machine is accepted; a link that points
    the page at any other host is ignored (the page then says no agent is connected).
    """
    if not raw or len(raw) > 100:
        return None
    try:
        parts = urlsplit(raw)
        port = parts.port
    except ValueError:
        return None
    if parts.scheme != "http" or parts.hostname not in ("127.0.0.1", "localhost", "::1") or port is None:
        return None
    if parts.path not in ("", "/") or parts.query or parts.fragment or parts.username or parts.password:
        return None
    host = f"[{parts.hostname}]" if parts.hostname == "::1" else parts.hostname
    return f"http://{host}:{port}"


def _csp(agent: str | None) -> str:
    connect = "'self'" + (f" {agent}" if agent else "")
    return (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
        f"media-src 'self' blob: mediastream:; connect-src {connect}; font-src 'self'; object-src 'none'; "
        "base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    )


def _render(request: Request, template: str, *, agent: str | None = None, **context: Any) -> HTMLResponse:
    config = {"api": API_BASE, "static": STATIC_URL, "agent": agent, **context.pop("config", {})}
    response = TEMPLATES.TemplateResponse(
        request,
        template,
        {"static": STATIC_URL, "config_json": json.dumps(config, ensure_ascii=False), "config": config, **context},
    )
    response.headers["Content-Security-Policy"] = _csp(agent)
    response.headers["Cache-Control"] = "no-store"
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "no-referrer"
    response.headers["Permissions-Policy"] = "camera=(self), microphone=(), geolocation=()"
    return response


@router.get("/", response_class=HTMLResponse)
def index(request: Request) -> HTMLResponse:
    return _render(request, "index.html", page="index")


@router.get("/kiosk", response_class=HTMLResponse)
def kiosk(request: Request, agent: str | None = None) -> HTMLResponse:
    """The kiosk screen. The terminal agent opens it as ``/kiosk?agent=http://127.0.0.1:PORT#link=CODE``: the
    one-time browser-link code travels in the fragment, which the browser never sends to any server or log."""
    url = loopback_agent_url(agent)
    config = {
        "channel": "kiosk",
        "idle_warn": KIOSK_IDLE_WARN,
        "idle_wipe": KIOSK_IDLE_WIPE,
        **policy_view.holder_options("kiosk"),
    }
    return _render(request, "holder.html", agent=url, page="kiosk", config=config)


@router.get("/portal", response_class=HTMLResponse)
def portal(request: Request, agent: str | None = None) -> HTMLResponse:
    """The online portal (the holder's PC or phone with the local agent); same flows, responsive layout."""
    url = loopback_agent_url(agent)
    config = {
        "channel": "online",
        "idle_warn": PORTAL_IDLE_WARN,
        "idle_wipe": PORTAL_IDLE_WIPE,
        **policy_view.holder_options("online"),
    }
    return _render(request, "holder.html", agent=url, page="portal", config=config)


@router.get("/counter", response_class=HTMLResponse)
def counter(request: Request, agent: str | None = None) -> HTMLResponse:
    url = loopback_agent_url(agent)
    return _render(request, "counter.html", agent=url, page="counter", config={"channel": "counter"})


def _admin_sign_in(request: Request) -> Response | None:
    """None for a signed-in admin (the admin sign-in's cookie session, ``app.state.admin_session``); for anyone else
    — a bearer header is for API clients, a staff session is not an admin one — a redirect to the sign-in form,
    which comes back to this page."""
    signed_in = getattr(request.app.state, "admin_session", None)
    if signed_in is not None and signed_in(request) is not None:
        return None
    target = "/login?" + urlencode({"role": "admin", "next": request.url.path})
    return RedirectResponse(target, status_code=303, headers={"Cache-Control": "no-store"})


@router.get("/admin", response_class=HTMLResponse)
def admin_policy(request: Request) -> Response:
    """The policy table, for a signed-in admin only. API clients: ``GET /api/v1/admin/policy`` (bearer token)."""
    refused = _admin_sign_in(request)
    if refused is not None:
        return refused
    return _render(request, "admin_policy.html", page="admin", section="policy", table=policy_view.policy_table())


@router.get("/admin/audit", response_class=HTMLResponse)
def admin_audit(request: Request) -> Response:
    """The audit-log browser, for a signed-in admin only; its scripts call the API with that session. API clients
    use ``GET /api/v1/admin/audit`` with the bearer admin token."""
    refused = _admin_sign_in(request)
    if refused is not None:
        return refused
    return _render(request, "admin_audit.html", page="admin", section="audit")


@router.get("/admin/stats", response_class=HTMLResponse)
def admin_stats(request: Request) -> Response:
    """Live statistics and the what-if, for a signed-in admin only; the dashboard's scripts call the analytics API
    with that session. API clients use ``/api/analytics/…`` with the bearer admin token."""
    refused = _admin_sign_in(request)
    if refused is not None:
        return refused
    return _render(request, "admin_stats.html", page="admin", section="stats", analytics_fragment=_analytics_fragment())


def _analytics_fragment() -> str | None:
    """The analytics engineer's dashboard section (live statistics and the what-if slider), if installed."""
    try:
        from jpki_remote.analytics.web import DEFAULT_PREFIX, dashboard_fragment
    except ImportError:
        return None
    return dashboard_fragment(DEFAULT_PREFIX)


@router.get(STATIC_URL + "/{path:path}")
def static_file(path: str) -> Response:
    """A file of ``static/`` (no directory listing, nothing outside it)."""
    candidate = (STATIC_DIR / path).resolve()
    if not path or not candidate.is_relative_to(STATIC_DIR) or not candidate.is_file():
        return Response(status_code=404)
    media_type = mimetypes.guess_type(candidate.name)[0] or "application/octet-stream"
    if candidate.suffix == ".js":
        media_type = "text/javascript"
    headers = {"Cache-Control": "public, max-age=300", "X-Content-Type-Options": "nosniff"}
    return FileResponse(candidate, media_type=media_type, headers=headers)
