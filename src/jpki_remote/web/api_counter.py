"""Counter staff look-up: ``GET /api/v1/registry/residents?name=&birth_date=&card_id=``.

Only a counter terminal's session together with a signed-in member of staff may search, and only among the residents
of that counter's municipality. At least one criterion is needed (no listing of the whole registry); ``name`` is
matched against the family name, the given name, the two together (with or without the space) and the kana reading;
``birth_date`` and ``card_id`` are exact. At most ``MAX_RESULTS`` residents are answered (``truncated`` says when
there were more). Each resident comes with their cards (state, expiry, the rate-limit lockouts in force: what staff
lift with ``POST /registry/cards/{id}/unlock``) and their registered contacts **masked** (``090-****-5678``,
``t***@example.jp``): enough to confirm with the holder, not to copy. Every search is audited (who, where, which
criteria were used — not their values, and how many residents were shown).
"""

import re
import unicodedata
from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from sqlalchemy import func, or_, select

from jpki_remote.config import Settings
from jpki_remote.store import Database
from jpki_remote.terminal.models import TerminalKind
from jpki_remote.web.callers import TerminalCaller, terminal_caller
from jpki_remote.web.error_answers import COUNTER, PARAMETERS
from jpki_remote.web.errors import ApiError
from jpki_remote.web.login import StaffCaller, staff_resolver

MAX_RESULTS = 50
_SPACES = re.compile(r"[\s\u3000]+")


def _normalise(text: str) -> str:
    return _SPACES.sub("", unicodedata.normalize("NFKC", text)).strip()


def create_counter_router(settings: Settings, database: Database) -> APIRouter:
    router = APIRouter(tags=["counter"], responses=COUNTER)
    caller = terminal_caller(settings, database)
    signed_in_staff = staff_resolver(settings, database)

    def staff_at_counter(request: Request, who: Annotated[TerminalCaller, Depends(caller)]) -> StaffCaller:
        if who.kind is not TerminalKind.COUNTER:
            raise ApiError(403)
        staff = signed_in_staff(request)
        if staff.municipality_code and who.municipality_code and staff.municipality_code != who.municipality_code:
            raise ApiError(403)
        request.state.counter = who
        return staff

    @router.get("/registry/residents", responses=PARAMETERS)
    def residents(
        request: Request,
        staff: Annotated[StaffCaller, Depends(staff_at_counter)],
        name: Annotated[str | None, Query(max_length=100)] = None,
        birth_date: date | None = None,
        card_id: Annotated[str | None, Query(max_length=32)] = None,
    ) -> dict[str, Any]:
        from jpki_remote.registry.models import Card, Contact, Resident

        who: TerminalCaller = request.state.counter
        wanted = _normalise(name or "")
        card_id = (card_id or "").strip() or None
        if not wanted and birth_date is None and card_id is None:
            raise ApiError(
                422,
                "criteria_required",
                "氏名・生年月日・カード番号のいずれかを入力してください。",
                "Give a name, a birth date or a card number.",
            )
        query = select(Resident)
        municipality = who.municipality_code or staff.municipality_code
        if municipality:
            query = query.where(Resident.municipality_code == municipality)
        if birth_date is not None:
            query = query.where(Resident.birth_date == birth_date)
        if card_id is not None:
            query = query.where(Resident.id.in_(select(Card.resident_id).where(Card.card_id == card_id)))
        if wanted:
            pattern = f"%{wanted}%"
            query = query.where(
                or_(
                    func.replace(func.replace(Resident.family_name, " ", ""), "\u3000", "").like(pattern),
                    func.replace(func.replace(Resident.given_name, " ", ""), "\u3000", "").like(pattern),
                    (Resident.family_name + Resident.given_name).like(pattern),
                    func.replace(func.replace(Resident.name_kana, " ", ""), "\u3000", "").like(pattern),
                )
            )
        query = query.order_by(Resident.family_name, Resident.given_name, Resident.birth_date).limit(MAX_RESULTS + 1)
        with database.session() as session:
            found = list(session.scalars(query))
            truncated = len(found) > MAX_RESULTS
            found = found[:MAX_RESULTS]
            ids = [r.id for r in found]
            cards = list(session.scalars(select(Card).where(Card.resident_id.in_(ids)).order_by(Card.issued_at)))
            contacts = list(session.scalars(select(Contact).where(Contact.resident_id.in_(ids)).order_by(Contact.id)))
            rows = [_resident(r, [c for c in cards if c.resident_id == r.id], contacts) for r in found]
        limits = _limits(request)
        for row in rows:
            for card in row["cards"]:
                card["limits"] = _lockouts(limits, card["id"])
                card["sent_to_counter"] = any(lock["scope"] == "card" for lock in card["limits"]["lockouts"])
        _audit(
            request,
            staff,
            who,
            [k for k, v in (("name", wanted), ("birth_date", birth_date), ("card_id", card_id)) if v],
            len(rows),
        )
        return {"residents": rows, "truncated": truncated}

    return router


def _resident(resident: Any, cards: list[Any], contacts: list[Any]) -> dict[str, Any]:
    from jpki_remote.proofing.delivery.base import Contact as DeliveryContact
    from jpki_remote.proofing.delivery.base import mask_contact

    return {
        "id": resident.id,
        "name": resident.full_name,
        "name_kana": resident.name_kana,
        "birth_date": resident.birth_date.isoformat(),
        "sex": resident.sex,
        "address": resident.address,
        "status": resident.status.value,
        "municipality_code": resident.municipality_code,
        "contacts": [
            {
                "kind": c.kind.value,
                "masked": mask_contact(DeliveryContact(c.kind.value, c.address)),
                "verified": c.verified,
            }
            for c in contacts
            if c.resident_id == resident.id
        ],
        "cards": [
            {
                "id": card.card_id,
                "state": card.state.value,
                "state_reason": card.state_reason,
                "expiry": card.card_expiry.isoformat(),
                "remote_locked": card.state.value == "remote_locked",
                "has_certificates": card.auth_cert_serial is not None,
            }
            for card in cards
        ],
    }


def _limits(request: Request) -> Any:
    return request.app.state.get_engine().ports.limits


def _lockouts(limits: Any, card_id: str) -> dict[str, Any]:
    if limits is None:
        return {"locked": False, "lockouts": [], "known": False}
    locks = limits.status(card_id=card_id)
    return {
        "locked": bool(locks),
        "known": True,
        "lockouts": [
            {"scope": str(lock.scope), "reason": lock.reason, "until": lock.until.isoformat(timespec="seconds")}
            for lock in locks
        ],
    }


def _audit(request: Request, staff: StaffCaller, who: TerminalCaller, criteria: list[str], shown: int) -> None:
    """Looking residents up is recorded like any other staff action (never the values searched for)."""
    audit = request.app.state.get_engine().ports.audit
    if audit is None:
        return
    audit.record(
        actor=f"staff:{staff.staff_id}",
        event_type="registry.residents_searched",
        outcome="info",
        terminal_id=who.terminal_id,
        procedure_id=None,
        detail={"criteria": ",".join(criteria) or "none", "shown": shown},
    )
