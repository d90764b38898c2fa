"""The kiosk page's browser session lives in the page's memory only (finding S-15), in a real chromium against the
real server and terminal agent: no token in localStorage, sessionStorage or a cookie at any point (and what older
versions left in localStorage is removed); a reload binds a new session through the agent and ends the old one; the
inactivity wipe ends the session on the server, and the next holder's start binds a fresh one; leaving the page
ends its session too — nothing usable stays behind."""

from __future__ import annotations

import json
import time
from typing import Any

import httpx
import pytest
from e2e import E2EWorld
from e2e_pages import HolderScreen

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

STORAGE = """() => ({local: Object.fromEntries(Object.entries(localStorage)),
                    session: Object.fromEntries(Object.entries(sessionStorage))})"""
ALLOWED_KEYS = {"local": {"jpki.largeText"}, "session": {"jpki.agentToken"}}  # neither is a server session


def _bearer_tokens(page: Any, api: str) -> list[str]:
    """Every bearer token the page sends to the server's API, in order."""
    seen: list[str] = []

    def on_request(request: Any) -> None:
        auth = request.headers.get("authorization", "")
        if request.url.startswith(api) and auth.startswith("Bearer "):
            seen.append(auth.removeprefix("Bearer "))

    page.on("request", on_request)
    return seen


def _assert_nothing_stored(page: Any, tokens: list[str]) -> None:
    kept = page.evaluate(STORAGE)
    for area, allowed in ALLOWED_KEYS.items():
        assert set(kept[area]) <= allowed, kept
    everything = json.dumps([kept, [c["value"] for c in page.context.cookies()]])
    assert not any(token in everything for token in tokens), "a session token is kept in the browser"


def _status(world: E2EWorld, token: str) -> int:
    """What the server answers this token now (200: a live session, 401: ended)."""
    headers = {"Authorization": f"Bearer {token}"}
    return httpx.get(f"{world.url}/api/v1/terminals/procedure", headers=headers, timeout=30).status_code


def _wait_ended(world: E2EWorld, token: str, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while _status(world, token) != 401:
        assert time.monotonic() < deadline, "the session was not ended on the server"
        time.sleep(0.2)


def test_kiosk_session_is_kept_in_memory_only_and_ends_with_the_wipe(
    e2e_world: E2EWorld, browser_factory: Any
) -> None:
    world = e2e_world
    holder = world.add_holder("obama")
    agent = world.start_agent(world.register_terminal("kiosk"), card_id=None)  # the reader is empty
    context = browser_factory().new_context(viewport={"width": 1280, "height": 800}, locale="ja-JP")
    page = context.new_page()
    page.set_default_timeout(30_000)
    tokens = _bearer_tokens(page, f"{world.url}/api/v1/")
    screen = HolderScreen(page)
    try:
        # what an older version of the page left behind on this kiosk's browser
        page.goto(world.url + "/")
        page.evaluate("() => { localStorage.setItem('jpki.browserSession', 'x'.repeat(43));"
                      " localStorage.setItem('jpki.procedure', 'p-old'); }")
        page.clock.install()
        screen.open(agent.first_page_url)
        assert screen.screen() == "menu", screen.describe()
        first = tokens[-1]
        assert _status(world, first) == 200
        _assert_nothing_stored(page, tokens)

        # a reload: nothing was stored, so the page binds a new session through the agent; the old one is ended
        page.reload()
        screen.wait_screen("menu", timeout_ms=30_000)
        second = tokens[-1]
        assert second != first and _status(world, second) == 200
        _wait_ended(world, first)
        _assert_nothing_stored(page, tokens)

        # the holder walks away after choosing: the inactivity wipe clears the screen and ends the session
        page.click("[data-action=choose-reset]")
        screen.wait_screen("reset-kind")
        page.click("[data-screen=reset-kind] [data-target=residence_pin]")
        screen.wait_screen("known-pin")
        page.clock.run_for("01:05")
        screen.wait_screen("menu", timeout_ms=10_000)
        assert "中止" in page.locator("#toast").inner_text()
        _wait_ended(world, second)
        _assert_nothing_stored(page, tokens)

        # the next holder: the start binds a fresh session, the procedure runs
        used = len(tokens)
        screen.choose_renewal()
        screen.wait_screen("card")
        agent.insert(holder.card_id)
        screen.wait_pin("authentication pin")
        third = tokens[-1]
        assert len(tokens) > used and third not in (first, second) and _status(world, third) == 200
        _assert_nothing_stored(page, tokens)
        # …and cancels: the procedure is cancelled (with the session), then the session is ended
        page.click("[data-screen=pin] [data-action=cancel]")
        screen.wait_screen("menu", timeout_ms=10_000)
        _wait_ended(world, third)
        assert world.procedures_of(holder.card_id)[-1][3] == "cancelled"

        # leaving the page ends its session as well
        page.reload()
        screen.wait_screen("menu", timeout_ms=30_000)
        fourth = tokens[-1]
        assert fourth not in (first, second, third) and _status(world, fourth) == 200
        page.goto("about:blank")
        _wait_ended(world, fourth)
        assert not screen.errors, screen.errors
    except BaseException:
        print(f"--- page: {screen.describe()}\n--- agent:\n{agent.output.text()[-3000:]}")
        raise
    finally:
        context.close()
        world.stop_agent(agent)
