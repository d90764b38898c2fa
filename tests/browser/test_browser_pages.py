"""The pages in a real chromium: they load without script errors or CSP violations, are keyboard operable and
labelled, the large-text toggle works, the kiosk wipes itself after inactivity, and the admin policy table is the
engine's policy, row for row."""

from __future__ import annotations

import re
from typing import Any

import pytest

from conftest import ConsoleErrors, RunningServer, sign_in_admin
from jpki_remote.procedures.policy import default_policy

PAGES = ["/", "/kiosk", "/portal", "/counter", "/admin", "/admin/audit", "/admin/stats"]
SIGNED_IN_PAGES = {"/admin", "/admin/audit", "/admin/stats"}  # served to a signed-in admin only
AGENT_NOWHERE = "http://127.0.0.1:9"  # the discard port: nothing answers, like an agent that is not running


@pytest.fixture
def browser(browser_factory: Any) -> Any:
    return browser_factory()


@pytest.mark.parametrize("path", PAGES)
def test_page_loads_without_script_errors(pages_server: RunningServer, browser: Any, path: str) -> None:
    page = browser.new_page()
    if path in SIGNED_IN_PAGES:
        sign_in_admin(page, pages_server)
    errors = ConsoleErrors(page)
    response = page.goto(pages_server.url + path)
    assert response is not None and response.status == 200
    assert "script-src 'self'" in response.headers["content-security-policy"]
    assert response.headers["cache-control"] == "no-store"
    page.wait_for_timeout(400)
    # network answers are the API's business here (a page without a terminal session gets 401s, /favicon.ico 404):
    # what counts is the page's own script errors and CSP violations
    assert errors.serious(allow_network=True) == []
    assert not any("Content Security Policy" in e for e in errors.items), errors.items
    assert page.evaluate("document.documentElement.lang") == "ja"


@pytest.mark.parametrize("path", ["/kiosk", "/portal", "/counter", "/admin", "/admin/audit", "/admin/stats"])
def test_english_is_marked_and_controls_are_labelled(pages_server: RunningServer, browser: Any, path: str) -> None:
    page = browser.new_page()
    if path in SIGNED_IN_PAGES:
        sign_in_admin(page, pages_server)
    page.goto(pages_server.url + path)
    unmarked = page.evaluate("""() => Array.from(document.querySelectorAll('.en'))
        .filter(e => e.closest('[lang]').getAttribute('lang') !== 'en').map(e => e.outerHTML)""")
    assert unmarked == []
    unlabelled = page.evaluate("""() => Array.from(document.querySelectorAll('input, select, textarea'))
        .filter(e => e.type !== 'hidden' && !(e.labels && e.labels.length) && !e.getAttribute('aria-label'))
        .map(e => e.id || e.name)""")
    assert unlabelled == []
    nameless = page.evaluate("""() => Array.from(document.querySelectorAll('button'))
        .filter(b => !(b.textContent.trim() || b.getAttribute('aria-label'))).length""")
    assert nameless == 0


def test_kiosk_targets_are_touch_sized_and_focus_is_visible(pages_server: RunningServer, browser: Any) -> None:
    page = browser.new_page(viewport={"width": 1280, "height": 800})
    page.goto(pages_server.url + "/kiosk?agent=" + AGENT_NOWHERE)
    page.evaluate("""() => document.querySelectorAll('[data-screen]').forEach(
        s => s.hidden = s.dataset.screen !== 'menu')""")
    sizes = page.evaluate("""() => Array.from(document.querySelectorAll('button'))
        .filter(b => b.offsetParent !== null)
        .map(b => [b.textContent.trim().slice(0, 20), b.getBoundingClientRect().height,
                   b.getBoundingClientRect().width])""")
    assert sizes, "no visible buttons"
    assert all(height >= 48 and width >= 48 for _, height, width in sizes), sizes
    choices = [s for s in sizes if "電子証明書の更新" in s[0] or "暗証番号の初期化" in s[0]]
    assert choices and all(height >= 72 for _, height, _ in choices)
    # keyboard: the skip link appears when focused; Tab moves through the choices with a visible outline
    page.locator(".skip-link").focus()
    assert page.locator(".skip-link").bounding_box()["x"] >= 0
    page.locator("#h-menu").focus()
    page.keyboard.press("Tab")
    assert "電子証明書の更新" in page.evaluate("document.activeElement.textContent")
    outline = page.evaluate("getComputedStyle(document.activeElement).outlineStyle")
    assert outline not in ("none", ""), page.evaluate("document.activeElement.outerHTML")
    page.keyboard.press("Tab")
    assert "暗証番号の初期化" in page.evaluate("document.activeElement.textContent")


