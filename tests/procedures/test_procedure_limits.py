"""Rate limits through the engine (counters in the database and in Redis): a card's procedure starts are counted once
the card has proved possession — unproven starts, with a real or an unknown card id, never lock a card out and are
answered alike — face captures and code entries are counted too; a locked-out card's procedure ends at the card
proof; counter staff lift the lockout."""

from __future__ import annotations

import secrets
from collections.abc import Iterator

import pytest
from procedure_world import PINS, IssuedCard, World, run_agent

from jpki_remote.procedures.engine import Engine
from jpki_remote.procedures.errors import ProcedureError
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


def _start(engine: Engine, card_id: str, address: str, terminal_id: str = "t-k") -> dict:
    return engine.start(
        kind="renewal",
        target="certificates",
        channel="kiosk",
        card_id=card_id,
        terminal_id=terminal_id,
        address=address,
    )


def _proven_start(
    engine: Engine, issued: IssuedCard, address: str, *, channel: str = "online", terminal_id: str = "t-o"
) -> dict:
    """A revocation started for the card, then the card's proof (auth PIN + signature): the card is taken there."""
    reply = engine.start(
        kind="revocation",
        target="signature",
        channel=channel,
        card_id=issued.card_id,
        terminal_id=terminal_id,
        address=address,
    )
    return run_agent(engine, reply, issued.card, ScriptedPinPad(pins={"auth_pin": PINS["auth_pin"]}), terminal_id)


def _stable(reply: dict) -> dict:
    return {k: v for k, v in reply.items() if k not in ("id", "expires_at")}


def test_unproven_starts_never_lock_a_card_out(limited: World) -> None:
    """Starts with a card id and no card (S-5): more than the card's daily start limit, for a real card and for an
    unknown id — every one answered alike, none counted against the card, so the holder is not locked out."""
    engine = limited.engine()
    issued = limited.issue_card()
    unknown = "".join(secrets.choice("0123456789") for _ in range(15))
    for i in range(CARD_STARTS + 3):
        answers = []
        for card_id in (issued.card_id, unknown):
            reply = _start(engine, card_id, f"198.51.{i}.{len(answers) + 1}", terminal_id=f"t-{i}-{len(answers)}")
            engine.cancel(reply["id"], f"t-{i}-{len(answers)}")
            answers.append(_stable(reply))
        assert answers[0] == answers[1]
    assert limited.ports.limits.status(card_id=issued.card_id) == []
    reply = _proven_start(engine, issued, "198.51.200.1")
    assert reply["status"] == "active" and reply["state"] == "proofs", reply["error"]


def test_proven_starts_lock_the_card_out_and_staff_lift_it(limited: World) -> None:
    engine = limited.engine()
    issued = limited.issue_card()
    for i in range(CARD_STARTS):
        reply = _proven_start(engine, issued, f"198.51.100.{i}")
        assert reply["status"] == "active" and reply["state"] == "proofs", (i, reply["error"])
        engine.cancel(reply["id"], "t-o")
    # one start too many: the start itself is answered as for any card; the card proof ends it with locked_out
    reply = _proven_start(engine, issued, "198.51.100.99")
    assert reply["status"] == "failed" and reply["error"]["code"] == "locked_out", reply
    assert "窓口へお越しください" in reply["error"]["ja"]
    [lock] = limited.ports.limits.status(card_id=issued.card_id)
    assert lock.scope is Scope.CARD and lock.reason == "card_procedure_starts"
    # the lockout holds from any terminal and address, for every kind of procedure
    other = engine.start(kind="pin_reset", target="sign_password", channel="kiosk", card_id=issued.card_id,
                         terminal_id="t-k2", address="203.0.113.9")  # fmt: skip
    other = run_agent(engine, other, issued.card, ScriptedPinPad(pins={"auth_pin": PINS["auth_pin"]}), "t-k2")
    assert other["status"] == "failed" and other["error"]["code"] == "locked_out", other
    # counter procedures are not limited: the counter is where the holder is sent
    counter = _proven_start(engine, issued, "", channel="counter", terminal_id="t-c")
    assert counter["status"] == "active" and counter["state"] == "proofs", counter["error"]
    engine.cancel(counter["id"], "t-c")
    # staff lift it (audited), then the holder may go on remotely
    lifted = limited.ports.limits.lift(card_id=issued.card_id, staff_id="staff-7", counter_terminal="t-c")
    assert [lock.scope for lock in lifted] == [Scope.CARD]
    reply = _proven_start(engine, issued, "198.51.100.1")
    assert reply["status"] == "active" and reply["state"] == "proofs", reply["error"]
    events = limited.audit.events(limit=500)
    refusals = [e for e in events if e.event_type.endswith(".limits")]
    assert [e.detail["attempt_kind"] for e in refusals] == ["procedure_start", "procedure_start"]
    assert "limits.lockout_lifted" in [e.event_type for e in events]
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
        assert engine.view(reply["id"], "t-k")["face_attempts_left"] == left[-1]  # the polled view repeats it
    assert left == list(range(CARD_FACES - 1, -1, -1))
    reply = engine.submit_face(reply["id"], "t-k", [b"not an image"], address="198.51.100.7")
    assert reply["status"] == "failed" and reply["error"]["code"] == "locked_out"
    assert reply["face_result"] == {"reason": "locked_out", "attempts_left": 0}
    data = _procedure_data(limited, reply["id"])
    assert data["face_attempts"] == CARD_FACES + 1  # what the live statistics read
    # the card is locked out: a new start is answered as for any card, and its card proof ends it
    again = run_agent(engine, _start(engine, issued.card_id, "198.51.100.8"), issued.card,
                      ScriptedPinPad(pins={"auth_pin": PINS["auth_pin"]}), "t-k")  # fmt: skip
    assert again["status"] == "failed" and again["error"]["code"] == "locked_out", again


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
    # a code entry before any code was sent is refused and not counted (else guesses could lock a card out)
    with pytest.raises(ProcedureError) as refused:
        engine.verify_code(reply["id"], "t-k", "000000", address="192.0.2.1")
    assert refused.value.code == "wrong_step"
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
