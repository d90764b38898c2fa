"""The FastAPI application: ``create_app(settings) -> FastAPI``.

JSON API under ``/api/v1`` (OpenAPI at ``/api/v1/openapi.json``, docs at ``/api/v1/docs``):

* terminals — ``POST /terminals/challenge`` (limited per client address and claimed terminal id:
  :mod:`jpki_remote.web.challenge_limits`), ``POST /terminals/session`` (Ed25519 challenge-response → bearer token),
  ``POST /terminals/browser-link`` (agent) and ``POST /terminals/browser-session`` (the page bound to that terminal),
  ``DELETE /terminals/session``;
* procedures — ``POST /procedures`` (the channel follows from the terminal's kind), ``GET /procedures/{id}``,
  ``POST …/exchange`` and ``POST …/new-pin`` (agent only), ``POST …/face``, ``POST …/code/request``,
  ``POST …/code/verify``, ``POST …/cancel``;
* counter (counter terminals) — ``POST /counter/procedures``, ``POST /counter/procedures/{id}/staff-check``,
  ``POST /counter/issuance`` (new card: the holder then sets the PINs through the agent),
  ``POST /counter/registry-events``, ``GET /registry/cards/{card_id}/limits`` and
  ``POST /registry/cards/{card_id}/unlock`` (staff lift a lockout of the rate limits, audited);
* admin (bearer admin token) — ``GET /admin/policy``, ``GET /admin/audit``, ``GET /admin/audit/{seq}/proof``,
  ``POST /admin/recover``.

Other packages' routers are mounted when present: OCSP/CRL (``ca.status``) at ``/ocsp`` and ``/crl``, analytics at
its own prefix. ``web/pages`` holds the templates and static files of the HTML pages.

Every error is JSON with a stable code and a Japanese and English message — one model
(:mod:`jpki_remote.web.error_answers`), which each route declares in the OpenAPI document for the statuses it can
answer; request bodies are capped; a procedure is visible only to the terminal that started it, and starting one
answers the same for any well-formed card id.

Rate limits (:mod:`jpki_remote.procedures.attempts`) count procedure starts, face captures and security-code sends
and entries per terminal and client address (:mod:`jpki_remote.web.client_address`; ``X-Forwarded-For`` only from
``JPKI_TRUSTED_PROXIES``) and per card — a card only once it has proved possession (finding S-5; an online loss
report, which has no card, counts its card under limits of its own, S-17). A start never looks at the card: a
terminal or address lockout answers 429 ``rate_limited`` ("try again later", ``Retry-After``), the same for unknown
and known cards. A card's lockout ends its procedure at the card proof (or at a face or code attempt) with
``locked_out`` ("please visit the counter"), carried by the procedure's view; so does any lockout in the middle of a
procedure. ``card_busy`` is a 409 of counter issuance only; a remote procedure whose card is held elsewhere ends
with it at the card proof.
"""

import base64
import binascii
import logging
import os
import secrets
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Header, Query, Request
from fastapi import Path as Path_
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates

from jpki_remote import __version__
from jpki_remote.config import Settings
from jpki_remote.procedures.engine import Engine
from jpki_remote.procedures.ports import Ports
from jpki_remote.store import Database
from jpki_remote.terminal import service as terminals
from jpki_remote.terminal.models import SessionRole, Terminal, TerminalKind
from jpki_remote.web import schemas
from jpki_remote.web.challenge_limits import ChallengeLimits
from jpki_remote.web.client_address import client_address, parse_trusted
from jpki_remote.web.error_answers import (
    ADMIN,
    ADMIN_CHANGE,
    AGENT,
    COUNTER,
    DATABASE,
    ENGINE,
    ISSUING,
    JSON_BODY,
    LIMITED_RETRY_AFTER,
    NOT_FOUND,
    PARAMETERS,
    PROCEDURE,
    STARTING,
    STEP,
    TERMINAL,
    document_error_answers,
    error_answers,
)
from jpki_remote.web.errors import ApiError, error_body, install_error_handlers

log = logging.getLogger(__name__)
PAGES = Path(__file__).with_name("pages")
API = "/api/v1"
AUDIT_BOUND = 2**62  # audit sequence numbers and page sizes: beyond this a 422, not a database overflow


