"""Personalised cards for the transport and conformance tests, made the way the counter makes them: the card
engineer's factory over the issuer secure channel, keys generated on the card, certificates from the project's CAs
(``jpki_remote.ca``: lint-before-sign, J-LIS-shaped profiles)."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path

from jpki_remote.ca.authority import CertificateAuthority
from jpki_remote.ca.keystore.files import FileKeyStore
from jpki_remote.ca.setup import setup_authorities
from jpki_remote.card.commands import certificates_from
from jpki_remote.card.factory import CardPins, CreatedCard, create_card, test_holder
from jpki_remote.card.store import CardStore
from jpki_remote.card.virtual import KeyGenerator
from jpki_remote.config import Settings
from jpki_remote.store import Database

MASTER_KEY = bytes.fromhex("8C72C72CF908411653018807950D82FBAD947562F0828A0B10B8B9606ABF3BCD")
AUTH_PIN = "1234"
SIGN_PASSWORD = "ABC123"
PINS = CardPins(auth=AUTH_PIN, sign=SIGN_PASSWORD, text="2345", juki="3456")


def running_ca(workdir: Path) -> Iterator[CertificateAuthority]:
    """Both project CAs on a SQLite database and an encrypted key file store under ``workdir``."""
    settings = Settings(data_dir=workdir / "data")
    db = Database(f"sqlite:///{workdir / 'ca.db'}")
    db.create_schema()
    keystore = FileKeyStore(workdir / "keys", "transport tests")
    try:
        setup_authorities(db, keystore, settings)
        ca = CertificateAuthority(db, keystore, settings)
        try:
            yield ca
        finally:
            ca.close()
    finally:
        keystore.close()
        db.dispose()


def issue_card(store: CardStore, ca: CertificateAuthority, photo: bytes, keygen: KeyGenerator | None = None,
               card_id: str | None = None) -> CreatedCard:
    """A new personalised card in ``store`` (it saves itself there)."""
    card_id = card_id or f"t{secrets.token_hex(6)}"
    return create_card(test_holder(photo), issuer_master_key=MASTER_KEY, pins=PINS, store=store, keygen=keygen,
                       card_id=card_id,
                       certificates=certificates_from(ca, card_id, prefecture="Tokyo-to", city="Chiyoda-ku"))
