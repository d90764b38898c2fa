"""Terminal registration and authentication (server side).

A terminal holds its own Ed25519 key pair (generated on the terminal, the private key never leaves it). The server
keeps the public key. To open a session the terminal asks for a challenge, signs
``b"jpki-remote terminal auth v1\\0" + terminal_id + b"\\0" + nonce`` and gets a short-lived bearer token. The
agent can then mint a one-time *browser link* so that the page showing the screens and camera gets its own session,
bound to the same terminal: a procedure started on one terminal can only be driven from that terminal's sessions.

Unknown or disabled terminals get a challenge too (indistinguishable), and authentication fails with the same error
as a bad signature. Anyone may ask for a challenge, so the web route counts the requests per client address and
per claimed terminal id (``proofing.limits.TERMINAL_CHALLENGE_RULES``, finding S-16), and every new challenge
deletes up to :data:`CHALLENGE_PURGE_BATCH` expired or used ones: dead rows cannot pile up.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from sqlalchemy import delete, or_, select
from sqlalchemy.orm import Session

from jpki_remote.terminal.models import (
    BrowserLink,
    SessionRole,
    Terminal,
    TerminalChallenge,
    TerminalKind,
    TerminalSession,
    TerminalStatus,
)

AUTH_CONTEXT = b"jpki-remote terminal auth v1\x00"
CHALLENGE_TTL = timedelta(minutes=2)
AGENT_SESSION_TTL = timedelta(minutes=30)
BROWSER_LINK_TTL = timedelta(minutes=2)
BROWSER_SESSION_MAX = timedelta(minutes=30)
CHALLENGE_PURGE_BATCH = 64  # dead challenges deleted by each new one: more than it adds, and a bounded statement


class TerminalAuthError(Exception):
    """A bad terminal id for a challenge, or a browser link that is unknown, used or expired — deliberately vague.
    (A failed :func:`authenticate` returns None instead, so that the used-up challenge is committed.)"""

    code = "terminal_auth_failed"


class TerminalError(ValueError):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


def utc(moment: datetime) -> datetime:
    """SQLite hands back naive datetimes; everything stored is UTC."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def now() -> datetime:
    return datetime.now(UTC)


def _hash(secret: str | bytes) -> str:
    data = secret.encode() if isinstance(secret, str) else secret
    return hashlib.sha256(data).hexdigest()


def auth_message(terminal_id: str, nonce: bytes) -> bytes:
    return AUTH_CONTEXT + terminal_id.encode() + b"\x00" + nonce


def register_terminal(
    session: Session,
    *,
    kind: TerminalKind | str,
    name: str,
    public_key: bytes,
    municipality_code: str | None = None,
) -> Terminal:
    try:
        kind = TerminalKind(kind)
    except ValueError:
        raise TerminalError("terminal_invalid", "kind is kiosk, app or counter") from None
    if len(public_key) != 32:
        raise TerminalError("terminal_invalid", "the public key is a raw 32-byte Ed25519 key")
    try:
        Ed25519PublicKey.from_public_bytes(public_key)
    except ValueError:
        raise TerminalError("terminal_invalid", "not an Ed25519 public key") from None
    name = name.strip()
    if not 1 <= len(name) <= 100:
        raise TerminalError("terminal_invalid", "a terminal name is 1–100 characters")
    if kind is TerminalKind.COUNTER and not municipality_code:
        raise TerminalError("terminal_invalid", "a counter terminal belongs to a municipality")
    terminal = Terminal(
        id="t" + secrets.token_hex(12),
        kind=kind,
        name=name,
        municipality_code=municipality_code,
        public_key=bytes(public_key),
        status=TerminalStatus.ACTIVE,
        registered_at=now(),
    )
    session.add(terminal)
    session.flush()
    return terminal


def disable_terminal(session: Session, terminal_id: str) -> None:
    terminal = session.get(Terminal, terminal_id)
    if terminal is None:
        raise TerminalError("terminal_unknown", "no such terminal")
    terminal.status = TerminalStatus.DISABLED
    session.execute(
        TerminalSession.__table__.update().where(TerminalSession.terminal_id == terminal_id).values(revoked=True)
    )


def issue_challenge(session: Session, terminal_id: str) -> bytes:
    """A fresh 32-byte nonce for ``terminal_id`` (issued whether or not the terminal exists)."""
    if not isinstance(terminal_id, str) or not 1 <= len(terminal_id) <= 32:
        raise TerminalAuthError("bad terminal id")
    nonce = secrets.token_bytes(32)
    purge_challenges(session)
    session.add(TerminalChallenge(nonce_hash=_hash(nonce), terminal_id=terminal_id, expires_at=now() + CHALLENGE_TTL))
    session.flush()
    return nonce


