"""Rate limits and lockouts on the database store (SQLite) and on a real Redis at 127.0.0.1:6379."""

from __future__ import annotations

import secrets
import threading
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from jpki_remote.audit import AuditLog
from jpki_remote.audit.signing import load_or_create_signer
from jpki_remote.proofing.counters import DatabaseCounters, RedisCounters
from jpki_remote.proofing.limits import Allowed, AttemptKind, Limits, LockedOut, Rule, Scope
from jpki_remote.proofing.models import Lockout, RateCounter
from jpki_remote.store import Database

KEY = bytes(range(32))


@pytest.fixture(params=["database", pytest.param("redis", marks=pytest.mark.redis)])
def store(request: pytest.FixtureRequest, sqlite_database: Database) -> Iterator[DatabaseCounters | RedisCounters]:
    if request.param == "database":
        yield DatabaseCounters(sqlite_database)
        return
    import redis

    client = redis.Redis(host="127.0.0.1", port=6379, socket_timeout=5)
    prefix = f"jpki-test:{secrets.token_hex(6)}:"
    try:
        yield RedisCounters(client, prefix)
    finally:
        keys = list(client.scan_iter(match=prefix + "*"))
        if keys:
            client.delete(*keys)
        client.close()


@pytest.fixture
def limits(store, clock) -> Limits:
    return Limits(store, KEY, clock=clock)


def test_card_face_attempts_lock_out_and_send_to_the_counter(limits: Limits, clock) -> None:
    verdicts = [limits.check_and_count(AttemptKind.FACE, card_id="card-1") for _ in range(11)]
    assert [v.remaining for v in verdicts[:10]] == list(range(9, -1, -1))
    locked = verdicts[10]
    assert isinstance(locked, LockedOut)
    assert locked.scope is Scope.CARD and locked.counter_visit and locked.reason == "card_face_attempts"
    assert locked.until == clock.now + timedelta(days=7)
    assert "市区町村窓口" in locked.message_ja and "counter" in locked.message_en
    # Every other kind of attempt with this card is refused too, and nothing more is counted.
    assert isinstance(limits.check_and_count(AttemptKind.START, card_id="card-1"), LockedOut)
    assert isinstance(limits.check_and_count(AttemptKind.CODE, card_id="card-1", address="198.51.100.7"), LockedOut)
    assert isinstance(limits.check_and_count(AttemptKind.START, address="198.51.100.7"), Allowed)
    assert limits.check_and_count(AttemptKind.FACE, card_id="card-2") == Allowed(9)
    clock.advance(7 * 86400 + 1)
    assert isinstance(limits.check_and_count(AttemptKind.FACE, card_id="card-1"), Allowed)


def test_terminal_and_address_lockouts_say_try_later(limits: Limits) -> None:
    for _ in range(20):
        assert isinstance(limits.check_and_count(AttemptKind.START, address="203.0.113.9"), Allowed)
    locked = limits.check_and_count(AttemptKind.START, card_id="fresh-card", address="203.0.113.9")
    assert isinstance(locked, LockedOut) and locked.scope is Scope.ADDRESS and not locked.counter_visit
    assert "しばらく" in locked.message_ja


def test_unknown_card_is_counted_exactly_like_a_real_one(store, clock) -> None:
    real = Limits(store, KEY, clock=clock)
    real_verdicts = [real.check_and_count(AttemptKind.CODE, card_id="JPN-0000000001") for _ in range(12)]
    unknown_verdicts = [real.check_and_count(AttemptKind.CODE, card_id="no-such-card-xyz") for _ in range(12)]
    assert real_verdicts == unknown_verdicts
    assert real_verdicts[-1] == LockedOut(clock.now + timedelta(days=7), "card_code_attempts", Scope.CARD)


def test_fixed_window_resets_at_the_boundary(store, clock) -> None:
    rules = [Rule(AttemptKind.START, Scope.TERMINAL, 3, 60, False, 30, "t")]
    limits = Limits(store, KEY, rules, clock=clock)
    assert [type(limits.check_and_count("procedure_start", terminal_id="k1")) for _ in range(4)] == [
        Allowed, Allowed, Allowed, LockedOut
    ]  # fmt: skip
    clock.advance(31)  # lockout over, but this window is still full
    assert isinstance(limits.check_and_count("procedure_start", terminal_id="k1"), LockedOut)
    clock.advance(61)  # next window
    assert limits.check_and_count("procedure_start", terminal_id="k1") == Allowed(2)


def test_sliding_window_remembers_the_previous_window(store, clock) -> None:
    rules = [Rule(AttemptKind.FACE, Scope.ADDRESS, 10, 100, True, 1, "s")]
    limits = Limits(store, KEY, rules, clock=clock)
    assert int(clock.now.timestamp()) % 100 == 0
    for _ in range(10):
        assert isinstance(limits.check_and_count("face_attempt", address="a"), Allowed)
    clock.advance(150)  # halfway through the next window: half of the previous 10 still counts
    allowed = 0
    while isinstance(limits.check_and_count("face_attempt", address="a"), Allowed):
        allowed += 1
    assert allowed == 5


