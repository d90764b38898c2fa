"""The issuance history CSV: accepted forms, and errors reported by line number."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from jpki_remote.analytics.history import (
    HistoryFormatError,
    check_digit,
    history_from_monthly,
    normalize_municipality_code,
    parse_history_csv,
    parse_period,
    read_history_csv,
)
from jpki_remote.analytics.months import month_index


def test_accepted_forms_and_spreading() -> None:
    text = (
        "\ufeff# comment line\n"
        "municipality_name,municipality_code,period,cards_issued\n"
        "\n"
        '港区,131032,FY2020,"1,200"\n'
        "港区,13103,2021-04,１２\n"
        "港区,13103,2021-05..2021-06,10\n"
        "豊田市,232114,2019,24\n"
    )
    history = parse_history_csv(text)
    assert history.municipalities() == {"13103": "港区", "23211": "豊田市"}
    minato = history.for_municipality("131032").monthly()
    assert sum(minato.values()) == pytest.approx(1222)
    assert minato[month_index(2020, 4)] == pytest.approx(100)
    assert minato[month_index(2021, 3)] == pytest.approx(100)
    assert minato[month_index(2021, 4)] == pytest.approx(12)
    assert minato[month_index(2021, 6)] == pytest.approx(5)
    toyota = history.for_municipality("23211").monthly(profile=[2] + [1] * 11)
    assert toyota[month_index(2019, 1)] == pytest.approx(24 * 2 / 13)
    assert toyota[month_index(2019, 12)] == pytest.approx(24 / 13)
    with pytest.raises(ValueError, match="no issuance history for municipality 99999"):
        history.for_municipality("99999")


def test_errors_carry_line_numbers() -> None:
    text = (
        "municipality_code,period,cards_issued\n"  # line 1
        "13103,FY2020,12x\n"  # 2: count
        "131031,2020,5\n"  # 3: check digit
        "13103,2020-13,5\n"  # 4: month
        "13103,20-01,5\n"  # 5: period form
        "13103,2021-05..2021-02,5\n"  # 6: range backwards
        "13103,2019,-4\n"  # 7: negative
        "13103,2018\n"  # 8: field count
        "1310,2017,1\n"  # 9: code length
        "13103,2020-06,1\n"  # 10: overlaps FY2020 — but line 2 failed, so overlaps nothing
        "13103,2020-05..2020-07,1\n"  # 11: overlaps line 10
    )
    with pytest.raises(HistoryFormatError) as caught:
        parse_history_csv(text, source="h.csv")
    lines = dict(caught.value.errors)
    assert set(lines) == {2, 3, 4, 5, 6, 7, 8, 9, 11}
    assert "12x" in lines[2]
    assert "check digit should be 2" in lines[3]
    assert "1–12" in lines[4]
    assert "YYYY-MM" in lines[5]
    assert "ends before it starts" in lines[6]
    assert "-4" in lines[7]
    assert "expected 3 fields, found 2" in lines[8]
    assert "5 digits" in lines[9]
    assert "line 10" in lines[11]
    assert str(caught.value).splitlines()[0].startswith("h.csv:2: ")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "no header"),
        ("# only a comment\n", "no header"),
        ("municipality_code,period\n13103,2020\n", "lacks column(s) cards_issued"),
        ("municipality_code,period,cards_issued,colour\n", "unknown column(s) colour"),
        ("municipality_code,period,cards_issued,period\n", "duplicate column(s) period"),
        ("municipality_code,period,cards_issued\n", "no data rows"),
    ],
)
def test_header_errors(text: str, message: str) -> None:
    with pytest.raises(HistoryFormatError, match=re.escape(message)):
        parse_history_csv(text)


def test_many_errors_are_summarised() -> None:
    text = "municipality_code,period,cards_issued\n" + "13103,2020,x\n" * 30
    with pytest.raises(HistoryFormatError) as caught:
        parse_history_csv(text)
    assert len(caught.value.errors) == 30
    assert "… and 10 more" in str(caught.value)


def test_shift_jis_file_and_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "sjis.csv"
    path.write_bytes("municipality_code,municipality_name,period,cards_issued\n13103,港区,2020,10\n".encode("cp932"))
    assert read_history_csv(path).municipalities() == {"13103": "港区"}
    with pytest.raises(HistoryFormatError, match="cannot read the file"):
        read_history_csv(tmp_path / "absent.csv")
    binary = tmp_path / "binary.csv"
    binary.write_bytes(b"\xff\xfe\x00\x81\xff")
    with pytest.raises(HistoryFormatError, match="neither UTF-8 nor Shift_JIS"):
        read_history_csv(binary)


def test_codes_and_periods() -> None:
    assert check_digit("13103") == 2
    assert check_digit("23211") == 4
    assert check_digit("01100") == 2  # Sapporo 011002
    assert normalize_municipality_code("１３１０３２") == "13103"
    assert parse_period("FY2024") == (month_index(2024, 4), month_index(2025, 3))
    assert parse_period("fy2024") == parse_period("FY2024")
    assert parse_period("2020") == (month_index(2020, 1), month_index(2020, 12))


def test_history_from_monthly_counts() -> None:
    history = history_from_monthly("13103", {month_index(2020, 5): 3, month_index(2020, 4): 2})
    assert [r.period_label for r in history.records] == ["2020-04", "2020-05"]
    assert history.total == 5
