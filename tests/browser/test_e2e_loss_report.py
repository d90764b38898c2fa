"""End to end: the online loss report (紛失届, finding S-17) in the portal, in a real chromium. The card is lost, so
the reader stays empty: the holder chooses 「カードを紛失した」, types the card number, passes the face check against
the photo enrolled at issuance (random liveness challenge, fake camera fed from their real photo), enters the
security code from their mailbox and confirms. Checked from outside: both certificates ``revoked`` (keyCompromise) by
``openssl ocsp`` — and still ``good`` while the confirmation is shown —, ``jpki-remote audit verify`` passes. Another
person's face is refused: no code is sent, nothing is revoked. With ``JPKI_SCREENSHOTS=1`` the first run writes the
portal's loss-report screenshots of docs/ui.md."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from e2e import PINS, E2EWorld
from e2e_flows import Session, loss_report
from e2e_pages import screenshots_wanted

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]


def test_loss_report_in_the_portal(e2e_world: E2EWorld, browser_factory: Any, y4m_cache: Any, tmp_path: Path) -> None:
    world = e2e_world
    holder = world.add_holder("john_lennon")
    old = world.card_certificates(holder.card_id, PINS["sign_password"])
    agent = world.start_agent(world.register_terminal("app"), card_id=None)  # the card is lost: nothing on the reader
    session = Session(world, holder, agent, "app", browser_factory, y4m_cache,
                      shots="portal-loss" if screenshots_wanted() else None)
    at_confirmation: dict[str, Any] = {}

    def before_confirm() -> None:  # the last look: nothing revoked yet, no card relayed at any point
        at_confirmation["ocsp"] = [world.ocsp(der, kind, tmp_path / "before").status
                                   for der, kind in ((old[0], "authentication"), (old[1], "signature"))]
        at_confirmation["agent"] = agent.status()
        at_confirmation["outbox"] = world.outbox_ids()

    try:
        seen = loss_report(session, before_confirm=before_confirm)
    except BaseException:
        print(session.diagnostics())
        raise
    finally:
        session.close()
        world.stop_agent(agent)
    # the loss report's own steps: no card, no PIN, a confirmation before the revocation
    assert seen["steps"] == ["number:1", "face:2", "code:3", "confirm:4", "done:5"], seen["steps"]
    assert "/ 5" in seen["announced"], seen["announced"]
    assert "取り消せません" in seen["confirm"], seen["confirm"]
    # the face step ran in a second browser (a reload): the number typed in the first is kept nowhere (S-15)
    assert "最初に入力したカード番号" in seen["confirm"] and holder.card_id not in seen["confirm"], seen["confirm"]
    assert at_confirmation["ocsp"] == ["good", "good"], at_confirmation
    status = at_confirmation["agent"]
    assert not status["card_present"] and status["procedure_id"] is None, status  # the agent never relayed a card
    # the done screen: what happened and where to go now
    assert "失効させました" in seen["done"] and "使えません" in seen["done"] and "窓口" in seen["done"], seen["done"]
    assert world.procedures_of(holder.card_id)[-1][:4] == ("loss_report", "card", "online", "completed")
    for der, kind in ((old[0], "authentication"), (old[1], "signature")):
        answer = world.ocsp(der, kind, tmp_path)
        assert (answer.status, answer.reason) == ("revoked", "keyCompromise"), answer.output
    events = [(e.event_type, e.outcome) for e in world.audit_events_of_type("loss_report.revoked")]
    assert ("loss_report.revoked", "success") in events
    audit = world.audit_verify()
    assert audit.returncode == 0 and "result: OK" in audit.stdout, audit.stdout + audit.stderr
    assert len(world.messages_to(holder.email)) >= 2  # the code, then the notice of the revocation
    assert world.outbox_ids() > at_confirmation["outbox"]


def test_loss_report_refuses_another_persons_face(
    e2e_world: E2EWorld, browser_factory: Any, y4m_cache: Any, tmp_path: Path
) -> None:
    """Someone else knows the card number and stands in front of the camera: refused on the face screen with the
    clear message and the attempts left; no code goes to the holder; the certificates stay good."""
    world = e2e_world
    holder = world.add_holder("kit_harington")
    old = world.card_certificates(holder.card_id, PINS["sign_password"])
    agent = world.start_agent(world.register_terminal("app"), card_id=None)
    session = Session(world, holder, agent, "app", browser_factory, y4m_cache)
    try:
        seen = loss_report(session, person="biden")
        result = seen["face"]
        assert result["screen"] == "face", result  # still on the face screen: may try again
        assert "顔がうまく確認できませんでした" in result["error"] and "Face not verified" in result["error"], result
        assert re.search(r"あと \d+ 回", result["attempts"]), result
        assert session.screen is not None
        session.screen.page.click("[data-screen=face] [data-action=cancel]")
        session.screen.wait_screen("menu")
    except BaseException:
        print(session.diagnostics())
        raise
    finally:
        session.close()
        world.stop_agent(agent)
    assert world.procedures_of(holder.card_id)[-1][3] in ("cancelled", "failed")
    assert world.messages_to(holder.email) == []  # nobody was identified: no code was sent
    assert not world.audit_events(holder.card_id, "revoked")
    for der, kind in ((old[0], "authentication"), (old[1], "signature")):
        assert world.ocsp(der, kind, tmp_path).status == "good"
    audit = world.audit_verify()
    assert audit.returncode == 0, audit.stdout + audit.stderr
