"""`CardStore`: virtual cards on disk, one state file per card, written atomically.

Layout of ``directory``::

    .storage-key          32 random bytes, mode 0600 — seals the secrets inside every state file
    <card_id>.card        JSON state (see :mod:`jpki_remote.card.state`)
    .<card_id>.lock       lock file of :meth:`CardStore.lock` (holds the pid of the process using the card)

A write goes to a temporary file in the same directory, is fsync'ed, renamed over the old file, and the directory is
fsync'ed: a crash at any point leaves either the old or the new state, never a mix.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import secrets
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from jpki_remote.card.state import CardState, CardStateError
from jpki_remote.card.virtual import KeyGenerator, VirtualCard

KEY_FILE = ".storage-key"
SUFFIX = ".card"
_CARD_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")


class CardNotFoundError(KeyError):
    """No card with this id in the store."""


class CardInUseError(RuntimeError):
    """Another process (or another holder in this one) has the card: one reader at a time. ``pid``: who, if known."""

    def __init__(self, card_id: str, pid: int | None) -> None:
        who = f"process {pid}" if pid else "another process"
        super().__init__(f"card {card_id} is in use by {who} (inserted in a reader, or a terminal agent?)")
        self.card_id = card_id
        self.pid = pid


def _check_id(card_id: str) -> str:
    if not _CARD_ID.fullmatch(card_id):
        raise ValueError(f"invalid card id {card_id!r} (1–64 of A–Z a–z 0–9 _ -)")
    return card_id


class CardStore:
    """Loads and saves card states by id; :meth:`open` gives a :class:`VirtualCard` that saves itself."""

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._key = self._storage_key()

    def _storage_key(self) -> bytes:
        path = self.directory / KEY_FILE
        try:
            key = path.read_bytes()
        except FileNotFoundError:
            key = secrets.token_bytes(32)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            try:
                os.write(fd, key)
                os.fsync(fd)
            finally:
                os.close(fd)
            _fsync_dir(self.directory)
            key = path.read_bytes()  # if another process won the race, use its key
        if len(key) != 32:
            raise CardStateError(f"{path} is not a 32-byte storage key")
        return key

    def path(self, card_id: str) -> Path:
        return self.directory / f"{_check_id(card_id)}{SUFFIX}"

    def exists(self, card_id: str) -> bool:
        return self.path(card_id).exists()

    def ids(self) -> list[str]:
        return sorted(p.name[: -len(SUFFIX)] for p in self.directory.glob(f"*{SUFFIX}"))

    def __iter__(self) -> Iterator[str]:
        return iter(self.ids())

    def load(self, card_id: str) -> CardState:
        try:
            raw = self.path(card_id).read_bytes()
        except FileNotFoundError as exc:
            raise CardNotFoundError(card_id) from exc
        state = CardState.from_bytes(raw, self._key)
        if state.card_id != card_id:
            raise CardStateError(f"file for {card_id} holds card {state.card_id}")
        return state

    def save(self, state: CardState) -> None:
        """Atomically replace the card's file (temp file + fsync + rename + fsync of the directory)."""
        self._write(state, exclusive=False)

    def _write(self, state: CardState, *, exclusive: bool) -> None:
        """Write ``state`` via a fsync'ed temp file; ``exclusive``: link it in place, failing if the card exists."""
        target = self.path(state.card_id)
        state.generation += 1
        try:
            data = state.to_bytes(self._key)
        except Exception:
            state.generation -= 1
            raise
        fd, tmp = tempfile.mkstemp(prefix=f".{state.card_id}.", suffix=".tmp", dir=self.directory)
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            if exclusive:
                try:
                    os.link(tmp, target)  # atomic, and never over an existing card
                except FileExistsError:
                    raise FileExistsError(f"card {state.card_id} already exists in {self.directory}") from None
                os.unlink(tmp)
            else:
                os.replace(tmp, target)
        except BaseException:
            state.generation -= 1
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise
        _fsync_dir(self.directory)

    def delete(self, card_id: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.path(card_id).unlink()
        _fsync_dir(self.directory)

    def open(self, card_id: str, *, keygen: KeyGenerator | None = None) -> VirtualCard:
        """The card, wired to save itself after every state change and to reload on a failed write."""
        return VirtualCard(self.load(card_id), persist=self.save, reload=lambda: self.load(card_id), keygen=keygen)

    def add(self, state: CardState, *, keygen: KeyGenerator | None = None) -> VirtualCard:
        """Store a new card atomically (``FileExistsError`` if the id is taken, also by a concurrent ``add``) and
        open it."""
        self._write(state, exclusive=True)
        return self.open(state.card_id, keygen=keygen)

    @contextlib.contextmanager
    def lock(self, card_id: str, *, timeout: float = 0.0) -> Iterator[None]:
        """Hold ``card_id`` for this process while the block runs: one process (one reader) per card.

        An exclusive ``flock`` on ``.<card_id>.lock`` (it records the holder's pid). If another process — or another
        ``lock`` of the same card in this process — holds it, wait up to ``timeout`` seconds, then raise
        :class:`CardInUseError` naming the holder's pid. The kernel releases the lock when the holder exits, also on
        a crash; the lock file itself stays (removing it would race with a waiting process).
        """
        path = self.directory / f".{_check_id(card_id)}.lock"
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            deadline = time.monotonic() + max(0.0, timeout)
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() >= deadline:
                        raise CardInUseError(card_id, _holder_pid(path)) from None
                    time.sleep(0.05)
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
            try:
                yield
            finally:
                os.ftruncate(fd, 0)
        finally:
            os.close(fd)  # releases the lock

    def cleanup_temporaries(self) -> int:
        """Remove temp files left by a crash mid-write (they are never read). Returns how many were removed."""
        removed = 0
        for tmp in self.directory.glob(".*.tmp"):
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
                removed += 1
        return removed


def _holder_pid(path: Path) -> int | None:
    try:
        text = path.read_text(encoding="ascii", errors="replace").strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
