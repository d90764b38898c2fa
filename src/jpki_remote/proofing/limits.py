"""Rate limits and lockouts per card, per terminal and per client address.

Public interface::

    limits = Limits.from_settings(settings, db, audit=audit_log)      # Redis if JPKI_REDIS_URL, else the database
    verdict = limits.check_and_count(AttemptKind.FACE, card_id=card, terminal_id=terminal, address=client_ip)
    if isinstance(verdict, LockedOut):
        ...  # show verdict.message_ja / message_en; verdict.counter_visit says "please visit the counter"
    limits.status(card_id=card)                                       # active lockouts, for the counter screen
    limits.lift(card_id=card, staff_id="staff:42", terminal_id="counter-3", note="ID checked")   # audited
    limits.lift(card_id=card, staff_id="staff:42", loss_reports=True)   # … and the card's loss-report limits

**Rules** are data: :data:`DEFAULT_RULES` is a table of :class:`Rule` rows (kind × scope → limit, window, fixed or
sliding, lockout length); pass another tuple to :class:`Limits` to change them. A call counts one attempt of
``kind`` against every scope it names; when a count goes over its rule's limit the *subject* (that card, terminal
or address) is locked out for the rule's lockout time and every later call for it returns :class:`LockedOut`
without counting. A card lockout means "visit the counter" (``counter_visit``); staff lift it with :meth:`lift`,
which also clears the counters and writes an audit event.

Terminal sign-in challenges have their own table, :data:`TERMINAL_CHALLENGE_RULES`, and their own pseudonyms
(:meth:`Limits.for_terminal_challenges`), so that flooding them locks out nothing but more challenges. The per-card
counts of online loss reports, whose attempts come before any proof, likewise (:data:`LOSS_REPORT_RULES`,
:meth:`Limits.for_loss_reports`).

**Windows.** Fixed windows count per aligned period (``floor(t / window)``). Sliding windows use the two-bucket
estimate ``current + previous × (1 − elapsed/window)`` — no per-attempt storage, at most one window's worth of
smoothing error.

**No enumeration.** Limits never look a card, resident or terminal up: subjects are HMAC-SHA-256 pseudonyms of
whatever identifier the client presented, under the server secret. An unknown card id is counted, locked out and
answered exactly like a real one (same store operations, same results) — the API should always pass the presented
id, existing or not.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from jpki_remote.config import Settings
from jpki_remote.proofing.counters import CounterStore, DatabaseCounters, LockRecord, RedisCounters
from jpki_remote.proofing.secret import derive_key, server_secret
from jpki_remote.store import Database

if TYPE_CHECKING:
    from jpki_remote.audit import AuditLog

HOUR = 3600
DAY = 24 * HOUR


class AttemptKind(enum.StrEnum):
    FACE = "face_attempt"
    CODE = "code_attempt"
    START = "procedure_start"
    TERMINAL_CHALLENGE = "terminal_challenge"  # POST /terminals/challenge (TERMINAL_CHALLENGE_RULES)


class Scope(enum.StrEnum):
    CARD = "card"
    TERMINAL = "terminal"
    ADDRESS = "address"


@dataclass(frozen=True)
class Rule:
    kind: AttemptKind
    scope: Scope
    limit: int  # attempts allowed per window
    window_seconds: int
    sliding: bool
    lockout_seconds: int
    reason: str  # stable identifier shown to staff, e.g. "card_face_attempts"


R, K, S = AttemptKind, Scope, Rule
DEFAULT_RULES: tuple[Rule, ...] = (
    # A genuine holder needs 1–3 face captures, at most 2–3 codes; beyond this the counter takes over.
    S(R.FACE, K.CARD, 10, DAY, True, 7 * DAY, "card_face_attempts"),
    S(R.CODE, K.CARD, 10, DAY, True, 7 * DAY, "card_code_attempts"),
    S(R.START, K.CARD, 10, DAY, True, DAY, "card_procedure_starts"),
    # A kiosk serves many people; these stop one terminal being used to grind.
    S(R.FACE, K.TERMINAL, 120, HOUR, False, HOUR, "terminal_face_attempts"),
    S(R.CODE, K.TERMINAL, 120, HOUR, False, HOUR, "terminal_code_attempts"),
    S(R.START, K.TERMINAL, 60, HOUR, False, HOUR, "terminal_procedure_starts"),
    # Client addresses (online channel; behind carrier NAT several holders may share one).
    S(R.FACE, K.ADDRESS, 40, HOUR, True, HOUR, "address_face_attempts"),
    S(R.CODE, K.ADDRESS, 40, HOUR, True, HOUR, "address_code_attempts"),
    S(R.START, K.ADDRESS, 20, HOUR, True, HOUR, "address_procedure_starts"),
)
# Terminal sign-in challenges (finding S-16): anyone may ask, so they are counted per client address and per *claimed*
# terminal id (never looked up: an unknown id is counted and refused like a real one). An agent asks once per
# session (30 min) and after a restart; one egress address may carry a few hundred kiosks. Kept under their own
# subject key (:meth:`Limits.for_terminal_challenges`): a challenge lockout never locks a terminal's or an
# address's procedures, and the lockouts are short because a locked-out terminal cannot sign in meanwhile.
TERMINAL_CHALLENGE_RULES: tuple[Rule, ...] = (
    S(R.TERMINAL_CHALLENGE, K.TERMINAL, 20, 10 * 60, True, 10 * 60, "terminal_challenges"),
    S(R.TERMINAL_CHALLENGE, K.ADDRESS, 300, 10 * 60, True, 10 * 60, "address_terminal_challenges"),
)
# Online loss reports (紛失届, finding S-17): the holder has no card, so the face and code attempts come from someone
# who has proved nothing yet. Their *card* counts are kept here, under their own pseudonyms
# (:meth:`Limits.for_loss_reports`): a stranger who knows a card number can at worst stop online loss reports for that
# card for a day (the counter takes them without limits) — never lock the holder's card out of renewals or PIN resets.
# The terminal and the address are counted under the ordinary rules (they lock out nothing of the holder's).
LOSS_REPORT_RULES: tuple[Rule, ...] = (
    S(R.FACE, K.CARD, 10, DAY, True, DAY, "loss_report_face_attempts"),
    S(R.CODE, K.CARD, 10, DAY, True, DAY, "loss_report_code_attempts"),
    S(R.START, K.CARD, 5, DAY, True, DAY, "loss_report_starts"),
)
del R, K, S


@dataclass(frozen=True)
class Allowed:
    remaining: int  # attempts left under the tightest rule that applied


@dataclass(frozen=True)
class LockedOut:
    until: datetime
    reason: str
    scope: Scope

    @property
    def counter_visit(self) -> bool:
        """A card lockout: only counter staff can help (or waiting until ``until``)."""
        return self.scope is Scope.CARD

    def seconds_left(self, now: datetime | None = None) -> int:
        """Whole seconds until the lockout ends, at least 1: what an HTTP 429 says in ``Retry-After``."""
        left = (self.until - (now or datetime.now(UTC))).total_seconds()
        return max(1, math.ceil(left))

    @property
    def message_ja(self) -> str:
        if self.counter_visit:
            return (
                "確認の回数が上限を超えたため、この方法ではお手続きできません。"
                "お住まいの市区町村窓口でお手続きください。"
            )
        return "ただいま混み合っているか、試行回数が上限に達しました。しばらく時間をおいてからお試しください。"

    @property
    def message_en(self) -> str:
        if self.counter_visit:
            return "Too many attempts. Please complete this procedure at your municipal office counter."
        return "Too many attempts from here. Please try again later."


Verdict = Allowed | LockedOut


class Limits:
    def __init__(
        self,
        store: CounterStore,
        subject_key: bytes,
        rules: Sequence[Rule] = DEFAULT_RULES,
        *,
        audit: AuditLog | None = None,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        for rule in rules:
            if rule.limit < 1 or rule.window_seconds < 1 or rule.lockout_seconds < 1:
                raise ValueError(f"rule {rule.reason}: limit, window and lockout must be positive")
        self.store = store
        self.rules = tuple(rules)
        self.audit = audit
        self._key = subject_key
        self._clock = clock or (lambda: datetime.now(UTC))
        self._loss_reports: Limits | None = None
        self.label = ""  # which limits these are, in audit events ("loss_report"; "" for the ordinary ones)

    def for_loss_reports(self) -> Limits:
        """The per-card limits of online loss reports: :data:`LOSS_REPORT_RULES` on the same store, under subjects
        derived from this instance's key with their own label — a loss-report lockout of a card is not a lockout of
        that card's other procedures, and the other way round."""
        if self._loss_reports is None:
            key = hmac.new(self._key, b"rate-limit-subject:loss-report", hashlib.sha256).digest()
            self._loss_reports = Limits(self.store, key, LOSS_REPORT_RULES, audit=self.audit, clock=self._clock)
            self._loss_reports.label = "loss_report"
        return self._loss_reports

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        db: Database,
        *,
        audit: AuditLog | None = None,
        rules: Sequence[Rule] = DEFAULT_RULES,
        subject_label: str = "rate-limit-subject",
    ) -> Limits:
        """Limits on Redis (``JPKI_REDIS_URL``) or the database. ``subject_label`` derives the pseudonym key: limits
        under another label count and lock out other subjects, even for the same card, terminal or address."""
        store: CounterStore
        if settings.redis_url:
            store = RedisCounters.from_url(settings.redis_url, settings.redis_key_prefix + "limits:")
        else:
            store = DatabaseCounters(db)
        return cls(store, derive_key(server_secret(settings), subject_label), rules, audit=audit)

    @classmethod
    def for_terminal_challenges(cls, settings: Settings, db: Database) -> Limits:
        """The limits of ``POST /terminals/challenge``: :data:`TERMINAL_CHALLENGE_RULES`, own subjects."""
        return cls.from_settings(
            settings, db, rules=TERMINAL_CHALLENGE_RULES, subject_label="rate-limit-subject:terminal-challenge"
        )

    # -- keys ------------------------------------------------------------------------------------------------

    def subject(self, scope: Scope, identifier: str) -> str:
        mac = hmac.new(self._key, f"{scope}\0{identifier}".encode(), hashlib.sha256).hexdigest()[:32]
        return f"{scope}:{mac}"

    def _subjects(self, card_id: str | None, terminal_id: str | None, address: str | None) -> dict[Scope, str]:
        given = {Scope.CARD: card_id, Scope.TERMINAL: terminal_id, Scope.ADDRESS: address}
        subjects: dict[Scope, str] = {}
        for scope, value in given.items():
            if value is None:
                continue
            if not isinstance(value, str) or not value or len(value) > 256:
                raise ValueError(f"{scope} identifier must be a non-empty string of at most 256 characters")
            subjects[scope] = self.subject(scope, value)
        return subjects

    @staticmethod
    def _bucket(subject: str, rule: Rule, index: int) -> str:
        return f"{subject}:{rule.kind}:{rule.window_seconds}:{index}"

    # -- the check -------------------------------------------------------------------------------------------

    def check_and_count(
        self,
        kind: AttemptKind | str,
        *,
        card_id: str | None = None,
        terminal_id: str | None = None,
        address: str | None = None,
    ) -> Verdict:
        """Count one attempt of ``kind`` against each named scope; :class:`LockedOut` if any subject is (now)
        locked out, else :class:`Allowed`. Call it *before* the attempt (a face capture, a code entry, a start)."""
        kind = AttemptKind(kind)
        subjects = self._subjects(card_id, terminal_id, address)
        if not subjects:
            raise ValueError("name at least one of card_id, terminal_id, address")
        now = self._clock()
        scopes = list(subjects)
        active = self.store.locks([f"{subjects[s]}:lock" for s in scopes], now)
        held = [(s, record) for s, record in zip(scopes, active, strict=True) if record is not None]
        if held:
            return self._verdict(held)
        remaining: list[int] = []
        newly: list[tuple[Scope, LockRecord]] = []
        for rule in self.rules:
            if rule.kind is not kind or rule.scope not in subjects:
                continue
            subject = subjects[rule.scope]
            seconds = now.timestamp()
            index = int(seconds // rule.window_seconds)
            current = self.store.increment(
                self._bucket(subject, rule, index), timedelta(seconds=2 * rule.window_seconds), now
            )
            estimate = float(current)
            if rule.sliding:
                (previous,) = self.store.counts([self._bucket(subject, rule, index - 1)], now)
                elapsed = (seconds % rule.window_seconds) / rule.window_seconds
                estimate += previous * (1.0 - elapsed)
            if estimate > rule.limit:
                record = LockRecord(now + timedelta(seconds=rule.lockout_seconds), rule.reason)
                newly.append((rule.scope, self.store.lock(f"{subject}:lock", record, now)))
            else:
                remaining.append(int(rule.limit - estimate))
        if newly:
            return self._verdict(newly)
        return Allowed(min(remaining) if remaining else 0)

    @staticmethod
    def _verdict(locks: list[tuple[Scope, LockRecord]]) -> LockedOut:
        # A card lockout (counter visit) outranks the others; then the longest.
        scope, record = max(locks, key=lambda item: (item[0] is Scope.CARD, item[1].until))
        return LockedOut(until=record.until, reason=record.reason, scope=scope)

    # -- counter staff ---------------------------------------------------------------------------------------

    def status(
        self, *, card_id: str | None = None, terminal_id: str | None = None, address: str | None = None
    ) -> list[LockedOut]:
        subjects = self._subjects(card_id, terminal_id, address)
        scopes = list(subjects)
        records = self.store.locks([f"{subjects[s]}:lock" for s in scopes], self._clock())
        return [LockedOut(r.until, r.reason, s) for s, r in zip(scopes, records, strict=True) if r is not None]

    def lift(
        self,
        *,
        staff_id: str,
        card_id: str | None = None,
        terminal_id: str | None = None,
        address: str | None = None,
        counter_terminal: str | None = None,
        note: str | None = None,
        loss_reports: bool = False,
    ) -> list[LockedOut]:
        """Counter staff lift the lockouts of the named subjects and reset their counters. Audited: refused when
        this ``Limits`` has no audit log. Returns the lockouts that were in force. ``loss_reports``: the card's
        online loss-report limits (:meth:`for_loss_reports`) are lifted and reset in the same action — their event
        (detail ``limits: loss_report``) is written when such a lockout was in force."""
        if self.audit is None:
            raise RuntimeError("lifting a lockout must be audited: construct Limits with audit=AuditLog(...)")
        subjects = self._subjects(card_id, terminal_id, address)
        if not subjects:
            raise ValueError("name at least one of card_id, terminal_id, address")
        lifted, events, keys = self._lifting(subjects, staff_id, counter_terminal, note, quiet=False)
        if loss_reports and card_id is not None:
            other = self.for_loss_reports()
            more = other._lifting(other._subjects(card_id, None, None), staff_id, counter_terminal, note, quiet=True)
            lifted, events, keys = lifted + more[0], events + more[1], keys + more[2]
        self.store.delete(keys)
        self.audit.append_batch(events)
        return lifted

    def _lifting(
        self,
        subjects: dict[Scope, str],
        staff_id: str,
        counter_terminal: str | None,
        note: str | None,
        *,
        quiet: bool,
    ) -> tuple[list[LockedOut], list[Any], list[str]]:
        """What lifting ``subjects`` means: (lockouts in force, audit events, store keys to delete). ``quiet``: no
        event for a subject that was not locked out (its counters are reset all the same)."""
        from jpki_remote.audit import AuditEvent

        now = self._clock()
        scopes = list(subjects)
        records = self.store.locks([f"{subjects[s]}:lock" for s in scopes], now)
        lifted = [LockedOut(r.until, r.reason, s) for s, r in zip(scopes, records, strict=True) if r is not None]
        events: list[Any] = []
        keys: list[str] = []
        for scope, subject in subjects.items():
            held = [lock for lock in lifted if lock.scope is scope]
            detail: dict[str, object] = {"scope": str(scope), "subject": "s-" + subject.split(":", 1)[1][:16]}
            if self.label:
                detail["limits"] = self.label
            if held:
                detail.update(reason=held[0].reason, locked_until=held[0].until.isoformat(timespec="seconds"))
            if note:
                detail["note"] = note[:200]
            event = AuditEvent(
                actor=staff_id if ":" in staff_id else f"staff:{staff_id}",
                event_type="limits.lockout_lifted",
                outcome="success" if held else "info",
                terminal_id=counter_terminal,
                detail=detail,
            )
            event.validated_detail()  # refuse a bad note before anything changes
            if held or not quiet:
                events.append(event)
            keys.append(f"{subject}:lock")
            for rule in self.rules:
                if rule.scope is scope:
                    index = int(now.timestamp() // rule.window_seconds)
                    keys += [self._bucket(subject, rule, index), self._bucket(subject, rule, index - 1)]
        return lifted, events, keys
