"""Security codes: issue, single use, expiry, the failure budget across resends, cooldown, binding, concurrency."""

from __future__ import annotations

import logging
import re
import threading
from pathlib import Path

import pytest
from sqlalchemy import select

from jpki_remote.config import Settings
from jpki_remote.proofing.codes import CodeIssueRefused, CodeStatus, SecurityCodes
from jpki_remote.proofing.delivery import Contact, DeliveryError, Message
from jpki_remote.proofing.delivery.outbox import dev_outbox
from jpki_remote.proofing.models import CodeBudget, SecurityCode
from jpki_remote.store import Database

MOBILE = Contact.of("mobile", "090-1234-5678")


def latest_code(db: Database, contact: Contact = MOBILE) -> str:
    body = dev_outbox(db, address=contact.address, limit=1)[0].body
    match = re.search(r"(?<!\d)(\d{6})(?!\d)", body)
    assert match, body
    return match.group(1)


def other_than(code: str) -> str:
    return f"{(int(code) + 1) % 1_000_000:06d}"


@pytest.fixture
def codes(database: Database, proofing_settings: Settings, clock) -> SecurityCodes:
    """On SQLite and PostgreSQL: for the tests whose subject is what is stored."""
    return SecurityCodes(database, proofing_settings, clock=clock)


@pytest.fixture
def sqlite_codes(sqlite_database: Database, proofing_settings: Settings, clock) -> SecurityCodes:
    return SecurityCodes(sqlite_database, proofing_settings, clock=clock)


def test_code_is_accepted_once(codes: SecurityCodes, database: Database) -> None:
    issued = codes.issue("proc-1", "renewal", MOBILE)
    assert issued.contact_masked == "090-****-5678" and issued.channel == "mobile"
    assert issued.tries_left == 5 and issued.codes_left == 4
    code = latest_code(database)
    assert codes.verify("proc-1", "renewal", code).accepted
    assert codes.verify("proc-1", "renewal", code).status is CodeStatus.USED


def test_only_a_keyed_hash_is_stored(codes: SecurityCodes, database: Database, caplog) -> None:
    caplog.set_level(logging.DEBUG)
    codes.issue("proc-1", "renewal", MOBILE)
    code = latest_code(database)
    with database.session() as s:
        row = s.scalars(select(SecurityCode)).one()
        stored = [str(getattr(row, c.key)) for c in SecurityCode.__table__.columns]
        assert len(row.code_hash) == 32
    assert not any(code in value for value in stored)
    assert code not in caplog.text  # the code is in the message body only, never in a log line
    codes.verify("proc-1", "renewal", code)
    assert code not in caplog.text


def test_code_expires(codes: SecurityCodes, database: Database, clock) -> None:
    codes.issue("proc-1", "renewal", MOBILE)
    code = latest_code(database)
    clock.advance(599)
    assert codes.verify("proc-1", "renewal", other_than(code)).status is CodeStatus.WRONG
    clock.advance(2)
    assert codes.verify("proc-1", "renewal", code).status is CodeStatus.EXPIRED


def test_wrong_entries_count_down_then_lock(codes: SecurityCodes, database: Database) -> None:
    codes.issue("proc-1", "renewal", MOBILE)
    code = latest_code(database)
    outcomes = [codes.verify("proc-1", "renewal", other_than(code)) for _ in range(5)]
    assert [(o.status, o.tries_left) for o in outcomes] == [
        (CodeStatus.WRONG, 4),
        (CodeStatus.WRONG, 3),
        (CodeStatus.WRONG, 2),
        (CodeStatus.WRONG, 1),
        (CodeStatus.LOCKED, 0),
    ]
    assert codes.verify("proc-1", "renewal", code).status is CodeStatus.LOCKED  # even the right code is dead now


