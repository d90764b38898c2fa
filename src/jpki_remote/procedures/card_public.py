"""Card scripts that use only the card's public commands (SELECT, READ BINARY, VERIFY via the terminal, SIGN).

APDUs follow the real card (``docs``: reference/jpki-card-and-domain.md §1): SELECT AP ``00 A4 04 0C``, SELECT EF
``00 A4 02 0C``, READ BINARY ``00 B0``, VERIFY ``00 20 00 80`` (the key of the selected EF), COMPUTE DIGITAL
SIGNATURE ``80 2A 00 80`` (PKCS#1 v1.5 over the DigestInfo sent) — with P2 ``00`` for the surface AP's card key.
Each script is a pure function of the conversation; see :mod:`jpki_remote.procedures.conversation`.
"""

from __future__ import annotations

import hashlib
from typing import Any

from jpki_remote.procedures.conversation import Conversation

AID_JPKI = bytes.fromhex("D392F000260100000001")
AID_SURFACE = bytes.fromhex("D3921000310001010402")
AID_TEXT = bytes.fromhex("D3921000310001010408")
AID_JUKI = bytes.fromhex("D3921000310001010401")

EF_SIGN_CERT = 0x0001
EF_AUTH_CERT = 0x000A
EF_AUTH_KEY = 0x0017
EF_AUTH_PIN = 0x0018
EF_SIGN_KEY = 0x001A
EF_SIGN_PIN = 0x001B
EF_SURFACE_FACE = 0x0002
EF_SURFACE_CODE_B = 0x0012

SW_OK = 0x9000
VERIFY_HEADER = bytes.fromhex("00200080")
SHA256_DIGEST_INFO_PREFIX = bytes.fromhex("3031300d060960864801650304020105000420")
MAX_FILE = 32768

# PIN kind -> (AP AID, PIN EF, change INS header) for the holder-side commands.
PIN_REFERENCES: dict[str, tuple[bytes, int, bytes]] = {
    "auth_pin": (AID_JPKI, EF_AUTH_PIN, bytes.fromhex("00240180")),
    "sign_password": (AID_JPKI, EF_SIGN_PIN, bytes.fromhex("00240180")),
    "text_pin": (AID_TEXT, 0x0011, bytes.fromhex("00240180")),
    "residence_pin": (AID_JUKI, 0x001C, bytes.fromhex("80320080")),
}


class CardFailure(Exception):
    """The card answered a status word the script cannot continue from."""

    def __init__(self, what: str, sw: int) -> None:
        super().__init__(f"{what}: SW {sw:04X}")
        self.what = what
        self.sw = sw


def sw_of(response: bytes) -> int:
    return int.from_bytes(response[-2:], "big")


def expect_ok(response: bytes, what: str) -> bytes:
    sw = sw_of(response)
    if sw != SW_OK:
        raise CardFailure(what, sw)
    return response[:-2]


def select_ap(conv: Conversation, aid: bytes) -> None:
    expect_ok(conv.transmit(bytes([0x00, 0xA4, 0x04, 0x0C, len(aid)]) + aid), "select AP")


def select_ef(conv: Conversation, fid: int) -> None:
    expect_ok(conv.transmit(bytes([0x00, 0xA4, 0x02, 0x0C, 0x02]) + fid.to_bytes(2, "big")), f"select EF {fid:04X}")


def _read_binary(offset: int, length: int) -> bytes:
    return bytes([0x00, 0xB0, (offset >> 8) & 0x7F, offset & 0xFF, length & 0xFF])


def tlv_total_length(head: bytes) -> int:
    """Length of the BER TLV starting ``head`` (tag incl. multi-byte tags, short or long length)."""
    if len(head) < 2:
        raise ValueError("too short for a TLV")
    index = 1
    if head[0] & 0x1F == 0x1F:
        while head[index] & 0x80:
            index += 1
        index += 1
    first = head[index]
    index += 1
    if first < 0x80:
        return index + first
    count = first & 0x7F
    if not 1 <= count <= 3:
        raise ValueError("unsupported TLV length")
    length = int.from_bytes(head[index : index + count], "big")
    return index + count + length


def read_tlv_ef(conv: Conversation, fid: int) -> bytes:
    """Select EF ``fid`` and read the one TLV object it holds (files carry filler after it)."""
    select_ef(conv, fid)
    head = expect_ok(conv.transmit(_read_binary(0, 0)), f"read EF {fid:04X}")
    try:
        total = tlv_total_length(head)
    except (ValueError, IndexError):
        raise CardFailure(f"EF {fid:04X} holds no TLV object", SW_OK) from None
    if total > MAX_FILE:
        raise CardFailure(f"EF {fid:04X} object too large", SW_OK)
    data = bytearray(head[:total])
    offsets = list(range(len(head), total, 256))
    if offsets:
        responses = conv.transmit_many([_read_binary(o, min(256, total - o)) for o in offsets])
        for response in responses:
            data += expect_ok(response, f"read EF {fid:04X}")
    return bytes(data[:total])


