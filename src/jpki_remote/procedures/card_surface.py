"""Card script of issuance at the counter: the card face signed with the card centre's key (``sign_surface``).

The counter terminal opens the surface AP with 照合番号B (typed by staff or the holder from the card), the script
reads the delivered card face (EF 0002), checks it against the registry (birth date, sex, card expiry) and against
the card itself (DF24 must be the surface AP key the card holds, read over issuer secure messaging), then stores it
back with DF28 signed by the card centre's key from the CA key store. Nothing is signed that does not match; the
signature is deterministic, so re-running the script over its transcript sends the same bytes.
"""

from __future__ import annotations

from typing import Any

from cryptography.hazmat.primitives import serialization

from jpki_remote.card import layout
from jpki_remote.card.client import parse_card_face
from jpki_remote.procedures.card_issuer import ReplayableIssuerSession, issuer_key_material
from jpki_remote.procedures.card_public import (
    AID_SURFACE,
    EF_SURFACE_CODE_B,
    EF_SURFACE_FACE,
    SW_OK,
    VERIFY_HEADER,
    read_tlv_ef,
    select_ap,
    select_ef,
)
from jpki_remote.procedures.conversation import Conversation
from jpki_remote.procedures.surface import resign_card_face


def _spki(key: Any) -> bytes:
    return key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def sign_surface(conv: Conversation, params: dict[str, Any]) -> dict[str, Any]:
    select_ap(conv, AID_SURFACE)
    select_ef(conv, EF_SURFACE_CODE_B)
    code_sw = conv.verify_pin("code_b", VERIFY_HEADER)
    if code_sw != SW_OK:
        return {"code_sw": code_sw}
    raw = read_tlv_ef(conv, EF_SURFACE_FACE)
    face = parse_card_face(raw)
    mismatch = [
        name
        for name, ok in (
            ("birth_date", face.birth_date.isoformat() == params["birth_date"]),
            ("sex", face.sex == str(params["sex"])),
            ("card_expiry", face.expiry.isoformat() == params["card_expiry"]),
        )
        if not ok
    ]
    with ReplayableIssuerSession(
        conv,
        issuer_key_material(params),
        key_version=int(params.get("key_version", 0)),
        expected_kdd=bytes.fromhex(params["kdd"]),
    ) as issuer:
        card_key = issuer.read_public_key("surface", layout.SURFACE_AP_KEY)
        if _spki(card_key) != _spki(face.public_key):
            mismatch.append("card_key")
        if params.get("card_key") and _spki(card_key).hex() != params["card_key"]:
            mismatch.append("registered_card_key")
        if mismatch:
            return {"code_sw": code_sw, "mismatch": mismatch}
        issuer.store_file("surface", layout.SURFACE_CARD_FACE, resign_card_face(raw, params["_surface_signer"]))
    return {"code_sw": code_sw, "signed": True}


SCRIPTS = {"sign_surface": sign_surface}
