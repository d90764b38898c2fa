"""Holder facts and their encodings: era birth dates, otherName values, checks."""

from __future__ import annotations

from dataclasses import replace
from datetime import date

import pytest

from jpki_remote.ca.errors import HolderDataError
from jpki_remote.ca.holder import HolderIdentity, OtherNameOid, encode_birth_date, utf8_other_name


@pytest.mark.parametrize(
    ("born", "encoded"),
    [
        (date(1900, 1, 1), "119000101"),  # 明治
        (date(1912, 7, 29), "119120729"),  # last day of 明治
        (date(1912, 7, 30), "219120730"),  # 大正
        (date(1926, 12, 25), "319261225"),  # 昭和
        (date(1989, 1, 7), "319890107"),
        (date(1989, 1, 8), "419890108"),  # 平成
        (date(2019, 4, 30), "420190430"),
        (date(2019, 5, 1), "520190501"),  # 令和
    ],
)
def test_birth_date_is_era_digit_and_gregorian(born: date, encoded: str) -> None:
    assert encode_birth_date(born) == encoded


def test_birth_before_gregorian_calendar_is_refused() -> None:
    with pytest.raises(HolderDataError):
        encode_birth_date(date(1872, 12, 31))


def test_other_name_value_is_utf8string_der() -> None:
    name = utf8_other_name(OtherNameOid.NAME, "山田 太郎")
    raw = "山田 太郎".encode()
    assert name.value == bytes([0x0C, len(raw)]) + raw


def test_signature_needs_all_basic_facts(holder: HolderIdentity) -> None:
    holder.check_for_signature()
    for field in ("name", "address", "prefecture", "city"):
        with pytest.raises(HolderDataError, match=field):
            replace(holder, **{field: " "}).check_for_signature()
    with pytest.raises(HolderDataError, match="sex"):
        replace(holder, sex=None).check_for_signature()
    with pytest.raises(HolderDataError, match="control"):
        replace(holder, name="山田\x00太郎").check_for_signature()
    with pytest.raises(HolderDataError, match="municipality"):
        replace(holder, municipality_code="13-221").check_common()


def test_substitutes_are_left_out_when_empty(holder: HolderIdentity) -> None:
    full = holder.subject_alt_names()
    assert [n.type_id for n in full] == [
        OtherNameOid.NAME,
        OtherNameOid.NAME_SUBSTITUTE,
        OtherNameOid.SEX,
        OtherNameOid.BIRTH_DATE,
        OtherNameOid.ADDRESS,
        OtherNameOid.ADDRESS_SUBSTITUTE,
    ]
    short = replace(holder, name_substitute="", address_substitute="").subject_alt_names()
    assert len(short) == 4
