"""Card issuance history per municipality, and the CSV format it is read from.

CSV format (UTF-8 with or without BOM, or Shift_JIS/CP932 as saved by Excel; ``#`` starts a comment line)::

    municipality_code,municipality_name,period,cards_issued
    131032,港区,FY2020,34781
    131032,港区,2022-04..2022-05,4326

Columns (by header name, any order; extra columns are an error so that typos are caught):

``municipality_code`` (required)
    全国地方公共団体コード: 5 digits, or 6 digits with the check digit (verified, then dropped).
``period`` (required)
    ``YYYY`` a calendar year; ``FYYYYY`` a fiscal year (年度, April YYYY – March YYYY+1); ``YYYY-MM`` a month;
    ``YYYY-MM..YYYY-MM`` an inclusive range of months (e.g. a fiscal year counted only up to a reporting date).
``cards_issued`` (required)
    cards handed over in the period (交付枚数): a whole number ≥ 0; thousands separators and full-width digits allowed.
``municipality_name`` (optional)
    for display only.

Periods of one municipality must not overlap. Counts of periods longer than a month are spread over their months
uniformly, or by a 12-value seasonal profile (weights for January…December).
"""

from __future__ import annotations

import csv
import io
import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from jpki_remote.analytics.months import month_index, month_label

REQUIRED_COLUMNS = ("municipality_code", "period", "cards_issued")
OPTIONAL_COLUMNS = ("municipality_name",)
MAX_REPORTED_ERRORS = 20

_YEAR_RE = re.compile(r"^(\d{4})$")
_FY_RE = re.compile(r"^FY(\d{4})$", re.IGNORECASE)
_MONTH_RE = re.compile(r"^(\d{4})-(\d{1,2})$")
_RANGE_RE = re.compile(r"^(\d{4})-(\d{1,2})\.\.(\d{4})-(\d{1,2})$")


class HistoryFormatError(ValueError):
    """One or more problems in an issuance history file; ``errors`` is a list of ``(line, message)``."""

    def __init__(self, source: str, errors: Sequence[tuple[int, str]]) -> None:
        self.source = source
        self.errors = list(errors)
        shown = [f"{source}:{line}: {message}" for line, message in self.errors[:MAX_REPORTED_ERRORS]]
        if len(self.errors) > MAX_REPORTED_ERRORS:
            shown.append(f"… and {len(self.errors) - MAX_REPORTED_ERRORS} more")
        super().__init__("\n".join(shown))


@dataclass(frozen=True)
class IssuanceRecord:
    """``cards_issued`` cards issued in the months ``first_month``..``last_month`` (inclusive month indexes)."""

    municipality_code: str
    first_month: int
    last_month: int
    cards_issued: int
    municipality_name: str = ""
    line: int = 0

    @property
    def months(self) -> range:
        return range(self.first_month, self.last_month + 1)

    @property
    def period_label(self) -> str:
        if self.first_month == self.last_month:
            return month_label(self.first_month)
        return f"{month_label(self.first_month)}..{month_label(self.last_month)}"


def validate_profile(profile: Sequence[float] | None) -> tuple[float, ...] | None:
    """A seasonal profile is 12 non-negative weights (January…December) with a positive sum."""
    if profile is None:
        return None
    values = tuple(float(v) for v in profile)
    if len(values) != 12:
        raise ValueError(f"a monthly profile needs 12 weights (January…December), got {len(values)}")
    if any(v < 0 or v != v for v in values) or sum(values) <= 0:
        raise ValueError("monthly profile weights must be non-negative numbers with a positive sum")
    return values