def digest_info(message: bytes) -> bytes:
    return SHA256_DIGEST_INFO_PREFIX + hashlib.sha256(message).digest()


def sign(conv: Conversation, message: bytes, *, p2: int = 0x80) -> bytes:
    info = digest_info(message)
    return expect_ok(conv.transmit(bytes([0x80, 0x2A, 0x00, p2, len(info)]) + info + b"\x00"), "sign")


# ---- scripts ---------------------------------------------------------------------------------------------------


def prove_with_jpki_key(conv: Conversation, params: dict[str, Any]) -> dict[str, Any]:
    """Card possession + PIN knowledge: read the certificate, VERIFY at the terminal, sign the challenge.

    ``params``: ``key`` "auth" or "sign", ``challenge`` (hex). The signature certificate can only be read after the
    sign password, so the order differs per key. Result: certificate, signature, and the VERIFY status word.
    """
    challenge = bytes.fromhex(params["challenge"])
    select_ap(conv, AID_JPKI)
    if params["key"] == "auth":
        certificate = read_tlv_ef(conv, EF_AUTH_CERT)
        select_ef(conv, EF_AUTH_PIN)
        pin_sw = conv.verify_pin("auth_pin", VERIFY_HEADER)
        if pin_sw != SW_OK:
            return {"pin_sw": pin_sw, "certificate": certificate.hex()}
        select_ef(conv, EF_AUTH_KEY)
    else:
        select_ef(conv, EF_SIGN_PIN)
        pin_sw = conv.verify_pin("sign_password", VERIFY_HEADER)
        if pin_sw != SW_OK:
            return {"pin_sw": pin_sw}
        certificate = read_tlv_ef(conv, EF_SIGN_CERT)
        select_ef(conv, EF_SIGN_KEY)
    signature = sign(conv, challenge)
    return {"pin_sw": pin_sw, "certificate": certificate.hex(), "signature": signature.hex()}


def prove_card_key(conv: Conversation, params: dict[str, Any]) -> dict[str, Any]:
    """Card possession without a PIN: the surface AP's card key signs the challenge."""
    select_ap(conv, AID_SURFACE)
    signature = sign(conv, bytes.fromhex(params["challenge"]), p2=0x00)
    return {"signature": signature.hex()}


def read_card_face(conv: Conversation, params: dict[str, Any]) -> dict[str, Any]:
    """The surface AP's card face (EF 0002: birth date, sex, photo, issuer signature …) after 照合番号B."""
    del params
    select_ap(conv, AID_SURFACE)
    select_ef(conv, EF_SURFACE_CODE_B)
    code_sw = conv.verify_pin("code_b", VERIFY_HEADER)
    if code_sw != SW_OK:
        return {"code_sw": code_sw}
    return {"code_sw": code_sw, "card_face": read_tlv_ef(conv, EF_SURFACE_FACE).hex()}


def read_auth_certificate(conv: Conversation, params: dict[str, Any]) -> dict[str, Any]:
    """The auth certificate currently active on the card (public read): tells whether a COMMIT took effect."""
    del params
    select_ap(conv, AID_JPKI)
    return {"certificate": read_tlv_ef(conv, EF_AUTH_CERT).hex()}


def confirm_new_keys(conv: Conversation, params: dict[str, Any]) -> dict[str, Any]:
    """After COMMIT: read the active auth certificate, then the (new) auth key signs a fresh challenge."""
    select_ap(conv, AID_JPKI)
    certificate = read_tlv_ef(conv, EF_AUTH_CERT)
    if certificate.hex() != params["expected_certificate"]:
        return {"certificate": certificate.hex(), "committed": False}
    select_ef(conv, EF_AUTH_PIN)
    pin_sw = conv.verify_pin("auth_pin", VERIFY_HEADER)
    if pin_sw != SW_OK:
        return {"certificate": certificate.hex(), "committed": True, "pin_sw": pin_sw}
    select_ef(conv, EF_AUTH_KEY)
    signature = sign(conv, bytes.fromhex(params["challenge"]))
    return {"certificate": certificate.hex(), "committed": True, "pin_sw": pin_sw, "signature": signature.hex()}


def change_pin(conv: Conversation, params: dict[str, Any]) -> dict[str, Any]:
    """Holder-side PIN change: old and new PIN typed at the terminal, VERIFY + CHANGE built there."""
    kind = params["pin_kind"]
    aid, fid, change_header = PIN_REFERENCES[kind]
    select_ap(conv, aid)
    select_ef(conv, fid)
    verify_sw, change_sw = conv.change_pin(kind, VERIFY_HEADER, change_header)
    return {"verify_sw": verify_sw, "change_sw": change_sw}


SCRIPTS = {
    "prove_with_jpki_key": prove_with_jpki_key,
    "prove_card_key": prove_card_key,
    "read_card_face": read_card_face,
    "read_auth_certificate": read_auth_certificate,
    "confirm_new_keys": confirm_new_keys,
    "change_pin": change_pin,
}
