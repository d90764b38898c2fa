"""Driving the real pages like a person: the holder's screens (kiosk, portal) and the counter screens.

Every action is a click or key press on what the page shows (keypad buttons, the start button, the code field); the
helpers only wait for the screen the page itself decides to show, and fail with the page's own error text when it
shows something else.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

REPO = Path(__file__).resolve().parents[2]
SCREENSHOTS = REPO / "docs" / "screenshots"
STEP_TIMEOUT_MS = 90_000  # one step of a procedure on a loaded 2-core machine (key generation on the card, dlib)

VISIBLE_SCREEN = """() => {
  const shown = Array.from(document.querySelectorAll('[data-screen]')).filter((s) => !s.hidden);
  return shown.length === 1 ? shown[0].dataset.screen : null;
}"""


def screenshots_wanted() -> bool:
    return os.environ.get("JPKI_SCREENSHOTS", "") not in ("", "0")


def agent_token(page_url: str) -> str:
    """The per-launch agent token in the fragment of the page URL the agent printed."""
    values = parse_qs(urlsplit(page_url).fragment)
    return values["agent_token"][0]


class PageFailed(AssertionError):
    """The page went to its "could not be completed" screen (or showed an error) where the test expected progress."""


class HolderScreen:
    """The kiosk / portal page of one browser."""

    def __init__(self, page: Any) -> None:
        self.page = page
        self.errors: list[str] = []
        page.on("pageerror", lambda error: self.errors.append(f"pageerror: {error}"))

    # ---- reading the page ----------------------------------------------------------------------------------------
    def screen(self) -> str | None:
        return self.page.evaluate(VISIBLE_SCREEN)

    def text(self, selector: str) -> str:
        return " ".join(self.page.locator(selector).inner_text().split())

    def error_text(self) -> str:
        box = self.page.locator("#error-box")
        return " ".join(box.inner_text().split()) if box.is_visible() else ""

    def failure(self) -> str:
        return f"{self.text('#failed-ja')} / {self.text('#failed-en')}"

    def describe(self) -> str:
        """What the page shows now (for a failure message)."""
        try:
            return (f"screen={self.screen()!r} step={self.current_step()!r} error={self.error_text()!r} "
                    f"working={self.text('#working-step')!r} pin={self.text('#pin-title-en')!r} "
                    f"failed={self.text('#failed-en')!r} page errors={self.errors}")
        except Exception as exc:  # the page is gone
            return f"(page unreadable: {exc})"

    def wait_for(self, script: str, arg: Any = None, *, timeout_ms: int = STEP_TIMEOUT_MS, what: str = "") -> Any:
        from playwright.sync_api import TimeoutError as PlaywrightTimeout

        try:
            return self.page.wait_for_function(script, arg=arg, timeout=timeout_ms, polling=200)
        except PlaywrightTimeout:
            raise PageFailed(f"timed out waiting for {what or script[:60]}; {self.describe()}") from None

    def wait_screen(self, *names: str, timeout_ms: int = STEP_TIMEOUT_MS, allow_failed: bool = False) -> str:
        """Wait until the page shows one of ``names``; the "failed" screen instead raises with its message."""
        wanted = list(names) + ([] if "failed" in names or allow_failed else ["failed"])
        handle = self.wait_for(
            "(names) => { const s = (" + VISIBLE_SCREEN + ")(); return names.includes(s) ? s : null; }",
            wanted, timeout_ms=timeout_ms, what=f"screen {names}",
        )
        shown = handle.json_value()
        if shown == "failed" and "failed" not in names:
            raise PageFailed(f"the page gave up: {self.failure()}")
        return str(shown)

    def current_step(self) -> str | None:
        return self.page.evaluate(
            "() => { const li = document.querySelector('#steps li[aria-current=step]'); return li && li.dataset.step; }"
        )

    # ---- actions -------------------------------------------------------------------------------------------------
    def open(self, url: str) -> None:
        self.page.goto(url)
        self.wait_screen("menu", "face", "code", "pin", "working", "card", "loss-number", "loss-confirm",
                         timeout_ms=30_000)

    def choose_renewal(self) -> None:
        self.page.click("[data-action=choose-renewal]")

    def choose_reset(self, target: str, known: str) -> None:
        self.page.click("[data-action=choose-reset]")
        self.wait_screen("reset-kind")
        self.page.click(f"[data-screen=reset-kind] [data-target={target}]")
        self.wait_screen("known-pin")
        self.page.click(f"[data-screen=known-pin] [data-known={known}]")

    def choose_loss_report(self, card_number: str, *, submit: bool = True) -> None:
        """「カードを紛失した」 on the menu, then the card number typed on the keyboard (and sent with Enter)."""
        self.page.click("[data-action=choose-loss]")
        self.wait_screen("loss-number")
        field = self.page.locator("#loss-card-input")
        field.focus()
        field.press_sequentially(card_number)
        if submit:
            self.page.keyboard.press("Enter")

    def steps_shown(self) -> list[str]:
        """The steps the indicator shows for the flow in progress, in order."""
        script = "items => items.map(i => i.dataset.step + ':' + i.querySelector('.num').textContent)"
        return list(self.page.eval_on_selector_all("#steps li:not([hidden])", script))

    def wait_pin(self, title_en: str, *, timeout_ms: int = STEP_TIMEOUT_MS) -> None:
        """Wait for the PIN screen asking for ``title_en`` (case-insensitive part of the English title)."""
        self.wait_for(
            """(want) => {
              const screen = document.querySelector('[data-screen=pin]');
              if (screen.hidden) {
                const failed = document.querySelector('[data-screen=failed]');
                return failed && !failed.hidden ? 'failed' : null;
              }
              return document.getElementById('pin-title-en').textContent.toLowerCase().includes(want) ? 'pin' : null;
            }""",
            title_en.lower(), timeout_ms=timeout_ms, what=f"PIN screen {title_en!r}",
        )
        if self.screen() == "failed":
            raise PageFailed(f"the page gave up: {self.failure()}")

    def type_on_keypad(self, value: str, *, submit: bool = True) -> None:
        """Press the keypad buttons one by one (the field shows dots), then OK."""
        for char in value:
            self.page.click(f"#keypad button[data-key='{char}']")
        assert self.page.input_value("#pin-input") == value  # a password field: the value never shows as text
        assert self.page.get_attribute("#pin-input", "type") == "password"
        if submit:
            self.page.click("#pin-submit")

    def enter_pin(self, title_en: str, value: str) -> None:
        self.wait_pin(title_en)
        self.type_on_keypad(value)

    def enter_new_pin(self, kind_en: str, value: str) -> None:
        """A new PIN: chosen, then typed again to confirm, both on the keypad."""
        self.enter_pin(f"choose a new {kind_en}", value)
        self.page.wait_for_function(
            "() => document.getElementById('pin-title-en').textContent.includes('again')", timeout=10_000
        )
        self.type_on_keypad(value)

    def challenge(self, *, timeout_ms: int = STEP_TIMEOUT_MS) -> list[str]:
        """The liveness challenge the face screen shows, in order."""
        self.wait_screen("face", timeout_ms=timeout_ms)
        self.page.wait_for_selector("#challenge li[data-step]", timeout=10_000)
        steps = self.page.eval_on_selector_all("#challenge li[data-step]", "items => items.map(i => i.dataset.step)")
        return list(steps)

    def capture_face(self, during: Any = None) -> dict[str, Any]:
        """Press Start, let the page film the challenge and send it; returns the page's next state. ``during()``
        runs while the page films (for a screenshot)."""
        self.page.wait_for_function("() => !document.getElementById('face-start').disabled", timeout=30_000)
        self.page.click("#face-start")
        if during is not None:
            during()
        self.wait_for(
            """() => {
              const s = (""" + VISIBLE_SCREEN + """)();
              if (s !== 'face') return s;
              const err = document.getElementById('error-box');
              return !document.getElementById('face-start').disabled && !err.hidden ? 'face-error' : null;
            }""",
            timeout_ms=STEP_TIMEOUT_MS + 60_000, what="the face result",
        )
        return {"screen": self.screen(), "error": self.error_text(), "attempts": self._visible_text("#face-attempts")}

    def _visible_text(self, selector: str) -> str:
        element = self.page.locator(selector)
        return " ".join(element.inner_text().split()) if element.is_visible() else ""

    def wait_code_sent(self) -> str:
        """The code screen once the page says where the code went; returns that (masked) address line."""
        self.wait_screen("code")
        self.page.wait_for_function(
            "() => /\\*|@/.test(document.getElementById('code-sent').textContent)", timeout=30_000
        )
        return self.text("#code-sent")

    def enter_code(self, code: str) -> None:
        self.page.fill("#code-input", code)
        self.page.click("#code-submit")

    def code_tries(self) -> str:
        return self.text("#code-tries")

    def shot(self, name: str, *, full_page: bool = True) -> Path | None:
        """``docs/screenshots/<name>.png`` when JPKI_SCREENSHOTS is set (the real page, as the holder sees it)."""
        if not screenshots_wanted():
            return None
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        path = SCREENSHOTS / f"{name}.png"
        self.page.evaluate("document.activeElement && document.activeElement.blur()")
        self.page.mouse.move(1, 1)  # no hover highlight left over from the last click
        self.page.screenshot(path=str(path), full_page=full_page)
        return path


def page_url_without_link(page_url: str, token: str) -> str:
    """The same page, without the (single-use) browser-link code: like a reload, the page binds a new session
    through the terminal agent (it stores none) and continues the terminal's running procedure."""
    parts = urlsplit(page_url)
    return f"{parts.scheme}://{parts.netloc}{parts.path}?{parts.query}#agent_token={token}"


