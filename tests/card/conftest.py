"""Card-test fixtures: a small pool of RSA keys generated once per session (key generation is the slow part)."""

from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import Callable, Iterator

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from jpki_remote.card import layout
from jpki_remote.card.manufacture import manufacture
from jpki_remote.card.signing import generate_key, private_to_der
from jpki_remote.card.state import CardState, PinRecord

MASTER_KEY = bytes.fromhex("8C72C72CF908411653018807950D82FBAD947562F0828A0B10B8B9606ABF3BCD")
AUTH_PIN = b"1234"
SIGN_PASSWORD = b"ABC123"
TEXT_PIN = b"2345"
JUKI_PIN = b"3456"
COMMON_PIN = b"3456"

POOL_SIZE = 6


@pytest.fixture(scope="session")
def key_pool() -> list[rsa.RSAPrivateKey]:
    """A few RSA-2048 keys, generated once for the whole test session."""
    return [generate_key() for _ in range(POOL_SIZE)]


@pytest.fixture
def pooled_keygen(key_pool: list[rsa.RSAPrivateKey]) -> Callable[[], rsa.RSAPrivateKey]:
    """A key generator handing out the pooled keys in turn (distinct for up to POOL_SIZE calls)."""
    cycle: Iterator[rsa.RSAPrivateKey] = itertools.cycle(key_pool)
    return lambda: next(cycle)


def self_signed(key: rsa.RSAPrivateKey, cn: str) -> bytes:
    name = x509.Name([x509.NameAttribute(NameOID.COUNTRY_NAME, "JP"), x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=365))
        .sign(key, hashes.SHA256())
    )
    from cryptography.hazmat.primitives.serialization import Encoding

    return cert.public_bytes(Encoding.DER)


def directly_personalised_state(keygen: Callable[[], rsa.RSAPrivateKey]) -> CardState:
    """A card state written directly (no issuer protocol): for tests of the public commands only."""
    state = manufacture(MASTER_KEY, keygen=keygen)
    auth, sign = keygen(), keygen()
    state.keys["jpki"] = {layout.JPKI_AUTH_KEY: private_to_der(auth), layout.JPKI_SIGN_KEY: private_to_der(sign)}
    state.set_file("jpki", layout.JPKI_AUTH_CERT, self_signed(auth, "auth"))
    state.set_file("jpki", layout.JPKI_SIGN_CERT, self_signed(sign, "sign"))
    state.set_file("jpki", layout.JPKI_AUTH_CA_CERT, self_signed(auth, "auth CA"))
    state.set_file("jpki", layout.JPKI_SIGN_CA_CERT, self_signed(sign, "sign CA"))
    state.set_file("jpki", layout.JPKI_CERT_AVAILABILITY, b"\x8f\x8f\x00")
    state.pins["jpki"] = {layout.JPKI_AUTH_PIN: PinRecord(AUTH_PIN, 3, 3),
                          layout.JPKI_SIGN_PIN: PinRecord(SIGN_PASSWORD, 5, 5)}
    state.pins["text"][layout.TEXT_PIN] = PinRecord(TEXT_PIN, 3, 3)
    state.pins["juki"] = {layout.JUKI_PIN: PinRecord(JUKI_PIN, 3, 3)}
    state.pins["common"] = {layout.COMMON_PIN: PinRecord(COMMON_PIN, 3, 3)}
    state.records["common"] = {layout.COMMON_CARD_INFO: [b"\x01\x1c" + state.serial.encode() + b"1322120351231"]}
    return state


FACE = "biden/1.jpg"


@pytest.fixture(scope="session")
def face_photo() -> bytes:
    from tests.conftest import shared_dir

    return (shared_dir() / "data" / "faces" / FACE).read_bytes()


@pytest.fixture(scope="session")
def made_card_template(key_pool: list[rsa.RSAPrivateKey], face_photo: bytes, tmp_path_factory: pytest.TempPathFactory):
    """One fully personalised card (through the issuer channel), persisted; tests copy its directory."""
    from jpki_remote.card.factory import CardPins, create_card, test_holder
    from jpki_remote.card.store import CardStore

    directory = tmp_path_factory.mktemp("card-template")
    cycle = itertools.cycle(key_pool)
    made = create_card(test_holder(face_photo), issuer_master_key=MASTER_KEY,
                       pins=CardPins(auth="1234", sign="ABC123", text="2345", juki="3456", common="4567"),
                       store=CardStore(directory), keygen=lambda: next(cycle))
    return directory, made


@pytest.fixture
def made(made_card_template, tmp_path, pooled_keygen):
    """A fresh copy of the personalised card, opened from its own store directory."""
    import dataclasses
    import shutil

    from jpki_remote.card.store import CardStore

    directory, template = made_card_template
    target = tmp_path / "cards"
    shutil.copytree(directory, target)
    store = CardStore(target)
    card = store.open(template.card_id, keygen=pooled_keygen)
    return dataclasses.replace(template, card=card), store
