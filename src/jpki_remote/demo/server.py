"""The web application of the demo, in this process: ``create_app`` under uvicorn on a loopback port, plus the
OCSP/CRL status service (CRLs published at start and refreshed in the background; precomputed OCSP responses
refreshed as soon as the CA issues or revokes) and the periodic recovery of stale procedures — what
``jpki-remote serve`` runs, in a thread that can be stopped.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from typing import Any

from jpki_remote.config import Settings
from jpki_remote.store import Database

log = logging.getLogger(__name__)


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


def port_is_free(host: str, port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind((host, port))
        except OSError:
            return False
        return True


def build_app(settings: Settings, db: Database) -> Any:
    """``create_app(settings)`` with the HTML pages (kiosk, portal, counter, admin) included.

    Until the web package includes the page router itself, it is added here, *in front of* the application's own
    ``/`` and ``/static`` routes (the pages serve their files under ``/static/pages/``, which the application's
    catch-all ``/static`` mount would otherwise answer with 404).
    """
    from jpki_remote.web.app import create_app

    app = create_app(settings, db=db)
    if not any(getattr(route, "path", None) == "/kiosk" for route in app.router.routes):
        try:
            from jpki_remote.web.pages import router as pages_router
        except ImportError:
            log.warning("the HTML pages are not installed: only the API is served")
            return app
        before = len(app.router.routes)
        app.include_router(pages_router)
        added = app.router.routes[before:]
        del app.router.routes[before:]
        app.router.routes[:0] = added
    return app


class DemoServer:
    """uvicorn serving the application in a daemon thread; ``start()`` returns once it accepts connections."""

    def __init__(self, settings: Settings, db: Database, *, host: str, port: int) -> None:
        self.settings = settings
        self.db = db
        self.host = host
        self.port = port
        self.app = build_app(settings, db)
        self._server: Any = None
        self._thread: threading.Thread | None = None
        self._status: Any = None
        self._stop = threading.Event()
        self._recovery: threading.Thread | None = None

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def start(self, timeout: float = 30.0) -> str:
        import uvicorn

        self._start_status_service()
        config = uvicorn.Config(self.app, host=self.host, port=self.port, log_level="warning", lifespan="on")
        self._server = uvicorn.Server(config)
        self._server.install_signal_handlers = lambda: None  # the demo command owns SIGINT/SIGTERM
        self._thread = threading.Thread(target=self._server.run, name="jpki-demo-server", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive():
                raise RuntimeError(f"the server did not start on {self.url} (is the port in use?)")
            if time.monotonic() > deadline:
                raise RuntimeError(f"the server did not start on {self.url} within {timeout:.0f} s")
            time.sleep(0.05)
        self._recovery = threading.Thread(target=self._recover_periodically, name="jpki-demo-recovery", daemon=True)
        self._recovery.start()
        return self.url

    def _start_status_service(self) -> None:
        """CRLs published now, OCSP responses refreshed on every CA change, both swept in the background."""
        try:
            from jpki_remote.ca.keystore import open_keystore
            from jpki_remote.ca.status.service import StatusService

            service = StatusService(self.settings, self.db, open_keystore(self.settings))
            service.publish_crls(force=True)
            service.subscribe()
            service.start_background()
            self._status = service
        except Exception as exc:  # the API still works; OCSP answers are then signed live
            log.warning("status service (CRL publication, OCSP precomputation) not started: %s", exc)

    def _recover_periodically(self) -> None:
        while not self._stop.wait(60):
            try:
                self.app.state.get_engine().recover()
            except Exception:  # noqa: S112 - logged by the engine; try again next minute
                continue

    def stop(self, timeout: float = 15.0) -> None:
        self._stop.set()
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=timeout)
        if self._status is not None:
            try:
                self._status.close()
            finally:
                self._status.keys.close()
            self._status = None
