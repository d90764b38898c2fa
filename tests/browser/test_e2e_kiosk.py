"""End to end at the convenience-store kiosk, in a real chromium: the holder puts the card on the reader, types the
auth PIN and 照合番号B on the page's keypad, passes the face match with the random liveness challenge in front of the
(fake) camera fed from their real photo, enters the security code from their mailbox; the card is updated.

Checked from outside afterwards: the certificates the card now holds are ``good`` for ``openssl ocsp`` at the
server's OCSP endpoint and the old ones ``revoked`` (superseded); ``jpki-remote audit verify`` passes; the card's PINs
still work. With ``JPKI_SCREENSHOTS=1`` the run writes the kiosk screenshots of docs/ui.md from this real renewal.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from e2e import PINS, E2EWorld, opensc_auth_login
from e2e_flows import Session, card_and_pins, check_renewed, face_and_code, holder_procedure, wait_done
from e2e_pages import screenshots_wanted

from card.transports.fixtures import insert_card, pcsc_stack

__all__ = ["insert_card", "pcsc_stack"]  # PC/SC fixtures of the card tests (pcscd + vpcd), for OpenSC

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]


def test_renewal_at_the_kiosk(e2e_world: E2EWorld, browser_factory: Any, y4m_cache: Any, tmp_path: Path) -> None:
    world = e2e_world
    holder = world.add_holder("obama")
    old = world.card_certificates(holder.card_id, PINS["sign_password"])
    for der, kind in ((old[0], "authentication"), (old[1], "signature")):
        assert world.ocsp(der, kind, tmp_path).status == "good"
    agent = world.start_agent(world.register_terminal("kiosk"), card_id=None)  # the reader is empty
    session = Session(world, holder, agent, "kiosk", browser_factory, y4m_cache,
                      shots="kiosk" if screenshots_wanted() else None)
    try:
        screen = session.open()
        assert screen.screen() == "menu"
        session.shot("01-menu")
        screen.choose_renewal()
        screen.wait_screen("card")
        session.shot("03-card")
        agent.insert(holder.card_id)  # the holder puts the card on the reader
        steps = card_and_pins(session, ("authentication pin", holder.pins["auth_pin"]))
        face_and_code(session, steps)
        done = wait_done(session, {"authentication pin": holder.pins["auth_pin"]})
        assert "電子証明書の更新" in done["kind"] and done["ref"]
        assert not screen.errors, screen.errors
    except BaseException:
        print(session.diagnostics())
        raise
    finally:
        session.close()
        world.stop_agent(agent)
    assert world.procedures_of(holder.card_id)[-1][:4] == ("renewal", "certificates", "kiosk", "completed")
    check_renewed(world, holder.card_id, old, tmp_path)
    assert any("更新" in body for body in world.messages_to(holder.email))  # the holder was notified
    print(f"kiosk renewal timings: {session.timings}")


@pytest.mark.pcsc
def test_auth_pin_reset_at_the_kiosk_with_the_signature_password(
    e2e_world: E2EWorld, browser_factory: Any, y4m_cache: Any, tmp_path: Path, insert_card: Any, pcsc_stack: Any
) -> None:
    """The holder forgot the auth PIN but knows the signature password: card + sign password, face, code; the new
    PIN, typed twice on the keypad, works on the card — also for OpenSC's PKCS#11 module — and the old one does not."""
    world = e2e_world
    holder = world.add_holder("john_lennon")
    new_pin = "8642"
    old = world.card_certificates(holder.card_id, PINS["sign_password"])
    agent = world.start_agent(world.register_terminal("kiosk"), card_id=holder.card_id)
    session = Session(world, holder, agent, "kiosk", browser_factory, y4m_cache,
                      shots="kiosk" if screenshots_wanted() else None)
    try:
        seen = holder_procedure(session, kind="pin_reset", target="auth_pin", known="sign_password", new_pin=new_pin)
        assert "暗証番号の初期化・再設定" in seen["receipt"]["kind"]
    except BaseException:
        print(session.diagnostics())
        raise
    finally:
        session.close()
        world.stop_agent(agent)
    assert world.procedures_of(holder.card_id)[-1][:4] == ("pin_reset", "auth_pin", "kiosk", "completed")
    assert not world.card_pin_ok(holder.card_id, "auth_pin", PINS["auth_pin"])  # the forgotten PIN is gone
    assert world.card_pin_ok(holder.card_id, "auth_pin", new_pin)  # (a right PIN restores the counter)
    assert world.card_pin_tries(holder.card_id, "auth_pin") == 3
    from jpki_remote.card.store import CardStore

    store = CardStore(world.cards_dir)
    with store.lock(holder.card_id, timeout=10), insert_card(store.open(holder.card_id)):
        refused = opensc_auth_login(pcsc_stack.env(), tmp_path / "old", PINS["auth_pin"])
        accepted = opensc_auth_login(pcsc_stack.env(), tmp_path / "new", new_pin)
    assert refused.returncode != 0 and "CKR_PIN_INCORRECT" in refused.stdout + refused.stderr, refused
    assert accepted.returncode == 0, accepted.stdout + accepted.stderr
    assert (tmp_path / "new" / "signature.bin").stat().st_size == 256
    assert world.card_certificates(holder.card_id, PINS["sign_password"]) == old  # a reset touches no certificate
    audit = world.audit_verify()
    assert audit.returncode == 0, audit.stdout + audit.stderr


