"""Personalised cards for the transport and conformance tests, with certificates from :class:`TestCa`."""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from jpki_remote.card import layout
from jpki_remote.card.issuer import IssuerSession
from jpki_remote.card.manufacture import manufacture
from jpki_remote.card.store import CardStore
from jpki_remote.card.virtual import KeyGenerator

from .testca import TestCa

MASTER_KEY = bytes.fromhex("8C72C72CF908411653018807950D82FBAD947562F0828A0B10B8B9606ABF3BCD")
AUTH_PIN = "1234"
SIGN_PASSWORD = "ABC123"


@dataclass(frozen=True)
class IssuedCard:
    card_id: str
    auth_certificate: bytes
    sign_certificate: bytes


def personalised_card(
    store: CardStore, ca: TestCa, card_id: str | None = None, *, keygen: KeyGenerator | None = None
) -> IssuedCard:
    """A new card in ``store``: keys generated on the card, certificates from ``ca``, PINs set, over the issuer
    protocol (secure messaging) as the real issuance does."""
    card_id = card_id or f"t{secrets.token_hex(6)}"
    card = store.add(manufacture(MASTER_KEY, card_id=card_id, keygen=keygen), keygen=keygen)
    with IssuerSession(card, MASTER_KEY) as issuer:
        auth_key = issuer.generate_key("jpki", layout.JPKI_AUTH_KEY)
        sign_key = issuer.generate_key("jpki", layout.JPKI_SIGN_KEY)
        auth_der = ca.issue_auth(auth_key, f"{card_id.upper()}AUTH")
        sign_der = ca.issue_sign(sign_key, f"{card_id.upper()}SIGN")
        issuer.put_certificate(layout.JPKI_AUTH_KEY, auth_der)
        issuer.put_certificate(layout.JPKI_SIGN_KEY, sign_der)
        issuer.store_file("jpki", layout.JPKI_AUTH_CA_CERT, ca.auth.der)
        issuer.store_file("jpki", layout.JPKI_SIGN_CA_CERT, ca.sign.der)
        issuer.commit()
        issuer.reset_holder_pin("auth", AUTH_PIN)
        issuer.reset_holder_pin("sign", SIGN_PASSWORD)
        issuer.set_personalised()
    card.reset()
    return IssuedCard(card_id, auth_der, sign_der)
