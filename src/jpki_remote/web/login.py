"""Sign-in for the admin and for counter staff: cookie sessions, CSRF tokens, and the dependencies that use them.

Routes (``create_login_router``)::

    GET  /login?role=admin|staff&next=/path     a plain HTML sign-in form (no script)
    POST /api/v1/login/admin   {token}                      JSON or an HTML form post
    POST /api/v1/login/staff   {staff_id, password}         JSON or an HTML form post
    GET  /api/v1/login/session  -> {admin: {...} | null, staff: {staff_id, display_name, …} | null}
    POST /api/v1/logout        [{role}]                     ends the session(s), clears the cookies

**Cookies.** ``jpki_admin`` / ``jpki_staff`` hold the session token: HttpOnly (no script reads it),
``SameSite=Strict`` (not sent on any cross-site request), ``Secure`` when the site is served over https
(``Settings.public_base_url`` or the request), ``Path=/``. A session ends after ``Settings.login_idle_minutes``
without a request, after ``login_max_hours`` in any case, at sign-out, when the staff account is disabled, and —
for the admin — when the admin token changes.

**CSRF.** Every state-changing request (not GET/HEAD/OPTIONS) authenticated by one of these cookies must carry
``X-CSRF-Token``: HMAC-SHA-256 keyed with the session token, so the server needs nothing stored to check it, and
only a script of this origin can know it. The page reads it from the readable cookie ``jpki_admin_csrf`` /
``jpki_staff_csrf`` (or from the sign-in answer). A request carrying a bearer token (an API client, the terminal
agent) is not a cookie request and needs no CSRF token. Sign-in form posts are checked against ``Origin``/``Referer``
(login CSRF: nobody can sign a victim's browser into an attacker's account from another site).

**Dependencies.** :func:`admin_access` accepts the bearer admin token *or* the admin cookie session (the admin
pages' scripts — the audit browser, the analytics dashboard — fetch without an Authorization header);
:func:`admin_session_resolver` gives the admin cookie session alone (the app keeps one as
``app.state.admin_session``: the admin pages are served only to a signed-in admin); :func:`staff_resolver`
gives the signed-in staff member (401 ``staff_login_required`` without one) for the counter routes, which take the
staff id from it — never from a typed field.
"""

import hashlib
import hmac
import html
import json
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any
from urllib.parse import parse_qs, urlencode, urlsplit

from fastapi import APIRouter, Header, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response

from jpki_remote.config import Settings
from jpki_remote.store import Database
from jpki_remote.terminal import staff as staff_accounts
from jpki_remote.web.error_answers import error_answers
from jpki_remote.web.errors import ApiError, error_body
from jpki_remote.web.login_models import LoginSession

ROLES = ("admin", "staff")
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
CSRF_HEADER = "X-CSRF-Token"
MAX_LOGIN_BODY = 4096
TOUCH_EVERY = timedelta(seconds=30)  # last_used_at is written at most this often
STAFF_LOGIN_MESSAGE = ("職員のサインインが必要です。", "A member of staff must sign in.")
CSRF_MESSAGE = ("画面を読み込み直してから操作してください。", "Reload the page and try again (CSRF check failed).")
# sign-in: a refused token or password (401), a form posted from another site (403), a body over the cap or unreadable,
# the database unreachable (503)
SIGN_IN_ANSWERS = error_answers(401, 403, 413, 422, 503) | {
    303: {"description": "an HTML form post: on to `next` when signed in, back to the form when refused"}
}


def cookie_name(role: str) -> str:
    return f"jpki_{role}"


def csrf_cookie_name(role: str) -> str:
    return f"jpki_{role}_csrf"


def csrf_token(session_token: str) -> str:
    return hmac.new(session_token.encode(), b"jpki-remote csrf v1", hashlib.sha256).hexdigest()


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _now() -> datetime:
    return datetime.now(UTC)


