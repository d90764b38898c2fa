"""Live statistics over procedure records, and the adapter reading them from the live database."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta

import pytest

from jpki_remote.analytics.live import CounterHours, ProcedureRecord, live_statistics
from jpki_remote.analytics.months import month_index
from jpki_remote.analytics.sources import SourceUnavailable, history_from_database, procedure_records
from jpki_remote.store import Database

SeedLive = Callable[[Database], None]

JST_OFFSET = timedelta(hours=9)


def jst(year: int, month: int, day: int, hour: int, minute: int = 0) -> datetime:
    """A Japan-time wall clock moment, stored as UTC like the database does."""
    return datetime(year, month, day, hour, minute, tzinfo=UTC) - JST_OFFSET


def record(
    kind: str = "renewal",
    channel: str = "kiosk",
    outcome: str = "completed",
    code: str = "13103",
    at: datetime | None = None,
    minutes: float | None = 12,
    face: int = 0,
    sc: int = 0,
) -> ProcedureRecord:
    start = at or jst(2025, 6, 2, 10)  # a Monday, counter open
    end = start + timedelta(minutes=minutes) if minutes is not None else None
    return ProcedureRecord(kind, channel, outcome, code, start, end, face, sc)


def test_counts_visits_avoided_and_hours_saved() -> None:
    records = [
        record(),
        record(channel="online", kind="pin_reset"),
        record(channel="online", kind="pin_change", outcome="failed", face=2),
        record(channel="counter"),  # at the counter: nothing avoided
        record(channel="kiosk", kind="registry_event"),  # system-driven: not a visit
        record(channel="kiosk", outcome="referred_to_counter", face=3, sc=1),
    ]
    stats = live_statistics(records, minutes_per_visit=45).to_dict()
    assert stats["total"] == 6
    assert stats["by_channel"] == {"kiosk": 3, "online": 2, "counter": 1}
    assert stats["by_outcome"] == {"completed": 4, "failed": 1, "referred_to_counter": 1}
    assert stats["by_channel_outcome"]["online"] == {"completed": 1, "failed": 1}
    assert stats["counter_visits_avoided"] == 2
    assert stats["staff_hours_saved"] == pytest.approx(1.5)
    assert stats["remote"] == 5
    assert stats["face_failure_rate"] == pytest.approx(2 / 5)
    assert stats["code_failure_rate"] == pytest.approx(1 / 5)
    assert stats["face_failures_per_procedure"] == pytest.approx(1.0)
    assert stats["median_minutes"] == pytest.approx(12)


def test_times_of_day_nights_and_weekends_in_japan_time() -> None:
    records = [
        record(at=jst(2025, 6, 2, 8, 29)),  # Monday before opening: night
        record(at=jst(2025, 6, 2, 8, 30)),  # open
        record(at=jst(2025, 6, 2, 17, 14)),  # open
        record(at=jst(2025, 6, 2, 17, 15)),  # closed: night
        record(at=jst(2025, 6, 2, 23, 30)),  # night (14:30 UTC)
        record(at=jst(2025, 6, 7, 11)),  # Saturday
        record(at=jst(2025, 6, 8, 3), channel="online"),  # Sunday, 18:00 UTC on Saturday
        record(at=jst(2025, 6, 3, 10), channel="counter"),  # Tuesday, open
    ]
    stats = live_statistics(records).to_dict()
    assert stats["night"] == 3
    assert stats["closed_days"] == 2
    assert stats["outside_counter_hours"] == 5
    assert stats["outside_counter_hours_share"] == pytest.approx(5 / 8)
    assert stats["remote_outside_counter_hours_share"] == pytest.approx(5 / 7)
    assert stats["by_hour_jst"][23] == 1 and stats["by_hour_jst"][3] == 1 and stats["by_hour_jst"][8] == 2
    assert stats["by_weekday_jst"][5] == 1 and stats["by_weekday_jst"][6] == 1 and stats["by_weekday_jst"][0] == 5
    holiday = CounterHours(holidays=frozenset({date(2025, 6, 3)}))
    assert live_statistics(records, counter_hours=holiday).to_dict()["closed_days"] == 3


def test_per_municipality_and_empty_input() -> None:
    records = [record(code="13103"), record(code="23211"), record(code="23211", channel="counter"), record(code="")]
    stats = live_statistics(iter(records), municipality_names={"13103": "港区"}).to_dict()
    assert set(stats["municipalities"]) == {"13103", "23211", "unknown"}
    assert stats["municipalities"]["13103"]["name"] == "港区"
    assert stats["municipalities"]["23211"]["by_channel"]["counter"] == 1
    assert stats["municipalities"]["23211"]["counter_visits_avoided"] == 1
    empty = live_statistics([]).to_dict()
    assert empty["total"] == 0 and empty["face_failure_rate"] is None and empty["median_minutes"] is None
    with pytest.raises(ValueError):
        live_statistics([], minutes_per_visit=0)


def test_naive_times_are_utc_and_unfinished_procedures_have_no_duration() -> None:
    naive = datetime(2025, 6, 2, 1, 0)  # 10:00 JST
    stats = live_statistics([record(at=naive, minutes=None, outcome="in_progress")]).to_dict()
    assert stats["by_hour_jst"][10] == 1
    assert stats["median_minutes"] is None


# ---- the live database ---------------------------------------------------------------------------------------------


def test_procedure_records_from_the_live_database(database: Database, seed_live: SeedLive) -> None:
    seed_live(database)
    records = {r.kind + "/" + r.channel: r for r in procedure_records(database)}
    assert len(records) == 4
    kiosk = records["renewal/kiosk"]
    assert kiosk.municipality_code == "13103" and kiosk.outcome == "completed" and kiosk.face_failures == 1
    assert kiosk.started_at.tzinfo is not None
    reset = records["pin_reset/online"]
    assert reset.municipality_code == "23211"
    assert reset.outcome == "referred_to_counter"
    assert (reset.face_failures, reset.code_failures) == (2, 1)
    assert records["renewal/online"].outcome == "in_progress" and records["renewal/online"].finished_at is None
    only = list(procedure_records(database, municipality_code="232114"))
    assert {r.kind for r in only} == {"pin_reset", "pin_change"}
    later = list(procedure_records(database, since=datetime(2025, 6, 2, 15, 0, tzinfo=UTC)))
    assert {r.kind + "/" + r.channel for r in later} == {"pin_change/counter", "renewal/online"}
    stats = live_statistics(procedure_records(database)).to_dict()
    assert stats["counter_visits_avoided"] == 1
    assert stats["municipalities"]["23211"]["face_failure_rate"] == pytest.approx(1.0)


def test_issuance_history_from_the_live_database(database: Database, seed_live: SeedLive) -> None:
    with pytest.raises(SourceUnavailable):
        history_from_database(database=database)
    seed_live(database)
    history = history_from_database(database=database)
    assert history.municipalities() == {"13103": "港区", "23211": "豊田市"}
    months = {(r.municipality_code, r.first_month): r.cards_issued for r in history.records}
    # c1 was issued at 16:00 UTC on 30 June = 1 July in Japan; the revoked c3 is not counted
    assert months == {("13103", month_index(2020, 7)): 1, ("23211", month_index(2020, 5)): 1}
