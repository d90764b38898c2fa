"""End to end at the convenience-store kiosk, in a real chromium: the holder puts the card on the reader, types the
auth PIN and 照合番号B on the page's keypad, passes the face match with the random liveness challenge in front of the
(fake) camera fed from their real photo, enters the security code from their mailbox; the card is updated.

Checked from outside afterwards: the certificates the card now holds are ``good`` for ``openssl ocsp`` at the
server's OCSP endpoint and the old ones ``revoked`` (superseded); ``jpki-remote audit verify`` passes; the card's PINs
still work. With ``JPKI_SCREENSHOTS=1`` the run writes the kiosk screenshots of docs/ui.md from this real renewal.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from e2e import PINS, E2EWorld, serial_of
from e2e_flows import Session, card_and_pins, face_and_code, wait_done
from e2e_pages import screenshots_wanted

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]


def check_renewed(world: E2EWorld, card_id: str, old: tuple[bytes, bytes], workdir: Path) -> tuple[bytes, bytes]:
    """The card holds new certificates; OCSP: new good, old revoked (superseded); the audit log verifies."""
    new = world.card_certificates(card_id, PINS["sign_password"])
    assert serial_of(new[0]) != serial_of(old[0]) and serial_of(new[1]) != serial_of(old[1])
    for der, kind in ((new[0], "authentication"), (new[1], "signature")):
        answer = world.ocsp(der, kind, workdir)
        assert answer.status == "good", answer.output
    for der, kind in ((old[0], "authentication"), (old[1], "signature")):
        answer = world.ocsp(der, kind, workdir)
        assert (answer.status, answer.reason) == ("revoked", "superseded"), answer.output
    assert world.card_pin_ok(card_id, "auth_pin", PINS["auth_pin"])  # renewal keeps the holder's PINs
    audit = world.audit_verify()
    assert audit.returncode == 0 and "result: OK" in audit.stdout, audit.stdout + audit.stderr
    return new


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
