"""Personalisation data: the holder record, and the exact EF contents of the surface, text and common APs built from it.

Layouts follow the reference (`jpki-card-and-domain.md` §1.5–1.7, from a physical card). The issuer-signed records
(card face, age record, My Number image, text integrity record, signed AP key) are signed with ``surface_signer``: the
card issuer's data-signing key, certified by the CV certificate in EF 0004 of each AP.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import re
import secrets
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric import rsa
from PIL import Image, ImageDraw, ImageFont, ImageOps, UnidentifiedImageError

from jpki_remote.card.client import multi_digest_info
from jpki_remote.card.signing import card_public_key, raw_pkcs1_sign, sha256_digest_info
from jpki_remote.card.tlv import encode_length, tlv

FONT_PATH = Path("/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc")
PHOTO_MIN_HEIGHT = 300
PHOTO_MAX_HEIGHT = 480
PHOTO_COMPRESSION_RATIO = 8  # JPEG 2000 rate: ~10–20 KB for a 360×480 greyscale face, like the card's photo
SURFACE_ISSUER_KEY_ID = b"6000023\x08\x05001\x00\x00\x00\x00"  # test hierarchy (production ids start with 5)
TEXT_ISSUER_KEY_ID = b"6000033\x08\x05001\x00\x00\x00\x00"

_ERAS = ((dt.date(2019, 5, 1), 2019), (dt.date(1989, 1, 8), 1989), (dt.date(1926, 12, 25), 1926),
         (dt.date(1912, 7, 30), 1912), (dt.date(1868, 1, 25), 1868))


class HolderDataError(ValueError):
    """A holder record that cannot be put on a card (bad digits, unreadable photo, …)."""


@dataclass(frozen=True)
class HolderRecord:
    """What the municipality puts on a card. ``name``: family and given name separated by U+3000."""

    name: str
    address: str
    birth_date: dt.date
    sex: str  # JIS X 0303: "1" male, "2" female, "9" not applicable, "0" unknown
    my_number: str  # 12 digits (照合番号A)
    municipality_code: str  # 5-digit 全国地方公共団体コード
    card_expiry: dt.date
    security_code: str  # 4 digits printed on the card face
    photo: bytes  # any image Pillow reads; stored as greyscale JPEG 2000
    name_kana: str | None = None

    def validate(self) -> None:
        checks = {
            "my_number": (self.my_number, r"[0-9]{12}"),
            "municipality_code": (self.municipality_code, r"[0-9]{5}"),
            "security_code": (self.security_code, r"[0-9]{4}"),
            "sex": (self.sex, r"[0129]"),
        }
        for name, (value, pattern) in checks.items():
            if not re.fullmatch(pattern, value):
                raise HolderDataError(f"{name} must match {pattern}")
        if not self.name.strip() or not self.address.strip():
            raise HolderDataError("name and address are required")
        japanese_era(self.birth_date)


# ---- codes derived from the card face -------------------------------------------------------------------------
def japanese_era(date: dt.date) -> tuple[int, int]:
    """(first Gregorian year of the era, era year) for ``date``; raises before Meiji or beyond two digits."""
    for start, first_year in _ERAS:
        if date >= start:
            year = date.year - first_year + 1
            if year > 99:
                break
            return first_year, year
    raise HolderDataError(f"{date} has no two-digit Japanese era year")


def birth_date_key(birth_date: dt.date) -> str:
    """The surface AP 生年月日 key: six digits, Japanese-era YYMMDD."""
    _, year = japanese_era(birth_date)
    return f"{year:02d}{birth_date.month:02d}{birth_date.day:02d}"


def verification_code_b(birth_date: dt.date, card_expiry: dt.date | int, security_code: str) -> str:
    """照合番号B: era YYMMDD of the birth date + expiry year (Gregorian, 4 digits) + 4-digit security code.

    Example from a real card: 1980-02-17, expiry 2035, code 2285 -> ``55021720352285``.
    """
    if not re.fullmatch(r"[0-9]{4}", security_code):
        raise HolderDataError("the security code is 4 digits")
    year = card_expiry if isinstance(card_expiry, int) else card_expiry.year
    return f"{birth_date_key(birth_date)}{year:04d}{security_code}"


# ---- images ---------------------------------------------------------------------------------------------------
@lru_cache(maxsize=8)
def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    try:
        return ImageFont.truetype(str(FONT_PATH), size)
    except OSError:  # font missing: still produce an image (bootstrap installs fonts-noto-cjk)
        return ImageFont.load_default()


def render_text_png(text: str, width: int, height: int, *, font_size: int | None = None) -> bytes:
    """Render ``text`` (lines split on newlines, wrapped to ``width``) as a 1-bit PNG like the card's images."""
    size = font_size or max(8, min(28, height - 4))
    font = _font(size)
    img = Image.new("1", (width, height), 1)
    draw = ImageDraw.Draw(img)
    lines: list[str] = []
    for paragraph in text.split("\n"):
        line = ""
        for ch in paragraph:
            if draw.textlength(line + ch, font=font) > width - 4 and line:
                lines.append(line)
                line = ch
            else:
                line += ch
        lines.append(line)
    y = 1
    for line in lines:
        draw.text((2, y), line, fill=0, font=font)
        y += size + 2
    out = io.BytesIO()
    img.save(out, "PNG", optimize=True)
    return out.getvalue()