def _utc(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def admin_fingerprint(admin_token: str) -> str:
    return "admin:" + hashlib.sha256(b"jpki-remote admin token\x00" + admin_token.encode()).hexdigest()[:32]


@dataclass(frozen=True)
class SignedIn:
    role: str
    subject: str
    token: str
    expires_at: datetime
    last_used_at: datetime


@dataclass(frozen=True)
class StaffCaller:
    staff_id: str
    display_name: str
    municipality_code: str | None


class LoginSessions:
    """Sessions in the database (any number of app servers share them)."""

    def __init__(self, database: Database, settings: Settings) -> None:
        self.database = database
        self.idle = timedelta(minutes=max(1, settings.login_idle_minutes))
        self.max_age = timedelta(hours=max(1, settings.login_max_hours))

    def create(self, role: str, subject: str) -> SignedIn:
        if role not in ROLES:
            raise ValueError(role)
        token = secrets.token_urlsafe(32)
        now = _now()
        with self.database.session() as session:
            session.add(
                LoginSession(
                    token_hash=_hash(token),
                    role=role,
                    subject=subject,
                    created_at=now,
                    last_used_at=now,
                    expires_at=now + self.max_age,
                    revoked=False,
                )
            )
        return SignedIn(role, subject, token, now + self.max_age, now)

    def resolve(self, role: str, token: str | None) -> SignedIn | None:
        if not token or not 16 <= len(token) <= 128:
            return None
        now = _now()
        with self.database.session() as session:
            row = session.get(LoginSession, _hash(token))
            if row is None or row.revoked or row.role != role:
                return None
            if _utc(row.expires_at) <= now or _utc(row.last_used_at) + self.idle <= now:
                return None
            if _utc(row.last_used_at) + TOUCH_EVERY <= now:
                row.last_used_at = now
            return SignedIn(row.role, row.subject, token, _utc(row.expires_at), _utc(row.last_used_at))

    def end(self, token: str | None) -> None:
        if not token or len(token) > 128:
            return
        with self.database.session() as session:
            row = session.get(LoginSession, _hash(token))
            if row is not None:
                row.revoked = True


def _secure(settings: Settings, request: Request) -> bool:
    return request.url.scheme == "https" or settings.public_base_url.startswith("https://")


def _set_cookies(response: Response, signed: SignedIn, settings: Settings, request: Request) -> None:
    secure = _secure(settings, request)
    max_age = int((signed.expires_at - _now()).total_seconds())
    response.set_cookie(
        cookie_name(signed.role),
        signed.token,
        max_age=max_age,
        path="/",
        secure=secure,
        httponly=True,
        samesite="strict",
    )
    response.set_cookie(
        csrf_cookie_name(signed.role),
        csrf_token(signed.token),
        max_age=max_age,
        path="/",
        secure=secure,
        httponly=False,
        samesite="strict",
    )


def _clear_cookies(response: Response, role: str, settings: Settings, request: Request) -> None:
    secure = _secure(settings, request)
    for name in (cookie_name(role), csrf_cookie_name(role)):
        response.delete_cookie(name, path="/", secure=secure, httponly=name == cookie_name(role), samesite="strict")


def check_csrf(request: Request, signed: SignedIn) -> None:
    """State-changing cookie requests need the session's CSRF token in ``X-CSRF-Token`` (403 ``csrf_failed``)."""
    if request.method in SAFE_METHODS:
        return
    given = request.headers.get(CSRF_HEADER.lower(), "")
    if not hmac.compare_digest(given.encode(), csrf_token(signed.token).encode()):
        raise ApiError(403, "csrf_failed", *CSRF_MESSAGE)


def _same_origin(request: Request) -> bool:
    """A sign-in form post must come from a page of this site (Origin, else Referer; neither: not a browser)."""
    source = request.headers.get("origin") or request.headers.get("referer")
    if source is None:
        return True
    parts = urlsplit(source)
    return parts.netloc.lower() == (request.headers.get("host") or "").lower()


def _bearer(authorization: str | None) -> str:
    value = (authorization or "").strip()
    return value[7:].strip() if value[:7].lower() == "bearer " else ""


# ---- dependencies --------------------------------------------------------------------------------------------------
def admin_session_resolver(
    settings: Settings, database: Database, admin_token: Callable[[], str]
) -> Callable[[Request], SignedIn | None]:
    """``resolve(request)`` → the admin cookie session of the request (signed in with the current admin token), or
    None. No CSRF check here: the callers do it for state changes."""
    sessions = LoginSessions(database, settings)

    def resolve(request: Request) -> SignedIn | None:
        signed = sessions.resolve("admin", request.cookies.get(cookie_name("admin")))
        if signed is None or not hmac.compare_digest(signed.subject, admin_fingerprint(admin_token())):
            return None
        return signed

    return resolve


def admin_access(settings: Settings, database: Database, admin_token: Callable[[], str]) -> Callable[..., None]:
    """Bearer admin token, or the admin cookie session (+ CSRF for state changes); else 401."""
    signed_in_admin = admin_session_resolver(settings, database, admin_token)

    def dependency(request: Request, authorization: Annotated[str | None, Header()] = None) -> None:
        token = _bearer(authorization)
        if token:
            if hmac.compare_digest(token.encode(), admin_token().encode()):
                return
            raise ApiError(401)
        signed = signed_in_admin(request)
        if signed is None:
            raise ApiError(401)
        check_csrf(request, signed)

    return dependency


def staff_resolver(settings: Settings, database: Database) -> Callable[[Request], StaffCaller]:
    """``resolve(request)`` → the signed-in staff member (401 ``staff_login_required``; 403 ``csrf_failed``)."""
    sessions = LoginSessions(database, settings)

    def resolve(request: Request) -> StaffCaller:
        signed = sessions.resolve("staff", request.cookies.get(cookie_name("staff")))
        if signed is None:
            raise ApiError(401, "staff_login_required", *STAFF_LOGIN_MESSAGE)
        with database.session() as session:
            member = staff_accounts.get_staff(session, signed.subject)
        if member is None:  # disabled since sign-in
            raise ApiError(401, "staff_login_required", *STAFF_LOGIN_MESSAGE)
        check_csrf(request, signed)
        return StaffCaller(member.staff_id, member.display_name, member.municipality_code)

    return resolve


# ---- routes --------------------------------------------------------------------------------------------------------
async def _credentials(request: Request) -> tuple[dict[str, Any], bool] | None:
    """The posted fields (JSON or form) and whether it was a form; None when unreadable."""
    raw = await request.body()
    if len(raw) > MAX_LOGIN_BODY:
        return None
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    try:
        if kind == "application/x-www-form-urlencoded":
            fields = {k: v[0] for k, v in parse_qs(raw.decode(), max_num_fields=10).items()}
            return fields, True
        body = json.loads(raw or b"{}")
    except (ValueError, UnicodeDecodeError):
        return None
    return (body, False) if isinstance(body, dict) else None


def _local_path(value: object, default: str) -> str:
    """``next`` may only be a path of this site (no open redirect)."""
    if not isinstance(value, str) or not value.startswith("/") or value.startswith("//") or "\\" in value:
        return default
    parts = urlsplit(value)
    return value if not parts.scheme and not parts.netloc and len(value) <= 200 else default


def _failed(form: bool, role: str, next_path: str) -> Response:
    if form:
        query = urlencode({"role": role, "failed": 1, "next": next_path})
        return RedirectResponse(f"/login?{query}", status_code=303)
    return JSONResponse(
        error_body(401, "login_failed", "IDまたはパスワードが違います。", "Wrong name or password."), status_code=401
    )


def create_login_router(settings: Settings, database: Database, admin_token: Callable[[], str]) -> APIRouter:
    router = APIRouter(tags=["login"])
    sessions = LoginSessions(database, settings)

    def signed_in(request: Request, form: bool, signed: SignedIn, next_path: str, body: dict[str, Any]) -> Response:
        response: Response
        if form:
            response = RedirectResponse(next_path, status_code=303)
        else:
            response = JSONResponse(
                {
                    "role": signed.role,
                    "csrf_token": csrf_token(signed.token),
                    "expires_at": signed.expires_at.isoformat(),
                    **body,
                }
            )
        _set_cookies(response, signed, settings, request)
        response.headers["Cache-Control"] = "no-store"
        return response

    @router.post("/api/v1/login/admin", responses=SIGN_IN_ANSWERS)
    async def login_admin(request: Request) -> Response:
        parsed = await _credentials(request)
        if parsed is None:
            raise ApiError(422)
        fields, form = parsed
        next_path = _local_path(fields.get("next"), "/admin")
        if form and not _same_origin(request):
            raise ApiError(403, "forbidden")
        given = fields.get("token")
        expected = admin_token()
        if not isinstance(given, str) or not given or not hmac.compare_digest(given.encode(), expected.encode()):
            return _failed(form, "admin", next_path)
        signed = sessions.create("admin", admin_fingerprint(expected))
        return signed_in(request, form, signed, next_path, {})

    @router.post("/api/v1/login/staff", responses=SIGN_IN_ANSWERS)
    async def login_staff(request: Request) -> Response:
        parsed = await _credentials(request)
        if parsed is None:
            raise ApiError(422)
        fields, form = parsed
        next_path = _local_path(fields.get("next"), "/counter")
        if form and not _same_origin(request):
            raise ApiError(403, "forbidden")
        with database.session() as session:
            member = staff_accounts.check_login(
                session,
                fields.get("staff_id"),
                fields.get("password"),
                max_failures=settings.login_max_failures,
                lock_minutes=settings.login_lock_minutes,
            )
        fields.pop("password", None)
        if member is None:
            return _failed(form, "staff", next_path)
        signed = sessions.create("staff", member.staff_id)
        extra = {
            "staff_id": member.staff_id,
            "display_name": member.display_name,
            "municipality_code": member.municipality_code,
        }
        return signed_in(request, form, signed, next_path, extra)

    @router.get("/api/v1/login/session", responses=error_answers(503))
    def current(request: Request) -> Response:
        answer: dict[str, Any] = {"admin": None, "staff": None}
        admin = sessions.resolve("admin", request.cookies.get(cookie_name("admin")))
        if admin is not None and hmac.compare_digest(admin.subject, admin_fingerprint(admin_token())):
            answer["admin"] = {"expires_at": admin.expires_at.isoformat(), "csrf_token": csrf_token(admin.token)}
        staff = sessions.resolve("staff", request.cookies.get(cookie_name("staff")))
        if staff is not None:
            with database.session() as session:
                member = staff_accounts.get_staff(session, staff.subject)
            if member is not None:
                answer["staff"] = {
                    "staff_id": member.staff_id,
                    "display_name": member.display_name,
                    "municipality_code": member.municipality_code,
                    "expires_at": staff.expires_at.isoformat(),
                    "csrf_token": csrf_token(staff.token),
                }
        return JSONResponse(answer, headers={"Cache-Control": "no-store"})

    @router.post(
        "/api/v1/logout",
        status_code=204,
        responses={303: {"description": "an HTML form post: back to the start page"}} | error_answers(413, 503),
    )
    async def logout(request: Request) -> Response:
        parsed = await _credentials(request)
        fields, form = parsed if parsed is not None else ({}, False)
        roles = [fields["role"]] if fields.get("role") in ROLES else list(ROLES)
        response: Response = RedirectResponse("/", status_code=303) if form else Response(status_code=204)
        for role in roles:
            sessions.end(request.cookies.get(cookie_name(role)))
            _clear_cookies(response, role, settings, request)
        return response

    @router.get("/login", response_class=HTMLResponse, include_in_schema=False)
    def login_page(role: str = "staff", next: str = "", failed: int = 0) -> HTMLResponse:
        role = role if role in ROLES else "staff"
        return login_form(role, _local_path(next, "/admin" if role == "admin" else "/counter"), bool(failed))

    return router


def login_form(role: str, next_path: str, failed: bool) -> HTMLResponse:
    """A script-free sign-in page (Japanese first, English below)."""
    esc = html.escape
    if role == "admin":
        title, title_en = "管理者のサインイン", "Administrator sign-in"
        fields = (
            '<div class="field"><label for="token">管理者トークン <span lang="en">Admin token</span></label>'
            '<input id="token" name="token" type="password" required maxlength="200" autocomplete="off"></div>'
        )
        action = "/api/v1/login/admin"
    else:
        title, title_en = "職員のサインイン", "Staff sign-in"
        fields = (
            '<div class="field"><label for="staff_id">職員ID <span lang="en">Staff id</span></label>'
            '<input id="staff_id" name="staff_id" required maxlength="64" autocomplete="username"></div>'
            '<div class="field"><label for="password">パスワード <span lang="en">Password</span></label>'
            '<input id="password" name="password" type="password" required maxlength="128" '
            'autocomplete="current-password"></div>'
        )
        action = "/api/v1/login/staff"
    error = (
        '<p class="error-box" role="alert">IDまたはパスワードが違います。'
        '<span lang="en">Wrong name or password.</span></p>'
        if failed
        else ""
    )
    page = f"""<!doctype html>
<html lang="ja"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title} — jpki-remote</title><link rel="stylesheet" href="/static/pages/css/app.css"></head>
<body><main id="main" class="page-login"><h1>{title} <span lang="en">{title_en}</span></h1>{error}
<form class="panel" method="post" action="{action}">{fields}
<input type="hidden" name="next" value="{esc(next_path)}">
<div class="actions"><button class="btn btn-primary" type="submit">サインイン <span lang="en">Sign in</span>
</button></div>
</form></main></body></html>"""
    headers = {
        "Content-Security-Policy": "default-src 'self'; script-src 'none'; style-src 'self'; form-action 'self'; "
        "frame-ancestors 'none'; base-uri 'none'; object-src 'none'",
        "Cache-Control": "no-store",
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "same-origin",
    }
    return HTMLResponse(page, headers=headers)