def test_staff_lift_a_lockout_and_it_is_audited(store, clock, tmp_path: Path, sqlite_database: Database) -> None:
    audit = AuditLog(sqlite_database, load_or_create_signer(tmp_path / "audit.pem"))
    limits = Limits(store, KEY, audit=audit, clock=clock)
    for _ in range(11):
        limits.check_and_count(AttemptKind.FACE, card_id="4321987654321")
    (held,) = limits.status(card_id="4321987654321")
    assert held.reason == "card_face_attempts"
    lifted = limits.lift(
        card_id="4321987654321", staff_id="42", counter_terminal="counter-3", note="本人確認書類を確認"
    )
    assert lifted == [held]
    assert limits.status(card_id="4321987654321") == []
    assert limits.check_and_count(AttemptKind.FACE, card_id="4321987654321") == Allowed(9)  # counters reset too
    (event,) = audit.events()
    assert event.actor == "staff:42" and event.event_type == "limits.lockout_lifted" and event.outcome == "success"
    assert event.terminal_id == "counter-3" and event.detail["reason"] == "card_face_attempts"
    assert "4321987654321" not in event.detail_json
    assert audit.verify().ok
    with pytest.raises(RuntimeError):
        Limits(store, KEY, clock=clock).lift(card_id="x", staff_id="42")


def test_simultaneous_attempts_never_exceed_the_limit(store, clock) -> None:
    limits = Limits(store, KEY, clock=clock)
    barrier = threading.Barrier(16)
    verdicts = []

    def attempt() -> None:
        barrier.wait()
        verdicts.append(limits.check_and_count(AttemptKind.FACE, card_id="contended"))

    threads = [threading.Thread(target=attempt) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert sum(isinstance(v, Allowed) for v in verdicts) == 10
    assert sorted(v.remaining for v in verdicts if isinstance(v, Allowed)) == list(range(10))


def test_raw_identifiers_never_reach_the_store(limits: Limits, store, sqlite_database: Database) -> None:
    for _ in range(11):
        limits.check_and_count(AttemptKind.FACE, card_id="CARD-SECRET-ID", address="192.0.2.44")
    if isinstance(store, RedisCounters):
        keys = [k.decode() for k in store.client.scan_iter(match=store.prefix + "*")]
    else:
        with sqlite_database.session() as s:
            keys = list(s.scalars(select(RateCounter.key))) + list(s.scalars(select(Lockout.key)))
    assert keys and not any("CARD-SECRET-ID" in k or "192.0.2.44" in k for k in keys)


def test_bad_calls_are_clear_errors(limits: Limits) -> None:
    with pytest.raises(ValueError):
        limits.check_and_count(AttemptKind.FACE)
    with pytest.raises(ValueError):
        limits.check_and_count("guess", card_id="c")
    with pytest.raises(ValueError):
        limits.check_and_count(AttemptKind.FACE, card_id="x" * 300)
    with pytest.raises(ValueError):
        Limits(limits.store, KEY, [Rule(AttemptKind.FACE, Scope.CARD, 0, 1, False, 1, "z")])


@pytest.mark.postgres
def test_database_counters_are_atomic_on_postgresql(postgres_database: Database, clock) -> None:
    limits = Limits(DatabaseCounters(postgres_database), KEY, clock=clock)
    barrier = threading.Barrier(14)
    verdicts = []

    def attempt() -> None:
        barrier.wait()
        verdicts.append(limits.check_and_count(AttemptKind.START, terminal_id="kiosk-1", card_id="c-9"))

    threads = [threading.Thread(target=attempt) for _ in range(14)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert sum(isinstance(v, Allowed) for v in verdicts) == 10
    assert all(v.scope is Scope.CARD for v in verdicts if isinstance(v, LockedOut))


@pytest.mark.redis
def test_from_settings_picks_redis_or_the_database(proofing_settings, sqlite_database: Database) -> None:
    assert isinstance(Limits.from_settings(proofing_settings, sqlite_database).store, DatabaseCounters)
    prefix = f"jpki-test:{secrets.token_hex(6)}:"
    settings = proofing_settings.with_overrides(redis_url="redis://127.0.0.1:6379/0", redis_key_prefix=prefix)
    limits = Limits.from_settings(settings, sqlite_database)
    assert isinstance(limits.store, RedisCounters) and limits.store.prefix == prefix + "limits:"
    try:
        assert limits.check_and_count(AttemptKind.START, card_id="c") == Allowed(9)
        assert list(limits.store.client.scan_iter(match=prefix + "*"))
    finally:
        keys = list(limits.store.client.scan_iter(match=prefix + "*"))
        if keys:
            limits.store.client.delete(*keys)