def camera_steps(steps: Sequence[str]) -> tuple[str, ...]:
    allowed = {"blink", "turn_left", "turn_right"}
    assert steps and set(steps) <= allowed, steps
    return tuple(steps)


def receipt(screen: HolderScreen) -> dict[str, str]:
    return {
        "kind": screen.text("#receipt-kind"),
        "ref": re.sub(r"\s", "", screen.text("#receipt-ref")),
        "time": screen.text("#receipt-time"),
    }


RUN_STATE = """() => {
  const form = document.getElementById('pin-form');
  const result = document.getElementById('run-result');
  const error = document.getElementById('error-box');
  return {
    pin: !form.hidden,
    title: document.getElementById('pin-title').textContent,
    done: Boolean(result.querySelector('.ok-box')),
    error: error.hidden ? '' : error.textContent.replace(/\\s+/g, ' ').trim(),
    state: document.getElementById('run-state').textContent,
  };
}"""


class CounterScreen:
    """The counter (staff) page of one browser: sign-in, the issuance form, counter procedures, the holder's PIN pad."""

    def __init__(self, page: Any) -> None:
        self.page = page
        self.errors: list[str] = []
        page.on("pageerror", lambda error: self.errors.append(f"pageerror: {error}"))

    def open(self, url: str, staff_id: str, password: str) -> None:
        """The terminal's counter page; the member of staff signs in on it."""
        self.page.goto(url)
        self.page.wait_for_selector("#login-form", state="visible", timeout=30_000)
        self.page.fill("#login-user", staff_id)
        self.page.fill("#login-password", password)
        self.page.click("#login-form button[type=submit]")
        self.page.wait_for_selector("#work", state="visible", timeout=10_000)
        assert staff_id in self.page.inner_text("#staff-badge")

    def tab(self, name: str) -> None:
        self.page.click(f"#tab-{name}")
        self.page.wait_for_selector(f"#panel-{name}", state="visible", timeout=10_000)

    def check_documents(self, prefix: str, *codes: str) -> None:
        for code in codes:
            self.page.check(f"#{prefix}-doc-{code}")

    def run_state(self) -> dict[str, Any]:
        return dict(self.page.evaluate(RUN_STATE))

    def follow(self, answers: dict[str, str], *, timeout_s: float = 240) -> list[str]:
        """Follow the running procedure to "completed", the holder typing on the counter keypad whatever PIN the
        page asks for (``answers``: a part of the lower-cased English title → value; a new PIN is typed twice).
        Returns the PIN titles asked, in order."""
        import time

        deadline = time.monotonic() + timeout_s
        asked: list[str] = []
        last_value: str | None = None
        handled_title = ""
        while True:
            state = self.run_state()
            if state["done"]:
                return asked
            assert time.monotonic() < deadline, f"the counter procedure did not finish: {state}; asked {asked}"
            if any(f"状態: {end} " in state["state"] for end in ("failed", "cancelled", "expired")):
                raise AssertionError(f"the counter procedure ended: {state}; asked {asked}")
            title = " ".join(state["title"].split())
            if not state["pin"]:
                handled_title = ""
            if state["pin"] and title and title != handled_title:
                lowered = title.lower()
                if "again" in lowered:
                    assert last_value is not None, title
                    value = last_value
                else:
                    key = next((k for k in answers if k in lowered), None)
                    assert key is not None, f"the counter asks for {title!r}; answers for {list(answers)}"
                    value = answers[key]
                    asked.append(key)
                for char in value:
                    self.page.click(f"#keypad button[data-key='{char}']")
                if self.page.is_disabled("#pin-submit"):
                    raise AssertionError(f"the keypad does not accept the value typed for {title!r}")
                self.page.click("#pin-submit")
                last_value, handled_title = value, title
            self.page.wait_for_timeout(250)
