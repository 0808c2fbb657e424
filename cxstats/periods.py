"""The one definition of a period: a calendar quarter or a calendar month (DESIGN.md, "Period").

Every figure grouped by time uses these functions, in SQL (DuckDB text fragments), in Ibis
expressions (the engines) or in Python, so that the three never disagree:

- start: the first day of the period that holds a date (``date_trunc``);
- label: ``'2026-Q3'`` for the quarter that starts on 2026-07-01, ``'2026-07'`` for that month;
  labels of one period setting sort as text in time order;
- ordinal: consecutive integers (``year * 4 + quarter - 1``, ``year * 12 + month - 1``), so that
  "the period ``lag`` after t" is plain arithmetic;
- an engagement respondent's period is the period of the wave's first survey date when the
  respondent has a wave (so a wave never splits), else of the survey date (:func:`waves_sql`,
  :func:`survey_start_sql`).

``period`` is always one of :data:`PERIODS` (the database setting); column arguments are code,
never user input. A label a user types (``--in 2026-Q3``) goes through :func:`parse`, which
raises :class:`cxstats.CxStatsError` saying how to write one.

>>> from datetime import date
>>> start(date(2026, 8, 15), "quarter"), label(date(2026, 8, 15), "quarter"), label(date(2026, 8, 15), "month")
(datetime.date(2026, 7, 1), '2026-Q3', '2026-08')
>>> parse("2026-Q3", "quarter"), previous("2026-Q1", "quarter"), ordinal(date(2026, 7, 1), "quarter")
(datetime.date(2026, 7, 1), '2025-Q4', 8106)
"""

from __future__ import annotations

import re
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING, Any

from . import CxStatsError

if TYPE_CHECKING:  # ibis is imported only by the functions that build Ibis expressions
    import ibis.expr.types as ir

PERIODS = ("quarter", "month")
_MONTHS = {"quarter": 3, "month": 1}  # months per period
_QUARTER = re.compile(r"^(\d{4})-?Q([1-4])$", re.IGNORECASE)
_MONTH = re.compile(r"^(\d{4})-(\d{1,2})$")


def check(period: str) -> str:
    """``period`` itself when it is one of :data:`PERIODS`, else a CxStatsError."""
    if period not in _MONTHS:
        raise CxStatsError(f"period must be one of {', '.join(PERIODS)} (got {period!r})")
    return period


# ---------------------------------------------------------------- Python


