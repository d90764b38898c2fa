"""Fixtures of the status tests: the real CA (set up in the parametrized database), a status service subscribed
to its status-change hook, the fast server on a loopback port, and helpers that write PEM files for openssl."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from status_helpers import StatusEnv

from jpki_remote.ca.authority import CertificateAuthority
from jpki_remote.ca.holder import HolderIdentity
from jpki_remote.ca.keystore.files import FileKeyStore
from jpki_remote.ca.status.server import ServerThread
from jpki_remote.ca.status.service import StatusService
from jpki_remote.config import Settings
from jpki_remote.store import Database


@pytest.fixture
def status_settings(tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path / "data", public_base_url="http://127.0.0.1:8080", crl_shards=4)


@pytest.fixture
def status_env(
    database: Database,
    shared_keystore: FileKeyStore,
    status_settings: Settings,
    holder: HolderIdentity,
    holder_keys: list[rsa.RSAPrivateKey],
    tmp_path: Path,
) -> Iterator[StatusEnv]:
    """Both authorities set up in SQLite / PostgreSQL; OCSP responses precomputed on every issue and revoke."""
    from jpki_remote.ca.setup import setup_authorities

    setup_authorities(database, shared_keystore, status_settings)
    ca = CertificateAuthority(database, shared_keystore, status_settings)
    service = StatusService(status_settings, database, shared_keystore, cache_ttl=0.5)
    service.subscribe()
    directory = tmp_path / "pem"
    directory.mkdir()
    yield StatusEnv(ca, service, status_settings, holder, holder_keys, directory)
    service.close()
    ca.close()


@pytest.fixture
def status_server(status_env: StatusEnv) -> Iterator[str]:
    """The fast server on a free loopback port; yields its base URL."""
    server = ServerThread(status_env.service, "127.0.0.1", 0).start()
    yield f"http://127.0.0.1:{server.port}"
    server.stop()
