"""``jpki-remote demo`` and ``jpki-remote demo --scripted`` as a user runs them: in a subprocess.

The scripted run is the system-level test of issue 5: every procedure through the JSON API with the real terminal
agent, virtual cards, synthetic live captures from real photos and the development outbox, then OCSP, the audit log
and the live statistics checked from outside.
"""

from __future__ import annotations

import json
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from jpki_remote.demo.scripted import PROCEDURES
from jpki_remote.demo.server import free_port

READY = "Ctrl-C"


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("JPKI_")}
    env["PYTHONUNBUFFERED"] = "1"
    return env


def _command(*args: str) -> list[str]:
    return [sys.executable, "-m", "jpki_remote", "demo", *args]


class RunningDemo:
    """``jpki-remote demo`` in a subprocess; its output lines arrive on a queue."""

    def __init__(self, *args: str) -> None:
        self.process = subprocess.Popen(
            _command(*args), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=_env()
        )
        self.lines: list[str] = []
        self._queue: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self._queue.put(line.rstrip("\n"))
        self._queue.put(None)

    def wait_for(self, text: str, timeout: float) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self._queue.get(timeout=1)
            except queue.Empty:
                continue
            if line is None:
                break
            self.lines.append(line)
            if text in line:
                return line
        raise AssertionError(f"{text!r} not seen; output:\n" + "\n".join(self.lines[-60:]))

    def stop(self, signum: int) -> int:
        self.process.send_signal(signum)
        code = self.process.wait(timeout=60)
        while True:
            try:
                line = self._queue.get(timeout=5)
            except queue.Empty:
                break
            if line is None:
                break
            self.lines.append(line)
        return code

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=30)

    def url(self, label: str) -> str:
        line = next(line for line in self.lines if label in line)
        return next(word for word in line.split() if word.startswith("http://"))


def cards_in(lines: list[str]) -> list[str]:
    """The card ids of the residents table: a 12-digit card id followed by the 14-digit 照合番号B."""
    found = []
    for line in lines:
        match = re.search(r"(?<!\d)(\d{12})\s+\d{14}(?!\d)", line)
        if match:
            found.append(match.group(1))
    return found


