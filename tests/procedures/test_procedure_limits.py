"""Rate limits through the engine: procedure starts and face captures lock the card out after the limits (counters
in the database and in Redis), the answer is the same for an unknown card, counter staff lift the lockout."""

from __future__ import annotations

import secrets
from collections.abc import Iterator

import pytest
from procedure_world import PINS, World, run_agent

from jpki_remote.procedures.attempts import LockedOutError
from jpki_remote.procedures.engine import Engine
from jpki_remote.procedures.ports import ProofingFace
from jpki_remote.proofing.limits import DEFAULT_RULES, AttemptKind, Limits, Scope
from jpki_remote.terminal.agent import ScriptedPinPad

CARD_STARTS = next(r.limit for r in DEFAULT_RULES if r.kind is AttemptKind.START and r.scope is Scope.CARD)
CARD_FACES = next(r.limit for r in DEFAULT_RULES if r.kind is AttemptKind.FACE and r.scope is Scope.CARD)


@pytest.fixture(params=["database", pytest.param("redis", marks=pytest.mark.redis)])
def limited(request: pytest.FixtureRequest, world: World) -> Iterator[World]:
    """The world with its limits in the database (default) or in Redis (``Limits.from_settings`` with a URL)."""
    if request.param == "database":
        yield world
        return
    prefix = f"jpki-test:{secrets.token_hex(6)}:"
    settings = world.settings.with_overrides(redis_url="redis://127.0.0.1:6379/0", redis_key_prefix=prefix)
    world.ports.limits = Limits.from_settings(settings, world.db, audit=world.audit)
    client = world.ports.limits.store.client
    try:
        yield world
    finally:
        keys = list(client.scan_iter(match=prefix + "*"))
        if keys:
            client.delete(*keys)


def _start(engine: Engine, card_id: str, address: str) -> dict:
    return engine.start(
        kind="renewal", target="certificates", channel="kiosk", card_id=card_id, terminal_id="t-k", address=address
    )


def _starts_until_locked(engine: Engine, card_id: str, address: str) -> tuple[int, LockedOutError]:
    for count in range(1, 100):
        try:
            reply = _start(engine, card_id, address)
        except LockedOutError as exc:
            return count, exc
        engine.cancel(reply["id"], "t-k")
    raise AssertionError("never locked out")


def test_starts_lock_the_card_out_and_unknown_cards_get_the_same_answer(limited: World) -> None:
    engine = limited.engine()
    known = limited.issue_card().card_id
    unknown = "".join(secrets.choice("0123456789") for _ in range(15))
    count_known, locked_known = _starts_until_locked(engine, known, "198.51.100.1")
    count_unknown, locked_unknown = _starts_until_locked(engine, unknown, "198.51.100.2")
    assert count_known == count_unknown == CARD_STARTS + 1
    assert locked_known.as_dict() == locked_unknown.as_dict()
    body = locked_known.as_dict()
    assert body["code"] == "locked_out" and "窓口へお越しください" in str(body["message_ja"])
    assert locked_known.http_status == 429 and locked_known.counter_visit
    # the lockout holds from any terminal and address, for every kind of procedure
    with pytest.raises(LockedOutError):
        engine.start(kind="pin_change", target="text_pin", channel="online", card_id=known, terminal_id="t-o",
                     address="203.0.113.9")  # fmt: skip
    # counter procedures are not limited: the counter is where the holder is sent
    counter = engine.start(kind="renewal", target="certificates", channel="counter", card_id=known, terminal_id="t-c")
    engine.cancel(counter["id"], "t-c")
    # staff lift it (audited), then the holder may start again remotely
    lifted = limited.ports.limits.lift(card_id=known, staff_id="staff-7", counter_terminal="t-c")
    assert [lock.scope for lock in lifted] == [Scope.CARD]
    engine.cancel(_start(engine, known, "198.51.100.1")["id"], "t-k")
    events = [e.event_type for e in limited.audit.events(limit=500)]
    assert "limits.lockout_lifted" in events and "renewal.start" in events
    assert limited.audit.verify().ok


def test_face_attempts_lock_out_and_end_the_procedure(limited: World) -> None:
    limited.ports.face = ProofingFace(limited.settings)
    issued = limited.issue_card()
    engine = limited.engine()
    reply = _start(engine, issued.card_id, "198.51.100.7")
    reply = run_agent(engine, reply, issued.card, ScriptedPinPad(pins={"auth_pin": PINS["auth_pin"],
                                                                       "code_b": issued.code_b}), "t-k")  # fmt: skip
    assert reply["state"] == "proofs" and reply["face_ready"], reply["error"]
    left = []
    for _ in range(CARD_FACES):  # unreadable captures: refused, retry allowed, each one counted
        reply = engine.submit_face(reply["id"], "t-k", [b"not an image"], address="198.51.100.7")
        assert reply["status"] == "active", reply["error"]
        left.append(reply["face_result"]["attempts_left"])
    assert left == list(range(CARD_FACES - 1, -1, -1))
    reply = engine.submit_face(reply["id"], "t-k", [b"not an image"], address="198.51.100.7")
    assert reply["status"] == "failed" and reply["error"]["code"] == "locked_out"
    assert reply["face_result"] == {"reason": "locked_out", "attempts_left": 0}
    with pytest.raises(LockedOutError):
        _start(engine, issued.card_id, "198.51.100.8")
    data = _procedure_data(limited, reply["id"])
    assert data["face_attempts"] == CARD_FACES + 1  # what the live statistics read


def test_code_entries_are_limited(limited: World) -> None:
    from jpki_remote.proofing.limits import Rule

    key = secrets.token_bytes(32)
    rules = (Rule(AttemptKind.CODE, Scope.ADDRESS, 3, 3600, False, 3600, "address_code_attempts"),)
    limited.ports.limits = Limits(limited.ports.limits.store, key, rules, audit=limited.audit)
    issued = limited.issue_card()
    engine = limited.engine()
    # revocation online: card + security code (no face)
    reply = engine.start(kind="revocation", target="signature", channel="online", card_id=issued.card_id,
                         terminal_id="t-k", address="192.0.2.1")  # fmt: skip
    reply = run_agent(engine, reply, issued.card, ScriptedPinPad(pins={"auth_pin": PINS["auth_pin"]}), "t-k")
    assert reply["state"] == "proofs", reply["error"]
    engine.request_code(reply["id"], "t-k", address="192.0.2.1")
    for _ in range(2):
        reply = engine.verify_code(reply["id"], "t-k", "000000", address="192.0.2.1")
        assert reply["status"] == "active"
    reply = engine.verify_code(reply["id"], "t-k", "000000", address="192.0.2.1")
    assert reply["status"] == "failed" and reply["error"]["code"] == "rate_limited"
    assert _procedure_data(limited, reply["id"])["code_attempts"] == 3


def _procedure_data(world: World, procedure_id: str) -> dict:
    from jpki_remote.procedures.models import Procedure

    with world.db.session() as s:
        return dict(s.get(Procedure, procedure_id).data)
