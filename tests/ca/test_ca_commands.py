"""`jpki-remote ca …` end to end: setup, issue from an openssl CSR / public key, revoke, show; errors are one line."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
from cryptography import x509

from jpki_remote.cli import main

pytestmark = pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl not installed")

HOLDER_ARGS = [
    "--holder-ref", "card-cli", "--municipality-code", "13221", "--birth-date", "1990-06-10",
    "--card-expiry", "2035-06-10",
]  # fmt: skip
SIGNATURE_ARGS = [
    "--name", "山田 太郎", "--sex", "male", "--address", "東京都清瀬市中里一丁目2番3号",
    "--prefecture", "Tokyo-to", "--city", "Kiyose-shi",
]  # fmt: skip


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name in list(__import__("os").environ):
        if name.startswith("JPKI_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("JPKI_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("JPKI_KEYSTORE_PASSPHRASE", "cli test passphrase")
    return tmp_path


def _openssl_key(tmp_path: Path, name: str) -> tuple[Path, Path, Path]:
    key, csr, pub = tmp_path / f"{name}.key", tmp_path / f"{name}.csr", tmp_path / f"{name}.pub"
    subprocess.run(
        ["openssl", "req", "-new", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", csr,
         "-subj", "/CN=ignored"],
        check=True, capture_output=True,
    )  # fmt: skip
    subprocess.run(["openssl", "pkey", "-in", key, "-pubout", "-out", pub], check=True, capture_output=True)
    return key, csr, pub


def test_setup_issue_revoke_show(env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["ca", "setup", "--export", str(env / "export")]) == 0
    out = capsys.readouterr().out
    assert "signature CA (created)" in out and "authentication CA (created)" in out
    assert "card-surface key card-surface (created)" in out
    fingerprint = re.search(r"card-surface \(created\)\n  sha256\s+(\S+)", out).group(1)  # type: ignore[union-attr]
    assert main(["ca", "setup"]) == 0
    out = capsys.readouterr().out
    assert "signature CA (exists)" in out and "card-surface key card-surface (exists)" in out
    assert fingerprint in out

    _, csr, _ = _openssl_key(env, "auth")
    auth_pem = env / "auth.pem"
    assert main(["ca", "issue", "--kind", "authentication", "--csr", str(csr), "--out", str(auth_pem),
                 "--request-id", "cli-1", *HOLDER_ARGS]) == 0  # fmt: skip
    err = capsys.readouterr().err
    serial = re.search(r"serial ([0-9a-f]+)", err).group(1)  # type: ignore[union-attr]
    cert = x509.load_pem_x509_certificate(auth_pem.read_bytes())
    assert format(cert.serial_number, "x") == serial
    assert "ignored" not in cert.subject.rfc4514_string()  # the CA decides the subject, not the CSR
    verify = subprocess.run(["openssl", "verify", "-CAfile", env / "export" / "authentication-ca.pem", auth_pem],
                            capture_output=True, text=True)  # fmt: skip
    assert verify.returncode == 0, verify.stdout + verify.stderr

    # the same request id again: the same certificate
    assert main(["ca", "issue", "--kind", "authentication", "--csr", str(csr), "--request-id", "cli-1",
                 *HOLDER_ARGS]) == 0  # fmt: skip
    assert capsys.readouterr().out.encode() == auth_pem.read_bytes()

    _, _, pub = _openssl_key(env, "sig")
    assert main(["ca", "issue", "--kind", "signature", "--public-key", str(pub), *HOLDER_ARGS,
                 *SIGNATURE_ARGS]) == 0  # fmt: skip
    sig_pem = capsys.readouterr().out
    text = subprocess.run(["openssl", "x509", "-noout", "-text"], input=sig_pem, capture_output=True, text=True)
    assert "othername: 1.2.392.200149.8.5.5.1::山田 太郎" in text.stdout

    colon_serial = ":".join(re.findall("..", serial.zfill(len(serial) + len(serial) % 2)))
    assert main(["ca", "revoke", "authentication", colon_serial, "--reason", "keyCompromise"]) == 0
    assert "revoked (keyCompromise)" in capsys.readouterr().out
    assert main(["ca", "show", "--kind", "authentication", "--serial", serial]) == 0
    shown = capsys.readouterr().out
    assert "revoked (keyCompromise)" in shown and "card-cli" in shown
    assert main(["ca", "show"]) == 0
    shown = capsys.readouterr().out
    assert "authentication CA" in shown and "revoked 1" in shown and "issued 1" in shown
    assert "card-surface key card-surface: RSA-2048" in shown and fingerprint in shown


def test_errors_are_one_clear_line(env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _, csr, pub = _openssl_key(env, "k")
    assert main(["ca", "issue", "--kind", "authentication", "--csr", str(csr), *HOLDER_ARGS]) == 1
    assert "ca setup" in capsys.readouterr().err
    assert main(["ca", "setup"]) == 0
    capsys.readouterr()

    child = [a if a != "1990-06-10" else "2015-01-01" for a in HOLDER_ARGS]
    assert main(["ca", "issue", "--kind", "signature", "--public-key", str(pub), *child, *SIGNATURE_ARGS]) == 1
    assert "15" in capsys.readouterr().err

    tampered = env / "tampered.csr"
    der = subprocess.run(["openssl", "req", "-in", csr, "-outform", "DER"], capture_output=True, check=True).stdout
    tampered.write_bytes(der[:-5] + bytes(b ^ 0xFF for b in der[-5:]))  # break the signature
    assert main(["ca", "issue", "--kind", "authentication", "--csr", str(tampered), *HOLDER_ARGS]) == 1
    assert "error:" in capsys.readouterr().err

    garbage = env / "garbage.pem"
    garbage.write_bytes(b"-----BEGIN PUBLIC KEY-----\nnot base64\n-----END PUBLIC KEY-----\n")
    assert main(["ca", "issue", "--kind", "authentication", "--public-key", str(garbage), *HOLDER_ARGS]) == 1
    assert "error:" in capsys.readouterr().err

    assert main(["ca", "revoke", "signature", "zz", "--reason", "superseded"]) == 1
    assert "not a serial number" in capsys.readouterr().err
    assert main(["ca", "revoke", "signature", "abc", "--reason", "superseded"]) == 1
    assert "no signature certificate" in capsys.readouterr().err
    assert main(["ca", "issue", "--kind", "authentication", "--public-key", str(pub), *HOLDER_ARGS[:-2],
                 "--card-expiry", "tomorrow"]) == 1  # fmt: skip
    assert "YYYY-MM-DD" in capsys.readouterr().err


def test_setup_renews_the_ocsp_signers_on_request_and_re_signs_their_responses(
    env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["ca", "setup", "--export", str(env / "before")]) == 0
    _, _, pub = _openssl_key(env, "auth")
    assert main(["ca", "issue", "--kind", "authentication", "--public-key", str(pub), *HOLDER_ARGS]) == 0
    capsys.readouterr()

    assert main(["ca", "setup", "--renew-ocsp", "--export", str(env / "after")]) == 0
    out = capsys.readouterr().out
    assert "authentication CA (exists, OCSP responder certificate renewed; OCSP responses of 1 certificate(s)" in out
    assert "signature CA (exists, OCSP responder certificate renewed; OCSP responses of 0 certificate(s)" in out
    for kind in ("signature", "authentication"):
        old = x509.load_pem_x509_certificate((env / "before" / f"{kind}-ocsp.pem").read_bytes())
        new = x509.load_pem_x509_certificate((env / "after" / f"{kind}-ocsp.pem").read_bytes())
        assert new.serial_number != old.serial_number and new.public_key() == old.public_key()

    assert main(["ca", "setup", "--new-ocsp-key", "--no-ocsp-refresh", "--export", str(env / "replaced")]) == 0
    out = capsys.readouterr().out
    assert out.count("renewed; its precomputed OCSP responses are due (background refresher)") == 2
    replaced = x509.load_pem_x509_certificate((env / "replaced" / "authentication-ocsp.pem").read_bytes())
    assert replaced.public_key() != new.public_key()
    assert main(["ca", "setup"]) == 0
    assert "renewed" not in capsys.readouterr().out