def test_resend_does_not_reset_the_failure_count(codes: SecurityCodes, database: Database, clock) -> None:
    codes.issue("proc-1", "pin_reset", MOBILE)
    first = latest_code(database)
    for _ in range(3):
        assert codes.verify("proc-1", "pin_reset", other_than(first)).status is CodeStatus.WRONG
    clock.advance(61)
    issued = codes.issue("proc-1", "pin_reset", MOBILE)
    assert issued.tries_left == 2
    second = latest_code(database)
    if second == first:  # one chance in a million; keep the test meaningful
        pytest.skip("the two random codes coincided")
    assert codes.verify("proc-1", "pin_reset", first).status is CodeStatus.WRONG  # the old code is superseded
    assert codes.verify("proc-1", "pin_reset", other_than(second)).status is CodeStatus.LOCKED
    assert codes.verify("proc-1", "pin_reset", second).status is CodeStatus.LOCKED
    clock.advance(61)
    with pytest.raises(CodeIssueRefused) as refused:
        codes.issue("proc-1", "pin_reset", MOBILE)
    assert refused.value.reason == "locked"


def test_resend_cooldown_and_issue_cap(codes: SecurityCodes, clock) -> None:
    codes.issue("proc-1", "renewal", MOBILE)
    with pytest.raises(CodeIssueRefused) as refused:
        codes.issue("proc-1", "renewal", MOBILE)
    assert refused.value.reason == "cooldown"
    assert (refused.value.retry_after - clock.now).total_seconds() == 60
    for _ in range(4):
        clock.advance(60)
        codes.issue("proc-1", "renewal", MOBILE)
    clock.advance(60)
    with pytest.raises(CodeIssueRefused) as refused:
        codes.issue("proc-1", "renewal", MOBILE)
    assert refused.value.reason == "too_many_codes"


def test_code_is_bound_to_its_procedure_and_purpose(codes: SecurityCodes, database: Database) -> None:
    codes.issue("proc-A", "renewal", MOBILE)
    code = latest_code(database)
    assert codes.verify("proc-B", "renewal", code).status is CodeStatus.NOT_ISSUED
    codes.issue("proc-B", "renewal", Contact.of("email", "taro@example.jp"))
    assert codes.verify("proc-B", "renewal", code).status in (CodeStatus.WRONG, CodeStatus.ACCEPTED)
    assert codes.verify("proc-A", "pin_reset", code).status is CodeStatus.NOT_ISSUED
    with database.session() as s:
        hashes = {r.procedure_id: bytes(r.code_hash) for r in s.scalars(select(SecurityCode))}
    assert hashes["proc-A"] != hashes["proc-B"]


@pytest.mark.parametrize("entry", ["", "12345", "1234567", "12a456", "１２３４５x", None, 123456, "1" * 40])
def test_malformed_entries_use_no_try(sqlite_codes: SecurityCodes, entry: object) -> None:
    codes = sqlite_codes
    codes.issue("proc-1", "renewal", MOBILE)
    assert codes.verify("proc-1", "renewal", entry).status is CodeStatus.MALFORMED
    assert codes.tries_left("proc-1", "renewal") == 5


def test_full_width_digits_and_spaces_are_accepted(sqlite_codes: SecurityCodes) -> None:
    codes = sqlite_codes
    codes.issue("proc-1", "renewal", MOBILE)
    code = latest_code(codes.db)
    typed = " ".join([code[:3].translate(str.maketrans("0123456789", "０１２３４５６７８９")), code[3:]])
    assert codes.verify("proc-1", "renewal", typed).accepted


def test_bad_identifiers_are_clear_errors(sqlite_codes: SecurityCodes) -> None:
    codes = sqlite_codes
    with pytest.raises(ValueError):
        codes.issue("", "renewal", MOBILE)
    with pytest.raises(ValueError):
        codes.verify("proc-1", "Renewal; DROP", "123456")
    with pytest.raises(ValueError):
        codes.issue("proc-1", "renewal", "junk")
    with pytest.raises(ValueError):
        codes.issue("proc-1", "renewal", Contact.of("mobile", "03-1234-5678"))  # a landline


