"""The server briefly unavailable in the middle of a kiosk renewal, in a real chromium (docs/procedures.md §7): for a
few seconds every API call of the page is answered exactly as the server answers while its database is down — 503
``unavailable`` with ``Retry-After`` (``web/errors.py``) — once right when the holder's face capture is sent, once
while the card is being updated. The page shows its calm "再接続しています… / Reconnecting…" status (a polite live
region, no error box, no failure screen), keeps polling at the server's Retry-After, sends the same capture again
when the server is back (the holder does not film again: one face match on the server), and the renewal completes
normally. The outage is a Playwright route on the page's browser context, so only the page's calls see it; the
terminal agent's relay has its own retry budget (tests/terminal, tests/faults)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from e2e import PINS, E2EWorld
from e2e_flows import Session, card_and_pins, check_renewed, wait_done

from jpki_remote.web.errors import DATABASE_UNAVAILABLE, RETRY_AFTER_SECONDS, error_body

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

OUTAGE_SECONDS = 7.0  # longer than one Retry-After: the page is refused again, then gets through
RECONNECTING = "() => document.getElementById('reconnect-status').textContent"


class ApiOutage:
    """The page's API calls (``/api/v1/``) answered 503 ``unavailable`` + ``Retry-After`` — the server's own answer
    while its database is down — for ``seconds`` from :meth:`start`, or from the first request ``arm``'s predicate
    picks; otherwise passed through. Every call is noted (method and path) as refused or passed."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.until = 0.0
        self.trigger: Callable[[Any], bool] | None = None
        self.refused: list[str] = []
        self.passed: list[str] = []

    def arm(self, trigger: Callable[[Any], bool]) -> None:
        self.trigger = trigger

    def start(self) -> None:
        self.until = time.monotonic() + self.seconds

    def handle(self, route: Any) -> None:
        request = route.request
        what = f"{request.method} {urlsplit(request.url).path}"
        if self.trigger is not None and self.trigger(request):
            self.trigger = None
            self.start()
        if time.monotonic() < self.until:
            self.refused.append(what)
            route.fulfill(status=503, content_type="application/json",
                          headers={"Retry-After": str(RETRY_AFTER_SECONDS), "Cache-Control": "no-store"},
                          body=json.dumps(error_body(503, *DATABASE_UNAVAILABLE)))
        else:
            self.passed.append(what)
            route.continue_()


def _wait_reconnecting(session: Session) -> str:
    """The calm status while the page waits the outage out: bilingual, in a polite live region, no error shown."""
    screen = session.screen
    assert screen is not None
    text = screen.wait_for(RECONNECTING, timeout_ms=60_000, what="the reconnecting status").json_value()
    status = screen.page.locator("#reconnect-status")
    assert status.get_attribute("role") == "status" and status.get_attribute("aria-live") == "polite"
    assert screen.error_text() == "" and screen.screen() != "failed", screen.describe()
    return " ".join(str(text).split())