def encode_card_photo(image_bytes: bytes) -> bytes:
    """A face photo as the card stores it: greyscale JPEG 2000 (JP2), 300–480 px tall, aspect kept."""
    try:
        with Image.open(io.BytesIO(image_bytes)) as src:
            src.load()
            img = ImageOps.exif_transpose(src).convert("L")
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as exc:
        raise HolderDataError(f"unreadable photo: {exc}") from exc
    w, h = img.size
    if w < 16 or h < 16:
        raise HolderDataError("photo too small")
    target_h = min(max(h, PHOTO_MIN_HEIGHT), PHOTO_MAX_HEIGHT)
    if target_h != h:
        img = img.resize((max(1, round(w * target_h / h)), target_h), Image.Resampling.LANCZOS)
    out = io.BytesIO()
    img.save(out, "JPEG2000", quality_mode="rates", quality_layers=[PHOTO_COMPRESSION_RATIO], irreversible=True)
    return out.getvalue()


# ---- record builders ------------------------------------------------------------------------------------------
def _ymd(date: dt.date) -> bytes:
    return date.strftime("%Y%m%d").encode("ascii")


def _sign_sha256(signer: rsa.RSAPrivateKey, data: bytes) -> bytes:
    return raw_pkcs1_sign(signer, sha256_digest_info(hashlib.sha256(data).digest()))


def _with_offsets(outer_tag: int, table_tag: int, fields: list[bytes]) -> bytes:
    """``outer { table(offsets of each field from the start of the file), fields… }`` as the card writes it."""
    table_len = len(tlv(table_tag, bytes(2 * len(fields))))
    body_len = table_len + sum(len(f) for f in fields)
    header_len = 2 + len(encode_length(body_len))
    offsets = b""
    pos = header_len + table_len
    for f in fields:
        if pos > 0xFFFF:
            raise HolderDataError("record too large for its 16-bit offset table")
        offsets += pos.to_bytes(2, "big")
        pos += len(f)
    return tlv(outer_tag, tlv(table_tag, offsets) + b"".join(fields))


def cv_certificate(issuer_key_id: bytes, subject_key_id: bytes, subject: rsa.RSAPublicKey,
                   signer: rsa.RSAPrivateKey) -> bytes:
    """Card-verifiable certificate (tag 7F21): 5F4E body (two key ids + 90/91 key) and 5F37 signature."""
    body = issuer_key_id + subject_key_id + card_public_key(subject)
    return tlv(0x7F21, tlv(0x5F4E, body) + tlv(0x5F37, _sign_sha256(signer, body)))


def card_face_record(holder: HolderRecord, card_key: rsa.RSAPublicKey, signer: rsa.RSAPrivateKey) -> bytes:
    """Surface AP EF 0002. The signature covers SHA-256 of (DF22–DF24), (DF25–DF26), (DF27) in one DigestInfo."""
    signed = [
        tlv(0xDF22, _ymd(holder.birth_date)),
        tlv(0xDF23, holder.sex.encode("ascii")),
        tlv(0xDF24, card_public_key(card_key)),
        tlv(0xDF25, render_text_png(holder.name, 512, 48)),
        tlv(0xDF26, render_text_png(holder.address, 512, 96, font_size=24)),
        tlv(0xDF27, encode_card_photo(holder.photo)),
    ]
    groups = (signed[0:3], signed[3:5], signed[5:6])
    digests = b"".join(hashlib.sha256(b"".join(g)).digest() for g in groups)
    signature = raw_pkcs1_sign(signer, multi_digest_info(digests))
    fields = [*signed, tlv(0xDF28, signature), tlv(0xDF29, _ymd(holder.card_expiry)),
              tlv(0xDF2A, render_text_png(holder.security_code, 24, 12, font_size=10))]
    return _with_offsets(0xFF20, 0xDF21, fields)


