"""The fast status server: a raw asyncio HTTP/1.1 server (keep-alive, pipelining) for OCSP and CRLs.

It does not go through FastAPI: a request whose answer is in memory (a precomputed OCSP response, a cached CRL,
a malformed or foreign request) is answered inline in the event loop; everything else (database reads, live
signatures) runs in a small thread pool, at most ``max_inflight`` at once — beyond that OCSP answers ``tryLater``
and CRL requests get 503, so a flood of nonce or unknown-serial requests cannot starve the precomputed path.

Bounded by design: request head ≤ 8 KiB, body ≤ 16 KiB, no chunked uploads, idle connections closed after
``idle_timeout`` (a half-received request after 10 s), at most ``max_connections`` connections per process.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor

from jpki_remote.ca.status.ocsp_response import TRY_LATER_RESPONSE
from jpki_remote.ca.status.routing import (
    OCSP_RESPONSE_TYPE,
    HttpResult,
    Request,
    error_result,
    http_date,
    respond_blocking,
    respond_fast,
)
from jpki_remote.ca.status.service import StatusService

log = logging.getLogger(__name__)

MAX_HEAD = 8 * 1024
MAX_BODY = 16 * 1024
PARTIAL_REQUEST_TIMEOUT = 10.0
REASONS = {
    200: "OK",
    304: "Not Modified",
    400: "Bad Request",
    404: "Not Found",
    405: "Method Not Allowed",
    408: "Request Timeout",
    411: "Length Required",
    413: "Content Too Large",
    431: "Request Header Fields Too Large",
    500: "Internal Server Error",
    501: "Not Implemented",
    503: "Service Unavailable",
}
_TRY_LATER = HttpResult(200, [("Content-Type", OCSP_RESPONSE_TYPE), ("Cache-Control", "no-store")], TRY_LATER_RESPONSE)


class _Connection(asyncio.Protocol):
    __slots__ = ("buffer", "busy", "closed", "last_activity", "server", "transport")

    def __init__(self, server: StatusServer) -> None:
        self.server = server
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.busy = False
        self.closed = False
        self.last_activity = time.monotonic()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        if len(self.server.connections) >= self.server.max_connections:
            transport.close()
            return
        self.server.connections.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.server.connections.discard(self)

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        self.last_activity = time.monotonic()
        if not self.busy:
            self._process()

    def _process(self) -> None:
        buffer = self.buffer
        while buffer and not self.closed:
            end = buffer.find(b"\r\n\r\n")
            if end < 0:
                if len(buffer) > MAX_HEAD:
                    self._fail(431, "request head too large")
                return
            if end > MAX_HEAD:
                self._fail(431, "request head too large")
                return
            lines = bytes(buffer[:end]).split(b"\r\n")
            parts = lines[0].split(b" ")
            if len(parts) != 3 or not parts[2].startswith(b"HTTP/1."):
                self._fail(400, "bad request line")
                return
            method, target, version = parts[0].decode("latin-1"), parts[1], parts[2]
            content_length = 0
            connection = b""
            if_none_match = if_modified_since = None
            for line in lines[1:]:
                name, sep, value = line.partition(b":")
                if not sep:
                    self._fail(400, "bad header line")
                    return
                name = name.strip().lower()
                if name == b"content-length":
                    try:
                        content_length = int(value.strip())
                    except ValueError:
                        self._fail(400, "bad Content-Length")
                        return
                elif name == b"connection":
                    connection = value.strip().lower()
                elif name == b"transfer-encoding":
                    self._fail(501, "chunked request bodies are not accepted; send Content-Length")
                    return
                elif name == b"if-none-match":
                    if_none_match = value.strip().decode("latin-1")
                elif name == b"if-modified-since":
                    if_modified_since = value.strip().decode("latin-1")
            if content_length < 0 or content_length > MAX_BODY:
                self._fail(413, "request body too large")
                return
            total = end + 4 + content_length
            if len(buffer) < total:
                return  # wait for the rest of the body
            body = bytes(buffer[end + 4 : total])
            del buffer[:total]
            keep_alive = b"close" not in connection if version == b"HTTP/1.1" else b"keep-alive" in connection
            if target.startswith(b"http://") or target.startswith(b"https://"):
                slash = target.find(b"/", target.find(b"//") + 2)
                target = target[slash:] if slash >= 0 else b"/"
            path = target.split(b"?", 1)[0].decode("latin-1")
            request = Request(method, path, body, if_none_match, if_modified_since)
            try:
                result = respond_fast(self.server.service, request)
            except Exception:
                log.exception("status request failed")
                result = error_result(500, "internal error")
            if result is None:
                self._defer(request, keep_alive)
                return
            self._write(result, keep_alive, method == "HEAD")
            if not keep_alive:
                return

    def _defer(self, request: Request, keep_alive: bool) -> None:
        server = self.server
        if server.inflight >= server.max_inflight:
            busy = _TRY_LATER if request.path.startswith("/ocsp") else error_result(503, "busy, retry")
            self._write(busy, keep_alive, request.method == "HEAD")
            if keep_alive and self.buffer:
                asyncio.get_running_loop().call_soon(self._process)
            return
        self.busy = True
        server.inflight += 1
        future = server.pool.submit(respond_blocking, server.service, request)
        loop = asyncio.get_running_loop()
        future.add_done_callback(lambda f: loop.call_soon_threadsafe(self._finish, f, keep_alive, request.method))

    def _finish(self, future: Future[HttpResult], keep_alive: bool, method: str) -> None:
        self.server.inflight -= 1
        self.busy = False
        try:
            result = future.result()
        except Exception:
            log.exception("status request failed")
            result = error_result(500, "internal error")
        if self.closed:
            return
        self._write(result, keep_alive, method == "HEAD")
        if keep_alive:
            self._process()

    def _write(self, result: HttpResult, keep_alive: bool, head_only: bool) -> None:
        transport = self.transport
        if transport is None or self.closed:
            return
        lines = [f"HTTP/1.1 {result.status} {REASONS.get(result.status, 'Unknown')}"]
        lines += [f"{name}: {value}" for name, value in result.headers]
        lines.append(f"Content-Length: {len(result.body)}")
        lines.append(f"Date: {http_date()}")
        if not keep_alive:
            lines.append("Connection: close")
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        transport.write(head if head_only or result.status == 304 else head + result.body)
        if not keep_alive:
            self.closed = True
            transport.close()

    def _fail(self, status: int, message: str) -> None:
        self._write(error_result(status, message), False, False)


class StatusServer:
    """One event loop's worth of the fast server around a :class:`StatusService`."""

    def __init__(
        self,
        service: StatusService,
        *,
        max_inflight: int = 64,
        threads: int = 4,
        idle_timeout: float = 30.0,
        max_connections: int = 10_000,
    ) -> None:
        self.service = service
        self.max_inflight = max_inflight
        self.max_connections = max_connections
        self.idle_timeout = idle_timeout
        self.pool = ThreadPoolExecutor(threads, thread_name_prefix="jpki-status")
        self.connections: set[_Connection] = set()
        self.inflight = 0
        self._server: asyncio.Server | None = None
        self._sweeper: asyncio.Task[None] | None = None

    async def start(self, host: str = "127.0.0.1", port: int = 0, sock: socket.socket | None = None) -> int:
        loop = asyncio.get_running_loop()
        if sock is not None:
            self._server = await loop.create_server(lambda: _Connection(self), sock=sock, backlog=1024)
        else:
            self._server = await loop.create_server(lambda: _Connection(self), host, port, backlog=1024)
        self._sweeper = asyncio.create_task(self._sweep())
        return self.port

    @property
    def port(self) -> int:
        assert self._server is not None
        return self._server.sockets[0].getsockname()[1]

    async def _sweep(self) -> None:
        while True:
            await asyncio.sleep(min(5.0, self.idle_timeout / 2))
            now = time.monotonic()
            for connection in list(self.connections):
                limit = PARTIAL_REQUEST_TIMEOUT if connection.buffer else self.idle_timeout
                if not connection.busy and now - connection.last_activity > limit and connection.transport:
                    connection.transport.close()

    async def close(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
        if self._server is not None:
            self._server.close()
            for connection in list(self.connections):
                if connection.transport is not None:
                    connection.transport.close()
            await self._server.wait_closed()
        self.pool.shutdown(wait=False, cancel_futures=True)


class ServerThread:
    """The fast server on its own event loop in a background thread (tests, and ``serve`` inside one process)."""

    def __init__(self, service: StatusService, host: str = "127.0.0.1", port: int = 0, **options: object) -> None:
        self.server = StatusServer(service, **options)  # type: ignore[arg-type]
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, args=(host, port), name="jpki-status-server", daemon=True)
        self.port = 0

    def start(self) -> ServerThread:
        self._thread.start()
        self._ready.wait(30)
        if self._error is not None:
            raise self._error
        return self

    def _run(self, host: str, port: int) -> None:
        asyncio.set_event_loop(self._loop)
        try:
            self.port = self._loop.run_until_complete(self.server.start(host, port))
        except BaseException as exc:
            self._error = exc
            self._ready.set()
            return
        self._ready.set()
        self._loop.run_forever()
        self._loop.run_until_complete(self.server.close())
        self._loop.close()

    def stop(self) -> None:
        if self._loop.is_running():
            self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)


