"""A private PC/SC stack for tests: our own ``pcscd -f`` with the vpcd reader on free ports, torn down afterwards.

pcsc-lite 1.9.9's pcscd ignores ``PCSCLITE_CSOCK_NAME`` (only the client library reads it) and insists on
``/run/pcscd/pcscd.comm`` and ``/run/pcscd/pcscd.pid``. So pcscd runs in a private mount namespace (``unshare
--mount``; as non-root also ``--user --map-root-user``) where a fresh tmpfs covers ``/run`` and ``/run/pcscd`` is a
bind mount of a test directory: its socket appears in that directory, clients reach it with
``PCSCLITE_CSOCK_NAME=<dir>/pcscd.comm``, and the host's ``/run`` (a system pcscd, udev) is untouched. The reader
configuration is our own directory (``pcscd -c``) naming vpcd's driver with ``DEVICENAME /dev/null:<port>``; vpcd
opens that port and the next one (its second slot). Nothing is left running: the daemon gets SIGTERM from
:meth:`PcscStack.stop`, from an ``atexit`` hook, and (parent-death signal) if the test process dies.

Where mount namespaces are not allowed (an unprivileged container), and only as root with no other pcscd running, the
daemon runs directly on the system path ``/run/pcscd`` instead, serialised across processes by a lock file
(:data:`SYSTEM_LOCK`); ``JPKI_PCSC_NAMESPACE=0`` forces that mode.

libpcsclite reads ``PCSCLITE_CSOCK_NAME`` once per process, so a test process uses ONE stack:
:func:`acquire_shared_stack` / :func:`release_shared_stack` hand out a reference-counted process-wide instance (the
``pcsc_stack`` fixture in :mod:`.fixtures` uses them; import that fixture into any test package that needs PC/SC).
:meth:`PcscStack.start` sets the variable in ``os.environ``; restarting the stack keeps the same socket path.
Use :meth:`PcscStack.env` for subprocesses (OpenSC, pcsc_scan).
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

VPCD_DRIVER = Path("/usr/lib/pcsc/drivers/serial/libifdvpcd.so")
READER_NAME = "Virtual PCD"
SOCKET_ENV = "PCSCLITE_CSOCK_NAME"
_PR_SET_PDEATHSIG = 1

SYSTEM_RUN_DIR = Path("/run/pcscd")
SYSTEM_LOCK = Path("/run/lock/jpki-remote-test-pcscd.lock")

_NAMESPACE_SCRIPT = (
    'set -e; mount -t tmpfs -o mode=0755 tmpfs /run; mkdir /run/pcscd; mount --bind "$1" /run/pcscd; '
    'shift; exec "$@"'
)


InsertCard = Callable[..., contextlib.AbstractContextManager[Any]]
"""The ``insert_card`` fixture: ``with insert_card(card) as server:`` (a :class:`VpcdCardServer`)."""


class StackUnavailable(RuntimeError):
    """This machine cannot run a private pcscd (missing package, no namespaces); the message says what is missing."""


def missing_requirements() -> list[str]:
    """What is missing on this machine for the stack (empty when it can run)."""
    missing = [tool for tool in ("pcscd", "unshare") if shutil.which(tool) is None]
    if not VPCD_DRIVER.exists():
        missing.append(f"vsmartcard-vpcd ({VPCD_DRIVER})")
    return missing


def _unshare_command() -> list[str]:
    command = ["unshare", "--mount", "--propagation", "private"]
    if os.geteuid() != 0:
        command[1:1] = ["--user", "--map-root-user"]
    return command


def namespaces_work() -> bool:
    """Can we give pcscd a private mount namespace here (and mount a tmpfs in it)?"""
    if os.environ.get("JPKI_PCSC_NAMESPACE", "1") == "0":
        return False
    probe = [*_unshare_command(), "sh", "-c", "mount -t tmpfs tmpfs /run"]
    try:
        return subprocess.run(probe, capture_output=True, timeout=20).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def _system_pcscd_running() -> bool:
    pid_file = SYSTEM_RUN_DIR / "pcscd.pid"
    try:
        pid = int(pid_file.read_text().strip())
    except (OSError, ValueError):
        return (SYSTEM_RUN_DIR / "pcscd.comm").exists()
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def free_port_pair() -> int:
    """A TCP port p such that p and p+1 are free on all interfaces (vpcd binds INADDR_ANY for its two slots)."""
    for _ in range(50):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        if port >= 65535:
            continue
        try:
            with socket.socket() as first, socket.socket() as second:
                first.bind(("0.0.0.0", port))  # probing exactly what vpcd will bind
                second.bind(("0.0.0.0", port + 1))
        except OSError:
            continue
        return port
    raise StackUnavailable("no two consecutive free TCP ports for vpcd")


def _die_with_parent() -> None:  # runs in the child between fork and exec
    with contextlib.suppress(Exception):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def wait_until(predicate: Callable[[], bool], timeout: float, interval: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)


class PcscStack:
    """pcscd + vpcd for one test process. ``port`` is vpcd's first slot (reader ``Virtual PCD 00 00``)."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.run_dir = workdir / "run"
        self.conf_dir = workdir / "reader.conf.d"
        self.log_path = workdir / "pcscd.log"
        self.port = 0
        self.private = True  # pcscd in its own mount namespace (False: on /run/pcscd, see module docstring)
        self._system_lock: int | None = None
        self.process: subprocess.Popen[bytes] | None = None
        self._log_file = None
        self._saved_env: str | None = None

    @property
    def socket_path(self) -> Path:
        return self.run_dir / "pcscd.comm"

    @property
    def reader_names(self) -> list[str]:
        return [f"{READER_NAME} 00 00", f"{READER_NAME} 00 01"]

    def env(self, base: dict[str, str] | None = None) -> dict[str, str]:
        """Environment for a subprocess that should use this stack."""
        env = dict(os.environ if base is None else base)
        env[SOCKET_ENV] = str(self.socket_path)
        return env

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    # -- life cycle -------------------------------------------------------------------------------------------------

    def start(self, timeout: float = 15.0) -> PcscStack:
        missing = missing_requirements()
        if missing:
            raise StackUnavailable("missing: " + ", ".join(missing))
        current = os.environ.get(SOCKET_ENV)
        if current and current != str(self.socket_path):
            raise StackUnavailable(f"{SOCKET_ENV} is already {current}; one PC/SC stack per test process")
        if self.process is not None:
            raise RuntimeError("pcscd is already running")
        if not namespaces_work():
            self._use_system_run_dir()
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.conf_dir.mkdir(parents=True, exist_ok=True)
        for stale in ("pcscd.comm", "pcscd.pid"):
            (self.run_dir / stale).unlink(missing_ok=True)
        last_error = ""
        for _attempt in range(3):
            self.port = free_port_pair()
            (self.conf_dir / "vpcd").write_text(
                f'FRIENDLYNAME "{READER_NAME}"\n'
                f"DEVICENAME   /dev/null:{self.port}\n"
                f"LIBPATH      {VPCD_DRIVER}\n"
                f"CHANNELID    {self.port}\n"
            )
            self._spawn()
            if self._wait_ready(timeout):
                self._saved_env = current
                os.environ[SOCKET_ENV] = str(self.socket_path)
                atexit.register(self.stop)
                return self
            last_error = self.log()[-2000:]
            self._terminate()
        self.stop()  # releases the system lock in the fallback mode
        raise StackUnavailable(f"pcscd with vpcd did not come up; its log:\n{last_error}")

    def _use_system_run_dir(self) -> None:
        """Fallback without namespaces: root only, no other pcscd, one test process at a time (blocking lock)."""
        import fcntl

        if os.geteuid() != 0:
            raise StackUnavailable("no mount namespaces here and not root: cannot run a private pcscd")
        SYSTEM_LOCK.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(SYSTEM_LOCK, os.O_RDWR | os.O_CREAT, 0o600)
        deadline = time.monotonic() + 600
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    os.close(fd)
                    raise StackUnavailable(f"another test process holds {SYSTEM_LOCK} for 10 minutes") from None
                time.sleep(0.5)
        if _system_pcscd_running():
            os.close(fd)
            raise StackUnavailable("no mount namespaces here and a system pcscd is running: stop it for the tests")
        self._system_lock = fd
        self.private = False
        self.run_dir = SYSTEM_RUN_DIR

    def _spawn(self) -> None:
        daemon = ["pcscd", "--foreground", "--info", "--config", str(self.conf_dir)]
        if self.private:
            command = [*_unshare_command(), "sh", "-c", _NAMESPACE_SCRIPT, "pcscd-ns", str(self.run_dir), *daemon]
        else:
            command = daemon
        self._log_file = self.log_path.open("ab")
        self.process = subprocess.Popen(
            command, stdin=subprocess.DEVNULL, stdout=self._log_file, stderr=subprocess.STDOUT,
            preexec_fn=_die_with_parent,
        )

    def _wait_ready(self, timeout: float) -> bool:
        def ready() -> bool:
            if self.process is None or self.process.poll() is not None:
                return True  # exited: stop waiting
            text = self.log()
            return "daemon ready" in text and self.socket_path.exists()

        wait_until(ready, timeout)
        if self.process is None or self.process.poll() is not None:
            return False
        text = self.log()
        return f"port {self.port}" in text and "Could not initialize connection" not in text

    def _terminate(self) -> None:
        process, self.process = self.process, None
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(5)
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None

    def stop(self) -> None:
        """Stop pcscd (idempotent). The socket path stays reserved for a restart in this process."""
        self._terminate()
        with contextlib.suppress(ValueError):
            atexit.unregister(self.stop)
        if self._system_lock is not None:
            os.close(self._system_lock)  # releases the lock
            self._system_lock = None

    def restart(self, timeout: float = 15.0) -> None:
        """Stop and start pcscd on the same socket and ports (as after a crash or an update of pcsc-lite)."""
        self._terminate()
        for stale in ("pcscd.comm", "pcscd.pid"):
            (self.run_dir / stale).unlink(missing_ok=True)
        self._spawn()
        if not self._wait_ready(timeout):
            raise StackUnavailable(f"pcscd did not restart; its log:\n{self.log()[-2000:]}")

    def close(self) -> None:
        """Stop pcscd and give ``PCSCLITE_CSOCK_NAME`` back (end of the test session)."""
        self.stop()
        if os.environ.get(SOCKET_ENV) == str(self.socket_path):
            if self._saved_env is None:
                del os.environ[SOCKET_ENV]
            else:
                os.environ[SOCKET_ENV] = self._saved_env

    # -- cards ------------------------------------------------------------------------------------------------------

    def card_present(self, slot: int = 0) -> bool:
        from jpki_remote.card.transports.pcsc import list_readers

        name = self.reader_names[slot]
        return any(reader.name == name and reader.card_present for reader in list_readers())

    def wait_card(self, present: bool, slot: int = 0, timeout: float = 10.0) -> bool:
        """Wait until pcscd reports the card in ``slot`` present (or absent)."""
        return wait_until(lambda: self.card_present(slot) == present, timeout)


_shared: PcscStack | None = None
_shared_users = 0


def acquire_shared_stack(make_workdir: Callable[[], Path]) -> PcscStack:
    """The process-wide stack, started on first use (``make_workdir()`` gives its directory)."""
    global _shared, _shared_users
    if _shared is None:
        _shared = PcscStack(make_workdir()).start()
    _shared_users += 1
    return _shared


def release_shared_stack() -> None:
    """Give one reference back; the last one stops pcscd."""
    global _shared, _shared_users
    _shared_users = max(0, _shared_users - 1)
    if _shared_users == 0 and _shared is not None:
        stack, _shared = _shared, None
        stack.close()


@contextlib.contextmanager
def running_stack(workdir: Path) -> Iterator[PcscStack]:
    stack = PcscStack(workdir).start()
    try:
        yield stack
    finally:
        stack.close()
