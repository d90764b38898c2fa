"""Security codes (セキュリティーコード): one-time codes sent to a registered contact and typed at the terminal.

Public interface::

    codes = SecurityCodes(db, settings)                 # deliverer from JPKI_DELIVERY unless given
    issued = codes.issue(procedure_id, "renewal", contact)      # -> IssuedCode (never the code itself)
    outcome = codes.verify(procedure_id, "renewal", entered)    # -> CodeOutcome
    if outcome.accepted: ...

Rules (NIST SP 800-63B §3.1.3, OWASP ASVS 6.5/6.6):

* 6 digits from :mod:`secrets`; stored only as HMAC-SHA-256 under the server secret (:mod:`.secret`), bound to the
  procedure and purpose (the same digits in another procedure hash differently); compared with
  :func:`hmac.compare_digest`.
* valid ``Settings.security_code_ttl_seconds`` (600); single use; a new code supersedes the previous one.
* ``Settings.security_code_max_failures`` (5) wrong entries per procedure and purpose **in total** — the budget is
  kept in ``proofing_code_budgets`` and a resend does not reset it; then every code of that procedure is dead and
  the holder has to start again (and the rate limits of :mod:`.limits` decide whether they may).
* resend cooldown ``Settings.security_code_resend_seconds`` and at most ``Settings.security_code_max_issues`` codes
  per procedure (keeps SMS pumping and mail bombing bounded).
* malformed input (not 6 digits after removing spaces/hyphens, full-width digits accepted) is refused without using
  up a try: it cannot be a guess.

Concurrency: acceptance is a compare-and-set (``UPDATE … SET used_at WHERE used_at IS NULL``), failures are counted
with ``UPDATE … SET failures = failures + 1 WHERE failures < max``; two simultaneous correct entries give exactly one
``ACCEPTED``, and simultaneous wrong entries never exceed the budget.

The HTTP layer maps :class:`CodeStatus` to messages; it should show "wrong, N tries left" but otherwise say as
little as needed (expired / used / not issued may all read "please request a new code").
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import logging
import math
import re
import secrets
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import and_, select, update
from sqlalchemy.orm import Session

from jpki_remote.config import Settings
from jpki_remote.proofing.delivery.base import Contact, Deliverer, DeliveryError
from jpki_remote.proofing.messages import code_message
from jpki_remote.proofing.models import CodeBudget, SecurityCode
from jpki_remote.proofing.secret import derive_key, server_secret
from jpki_remote.store import Database

log = logging.getLogger(__name__)

CODE_DIGITS = 6
_PURPOSE = re.compile(r"[a-z][a-z0-9_]{0,31}")
_PROCEDURE = re.compile(r"[A-Za-z0-9_.:\-]{1,64}")


class CodeStatus(enum.StrEnum):
    ACCEPTED = "accepted"
    WRONG = "wrong"  # tries_left > 0
    EXPIRED = "expired"
    USED = "used"
    LOCKED = "locked"  # the procedure's failure budget is spent
    NOT_ISSUED = "not_issued"  # no live code for this procedure and purpose
    MALFORMED = "malformed"  # not 6 digits; no try used


@dataclass(frozen=True)
class CodeOutcome:
    status: CodeStatus
    tries_left: int | None = None  # for WRONG (and LOCKED: 0)

    @property
    def accepted(self) -> bool:
        return self.status is CodeStatus.ACCEPTED


@dataclass(frozen=True)
class IssuedCode:
    code_id: int
    procedure_id: str
    purpose: str
    channel: str
    contact_masked: str  # what the screen may show: "090-****-5678"
    expires_at: datetime
    resend_after: datetime
    codes_left: int  # further codes this procedure may request
    tries_left: int  # wrong entries left for this procedure


class CodeIssueRefused(Exception):
    """No code was sent. ``reason``: ``cooldown`` (see ``retry_after``), ``too_many_codes``, ``locked``,
    ``delivery_failed`` (``retryable`` tells whether asking again may help)."""

    def __init__(self, reason: str, message: str, *, retry_after: datetime | None = None, retryable: bool = False):
        super().__init__(message)
        self.reason = reason
        self.retry_after = retry_after
        self.retryable = retryable

    def seconds_left(self, now: datetime | None = None) -> int | None:
        """Whole seconds until asking again may help (the cooldown), at least 1; None when waiting does not help."""
        if self.retry_after is None:
            return None
        return max(1, math.ceil((self.retry_after - (now or datetime.now(UTC))).total_seconds()))


def normalise_entry(entered: object) -> str | None:
    if not isinstance(entered, str) or len(entered) > 32:
        return None
    text = re.sub(r"[\s\-]", "", unicodedata.normalize("NFKC", entered))
    return text if len(text) == CODE_DIGITS and text.isascii() and text.isdigit() else None


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


def _insert_ignore(session: Session, model: type, values: dict[str, object]) -> None:
    if session.get_bind().dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    session.execute(insert(model).values(**values).on_conflict_do_nothing())


class SecurityCodes:
    def __init__(
        self,
        db: Database,
        settings: Settings,
        deliverer: Deliverer | None = None,
        *,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        if deliverer is None:
            from jpki_remote.proofing.delivery.routing import deliverer_from_settings

            deliverer = deliverer_from_settings(settings, db)
        self.db = db
        self.deliverer = deliverer
        self.ttl = timedelta(seconds=settings.security_code_ttl_seconds)
        self.cooldown = timedelta(seconds=settings.security_code_resend_seconds)
        self.max_failures = settings.security_code_max_failures
        self.max_issues = settings.security_code_max_issues
        self._key = derive_key(server_secret(settings), "security-code")
        self._clock = clock or (lambda: datetime.now(UTC))

    def _hash(self, procedure_id: str, purpose: str, code: str) -> bytes:
        return hmac.new(self._key, f"{procedure_id}\0{purpose}\0{code}".encode(), hashlib.sha256).digest()

    @staticmethod
    def _check(procedure_id: str, purpose: str) -> None:
        if not isinstance(procedure_id, str) or not _PROCEDURE.fullmatch(procedure_id):
            raise ValueError("procedure id must be 1–64 letters, digits or ._:-")
        if not isinstance(purpose, str) or not _PURPOSE.fullmatch(purpose):
            raise ValueError("purpose must be a lower-case identifier (e.g. 'renewal')")

    # -- issuing ---------------------------------------------------------------------------------------------

    def issue(self, procedure_id: str, purpose: str, contact: Contact | object) -> IssuedCode:
        """Create a code, store its keyed hash, supersede older codes, and send it to ``contact``."""
        self._check(procedure_id, purpose)
        target = Contact.of(contact)
        now = self._clock()
        code = f"{secrets.randbelow(10**CODE_DIGITS):0{CODE_DIGITS}d}"
        key = and_(CodeBudget.procedure_id == procedure_id, CodeBudget.purpose == purpose)
        with self.db.session() as session:
            _insert_ignore(session, CodeBudget, {"procedure_id": procedure_id, "purpose": purpose, "failures": 0,
                                                 "issued": 0, "last_issued_at": None})  # fmt: skip
            claimed = session.execute(
                update(CodeBudget)
                .where(
                    key,
                    CodeBudget.failures < self.max_failures,
                    CodeBudget.issued < self.max_issues,
                    (CodeBudget.last_issued_at.is_(None)) | (CodeBudget.last_issued_at <= now - self.cooldown),
                )
                .values(issued=CodeBudget.issued + 1, last_issued_at=now)
                .returning(CodeBudget.issued, CodeBudget.failures)
            ).first()
            if claimed is None:
                budget = session.execute(select(CodeBudget).where(key)).scalar_one()
                self._refuse(budget, now)
            issued_count, failures = claimed
            session.execute(
                update(SecurityCode)
                .where(
                    SecurityCode.procedure_id == procedure_id,
                    SecurityCode.purpose == purpose,
                    SecurityCode.superseded.is_(False),
                )
                .values(superseded=True)
            )
            row = SecurityCode(
                procedure_id=procedure_id,
                purpose=purpose,
                code_hash=self._hash(procedure_id, purpose, code),
                channel=target.kind,
                contact_masked=target.masked,
                created_at=now,
                expires_at=now + self.ttl,
                used_at=None,
                superseded=False,
            )
            session.add(row)
            session.flush()
            code_id = row.id
        try:
            self.deliverer.send(target, code_message(code, purpose, int(self.ttl.total_seconds())))
        except DeliveryError as exc:
            with self.db.session() as session:
                session.execute(update(SecurityCode).where(SecurityCode.id == code_id).values(superseded=True))
                session.execute(update(CodeBudget).where(key).values(last_issued_at=None))
            log.warning("security code for procedure %s not delivered to %s: %s", procedure_id, target.masked, exc)
            raise CodeIssueRefused("delivery_failed", str(exc), retryable=exc.retryable) from None
        log.info("security code %d issued for procedure %s (%s) to %s", code_id, procedure_id, purpose, target.masked)
        return IssuedCode(
            code_id=code_id,
            procedure_id=procedure_id,
            purpose=purpose,
            channel=target.kind,
            contact_masked=target.masked,
            expires_at=now + self.ttl,
            resend_after=now + self.cooldown,
            codes_left=self.max_issues - issued_count,
            tries_left=self.max_failures - failures,
        )

    def _refuse(self, budget: CodeBudget, now: datetime) -> None:
        if budget.failures >= self.max_failures:
            raise CodeIssueRefused("locked", "too many wrong security codes for this procedure")
        if budget.issued >= self.max_issues:
            raise CodeIssueRefused("too_many_codes", "no more security codes can be sent for this procedure")
        retry_after = _utc(budget.last_issued_at) + self.cooldown if budget.last_issued_at else now
        raise CodeIssueRefused("cooldown", "a security code was sent moments ago", retry_after=retry_after)

    # -- verifying -------------------------------------------------------------------------------------------

    def verify(self, procedure_id: str, purpose: str, entered: object) -> CodeOutcome:
        """Check ``entered`` against the live code of this procedure and purpose (see :class:`CodeStatus`)."""
        self._check(procedure_id, purpose)
        digits = normalise_entry(entered)
        if digits is None:
            return CodeOutcome(CodeStatus.MALFORMED)
        now = self._clock()
        key = and_(CodeBudget.procedure_id == procedure_id, CodeBudget.purpose == purpose)
        with self.db.session() as session:
            budget = session.execute(select(CodeBudget).where(key)).scalar_one_or_none()
            if budget is None:
                return CodeOutcome(CodeStatus.NOT_ISSUED)
            if budget.failures >= self.max_failures:
                return CodeOutcome(CodeStatus.LOCKED, 0)
            code = session.execute(
                select(SecurityCode)
                .where(SecurityCode.procedure_id == procedure_id, SecurityCode.purpose == purpose)
                .order_by(SecurityCode.id.desc())
                .limit(1)
            ).scalar_one_or_none()
            if code is None or (code.superseded and code.used_at is None):
                return CodeOutcome(CodeStatus.NOT_ISSUED)
            if code.used_at is not None:
                return CodeOutcome(CodeStatus.USED)
            if _utc(code.expires_at) <= now:
                return CodeOutcome(CodeStatus.EXPIRED)
            if hmac.compare_digest(self._hash(procedure_id, purpose, digits), bytes(code.code_hash)):
                # Take the budget row first (a concurrent last wrong entry may just have locked the procedure),
                # then compare-and-set the code: exactly one of any number of simultaneous correct entries wins.
                open_budget = session.execute(
                    update(CodeBudget)
                    .where(key, CodeBudget.failures < self.max_failures)
                    .values(failures=CodeBudget.failures)
                )
                if open_budget.rowcount != 1:
                    return CodeOutcome(CodeStatus.LOCKED, 0)
                won = session.execute(
                    update(SecurityCode)
                    .where(
                        SecurityCode.id == code.id, SecurityCode.used_at.is_(None), SecurityCode.superseded.is_(False)
                    )
                    .values(used_at=now)
                )
                return CodeOutcome(CodeStatus.ACCEPTED if won.rowcount == 1 else CodeStatus.USED)
            failures = session.execute(
                update(CodeBudget)
                .where(key, CodeBudget.failures < self.max_failures)
                .values(failures=CodeBudget.failures + 1)
                .returning(CodeBudget.failures)
            ).scalar_one_or_none()
            if failures is None or failures >= self.max_failures:
                return CodeOutcome(CodeStatus.LOCKED, 0)
            return CodeOutcome(CodeStatus.WRONG, self.max_failures - failures)

    def tries_left(self, procedure_id: str, purpose: str) -> int:
        with self.db.session() as session:
            budget = session.get(CodeBudget, (procedure_id, purpose))
            return self.max_failures - (budget.failures if budget else 0)

    def purge(self, *, older_than: timedelta = timedelta(days=1)) -> int:
        """Delete code rows that expired more than ``older_than`` ago (their hashes serve no purpose any more)."""
        from sqlalchemy import delete

        with self.db.session() as session:
            result = session.execute(delete(SecurityCode).where(SecurityCode.expires_at < self._clock() - older_than))
            return result.rowcount or 0