@dataclass(frozen=True)
class Caller:
    terminal_id: str
    role: SessionRole
    kind: TerminalKind
    municipality_code: str | None
    staff_id: str | None = None  # counter routes: the signed-in member of staff (web.login), never a typed field


class BodyLimit:
    """Refuses request bodies above ``limit`` bytes with 413 — by Content-Length and while streaming."""

    def __init__(self, app: Callable[..., Awaitable[None]], limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(
        self, scope: MutableMapping[str, Any], receive: Callable[..., Any], send: Callable[..., Any]
    ) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.limit):
            await JSONResponse(error_body(413), status_code=413)(scope, receive, send)
            return
        seen = 0

        async def limited() -> dict[str, Any]:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:
                    raise ApiError(413)
            return message

        try:
            await self.app(scope, limited, send)
        except ApiError:
            await JSONResponse(error_body(413), status_code=413)(scope, receive, send)


class NoStore:
    """``Cache-Control: no-store`` and ``Pragma: no-cache`` on every answer under ``/api/v1`` (tokens, procedure
    views, audit events must not stay in a browser or proxy cache — finding S-8), errors included."""

    HEADERS = ((b"cache-control", b"no-store"), (b"pragma", b"no-cache"))

    def __init__(self, app: Callable[..., Awaitable[None]], prefix: str = API) -> None:
        self.app = app
        self.prefix = prefix

    async def __call__(
        self, scope: MutableMapping[str, Any], receive: Callable[..., Any], send: Callable[..., Any]
    ) -> None:
        if scope["type"] != "http" or not str(scope.get("path", "")).startswith(self.prefix):
            await self.app(scope, receive, send)
            return

        async def send_no_store(message: MutableMapping[str, Any]) -> None:
            if message["type"] == "http.response.start":
                names = {b"cache-control", b"pragma"}
                headers = [(k, v) for k, v in message.get("headers", []) if k.lower() not in names]
                message["headers"] = [*headers, *self.HEADERS]
            await send(message)

        await self.app(scope, receive, send_no_store)


def admin_token(settings: Settings) -> str:
    if settings.admin_token:
        return settings.admin_token
    path = settings.data_dir / "admin-token"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as handle:
                handle.write(secrets.token_urlsafe(32))
        except FileExistsError:
            pass
    return path.read_text().strip()


def _b64(value: str) -> bytes:
    try:
        return base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
    except (binascii.Error, ValueError):
        raise ApiError(422) from None


def _image_b64(value: str) -> bytes:
    """An image sent as standard base64 (optionally a ``data:`` URL): anything else — non-ASCII, bad padding,
    stray characters — is a 422, never a crash."""
    try:
        return base64.b64decode(value.split(",", 1)[-1], validate=True)
    except (binascii.Error, ValueError):
        raise ApiError(422) from None


