"""`jpki-remote audit …` end to end: the real CLI in a subprocess against a data directory."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import text

from jpki_remote.audit import AuditEvent, AuditLog
from jpki_remote.audit.signing import load_or_create_signer
from jpki_remote.store import Database


def cli(data_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("JPKI_")}
    env["JPKI_DATA_DIR"] = str(data_dir)
    return subprocess.run(
        [sys.executable, "-m", "jpki_remote", "audit", *args], env=env, capture_output=True, text=True, timeout=120
    )


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    data = tmp_path / "data"
    db = Database(f"sqlite:///{data / 'jpki.db'}")
    db.create_schema()
    log = AuditLog(db, load_or_create_signer(data / "audit" / "signing-key.pem"))
    for i in range(6):
        log.append_batch([AuditEvent(actor="system", event_type="renewal.step", outcome="success",
                                     procedure_id=f"p-{i % 2}", detail={"step": i})])  # fmt: skip
    db.dispose()
    return data


def test_verify_ok_then_tampered(data_dir: Path) -> None:
    ok = cli(data_dir, "verify")
    assert ok.returncode == 0, ok.stderr
    assert "events: 6 (seq 0–5)" in ok.stdout and "result: OK" in ok.stdout
    db = Database(f"sqlite:///{data_dir / 'jpki.db'}")
    with db.engine.begin() as conn:
        conn.execute(text("UPDATE audit_events SET outcome = 'failure' WHERE seq = 2"))
    db.dispose()
    bad = cli(data_dir, "verify")
    assert bad.returncode == 1
    assert "result: FAILED" in bad.stdout and "event 2" in bad.stdout


def test_verify_with_an_exported_public_key(data_dir: Path, tmp_path: Path) -> None:
    exported = cli(data_dir, "public-key")
    assert exported.returncode == 0 and exported.stdout.startswith("-----BEGIN PUBLIC KEY-----")
    (tmp_path / "pub.pem").write_text(exported.stdout)
    assert cli(data_dir, "verify", "--public-key", str(tmp_path / "pub.pem")).returncode == 0
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    stranger = Ed25519PrivateKey.generate().public_key()
    (tmp_path / "other.pem").write_bytes(
        stranger.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    wrong = cli(data_dir, "verify", "--public-key", str(tmp_path / "other.pem"))
    assert wrong.returncode == 1 and "unknown key" in wrong.stdout


def test_show_and_prove(data_dir: Path) -> None:
    shown = cli(data_dir, "show", "--procedure", "p-1", "--json")
    assert shown.returncode == 0
    rows = [json.loads(line) for line in shown.stdout.splitlines()]
    assert [r["seq"] for r in rows] == [1, 3, 5] and rows[0]["detail"] == {"step": 1}
    assert "renewal.step" in cli(data_dir, "show").stdout
    proved = cli(data_dir, "prove", "3", "--json")
    assert proved.returncode == 0, proved.stderr
    proof = json.loads(proved.stdout)
    assert proof["tree_size"] == 6 and proof["signed_head_status"] == "signature valid"
    from jpki_remote.audit import merkle

    merkle.verify_inclusion(3, 6, bytes.fromhex(proof["leaf_hash"]), [bytes.fromhex(h) for h in proof["path"]],
                            bytes.fromhex(proof["signed_head"]["root_hash"]))  # fmt: skip
    missing = cli(data_dir, "prove", "99")
    assert missing.returncode == 1 and "no event 99" in missing.stderr


def test_sign_and_an_empty_data_dir(data_dir: Path, tmp_path: Path) -> None:
    signed = cli(data_dir, "sign")
    assert signed.returncode == 0 and "size 6" in signed.stdout
    empty = cli(tmp_path / "nothing-here", "verify")
    assert empty.returncode == 2 and "no audit log yet" in empty.stderr