def start(d: date | datetime, period: str) -> date:
    """First day of the period holding ``d`` (a date or a datetime)."""
    m = _MONTHS[check(period)]
    return date(d.year, m * ((d.month - 1) // m) + 1, 1)


def shift(d: date | datetime, n: int, period: str) -> date:
    """Start of the period ``n`` periods after the one holding ``d`` (``n`` < 0: before)."""
    return from_ordinal(ordinal(d, period) + int(n), period)


def end(d: date | datetime, period: str) -> date:
    """Last day of the period holding ``d``."""
    return shift(d, 1, period) - timedelta(days=1)


def ordinal(d: date | datetime, period: str) -> int:
    """Consecutive integer of the period holding ``d``: ``year * 4 + quarter - 1`` or ``year * 12 + month - 1``."""
    m = _MONTHS[check(period)]
    return d.year * (12 // m) + (d.month - 1) // m


def from_ordinal(n: int, period: str) -> date:
    """Start of the period with ordinal ``n`` (the inverse of :func:`ordinal`)."""
    m = _MONTHS[check(period)]
    per_year = 12 // m
    return date(int(n) // per_year, (int(n) % per_year) * m + 1, 1)


def label(d: date | datetime, period: str) -> str:
    """'2024-Q2' for any day of April-June 2024 under quarters; '2024-04' under months."""
    if check(period) == "quarter":
        return f"{d.year}-Q{(d.month - 1) // 3 + 1}"
    return f"{d.year}-{d.month:02d}"


def incomplete(d: date | datetime, period: str, today: date | None = None) -> bool:
    """Whether the period holding ``d`` has not ended by ``today`` (default: today)."""
    return shift(d, 1, period) > (today or date.today())


def parse(text: str, period: str) -> date:
    """Start of the period a label names ('2026-Q3' under quarters, '2026-07' under months).

    Spaces around the label and a lower-case q are accepted; anything else raises a CxStatsError
    that shows how to write a label of the database's period.
    """
    t = str(text).strip()
    if check(period) == "quarter":
        mq = _QUARTER.match(t)
        if mq:
            return date(int(mq.group(1)), 3 * int(mq.group(2)) - 2, 1)
        example = "2026-Q3"
    else:
        mm = _MONTH.match(t)
        if mm and 1 <= int(mm.group(2)) <= 12:
            return date(int(mm.group(1)), int(mm.group(2)), 1)
        example = "2026-07"
    raise CxStatsError(
        f"{t!r} is not a {period} label: write a {period} like {example} (the database groups by {period})"
    )


def normalise(text: str, period: str) -> str:
    """The canonical label of a label a user typed ('2026-q3 ' -> '2026-Q3'); CxStatsError if malformed."""
    return label(parse(text, period), period)


def previous(text: str, period: str) -> str:
    """Label of the calendar period before the one a label names ('2026-Q1' -> '2025-Q4')."""
    return label(shift(parse(text, period), -1, period), period)


# ---------------------------------------------------------------- DuckDB SQL


def _sql_unit(period: str) -> str:
    return check(period)  # 'quarter' and 'month' are DuckDB's date_trunc / date_part names too


def start_sql(col: str, period: str) -> str:
    """DuckDB SQL: first day (a DATE) of the period holding the date or timestamp ``col``."""
    return f"CAST(date_trunc('{_sql_unit(period)}', {col}) AS DATE)"


def ordinal_sql(col: str, period: str) -> str:
    """DuckDB SQL: the period ordinal of ``col`` (see :func:`ordinal`)."""
    p = _sql_unit(period)
    return f"(year({col}) * {12 // _MONTHS[p]} + {p}({col}) - 1)"


def label_sql(col: str, period: str) -> str:
    """DuckDB SQL: the period label of ``col`` (see :func:`label`)."""
    if _sql_unit(period) == "month":
        return f"strftime({col}, '%Y-%m')"
    return f"(CAST(year({col}) AS VARCHAR) || '-Q' || CAST(quarter({col}) AS VARCHAR))"


def waves_sql(source: str = "engagement") -> str:
    """DuckDB SQL, the body of a ``waves`` CTE: each named wave's first survey date (``wave, first_date``).

    ``source`` is a table or CTE name with columns wave and survey_date (code, never user input).
    """
    return (
        f"SELECT wave, min(survey_date) AS first_date FROM {source} "
        "WHERE wave IS NOT NULL AND trim(wave) <> '' GROUP BY wave"
    )


def survey_start_sql(period: str, e: str = "e", w: str = "w") -> str:
    """DuckDB SQL: an engagement row's period start, the wave's first date when it has a wave.

    ``e`` is the alias of the engagement rows, ``w`` of the :func:`waves_sql` CTE left-joined on wave.
    """
    return start_sql(f"coalesce({w}.first_date, {e}.survey_date)", period)


# ---------------------------------------------------------------- Ibis


def start_expr(col: ir.Value, period: str) -> ir.DateValue:
    """Ibis: first day (a date) of the period holding the date or timestamp expression ``col``.

    Gives the same dates as :func:`start_sql` on every Ibis backend (DuckDB, Spark).
    """
    return col.truncate("Q" if check(period) == "quarter" else "M").cast("date")


def ordinal_expr(col: ir.Value, period: str) -> ir.IntegerValue:
    """Ibis: the period ordinal of the date or timestamp expression ``col`` (see :func:`ordinal`)."""
    m = _MONTHS[check(period)]
    sub = col.quarter() if period == "quarter" else col.month()
    return (col.year() * (12 // m) + sub - 1).cast("int64")


def label_expr(col: Any, period: str) -> ir.StringValue:
    """Ibis: the period label of the date or timestamp expression ``col`` (see :func:`label`)."""
    if check(period) == "month":
        return col.year().cast("string") + "-" + col.month().cast("string").lpad(2, "0")
    return col.year().cast("string") + "-Q" + col.quarter().cast("string")