def create_app(
    settings: Settings,
    *,
    db: Database | None = None,
    ports: Ports | None = None,
    engine: Engine | None = None,
    mount_status: bool = True,
) -> FastAPI:
    """The whole web application over ``settings`` (or the given database / ports / engine, for tests)."""
    from datetime import timedelta

    database = db or Database(settings.effective_database_url)
    state: dict[str, Any] = {"engine": engine}
    parse_trusted(settings.trusted_proxies)  # a bad JPKI_TRUSTED_PROXIES stops the start, not the first request

    def address_of(request: Request) -> str | None:
        peer = request.client.host if request.client else None
        return client_address(peer, request.headers.get("x-forwarded-for"), settings.trusted_proxies)

    def get_engine() -> Engine:
        if state["engine"] is None:
            from jpki_remote.procedures.ports import default_ports

            state["engine"] = Engine(
                database,
                ports or default_ports(database, settings),
                idle_timeout=timedelta(minutes=settings.procedure_idle_minutes),
            )
        from jpki_remote.web.view_fields import with_view_fields

        return with_view_fields(state["engine"])  # views carry completed_at and code_tries_left

    app = FastAPI(
        title="jpki-remote",
        version=__version__,
        description="Non-face-to-face JPKI renewal and PIN reset (電子証明書更新・暗証番号初期化の非対面化).",
        openapi_url=f"{API}/openapi.json",
        docs_url=f"{API}/docs",
        redoc_url=None,
    )
    app.state.settings = settings
    app.state.db = database
    app.state.get_engine = get_engine
    install_error_handlers(app)
    document_error_answers(app)

    def caller(authorization: Annotated[str | None, Header()] = None) -> Caller:
        token = (authorization or "").removeprefix("Bearer ").strip()
        with database.session() as session:
            row = terminals.resolve_session(session, token, idle_seconds=settings.session_idle_seconds)
            if row is None:
                raise ApiError(401)
            terminal = session.get(Terminal, row.terminal_id)
            assert terminal is not None
            return Caller(row.terminal_id, row.role, terminal.kind, terminal.municipality_code)

    def agent(who: Annotated[Caller, Depends(caller)]) -> Caller:
        if who.role is not SessionRole.AGENT:
            raise ApiError(403)
        return who

    from jpki_remote.web.login import admin_access, admin_session_resolver, staff_resolver

    signed_in_staff = staff_resolver(settings, database)

    def counter(request: Request, who: Annotated[Caller, Depends(caller)]) -> Caller:
        """A counter terminal's session *and* a signed-in member of staff (of that municipality, if they have one)."""
        if who.kind is not TerminalKind.COUNTER:
            raise ApiError(403)
        staff = signed_in_staff(request)
        if staff.municipality_code and who.municipality_code and staff.municipality_code != who.municipality_code:
            raise ApiError(403)
        return Caller(who.terminal_id, who.role, who.kind, who.municipality_code, staff.staff_id)

    admin = admin_access(settings, database, lambda: admin_token(settings))  # bearer token or admin sign-in
    app.state.admin_session = admin_session_resolver(settings, database, lambda: admin_token(settings))  # pages

    api = APIRouter(prefix=API)

    # ---- terminals ----------------------------------------------------------------------------------------
    @api.get("/health", tags=["meta"])
    def health() -> dict[str, str]:
        return {"status": "ok", "version": __version__}

    challenge_limits = ChallengeLimits(settings, database)
    app.state.challenge_limits = challenge_limits

    @api.post("/terminals/challenge", tags=["terminals"], responses=JSON_BODY | DATABASE | LIMITED_RETRY_AFTER)
    def terminal_challenge(body: schemas.ChallengeRequest, request: Request) -> dict[str, str]:
        challenge_limits.admit(body.terminal_id, address_of(request))  # 429 + Retry-After over a limit (S-16)
        with database.session() as session:
            nonce = terminals.issue_challenge(session, body.terminal_id)
        return {"nonce": base64.urlsafe_b64encode(nonce).decode().rstrip("=")}

    @api.post("/terminals/session", tags=["terminals"], responses=TERMINAL | JSON_BODY)
    def terminal_session(body: schemas.SessionRequest) -> dict[str, str]:
        nonce, signature = _b64(body.nonce), _b64(body.signature)
        with database.session() as session:  # commits the used-up challenge, also when the signature is refused
            issued = terminals.authenticate(session, body.terminal_id, nonce, signature)
        if issued is None:
            raise ApiError(401, "terminal_auth_failed")
        return {"token": issued.token, "expires_at": issued.expires_at.isoformat(), "role": issued.role.value}

    @api.post("/terminals/browser-link", tags=["terminals"], responses=AGENT)
    def browser_link(who: Annotated[Caller, Depends(agent)], authorization: Annotated[str, Header()]) -> dict:
        with database.session() as session:
            row = terminals.resolve_session(session, authorization.removeprefix("Bearer ").strip())
            assert row is not None
            code = terminals.create_browser_link(session, row)
        return {"code": code, "terminal_id": who.terminal_id}

    @api.post("/terminals/browser-session", tags=["terminals"], responses=TERMINAL | JSON_BODY)
    def browser_session(body: schemas.BrowserSessionRequest) -> dict[str, str]:
        try:
            with database.session() as session:
                issued = terminals.redeem_browser_link(session, body.code)
        except terminals.TerminalAuthError:
            raise ApiError(401, "terminal_auth_failed") from None
        return {"token": issued.token, "expires_at": issued.expires_at.isoformat(), "role": issued.role.value}

    @api.get("/terminals/procedure", tags=["terminals"], responses=TERMINAL | ENGINE)
    def terminal_procedure(who: Annotated[Caller, Depends(caller)]) -> dict:
        """The procedure this terminal is running (the agent polls it to pick up what the page started)."""
        from sqlalchemy import select

        from jpki_remote.procedures.models import Procedure, ProcedureStatus

        with database.session() as session:
            pid = session.scalars(
                select(Procedure.id)
                .where(Procedure.terminal_id == who.terminal_id, Procedure.status == ProcedureStatus.ACTIVE)
                .order_by(Procedure.created_at.desc())
            ).first()
        return {"procedure": None if pid is None else get_engine().view(pid, who.terminal_id)}

    @api.delete("/terminals/session", tags=["terminals"], responses=TERMINAL)
    def end_session(_who: Annotated[Caller, Depends(caller)], authorization: Annotated[str, Header()]) -> dict:
        with database.session() as session:
            terminals.end_session(session, authorization.removeprefix("Bearer ").strip())
        return {"status": "ended"}

    # ---- procedures ----------------------------------------------------------------------------------------
    channel_of = {TerminalKind.KIOSK: "kiosk", TerminalKind.APP: "online", TerminalKind.COUNTER: "counter"}

    @api.post(
        "/procedures",
        status_code=201,
        tags=["procedures"],
        responses=TERMINAL | JSON_BODY | STARTING | LIMITED_RETRY_AFTER,
    )
    def start(body: schemas.StartRequest, who: Annotated[Caller, Depends(caller)], request: Request) -> dict:
        return get_engine().start(
            kind=body.kind,
            target=body.target,
            channel=channel_of[who.kind],
            card_id=body.card_id,
            terminal_id=who.terminal_id,
            terminal_kind=who.kind.value,
            options={"known_pin": body.known_pin} if body.known_pin else None,
            address=address_of(request),
        )

    @api.get("/procedures/{procedure_id}", tags=["procedures"], responses=TERMINAL | PROCEDURE)
    def status(procedure_id: str, who: Annotated[Caller, Depends(caller)]) -> dict:
        return get_engine().view(procedure_id, who.terminal_id)

    def _exchange(procedure_id: str, body: schemas.ExchangeRequest, who: Caller, new_pin: str | None) -> dict:
        try:
            responses = [bytes.fromhex(r) for r in body.responses]
        except ValueError:
            raise ApiError(422) from None
        return get_engine().exchange(
            procedure_id, who.terminal_id, seq=body.seq, responses=responses, new_pin=new_pin, event=body.event
        )

    @api.post("/procedures/{procedure_id}/exchange", tags=["procedures"], responses=AGENT | JSON_BODY | STEP)
    def exchange(procedure_id: str, body: schemas.ExchangeRequest, who: Annotated[Caller, Depends(agent)]) -> dict:
        return _exchange(procedure_id, body, who, None)

    @api.post("/procedures/{procedure_id}/new-pin", tags=["procedures"], responses=AGENT | JSON_BODY | STEP)
    def new_pin(procedure_id: str, body: schemas.NewPinRequest, who: Annotated[Caller, Depends(agent)]) -> dict:
        """Exchange carrying the holder's new PIN (reset): used in memory to build the secure-messaging command."""
        pin = body.new_pin
        try:
            return _exchange(procedure_id, body, who, pin)
        finally:
            del pin

    @api.post("/procedures/{procedure_id}/face", tags=["procedures"], responses=TERMINAL | JSON_BODY | STEP)
    def face(
        procedure_id: str, body: schemas.FaceRequest, who: Annotated[Caller, Depends(caller)], request: Request
    ) -> dict:
        frames = [_image_b64(f) for f in body.frames]
        if any(len(f) > settings.max_request_bytes for f in frames):
            raise ApiError(413)
        try:
            return get_engine().submit_face(procedure_id, who.terminal_id, frames, address=address_of(request))
        finally:
            frames.clear()  # the images are not kept beyond the comparison

    @api.post(
        "/procedures/{procedure_id}/code/request", tags=["procedures"], responses=TERMINAL | STEP | LIMITED_RETRY_AFTER
    )
    def code_request(procedure_id: str, who: Annotated[Caller, Depends(caller)], request: Request) -> dict:
        return get_engine().request_code(procedure_id, who.terminal_id, address=address_of(request))

    @api.post("/procedures/{procedure_id}/code/verify", tags=["procedures"], responses=TERMINAL | JSON_BODY | STEP)
    def code_verify(
        procedure_id: str, body: schemas.CodeVerifyRequest, who: Annotated[Caller, Depends(caller)], request: Request
    ) -> dict:
        return get_engine().verify_code(procedure_id, who.terminal_id, body.code, address=address_of(request))

    @api.post("/procedures/{procedure_id}/cancel", tags=["procedures"], responses=TERMINAL | STEP)
    def cancel(procedure_id: str, who: Annotated[Caller, Depends(caller)]) -> dict:
        return get_engine().cancel(procedure_id, who.terminal_id)

    # ---- counter ---------------------------------------------------------------------------------------------
    @api.post("/counter/procedures", status_code=201, tags=["counter"], responses=COUNTER | JSON_BODY | STARTING)
    def counter_start(body: schemas.CounterStartRequest, who: Annotated[Caller, Depends(counter)]) -> dict:
        return get_engine().start(
            kind=body.kind,
            target=body.target,
            channel="counter",
            card_id=body.card_id,
            terminal_id=who.terminal_id,
            terminal_kind=who.kind.value,
            actor=f"staff:{who.staff_id}",
        )

    @api.post("/counter/procedures/{procedure_id}/staff-check", tags=["counter"], responses=COUNTER | JSON_BODY | STEP)
    def staff_check(
        procedure_id: str, body: schemas.StaffCheckRequest, who: Annotated[Caller, Depends(counter)]
    ) -> dict:
        get_engine().view(procedure_id, who.terminal_id)  # only this counter's procedures
        return get_engine().record_staff_check(procedure_id, str(who.staff_id), body.documents)

    @api.post("/counter/issuance", status_code=201, tags=["counter"], responses=COUNTER | JSON_BODY | ISSUING)
    def issuance(body: schemas.IssuanceRequest, who: Annotated[Caller, Depends(counter)]) -> dict:
        """交付: the delivered card, the ID documents checked, the photo (only its encoding is kept), contacts."""
        photo = _image_b64(body.photo) if body.photo else None
        try:
            return get_engine().start_issuance(
                resident_id=body.resident_id,
                card_id=body.card_id,
                diversification_data=bytes.fromhex(body.diversification_data),
                card_public_key_der=bytes.fromhex(body.card_public_key) if body.card_public_key else None,
                card_expiry=body.card_expiry,
                terminal_id=who.terminal_id,
                staff_id=str(who.staff_id),
                documents=body.documents,
                photo=photo,
                contacts=[(c.kind, c.address) for c in body.contacts],
            )
        except (ValueError, binascii.Error):
            raise ApiError(422) from None
        finally:
            photo = None

    @api.post(
        "/counter/registry-events",
        status_code=201,
        tags=["counter"],
        responses=COUNTER | JSON_BODY | STARTING | NOT_FOUND,
    )
    def registry_event(body: schemas.RegistryEventRequest, who: Annotated[Caller, Depends(counter)]) -> dict:
        from sqlalchemy import select

        from jpki_remote.registry import service as registry
        from jpki_remote.registry.models import Card, CardState

        try:
            with database.session() as session:
                resident = registry.get_resident(session, body.resident_id)
                if who.municipality_code and resident.municipality_code != who.municipality_code:
                    # another municipality's resident reads exactly like an unknown one (finding S-11)
                    raise registry.RegistryError("resident_unknown", "no such resident")
                event = registry.record_event(session, body.resident_id, body.kind, dict(body.changes))
                card = session.scalars(
                    select(Card).where(
                        Card.resident_id == body.resident_id,
                        Card.state.in_([CardState.ACTIVE, CardState.REMOTE_LOCKED]),
                    )
                ).first()
                event_id, card_id = event.id, card.card_id if card else None
        except registry.RegistryError as exc:
            raise ApiError(404 if exc.code.endswith("unknown") else 422, exc.code) from None
        if card_id is None:
            return {"event_id": event_id, "procedure": None}
        engine_ = get_engine()
        reply = engine_.start(
            kind="registry_event",
            target="certificates",
            channel="counter",
            card_id=card_id,
            terminal_id=who.terminal_id,
            terminal_kind=who.kind.value,
            actor=f"staff:{who.staff_id}",
            options={"event_id": event_id, "event_kind": body.kind},
        )
        reply = engine_.record_staff_check(reply["id"], str(who.staff_id), body.documents)
        with database.session() as session:
            from jpki_remote.registry.models import RegistryEvent

            row = session.get(RegistryEvent, event_id)
            if row is not None:
                row.procedure_id = reply["id"]
        return {"event_id": event_id, "procedure": reply}

    def staff_card(card_id: str, who: Caller) -> Any:
        """The limits of a card, for counter staff of the card's municipality (staff may know a card exists)."""
        from jpki_remote.registry import service as registry

        limits = get_engine().ports.limits
        if limits is None:
            raise ApiError(503)
        with database.session() as session:
            card = registry.get_card(session, card_id) if 1 <= len(card_id) <= 32 else None
            if card is None or (who.municipality_code and card.municipality_code != who.municipality_code):
                raise ApiError(404)
        return limits

    def _lockouts(locks: list[Any]) -> list[dict[str, Any]]:
        return [
            {"scope": str(lock.scope), "reason": lock.reason, "until": lock.until.isoformat(timespec="seconds")}
            for lock in locks
        ]

    @api.get("/registry/cards/{card_id}/limits", tags=["counter"], responses=COUNTER | NOT_FOUND | ENGINE)
    def card_limits(card_id: str, who: Annotated[Caller, Depends(counter)]) -> dict:
        limits = staff_card(card_id, who)  # the card's own limits and its online loss reports' (S-17)
        locks = limits.status(card_id=card_id) + limits.for_loss_reports().status(card_id=card_id)
        return {"card_id": card_id, "locked": bool(locks), "lockouts": _lockouts(locks)}

    @api.post("/registry/cards/{card_id}/unlock", tags=["counter"], responses=COUNTER | JSON_BODY | NOT_FOUND | ENGINE)
    def unlock(card_id: str, body: schemas.UnlockRequest, who: Annotated[Caller, Depends(counter)]) -> dict:
        """Staff lift the card's lockout after checking the holder's ID documents (``Limits.lift``, audited) — its
        own limits and its online loss reports' (a loss-report lockout is lifted in the same action)."""
        limits = staff_card(card_id, who)
        note = "documents checked: " + ",".join(body.documents)
        lifted = limits.lift(
            card_id=card_id,
            staff_id=f"staff:{who.staff_id}",
            counter_terminal=who.terminal_id,
            note=note,
            loss_reports=True,
        )
        return {"card_id": card_id, "lifted": _lockouts(lifted), "locked": False}

    # ---- admin -----------------------------------------------------------------------------------------------
    @api.get("/admin/policy", tags=["admin"], dependencies=[Depends(admin)], responses=ADMIN)
    def policy() -> dict:
        return get_engine().policy.as_dict()

    @api.get("/admin/audit", tags=["admin"], dependencies=[Depends(admin)], responses=ADMIN | PARAMETERS)
    def audit(
        after: Annotated[int, Query(ge=-AUDIT_BOUND, le=AUDIT_BOUND)] = 0,
        limit: Annotated[int, Query(ge=-AUDIT_BOUND, le=AUDIT_BOUND)] = 50,
        procedure_id: str | None = None,
        newest_first: bool = True,
    ) -> dict:
        from jpki_remote.audit.log import AuditLog

        log_ = AuditLog(database)
        events = log_.events(
            procedure_id=procedure_id,
            after_seq=max(0, after) or None,
            limit=max(1, min(limit, 500)),
            newest_first=newest_first,
        )
        from jpki_remote.web.audit_view import latest_head_view

        head = latest_head_view(database, settings)
        return {"size": log_.size(), "events": [_event_dict(e) for e in events], "signed_head": head}

    @api.get(
        "/admin/audit/{seq}/proof",
        tags=["admin"],
        dependencies=[Depends(admin)],
        responses=ADMIN | PARAMETERS | NOT_FOUND,
    )
    def audit_proof(seq: Annotated[int, Path_(ge=0, le=AUDIT_BOUND)]) -> dict:
        """Inclusion proof of event ``seq`` (0-based) with ``leaf_data`` and the head's signing public key."""
        from jpki_remote.web.audit_view import NoSuchEvent, inclusion_proof_view

        try:
            return inclusion_proof_view(database, settings, seq)
        except NoSuchEvent:
            raise ApiError(404) from None

    @api.post("/admin/recover", tags=["admin"], dependencies=[Depends(admin)], responses=ADMIN_CHANGE | ENGINE)
    def recover() -> dict:
        return {"recovered": [{"id": pid, "outcome": outcome} for pid, outcome in get_engine().recover()]}

    app.include_router(api)
    _include_routers(app, settings, database)
    _mount_others(app, settings, database, admin, mount_status)
    _mount_pages(app)
    app.add_middleware(BodyLimit, limit=settings.max_request_bytes)  # type: ignore[arg-type]
    app.add_middleware(NoStore)  # type: ignore[arg-type]  # outermost: the 413 answers too
    return app


