"""Per (unit, period) customer-satisfaction aggregations as Ibis expressions (DESIGN.md "Engines"),
and the distinct CX texts comment themes model.

Feedback and mentions may live in a Parquet lake or on a Spark cluster, hundreds of millions of
rows; linkage, focus areas, what changed, the Overview and the Customers page need only sums per
(unit, period[, channel]). These functions take Ibis tables (the DuckDB file, a DuckDB-read lake or
Spark: :func:`cxstats.engine.open_tables`) and return Ibis expressions whose results are small; the
statistics stay in Python on the aggregates (cxstats.metrics, linkage, focus).

The definitions are those of cxstats.metrics, written once here:

- a feedback row's unit is its unit's successor after renames and merges (``unit_map``;
  :func:`mapped_units`, the one place CX rows get their unit);
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

On the DuckDB file (the default engine) these same expressions run as SQL compiled from them once,
ahead of time (:func:`compile_duckdb`, stored in :mod:`cxstats.unit_aggregates_sql`), so that a
command on the DuckDB file neither imports Ibis nor compiles anything (about 1 s of CPU per process);
tests/test_unit_aggregates.py checks that the stored SQL is what these expressions compile to today.
Regenerate it after changing an expression here: ``python -m cxstats.unit_aggregates``.

Example (DuckDB file)::

    import duckdb, ibis
    from cxstats import unit_aggregates as ua
    con = duckdb.connect("data/cxstats.duckdb")
    t = ibis.duckdb.from_connection(con)
    ua.cx_counts(t.table("feedback"), t.table("unit_map"), period="quarter").to_pandas()
"""

from __future__ import annotations

from pathlib import Path
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
    # the table's own columns in their order (not .drop(): its column set compiles in hash order)
    return j.select(
        *[ibis.coalesce(j._to, j.unit_id).name("unit_id") if c == "unit_id" else j[c] for c in table.columns]
    )


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


def _has_text(col: ir.StringValue) -> ir.BooleanValue:
    return col.notnull() & (col.strip() != "")


def feedback_comments(feedback: ir.Table, unit_map: ir.Table | None, *, units: Sequence[str] | None = None) -> ir.Table:
    """Distinct feedback comments with their CSAT answer and how often each pair occurs: (comment,
    csat, n) over non-blank comments in ``units`` (None: all; after the unit mapping). What comment
    themes (cxstats.themes) model: every text comes back once, with its count, not one row per answer.
    Unordered (sort after fetching)."""
    f = only_units(mapped_units(feedback, unit_map), units)
    f = f.filter(_has_text(f.comment))
    return f.group_by("comment", "csat").aggregate(n=f.count().cast("int64"))


def mention_texts(mentions: ir.Table) -> ir.Table:
    """Distinct non-blank mention texts and how often each occurs: (text, n). Unordered."""
    m = mentions.filter(_has_text(mentions.text))
    return m.group_by("text").aggregate(n=m.count().cast("int64"))


def latest_date(t, table: ir.Table, column: str, units: Sequence[str] | None = None):
    """The latest date of ``column`` (a date or timestamp, as a date) over ``units``' rows (None: all),
    run on ``t`` (:class:`cxstats.engine.Tables`); None when there are no rows. ``units`` filters
    on the rows' own unit_id, as the data-quality counts do."""
    rows = only_units(table, units)
    out = t.execute(rows.aggregate(last=rows[column].cast("date").max())).to_pylist()
    return out[0]["last"] if out else None


# ---------------------------------------------------------------- the DuckDB file: compiled once, ahead of time

SQL_FILE = Path(__file__).with_name("unit_aggregates_sql.py")
# the values bound at run time ($units, $period_from, $period_to): placeholders in the compiled SQL,
# written into the expressions as these sentinel values and swapped for named parameters in the tree
# a bound not given: every label ('2026-Q3', '2026-07') sorts between these two
NO_PERIOD_FROM, NO_PERIOD_TO = "", "\uffff"
PARAM_SENTINELS = {"units": "cxstats:param:units", "period_from": "cxstats:param:from", "period_to": "cxstats:param:to"}


def _unbound(name: str) -> ir.Table:
    """The engine table ``name`` (columns and types of :func:`cxstats.engine.table_columns`), unbound."""
    from . import engine

    if name == "unit_map":
        return ibis.table({"from_unit": "string", "to_unit": "string"}, name="unit_map")
    return ibis.table({c: engine._ibis_type(t) for c, t, _ in engine.table_columns(name)}, name=name)