def age_record(holder: HolderRecord, card_key: rsa.RSAPublicKey, signer: rsa.RSAPrivateKey) -> bytes:
    body = tlv(0xDF11, _ymd(holder.birth_date)) + tlv(0xDF12, card_public_key(card_key))
    return tlv(0xFF10, body + tlv(0xDF13, _sign_sha256(signer, body)))


def my_number_image_record(holder: HolderRecord, card_key: rsa.RSAPublicKey, signer: rsa.RSAPrivateKey) -> bytes:
    body = tlv(0xDF41, render_text_png(holder.my_number, 72, 12, font_size=10)) + tlv(0xDF42, card_public_key(card_key))
    return tlv(0xFF40, body + tlv(0xDF43, _sign_sha256(signer, body)))


def surface_basic_data(holder: HolderRecord) -> bytes:
    return tlv(0xFF30, tlv(0xDF31, bytes.fromhex("06030E01")) + tlv(0xDF32, b"5000024\x08\x05001\x00\x00\x00\x00")
               + tlv(0xDF33, b"\x01") + tlv(0xDF34, holder.municipality_code.encode("ascii"))
               + tlv(0xDF35, b"5000024\x08\x05001\x00\x00\x00\x00" + secrets.token_bytes(256)))


def text_my_number_file(holder: HolderRecord) -> bytes:
    """Text AP EF 0001, physical content: ``FF 10 0C <12 digits> FF FF`` (17 bytes)."""
    return tlv(0xFF10, holder.my_number.encode("ascii")) + b"\xff\xff"


def text_attributes_file(holder: HolderRecord) -> bytes:
    """Text AP EF 0002: 基本4情報 behind a 4-entry offset table."""
    fields = [tlv(0xDF22, holder.name.encode("utf-8")), tlv(0xDF23, holder.address.encode("utf-8")),
              tlv(0xDF24, _ymd(holder.birth_date)), tlv(0xDF25, holder.sex.encode("ascii"))]
    return _with_offsets(0xFF20, 0xDF21, fields)


def text_integrity_record(my_number_file: bytes, attributes_file: bytes, signer: rsa.RSAPrivateKey) -> bytes:
    """Text AP EF 0003: SHA-256 of EF 0001 (physical) and of EF 0002's value after the offset table, signed."""
    from jpki_remote.card.tlv import parse_header

    _tag, _len, header = parse_header(attributes_file)
    _t2, table_len, table_header = parse_header(attributes_file, header)
    after_table = attributes_file[header + table_header + table_len :]
    body = tlv(0xDF31, hashlib.sha256(my_number_file).digest()) + tlv(0xDF32, hashlib.sha256(after_table).digest())
    return tlv(0xFF30, body + tlv(0xDF33, _sign_sha256(signer, body)))


def text_basic_data() -> bytes:
    return tlv(0xFF40, tlv(0xDF41, bytes.fromhex("01030E01")) + tlv(0xDF42, b"5000034\x08\x05001\x00\x00\x00\x00")
               + tlv(0xDF43, secrets.token_bytes(32) + b"\xff" * 96))


def signed_ap_key_record(ap_key: rsa.RSAPublicKey, signer: rsa.RSAPrivateKey) -> bytes:
    body = tlv(0xDF51, card_public_key(ap_key))
    return tlv(0xFF50, body + tlv(0xDF52, _sign_sha256(signer, body)))


def common_card_info(serial: str, holder: HolderRecord) -> bytes:
    """共通AP EF 0001 record 1: ``01 1C`` + 15-digit serial + 5-digit municipality code + expiry YYYYMMDD."""
    if not re.fullmatch(r"[0-9]{15}", serial):
        raise HolderDataError("the card serial is 15 digits")
    return b"\x01\x1c" + serial.encode() + holder.municipality_code.encode() + _ymd(holder.card_expiry)