def _event_dict(event: Any) -> dict[str, Any]:
    return {
        "seq": event.seq,
        "occurred_at": event.occurred_at.isoformat(),
        "actor": event.actor,
        "event_type": event.event_type,
        "outcome": event.outcome,
        "terminal_id": event.terminal_id,
        "procedure_id": event.procedure_id,
        "detail": event.detail,
    }


def _mount_others(app: FastAPI, settings: Settings, database: Database, admin: Any, mount_status: bool) -> None:
    """OCSP/CRL and analytics routers, when those packages are installed and set up."""
    if mount_status:
        try:
            from jpki_remote.ca.keystore import open_keystore
            from jpki_remote.ca.status.http import create_status_router
            from jpki_remote.ca.status.service import StatusService

            service = StatusService(settings, database, open_keystore(settings))
            service.subscribe()  # OCSP responses re-signed as soon as this process issues or revokes
            app.state.status_service = service  # serve's background tasks publish CRLs / refresh OCSP through it
            app.include_router(create_status_router(service))
        except Exception as exc:  # the API still serves without the status endpoints
            log.warning("OCSP/CRL endpoints not mounted: %s", exc)
    try:
        from jpki_remote.analytics.web import create_router

        router = create_router(database, dependencies=[Depends(admin)])
        for route in router.routes:  # the data routes' own refusals: no data (404), parameters, no live database
            if isinstance(route, APIRoute) and route.dependant.query_params:
                route.responses = error_answers(404, 422, 503) | route.responses
        app.include_router(router, responses=ADMIN)
    except Exception as exc:
        log.warning("analytics endpoints not mounted: %s", exc)


def _include_routers(app: FastAPI, settings: Settings, database: Database) -> None:
    """The route modules kept outside this file (each ``create_*_router(settings, database)`` under ``/api/v1``)."""
    from jpki_remote.web.api_counter import create_counter_router
    from jpki_remote.web.api_terminal import create_terminal_router
    from jpki_remote.web.login import create_login_router

    app.include_router(create_terminal_router(settings, database), prefix=API)
    app.include_router(create_counter_router(settings, database), prefix=API)
    app.include_router(create_login_router(settings, database, lambda: admin_token(settings)))


def _mount_pages(app: FastAPI) -> None:
    """The HTML pages (``web/pages``: ``/``, ``/kiosk``, ``/portal``, ``/counter``, ``/admin…`` and their files under
    ``/static/pages/``), included before the plain ``/static`` mount so that their routes win."""
    from jpki_remote.web.pages import router as pages_router

    templates = Jinja2Templates(directory=str(PAGES / "templates"))
    app.state.templates = templates
    app.include_router(pages_router)
    app.mount("/static", StaticFiles(directory=str(PAGES / "static")), name="static")
