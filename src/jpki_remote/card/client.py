"""`CardClient`: a small typed client for the card's public commands, over any ``transmit(bytes) -> bytes``.

Works the same against :class:`~jpki_remote.card.virtual.VirtualCard`, a real card through PC/SC, or a relay through
the terminal. Every refusal becomes a :class:`CardError` subclass carrying the status word.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Callable
from dataclasses import dataclass

from cryptography.hazmat.primitives.asymmetric import rsa

from jpki_remote.card import layout
from jpki_remote.card.apdu import SW, CommandApdu, ResponseApdu
from jpki_remote.card.signing import parse_card_public_key, sha256_digest_info
from jpki_remote.card.tlv import TlvError, iterate, parse_header, parse_one

Transmit = Callable[[bytes], bytes]
MAX_SHORT_READ = 256


class CardError(Exception):
    """The card refused a command; ``sw`` is its status word."""

    def __init__(self, sw: int, message: str = "") -> None:
        self.sw = int(sw)
        super().__init__(f"{message + ': ' if message else ''}card answered {self.sw:04X}")


class PinIncorrectError(CardError):
    """Wrong PIN; ``tries_left`` attempts remain (0: this attempt blocked it)."""

    def __init__(self, sw: int, message: str = "") -> None:
        super().__init__(sw, message)
        self.tries_left = sw & 0x0F


class PinBlockedError(CardError):
    """The key reference is blocked (6984): only the issuer can reset it."""


class SecurityStatusError(CardError):
    """6982: the PIN / verification code this needs has not been verified."""


class CardFileNotFoundError(CardError):
    """6A82: no such application or file."""


class ProtocolError(CardError):
    """The card's answer does not make sense (not a status word, malformed data)."""


def raise_for_sw(resp: ResponseApdu, what: str = "") -> ResponseApdu:
    """Return ``resp`` when it is 9000, else raise the matching :class:`CardError`."""
    sw = resp.sw
    if sw == SW.OK:
        return resp
    if sw & 0xFFF0 == 0x63C0:
        raise PinIncorrectError(sw, what)
    if sw == SW.REFERENCE_DATA_BLOCKED:
        raise PinBlockedError(sw, what)
    if sw == SW.SECURITY_STATUS_NOT_SATISFIED:
        raise SecurityStatusError(sw, what)
    if sw == SW.FILE_NOT_FOUND:
        raise CardFileNotFoundError(sw, what)
    raise CardError(sw, what)


def _as_transmit(target: Transmit | object) -> Transmit:
    fn = getattr(target, "transmit", None)
    if callable(fn):
        return fn  # type: ignore[return-value]
    if callable(target):
        return target  # type: ignore[return-value]
    raise TypeError("need a transmit(bytes) -> bytes callable or an object with .transmit")


def send(transmit: Transmit, cmd: CommandApdu) -> ResponseApdu:
    """Send a command; follows 61xx (GET RESPONSE) and 6Cxx (resend with the right Le) like any ISO reader."""
    raw = transmit(cmd.to_bytes())
    try:
        resp = ResponseApdu.from_bytes(raw)
    except ValueError as exc:
        raise ProtocolError(0, f"malformed response {raw.hex()}") from exc
    if resp.sw1 == 0x6C and cmd.ne is not None:
        return send(transmit, CommandApdu(cmd.cla, cmd.ins, cmd.p1, cmd.p2, cmd.data, resp.sw2 or 256))
    data = resp.data
    while resp.sw1 == 0x61:
        raw = transmit(CommandApdu(0x00, 0xC0, 0x00, 0x00, b"", resp.sw2 or 256).to_bytes())
        try:
            resp = ResponseApdu.from_bytes(raw)
        except ValueError as exc:
            raise ProtocolError(0, "malformed GET RESPONSE answer") from exc
        data += resp.data
    return ResponseApdu(data, resp.sw)


@dataclass(frozen=True)
class CardFace:
    """Surface AP EF 0002 (券面事項確認AP), parsed. ``signed_digest_info`` is what the issuer signature covers."""

    birth_date: dt.date
    sex: str
    public_key: rsa.RSAPublicKey
    name_image: bytes  # PNG
    address_image: bytes  # PNG
    photo: bytes  # JPEG 2000 (JP2), greyscale
    signature: bytes
    expiry: dt.date
    security_code_image: bytes  # PNG
    signed_digest_info: bytes
    raw: bytes


