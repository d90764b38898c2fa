"""`jpki-remote card …`: new (project CAs), list, show (no secrets), apdu (in-process and via PC/SC), insert (vpcd,
clean Ctrl-C), readers; clear errors for unknown ids and bad hex."""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from jpki_remote.card import layout
from jpki_remote.card.store import CardStore
from jpki_remote.cli import main

from .transports.fixtures import insert_card, pcsc_stack
from .transports.pcsc_stack import PcscStack

__all__ = ["insert_card", "pcsc_stack"]  # shared PC/SC fixtures

SELECT_JPKI = "00A4040C0A" + layout.AID_JPKI.hex().upper()
REPO = Path(__file__).resolve().parents[2]


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A data directory with the project's CAs set up (``jpki-remote ca setup``) and one card ``alice``."""
    directory = tmp_path_factory.mktemp("data")
    old = os.environ.get("JPKI_DATA_DIR")
    os.environ["JPKI_DATA_DIR"] = str(directory)
    try:
        assert main(["ca", "setup"]) == 0
        yield directory
    finally:
        if old is None:
            os.environ.pop("JPKI_DATA_DIR", None)
        else:
            os.environ["JPKI_DATA_DIR"] = old


@pytest.fixture(scope="module")
def photo(faces_dir: Path) -> Path:
    person = sorted(p for p in faces_dir.iterdir() if p.is_dir() and not p.name.startswith("_"))[0]
    return sorted(person.glob("*.jpg"))[0]


@pytest.fixture(scope="module")
def alice(data_dir: Path, photo: Path) -> str:
    code = main(["card", "new", "--id", "alice", "--photo", str(photo), "--auth-pin", "1234",
                 "--sign-password", "ABC123", "--text-pin", "2345", "--juki-pin", "3456"])
    assert code == 0
    return "alice"


def test_new_list_show(capsys: pytest.CaptureFixture[str], data_dir: Path, photo: Path, alice: str) -> None:
    code, out, _ = run(capsys, "card", "new", "--id", "bob", "--photo", str(photo), "--json")
    assert code == 0
    made = json.loads(out)
    assert made["card_id"] == "bob"
    generated = made["generated_pins"]
    assert set(generated) == {"auth PIN", "sign password", "text PIN", "residence PIN"}

    code, out, _ = run(capsys, "card", "list")
    assert code == 0 and "alice" in out and "bob" in out and "personalised" in out

    code, out, _ = run(capsys, "card", "show", "bob", "--json")
    view = json.loads(out)
    assert {c["name"] for c in view["certificates"]} == {"auth certificate", "auth CA certificate",
                                                         "sign certificate", "sign CA certificate"}
    auth = next(c for c in view["certificates"] if c["name"] == "auth certificate")
    assert "JPKI for user authentication" in auth["issuer"] and auth["serial"] and not auth["expired"]
    pins = {(p["applet"], p["name"]): (p["tries_left"], p["blocked"]) for p in view["pins"]}
    assert pins[("jpki", "auth PIN")] == (3, False) and pins[("jpki", "sign password")] == (5, False)

    code, text, _ = run(capsys, "card", "show", "bob")
    assert code == 0 and "subject" in text and "3/3 tries left" in text
    card_file = json.loads((data_dir / "cards" / "bob.card").read_text())
    # No PIN value in any output, nor in clear in the card file. A 4-digit PIN may equal an EF id or part of a
    # serial ("0005 My Number image"), so the check is on whole values, and on the PIN lines of the text output.
    pin_lines = [line for line in text.splitlines() if "PIN" in line or "password" in line]
    assert len(pin_lines) >= 4
    for secret in generated.values():
        assert secret not in _string_values(view) and secret not in _string_values(card_file)
        assert all(secret not in line.split() for line in pin_lines)
    assert "PRIVATE KEY" not in out + text


def _string_values(document: object) -> set[str]:
    """Every string value (not key) in a JSON document."""
    if isinstance(document, str):
        return {document}
    if isinstance(document, dict):
        return set().union(*(_string_values(v) for v in document.values()))
    if isinstance(document, list):
        return set().union(*(_string_values(v) for v in document))
    return set()


