"""Fixtures for the transport tests: the private PC/SC stack (pcscd + vpcd), inserting a card into it, and cards
personalised with certificates from the project's CAs."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from jpki_remote.ca.authority import CertificateAuthority
from jpki_remote.card.factory import CreatedCard
from jpki_remote.card.store import CardStore
from jpki_remote.card.virtual import KeyGenerator

from .cards import issue_card, running_ca
from .fixtures import insert_card, pcsc_stack

__all__ = ["insert_card", "pcsc_stack"]  # fixtures shared with other test packages via .fixtures


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
