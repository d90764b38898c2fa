"""Real-browser fixtures: Debian's chromium driven by Playwright (sync API), a server on a free loopback port.

* ``pages_server`` — uvicorn in a thread serving the page router (``jpki_remote.web.pages.router``), on the full
  application from ``create_app(settings)`` when the web package provides it (fresh SQLite data directory), else on
  a bare FastAPI app with the router alone (enough for the tests whose subject is the pages themselves);
* ``browser_factory`` — launches chromium, optionally with a fake camera fed from a Y4M file; every browser launched
  is closed at the end of the test;
* ``y4m_cache`` — fake-camera videos built once per session from the real photos (building one costs seconds).
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = Path("/usr/bin/chromium")
BASE_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]
CAMERA_ARGS = ["--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream"]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.browser)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class RunningServer:
    url: str
    full_app: bool  # the whole application (API included), not just the page router
    app: Any


class _ThreadedServer:
    def __init__(self, app: Any) -> None:
        import uvicorn

        self.port = free_port()
        self.server = uvicorn.Server(
            uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning", lifespan="on")
        )
        self.thread = threading.Thread(target=self.server.run, name="uvicorn-browser-tests", daemon=True)

    def __enter__(self) -> str:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the test server did not start")
            time.sleep(0.05)
        return f"http://127.0.0.1:{self.port}"

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=15)


def _create_full_app(data_dir: Path) -> Any | None:
    """The application from the web package's factory, if it has landed (and builds)."""
    try:
        from jpki_remote.web.app import create_app  # type: ignore[attr-defined]
    except ImportError:
        try:
            from jpki_remote.web import create_app  # type: ignore[attr-defined]
        except ImportError:
            return None
    from jpki_remote.config import Settings
    from jpki_remote.store import Database

    try:
        settings = Settings(data_dir=data_dir)
        schema = Database(settings.effective_database_url)
        schema.create_schema()  # what ``jpki-remote serve`` does before serving (sign-in sessions, audit log, …)
        schema.dispose()
        return create_app(settings)
    except Exception:  # a factory still under construction: fall back to the pages alone
        return None


def _serves_pages(app: Any) -> bool:
    """Whether ``app`` has the page routes (looked up by name: newer FastAPI versions keep included routers as
    nested objects, so they are not in ``app.routes`` by path)."""
    from starlette.routing import NoMatchFound

    try:
        return app.url_path_for("kiosk") == "/kiosk"
    except NoMatchFound:
        return False


@pytest.fixture(scope="module")
def pages_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    from fastapi import FastAPI

    from jpki_remote.web.pages import router

    app = _create_full_app(tmp_path_factory.mktemp("jpki-data"))
    if app is not None and not _serves_pages(app):
        app = None  # the factory does not include the page router yet: test the pages on their own
    full = app is not None
    if app is None:
        app = FastAPI()
        app.include_router(router)
    with _ThreadedServer(app) as url:
        yield RunningServer(url, full, app)


def sign_in_admin(page: Any, server: RunningServer) -> None:
    """The admin sign-in (cookie session) in ``page``'s browser context, as ``/api/v1/login/admin`` gives it — what
    the admin pages (``/admin/audit`` is served to a signed-in admin only) need."""
    from jpki_remote.web.app import admin_token

    response = page.request.post(
        server.url + "/api/v1/login/admin", data={"token": admin_token(server.app.state.settings)}
    )
    assert response.ok, response.text()


def sign_in_on_the_form(page: Any, base_url: str, path: str, token: str) -> None:
    """``page`` shows the admin sign-in form (where an admin page sends a visitor who is not signed in): type the
    admin token, sign in, and wait until the form has brought the browser back to the admin page ``path``."""
    assert "/login?role=admin" in page.url, page.url
    page.fill("#token", token)
    page.click("form button[type=submit]")
    page.wait_for_url(base_url + path, timeout=30_000)


@pytest.fixture(scope="session")
def chromium_path() -> Path:
    if not CHROMIUM.exists():
        pytest.skip("Debian chromium is not installed (/usr/bin/chromium)")
    return CHROMIUM


@pytest.fixture(scope="session")
def playwright_instance(chromium_path: Path) -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        yield playwright


BrowserFactory = Callable[..., Any]


@pytest.fixture
def browser_factory(playwright_instance: Any, chromium_path: Path) -> Iterator[BrowserFactory]:
    launched: list[Any] = []

    def launch(camera: Path | None = None, extra_args: Sequence[str] = ()) -> Any:
        args = [*BASE_ARGS, *CAMERA_ARGS, *extra_args]
        if camera is not None:
            args.append(f"--use-file-for-fake-video-capture={camera}")
        browser = playwright_instance.chromium.launch(executable_path=str(chromium_path), args=args)
        launched.append(browser)
        return browser

    yield launch
    for browser in launched:
        browser.close()


@pytest.fixture(scope="session")
def y4m_cache(tmp_path_factory: pytest.TempPathFactory, faces_dir: Path) -> Callable[..., Path]:
    """``video(person, actions)`` → a Y4M of ``faces/<person>/1.jpg`` doing ``actions`` (or sitting still)."""
    from camera import challenge_frames, still_frames, write_y4m

    folder = tmp_path_factory.mktemp("camera")
    built: dict[tuple[str, tuple[str, ...]], Path] = {}

    def video(person: str, actions: Sequence[str] = ()) -> Path:
        key = (person, tuple(actions))
        if key not in built:
            photo = faces_dir / person / "1.jpg"
            frames = challenge_frames(photo, actions) if actions else still_frames(photo)
            name = f"{person}-{'-'.join(actions) or 'still'}.y4m"
            built[key] = write_y4m(frames, folder / name)
        return built[key]

    return video


class ConsoleErrors:
    """Uncaught page errors and console errors of one page (network 404/401 can be filtered by the caller)."""

    def __init__(self, page: Any) -> None:
        self.items: list[str] = []
        page.on("pageerror", lambda error: self.items.append(f"pageerror: {error}"))
        page.on("console", lambda message: self.items.append(message.text) if message.type == "error" else None)

    def serious(self, *, allow_network: bool) -> list[str]:
        if not allow_network:
            return list(self.items)
        return [e for e in self.items if "Failed to load resource" not in e and "agent" not in e.lower()]


# ---------------------------------------------------------------------------------------------------- end to end
STATS_TEST = "test_e2e_stats.py"


@pytest.fixture(scope="session")
def scripted_demo(tmp_path_factory: pytest.TempPathFactory, faces_dir: Path) -> Iterator[Any]:
    """``jpki-remote demo --scripted`` on its own fresh data directory, running in the background."""
    from e2e import ScriptedDemo

    folder = tmp_path_factory.mktemp("demo")
    demo = ScriptedDemo(folder / "data", folder / "report.json", faces_dir)
    try:
        yield demo
    finally:
        demo.stop()


@pytest.fixture(scope="session")
def e2e_world(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, faces_dir: Path, chromium_path: Path
) -> Iterator[Any]:
    """One data directory for every end-to-end test: the CAs, the registry, virtual cards, the real server
    (``jpki-remote serve``) on a free loopback port. Each test adds its own holders, terminals and agents.
    When the statistics test is selected too, the scripted demo it needs starts now, beside the other tests."""
    from e2e import E2EWorld

    if any(Path(str(item.fspath)).name == STATS_TEST for item in request.session.items):
        request.getfixturevalue("scripted_demo")

    world = E2EWorld(tmp_path_factory.mktemp("e2e") / "data", faces_dir)
    try:
        world.start_server()
        yield world
    finally:
        world.close()
