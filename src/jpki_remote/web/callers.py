"""Who is calling, for the route modules outside ``app.py``: the terminal behind a bearer session token.

The same rules as the app's own ``caller`` dependency: a live agent or browser session of an active terminal
(browser sessions also end after ``Settings.session_idle_seconds`` without use), else 401.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated

from fastapi import Header

from jpki_remote.config import Settings
from jpki_remote.store import Database
from jpki_remote.terminal import service as terminals
from jpki_remote.terminal.models import SessionRole, Terminal, TerminalKind
from jpki_remote.web.errors import ApiError


@dataclass(frozen=True)
class TerminalCaller:
    terminal_id: str
    role: SessionRole
    kind: TerminalKind
    name: str
    municipality_code: str | None


def bearer(authorization: str | None) -> str:
    value = (authorization or "").strip()
    return value[7:].strip() if value[:7].lower() == "bearer " else ""


def terminal_caller(settings: Settings, database: Database) -> Callable[..., TerminalCaller]:
    """A dependency resolving the bearer token to its terminal (401 without a live session)."""

    def dependency(authorization: Annotated[str | None, Header()] = None) -> TerminalCaller:
        token = bearer(authorization)
        if not token:
            raise ApiError(401)
        with database.session() as session:
            row = terminals.resolve_session(session, token, idle_seconds=settings.session_idle_seconds)
            if row is None:
                raise ApiError(401)
            terminal = session.get(Terminal, row.terminal_id)
            if terminal is None:
                raise ApiError(401)
            return TerminalCaller(row.terminal_id, row.role, terminal.kind, terminal.name, terminal.municipality_code)

    return dependency