def purge_challenges(session: Session, *, limit: int = CHALLENGE_PURGE_BATCH) -> int:
    """Delete at most ``limit`` challenges that are expired or used up (neither can ever open a session again);
    return how many went. Rows another transaction holds (a concurrent purge, a sign-in) are skipped
    (PostgreSQL ``FOR UPDATE SKIP LOCKED``), so concurrent purges never wait on or deadlock with each other."""
    dead = (
        select(TerminalChallenge.nonce_hash)
        .where(or_(TerminalChallenge.expires_at < now(), TerminalChallenge.used.is_(True)))
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    statement = delete(TerminalChallenge).where(TerminalChallenge.nonce_hash.in_(dead))
    result = session.execute(statement.execution_options(synchronize_session=False))
    return int(result.rowcount or 0)


@dataclass(frozen=True)
class IssuedSession:
    token: str
    terminal_id: str
    role: SessionRole
    expires_at: datetime


def authenticate(session: Session, terminal_id: str, nonce: bytes, signature: bytes) -> IssuedSession | None:
    """Check the signature over the challenge; return a new agent session token, or None when authentication fails.

    The challenge is used up whatever the outcome. A failure *returns* (it does not raise) so that the caller's
    transaction commits the ``used`` flag: an exception would roll it back with the rest and leave the challenge open
    for another try (finding S-3). The caller answers the failure after the transaction.
    """
    challenge = session.get(TerminalChallenge, _hash(nonce), with_for_update=True)
    terminal = session.get(Terminal, terminal_id) if isinstance(terminal_id, str) else None
    valid = (
        challenge is not None
        and not challenge.used
        and challenge.terminal_id == terminal_id
        and utc(challenge.expires_at) > now()
        and terminal is not None
        and terminal.status is TerminalStatus.ACTIVE
    )
    if challenge is not None:
        challenge.used = True  # single use, also on failure
    if not valid or terminal is None:
        return None
    try:
        Ed25519PublicKey.from_public_bytes(terminal.public_key).verify(signature, auth_message(terminal_id, nonce))
    except (InvalidSignature, ValueError):
        return None
    terminal.last_seen_at = now()
    return _new_session(session, terminal_id, SessionRole.AGENT, AGENT_SESSION_TTL)


def _new_session(session: Session, terminal_id: str, role: SessionRole, ttl: timedelta) -> IssuedSession:
    token = secrets.token_urlsafe(32)
    stamp = now()
    row = TerminalSession(
        token_hash=_hash(token),
        terminal_id=terminal_id,
        role=role,
        created_at=stamp,
        expires_at=stamp + ttl,
        last_used_at=stamp,
        revoked=False,
    )
    session.add(row)
    session.flush()
    return IssuedSession(token=token, terminal_id=terminal_id, role=role, expires_at=row.expires_at)


def create_browser_link(session: Session, agent: TerminalSession) -> str:
    """A one-time code (valid 2 minutes) the agent gives its local page to open a browser session."""
    if agent.role is not SessionRole.AGENT:
        raise TerminalError("forbidden", "only the terminal agent can link a browser")
    code = secrets.token_urlsafe(24)
    session.add(BrowserLink(code_hash=_hash(code), terminal_id=agent.terminal_id, expires_at=now() + BROWSER_LINK_TTL))
    session.flush()
    return code


def redeem_browser_link(session: Session, code: str) -> IssuedSession:
    link = session.get(BrowserLink, _hash(code), with_for_update=True) if isinstance(code, str) else None
    if link is None or link.used or utc(link.expires_at) <= now():
        raise TerminalAuthError("invalid or expired link")
    link.used = True
    return _new_session(session, link.terminal_id, SessionRole.BROWSER, BROWSER_SESSION_MAX)


def resolve_session(session: Session, token: str, *, idle_seconds: int | None = None) -> TerminalSession | None:
    """The live session for ``token`` or None. Browser sessions also expire after ``idle_seconds`` without use."""
    if not isinstance(token, str) or not 16 <= len(token) <= 128:
        return None
    row = session.get(TerminalSession, _hash(token))
    if row is None or row.revoked:
        return None
    stamp = now()
    if utc(row.expires_at) <= stamp:
        return None
    if (
        row.role is SessionRole.BROWSER
        and idle_seconds is not None
        and utc(row.last_used_at) + timedelta(seconds=idle_seconds) <= stamp
    ):
        return None
    terminal = session.get(Terminal, row.terminal_id)
    if terminal is None or terminal.status is not TerminalStatus.ACTIVE:
        return None
    row.last_used_at = stamp
    return row


def end_session(session: Session, token: str) -> None:
    row = session.get(TerminalSession, _hash(token)) if isinstance(token, str) else None
    if row is not None:
        row.revoked = True


def list_terminals(session: Session) -> list[Terminal]:
    return list(session.scalars(select(Terminal).order_by(Terminal.registered_at)))
