"""Per (unit, period) customer-satisfaction aggregations as Ibis expressions (DESIGN.md "Engines").

Feedback and mentions may live in a Parquet lake or on a Spark cluster, hundreds of millions of
rows; linkage, focus areas, what changed, the Overview and the Customers page need only sums per
(unit, period[, channel]). These functions take Ibis tables (the DuckDB file, a DuckDB-read lake or
Spark: :func:`cxstats.engine.open_tables`) and return Ibis expressions whose results are small; the
statistics stay in Python on the aggregates (cxstats.metrics, linkage, focus).

The definitions are those of cxstats.metrics, written once here:

- a feedback row's unit is its unit's successor after renames and merges (``unit_map``; the
  one place CX rows get their unit, as ``metrics.mapped_units_sql`` does in SQL);
- a manager's view is filtered to his units before anything is summed;
- period start, ordinal (consecutive integers, so ``t + lag`` is arithmetic) and label are those of
  :mod:`cxstats.periods` (the calendar quarter or month of the feedback date);
- counts per (unit, period): ``csat_n`` (answers), ``csat_top2`` (answers 4-5), ``csat_sum``,
  ``csat_sq`` (sum of squared answers), ``nps_n``, ``promoters`` (9-10), ``detractors`` (0-6);
  ``CSAT % = 100 csat_top2 / csat_n``, ``NPS = 100 (promoters - detractors) / nps_n``.

Engines differ in small ways that these expressions fix explicitly: every count and sum is cast to
64-bit integers (Spark's sum of a boolean cast, DuckDB's HUGEINT), empty sums are 0 (Spark's SUM of
no rows is NULL), the period start is cast back to a date (Spark's date_trunc gives a timestamp), and
results are ordered in Python after they come back (engines order ties differently).

Example (DuckDB file)::

    import duckdb, ibis
    from cxstats import unit_aggregates as ua
    con = duckdb.connect("data/cxstats.duckdb")
    t = ibis.duckdb.from_connection(con)
    ua.cx_counts(t.table("feedback"), t.table("unit_map"), period="quarter").to_pandas()
"""

from __future__ import annotations

from typing import Sequence

import ibis
import ibis.expr.types as ir

from . import periods

CX_COUNT_COLUMNS = ("csat_n", "csat_top2", "csat_sum", "csat_sq", "nps_n", "promoters", "detractors")

# the distinct reply targets of metrics.REPLY_TARGET_HOURS / DEFAULT_REPLY_TARGET_HOURS (the default
# of reply_times' ``targets``): answers within each are counted in the engine, and the channel's own
# target (metrics.reply_target_hours, the one definition) picks one in Python
REPLY_TARGETS = (1.0, 6.0, 12.0)


def within_column(hours: float) -> str:
    """Name of the count of answers within ``hours`` ('within_6h'; 'within_0.5h')."""
    return f"within_{float(hours):g}h"


def mapped_units(table: ir.Table, unit_map: ir.Table | None) -> ir.Table:
    """``table`` with each unit_id replaced by its successor (``unit_map``: from_unit, to_unit).

    ``unit_map`` None (no re-organisation recorded) leaves the table as it is.
    """
    if unit_map is None:
        return table
    um = unit_map.select(_from=unit_map.from_unit, _to=unit_map.to_unit)
    j = table.left_join(um, table.unit_id == um._from)
    return j.mutate(unit_id=ibis.coalesce(j._to, j.unit_id)).drop("_from", "_to")


def only_units(table: ir.Table, units: Sequence[str] | None) -> ir.Table:
    """Rows of ``units`` only (None: every unit; an empty list: no rows)."""
    if units is None:
        return table
    units = [str(u) for u in units]
    if not units:
        return table.filter(ibis.literal(False))
    return table.filter(table.unit_id.isin(units))


def channel_of(col: ir.StringValue) -> ir.StringValue:
    """``coalesce(nullif(trim(channel), ''), 'unknown')``: blank channels count as 'unknown'."""
    return col.strip().nullif("").fill_null("unknown")


def _count(cond: ir.BooleanValue) -> ir.IntegerScalar:
    return cond.cast("int64").sum().fill_null(0).cast("int64")


def _sum(col: ir.NumericValue) -> ir.IntegerScalar:
    return col.cast("int64").sum().fill_null(0).cast("int64")


