"""Signed + encrypted municipality<->CA messages (CMS), checked also with openssl cms."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization

from jpki_remote.registry.messaging import MessagingError, MessagingKeyring, open_sealed, seal


@pytest.fixture(scope="module")
def parties(tmp_path_factory: pytest.TempPathFactory):
    ring = MessagingKeyring(tmp_path_factory.mktemp("keys"))
    return ring.get_or_create("municipality:131032", "港区"), ring.get_or_create("jlis", "J-LIS"), ring


def test_round_trip_and_wrong_parties(parties) -> None:
    town, jlis, _ = parties
    message = seal('{"申請": 1}'.encode(), town, jlis.certificate)
    assert b"\xe7\x94\xb3" not in message  # the payload is not readable in the envelope
    assert open_sealed(message, jlis, town.certificate) == '{"申請": 1}'.encode()
    with pytest.raises(MessagingError, match="someone other"):
        open_sealed(message, jlis, jlis.certificate)
    with pytest.raises(MessagingError, match="decrypt"):
        open_sealed(message, town, town.certificate)
    for garbage in (b"", b"\x30\x03\x02\x01\x01", message[:-7], bytes(200)):
        with pytest.raises(MessagingError):
            open_sealed(garbage, jlis, town.certificate)


def test_a_forged_signer_is_refused(parties) -> None:
    town, jlis, ring = parties
    impostor = ring.get_or_create("municipality:999990", "偽")
    message = seal(b"payload", impostor, jlis.certificate)
    with pytest.raises(MessagingError):
        open_sealed(message, jlis, town.certificate)


def test_keyring_persists_keys(tmp_path: Path) -> None:
    first = MessagingKeyring(tmp_path).get_or_create("jlis")
    second = MessagingKeyring(tmp_path).get_or_create("jlis")
    assert first.certificate_der == second.certificate_der
    key_file = next(tmp_path.glob("*.key.pem"))
    assert key_file.stat().st_mode & 0o077 == 0
    assert b"ENCRYPTED" in key_file.read_bytes()


@pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl not installed")
def test_openssl_can_decrypt_and_verify(parties, tmp_path: Path) -> None:
    town, jlis, _ = parties
    message = seal(b'{"kind":"issuance_request"}', town, jlis.certificate)
    (tmp_path / "msg.der").write_bytes(message)
    (tmp_path / "jlis.key").write_bytes(
        jlis.private_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    (tmp_path / "jlis.crt").write_bytes(jlis.certificate.public_bytes(serialization.Encoding.PEM))
    (tmp_path / "town.crt").write_bytes(town.certificate.public_bytes(serialization.Encoding.PEM))
    subprocess.run(
        [
            "openssl",
            "cms",
            "-decrypt",
            "-inform",
            "DER",
            "-in",
            "msg.der",
            "-recip",
            "jlis.crt",
            "-inkey",
            "jlis.key",
            "-binary",
            "-out",
            "signed.der",
        ],
        cwd=tmp_path,
        check=True,
        capture_output=True,
    )
    result = subprocess.run(
        [
            "openssl",
            "cms",
            "-verify",
            "-inform",
            "DER",
            "-in",
            "signed.der",
            "-CAfile",
            "town.crt",
            "-binary",
            "-purpose",
            "any",
        ],
        cwd=tmp_path,
        check=True,
        capture_output=True,
    )
    assert result.stdout == b'{"kind":"issuance_request"}'
