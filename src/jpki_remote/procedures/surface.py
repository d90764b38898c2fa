"""The card-surface signature (券面事項確認AP EF 0002, DF28): the card centre signs the card face, the server checks it.

The signature covers SHA-256 of (DF22–DF24), (DF25–DF26) and (DF27) — birth date, sex, the surface AP's card key,
name and address images, photo — as one DigestInfo, RSASSA-PKCS1-v1_5 without further hashing (the real card's
format, :func:`jpki_remote.card.personalise.card_face_record`). The server verifies it with the card centre's public
key *before* comparing the photo (a card face copied from another card, or a photo swapped on a cloned card, fails).

The card centre's key lives in the CA key store under :data:`SURFACE_KEY_LABEL` (file store or HSM). :func:`surface_key`
fetches it and creates it on first use, idempotently (several processes may race; the store never overwrites a key).
Issuance at the counter re-signs the delivered card's face with it (:func:`resign_card_face`, written over issuer secure
messaging); :func:`sign_card_surface` does the same in-process for cards produced outside a procedure (test and demo
card factories).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from jpki_remote.ca.setup import CARD_SURFACE_KEY_LABEL
from jpki_remote.card.client import CardFace, parse_card_face
from jpki_remote.card.tlv import parse_header

SURFACE_KEY_LABEL = CARD_SURFACE_KEY_LABEL  # created by `ca setup`, or here on first use
SIGNATURE_TAG = 0xDF28


class SurfaceSignatureError(ValueError):
    """The card face cannot be (re-)signed: malformed, or a signature of another size."""


@dataclass(frozen=True)
class SurfaceSigner:
    """The card centre's signing key, as a handle of the CA key store (the private key never leaves the store)."""

    key: Any  # jpki_remote.ca.keystore.CaKey

    def public_key(self) -> rsa.RSAPublicKey:
        return self.key.public_key()

    def sign_digest_info(self, payload: bytes) -> bytes:
        """RSASSA-PKCS1-v1_5 over ``payload`` as given (a DigestInfo; no hashing added), inside the key store."""
        return bytes(self.key.sign_pkcs1_v15_raw(payload))


def surface_key(keystore: Any, label: str = SURFACE_KEY_LABEL) -> SurfaceSigner:
    """The card centre's key from ``keystore``, created (RSA-2048) when it does not exist yet."""
    from jpki_remote.ca.keystore import KeyNotFoundError, KeyStoreError

    try:
        return SurfaceSigner(keystore.get(label))
    except KeyNotFoundError:
        pass
    try:
        return SurfaceSigner(keystore.generate_rsa(label, 2048))
    except KeyStoreError:  # another process created it between our get and generate
        return SurfaceSigner(keystore.get(label))


def verify_card_face(face: CardFace, public_key: rsa.RSAPublicKey) -> bool:
    """Whether DF28 is the card centre's signature over the signed part of this card face."""
    try:
        recovered = public_key.recover_data_from_signature(face.signature, padding.PKCS1v15(), None)
    except (InvalidSignature, ValueError):
        return False
    return recovered == face.signed_digest_info


def resign_card_face(raw: bytes, signer: SurfaceSigner) -> bytes:
    """``raw`` (EF 0002) with DF28 replaced by ``signer``'s signature over its signed part; every other byte kept."""
    try:
        face = parse_card_face(raw)
    except Exception as exc:  # ProtocolError: malformed
        raise SurfaceSignatureError(f"malformed card face: {exc}") from None
    signature = signer.sign_digest_info(face.signed_digest_info)
    if len(signature) != len(face.signature):
        raise SurfaceSignatureError("the new signature has another size than the card's (its offsets would move)")
    data = bytearray(face.raw)
    position = _value_offset(face.raw, SIGNATURE_TAG)
    data[position : position + len(signature)] = signature
    return bytes(data)


def _value_offset(raw: bytes, tag: int) -> int:
    """Offset of the value of the (only) ``tag`` element inside the FF20 record."""
    _outer, length, offset = parse_header(raw)
    end = offset + length
    while offset < end:
        element_tag, element_length, header = parse_header(raw, offset)
        if element_tag == tag:
            return offset + header
        offset += header + element_length
    raise SurfaceSignatureError(f"no {tag:X} in the card face")


def sign_card_surface(transmit: Any, master_key: bytes, verification_code_b: str, signer: SurfaceSigner) -> None:
    """Card-centre step for a card made outside a procedure: read its face (after 照合番号B) and store it back signed
    with ``signer`` over issuer secure messaging."""
    from jpki_remote.card import layout
    from jpki_remote.card.client import CardClient
    from jpki_remote.card.issuer import IssuerSession

    raw = CardClient(transmit).read_card_face(verification_code_b).raw
    signed = resign_card_face(raw, signer)
    with IssuerSession(transmit, master_key) as issuer:
        issuer.store_file("surface", layout.SURFACE_CARD_FACE, signed)
