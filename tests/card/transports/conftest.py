"""Fixtures for the transport tests: the private PC/SC stack (pcscd + vpcd) and inserting a card into it."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from jpki_remote.ca.authority import CertificateAuthority
from jpki_remote.card.factory import CreatedCard
from jpki_remote.card.store import CardStore
from jpki_remote.card.transports import ChangeCallback, SupportsCard, VpcdCardServer
from jpki_remote.card.virtual import KeyGenerator

from .cards import issue_card, running_ca
from .pcsc_stack import InsertCard, PcscStack, StackUnavailable, missing_requirements


@pytest.fixture(scope="session")
def pcsc_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PcscStack]:
    """One pcscd with the vpcd reader for the whole session (libpcsclite fixes its socket path per process)."""
    missing = missing_requirements()
    if missing:
        names = ", ".join(missing)
        pytest.skip(f"PC/SC stack unavailable, missing: {names} (scripts/bootstrap test installs them)")
    stack = PcscStack(tmp_path_factory.mktemp("pcsc"))
    try:
        stack.start()
    except StackUnavailable as exc:
        pytest.fail(f"cannot start pcscd + vpcd: {exc}")
    try:
        yield stack
    finally:
        stack.close()


@pytest.fixture
def insert_card(pcsc_stack: PcscStack) -> Iterator[InsertCard]:
    """``with insert_card(card) as server:`` — the card is in reader ``Virtual PCD 00 00`` and pcscd has seen it.

    Leaving the block pulls the card and waits until pcscd has noticed, so the next test starts with an empty reader.
    """
    servers: list[VpcdCardServer] = []

    @contextlib.contextmanager
    def insert(card: SupportsCard, on_change: ChangeCallback | None = None) -> Iterator[VpcdCardServer]:
        server = VpcdCardServer(card, port=pcsc_stack.port, on_change=on_change, retry_interval=0.1)
        servers.append(server)
        server.start()
        try:
            assert server.wait_connected(10), f"vpcd did not accept our card; pcscd log:\n{pcsc_stack.log()[-2000:]}"
            assert pcsc_stack.wait_card(True), "pcscd did not report the inserted card"
            yield server
        finally:
            server.stop()
            assert pcsc_stack.wait_card(False), "pcscd still reports the card after it was pulled"

    yield insert
    for server in servers:
        server.stop()



@pytest.fixture(scope="session")
def project_ca(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CertificateAuthority]:
    """The project's two CAs, set up once per session (their keys take the time)."""
    yield from running_ca(tmp_path_factory.mktemp("ca"))


@pytest.fixture(scope="session")
def face_photo(faces_dir: Path) -> bytes:
    person = sorted(p for p in faces_dir.iterdir() if p.is_dir() and not p.name.startswith("_"))[0]
    return sorted(person.glob("*.jpg"))[0].read_bytes()


@pytest.fixture
def store(tmp_path: Path) -> CardStore:
    return CardStore(tmp_path / "cards")


@pytest.fixture
def make_card(
    store: CardStore, project_ca: CertificateAuthority, face_photo: bytes, pooled_keygen: KeyGenerator
) -> Callable[[], CreatedCard]:
    """``make_card()``: a personalised card in ``store`` with certificates from the project's CAs."""
    return lambda: issue_card(store, project_ca, face_photo, pooled_keygen)


@pytest.fixture
def created(make_card: Callable[[], CreatedCard]) -> CreatedCard:
    return make_card()
