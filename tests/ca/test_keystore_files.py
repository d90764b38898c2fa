"""The encrypted key-file store: PKCS#8 encryption, passphrase file, no overwrite, signatures verify."""

from __future__ import annotations

import stat
import threading
from pathlib import Path

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding

from jpki_remote.ca.keystore import KeyNotFoundError, KeyStoreError, open_keystore
from jpki_remote.ca.keystore.files import FileKeyStore
from jpki_remote.config import Settings


def test_generate_sign_and_reload(tmp_path: Path) -> None:
    store = FileKeyStore(tmp_path / "keys", "correct horse")
    key = store.generate_rsa("ca-signature")
    signature = key.sign_sha256_rsa(b"tbs bytes")
    key.public_key().verify(signature, b"tbs bytes", padding.PKCS1v15(), hashes.SHA256())
    with pytest.raises(InvalidSignature):
        key.public_key().verify(signature, b"other bytes", padding.PKCS1v15(), hashes.SHA256())
    assert key.public_key().key_size == 2048

    reopened = FileKeyStore(tmp_path / "keys", "correct horse").get("ca-signature")
    assert reopened.public_key().public_numbers() == key.public_key().public_numbers()
    assert store.labels() == ["ca-signature"]


def test_key_file_is_encrypted_and_private(tmp_path: Path) -> None:
    store = FileKeyStore(tmp_path / "keys", "correct horse")
    store.generate_rsa("k1")
    path = tmp_path / "keys" / "k1.key.pem"
    text = path.read_text()
    assert "BEGIN ENCRYPTED PRIVATE KEY" in text
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "keys").stat().st_mode) == 0o700


def test_wrong_passphrase_is_a_clear_error(tmp_path: Path) -> None:
    FileKeyStore(tmp_path / "keys", "right").generate_rsa("k1")
    with pytest.raises(KeyStoreError, match="wrong passphrase"):
        FileKeyStore(tmp_path / "keys", "wrong").get("k1")


def test_never_overwrites_a_key(tmp_path: Path) -> None:
    store = FileKeyStore(tmp_path / "keys", "p")
    first = store.generate_rsa("k1")
    before = (tmp_path / "keys" / "k1.key.pem").read_bytes()
    with pytest.raises(KeyStoreError, match="never overwritten"):
        FileKeyStore(tmp_path / "keys", "p").generate_rsa("k1")
    assert (tmp_path / "keys" / "k1.key.pem").read_bytes() == before
    assert store.get("k1").public_key().public_numbers() == first.public_key().public_numbers()


def test_concurrent_generation_creates_exactly_one_key(tmp_path: Path) -> None:
    results: list[str] = []

    def generate() -> None:
        try:
            FileKeyStore(tmp_path / "keys", "p").generate_rsa("race")
            results.append("created")
        except KeyStoreError:
            results.append("refused")

    threads = [threading.Thread(target=generate) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results) == ["created", "refused", "refused"]
    assert [p.name for p in (tmp_path / "keys").iterdir() if not p.name.startswith(".")] == ["race.key.pem"]


def test_generated_passphrase_is_kept_0600(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)
    store = open_keystore(settings)
    store.generate_rsa("k1")
    passphrase_file = tmp_path / "keys" / ".passphrase"
    assert stat.S_IMODE(passphrase_file.stat().st_mode) == 0o600
    assert len(passphrase_file.read_text().strip()) >= 40
    assert open_keystore(settings).get("k1").public_key().key_size == 2048


def test_group_readable_passphrase_file_is_refused(tmp_path: Path) -> None:
    open_keystore(Settings(data_dir=tmp_path))
    (tmp_path / "keys" / ".passphrase").chmod(0o644)
    with pytest.raises(KeyStoreError, match="chmod 600"):
        open_keystore(Settings(data_dir=tmp_path))


def test_missing_key_and_bad_label(tmp_path: Path) -> None:
    store = FileKeyStore(tmp_path / "keys", "p")
    with pytest.raises(KeyNotFoundError):
        store.get("absent")
    for label in ("../escape", "", "a/b", ".hidden"):
        with pytest.raises(KeyStoreError, match="invalid key label"):
            store.generate_rsa(label)


def test_unknown_keystore_kind(tmp_path: Path) -> None:
    with pytest.raises(KeyStoreError, match="unknown key store"):
        open_keystore(Settings(data_dir=tmp_path, keystore="vault"))
