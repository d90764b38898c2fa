"""`CardStore.lock`: one process per card — across processes (with the holder's pid in the error), within a process,
released when the holder exits or is killed; `card apdu` honours it."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from jpki_remote.card.store import CardInUseError, CardStore
from jpki_remote.cli import main

HOLDER = """
import sys
from jpki_remote.card.store import CardStore
with CardStore(sys.argv[1]).lock(sys.argv[2]):
    print("locked", flush=True)
    sys.stdin.readline()
print("released", flush=True)
"""


def hold(directory: Path, card_id: str) -> subprocess.Popen[str]:
    process = subprocess.Popen([sys.executable, "-c", HOLDER, str(directory), card_id], stdin=subprocess.PIPE,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert process.stdout is not None
    line = process.stdout.readline()
    assert line.strip() == "locked", process.stderr.read() if process.stderr else line
    return process


def test_lock_held_by_another_process(made, capsys: pytest.CaptureFixture[str]) -> None:
    created, store = made
    holder = hold(store.directory, created.card_id)
    try:
        with pytest.raises(CardInUseError) as err, store.lock(created.card_id):
            pass
        assert err.value.pid == holder.pid and f"process {holder.pid}" in str(err.value)
        started = time.monotonic()
        with pytest.raises(CardInUseError), store.lock(created.card_id, timeout=0.3):
            pass
        assert time.monotonic() - started >= 0.3
        # the CLI refuses to drive the card meanwhile, and says who has it
        code = main(["card", "apdu", "--cards-dir", str(store.directory), created.card_id, "00A4040C"])
        _out, err_text = capsys.readouterr()
        assert code == 1 and f"in use by process {holder.pid}" in err_text
        with store.lock("another-card"):  # other cards are not affected
            pass
    finally:
        assert holder.stdin is not None
        holder.stdin.write("\n")
        holder.stdin.flush()
        holder.wait(30)
    assert holder.returncode == 0
    assert main(["card", "apdu", "--cards-dir", str(store.directory), created.card_id, "00A4040C"]) == 0  # released


def test_waiting_lock_gets_the_card_when_released(made) -> None:
    created, store = made
    holder = hold(store.directory, created.card_id)

    def release_soon() -> None:
        time.sleep(0.4)
        assert holder.stdin is not None
        holder.stdin.write("\n")
        holder.stdin.flush()

    threading.Thread(target=release_soon, daemon=True).start()
    try:
        with store.lock(created.card_id, timeout=30):
            assert holder.wait(30) == 0
            # and now this process holds it: a second process is refused
            code = subprocess.run([sys.executable, "-c", HOLDER, str(store.directory), created.card_id],
                                  capture_output=True, text=True, timeout=60, input="\n")
            assert code.returncode == 1 and "CardInUseError" in code.stderr
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait(10)


def test_lock_is_released_when_the_holder_is_killed(made) -> None:
    created, store = made
    holder = hold(store.directory, created.card_id)
    holder.send_signal(signal.SIGKILL)
    holder.wait(30)
    with store.lock(created.card_id):
        pass


def test_one_holder_within_a_process_too(tmp_path: Path) -> None:
    store = CardStore(tmp_path)
    with store.lock("card1"), pytest.raises(CardInUseError), CardStore(tmp_path).lock("card1"):
        pass
    with store.lock("card1"):  # released on exit, also re-acquirable
        pass
    with pytest.raises(ValueError, match="invalid card id"), store.lock("../x"):
        pass
