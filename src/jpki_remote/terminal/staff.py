"""Counter staff accounts: ``add_staff``, ``check_login``, ``set_password``, ``disable_staff``, ``list_staff``.

Passwords are hashed with scrypt (:func:`hashlib.scrypt`, N=2^15, r=8, p=1, 16-byte random salt, 32-byte key —
OWASP's minimum for scrypt) and stored as ``scrypt$15$8$1$<salt>$<key>`` (base64), so parameters can be raised
later without invalidating stored hashes. Comparison is constant-time. An unknown sign-in name costs the same scrypt
as a known one, and the answer is the same "wrong name or password". After ``Settings.login_max_failures`` wrong
passwords in a row the account is locked for ``Settings.login_lock_minutes`` (no guessing at full speed); a correct
sign-in resets the count. A password is 10–128 characters.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from jpki_remote.terminal.models import StaffAccount

STAFF_ID = re.compile(r"^[A-Za-z0-9_.@-]{1,64}$")
SCRYPT_N_LOG2, SCRYPT_R, SCRYPT_P = 15, 8, 1
MIN_PASSWORD, MAX_PASSWORD = 10, 128
_DUMMY_SALT = b"\x00" * 16


class StaffError(ValueError):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class StaffMember:
    staff_id: str
    display_name: str
    municipality_code: str | None


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _scrypt(password: str, salt: bytes, n_log2: int = SCRYPT_N_LOG2, r: int = SCRYPT_R, p: int = SCRYPT_P) -> bytes:
    return hashlib.scrypt(
        password.encode(), salt=salt, n=2**n_log2, r=r, p=p, maxmem=128 * 2**n_log2 * r + 2**20, dklen=32
    )


def hash_password(password: str) -> str:
    salt = secrets.token_bytes(16)
    key = _scrypt(password, salt)
    return f"scrypt${SCRYPT_N_LOG2}${SCRYPT_R}${SCRYPT_P}${_b64(salt)}${_b64(key)}"


def verify_password(password: str, stored: str) -> bool:
    try:
        scheme, n_log2, r, p, salt, key = stored.split("$")
        if scheme != "scrypt" or not 10 <= int(n_log2) <= 20:
            return False
        computed = _scrypt(password, base64.b64decode(salt), int(n_log2), int(r), int(p))
        return hmac.compare_digest(computed, base64.b64decode(key))
    except (ValueError, TypeError):
        return False


def _check_password(password: str) -> None:
    if not isinstance(password, str) or not MIN_PASSWORD <= len(password) <= MAX_PASSWORD:
        raise StaffError("staff_invalid", f"a staff password is {MIN_PASSWORD}–{MAX_PASSWORD} characters")


def _now() -> datetime:
    return datetime.now(UTC)


def _utc(moment: datetime | None) -> datetime | None:
    return None if moment is None else (moment if moment.tzinfo else moment.replace(tzinfo=UTC))


def add_staff(
    session: Session,
    staff_id: str,
    password: str,
    *,
    display_name: str | None = None,
    municipality_code: str | None = None,
) -> StaffMember:
    if not isinstance(staff_id, str) or not STAFF_ID.fullmatch(staff_id):
        raise StaffError("staff_invalid", "a staff id is 1–64 of A–Z a–z 0–9 _ . @ -")
    _check_password(password)
    if session.get(StaffAccount, staff_id) is not None:
        raise StaffError("staff_exists", f"staff {staff_id} exists already")
    name = (display_name or staff_id).strip()[:100] or staff_id
    session.add(
        StaffAccount(
            staff_id=staff_id,
            display_name=name,
            municipality_code=municipality_code,
            password_hash=hash_password(password),
            active=True,
            failed_logins=0,
            created_at=_now(),
        )
    )
    session.flush()
    return StaffMember(staff_id, name, municipality_code)


def check_login(
    session: Session, staff_id: object, password: object, *, max_failures: int = 5, lock_minutes: int = 15
) -> StaffMember | None:
    """The staff member if ``password`` is theirs and the account is active and not locked, else None."""
    valid_id = isinstance(staff_id, str) and STAFF_ID.fullmatch(staff_id) is not None
    row = session.get(StaffAccount, staff_id, with_for_update=True) if valid_id else None
    text = password if isinstance(password, str) and len(password) <= MAX_PASSWORD else ""
    if row is None:
        _scrypt(text, _DUMMY_SALT)  # same cost as a real check
        return None
    now = _now()
    locked = _utc(row.locked_until)
    if locked is not None and locked > now:
        _scrypt(text, _DUMMY_SALT)
        return None
    if not verify_password(text, row.password_hash) or not row.active or not text:
        row.failed_logins = (row.failed_logins or 0) + 1
        if row.failed_logins >= max_failures:
            row.locked_until = now + timedelta(minutes=lock_minutes)
            row.failed_logins = 0
        return None
    row.failed_logins = 0
    row.locked_until = None
    row.last_login_at = now
    return StaffMember(row.staff_id, row.display_name, row.municipality_code)


def get_staff(session: Session, staff_id: str) -> StaffMember | None:
    row = session.get(StaffAccount, staff_id) if isinstance(staff_id, str) else None
    if row is None or not row.active:
        return None
    return StaffMember(row.staff_id, row.display_name, row.municipality_code)


def set_password(session: Session, staff_id: str, password: str) -> None:
    _check_password(password)
    row = session.get(StaffAccount, staff_id)
    if row is None:
        raise StaffError("staff_unknown", f"no staff {staff_id}")
    row.password_hash = hash_password(password)
    row.failed_logins = 0
    row.locked_until = None


def disable_staff(session: Session, staff_id: str) -> None:
    row = session.get(StaffAccount, staff_id)
    if row is None:
        raise StaffError("staff_unknown", f"no staff {staff_id}")
    row.active = False


def list_staff(session: Session) -> list[StaffAccount]:
    return list(session.scalars(select(StaffAccount).order_by(StaffAccount.staff_id)))
