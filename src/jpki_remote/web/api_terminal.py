"""``GET /api/v1/terminals/me``: the calling terminal's identity (the agent shows it to its page and picks the page —
kiosk, portal or counter — from the kind)."""

from typing import Annotated

from fastapi import APIRouter, Depends

from jpki_remote.config import Settings
from jpki_remote.store import Database
from jpki_remote.web.callers import TerminalCaller, terminal_caller
from jpki_remote.web.error_answers import TERMINAL


def create_terminal_router(settings: Settings, database: Database) -> APIRouter:
    router = APIRouter(tags=["terminals"], responses=TERMINAL)
    caller = terminal_caller(settings, database)

    @router.get("/terminals/me")
    def me(who: Annotated[TerminalCaller, Depends(caller)]) -> dict[str, str | None]:
        return {
            "terminal_id": who.terminal_id,
            "kind": who.kind.value,
            "name": who.name,
            "municipality_code": who.municipality_code,
            "role": who.role.value,
        }

    return router