def test_another_persons_face_is_refused_and_nothing_changes(
    e2e_world: E2EWorld, browser_factory: Any, y4m_cache: Any, tmp_path: Path
) -> None:
    """Someone else in front of the camera, doing the challenge right: the page refuses with its clear message and
    the attempts left; the procedure cancelled, the card and its certificates are exactly as before."""
    world = e2e_world
    holder = world.add_holder("kit_harington")
    old = world.card_certificates(holder.card_id, PINS["sign_password"])
    agent = world.start_agent(world.register_terminal("kiosk"), card_id=holder.card_id)
    session = Session(world, holder, agent, "kiosk", browser_factory, y4m_cache,
                      shots="kiosk" if screenshots_wanted() else None)
    try:
        screen = session.open()
        screen.choose_renewal()
        steps = card_and_pins(session, ("authentication pin", holder.pins["auth_pin"]))
        screen = session.continue_with_camera(steps, person="biden")
        result = screen.capture_face()
        assert result["screen"] == "face", result  # still on the face screen: may try again
        assert "顔がうまく確認できませんでした" in result["error"] and "Face not verified" in result["error"], result
        assert re.search(r"あと 9 回", result["attempts"]), result  # the card's daily face limit counted it
        # the page turns the camera back on and says what to do next
        screen.wait_for("() => document.getElementById('camera-video').readyState >= 2"
                        " && document.getElementById('face-instruction').textContent.includes('もう一度')",
                        timeout_ms=20_000, what="the camera back on for another try")
        screen.page.wait_for_timeout(1500)  # two polls of the procedure later, the attempts left are still shown
        assert "あと 9 回" in screen.text("#face-attempts") and screen.page.is_visible("#face-attempts")
        session.shot("11-face-retry")
        proc = world.procedures_of(holder.card_id)[-1]
        assert proc[3:5] == ("active", "proofs"), proc
        screen.page.click("[data-screen=face] [data-action=cancel]")
        screen.wait_screen("menu")
    except BaseException:
        print(session.diagnostics())
        raise
    finally:
        session.close()
        world.stop_agent(agent)
    assert world.procedures_of(holder.card_id)[-1][3] in ("cancelled", "failed")
    # the audit log recorded the refused face check (it does not say whether liveness or the match failed: the
    # liveness checker compares every frame with the card photo, so another person fails as "liveness_failed")
    [event] = world.audit_events(holder.card_id, "face_match")
    assert event.outcome == "failure" and event.detail["result"] in ("liveness_failed", "no_match"), event.detail
    assert not world.audit_events(holder.card_id, "keys_generated") and not world.audit_events(holder.card_id, "issued")
    assert world.card_certificates(holder.card_id, PINS["sign_password"]) == old
    for der, kind in ((old[0], "authentication"), (old[1], "signature")):
        assert world.ocsp(der, kind, tmp_path).status == "good"
    assert world.card_pin_ok(holder.card_id, "auth_pin", PINS["auth_pin"])