@dataclass(frozen=True)
class IssuanceHistory:
    records: tuple[IssuanceRecord, ...]
    source: str = ""

    def municipalities(self) -> dict[str, str]:
        """Code → name (the first non-empty name seen)."""
        names: dict[str, str] = {}
        for record in self.records:
            if not names.get(record.municipality_code):
                names[record.municipality_code] = record.municipality_name
        return names

    def for_municipality(self, code: str | None) -> IssuanceHistory:
        if code is None:
            return self
        normalized = normalize_municipality_code(code)
        chosen = tuple(r for r in self.records if r.municipality_code == normalized)
        if not chosen:
            known = ", ".join(sorted(self.municipalities())) or "none"
            raise ValueError(f"no issuance history for municipality {code} (known: {known})")
        return IssuanceHistory(chosen, self.source)

    def monthly(self, profile: Sequence[float] | None = None) -> dict[int, float]:
        """Cards issued per month (summed over municipalities); multi-month periods spread by ``profile``."""
        weights = validate_profile(profile)
        result: dict[int, float] = {}
        for record in self.records:
            months = list(record.months)
            shares = [1.0 if weights is None else weights[m % 12] for m in months]
            total = sum(shares)
            if total <= 0:  # a profile with zero weight for every month of the period: fall back to uniform
                shares, total = [1.0] * len(months), float(len(months))
            for month, share in zip(months, shares, strict=True):
                result[month] = result.get(month, 0.0) + record.cards_issued * share / total
        return dict(sorted(result.items()))

    @property
    def total(self) -> int:
        return sum(r.cards_issued for r in self.records)

    @property
    def last_month(self) -> int:
        return max(r.last_month for r in self.records)


def check_digit(code5: str) -> int:
    """The check digit of a 5-digit 全国地方公共団体コード (weights 6,5,4,3,2; 11 − sum mod 11, last digit)."""
    total = sum(int(d) * w for d, w in zip(code5, (6, 5, 4, 3, 2), strict=True))
    return (11 - total % 11) % 10


def normalize_municipality_code(text: str) -> str:
    """5-digit code, or 6 digits whose check digit is verified → the 5-digit code."""
    code = unicodedata.normalize("NFKC", text).strip()
    if not code.isascii() or not code.isdigit() or len(code) not in (5, 6):
        raise ValueError(f"municipality code {text!r} must be 5 digits (or 6 with the check digit)")
    if len(code) == 6:
        if int(code[5]) != check_digit(code[:5]):
            raise ValueError(f"municipality code {text!r}: check digit should be {check_digit(code[:5])}")
        code = code[:5]
    return code


def parse_period(text: str) -> tuple[int, int]:
    """Period text → (first month index, last month index), inclusive."""
    value = unicodedata.normalize("NFKC", text).strip()
    try:
        if match := _YEAR_RE.match(value):
            year = int(match.group(1))
            return month_index(year, 1), month_index(year, 12)
        if match := _FY_RE.match(value):
            year = int(match.group(1))
            return month_index(year, 4), month_index(year + 1, 3)
        if match := _MONTH_RE.match(value):
            index = month_index(int(match.group(1)), int(match.group(2)))
            return index, index
        if match := _RANGE_RE.match(value):
            first = month_index(int(match.group(1)), int(match.group(2)))
            last = month_index(int(match.group(3)), int(match.group(4)))
            if last < first:
                raise ValueError(f"period {text!r} ends before it starts")
            return first, last
    except ValueError as exc:
        raise ValueError(f"period {text!r}: {exc}") from None
    raise ValueError(f"period {text!r} is not YYYY, FYYYYY, YYYY-MM or YYYY-MM..YYYY-MM")


def parse_count(text: str) -> int:
    value = unicodedata.normalize("NFKC", text).strip().replace(",", "").replace("_", "")
    if not value:
        raise ValueError("cards_issued is empty")
    if not value.isascii() or not value.isdigit():
        raise ValueError(f"cards_issued {text!r} is not a whole number ≥ 0")
    return int(value)


def _decode(data: bytes, source: str) -> str:
    for encoding in ("utf-8-sig", "cp932"):
        try:
            return data.decode(encoding)
        except UnicodeDecodeError:
            continue
    raise HistoryFormatError(source, [(0, "the file is neither UTF-8 nor Shift_JIS (CP932) text")])