def cx_counts(
    feedback: ir.Table,
    unit_map: ir.Table | None,
    *,
    period: str,
    units: Sequence[str] | None = None,
    by_channel: bool = False,
) -> ir.Table:
    """Feedback counts per (unit_id, [channel,] period_start, period_index): the sums CX metrics use.

    ``units`` None: every unit (admin, leader); else the viewer's units (applied after the unit
    mapping, as a merged unit's manager sees his predecessors' feedback). Columns as
    :data:`CX_COUNT_COLUMNS`, all 64-bit integers. Unordered (sort after fetching).
    """
    f = only_units(mapped_units(feedback, unit_map), units)
    keys = {"unit_id": f.unit_id}
    if by_channel:
        keys["channel"] = channel_of(f.channel)
    keys["period_start"] = periods.start_expr(f.date, period)
    keys["period_index"] = periods.ordinal_expr(f.date, period)
    csat, nps = f.csat, f.nps
    return f.group_by(**keys).aggregate(
        csat_n=csat.count().cast("int64"),
        csat_top2=_count(csat >= 4),
        csat_sum=_sum(csat),
        csat_sq=_sum(csat.cast("int64") * csat.cast("int64")),
        nps_n=nps.count().cast("int64"),
        promoters=_count(nps >= 9),
        detractors=_count(nps <= 6),
    )


def _hours(later: ir.TimestampValue, earlier: ir.TimestampValue) -> ir.FloatingValue:
    return (later.epoch_seconds() - earlier.epoch_seconds()).cast("float64") / 3600.0


def _reply_aggregate(rows: ir.Table, targets: Sequence[float]) -> ir.Table:
    """rows: source, channel, hours (null = unanswered) -> counts and median per (source, channel)."""
    h = rows.hours
    answered = h.notnull()
    aggs = dict(contacts=rows.count().cast("int64"), answered=_count(answered))
    for target in targets:
        aggs[within_column(target)] = _count(answered & (h <= float(target)))
    aggs["median_hours"] = h.median()
    return rows.group_by("source", "channel").aggregate(**aggs)


def _label_between(label: ir.StringValue, period_from: str | None, period_to: str | None) -> ir.BooleanValue | None:
    cond = None
    if period_from:
        cond = label >= str(period_from)
    if period_to:
        c = label <= str(period_to)
        cond = c if cond is None else cond & c
    return cond


def reply_times(
    feedback: ir.Table,
    unit_map: ir.Table | None,
    mentions: ir.Table | None,
    *,
    period: str,
    units: Sequence[str] | None = None,
    period_from: str | None = None,
    period_to: str | None = None,
    targets: Sequence[float] = REPLY_TARGETS,
) -> ir.Table:
    """Response-time inputs per (source, channel): contacts, answered, answered within each of
    ``targets`` hours (:func:`within_column`: ``within_1h``...), and the median hours of the answered.

    Feedback: ``responded_at - contacted_at`` of rows with contacted_at, in ``units`` (None: all);
    mentions (None: left out): ``replied_at - posted_at`` of posts with posted_at. ``period_from`` /
    ``period_to``: period labels (inclusive) of the feedback date or the post's date. Hours are the
    difference of the two epochs / 3600 (on Spark, unix_timestamp drops fractions of a second: times
    with sub-second parts can differ there by under 1/3600 h).
    """
    f = only_units(mapped_units(feedback, unit_map), units)
    f = f.filter(f.contacted_at.notnull())
    cond = _label_between(periods.label_expr(f.date, period), period_from, period_to)
    if cond is not None:
        f = f.filter(cond)
    rows = f.select(
        source=ibis.literal("feedback"), channel=channel_of(f.channel), hours=_hours(f.responded_at, f.contacted_at)
    )
    if mentions is not None:
        m = mentions.filter(mentions.posted_at.notnull())
        cond = _label_between(periods.label_expr(m.posted_at.date(), period), period_from, period_to)
        if cond is not None:
            m = m.filter(cond)
        rows = rows.union(
            m.select(
                source=ibis.literal("mentions"), channel=channel_of(m.platform), hours=_hours(m.replied_at, m.posted_at)
            )
        )
    return _reply_aggregate(rows, targets)


def latest_date(t, table: ir.Table, column: str, units: Sequence[str] | None = None):
    """The latest date of ``column`` (a date or timestamp, as a date) over ``units``' rows (None: all),
    run on ``t`` (:class:`cxstats.engine.Tables`); None when there are no rows. ``units`` filters
    on the rows' own unit_id, as the data-quality counts do."""
    rows = only_units(table, units)
    out = t.execute(rows.aggregate(last=rows[column].cast("date").max())).to_pylist()
    return out[0]["last"] if out else None
