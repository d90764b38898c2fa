"""PIN reset (each of the four passwords) and PIN change through the engine with a real virtual card."""

from __future__ import annotations

import pytest
from procedure_world import PINS, World, run_agent

from jpki_remote.card import layout
from jpki_remote.card.client import CardClient, PinIncorrectError
from jpki_remote.terminal.agent import ScriptedPinPad

FIDS = {
    "auth_pin": ("jpki", layout.JPKI_AUTH_PIN),
    "sign_password": ("jpki", layout.JPKI_SIGN_PIN),
    "residence_pin": ("juki", layout.JUKI_PIN),
    "text_pin": ("text", layout.TEXT_PIN),
}
NEW = {"auth_pin": "9753", "sign_password": "NEWPASS9", "residence_pin": "1357", "text_pin": "8642"}


def _verify(card, kind: str, value: str) -> None:
    applet, fid = FIDS[kind]
    client = CardClient(card)
    client.select_ap(applet)
    client.verify(fid, value)
    card.reset()


def _block(card, kind: str) -> None:
    applet, fid = FIDS[kind]
    client = CardClient(card)
    client.select_ap(applet)
    wrong = "ZZZZZZ" if kind == "sign_password" else "0000"
    for _ in range(6):
        try:
            client.verify(fid, wrong)
        except Exception:  # noqa: S112 - counting down to the lock
            continue
    card.reset()


@pytest.mark.parametrize("kind", list(FIDS))
def test_pin_reset_at_the_counter_unblocks_a_locked_pin(world: World, kind: str) -> None:
    issued = world.issue_card()
    _block(issued.card, kind)
    engine = world.engine()
    reply = engine.start(kind="pin_reset", target=kind, channel="counter", card_id=issued.card_id, terminal_id="t-test")
    pinpad = ScriptedPinPad(new_pins={kind: NEW[kind]})
    reply = run_agent(engine, reply, issued.card, pinpad)
    assert reply["waiting_for"] == "staff_check" and reply["proofs_done"] == ["card_key"], reply
    reply = world.engine().record_staff_check(reply["id"], "staff-7", ["passport"])
    reply = run_agent(world.engine(), reply, issued.card, pinpad)
    assert reply["status"] == "completed", reply
    assert pinpad.asked == [f"new:{kind}"]  # no old PIN asked: every PIN may be forgotten at the counter
    _verify(issued.card, kind, NEW[kind])
    with pytest.raises(PinIncorrectError):
        _verify(issued.card, kind, PINS[kind] if PINS[kind] != NEW[kind] else "1111")


def test_badly_formed_new_pin_is_asked_again(world: World) -> None:
    issued = world.issue_card()
    engine = world.engine()
    reply = engine.start(
        kind="pin_reset", target="sign_password", channel="counter", card_id=issued.card_id, terminal_id="t-test"
    )
    reply = run_agent(engine, reply, issued.card, ScriptedPinPad())
    reply = engine.record_staff_check(reply["id"], "staff-7", ["passport"])
    assert reply["exchange"]["new_pin"] == "sign_password"
    reply = engine.exchange(reply["id"], "t-test", seq=reply["exchange"]["seq"], responses=[], new_pin="abc")
    assert reply["message"]["code"] == "new_pin_invalid" and reply["exchange"]["status"] == "retry"
    reply = engine.exchange(reply["id"], "t-test", seq=None, responses=[], event="retry")
    assert reply["exchange"]["new_pin"] == "sign_password"
    reply = run_agent(engine, reply, issued.card, ScriptedPinPad(new_pins={"sign_password": "GOOD1234"}))
    assert reply["status"] == "completed"
    _verify(issued.card, "sign_password", "GOOD1234")


@pytest.mark.parametrize("kind", list(FIDS))
def test_pin_change_online(world: World, kind: str) -> None:
    issued = world.issue_card()
    engine = world.engine()
    reply = engine.start(kind="pin_change", target=kind, channel="online", card_id=issued.card_id, terminal_id="t-test")
    wrong = ScriptedPinPad(pins={kind: "WRONG1" if kind == "sign_password" else "0000"}, new_pins={kind: NEW[kind]})
    reply = run_agent(engine, reply, issued.card, wrong)
    assert reply["status"] == "active" and reply["message"]["code"] == "pin_incorrect"
    assert reply["exchange"]["status"] == "retry"  # never re-tried automatically: the card counted the try
    reply = engine.exchange(reply["id"], "t-test", seq=None, responses=[], event="retry")
    reply = run_agent(engine, reply, issued.card, ScriptedPinPad(pins=dict(PINS), new_pins={kind: NEW[kind]}))
    assert reply["status"] == "completed", reply
    _verify(issued.card, kind, NEW[kind])


def test_pin_reset_on_kiosk_needs_the_other_pin(world: World) -> None:
    """Resetting the auth PIN at a kiosk requires a signature with the sign key (the holder knows the password)."""
    from jpki_remote.procedures.ports import ProofingFace

    world.ports.face = ProofingFace(world.settings)
    issued = world.issue_card()
    engine = world.engine()
    reply = engine.start(
        kind="pin_reset",
        target="auth_pin",
        channel="kiosk",
        card_id=issued.card_id,
        terminal_id="t-test",
        options={"known_pin": "sign_password"},
    )
    pinpad = ScriptedPinPad(pins={"sign_password": PINS["sign_password"], "code_b": issued.code_b})
    reply = run_agent(engine, reply, issued.card, pinpad)
    assert reply["proofs_done"] == ["card_sign_key"], reply
    assert pinpad.asked == ["sign_password", "code_b"]
    assert reply["state"] == "proofs" and reply["waiting_for"] in ("face_liveness", "security_code")
    from jpki_remote.procedures.errors import ProcedureError

    with pytest.raises(ProcedureError) as err:
        engine.start(
            kind="pin_reset",
            target="auth_pin",
            channel="kiosk",
            card_id=issued.card_id,
            terminal_id="t-test",
            options={"known_pin": "auth_pin"},
        )
    assert err.value.code == "not_allowed"


def test_a_card_whose_issuer_domain_is_locked_fails_with_card_locked(world: World) -> None:
    """6983 on INITIALIZE UPDATE (ten failed issuer authentications in a row): the reset fails with its own code —
    the holder must go to the counter — not the generic 'place the card again'."""
    from jpki_remote.card import issuer_domain as isd
    from jpki_remote.card.issuer import IssuerLockedError, IssuerSession, SecureChannelError

    issued = world.issue_card()
    for _ in range(isd.ISSUER_AUTH_LIMIT):
        with pytest.raises(SecureChannelError):
            IssuerSession(issued.card, bytes(32)).open()  # wrong master key
        issued.card.reset()
    with pytest.raises(IssuerLockedError):
        IssuerSession(issued.card, world.master).open()
    issued.card.reset()
    engine = world.engine()
    reply = engine.start(
        kind="pin_reset", target="auth_pin", channel="counter", card_id=issued.card_id, terminal_id="t-test"
    )
    pinpad = ScriptedPinPad(new_pins={"auth_pin": NEW["auth_pin"]})
    reply = run_agent(engine, reply, issued.card, pinpad)
    reply = world.engine().record_staff_check(reply["id"], "staff-7", ["passport"])
    reply = run_agent(world.engine(), reply, issued.card, pinpad)
    assert reply["status"] == "failed" and reply["error"]["code"] == "card_locked", reply
    assert "窓口" in reply["error"]["ja"] and "counter" in reply["error"]["en"]
    _verify(issued.card, "auth_pin", PINS["auth_pin"])  # the holder's PIN is untouched
