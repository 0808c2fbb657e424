"""What is in the database: filter choices, a data version for caches, and a data-quality summary.

Used by the dashboard's sidebar and Data page; metrics-independent (plain counts and dates).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import date

import duckdb

from . import Viewer, periods
from .schema import KINDS
from .store import (
    VIEWER_UNITS_SQL,
    Batch,
    current_customers_sql,
    current_rows_sql,
    list_batches,
    settings,
    viewer_units,
)

period_label = periods.label  # the one definition of a period: cxstats.periods


@dataclass(frozen=True)
class UnitChoice:
    unit_id: str
    unit_name: str | None
    region: str | None
    former: tuple[str, ...] = ()  # units renamed or merged into this one (their history shows here)

    @property
    def label(self) -> str:
        base = (
            f"{self.unit_id} · {self.unit_name}" if self.unit_name and self.unit_name != self.unit_id else self.unit_id
        )
        return f"{base} (formerly {', '.join(self.former)})" if self.former else base


@dataclass(frozen=True)
class FilterOptions:
    """Whole units, regions and whole periods a viewer may filter on (never free date ranges)."""

    units: tuple[UnitChoice, ...]
    regions: tuple[str, ...]
    periods: tuple[str, ...]
    period: str


def filter_options(con: duckdb.DuckDBPyConnection, *, viewer: Viewer) -> FilterOptions:
    """Units (a manager sees only his), their regions, and the periods that hold any data.

    A viewer who may not see employee data (marketing) gets only units and periods of customer-side
    data: units in feedback or purchases or in a units file, periods of feedback. A unit or a period
    that exists only in survey data (a unit an engagement file created) would tell that a survey
    was run there and when (issue 18).
    """
    period = settings(con).period
    employee = viewer.sees_employee_data
    # units rows written by an engagement batch are units that the survey file created
    named_from = (
        "units"
        if employee
        else ("(SELECT * FROM units WHERE batch_id NOT IN (SELECT batch_id FROM batches WHERE kind = 'engagement'))")
    )
    seen = (
        "SELECT unit_id FROM engagement UNION SELECT unit_id FROM feedback"
        if employee
        else "SELECT unit_id FROM feedback UNION SELECT unit_id FROM purchases"
    )
    rows = con.execute(
        f"""
        WITH named AS (
            SELECT unit_id, unit_name, region FROM ({current_rows_sql(named_from, "unit_id")})),
        seen AS ({seen})
        SELECT s.unit_id, n.unit_name, n.region
        FROM (SELECT unit_id FROM named UNION SELECT unit_id FROM seen) s LEFT JOIN named n USING (unit_id)
        WHERE s.unit_id IS NOT NULL ORDER BY s.unit_id
        """
    ).fetchall()
    allowed = viewer.unit_filter()
    # re-organisations: a renamed or merged unit's history is shown under its successor, which lists
    # the former names; the old unit is no choice of its own
    mapping = dict(con.execute("SELECT from_unit, to_unit FROM unit_map").fetchall())
    former: dict[str, list[str]] = {}
    for a, b in mapping.items():
        former.setdefault(b, []).append(a)
    names = {str(u) for u, _, _ in rows}
    extra = [(b, None, None) for b in former if b not in names]
    units = tuple(
        UnitChoice(str(u), n, r, tuple(sorted(former.get(str(u), ()))))
        for u, n, r in sorted(list(rows) + extra, key=lambda t: str(t[0]))
        if str(u) not in mapping and (allowed is None or str(u) in allowed)
    )
    regions = tuple(sorted({u.region for u in units if u.region}))
    # engagement periods follow the wave's first survey date, so a wave never splits (DESIGN.md)
    eng_periods = (
        f"""SELECT {periods.label_sql(periods.survey_start_sql(period), period)} AS p
            FROM engagement e LEFT JOIN waves w ON e.wave = w.wave
            UNION ALL """
        if employee
        else ""
    )
    per = con.execute(
        f"""
        WITH waves AS ({periods.waves_sql()})
        SELECT DISTINCT p FROM (
            {eng_periods}SELECT {periods.label_sql("date", period)} AS p FROM feedback)
        WHERE p IS NOT NULL ORDER BY p
        """
    ).fetchall()
    return FilterOptions(units, regions, tuple(r[0] for r in per), period)


def data_version(con: duckdb.DuckDBPyConnection) -> tuple:
    """Changes whenever a batch is loaded or undone, a setting or an action plan changes: the key for app caches."""
    b = con.execute("SELECT coalesce(max(batch_id), 0), count(*) FILTER (WHERE undone) FROM batches").fetchall()[0]
    s = tuple(con.execute("SELECT key, value FROM settings ORDER BY key").fetchall())
    r = con.execute("SELECT count(*) FROM rewards").fetchall()[0][0]
    a = con.execute("SELECT count(*) FROM export_audit").fetchall()[0][0]
    plans = con.execute("SELECT count(*), CAST(max(updated_at) AS VARCHAR) FROM actions").fetchall()[0]
    return (int(b[0]), int(b[1]), s, int(r), int(a), int(plans[0]), plans[1])


# per table: the date column its range is reported on (None: no date)
DATE_COLUMNS = {
    "units": None,
    "engagement": "survey_date",
    "feedback": "date",
    "purchases": "order_date",
    "mentions": "posted_at",
    "customers": "consent_date",
    "reorgs": "effective_date",
    "rewards": "reward_date",
}


@dataclass(frozen=True)
class TableQuality:
    table: str
    rows: int
    batches: int
    first_date: date | None
    last_date: date | None
    units: int | None
    missing: dict[str, int]  # optional column -> rows where it is empty

    @property
    def missing_text(self) -> str:
        parts = [f"{col} {n:,}" for col, n in self.missing.items() if n]
        return "; ".join(parts) if parts else "none"


def data_quality(con: duckdb.DuckDBPyConnection, *, viewer: Viewer) -> list[TableQuality]:
    """Rows, live batches, date range, distinct units and missing values per canonical table.

    Counts only (no answers, no names); marketing sees no engagement table, a manager only the
    rows of his units.
    """
    out = []
    limit = viewer.unit_filter()
    for kind, spec in KINDS.items():
        cols = [f.name for f in spec.fields]
        has_unit = "unit_id" in cols
        if kind == "engagement" and not viewer.sees_employee_data:
            continue
        if limit is not None and not has_unit:
            continue  # a manager sees his units' rows only; customer-side tables carry no unit
        source = f"({current_customers_sql()})" if kind == "customers" else spec.table
        dcol = DATE_COLUMNS[kind]
        exprs = ["count(*)", "count(DISTINCT batch_id)"]
        exprs += [f"min({dcol})::DATE", f"max({dcol})::DATE"] if dcol else ["NULL", "NULL"]
        exprs.append("count(DISTINCT unit_id)" if has_unit else "NULL")
        optional = [f.name for f in spec.fields if not f.required]
        exprs += [f"count(*) - count({c})" for c in optional]
        where, params = "", []
        if limit is not None:
            where, params = f" WHERE {VIEWER_UNITS_SQL}", list(viewer_units(viewer))
        row = con.execute(f"SELECT {', '.join(exprs)} FROM {source} AS t{where}", params).fetchall()[0]
        if kind == "engagement":
            # anonymity: a blank eNPS or comment is an answer too, so a suppressed group's blanks must
            # not move these counts; missing values are counted over kept groups only (SECURITY.md).
            # Anyone but an admin gets the row count over kept groups too (as in `batches`)
            kept = _kept_engagement_missing(con, viewer, optional)
            row = ((row[0] if viewer.role == "admin" else kept[0]),) + row[1:5] + kept[1:]
        out.append(
            TableQuality(
                table=kind,
                rows=int(row[0]),
                batches=int(row[1]),
                first_date=row[2],
                last_date=row[3],
                units=None if row[4] is None else int(row[4]),
                missing={c: int(n) for c, n in zip(optional, row[5:])},
            )
        )
    return out


def _kept_engagement_missing(con: duckdb.DuckDBPyConnection, viewer: Viewer, columns: list[str]) -> tuple:
    """(rows in kept groups, then each column's missing values over kept groups)."""
    from . import metrics

    sc = metrics.scope(con)
    # rows in kept groups, then the missing values per column (schema field names only)
    counts = ", ".join(["count(*)"] + [f"count(*) - count(e.{c})" for c in columns])
    sql = (
        f"WITH {metrics._respondents_sql(sc)} SELECT {counts} FROM engagement e "
        "JOIN resp r ON e.batch_id = r.batch_id AND e.row_no = r.row_no "
        "JOIN kept k ON k.unit_id = r.unit_id AND k.period_start = r.period_start"
    )
    return tuple(con.execute(sql, metrics._resp_params(sc, viewer)).fetchall()[0])


def batches(con: duckdb.DuckDBPyConnection, *, viewer: Viewer) -> list[Batch]:
    """The batch history as a viewer may see it (admin and leader; the Data page).

    Admins see every count as loaded. For anyone else an engagement batch's ``rows`` counts only
    its live respondents in kept (unit, period) groups, and its skipped rows are not given: the
    respondents of suppressed groups are left out of every count (DESIGN.md, "Differencing and
    oracles"), so a batch's size never tells how many people a suppressed group has.
    """
    viewer.require("admin", "leader")
    listed = list_batches(con)
    if viewer.role == "admin":
        return listed
    from . import metrics

    sc = metrics.scope(con)
    sql = (
        f"WITH {metrics._respondents_sql(sc)} SELECT r.batch_id, count(*) FROM resp r "
        "JOIN kept k ON k.unit_id = r.unit_id AND k.period_start = r.period_start GROUP BY r.batch_id"
    )
    kept = dict(con.execute(sql, metrics._resp_params(sc, viewer)).fetchall())
    return [
        replace(b, rows=int(kept.get(b.batch_id, 0)), skipped_rows=0) if b.kind == "engagement" else b for b in listed
    ]


@dataclass(frozen=True)
class Freshness:
    kind: str
    latest: date | None
    period: str | None
    incomplete: bool  # the latest period has not ended yet


def _engine_last_dates(con: duckdb.DuckDBPyConnection, viewer: Viewer, engine) -> dict:
    """{kind: latest date} of the lake's feedback, purchases and mentions ({} on the DuckDB file);
    a manager's only over his units' rows, and no mentions (they carry no unit), as data_quality."""
    from . import metrics

    cfg = metrics.engine_config(con, engine)
    if cfg.kind == "duckdb":
        return {}
    from . import engine as engines
    from . import unit_aggregates as ua

    limit = viewer.unit_filter()
    kinds = [k for k in ("feedback", "purchases", "mentions") if limit is None or k != "mentions"]
    out: dict[str, date | None] = {}
    with engines.open_tables(cfg, viewer=viewer) as t:
        for k in kinds:
            column = DATE_COLUMNS[k]
            assert column is not None  # feedback, purchases and mentions each have a date column
            out[k] = ua.latest_date(t, t.table(k), column, None if limit is None else list(limit))
    return out


def freshness(
    con: duckdb.DuckDBPyConnection, today: date | None = None, *, viewer: Viewer, engine=None
) -> list[Freshness]:
    """Latest date per kind, and whether its period is still running (so figures may move).

    On a lake or Spark (``engine``; None: from the environment) feedback, purchases and mentions are
    dated from the lake, where the figures come from; the other kinds from the DuckDB file.
    """
    today = today or date.today()
    period = settings(con).period
    on_engine = _engine_last_dates(con, viewer, engine)
    out = []
    for q in data_quality(con, viewer=viewer):
        if DATE_COLUMNS[q.table] is None or q.table == "customers":
            continue
        latest = on_engine.get(q.table, q.last_date)
        label = periods.label(latest, period) if latest else None
        out.append(Freshness(q.table, latest, label, latest is not None and periods.incomplete(latest, period, today)))
    return out
