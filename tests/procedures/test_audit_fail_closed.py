"""Audit fails closed (OWASP ASVS 16.5.3): with the audit log unavailable a step is not carried out and the holder is
told to try again later; a step whose effect is already on the card completes and its events wait in the backlog
until recovery appends them. The outage is real: the audit log's event table is renamed away and back."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from procedure_world import PINS, World, make_world, run_agent
from sqlalchemy import func, select, text

from jpki_remote.card import layout
from jpki_remote.card.client import CardClient
from jpki_remote.procedures.errors import ProcedureError
from jpki_remote.procedures.models import AuditBacklog, Procedure
from jpki_remote.store import Database
from jpki_remote.terminal.agent import ScriptedPinPad


@pytest.fixture
def any_world(database: Database, tmp_path: Path, faces_dir: Path) -> World:
    return make_world(database, tmp_path, faces_dir)


@contextmanager
def audit_log_down(world: World) -> Iterator[None]:
    with world.db.engine.begin() as connection:
        connection.execute(text("ALTER TABLE audit_events RENAME TO audit_events_away"))
    try:
        yield
    finally:
        with world.db.engine.begin() as connection:
            connection.execute(text("ALTER TABLE audit_events_away RENAME TO audit_events"))


def _backlog(world: World) -> int:
    with world.db.session() as s:
        return s.scalar(select(func.count()).select_from(AuditBacklog)) or 0


def _event_types(world: World, procedure_id: str) -> list[str]:
    return [e.event_type for e in world.audit.events(procedure_id=procedure_id, limit=500, newest_first=False)]


def test_a_step_is_not_carried_out_without_its_audit_event(any_world: World) -> None:
    world = any_world
    issued = world.issue_card()
    engine = world.engine()
    reply = engine.start(kind="renewal", target="certificates", channel="counter", card_id=issued.card_id,
                         terminal_id="t-c")  # fmt: skip
    reply = run_agent(engine, reply, issued.card, ScriptedPinPad(pins=dict(PINS)), "t-c")
    assert reply["waiting_for"] == "staff_check"
    with audit_log_down(world):
        with pytest.raises(ProcedureError) as refused:
            engine.record_staff_check(reply["id"], "staff-1", ["passport"])
        assert refused.value.code == "audit_unavailable" and refused.value.http_status == 503
        assert "try again" in refused.value.message_en and "お試しください" in refused.value.message_ja
        with world.db.session() as s:
            assert "staff_check" not in s.get(Procedure, reply["id"]).proofs  # the step did not happen
        with pytest.raises(ProcedureError) as no_start:  # nor does a new procedure start
            engine.start(kind="pin_change", target="text_pin", channel="online", card_id="123456789012345",
                         terminal_id="t-o")  # fmt: skip
        assert no_start.value.code == "audit_unavailable"
    reply = engine.record_staff_check(reply["id"], "staff-1", ["passport"])  # the log is back: the same step works
    reply = run_agent(engine, reply, issued.card, ScriptedPinPad(pins=dict(PINS)), "t-c")
    assert reply["status"] == "completed", reply["error"]
    types = _event_types(world, reply["id"])
    assert types.count("renewal.staff_check") == 1 and types[-1] == "renewal.completed"
    assert _backlog(world) == 0 and world.audit.verify().ok


def test_an_effect_already_on_the_card_completes_and_its_events_are_appended_later(any_world: World) -> None:
    world = any_world
    issued = world.issue_card()
    engine = world.engine()
    pinpad = ScriptedPinPad(new_pins={"text_pin": "8642"})
    reply = engine.start(kind="pin_reset", target="text_pin", channel="counter", card_id=issued.card_id,
                         terminal_id="t-c")  # fmt: skip
    reply = run_agent(engine, reply, issued.card, pinpad, "t-c")
    reply = engine.record_staff_check(reply["id"], "staff-2", ["passport"])
    assert reply["state"] == "set_pin"
    with audit_log_down(world):
        reply = run_agent(engine, reply, issued.card, pinpad, "t-c")  # RESET RETRY COUNTER + new PIN on the card
        assert reply["status"] == "completed", reply["error"]
        assert _backlog(world) == 2  # pin_set and completed, durably queued with the step
        assert engine.recover() == [] and _backlog(world) == 2  # still down: they wait
    client = CardClient(issued.card)
    client.select_ap("text")
    client.verify(layout.TEXT_PIN, "8642")  # the new PIN is on the card
    issued.card.reset()
    assert "pin_reset.pin_set" not in _event_types(world, reply["id"])
    engine.recover()  # the log is back: recovery appends the backlog
    assert _backlog(world) == 0
    types = _event_types(world, reply["id"])
    assert types[-2:] == ["pin_reset.pin_set", "pin_reset.completed"]
    assert world.audit.verify().ok