def test_a_database_blip_mid_renewal_is_waited_out(
    e2e_world: E2EWorld, browser_factory: Any, y4m_cache: Any, tmp_path: Path
) -> None:
    world = e2e_world
    holder = world.add_holder("obama")
    old = world.card_certificates(holder.card_id, PINS["sign_password"])
    agent = world.start_agent(world.register_terminal("kiosk"), card_id=holder.card_id)
    session = Session(world, holder, agent, "kiosk", browser_factory, y4m_cache)
    outage = ApiOutage(OUTAGE_SECONDS)
    seen: dict[str, str] = {}
    try:
        screen = session.open()
        screen.choose_renewal()
        steps = card_and_pins(session, ("authentication pin", holder.pins["auth_pin"]))
        screen = session.continue_with_camera(steps)
        session.context.route(f"{world.url}/api/v1/**", outage.handle)
        # 1. the database goes away right when the capture is sent
        outage.arm(lambda request: request.method == "POST" and request.url.endswith("/face"))
        before = world.outbox_ids()
        result = screen.capture_face(during=lambda: seen.update(face=_wait_reconnecting(session)))
        assert result["screen"] == "code", result
        face_posts = [call for call in outage.refused if call.endswith("/face")]
        assert face_posts and [c for c in outage.passed if c.endswith("/face")] == face_posts[:1], outage.refused
        screen.wait_for(f"() => !({RECONNECTING})()", timeout_ms=30_000, what="the status cleared")
        screen.wait_code_sent()
        screen.enter_code(world.security_code(holder.email, after=before))
        # 2. …and again while the card is being updated
        screen.wait_for("""() => {
          const step = document.querySelector('#steps li[aria-current=step]');
          return (step && step.dataset.step === 'update') || !document.querySelector('[data-screen=pin]').hidden;
        }""", what="the card update (or its PIN)")
        refused_before = len(outage.refused)
        outage.start()
        seen["update"] = _wait_reconnecting(session)
        assert len(outage.refused) > refused_before
        done = wait_done(session, {"authentication pin": holder.pins["auth_pin"]})
        assert "電子証明書の更新" in done["kind"] and done["ref"]
        assert screen.page.evaluate(RECONNECTING) == ""
        assert not screen.errors, screen.errors
    except BaseException:
        print(session.diagnostics(), f"\n--- outage: refused {outage.refused}")
        raise
    finally:
        session.close()
        world.stop_agent(agent)
    for text in seen.values():
        assert "再接続しています" in text and "Reconnecting" in text, seen
    assert world.procedures_of(holder.card_id)[-1][:4] == ("renewal", "certificates", "kiosk", "completed")
    assert len(world.audit_events(holder.card_id, "face_match")) == 1  # the capture reached the server once
    check_renewed(world, holder.card_id, old, tmp_path)


def test_a_server_away_longer_than_the_budget_pauses_and_resume_continues(
    e2e_world: E2EWorld, browser_factory: Any, y4m_cache: Any
) -> None:
    """Away longer than the relay's budget (the agent's JPKI_TERMINAL_RETRY_SECONDS, 2 s here): after the calm
    status, the clear error screen — the procedure kept, the card left on the reader, "Resume" offered — and Resume
    continues the same procedure where it stood (the PIN screen again, then the next steps)."""
    world = e2e_world
    holder = world.add_holder("john_lennon")
    agent = world.start_agent(world.register_terminal("kiosk"), card_id=holder.card_id, terminal_retry_seconds="2")
    session = Session(world, holder, agent, "kiosk", browser_factory, y4m_cache)
    outage = ApiOutage(15.0)
    try:
        screen = session.open()
        screen.choose_renewal()
        screen.wait_pin("authentication pin")
        session.context.route(f"{world.url}/api/v1/**", outage.handle)
        outage.start()
        said = _wait_reconnecting(session)
        assert "再接続しています" in said and "Reconnecting" in said
        assert screen.wait_screen("failed", timeout_ms=30_000) == "failed"
        assert time.monotonic() < outage.until, "the page gave up within the budget, while the server was away"
        assert "中断しました" in screen.failure() and "paused" in screen.failure(), screen.failure()
        assert "続きから再開" in screen.text("#failed-next") and "Resume" in screen.text("#failed-next")
        assert screen.page.is_visible("#failed-resume") and not screen.page.is_visible("#failed-take-card")
        assert screen.page.evaluate(RECONNECTING) == ""
        assert world.procedures_of(holder.card_id)[-1][3:5] == ("active", "card_proof")  # nothing lost
        screen.page.wait_for_timeout(max(0.0, outage.until - time.monotonic()) * 1000 + 500)  # the server is back
        screen.page.click("#failed-resume")
        screen.enter_pin("authentication pin", holder.pins["auth_pin"])
        screen.enter_pin("verification code b", holder.code_b)
        assert screen.challenge()  # on to the face step of the same procedure
        assert not screen.errors, screen.errors
    except BaseException:
        print(session.diagnostics(), f"\n--- outage: refused {outage.refused}")
        raise
    finally:
        session.close()
        world.stop_agent(agent)
    procedures = world.procedures_of(holder.card_id)
    assert len(procedures) == 1 and procedures[0][3:5] == ("active", "proofs"), procedures
