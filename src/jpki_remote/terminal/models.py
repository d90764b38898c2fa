"""Terminal tables: registered terminals (kiosk, holder's app, counter), their authentication challenges and
short-lived sessions (agent sessions, and browser sessions bound to the same terminal), and the counter staff who
sign in at counter terminals.

Session tokens and browser-link codes are stored only as SHA-256 hashes: a database reader cannot act as a terminal.
"""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import Boolean, DateTime, Enum, ForeignKey, Integer, LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column

from jpki_remote.store.database import Base


def _enum(kind: type[enum.Enum]) -> Enum:
    return Enum(kind, native_enum=False, length=32, values_callable=lambda members: [m.value for m in members])


class TerminalKind(enum.StrEnum):
    KIOSK = "kiosk"  # コンビニ キオスク端末
    APP = "app"  # the holder's installed app / PC with a reader
    COUNTER = "counter"  # municipal counter terminal (staff)


class TerminalStatus(enum.StrEnum):
    ACTIVE = "active"
    DISABLED = "disabled"


class SessionRole(enum.StrEnum):
    AGENT = "agent"  # the terminal agent (owns the reader)
    BROWSER = "browser"  # the page showing screens/camera, bound to the same terminal


class Terminal(Base):
    __tablename__ = "terminal_terminals"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    kind: Mapped[TerminalKind] = mapped_column(_enum(TerminalKind))
    name: Mapped[str] = mapped_column(String(100))
    municipality_code: Mapped[str | None] = mapped_column(String(6))  # counters belong to a municipality
    public_key: Mapped[bytes] = mapped_column(LargeBinary)  # raw Ed25519 public key, 32 bytes
    status: Mapped[TerminalStatus] = mapped_column(_enum(TerminalStatus))
    registered_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    last_seen_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class TerminalChallenge(Base):
    __tablename__ = "terminal_challenges"

    nonce_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    terminal_id: Mapped[str] = mapped_column(String(32), index=True)  # not an FK: unknown ids get challenges too
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    used: Mapped[bool] = mapped_column(Boolean, default=False)


class TerminalSession(Base):
    __tablename__ = "terminal_sessions"

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    terminal_id: Mapped[str] = mapped_column(ForeignKey("terminal_terminals.id"), index=True)
    role: Mapped[SessionRole] = mapped_column(_enum(SessionRole))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    last_used_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    revoked: Mapped[bool] = mapped_column(Boolean, default=False)


class BrowserLink(Base):
    """A one-time code the agent hands to its local browser page to open a browser session on the same terminal."""

    __tablename__ = "terminal_browser_links"

    code_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    terminal_id: Mapped[str] = mapped_column(ForeignKey("terminal_terminals.id"))
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    used: Mapped[bool] = mapped_column(Boolean, default=False)


class StaffAccount(Base):
    """A member of municipal counter staff who signs in at the counter screen (password hashed with scrypt)."""

    __tablename__ = "terminal_staff"

    staff_id: Mapped[str] = mapped_column(String(64), primary_key=True)  # the sign-in name, recorded as staff:<id>
    display_name: Mapped[str] = mapped_column(String(100))
    municipality_code: Mapped[str | None] = mapped_column(String(6))  # None: any municipality's counter
    password_hash: Mapped[str] = mapped_column(String(200))  # scrypt$N$r$p$salt$hash (base64)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    failed_logins: Mapped[int] = mapped_column(Integer, default=0)
    locked_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    last_login_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
