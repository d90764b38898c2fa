"""A TCP proxy between the server process and PostgreSQL that the fault tests cut: "the database is briefly down".

``cut(seconds)`` closes every connection through it and stops listening (new connections are *refused*, as when
PostgreSQL is restarting), then listens again on the same port after ``seconds``. ``cut_on(pattern, …)`` arms a
cut for the moment a client sends a statement containing ``pattern`` (after ``after`` on the same connection, if
given): the statement is dropped — or, with ``forward=True``, delivered just before the cut, so its outcome is
unknown to the client (a COMMIT that may or may not have happened).

The server connects with ``sslmode=disable`` through it so that the statements can be seen.
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

from sqlalchemy import create_engine, text

POSTGRES_ADMIN_URL = os.environ.get("JPKI_TEST_POSTGRES", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")


@dataclass
class Cut:
    reason: str
    seconds: float
    at: float = field(default_factory=time.monotonic)
    restored_at: float | None = None


@dataclass
class _Trigger:
    pattern: bytes
    after: bytes | None
    seconds: float
    forward: bool
    reason: str
    seen_after: set[int] = field(default_factory=set)  # connections on which ``after`` went by


class _Pair:
    """One client connection and its upstream connection, pumped both ways by two threads."""

    def __init__(self, proxy: DatabaseProxy, client: socket.socket, upstream: socket.socket) -> None:
        self.proxy, self.client, self.upstream = proxy, client, upstream
        self.tail = b""  # the end of the previous client chunk, for a pattern split across two chunks

    def start(self) -> None:
        threading.Thread(target=self._pump, args=(self.client, self.upstream, True), daemon=True).start()
        threading.Thread(target=self._pump, args=(self.upstream, self.client, False), daemon=True).start()

    def _pump(self, source: socket.socket, target: socket.socket, from_client: bool) -> None:
        try:
            while chunk := source.recv(65536):
                if from_client and not self.proxy._passes(self, chunk):
                    return
                target.sendall(chunk)
        except OSError:
            pass
        finally:
            self.close()
            self.proxy._forget(self)

    def close(self) -> None:
        for sock in (self.client, self.upstream):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()


class DatabaseProxy:
    """Listens on 127.0.0.1:<port>, forwards to PostgreSQL; see the module docstring."""

    def __init__(self, upstream: tuple[str, int] = ("127.0.0.1", 5432)) -> None:
        self.upstream = upstream
        self.port = 0
        self.cuts: list[Cut] = []
        self.connections = 0  # accepted since the start
        self._lock = threading.Lock()
        self._pairs: set[_Pair] = set()
        self._listener: socket.socket | None = None
        self._trigger: _Trigger | None = None
        self._restored = threading.Event()
        self._restored.set()
        self._closed = False

    # ---- life cycle ------------------------------------------------------------------------------------------
    def start(self) -> DatabaseProxy:
        self._listen()
        return self

    def url(self, database_url: str) -> str:
        """``database_url`` (a PostgreSQL URL on the upstream) as seen through the proxy, without TLS."""
        host, port = self.upstream
        through = database_url.replace(f"@{host}:{port}/", f"@127.0.0.1:{self.port}/")
        assert through != database_url, database_url
        return through + ("&" if "?" in through else "?") + "sslmode=disable"

    def close(self) -> None:
        with self._lock:
            self._closed = True
            self._trigger = None
        self._cut_now(Cut("close", 0.0), restore=False)

    def _listen(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self.port = int(listener.getsockname()[1])
        with self._lock:
            self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return  # closed by a cut
            try:
                upstream = socket.create_connection(self.upstream, timeout=5)
                upstream.settimeout(None)
            except OSError:
                client.close()
                continue
            pair = _Pair(self, client, upstream)
            with self._lock:
                if self._listener is not listener:  # cut while connecting
                    pair.close()
                    return
                self._pairs.add(pair)
                self.connections += 1
            pair.start()

    # ---- faults ----------------------------------------------------------------------------------------------
    @property
    def down(self) -> bool:
        return not self._restored.is_set()

    def cut(self, seconds: float, reason: str = "cut") -> Cut:
        """Drop every connection now and refuse new ones for ``seconds``."""
        cut = Cut(reason, seconds)
        self._cut_now(cut)
        return cut

    def cut_on(
        self, pattern: bytes, *, seconds: float, after: bytes | None = None, forward: bool = False, reason: str = ""
    ) -> None:
        """Arm one cut for the first client message containing ``pattern`` (on a connection that sent ``after``
        before, when given)."""
        with self._lock:
            self._trigger = _Trigger(pattern, after, seconds, forward, reason or pattern.decode(errors="replace"))

    def drop_connections(self) -> None:
        """Close every connection through the proxy but keep accepting (the server reconnects at once). Fresh
        connections send each statement's text again: psycopg prepares a statement on its 5th use on a connection
        and from then on sends only its name, which ``cut_on`` could not see."""
        with self._lock:
            pairs, self._pairs = set(self._pairs), set()
        for pair in pairs:
            pair.close()

    def wait_restored(self, timeout: float) -> bool:
        return self._restored.wait(timeout)

    def _passes(self, pair: _Pair, chunk: bytes) -> bool:
        """Whether the client's ``chunk`` goes on; fires the armed cut (after forwarding it, if so armed)."""
        window = pair.tail + chunk
        pair.tail = window[-256:]
        with self._lock:
            trigger = self._trigger
            if trigger is None:
                return True
            if trigger.after is not None and id(pair) not in trigger.seen_after:
                if trigger.after in window:
                    trigger.seen_after.add(id(pair))
                    window = window[window.index(trigger.after) + len(trigger.after) :]
                else:
                    return True
            if trigger.pattern not in window:
                return True
            self._trigger = None
        if trigger.forward:
            with contextlib.suppress(OSError):
                pair.upstream.sendall(chunk)
        self._cut_now(Cut(trigger.reason, trigger.seconds))
        return False

    def _cut_now(self, cut: Cut, *, restore: bool = True) -> None:
        with self._lock:
            listener, self._listener = self._listener, None
            pairs, self._pairs = set(self._pairs), set()
            if restore:
                self.cuts.append(cut)
                self._restored.clear()
        if listener is not None:
            with contextlib.suppress(OSError):
                listener.shutdown(socket.SHUT_RDWR)  # wakes the accepting thread (a bare close would not)
            listener.close()  # new connections are refused from now on
        for pair in pairs:
            pair.close()
        if restore:
            timer = threading.Timer(cut.seconds, self._restore, args=(cut,))
            timer.daemon = True
            timer.start()

    def _restore(self, cut: Cut) -> None:
        with self._lock:
            if self._closed:
                return
        self._listen()
        cut.restored_at = time.monotonic()
        self._restored.set()

    def _forget(self, pair: _Pair) -> None:
        with self._lock:
            self._pairs.discard(pair)


# ---- throw-away PostgreSQL databases -------------------------------------------------------------------------------
def create_database(template: str | None = None) -> str:
    """A new PostgreSQL database (a copy of ``template``'s database when given); returns its URL."""
    import secrets

    name = f"jpki_fault_{secrets.token_hex(6)}"
    admin = create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            source = f' TEMPLATE "{template.rsplit("/", 1)[1]}"' if template else ""
            conn.execute(text(f'CREATE DATABASE "{name}"{source}'))
    finally:
        admin.dispose()
    return POSTGRES_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"


def drop_database(url: str) -> None:
    admin = create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{url.rsplit("/", 1)[1]}" WITH (FORCE)'))
    finally:
        admin.dispose()


@contextlib.contextmanager
def proxied(upstream_url: str) -> Iterator[tuple[DatabaseProxy, str]]:
    """A started proxy and ``upstream_url`` through it; closed at the end."""
    proxy = DatabaseProxy().start()
    try:
        yield proxy, proxy.url(upstream_url)
    finally:
        proxy.close()