def read_history_csv(path: Path | str) -> IssuanceHistory:
    """Read and validate an issuance history CSV file (see the module docstring for the format)."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise HistoryFormatError(str(path), [(0, f"cannot read the file: {exc.strerror or exc}")]) from exc
    return parse_history_csv(_decode(data, str(path)), source=str(path))


def parse_history_csv(text: str, source: str = "<csv>") -> IssuanceHistory:
    """Parse issuance history CSV text; every problem is reported with its line number."""
    errors: list[tuple[int, str]] = []
    reader = csv.reader(io.StringIO(text.lstrip("\ufeff")))
    header: list[str] | None = None
    header_line = 0
    records: list[IssuanceRecord] = []
    for row in reader:
        line = reader.line_num
        if not row or all(not cell.strip() for cell in row) or row[0].lstrip().startswith("#"):
            continue
        if header is None:
            header = [unicodedata.normalize("NFKC", cell).strip().lower() for cell in row]
            header_line = line
            missing = [c for c in REQUIRED_COLUMNS if c not in header]
            unknown = [c for c in header if c not in REQUIRED_COLUMNS + OPTIONAL_COLUMNS]
            duplicate = sorted({c for c in header if header.count(c) > 1})
            if missing:
                errors.append((line, f"header lacks column(s) {', '.join(missing)}"))
            if unknown:
                allowed = ", ".join(REQUIRED_COLUMNS + OPTIONAL_COLUMNS)
                errors.append((line, f"unknown column(s) {', '.join(unknown)} (allowed: {allowed})"))
            if duplicate:
                errors.append((line, f"duplicate column(s) {', '.join(duplicate)}"))
            if errors:
                raise HistoryFormatError(source, errors)
            continue
        if len(row) != len(header):
            errors.append((line, f"expected {len(header)} fields, found {len(row)}"))
            continue
        cells = dict(zip(header, row, strict=True))
        try:
            code = normalize_municipality_code(cells["municipality_code"])
            first, last = parse_period(cells["period"])
            count = parse_count(cells["cards_issued"])
        except ValueError as exc:
            errors.append((line, str(exc)))
            continue
        name = unicodedata.normalize("NFKC", cells.get("municipality_name", "")).strip()
        records.append(IssuanceRecord(code, first, last, count, name, line))
    if header is None:
        errors.append((header_line, "no header line (municipality_code,period,cards_issued)"))
    errors.extend(_overlaps(records))
    if not errors and not records:
        errors.append((header_line, "no data rows"))
    if errors:
        raise HistoryFormatError(source, sorted(errors))
    return IssuanceHistory(tuple(records), source)


def _overlaps(records: Iterable[IssuanceRecord]) -> list[tuple[int, str]]:
    """Overlapping periods of one municipality, reported on the later line of each overlapping pair."""
    errors = []
    by_code: dict[str, list[IssuanceRecord]] = {}
    for record in records:
        by_code.setdefault(record.municipality_code, []).append(record)
    for code, items in by_code.items():
        items.sort(key=lambda r: (r.first_month, r.line))
        reach: IssuanceRecord | None = None  # the record reaching furthest so far
        for current in items:
            if reach is not None and current.first_month <= reach.last_month:
                first, second = sorted((reach, current), key=lambda r: r.line)
                errors.append(
                    (
                        second.line,
                        f"period {second.period_label} of municipality {code} overlaps "
                        f"{first.period_label} on line {first.line}",
                    )
                )
            if reach is None or current.last_month > reach.last_month:
                reach = current
    return errors


def history_from_monthly(
    municipality_code: str, monthly: dict[int, int], municipality_name: str = "", source: str = "database"
) -> IssuanceHistory:
    """Build a history from per-month counts (e.g. counted in the live database)."""
    code = normalize_municipality_code(municipality_code)
    records = tuple(
        IssuanceRecord(code, month, month, count, municipality_name) for month, count in sorted(monthly.items())
    )
    return IssuanceHistory(records, source)