def _listen(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(1024)
    sock.setblocking(False)
    return sock


def _serve(service: StatusService, sock: socket.socket) -> None:
    """Run one event loop serving ``sock`` until SIGTERM/SIGINT."""

    async def main() -> None:
        server = StatusServer(service)
        await server.start(sock=sock)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        await stop.wait()
        await server.close()

    asyncio.run(main())


def _serve_in_this_process(make_service: Callable[[], StatusService], sock: socket.socket) -> None:
    service = make_service()
    try:
        _serve(service, sock)
    finally:
        service.close()


def run_status_server(
    make_service: Callable[[], StatusService],
    host: str,
    port: int,
    *,
    workers: int = 1,
    background: bool = True,
    on_ready: Callable[[int], None] | None = None,
) -> int:
    """Serve OCSP and CRLs on ``host:port`` until SIGTERM/SIGINT; returns an exit code.

    ``workers`` > 1 forks that many server processes sharing one listening socket (``make_service`` runs in each
    child after the fork, so database connections and HSM sessions are never shared). With ``background`` the
    parent process runs the CRL publisher / OCSP refresher (one per deployment is enough).
    """
    sock = _listen(host, port)
    bound = sock.getsockname()[1]
    children: list[int] = []
    for _ in range(max(workers, 1) if workers > 1 else 0):
        pid = os.fork()
        if pid == 0:  # child
            code = 0
            try:
                _serve_in_this_process(make_service, sock)
            except BaseException:
                log.exception("status worker failed")
                code = 1
            finally:
                os._exit(code)
        children.append(pid)
    if not children:
        if on_ready:
            on_ready(bound)
        if background:
            service = make_service()
            service.start_background()
            try:
                _serve(service, sock)
            finally:
                service.close()
        else:
            _serve_in_this_process(make_service, sock)
        return 0
    sock.close()
    stopping = threading.Event()

    def forward(signum: int, _frame: object) -> None:
        stopping.set()
        for child in children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(child, signal.SIGTERM)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    service = make_service() if background else None
    if service is not None:
        service.start_background()
    if on_ready:
        on_ready(bound)
    code = 0
    try:
        remaining = set(children)
        while remaining:
            pid, status = os.wait()
            remaining.discard(pid)
            if not stopping.is_set():
                log.error("status worker %d exited (status %d); stopping the others", pid, status)
                code = 1
                forward(signal.SIGTERM, None)
    finally:
        if service is not None:
            service.close()
    return code
