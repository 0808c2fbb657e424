"""cxstats.periods: one definition of a period, checked against pandas' calendar periods and
against DuckDB and Ibis (the SQL and expression forms must give the Python form's answer)."""

from __future__ import annotations

from datetime import date, datetime, timedelta

import duckdb
import pandas as pd
import pytest

from cxstats import CxStatsError, periods

# every day of three years (leap year 2024 included), plus far years
DAYS = [date(2023, 1, 1) + timedelta(days=i) for i in range(0, 3 * 366, 1)] + [date(1999, 12, 31), date(2100, 3, 1)]
PANDAS_FREQ = {"quarter": "Q", "month": "M"}


@pytest.mark.parametrize("period", periods.PERIODS)
def test_python_matches_pandas_periods(period):
    for d in DAYS:
        p = pd.Period(d, PANDAS_FREQ[period])
        assert periods.start(d, period) == p.start_time.date()
        assert periods.end(d, period) == p.end_time.date()
        # pandas writes 2024Q2 and 2024-04; cxstats writes 2024-Q2 and 2024-04
        assert periods.label(d, period) == (f"{p.year}-Q{p.quarter}" if period == "quarter" else str(p))
        assert periods.incomplete(d, period, today=p.end_time.date()) is True
        assert periods.incomplete(d, period, today=p.end_time.date() + timedelta(days=1)) is False


@pytest.mark.parametrize("period", periods.PERIODS)
def test_ordinals_are_consecutive_and_invert(period):
    starts = sorted({periods.start(d, period) for d in DAYS[:-2]})
    ords = [periods.ordinal(s, period) for s in starts]
    assert ords == list(range(ords[0], ords[0] + len(ords)))
    assert [periods.from_ordinal(n, period) for n in ords] == starts
    assert [periods.shift(s, 1, period) for s in starts[:-1]] == starts[1:]
    assert periods.ordinal(date(2026, 7, 1), "quarter") == 2026 * 4 + 2
    assert periods.ordinal(date(2026, 7, 1), "month") == 2026 * 12 + 6


def test_labels_sort_in_time_order():
    for period in periods.PERIODS:
        starts = sorted({periods.start(d, period) for d in DAYS})
        labels = [periods.label(s, period) for s in starts]
        assert labels == sorted(labels)


def test_datetimes_are_periods_of_their_day():
    ts = datetime(2026, 9, 30, 23, 59, 59)
    assert periods.start(ts, "quarter") == date(2026, 7, 1)
    assert periods.label(ts, "month") == "2026-09"


@pytest.mark.parametrize(
    "text, period, start",
    [
        ("2026-Q3", "quarter", date(2026, 7, 1)),
        (" 2026-q1 ", "quarter", date(2026, 1, 1)),
        ("2026-Q4", "quarter", date(2026, 10, 1)),
        ("2026-07", "month", date(2026, 7, 1)),
        ("2026-12", "month", date(2026, 12, 1)),
    ],
)
def test_parse_reads_labels(text, period, start):
    assert periods.parse(text, period) == start
    assert periods.normalise(text, period) == periods.label(start, period)


@pytest.mark.parametrize(
    "text, period",
    [
        ("2026-Q5", "quarter"),
        ("2026-Q0", "quarter"),
        ("Q3", "quarter"),
        ("2026-07", "quarter"),
        ("2026-13", "month"),
        ("2026-00", "month"),
        ("2026-Q3", "month"),
        ("last quarter", "quarter"),
        ("", "month"),
    ],
)
def test_parse_refuses_bad_labels_saying_how_to_write_one(text, period):
    with pytest.raises(CxStatsError, match="2026-Q3" if period == "quarter" else "2026-07"):
        periods.parse(text, period)


def test_previous_and_a_bad_period_setting():
    assert periods.previous("2026-Q1", "quarter") == "2025-Q4"
    assert periods.previous("2026-01", "month") == "2025-12"
    with pytest.raises(CxStatsError, match="quarter, month"):
        periods.start(date(2026, 1, 1), "week")
    with pytest.raises(CxStatsError):
        periods.start_sql("d", "week; DROP TABLE x")


@pytest.fixture(scope="module")
def days_con():
    con = duckdb.connect()
    con.execute("CREATE TABLE t (d DATE, ts TIMESTAMP)")
    con.executemany("INSERT INTO t VALUES (?, ?)", [(d, datetime(d.year, d.month, d.day, 13, 30)) for d in DAYS])
    yield con
    con.close()


@pytest.mark.parametrize("period", periods.PERIODS)
@pytest.mark.parametrize("col", ["d", "ts"])
def test_sql_matches_python(days_con, period, col):
    rows = days_con.execute(
        f"SELECT d, {periods.start_sql(col, period)}, {periods.ordinal_sql(col, period)}, "
        f"{periods.label_sql(col, period)} FROM t ORDER BY d"
    ).fetchall()
    for d, s, o, lab in rows:
        assert (s, o, lab) == (periods.start(d, period), periods.ordinal(d, period), periods.label(d, period))


@pytest.mark.parametrize("period", periods.PERIODS)
def test_ibis_matches_python(days_con, period):
    ibis = pytest.importorskip("ibis")
    t = ibis.duckdb.from_connection(days_con).table("t")
    for col in ("d", "ts"):
        q = t.select(
            d=t.d,
            s=periods.start_expr(t[col], period),
            o=periods.ordinal_expr(t[col], period),
            lab=periods.label_expr(t[col], period),
        ).order_by("d")
        frame = q.to_pyarrow().to_pylist()
        assert len(frame) == len(DAYS)
        for r in frame:
            d = r["d"]
            assert (r["s"], r["o"], r["lab"]) == (
                periods.start(d, period),
                periods.ordinal(d, period),
                periods.label(d, period),
            )


def test_survey_period_follows_the_wave_first_date():
    con = duckdb.connect()
    con.execute("CREATE TABLE engagement (survey_date DATE, wave VARCHAR)")
    con.executemany(
        "INSERT INTO engagement VALUES (?, ?)",
        [
            (date(2026, 3, 30), "W1"),
            (date(2026, 4, 2), "W1"),  # a wave across a quarter boundary stays whole
            (date(2026, 4, 2), None),
            (date(2026, 4, 3), ""),
        ],
    )
    rows = con.execute(
        f"WITH waves AS ({periods.waves_sql()}) SELECT e.survey_date, e.wave, {periods.survey_start_sql('quarter')} "
        "FROM engagement e LEFT JOIN waves w ON e.wave = w.wave ORDER BY e.survey_date, e.wave"
    ).fetchall()
    con.close()
    assert [r[2] for r in rows] == [date(2026, 1, 1), date(2026, 1, 1), date(2026, 4, 1), date(2026, 4, 1)]


def test_docstring_examples_run():
    import doctest

    assert doctest.testmod(periods).failed == 0