def test_large_text_toggle(pages_server: RunningServer, browser: Any) -> None:
    page = browser.new_page()
    page.goto(pages_server.url + "/portal")
    before = page.evaluate("parseFloat(getComputedStyle(document.documentElement).fontSize)")
    toggle = page.locator("#large-text-toggle")
    assert toggle.get_attribute("aria-pressed") == "false"
    toggle.click()
    after = page.evaluate("parseFloat(getComputedStyle(document.documentElement).fontSize)")
    assert toggle.get_attribute("aria-pressed") == "true"
    assert after >= before * 1.2
    page.reload()  # the preference (not personal data) survives a reload
    assert page.locator("#large-text-toggle").get_attribute("aria-pressed") == "true"


def test_portal_fits_a_phone(pages_server: RunningServer, browser: Any) -> None:
    context = browser.new_context(viewport={"width": 375, "height": 740}, device_scale_factor=2, is_mobile=True)
    page = context.new_page()
    page.goto(pages_server.url + "/portal")
    page.evaluate("""() => document.querySelectorAll('[data-screen]').forEach(
        s => s.hidden = s.dataset.screen !== 'reset-kind')""")
    overflow = page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
    assert overflow <= 0


def test_kiosk_inactivity_wipes_the_screen(pages_server: RunningServer, browser: Any) -> None:
    page = browser.new_page()
    page.clock.install()
    page.goto(pages_server.url + "/kiosk?agent=" + AGENT_NOWHERE)
    page.evaluate("""() => document.querySelectorAll('[data-screen]').forEach(
        s => s.hidden = s.dataset.screen !== 'menu')""")
    page.get_by_role("button", name=re.compile("暗証番号の初期化")).click()
    page.get_by_role("button", name=re.compile("住民基本台帳用")).click()
    assert page.locator('[data-screen="known-pin"]').is_visible()
    page.clock.run_for("00:50")
    assert page.locator("#idle-overlay").is_visible()
    assert page.locator("#idle-continue").evaluate("e => e === document.activeElement")
    page.clock.run_for("00:15")
    assert page.locator("#idle-overlay").is_hidden()
    assert page.locator('[data-screen="menu"]').is_visible()
    assert page.locator('[data-screen="known-pin"]').is_hidden()
    assert "中止" in page.locator("#toast").inner_text()


def test_kiosk_all_pins_forgotten_sends_the_holder_to_the_counter(pages_server: RunningServer, browser: Any) -> None:
    page = browser.new_page()
    page.goto(pages_server.url + "/kiosk?agent=" + AGENT_NOWHERE)
    page.evaluate("""() => document.querySelectorAll('[data-screen]').forEach(
        s => s.hidden = s.dataset.screen !== 'menu')""")
    page.get_by_role("button", name=re.compile("暗証番号の初期化")).click()
    page.get_by_role("button", name=re.compile("券面事項入力補助用")).click()
    page.get_by_role("button", name=re.compile("どちらも覚えていない")).click()
    failed = page.locator('[data-screen="failed"]')
    assert failed.is_visible()
    assert default_policy().all_pins_forgotten["ja"] in failed.inner_text()
    assert "窓口" in page.locator("#failed-next").inner_text()


