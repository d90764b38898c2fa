"""PC/SC fixtures any test package can use: ``from card.transports.fixtures import insert_card, pcsc_stack``
(pytest registers fixtures imported into a test module or conftest). Every importer shares one pcscd per process."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import pytest

from jpki_remote.card.transports import ChangeCallback, SupportsCard, VpcdCardServer

from .pcsc_stack import (
    InsertCard,
    PcscStack,
    StackUnavailable,
    acquire_shared_stack,
    missing_requirements,
    release_shared_stack,
)


@pytest.fixture(scope="session")
def pcsc_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PcscStack]:
    """pcscd with the vpcd reader, shared by the whole process (libpcsclite fixes its socket path per process)."""
    missing = missing_requirements()
    if missing:
        names = ", ".join(missing)
        pytest.skip(f"PC/SC stack unavailable, missing: {names} (scripts/bootstrap test installs them)")
    try:
        stack = acquire_shared_stack(lambda: tmp_path_factory.mktemp("pcsc"))
    except StackUnavailable as exc:
        pytest.fail(f"cannot start pcscd + vpcd: {exc}")
    try:
        yield stack
    finally:
        release_shared_stack()


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
