"""Fixtures of the CA tests: key stores (file and SoftHSM2) and settings."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from jpki_remote.ca.keystore.files import FileKeyStore
from jpki_remote.ca.keystore.softhsm import SoftHsmToken, create_softhsm_token, softhsm_available
from jpki_remote.config import Settings


@pytest.fixture
def softhsm(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> SoftHsmToken:
    """A SoftHSM2 token of this test only; SOFTHSM2_CONF points at its own directory under tmp_path."""
    if not softhsm_available():
        pytest.skip("SoftHSM2 is not installed")
    token = create_softhsm_token(tmp_path / "hsm")
    monkeypatch.setenv("SOFTHSM2_CONF", str(token.conf))
    return token


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path / "data", public_base_url="http://127.0.0.1:8080", crl_shards=16)


@pytest.fixture
def file_keystore(tmp_path: Path) -> Iterator[FileKeyStore]:
    store = FileKeyStore(tmp_path / "keys", "test passphrase")
    yield store
    store.close()