def parse_card_face(raw: bytes) -> CardFace:
    """Parse EF 0002 of the surface AP; raises :class:`ProtocolError` when malformed."""
    try:
        outer = parse_one(raw)
        if outer.tag != 0xFF20:
            raise ProtocolError(0, f"card face tag {outer.tag:X}")
        _tag, _length, header = parse_header(raw)
        fields = {obj.tag: obj for obj in iterate(raw, header, header + len(outer.value))}
        for tag in range(0xDF21, 0xDF2B):
            if tag not in fields:
                raise ProtocolError(0, f"card face lacks {tag:X}")
        groups = ((0xDF22, 0xDF23, 0xDF24), (0xDF25, 0xDF26), (0xDF27,))
        digests = b"".join(hashlib.sha256(b"".join(fields[t].raw for t in g)).digest() for g in groups)
        return CardFace(
            birth_date=_date(fields[0xDF22].value),
            sex=fields[0xDF23].value.decode("ascii"),
            public_key=parse_card_public_key(fields[0xDF24].value),
            name_image=fields[0xDF25].value,
            address_image=fields[0xDF26].value,
            photo=fields[0xDF27].value,
            signature=fields[0xDF28].value,
            expiry=_date(fields[0xDF29].value),
            security_code_image=fields[0xDF2A].value,
            signed_digest_info=multi_digest_info(digests),
            raw=bytes(raw[: len(outer.raw)]),
        )
    except (TlvError, ValueError, UnicodeDecodeError) as exc:
        raise ProtocolError(0, f"malformed card face: {exc}") from exc


def multi_digest_info(digests: bytes) -> bytes:
    """SHA-256 DigestInfo carrying several concatenated digests (how the card face signature is formed)."""
    prefix = bytes.fromhex("300d06096086480165030402010500")
    inner = prefix + bytes((0x04, len(digests))) + digests
    return bytes((0x30, len(inner))) + inner if len(inner) < 0x80 else bytes((0x30, 0x81, len(inner))) + inner


def _date(value: bytes) -> dt.date:
    text = value.decode("ascii")
    return dt.date(int(text[:4]), int(text[4:6]), int(text[6:8]))


