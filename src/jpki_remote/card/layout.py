"""The card's applications as public clients see them: AIDs, EF identifiers, key references and access rules.

Everything here is static description, taken from the reference (`jpki-card-and-domain.md` §1–2); the state that
changes (file contents, PIN values and counters, keys) lives in :mod:`jpki_remote.card.state`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from enum import Enum

ATR = bytes.fromhex("3BE000FF8131FE4514")  # the contact ATR OpenSC's jpki driver matches

AID_JPKI = bytes.fromhex("D392F000260100000001")
AID_SURFACE = bytes.fromhex("D3921000310001010402")
AID_TEXT = bytes.fromhex("D3921000310001010408")
AID_JUKI = bytes.fromhex("D3921000310001010401")
AID_COMMON = bytes.fromhex("D3921000310001010100")
# Our issuer security domain (GlobalPlatform ISD AID): where the issuer opens secure messaging.
AID_ISSUER = bytes.fromhex("A000000151000000")


class PinFormat(Enum):
    """What a key reference accepts as a new value (checked on CHANGE PIN and on issuer PIN set)."""

    SIGN_PASSWORD = "sign_password"  # noqa: S105 - a format name; 6–16 of A–Z 0–9
    DIGITS4 = "digits4"
    BIRTH_DATE_KEY = "birth_date_key"  # 6 digits, Japanese-era YYMMDD
    CODE_A = "code_a"  # 12 digits (the My Number)
    CODE_B = "code_b"  # 14 digits

    def accepts(self, value: bytes) -> bool:
        text = value.decode("ascii", "replace")
        pattern = {
            PinFormat.SIGN_PASSWORD: r"[A-Z0-9]{6,16}",
            PinFormat.DIGITS4: r"[0-9]{4}",
            PinFormat.BIRTH_DATE_KEY: r"[0-9]{6}",
            PinFormat.CODE_A: r"[0-9]{12}",
            PinFormat.CODE_B: r"[0-9]{14}",
        }[self]
        return re.fullmatch(pattern, text) is not None


# Tries for the 照合番号 / birth-date keys are not documented publicly; we assume 10 (an assumption, see README).
CODE_TRIES = 10


@dataclass(frozen=True)
class PinDef:
    fid: int
    name: str
    format: PinFormat
    max_tries: int
    changeable: bool = False  # by the holder (CHANGE PIN / CHANGE KEY) after VERIFY
    issuer_resettable: bool = True


@dataclass(frozen=True)
class KeyDef:
    fid: int
    name: str
    needs: int | None  # PIN fid that must be verified, None = free (AP key proving card presence)
    pending_capable: bool = False  # renewed through pending slot + commit (the JPKI keys)


@dataclass(frozen=True)
class EfDef:
    fid: int
    name: str
    read: frozenset[int] = frozenset()  # PIN fids any one of which opens the file; empty = free
    records: bool = False  # record-structured (READ RECORD) instead of transparent
    size: int | None = None  # fixed physical size (filler after the data), None = exactly the data
    filler: int = 0xFF
    issuer_writable: bool = True  # by STORE DATA; the JPKI user certificates change only through commit


@dataclass(frozen=True)
class AppletDef:
    name: str
    aid: bytes
    ref: int  # our issuer-command reference for the AP
    efs: dict[int, EfDef] = field(default_factory=dict)
    pins: dict[int, PinDef] = field(default_factory=dict)
    keys: dict[int, KeyDef] = field(default_factory=dict)
    default_key: int | None = None  # key used by 80 2A with P2 = 00
    change_ins: tuple[int, int, int] | None = None  # (CLA, INS, P1) of the holder's PIN change in this AP

    def kind(self, fid: int) -> str | None:
        if fid in self.efs:
            return "ef"
        if fid in self.pins:
            return "pin"
        if fid in self.keys:
            return "key"
        return None


def _efs(*defs: EfDef) -> dict[int, EfDef]:
    return {d.fid: d for d in defs}


def _pins(*defs: PinDef) -> dict[int, PinDef]:
    return {d.fid: d for d in defs}


def _keys(*defs: KeyDef) -> dict[int, KeyDef]:
    return {d.fid: d for d in defs}


# ---- JPKI AP ---------------------------------------------------------------------------------------------------
JPKI_SIGN_CERT = 0x0001
JPKI_SIGN_CA_CERT = 0x0002
JPKI_TOKEN_INFO = 0x0006
JPKI_CERT_AVAILABILITY = 0x0008
JPKI_AUTH_CERT = 0x000A
JPKI_AUTH_CA_CERT = 0x000B
JPKI_AUTH_KEY = 0x0017
JPKI_AUTH_PIN = 0x0018
JPKI_SIGN_KEY = 0x001A
JPKI_SIGN_PIN = 0x001B
CERT_EF_SIZE = 2048  # physical size of a certificate EF (filler after the DER); grows in 256-byte steps if needed

JPKI = AppletDef(
    name="jpki",
    aid=AID_JPKI,
    ref=0x01,
    efs=_efs(
        EfDef(JPKI_SIGN_CERT, "sign certificate", read=frozenset({JPKI_SIGN_PIN}), size=CERT_EF_SIZE,
              issuer_writable=False),
        EfDef(JPKI_SIGN_CA_CERT, "sign CA certificate", size=CERT_EF_SIZE),
        EfDef(JPKI_TOKEN_INFO, "token info"),
        EfDef(JPKI_CERT_AVAILABILITY, "certificate availability"),
        EfDef(JPKI_AUTH_CERT, "auth certificate", size=CERT_EF_SIZE, issuer_writable=False),
        EfDef(JPKI_AUTH_CA_CERT, "auth CA certificate", size=CERT_EF_SIZE),
    ),
    pins=_pins(
        PinDef(JPKI_AUTH_PIN, "auth PIN", PinFormat.DIGITS4, 3, changeable=True),
        PinDef(JPKI_SIGN_PIN, "sign password", PinFormat.SIGN_PASSWORD, 5, changeable=True),
    ),
    keys=_keys(
        KeyDef(JPKI_AUTH_KEY, "auth key", needs=JPKI_AUTH_PIN, pending_capable=True),
        KeyDef(JPKI_SIGN_KEY, "sign key", needs=JPKI_SIGN_PIN, pending_capable=True),
    ),
    change_ins=(0x00, 0x24, 0x01),
)
JPKI_KEY_CERT = {JPKI_AUTH_KEY: JPKI_AUTH_CERT, JPKI_SIGN_KEY: JPKI_SIGN_CERT}

# ---- card-surface AP (券面事項確認AP) -----------------------------------------------------------------------------
SURFACE_AGE_RECORD = 0x0001
SURFACE_CARD_FACE = 0x0002
SURFACE_BASIC_DATA = 0x0003
SURFACE_CERTIFICATE = 0x0004
SURFACE_MY_NUMBER_IMAGE = 0x0005
SURFACE_BIRTH_KEY = 0x0011
SURFACE_CODE_B = 0x0012
SURFACE_CODE_A = 0x0013
SURFACE_AP_KEY = 0x001A

SURFACE = AppletDef(
    name="surface",
    aid=AID_SURFACE,
    ref=0x02,
    efs=_efs(
        EfDef(SURFACE_AGE_RECORD, "age record", read=frozenset({SURFACE_BIRTH_KEY})),
        EfDef(SURFACE_CARD_FACE, "card face", read=frozenset({SURFACE_CODE_A, SURFACE_CODE_B})),
        EfDef(SURFACE_BASIC_DATA, "AP basic data"),
        EfDef(SURFACE_CERTIFICATE, "CV certificate"),
        EfDef(SURFACE_MY_NUMBER_IMAGE, "My Number image", read=frozenset({SURFACE_CODE_A})),
    ),
    pins=_pins(
        PinDef(SURFACE_BIRTH_KEY, "birth-date key", PinFormat.BIRTH_DATE_KEY, CODE_TRIES),
        PinDef(SURFACE_CODE_B, "verification code B", PinFormat.CODE_B, CODE_TRIES),
        PinDef(SURFACE_CODE_A, "verification code A", PinFormat.CODE_A, CODE_TRIES),
    ),
    keys=_keys(KeyDef(SURFACE_AP_KEY, "surface AP key", needs=None)),
    default_key=SURFACE_AP_KEY,
)

# ---- text AP (券面事項入力補助AP) ---------------------------------------------------------------------------------
TEXT_MY_NUMBER = 0x0001
TEXT_ATTRIBUTES = 0x0002
TEXT_INTEGRITY = 0x0003
TEXT_CERTIFICATE = 0x0004
TEXT_BASIC_DATA = 0x0005
TEXT_SIGNED_PUBLIC_KEY = 0x0007
TEXT_PIN = 0x0011
TEXT_BLOCKED_0012 = 0x0012
TEXT_AP_KEY = 0x0013
TEXT_CODE_A = 0x0014
TEXT_CODE_B = 0x0015
_TEXT_ANY = frozenset({TEXT_PIN, TEXT_CODE_A, TEXT_CODE_B})

TEXT = AppletDef(
    name="text",
    aid=AID_TEXT,
    ref=0x03,
    efs=_efs(
        EfDef(TEXT_MY_NUMBER, "My Number", read=frozenset({TEXT_PIN, TEXT_CODE_A})),
        EfDef(TEXT_ATTRIBUTES, "basic four facts", read=frozenset({TEXT_PIN, TEXT_CODE_B})),
        EfDef(TEXT_INTEGRITY, "integrity record", read=_TEXT_ANY),
        EfDef(TEXT_CERTIFICATE, "CV certificate"),
        EfDef(TEXT_BASIC_DATA, "AP basic data"),
        EfDef(TEXT_SIGNED_PUBLIC_KEY, "signed AP public key", read=_TEXT_ANY),
    ),
    pins=_pins(
        PinDef(TEXT_PIN, "text PIN", PinFormat.DIGITS4, 3, changeable=True),
        PinDef(TEXT_BLOCKED_0012, "blocked key 0012", PinFormat.DIGITS4, 3, issuer_resettable=False),
        PinDef(TEXT_CODE_A, "verification code A", PinFormat.CODE_A, CODE_TRIES),
        PinDef(TEXT_CODE_B, "verification code B", PinFormat.CODE_B, CODE_TRIES),
    ),
    keys=_keys(KeyDef(TEXT_AP_KEY, "text AP key", needs=None)),
    default_key=TEXT_AP_KEY,
    change_ins=(0x00, 0x24, 0x01),
)

# ---- 住基AP and 共通AP -----------------------------------------------------------------------------------------------
JUKI_PIN = 0x001C
COMMON_PIN = 0x001C
COMMON_CARD_INFO = 0x0001

JUKI = AppletDef(
    name="juki",
    aid=AID_JUKI,
    ref=0x04,
    pins=_pins(PinDef(JUKI_PIN, "residence PIN", PinFormat.DIGITS4, 3, changeable=True)),
    change_ins=(0x80, 0x32, 0x00),
)

COMMON = AppletDef(
    name="common",
    aid=AID_COMMON,
    ref=0x05,
    efs=_efs(EfDef(COMMON_CARD_INFO, "card info", records=True)),
    pins=_pins(PinDef(COMMON_PIN, "common AP PIN", PinFormat.DIGITS4, 3, changeable=True)),
    change_ins=(0x80, 0x32, 0x00),
)

APPLETS: tuple[AppletDef, ...] = (JPKI, SURFACE, TEXT, JUKI, COMMON)
BY_NAME: dict[str, AppletDef] = {a.name: a for a in APPLETS}
BY_AID: dict[bytes, AppletDef] = {a.aid: a for a in APPLETS}
BY_REF: dict[int, AppletDef] = {a.ref: a for a in APPLETS}

# The four holder passwords (the ones a PIN reset procedure talks about), as (applet, fid).
HOLDER_PINS: dict[str, tuple[str, int]] = {
    "sign": ("jpki", JPKI_SIGN_PIN),
    "auth": ("jpki", JPKI_AUTH_PIN),
    "juki": ("juki", JUKI_PIN),
    "common": ("common", COMMON_PIN),
    "text": ("text", TEXT_PIN),
}
