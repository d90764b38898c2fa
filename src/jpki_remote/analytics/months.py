"""Months as integers (``year * 12 + month - 1``), fiscal years (年度, April–March) and working days."""

from __future__ import annotations

import calendar
import re
from datetime import date

_MONTH_RE = re.compile(r"^(\d{4})-(\d{1,2})$")


def month_index(year: int, month: int) -> int:
    if not 1 <= month <= 12:
        raise ValueError(f"month {month} is not 1–12")
    return year * 12 + month - 1


def month_of(index: int) -> tuple[int, int]:
    year, zero_based = divmod(index, 12)
    return year, zero_based + 1


def month_label(index: int) -> str:
    year, month = month_of(index)
    return f"{year:04d}-{month:02d}"


def parse_month(text: str) -> int:
    """``YYYY-MM`` → month index."""
    match = _MONTH_RE.match(text.strip())
    if not match:
        raise ValueError(f"{text!r} is not a month (YYYY-MM)")
    return month_index(int(match.group(1)), int(match.group(2)))


def month_of_date(day: date) -> int:
    return month_index(day.year, day.month)


def fiscal_year(index: int) -> int:
    """The Japanese fiscal year (年度) a month belongs to: FY2025 = April 2025 – March 2026."""
    year, month = month_of(index)
    return year if month >= 4 else year - 1


def days_in_month(index: int) -> int:
    year, month = month_of(index)
    return calendar.monthrange(year, month)[1]


def weekdays_in_month(index: int) -> int:
    """Monday–Friday days of the month (national holidays are not subtracted)."""
    year, month = month_of(index)
    return sum(1 for day in range(1, days_in_month(index) + 1) if date(year, month, day).weekday() < 5)


def reiwa_label(fy: int) -> str:
    """``2025`` → ``令和7年度`` (平成 before 2019)."""
    if fy >= 2019:
        return f"令和{fy - 2018}年度" if fy > 2019 else "令和元年度"
    return f"平成{fy - 1988}年度"