def test_new_refuses_bad_input_and_leaves_nothing(
    capsys: pytest.CaptureFixture[str], data_dir: Path, photo: Path, alice: str, tmp_path: Path
) -> None:
    code, _, err = run(capsys, "card", "new", "--id", "alice", "--photo", str(photo))
    assert code == 1 and "already exists" in err
    code, _, err = run(capsys, "card", "new", "--id", "carol", "--photo", str(photo), "--auth-pin", "12a4")
    assert code == 2 and "--auth-pin must be 4 digits" in err
    not_a_photo = tmp_path / "x.jpg"
    not_a_photo.write_bytes(b"not an image")
    code, _, err = run(capsys, "card", "new", "--id", "carol", "--photo", str(not_a_photo))
    assert code == 2 and "photo" in err
    assert not CardStore(data_dir / "cards").exists("carol")


def test_new_without_ca_setup(capsys: pytest.CaptureFixture[str], photo: Path, tmp_path: Path,
                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JPKI_DATA_DIR", str(tmp_path))
    code, _, err = run(capsys, "card", "new", "--id", "dave", "--photo", str(photo))
    assert code == 1 and "ca setup" in err
    assert CardStore(tmp_path / "cards").ids() == []


def test_new_delivered_card_for_the_counter(capsys: pytest.CaptureFixture[str], photo: Path, tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JPKI_DATA_DIR", str(tmp_path))  # no CA set up: a delivered card needs none
    code, _, err = run(capsys, "card", "new", "--delivered", "--id", "counter1", "--photo", str(photo),
                       "--auth-pin", "1234")
    assert code == 2 and "no holder PINs" in err and not CardStore(tmp_path / "cards").exists("counter1")
    code, out, _ = run(capsys, "card", "new", "--delivered", "--id", "counter1", "--photo", str(photo), "--json")
    assert code == 0
    facts = json.loads(out)
    state = CardStore(tmp_path / "cards").load("counter1")
    assert facts["diversification_data"] == state.kdd.hex() and facts["card_id"] == "counter1"
    assert "jpki" not in state.keys and state.pin("jpki", layout.JPKI_AUTH_PIN) is None
    # made with the server's issuer master key (<data_dir>/issuer-keys), so counter issuance can open a session
    from jpki_remote.card.issuer import IssuerSession
    from jpki_remote.issuer_keys import FileIssuerKeys

    master = FileIssuerKeys(tmp_path / "issuer-keys").master_key(0)
    with IssuerSession(CardStore(tmp_path / "cards").open("counter1"), master) as issuer:
        assert issuer.status().lifecycle == "personalised"


def test_under_15_gets_no_signature_certificate(capsys: pytest.CaptureFixture[str], data_dir: Path,
                                                 photo: Path) -> None:
    code, out, _ = run(capsys, "card", "new", "--id", "kid", "--photo", str(photo), "--birth-date", "2016-04-01")
    assert code == 0 and "no signature certificate" in out
    code, out, _ = run(capsys, "card", "show", "kid", "--json")
    names = {c["name"] for c in json.loads(out)["certificates"]}
    assert "auth certificate" in names and "sign certificate" not in names


def test_unknown_ids(capsys: pytest.CaptureFixture[str], data_dir: Path, alice: str) -> None:
    code, _, err = run(capsys, "card", "show", "nobody")
    assert code == 1 and "unknown card 'nobody'" in err and "alice" in err
    code, _, err = run(capsys, "card", "apdu", "nobody", "00A40400")
    assert code == 1 and "unknown card" in err
    code, _, err = run(capsys, "card", "show", "../etc/passwd")
    assert code == 2 and "invalid card id" in err


def test_apdu_in_process(capsys: pytest.CaptureFixture[str], data_dir: Path, alice: str) -> None:
    code, out, _ = run(capsys, "card", "apdu", "alice", SELECT_JPKI, "00 20 00 98", "00:20:00:98:04:30:30:30:30",
                       "00B08A0004")
    assert code == 0
    lines = out.splitlines()
    assert lines[0] == "ATR 3BE000FF8131FE4514"
    assert "< 9000  OK" in lines
    assert any(line.startswith("< 63C3") for line in lines)
    assert any(line.startswith("< 63C2  2 tries left") for line in lines)
    assert any(line.startswith("< 3082") and line.endswith("9000  OK") for line in lines)
    code, out, _ = run(capsys, "card", "show", "alice", "--json")
    pins = {(p["applet"], p["name"]): p["tries_left"] for p in json.loads(out)["pins"]}
    assert pins[("jpki", "auth PIN")] == 2  # the wrong PIN was saved

    # Bad hex: nothing is sent at all (the counter does not move).
    code, out, err = run(capsys, "card", "apdu", "alice", SELECT_JPKI, "00200098043030303", "zz")
    assert code == 2 and "odd number of hex digits" in err and out == ""
    code, _, err = run(capsys, "card", "apdu", "alice", "00A4 04GG")
    assert code == 2 and "not hexadecimal" in err
    code, _, err = run(capsys, "card", "apdu", "alice")
    assert code == 2
    # A malformed APDU is the card's to answer: a status word, no traceback.
    code, out, _ = run(capsys, "card", "apdu", "alice", "00", "FFFFFFFF")
    answers = [line for line in out.splitlines() if line.startswith("< ")]
    assert code == 0 and len(answers) == 2 and not any("9000" in line for line in answers)


class Output:
    """Collects a subprocess's stdout lines in a thread, so a test can wait for one without blocking forever."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        self.lines: queue.Queue[str] = queue.Queue()
        self.seen: list[str] = []
        assert process.stdout is not None
        stream = process.stdout
        threading.Thread(target=lambda: [self.lines.put(line) for line in stream], daemon=True).start()

    def wait_for(self, text: str, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=0.1)
            except queue.Empty:
                continue
            self.seen.append(line)
            if text in line:
                return True
        return False


@pytest.mark.pcsc
def test_insert_serves_the_card_until_interrupted(
    capsys: pytest.CaptureFixture[str], data_dir: Path, alice: str, pcsc_stack: PcscStack
) -> None:
    env = {**os.environ, "JPKI_DATA_DIR": str(data_dir), "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen(
        [sys.executable, "-m", "jpki_remote", "card", "insert", "alice", "--port", str(pcsc_stack.port)],
        env=env, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    output = Output(process)
    try:
        assert output.wait_for("in the reader", 30), output.seen
        assert pcsc_stack.wait_card(True, timeout=20), "the inserted card never appeared in pcscd"
        code, _, err = run(capsys, "card", "apdu", "alice", SELECT_JPKI)
        assert code == 1 and "in use" in err  # one reader at a time

        code, out, _ = run(capsys, "card", "apdu", "--reader", "Virtual PCD 00 00", SELECT_JPKI, "00200098")
        assert code == 0 and "reader Virtual PCD 00 00" in out and "< 9000  OK" in out
        code, out, _ = run(capsys, "card", "readers")
        assert code == 0 and "Virtual PCD 00 00" in out and "3BE000FF8131FE4514" in out

        process.send_signal(signal.SIGINT)
        assert output.wait_for("removed (2 commands answered)", 15), output.seen
        process.wait(15)
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(5)
    assert process.stderr is not None
    stderr = process.stderr.read()
    assert process.returncode == 0, stderr
    assert "Traceback" not in stderr
    assert pcsc_stack.wait_card(False)
    code, _, _ = run(capsys, "card", "apdu", "alice", SELECT_JPKI)  # the lock is released
    assert code == 0


@pytest.mark.pcsc
def test_apdu_to_an_empty_reader(capsys: pytest.CaptureFixture[str], pcsc_stack: PcscStack) -> None:
    code, _, err = run(capsys, "card", "apdu", "--reader", "Virtual PCD 00 01", "00A40400")
    assert code == 1 and "no usable card" in err
    code, _, err = run(capsys, "card", "apdu", "--reader", "no such reader", "00A40400")
    assert code == 1 and "no PC/SC reader name contains" in err


def test_insert_stops_cleanly_on_sigterm_while_waiting_for_vpcd(data_dir: Path, alice: str) -> None:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {**os.environ, "JPKI_DATA_DIR": str(data_dir), "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen(
        [sys.executable, "-m", "jpki_remote", "card", "insert", "alice", "--port", str(port)],
        env=env, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    output = Output(process)
    try:
        assert output.wait_for("inserting into vpcd", 30), output.seen
        time.sleep(0.5)  # it is now retrying to reach vpcd
        process.send_signal(signal.SIGTERM)
        assert output.wait_for("removed (0 commands answered)", 15), output.seen
        process.wait(15)
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(5)
    assert process.returncode == 0
    assert not any("in the reader" in line for line in output.seen)


def test_no_pcsc_service(tmp_path: Path) -> None:
    """Without pcscd the PC/SC commands say so (a subprocess: libpcsclite reads its socket path once per process)."""
    env = {**os.environ, "PCSCLITE_CSOCK_NAME": str(tmp_path / "no-pcscd.comm")}
    for argv in (["card", "readers"], ["card", "apdu", "--reader", "ACS", "00A4040C"]):
        result = subprocess.run([sys.executable, "-m", "jpki_remote", *argv], env=env, cwd=REPO, capture_output=True,
                                text=True, timeout=60)
        assert result.returncode == 1
        assert "the PC/SC service (pcscd) is not running" in result.stderr
        assert "Traceback" not in result.stderr
