"""End to end at the municipal counter, in a real chromium on the counter terminal's page with its agent process:

* the PINs the policy resets only face to face (住民基本台帳用, 券面事項入力補助用): staff record the ID documents,
  the card proves itself with its card key, the holder types the new PIN twice on the counter keypad;
* a new card (交付): staff pick the resident, record the ID documents, enrol the photo from the counter camera (the
  fake camera playing the holder's real photo), register the contacts; the holder sets the four PINs on the keypad;
  the card's keys are generated on it and both certificates issued through the legal flow.

Checked from outside: the card (old PINs refused, new accepted), ``openssl ocsp`` (the new certificates ``good``),
``jpki-remote audit verify``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from e2e import PINS, E2EWorld
from e2e_flows import Session
from e2e_pages import CounterScreen, screenshots_wanted

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]
STAFF = "minato.tanaka"
PASSWORD = "correct horse 港区 0412"


@pytest.fixture(scope="module")
def staff(e2e_world: E2EWorld) -> str:
    e2e_world.add_staff(STAFF, PASSWORD)
    return STAFF


def open_counter(world: E2EWorld, browser: Any, agent: Any, staff_id: str) -> CounterScreen:
    page = browser.new_context(viewport={"width": 1280, "height": 900}, locale="ja-JP").new_page()
    page.set_default_timeout(30_000)
    screen = CounterScreen(page)
    screen.open(agent.first_page_url, staff_id, PASSWORD)
    return screen


def test_residence_and_text_pin_reset_at_the_counter(
    e2e_world: E2EWorld, browser_factory: Any, tmp_path: Path, staff: str
) -> None:
    world = e2e_world
    holder = world.add_holder("eric_clapton", enrol_face=False)
    new = {"residence_pin": "9753", "text_pin": "1357"}
    agent = world.start_agent(world.register_terminal("counter"), card_id=holder.card_id)
    try:
        screen = open_counter(world, browser_factory(), agent, staff)
        screen.tab("procedure")
        for target, label in (("residence_pin", "residence registry pin"), ("text_pin", "card-text pin")):
            screen.page.select_option("#p-what", f"pin_reset:{target}")
            screen.check_documents("p", "drivers_license")
            screen.page.click("#procedure-form button[type=submit]")
            screen.page.wait_for_function("() => !document.querySelector('#run-result .ok-box')")
            asked = screen.follow({f"choose the new {label}": new[target]})
            assert asked == [f"choose the new {label}"], asked
            screen.page.click("#run-cancel")  # closes the finished run's panel
        assert not screen.errors, screen.errors
    except BaseException:
        print(agent.output.text()[-3000:])
        raise
    finally:
        world.stop_agent(agent)
    runs = world.procedures_of(holder.card_id)
    assert [r[:4] for r in runs] == [("pin_reset", "residence_pin", "counter", "completed"),
                                     ("pin_reset", "text_pin", "counter", "completed")], runs
    for target, value in new.items():
        assert not world.card_pin_ok(holder.card_id, target, PINS[target]), target
        assert world.card_pin_ok(holder.card_id, target, value), target
    checks = world.audit_events(holder.card_id, "staff_check")
    assert len(checks) == 2 and all(STAFF in f"{c.actor} {c.detail}" for c in checks), checks
    audit = world.audit_verify()
    assert audit.returncode == 0, audit.stdout + audit.stderr


def test_new_card_issued_at_the_counter(
    e2e_world: E2EWorld, browser_factory: Any, y4m_cache: Any, tmp_path: Path, staff: str
) -> None:
    world = e2e_world
    resident_id, card_id, code_b = world.waiting_resident("rose_leslie")
    chosen = {"auth_pin": "2580", "sign_password": "HANA2026", "residence_pin": "1470", "text_pin": "3690"}
    email = f"rose.{card_id[-4:]}@example.jp"
    agent = world.start_agent(world.register_terminal("counter"), card_id=card_id)  # the delivered card
    try:
        screen = open_counter(world, browser_factory(camera=y4m_cache("rose_leslie")), agent, staff)
        page = screen.page
        # staff find the resident (name and birth date) and take them to the issuance form
        page.fill("#q-name", "Rose")
        page.fill("#q-birth", "1990-06-12")
        page.click("#lookup-form button[type=submit]")
        page.wait_for_selector("#lookup-table tbody tr", timeout=30_000)
        rows = page.locator("#lookup-table tbody tr")
        assert rows.count() == 1 and "交付" in rows.first.inner_text(), rows.first.inner_text()
        rows.first.locator("button", has_text="交付に使う").click()
        page.wait_for_selector("#panel-issuance", state="visible", timeout=10_000)
        assert page.input_value("#i-resident") == resident_id
        screen.check_documents("i", "notice_of_issuance", "drivers_license")
        page.click("#i-camera")
        page.wait_for_function("() => document.getElementById('i-video').readyState >= 2", timeout=20_000)
        page.click("#i-snap")
        page.wait_for_selector("#i-photo-preview", state="visible", timeout=10_000)
        page.fill("#i-email", email)
        page.click("#i-submit")
        page.wait_for_selector("#run", state="visible", timeout=60_000)
        asked = screen.follow({
            "choose the new authentication pin": chosen["auth_pin"],
            "choose the new signature password": chosen["sign_password"],
            "choose the new residence registry pin": chosen["residence_pin"],
            "choose the new card-text pin": chosen["text_pin"],
            "enter the authentication pin": chosen["auth_pin"],
            "enter the signature password": chosen["sign_password"],
            "verification code b": code_b,
        })
        assert {"choose the new authentication pin", "choose the new signature password",
                "choose the new residence registry pin", "choose the new card-text pin"} <= set(asked), asked
        assert not screen.errors, screen.errors
    except BaseException:
        print(agent.output.text()[-3000:])
        print(world.server.log()[-3000:] if world.server else "")
        raise
    finally:
        world.stop_agent(agent)
    assert world.procedures_of(card_id)[-1][:4] == ("issuance", "card", "counter", "completed")
    auth, sign = world.card_certificates(card_id, chosen["sign_password"])
    for der, kind in ((auth, "authentication"), (sign, "signature")):
        answer = world.ocsp(der, kind, tmp_path)
        assert answer.status == "good", answer.output
    for kind, value in chosen.items():
        assert world.card_pin_ok(card_id, kind, value), kind
    assert world.card_pin_tries(card_id, "auth_pin") == 3
    with world.db.session() as session:
        from jpki_remote.registry import service as registry

        assert registry.enrolled_encoding(session, card_id) is not None  # the photo's encoding, not the photo
        assert [c.address for c in registry.contacts_of(session, resident_id)] == [email]
    audit = world.audit_verify()
    assert audit.returncode == 0, audit.stdout + audit.stderr


def test_holder_sent_to_the_counter_by_the_limits_is_unlocked_by_staff(
    e2e_world: E2EWorld, browser_factory: Any, y4m_cache: Any, staff: str
) -> None:
    """Too many face attempts on a card lock it out of remote procedures: once the card has proved possession (the
    start says nothing about the card, finding S-5) the kiosk sends the holder to the counter; there staff find the
    card, see it limited, lift the limits after checking an ID document (audited); at the kiosk the holder's card
    then passes its proof again."""
    from jpki_remote.proofing.limits import AttemptKind, Limits

    world = e2e_world
    holder = world.add_holder("alex_lacamoire", enrol_face=False)
    limits = Limits.from_settings(world.settings, world.db)  # the server's counters (database), the server's key
    for _ in range(11):  # the card's daily face limit is 10
        limits.check_and_count(AttemptKind.FACE, card_id=holder.card_id)
    assert limits.status(card_id=holder.card_id)

    kiosk = world.start_agent(world.register_terminal("kiosk"), card_id=holder.card_id)
    counter = world.start_agent(world.register_terminal("counter"), card_id=None)
    session = Session(world, holder, kiosk, "kiosk", browser_factory, y4m_cache,
                      shots="kiosk" if screenshots_wanted() else None)
    try:
        screen = session.open()
        screen.choose_renewal()
        screen.enter_pin("authentication pin", holder.pins["auth_pin"])  # the lockout shows after the card proof
        screen.wait_screen("failed")
        assert "窓口" in screen.failure() and "counter" in screen.failure(), screen.failure()
        assert "窓口へお越しください" in screen.text("#failed-next")
        session.shot("09-refused")

        desk = open_counter(world, browser_factory(), counter, staff)
        page = desk.page
        page.fill("#q-card", holder.card_id)
        page.click("#lookup-form button[type=submit]")
        page.wait_for_selector("#lookup-table tbody tr", timeout=30_000)
        row = page.locator("#lookup-table tbody tr").first
        assert "制限中" in row.inner_text(), row.inner_text()
        row.locator("button", has_text="制限を解除").click()
        page.wait_for_selector("#unlock-form", state="visible")
        desk.check_documents("u", "mynumber_card")
        page.click("#unlock-form button[type=submit]")
        page.wait_for_selector("#unlock-form", state="hidden", timeout=30_000)
        page.wait_for_function("() => !document.querySelector('#lookup-table tbody').textContent.includes('制限中')",
                               timeout=30_000)
        assert not desk.errors, desk.errors
        assert not limits.status(card_id=holder.card_id)

        screen.page.click("[data-screen=failed] [data-action=home]")
        screen.wait_screen("menu")
        screen.choose_renewal()
        screen.enter_pin("authentication pin", holder.pins["auth_pin"])
        screen.wait_pin("verification code b")  # past the card proof: no longer locked out
        screen.page.click("[data-screen=pin] [data-action=cancel]")
        screen.wait_screen("menu")
    except BaseException:
        print(session.diagnostics())
        raise
    finally:
        session.close()
        world.stop_agent(kiosk)
        world.stop_agent(counter)
    lifted = [e for e in world.audit_events_of_type("limits.lockout_lifted")
              if e.terminal_id == counter.terminal.terminal_id]
    assert len(lifted) == 1 and lifted[0].actor == f"staff:{STAFF}" and lifted[0].outcome == "success", lifted
    assert "mynumber_card" in str(lifted[0].detail), lifted[0].detail  # the documents checked (types only)
