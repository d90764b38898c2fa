"""End to end online (the holder's own PC with the local terminal agent and the portal page), in a real chromium:
renewal — with a wrong security code first, refused with the tries left and nothing changed — and a reset of the
signature password with the auth PIN known. Checked from outside: ``openssl ocsp``, the card, ``audit verify``."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from e2e import PINS, E2EWorld, serial_of
from e2e_flows import Session, check_renewed, holder_procedure
from e2e_pages import screenshots_wanted

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]


def test_renewal_online_after_a_wrong_security_code(
    e2e_world: E2EWorld, browser_factory: Any, y4m_cache: Any, tmp_path: Path
) -> None:
    world = e2e_world
    holder = world.add_holder("kit_harington")
    old = world.card_certificates(holder.card_id, PINS["sign_password"])
    agent = world.start_agent(world.register_terminal("app"), card_id=holder.card_id)
    session = Session(world, holder, agent, "app", browser_factory, y4m_cache)
    if screenshots_wanted():  # the portal's menu at phone width, on this real session's page
        phone = session.open(url=agent.base_url + "/")  # the agent's launcher: a fresh page link
        phone.page.set_viewport_size({"width": 390, "height": 844})
        phone.shot("portal-phone-menu")
        session.close()
    try:
        seen = holder_procedure(session, kind="renewal", wrong_code_first=True)
    except BaseException:
        print(session.diagnostics())
        raise
    finally:
        session.close()
        world.stop_agent(agent)
    # the wrong code: refused on the code screen with what is left, the procedure still waiting for the code
    assert seen["wrong_screen"] == "code", seen
    said = seen["wrong_error"]
    assert "セキュリティーコードが違います" in said and "Wrong security code" in said, seen
    tries = re.search(r"あと (\d+) 回", seen["wrong_tries"])
    assert tries and int(tries.group(1)) == 4, seen  # 5 entries per procedure across resends, one used
    assert seen["after_wrong"][3:5] == ("active", "proofs"), seen["after_wrong"]
    [wrong, right] = world.audit_events(holder.card_id, "code_verify")
    assert (wrong.outcome, right.outcome) == ("failure", "success")
    # …and the right one afterwards renewed the card
    assert "電子証明書の更新" in seen["receipt"]["kind"]
    assert world.procedures_of(holder.card_id)[-1][:4] == ("renewal", "certificates", "online", "completed")
    check_renewed(world, holder.card_id, old, tmp_path)


def test_signature_password_reset_online_with_the_auth_pin(
    e2e_world: E2EWorld, browser_factory: Any, y4m_cache: Any, tmp_path: Path
) -> None:
    world = e2e_world
    holder = world.add_holder("obama")
    new_password = "NEWPASS7"
    old = world.card_certificates(holder.card_id, PINS["sign_password"])
    agent = world.start_agent(world.register_terminal("app"), card_id=holder.card_id)
    session = Session(world, holder, agent, "app", browser_factory, y4m_cache)
    try:
        seen = holder_procedure(session, kind="pin_reset", target="sign_password", known="auth_pin",
                                new_pin=new_password)
        assert "暗証番号の初期化・再設定" in seen["receipt"]["kind"]
    except BaseException:
        print(session.diagnostics())
        raise
    finally:
        session.close()
        world.stop_agent(agent)
    assert world.procedures_of(holder.card_id)[-1][:4] == ("pin_reset", "sign_password", "online", "completed")
    assert not world.card_pin_ok(holder.card_id, "sign_password", PINS["sign_password"])
    assert world.card_pin_ok(holder.card_id, "sign_password", new_password)
    new = world.card_certificates(holder.card_id, new_password)  # the signature certificate opens with the new one
    assert [serial_of(d) for d in new] == [serial_of(d) for d in old]
    for der, kind in ((old[0], "authentication"), (old[1], "signature")):
        assert world.ocsp(der, kind, tmp_path).status == "good"
    audit = world.audit_verify()
    assert audit.returncode == 0, audit.stdout + audit.stderr