def duckdb_variants() -> dict[tuple, ir.Table]:
    """Every form the DuckDB file runs, keyed as :mod:`cxstats.unit_aggregates_sql` keys them:

    - ``("cx_counts", period, by_channel, filtered)``: :func:`cx_counts`; ``filtered``: the viewer's
      units are bound as ``$units`` (a list of unit ids);
    - ``("reply_times", period, with_mentions, filtered)``: :func:`reply_times` with both bounds bound
      as ``$period_from`` / ``$period_to`` (no bound: :data:`NO_PERIOD_FROM` / :data:`NO_PERIOD_TO`);
    - ``("feedback_comments", filtered)``: :func:`feedback_comments`; ``("mention_texts",)``.

    The DuckDB file always has a ``unit_map`` table (empty when nothing was re-organised).
    """
    fb, um, m = _unbound("feedback"), _unbound("unit_map"), _unbound("mentions")
    units = [PARAM_SENTINELS["units"]]
    out: dict[tuple, ir.Table] = {}
    for period in periods.PERIODS:
        for by_channel in (False, True):
            for filtered in (False, True):
                out[("cx_counts", period, by_channel, filtered)] = cx_counts(
                    fb, um, period=period, units=units if filtered else None, by_channel=by_channel
                )
        for with_mentions in (False, True):
            for filtered in (False, True):
                out[("reply_times", period, with_mentions, filtered)] = reply_times(
                    fb,
                    um,
                    m if with_mentions else None,
                    period=period,
                    units=units if filtered else None,
                    period_from=PARAM_SENTINELS["period_from"],
                    period_to=PARAM_SENTINELS["period_to"],
                )
    for filtered in (False, True):
        out[("feedback_comments", filtered)] = feedback_comments(fb, um, units=units if filtered else None)
    out[("mention_texts",)] = mention_texts(m)
    return out


def compile_duckdb(expr: ir.Table) -> str:
    """``expr`` as DuckDB SQL (``ibis.to_sql``'s compiler), the sentinels of :data:`PARAM_SENTINELS`
    replaced by named parameters: ``unit_id IN ('<units>')`` by ``list_contains(CAST($units AS
    TEXT[]), unit_id)``, a period bound by ``$period_from`` / ``$period_to``."""
    import sqlglot.expressions as sge
    from ibis.backends.sql.compilers import duckdb as duckdb_compiler

    compiler = duckdb_compiler.compiler
    tree = compiler.to_sqlglot(expr.unbind())
    by_value = {v: k for k, v in PARAM_SENTINELS.items()}

    def swap(node):
        if isinstance(node, sge.In) and len(node.expressions) == 1:
            (only,) = node.expressions
            if isinstance(only, sge.Literal) and only.this == PARAM_SENTINELS["units"]:
                units = sge.Cast(this=sge.Placeholder(this="units"), to=sge.DataType.build("TEXT[]", dialect="duckdb"))
                return sge.Anonymous(this="list_contains", expressions=[units, node.this.copy()])
        if isinstance(node, sge.Literal) and node.is_string and node.this in by_value:
            return sge.Placeholder(this=by_value[node.this])
        return node

    sql = tree.transform(swap).sql(dialect=compiler.dialect, pretty=True)
    left = [k for k, v in PARAM_SENTINELS.items() if v in sql]
    if left:
        raise RuntimeError(f"compiled SQL still holds the sentinel of {left}")
    return sql


def compiler_versions() -> dict[str, str]:
    """The Ibis and sqlglot versions whose compile :mod:`cxstats.unit_aggregates_sql` stores."""
    from importlib.metadata import version

    return {"ibis-framework": version("ibis-framework"), "sqlglot": version("sqlglot")}


def compiled_duckdb_sql() -> dict[tuple, str]:
    """Every :func:`duckdb_variants` form compiled (what :mod:`cxstats.unit_aggregates_sql` stores)."""
    return {key: compile_duckdb(expr) for key, expr in duckdb_variants().items()}


def write_sql_module(path: Path = SQL_FILE) -> Path:
    """Write :mod:`cxstats.unit_aggregates_sql` from today's expressions."""
    lines = [
        '"""GENERATED by ``python -m cxstats.unit_aggregates`` from the Ibis expressions of',
        "cxstats.unit_aggregates (the one definition): do not edit by hand.",
        "",
        "The per (unit, period) CX aggregates as DuckDB SQL, for the DuckDB file (the default engine): no",
        "Ibis import and no compiling in a command's path. Keys: see unit_aggregates.duckdb_variants;",
        "parameters are named ($units, $period_from, $period_to). tests/test_unit_aggregates.py checks that",
        "these are what the expressions compile to.",
        '"""',
        "",
        f"NO_PERIOD_FROM, NO_PERIOD_TO = {NO_PERIOD_FROM!r}, {NO_PERIOD_TO!r}  # a period bound not given",
        "",
        f"COMPILED_WITH = {compiler_versions()!r}  # the text below is exactly these versions' compile",
        "",
        f"REPLY_TARGETS = {tuple(float(h) for h in REPLY_TARGETS)!r}  # answers within each are counted",
        f"WITHIN_COLUMNS = { ({float(h): within_column(h) for h in REPLY_TARGETS})!r}  # target -> column",
        "",
        "# fmt: off",
        "SQL: dict[tuple, str] = {",
    ]
    for key, sql in compiled_duckdb_sql().items():
        lines.append(f"    {key!r}: (")
        lines.extend(f"        {part!r}" for part in sql.splitlines(keepends=True))
        lines.append("    ),")
    lines += ["}", "# fmt: on", ""]
    path.write_text("\n".join(lines))
    import shutil
    import subprocess

    if shutil.which("ruff"):  # the tree is formatted (make lint); the SQL block is fmt: off
        subprocess.run(["ruff", "format", "--quiet", str(path)], check=False)
    return path


if __name__ == "__main__":  # python -m cxstats.unit_aggregates: regenerate cxstats/unit_aggregates_sql.py
    print(f"wrote {write_sql_module()}")
