"""The holder's procedures driven end to end through the real pages, shared by the kiosk and portal tests.

The liveness challenge is random and the fake camera plays a file fixed at browser launch, so a face step takes two
browsers (``/tmp/ui-notes.md``): the first drives the page up to the face screen and reads the challenge shown; a video
of the card holder doing exactly that is built from their real photo; a second chromium with that video as its
camera opens the same page URL (no link code) on the same terminal: the page keeps no session in any storage
(finding S-15), so it binds a new one through the terminal agent and picks the terminal's running procedure up
again — what a reload does.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from e2e import PINS, AgentProcess, E2EWorld, Holder, serial_of
from e2e_pages import HolderScreen, agent_token, camera_steps, page_url_without_link

VIEWPORTS = {"kiosk": {"width": 1280, "height": 800}, "app": {"width": 1024, "height": 768}}
_WRITTEN: set[str] = set()  # screenshots written in this test session: the first real one of each step stays


@dataclass
class Session:
    """One holder at one terminal: the agent process, the current browser and its page."""

    world: E2EWorld
    holder: Holder
    agent: AgentProcess
    kind: str  # kiosk | app
    browser_factory: Callable[..., Any]
    video: Callable[..., Path]
    shots: str | None = None  # prefix of the screenshot names (kiosk renewal only)
    timings: dict[str, float] = field(default_factory=dict)
    browser: Any = None
    context: Any = None
    screen: HolderScreen | None = None

    def open(self, camera: Path | None = None, url: str | None = None) -> HolderScreen:
        self.browser = self.browser_factory(camera=camera)
        self.context = self.browser.new_context(viewport=VIEWPORTS[self.kind], locale="ja-JP")
        if self.shots and camera is not None:
            self.context.clock.install()  # to show the inactivity warning without waiting 45 s (screenshots only)
        page = self.context.new_page()
        page.set_default_timeout(30_000)
        self.screen = HolderScreen(page)
        self.screen.open(url or self.agent.first_page_url)
        return self.screen

    def shot(self, name: str, *, full_page: bool = True) -> None:
        full = f"{self.shots}-{name}"
        if self.shots and self.screen is not None and full not in _WRITTEN:
            self.screen.shot(full, full_page=full_page)
            _WRITTEN.add(full)

    def continue_with_camera(self, steps: list[str], person: str | None = None) -> HolderScreen:
        """Close this browser and continue the same procedure in a new one (a new session on the same terminal)
        whose camera shows ``person`` (default: the holder) doing ``steps``."""
        assert self.screen is not None
        started = time.monotonic()
        self.context.close()
        self.browser.close()
        video = self.video(person or self.holder.person, camera_steps(steps))
        self.timings["video"] = self.timings.get("video", 0.0) + time.monotonic() - started
        url = page_url_without_link(self.agent.first_page_url, agent_token(self.agent.first_page_url))
        screen = self.open(camera=video, url=url)
        assert screen.challenge() == steps, "the page shows the same challenge after the browser change"
        return screen

    def diagnostics(self) -> str:
        """The page, the agent's output and the server log's tail: printed when a test fails."""
        server = self.world.server.log()[-3000:] if self.world.server else ""
        page = self.screen.describe() if self.screen else ""
        return (f"--- page: {page}\n--- procedures: {self.world.procedures_of(self.holder.card_id)}\n"
                f"--- agent:\n{self.agent.output.text()[-3000:]}\n--- server:\n{server}")

    def close(self) -> None:
        if self.context is not None:
            self.context.close()
        if self.browser is not None:
            self.browser.close()


def card_and_pins(session: Session, known: tuple[str, str]) -> list[str]:
    """From the menu choice to the face screen: the card is read, ``known`` = (title, value) PIN proves it, the
    照合番号B opens the card photo. Returns the liveness challenge the page shows."""
    screen = session.screen
    assert screen is not None
    screen.wait_pin(known[0])
    screen.type_on_keypad(known[1], submit=False)
    session.shot("04-pin")  # the field shows dots only
    screen.page.click("#pin-submit")
    screen.enter_pin("verification code b", session.holder.code_b)
    return screen.challenge()


def face_and_code(session: Session, steps: list[str], *, wrong_code_first: bool = False) -> dict[str, Any]:
    """The face step in the second browser, then the security code from the holder's mailbox (development outbox).
    With ``wrong_code_first`` a wrong code is entered first and what the page says is returned."""
    world, holder = session.world, session.holder
    before = world.outbox_ids()
    screen = session.continue_with_camera(steps)

    def filming() -> None:  # the screenshot of the face step: the second action being asked for
        if session.shots:
            screen.wait_for("() => document.querySelectorAll('#challenge li.done').length >= 1",
                            timeout_ms=20_000, what="the first liveness action done")
            session.shot("05-face")

    started = time.monotonic()
    result = screen.capture_face(during=filming)
    session.timings["face"] = time.monotonic() - started
    assert result["screen"] == "code", f"face step refused: {result}"
    sent_to = screen.wait_code_sent()
    code = world.security_code(holder.email, after=before)
    assert code not in sent_to
    session.shot("06-code")
    if session.shots and f"{session.shots}-10-idle" not in _WRITTEN:
        screen.page.clock.fast_forward(46_000)  # the holder stepped away: the kiosk warns before it wipes
        screen.wait_for("() => !document.getElementById('idle-overlay').hidden", timeout_ms=10_000,
                        what="the inactivity warning")
        session.shot("10-idle", full_page=False)  # the warning covers the screen the holder sees
        screen.page.click("#idle-continue")
    seen: dict[str, Any] = {"sent_to": sent_to}
    if wrong_code_first:
        wrong = str((int(code) + 1) % 10 ** len(code)).zfill(len(code))
        screen.enter_code(wrong)
        screen.page.wait_for_function("() => !document.getElementById('error-box').hidden", timeout=30_000)
        seen["wrong_error"] = screen.error_text()
        seen["wrong_tries"] = screen.code_tries()
        seen["wrong_screen"] = screen.screen()
        seen["after_wrong"] = world.procedures_of(holder.card_id)[-1]
    screen.enter_code(code)
    return seen


def wait_done(session: Session, pins: dict[str, str]) -> dict[str, str]:
    """Follow the card update to the receipt. The page may ask for a PIN on the way (the card proves its new keys
    after the auth PIN): ``pins`` maps a part of the English PIN title to what the holder types."""
    screen = session.screen
    assert screen is not None
    started = time.monotonic()
    asked: list[str] = []
    while True:
        wants_shot = session.shots and "07-update" not in session.timings
        if wants_shot and screen.current_step() == "update" and screen.screen() == "working":
            session.shot("07-update")
            session.timings["07-update"] = 0.0
        shown = screen.wait_screen("pin", "done", "working", timeout_ms=180_000)
        if shown == "done":
            break
        if shown == "working":
            assert time.monotonic() - started < 240, f"the update did not finish: {screen.describe()}"
            screen.page.wait_for_timeout(200)
            continue
        title = screen.text("#pin-title-en").lower()
        match = next((key for key in pins if key in title), None)
        assert match is not None, f"the page asks for {title!r} during the update"
        assert len(asked) < 4, f"asked again and again: {asked}"
        asked.append(match)
        screen.type_on_keypad(pins[match])
        if title.startswith("choose a new"):  # a new PIN is typed twice
            screen.wait_for("() => document.getElementById('pin-title-en').textContent.includes('again')",
                            timeout_ms=10_000, what="the confirmation of the new PIN")
            screen.type_on_keypad(pins[match])
        screen.page.wait_for_function(
            "() => document.querySelector('[data-screen=pin]').hidden", timeout=30_000)
    session.timings["update"] = time.monotonic() - started
    session.timings.pop("07-update", None)
    session.shot("08-done")
    from e2e_pages import receipt

    return receipt(screen)


def loss_report(session: Session, *, person: str | None = None, before_confirm: Callable[[], None] | None = None
                ) -> dict[str, Any]:
    """The online loss report from the portal's menu, no card on the reader: the card number typed, the face of
    ``person`` (default: the holder) doing the liveness challenge, then — if the face was accepted — the security code
    from the holder's mailbox and the confirmation (``before_confirm()`` runs while it is shown, before the click).
    Returns what the page showed: ``face`` (the capture's result), ``steps`` (the indicator), and once accepted
    ``sent_to`` and ``screen`` (where the page ended)."""
    world, holder = session.world, session.holder
    screen = session.open()
    assert screen.screen() == "menu", screen.describe()
    screen.choose_loss_report(holder.card_id, submit=False)
    session.shot("01-number")
    screen.page.locator("#loss-card-input").press("Enter")  # Enter in the field sends the form
    steps = screen.challenge()
    seen: dict[str, Any] = {"steps": screen.steps_shown(), "announced": screen.text("#step-announcer")}
    before = world.outbox_ids()
    screen = session.continue_with_camera(steps, person)
    seen["face"] = screen.capture_face()
    if seen["face"]["screen"] != "code":
        return seen
    seen["sent_to"] = screen.wait_code_sent()
    screen.enter_code(world.security_code(holder.email, after=before))
    screen.wait_screen("loss-confirm")
    seen["confirm"] = screen.text("#loss-confirm-text")
    session.shot("02-confirm")
    if before_confirm is not None:
        before_confirm()
    screen.page.click("#loss-confirm-submit")
    seen["screen"] = screen.wait_screen("loss-done")
    seen["done"] = screen.text("[data-screen=loss-done]")
    session.shot("03-done")
    assert not screen.errors, screen.errors
    return seen


PIN_TITLES = {"auth_pin": "authentication pin", "sign_password": "signature password",
              "residence_pin": "residence registry pin", "text_pin": "card-text pin"}


def holder_procedure(session: Session, *, kind: str, target: str = "certificates", known: str = "auth_pin",
                     new_pin: str | None = None, wrong_code_first: bool = False) -> dict[str, Any]:
    """A renewal or PIN reset from the menu to the receipt, every step on the page. Returns what was seen."""
    screen = session.open()
    assert screen.screen() == "menu", screen.describe()
    if kind == "renewal":
        screen.choose_renewal()
    else:
        session.shot("01-menu")
        screen.page.click("[data-action=choose-reset]")
        screen.wait_screen("reset-kind")
        session.shot("02-reset-kind")
        screen.page.click(f"[data-screen=reset-kind] [data-target={target}]")
        screen.wait_screen("known-pin")
        screen.page.click(f"[data-screen=known-pin] [data-known={known}]")
    holder = session.holder
    steps = card_and_pins(session, (PIN_TITLES[known], holder.pins[known]))
    seen = face_and_code(session, steps, wrong_code_first=wrong_code_first)
    during = {PIN_TITLES["auth_pin"]: holder.pins["auth_pin"]}
    if new_pin is not None:
        during = {f"choose a new {PIN_TITLES[target]}": new_pin, **during}
    seen["receipt"] = wait_done(session, during)
    assert not screen.errors and not session.screen.errors, session.screen.errors
    return seen


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