class CardClient:
    """Typed access to the public commands. ``target`` is a transmit callable or anything with ``.transmit``."""

    def __init__(self, target: Transmit | object) -> None:
        self._transmit = _as_transmit(target)

    # ---- basics ---------------------------------------------------------------------------------------------
    def send(self, cmd: CommandApdu) -> ResponseApdu:
        return send(self._transmit, cmd)

    def call(self, cmd: CommandApdu, what: str = "") -> bytes:
        return raise_for_sw(self.send(cmd), what).data

    def select_ap(self, applet: str | bytes) -> None:
        """Select an application by name (``jpki``, ``surface``, ``text``, ``juki``, ``common``) or AID."""
        aid = layout.BY_NAME[applet].aid if isinstance(applet, str) else bytes(applet)
        self.call(CommandApdu(0x00, 0xA4, 0x04, 0x0C, aid), f"SELECT {applet!r}")

    def select_ef(self, fid: int) -> None:
        self.call(CommandApdu(0x00, 0xA4, 0x02, 0x0C, fid.to_bytes(2, "big")), f"SELECT EF {fid:04X}")

    def read_binary(self, offset: int, length: int) -> bytes:
        """Up to ``length`` bytes from ``offset`` of the selected EF (several READ BINARY, stops at end of file)."""
        out = b""
        while len(out) < length:
            pos = offset + len(out)
            if pos > 0x7FFF:
                break
            want = min(MAX_SHORT_READ, length - len(out))
            resp = self.send(CommandApdu(0x00, 0xB0, pos >> 8, pos & 0xFF, b"", want))
            if resp.sw == SW.WRONG_P1P2_OFFSET:
                break
            chunk = raise_for_sw(resp, "READ BINARY").data
            if not chunk:
                break
            out += chunk
            if len(chunk) < want:
                break
        return out

    def read_physical(self) -> bytes:
        """The whole selected EF, filler included."""
        return self.read_binary(0, 0x8000)

    def read_ef(self, fid: int | None = None, *, tlv: bool = True) -> bytes:
        """The data object in an EF: the BER-TLV header decides the length and filler is dropped (an EF holding
        only filler gives ``b""``). ``tlv=False`` reads the whole EF as stored (token info, availability)."""
        if fid is not None:
            self.select_ef(fid)
        if not tlv:
            return self.read_physical()
        head = self.read_binary(0, MAX_SHORT_READ)
        if not head or head[:2] in (b"\xff\xff", b"\x00\x00", b"\xff", b"\x00"):
            return b""  # filler only
        try:
            _tag, length, header = parse_header(head)
        except TlvError as exc:
            raise ProtocolError(0, f"EF {fid or 0:04X} does not start with a TLV header") from exc
        total = header + length
        if total <= len(head):
            return head[:total]
        rest = self.read_binary(len(head), total - len(head))
        if len(head) + len(rest) < total:
            raise ProtocolError(0, f"EF {fid or 0:04X} shorter than its TLV header says")
        return head + rest

    def read_record(self, number: int, fid: int | None = None) -> bytes:
        p2 = ((fid << 3) | 0x04) if fid is not None else 0x04
        return self.call(CommandApdu(0x00, 0xB2, number, p2, b"", 256), "READ RECORD")

    # ---- PINs -----------------------------------------------------------------------------------------------
    def pin_tries(self, fid: int) -> int:
        """Attempts left on key reference ``fid`` of the selected AP, without spending one (0 = blocked)."""
        resp = self.send(CommandApdu(0x00, 0x20, 0x00, 0x80 | fid))
        if resp.sw & 0xFFF0 == 0x63C0:
            return resp.sw & 0x0F
        if resp.sw == SW.REFERENCE_DATA_BLOCKED:
            return 0
        raise_for_sw(resp, "VERIFY (retry query)")
        raise ProtocolError(resp.sw, "no retry counter reported")

    def verify(self, fid: int, pin: str | bytes) -> None:
        """VERIFY; raises :class:`PinIncorrectError` (``.tries_left``) or :class:`PinBlockedError`."""
        value = pin.encode("ascii") if isinstance(pin, str) else bytes(pin)
        self.select_ef(fid)
        self.call(CommandApdu(0x00, 0x20, 0x00, 0x80, value), f"VERIFY {fid:04X}")

    def change_pin(self, fid: int, old: str | bytes, new: str | bytes, *, applet: str = "jpki") -> None:
        """VERIFY ``old`` then CHANGE (``00 24 01 80`` for JPKI/text, ``80 32 00 80`` for 住基/共通)."""
        self.verify(fid, old)
        cla, ins, p1 = layout.BY_NAME[applet].change_ins or (0x00, 0x24, 0x01)
        value = new.encode("ascii") if isinstance(new, str) else bytes(new)
        self.call(CommandApdu(cla, ins, p1, 0x80, value), f"CHANGE PIN {fid:04X}")

    # ---- signatures -----------------------------------------------------------------------------------------
    def sign(self, key_fid: int | None, data: bytes, *, scheme: int = 0x00) -> bytes:
        """COMPUTE DIGITAL SIGNATURE with key ``key_fid`` (None: the AP's own key, P2 = 00)."""
        p2 = 0x00 if key_fid is None else 0x80 | key_fid
        return self.call(CommandApdu(0x80, 0x2A, scheme, p2, bytes(data), 256), "COMPUTE DIGITAL SIGNATURE")

    # ---- JPKI AP convenience --------------------------------------------------------------------------------
    def read_auth_certificate(self) -> bytes:
        self.select_ap("jpki")
        return self.read_ef(layout.JPKI_AUTH_CERT)

    def read_sign_certificate(self, sign_password: str) -> bytes:
        self.select_ap("jpki")
        self.verify(layout.JPKI_SIGN_PIN, sign_password)
        return self.read_ef(layout.JPKI_SIGN_CERT)

    def jpki_pin_tries(self) -> dict[str, int]:
        self.select_ap("jpki")
        return {"auth": self.pin_tries(layout.JPKI_AUTH_PIN), "sign": self.pin_tries(layout.JPKI_SIGN_PIN)}

    def sign_with_auth_key(self, auth_pin: str, digest_info: bytes) -> bytes:
        """Verify the auth PIN and sign a DER DigestInfo with the auth key (PKCS#1 v1.5)."""
        self.select_ap("jpki")
        self.verify(layout.JPKI_AUTH_PIN, auth_pin)
        return self.sign(layout.JPKI_AUTH_KEY, digest_info)

    def sign_with_sign_key(self, sign_password: str, digest_info: bytes) -> bytes:
        self.select_ap("jpki")
        self.verify(layout.JPKI_SIGN_PIN, sign_password)
        return self.sign(layout.JPKI_SIGN_KEY, digest_info)

    # ---- surface AP -----------------------------------------------------------------------------------------
    def read_card_face(self, verification_code_b: str) -> CardFace:
        """Open the surface AP with 照合番号B and read the card face (photo, name/address images, signature)."""
        self.select_ap("surface")
        self.verify(layout.SURFACE_CODE_B, verification_code_b)
        return parse_card_face(self.read_ef(layout.SURFACE_CARD_FACE))

    def prove_presence(self, challenge: bytes) -> bytes:
        """Have the surface AP key sign SHA-256(challenge) (``80 2A 00 00``, no PIN): proves the card is here."""
        self.select_ap("surface")
        return self.sign(None, sha256_digest_info(hashlib.sha256(challenge).digest()))