@pytest.fixture
def demo_runs() -> Iterator[list[RunningDemo]]:
    runs: list[RunningDemo] = []
    yield runs
    for run in runs:
        run.kill()


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_scripted_run_every_procedure_as_expected(tmp_path: Path, faces_dir: Path) -> None:
    report = tmp_path / "report.json"
    data_dir = tmp_path / "fresh"
    done = subprocess.run(
        _command("--scripted", "--faces", str(faces_dir), "--data-dir", str(data_dir), "--report", str(report)),
        capture_output=True,
        text=True,
        env=_env(),
        timeout=800,
    )
    output = done.stdout + done.stderr
    results = json.loads(report.read_text())
    lines = [line for line in done.stdout.splitlines() if line.startswith(("OK ", "FAILED "))]
    # one line per procedure, in order, then one per check
    assert [r["name"] for r in results["procedures"]] == [name for name, *_ in PROCEDURES]
    for result, line in zip(results["procedures"], lines, strict=False):
        assert result["name"] in line
    failed = [f"{r['name']}: {r['outcome']}" for r in results["procedures"] if not r["ok"]]
    failed += [f"{c['name']}: {c['detail']}" for c in results["checks"] if not c["ok"]]
    assert not failed, "\n".join(failed) + "\n\n" + output[-4000:]
    assert done.returncode == 0, output[-4000:]
    # the refusals were refused, the rest completed
    outcomes = {r["name"]: r["outcome"] for r in results["procedures"]}
    assert outcomes["face mismatch · kiosk (another person)"].startswith("refused")
    assert outcomes["wrong security code · online"].startswith("refused")
    assert sum(o.startswith("completed") for o in outcomes.values()) == len(PROCEDURES) - 2
    assert any(c["name"].startswith("OCSP") and "revoked" in c["detail"] for c in results["checks"])
    assert "ALL OK" in done.stdout


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_demo_serves_the_pages_stops_cleanly_and_reuses_its_data(
    tmp_path: Path, faces_dir: Path, demo_runs: list[RunningDemo]
) -> None:
    data_dir = tmp_path / "demo"
    port = free_port()
    first = RunningDemo("--data-dir", str(data_dir), "--port", str(port), "--faces", str(faces_dir))
    demo_runs.append(first)
    first.wait_for(READY, timeout=400)
    server = f"http://127.0.0.1:{port}"
    with httpx.Client(timeout=30) as http:
        for path in ("/kiosk", "/portal", "/counter", "/api/v1/health"):
            assert http.get(server + path).status_code == 200, path
        for path in ("/admin", "/admin/stats"):  # the admin pages: the sign-in form first
            refused = http.get(server + path)
            assert refused.status_code == 303 and refused.headers["location"].startswith("/login?role=admin"), path
        for label in ("kiosk", "portal", "counter"):
            # the terminal agent's launcher: a fresh one-time browser link, then the terminal's page
            opened = http.get(first.url(label), follow_redirects=True)
            assert opened.status_code == 200 and opened.url.path in ("/kiosk", "/portal", "/counter"), label
        desk = first.url("demo desk")
        page = http.get(desk)
        assert page.status_code == 200 and "デモ" in page.text
        card = cards_in(first.lines)[0]
        moved = http.post(f"{desk}insert", data={"terminal": "kiosk", "card_id": card}, headers={"Origin": desk[:-1]})
        assert moved.status_code == 303
        agent = first.url("kiosk").rstrip("/")
        status = http.get(f"{agent}/v1/status")  # without the page's token the agent says nothing
        assert status.status_code in (401, 403)
        assert card in http.get(desk).text and "in the reader" in http.get(desk).text
        foreign = http.post(f"{desk}remove", data={"terminal": "kiosk"}, headers={"Origin": "http://evil.example"})
        assert foreign.status_code == 403
        assert http.get(f"{desk}outbox").status_code == 200
        ocsp = first.url("OCSP")
        assert ocsp.startswith(server + "/ocsp/")
        crl = http.get(f"{server}/crl/authentication/0.crl")
        assert crl.status_code == 200 and crl.headers["content-type"].startswith("application/pkix-crl")
    cards = cards_in(first.lines)
    assert len(cards) == 10, first.lines
    assert any("DEMO CREDENTIALS" in line for line in first.lines)
    assert first.stop(signal.SIGINT) == 0
    assert any("stopped" in line for line in first.lines[-3:]), first.lines[-10:]

    second = RunningDemo("--data-dir", str(data_dir), "--port", str(port), "--faces", str(faces_dir))
    demo_runs.append(second)
    second.wait_for(READY, timeout=200)
    assert any("0 created, 10 reused" in line for line in second.lines), second.lines
    assert cards_in(second.lines) == cards
    assert httpx.get(f"{server}/kiosk", timeout=30).status_code == 200
    assert second.stop(signal.SIGTERM) == 0


@pytest.mark.parametrize("fresh", [["--fresh"], []], ids=["fresh", "reuse"])
def test_demo_leaves_a_directory_that_is_not_the_demos_alone(tmp_path: Path, faces_dir: Path, fresh: list[str]) -> None:
    precious = tmp_path / "precious"
    precious.mkdir()
    (precious / "jpki.db").write_text("a real deployment's database")
    done = subprocess.run(
        _command(*fresh, "--data-dir", str(precious), "--port", str(free_port()), "--faces", str(faces_dir)),
        capture_output=True,
        text=True,
        env=_env(),
        timeout=120,
    )
    assert done.returncode == 1 and "not a demo data directory" in done.stderr
    assert [p.name for p in precious.iterdir()] == ["jpki.db"]
    assert (precious / "jpki.db").read_text() == "a real deployment's database"


def test_missing_faces_folder_is_a_clear_error(tmp_path: Path) -> None:
    done = subprocess.run(
        _command("--scripted", "--faces", str(tmp_path / "nowhere")),
        capture_output=True,
        text=True,
        env=_env(),
        timeout=120,
    )
    assert done.returncode == 2 and "faces" in done.stderr


def test_scripted_refuses_a_used_data_directory(tmp_path: Path, faces_dir: Path) -> None:
    used = tmp_path / "used"
    used.mkdir()
    (used / "jpki.db").write_bytes(b"")
    done = subprocess.run(
        _command("--scripted", "--data-dir", str(used), "--faces", str(faces_dir)),
        capture_output=True,
        text=True,
        env=_env(),
        timeout=120,
    )
    assert done.returncode == 2 and "fresh" in done.stdout
