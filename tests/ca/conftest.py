"""Fixtures of the CA tests: key stores (file and SoftHSM2) and settings."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from jpki_remote.ca.authority import CertificateAuthority
from jpki_remote.ca.holder import HolderIdentity, Sex
from jpki_remote.ca.keystore.files import FileKeyStore
from jpki_remote.ca.keystore.softhsm import SoftHsmToken, create_softhsm_token, softhsm_available
from jpki_remote.ca.setup import setup_authorities
from jpki_remote.config import Settings
from jpki_remote.store import Database


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


@pytest.fixture(scope="session")
def shared_keystore(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FileKeyStore]:
    """One file key store for the whole session: CA keys are generated once and reused by every test's setup."""
    store = FileKeyStore(tmp_path_factory.mktemp("ca-keys"), "shared test passphrase")
    yield store
    store.close()


@pytest.fixture(scope="session")
def holder_keys() -> list[rsa.RSAPrivateKey]:
    """Card key pairs (RSA-2048, e=65537) standing in for keys generated on the card."""
    return [rsa.generate_private_key(public_exponent=65537, key_size=2048) for _ in range(4)]


@pytest.fixture
def holder() -> HolderIdentity:
    return HolderIdentity(
        holder_ref="card-0001",
        municipality_code="13221",
        birth_date=date(1990, 6, 10),
        name="山田 太郎",
        name_substitute="山田 太郎",
        sex=Sex.MALE,
        address="東京都清瀬市中里一丁目2番3号",
        address_substitute="東京都清瀬市中里1-2-3",
        prefecture="Tokyo-to",
        city="Kiyose-shi",
    )


@pytest.fixture
def authority(database: Database, shared_keystore: FileKeyStore, settings: Settings) -> Iterator[CertificateAuthority]:
    """Both authorities set up in the parametrized database (SQLite and PostgreSQL)."""
    setup_authorities(database, shared_keystore, settings)
    ca = CertificateAuthority(database, shared_keystore, settings)
    yield ca
    ca.close()


@pytest.fixture
def sqlite_authority(
    sqlite_database: Database, shared_keystore: FileKeyStore, settings: Settings
) -> Iterator[CertificateAuthority]:
    setup_authorities(sqlite_database, shared_keystore, settings)
    ca = CertificateAuthority(sqlite_database, shared_keystore, settings)
    yield ca
    ca.close()