class FailingDeliverer:
    def __init__(self) -> None:
        self.calls = 0

    def send(self, contact: Contact, message: Message) -> None:
        self.calls += 1
        raise DeliveryError("gateway down", retryable=True)


def test_failed_delivery_leaves_no_live_code(database: Database, proofing_settings: Settings, clock) -> None:
    codes = SecurityCodes(database, proofing_settings, FailingDeliverer(), clock=clock)
    with pytest.raises(CodeIssueRefused) as refused:
        codes.issue("proc-1", "renewal", MOBILE)
    assert refused.value.reason == "delivery_failed" and refused.value.retryable
    assert codes.verify("proc-1", "renewal", "123456").status is CodeStatus.NOT_ISSUED
    working = SecurityCodes(database, proofing_settings, clock=clock)
    working.issue("proc-1", "renewal", MOBILE)  # no cooldown after a failed delivery
    assert working.verify("proc-1", "renewal", latest_code(database)).accepted


def test_secret_file_is_generated_once_with_mode_0600(proofing_settings: Settings, sqlite_database: Database):
    database = sqlite_database
    SecurityCodes(database, proofing_settings)
    path = Path(proofing_settings.data_dir) / "secrets" / "proofing.key"
    assert path.stat().st_mode & 0o777 == 0o600
    before = path.read_text()
    SecurityCodes(database, proofing_settings)
    assert path.read_text() == before


def test_codes_survive_a_restart_with_the_same_secret(database: Database, proofing_settings: Settings) -> None:
    SecurityCodes(database, proofing_settings).issue("proc-1", "renewal", MOBILE)
    fresh = SecurityCodes(database, proofing_settings)  # another worker process of the same deployment
    assert fresh.verify("proc-1", "renewal", latest_code(database)).accepted
    fresh.issue("proc-2", "renewal", MOBILE)
    other = SecurityCodes(database, proofing_settings.with_overrides(proofing_secret="ab" * 32))
    assert other.verify("proc-2", "renewal", latest_code(database)).status is CodeStatus.WRONG  # wrong server key


# ------------------------------------------------------------------------------------------------ concurrency


def _race(action, workers: int) -> list:
    barrier = threading.Barrier(workers)
    results: list = [None] * workers

    def run(i: int) -> None:
        barrier.wait()
        results[i] = action()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    return results


@pytest.mark.postgres
def test_simultaneous_correct_entries_accept_exactly_once(postgres_database: Database, proofing_settings: Settings):
    codes = SecurityCodes(postgres_database, proofing_settings)
    for round_ in range(5):
        procedure = f"race-{round_}"
        codes.issue(procedure, "renewal", MOBILE)
        code = latest_code(postgres_database)
        outcomes = _race(lambda p=procedure, c=code: codes.verify(p, "renewal", c), 8)
        statuses = [o.status for o in outcomes]
        assert statuses.count(CodeStatus.ACCEPTED) == 1, statuses
        assert set(statuses) == {CodeStatus.ACCEPTED, CodeStatus.USED}


@pytest.mark.postgres
def test_simultaneous_wrong_entries_never_exceed_the_budget(postgres_database: Database, proofing_settings: Settings):
    codes = SecurityCodes(postgres_database, proofing_settings)
    codes.issue("race", "renewal", MOBILE)
    wrong = other_than(latest_code(postgres_database))
    outcomes = _race(lambda: codes.verify("race", "renewal", wrong), 12)
    statuses = [o.status for o in outcomes]
    assert statuses.count(CodeStatus.WRONG) == 4 and statuses.count(CodeStatus.LOCKED) == 8
    assert sorted(o.tries_left for o in outcomes if o.status is CodeStatus.WRONG) == [1, 2, 3, 4]
    with postgres_database.session() as s:
        assert s.get(CodeBudget, ("race", "renewal")).failures == 5
