"""The holder's facts as the CA needs them, and their encodings in the signature certificate.

Only the signature certificate (署名用電子証明書) carries personal data: name, name substitute characters
(代替文字), sex, birth date, address and address substitute characters — the registry's basic four facts
(基本4情報). They go into subjectAltName otherNames ``1.2.392.200149.8.5.5.1``–``.6`` as ``[0] EXPLICIT
UTF8String``. The auth certificate (利用者証明用電子証明書) carries none of them.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass
from datetime import date

from cryptography import x509

from jpki_remote.ca.der import tlv
from jpki_remote.ca.errors import HolderDataError

JPKI_OTHER_NAME_ARC = "1.2.392.200149.8.5.5"


class OtherNameOid:
    NAME = x509.ObjectIdentifier(f"{JPKI_OTHER_NAME_ARC}.1")
    NAME_SUBSTITUTE = x509.ObjectIdentifier(f"{JPKI_OTHER_NAME_ARC}.2")
    SEX = x509.ObjectIdentifier(f"{JPKI_OTHER_NAME_ARC}.3")
    BIRTH_DATE = x509.ObjectIdentifier(f"{JPKI_OTHER_NAME_ARC}.4")
    ADDRESS = x509.ObjectIdentifier(f"{JPKI_OTHER_NAME_ARC}.5")
    ADDRESS_SUBSTITUTE = x509.ObjectIdentifier(f"{JPKI_OTHER_NAME_ARC}.6")


class Sex(enum.StrEnum):
    """The registry's sex code as written into the certificate (1 男, 2 女, 3 不明)."""

    MALE = "1"
    FEMALE = "2"
    UNKNOWN = "3"


# Japanese eras by first day (Gregorian). The birth-date otherName is the era digit followed by the Gregorian
# YYYYMMDD (J-LIS profile): 1 明治, 2 大正, 3 昭和, 4 平成, 5 令和.
ERAS: tuple[tuple[int, date], ...] = (
    (5, date(2019, 5, 1)),
    (4, date(1989, 1, 8)),
    (3, date(1926, 12, 25)),
    (2, date(1912, 7, 30)),
    (1, date(1873, 1, 1)),  # Gregorian calendar adopted in Japan (明治6年); earlier dates are not representable
)

MUNICIPALITY_CODE_RE = re.compile(r"^\d{5,6}$")


def era_digit(day: date) -> int:
    for digit, start in ERAS:
        if day >= start:
            return digit
    raise HolderDataError(f"birth date {day.isoformat()} is before 1873 and has no era code")


def encode_birth_date(day: date) -> str:
    """``EYYYYMMDD``: era digit + Gregorian date, e.g. 1990-06-10 → ``419900610``."""
    return f"{era_digit(day)}{day:%Y%m%d}"


def utf8_other_name(oid: x509.ObjectIdentifier, value: str) -> x509.OtherName:
    """otherName whose value is ``[0] EXPLICIT UTF8String`` (pyca adds the [0] wrapper around the DER we pass)."""
    return x509.OtherName(oid, tlv(0x0C, value.encode("utf-8")))


@dataclass(frozen=True)
class HolderIdentity:
    """What the CA is told about the holder. ``holder_ref`` is an opaque card/holder id (stored; no PII)."""

    holder_ref: str
    municipality_code: str  # 地方公共団体コード (5 digits, or 6 with check digit); embedded in the opaque CN
    birth_date: date
    name: str = ""  # 氏名
    name_substitute: str = ""  # 氏名代替文字 (only when the name has characters outside the character set)
    sex: Sex | None = None
    address: str = ""  # 住所
    address_substitute: str = ""  # 住所代替文字
    prefecture: str = ""  # subject L (romanised as the real certificates do, e.g. "Tokyo-to")
    city: str = ""  # subject L, e.g. "Kiyose-shi"

    def check_common(self) -> None:
        if not self.holder_ref or len(self.holder_ref) > 64:
            raise HolderDataError("holder_ref must be 1-64 characters")
        if not MUNICIPALITY_CODE_RE.match(self.municipality_code):
            raise HolderDataError("municipality_code must be 5 or 6 digits")

    def check_for_signature(self) -> None:
        """Every field the signature certificate needs is present and well-formed."""
        self.check_common()
        missing = [f for f in ("name", "address", "prefecture", "city") if not getattr(self, f).strip()]
        if self.sex is None:
            missing.append("sex")
        if missing:
            raise HolderDataError(f"signature certificate needs: {', '.join(missing)}")
        for field in ("name", "name_substitute", "address", "address_substitute", "prefecture", "city"):
            value = getattr(self, field)
            if len(value) > 256 or any(ord(c) < 0x20 or 0x7F <= ord(c) < 0xA0 for c in value):
                raise HolderDataError(f"{field} has control characters or is longer than 256 characters")
        for field in ("prefecture", "city"):  # X.520 ub-locality-name
            if len(getattr(self, field)) > 128:
                raise HolderDataError(f"{field} is longer than 128 characters (subject localityName limit)")
        era_digit(self.birth_date)

    def subject_alt_names(self) -> list[x509.GeneralName]:
        """The six (or four, without substitutes) otherNames of the signature certificate, in OID order."""
        assert self.sex is not None
        entries = [
            (OtherNameOid.NAME, self.name),
            (OtherNameOid.NAME_SUBSTITUTE, self.name_substitute),
            (OtherNameOid.SEX, Sex(self.sex).value),
            (OtherNameOid.BIRTH_DATE, encode_birth_date(self.birth_date)),
            (OtherNameOid.ADDRESS, self.address),
            (OtherNameOid.ADDRESS_SUBSTITUTE, self.address_substitute),
        ]
        return [utf8_other_name(oid, value) for oid, value in entries if value]