def test_kiosk_offers_only_the_pins_the_policy_accepts(pages_server: RunningServer, browser: Any) -> None:
    """Resetting the sign password needs the auth PIN (and the reverse): the other choice is not offered."""
    page = browser.new_page()
    page.goto(pages_server.url + "/kiosk?agent=" + AGENT_NOWHERE)
    page.evaluate("""() => document.querySelectorAll('[data-screen]').forEach(
        s => s.hidden = s.dataset.screen !== 'reset-kind')""")
    page.locator('[data-target="sign_password"]').click()
    assert page.locator('[data-known="auth_pin"]').is_visible()
    assert page.locator('[data-known="sign_password"]').is_hidden()
    page.locator('[data-screen="known-pin"] [data-action="home"]').click()
    page.evaluate("""() => document.querySelectorAll('[data-screen]').forEach(
        s => s.hidden = s.dataset.screen !== 'reset-kind')""")
    page.locator('[data-target="auth_pin"]').click()
    assert page.locator('[data-known="sign_password"]').is_visible()
    assert page.locator('[data-known="auth_pin"]').is_hidden()


def test_policy_table_is_the_engines_policy(pages_server: RunningServer, browser: Any) -> None:
    page = browser.new_page()
    sign_in_admin(page, pages_server)
    page.goto(pages_server.url + "/admin")
    cells = page.evaluate("""() => Array.from(document.querySelectorAll('#policy-table td[data-channel]')).map(td => ({
        procedure: td.parentElement.dataset.procedure, target: td.parentElement.dataset.target,
        channel: td.dataset.channel, allowed: td.dataset.allowed === 'yes',
        groups: Array.from(td.querySelectorAll('.proof-group')).map(g => g.dataset.proofs.split(' ')) }))""")
    policy = default_policy()
    assert len(cells) == len(policy.rules)
    for cell in cells:
        rule = policy.rule(cell["procedure"], cell["target"], cell["channel"])
        assert cell["allowed"] == rule.allowed, cell
        assert cell["groups"] == [[p.value for p in group] for group in rule.proofs], cell


def test_loss_report_is_offered_where_the_policy_allows_it_without_the_card(
    pages_server: RunningServer, browser: Any
) -> None:
    """The portal's menu offers 「カードを紛失した」 (the policy allows the loss report online with no card proof); the
    kiosk's does not (not allowed there). A card number that cannot be one is refused on the page, loudly."""
    page = browser.new_page()
    page.goto(pages_server.url + "/kiosk?agent=" + AGENT_NOWHERE)
    assert page.locator("[data-action=choose-loss]").count() == 0
    page.goto(pages_server.url + "/portal?agent=" + AGENT_NOWHERE)
    page.evaluate("""() => document.querySelectorAll('[data-screen]').forEach(
        s => s.hidden = s.dataset.screen !== 'menu')""")
    page.get_by_role("button", name=re.compile("カードを紛失した")).click()
    assert page.locator('[data-screen="loss-number"]').is_visible()
    shown = page.eval_on_selector_all("#steps li:not([hidden])", "items => items.map(i => i.dataset.step)")
    assert shown == ["number", "face", "code", "confirm", "done"]  # no card, no PIN: the reader is never asked for
    field = page.get_by_label(re.compile("カード番号"))
    field.fill("12-34")
    field.press("Enter")
    assert page.locator("#error-box").is_visible() and "カード番号" in page.locator("#error-ja").inner_text()
    assert page.locator("#error-box").get_attribute("role") == "alert"
    assert field.get_attribute("aria-invalid") == "true"
    assert page.locator('[data-screen="loss-number"]').is_visible()
    page.locator('[data-screen="loss-number"] [data-action="home"]').click()
    assert page.locator('[data-screen="menu"]').is_visible()
