"""cxstats.unit_aggregates: the Ibis expressions give the rows of the SQL they replace, on DuckDB.

The reference queries below are the SQL cxstats.metrics ran before the engines (issue 16), kept here
verbatim as the outside check: per (unit, period[, channel]) feedback counts with the unit mapping
of re-organisations and a manager's unit filter, and the response-time rows of the Customers page.
"""

from __future__ import annotations

import duckdb
import ibis
import numpy as np
import pandas as pd
import pytest
from linkage_data import build, load_feedback, survey

from cxstats import ADMIN, Viewer, ingest, metrics, store
from cxstats import unit_aggregates as ua

REF_COUNTS = """
WITH f AS (
    SELECT unit_id, {chan} CAST(date_trunc('{trunc}', date) AS DATE) AS period_start, csat, nps
    FROM (SELECT t.* REPLACE (coalesce(um.to_unit, t.unit_id) AS unit_id) FROM feedback t
          LEFT JOIN unit_map um ON um.from_unit = t.unit_id)
    WHERE ? OR list_contains(?::VARCHAR[], unit_id)
)
SELECT unit_id, {chan_g} period_start, {ordinal} AS period_index,
       count(csat) AS csat_n, count(*) FILTER (WHERE csat >= 4) AS csat_top2,
       coalesce(sum(csat), 0) AS csat_sum, coalesce(sum(csat * csat), 0) AS csat_sq, count(nps) AS nps_n,
       count(*) FILTER (WHERE nps >= 9) AS promoters, count(*) FILTER (WHERE nps <= 6) AS detractors
FROM f GROUP BY ALL ORDER BY ALL
"""


def _ref_counts(con, period: str, units, by_channel: bool) -> pd.DataFrame:
    ordinal = (
        "(year(period_start) * 4 + quarter(period_start) - 1)"
        if period == "quarter"
        else "(year(period_start) * 12 + month(period_start) - 1)"
    )
    sql = REF_COUNTS.format(
        chan="coalesce(nullif(trim(channel), ''), 'unknown') AS channel," if by_channel else "",
        chan_g="channel," if by_channel else "",
        trunc=period,
        ordinal=ordinal,
    )
    return con.execute(sql, [units is None, list(units or [])]).df()


@pytest.fixture(scope="module")
def db(tmp_path_factory):
    path = tmp_path_factory.mktemp("ua") / "ua.duckdb"
    with store.connect(path) as con:
        build(con, survey(3, n_units=8, n_periods=5))
        # odd feedback: blank and padded channels, a row with no csat, a row with neither metric in a period
        # of its own (sums of no answers are 0), a month boundary
        odd = pd.DataFrame(
            {
                "unit_id": ["U000", "U001", "U001", "U002"],
                "date": ["2024-03-31", "2024-04-01", "2023-02-10", "2024-06-30"],
                "csat": [None, 5, None, 2],
                "nps": [9, None, None, 0],
                "channel": ["  ", " email ", None, "phone"],
            }
        )
        odd["csat"] = odd["csat"].astype("Int64")
        odd["nps"] = odd["nps"].astype("Int64")
        load_feedback(con, odd, tag="odd")
    frame = pd.DataFrame(
        [("U000", "U001", "2024-07-01"), ("U003", "U004", "2024-07-01")],
        columns=["from_unit", "to_unit", "effective_date"],
    )
    ingest.import_file(path, "reorgs", frame.to_csv(index=False).encode(), file_name="reorgs.csv", viewer=ADMIN)
    return path


@pytest.fixture
def tables(db):
    con = duckdb.connect(str(db))
    yield con, ibis.duckdb.from_connection(con)
    con.close()


def _sorted(frame: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    out = frame.sort_values(keys, kind="mergesort").reset_index(drop=True)
    out["period_start"] = pd.to_datetime(out["period_start"]).dt.date
    return out


@pytest.mark.parametrize("period", ["quarter", "month"])
@pytest.mark.parametrize("units", [None, ["U001", "U002"], []])
@pytest.mark.parametrize("by_channel", [False, True])
def test_cx_counts_equal_the_sql(tables, period, units, by_channel):
    con, t = tables
    keys = ["unit_id"] + (["channel"] if by_channel else []) + ["period_start"]
    ref = _sorted(_ref_counts(con, period, units, by_channel), keys)
    got = _sorted(
        ua.cx_counts(t.table("feedback"), t.table("unit_map"), period=period, units=units, by_channel=by_channel)
        .to_pyarrow()
        .to_pandas(),
        keys,
    )
    assert list(got.columns) == list(ref.columns)
    assert len(got) == len(ref) and (units != [] or len(got) == 0)
    for c in ref.columns:
        assert list(got[c]) == list(ref[c]), c
    for c in ua.CX_COUNT_COLUMNS + ("period_index",):
        assert got[c].dtype == np.int64


def test_reorganised_units_take_their_successor(tables):
    con, t = tables
    got = ua.cx_counts(t.table("feedback"), t.table("unit_map"), period="quarter").to_pyarrow().to_pandas()
    assert "U000" not in set(got["unit_id"]) and "U003" not in set(got["unit_id"])
    plain = ua.cx_counts(t.table("feedback"), None, period="quarter").to_pyarrow().to_pandas()
    assert {"U000", "U003"} <= set(plain["unit_id"])
    assert got["csat_n"].sum() == plain["csat_n"].sum()


REF_REPLIES = """
SELECT 'feedback' AS source, coalesce(nullif(trim(channel), ''), 'unknown') AS channel,
       epoch(responded_at - contacted_at) / 3600.0 AS hours, {label} AS period
FROM (SELECT t.* REPLACE (coalesce(um.to_unit, t.unit_id) AS unit_id) FROM feedback t
      LEFT JOIN unit_map um ON um.from_unit = t.unit_id)
WHERE contacted_at IS NOT NULL AND (? OR list_contains(?::VARCHAR[], unit_id))
UNION ALL
SELECT 'mentions', coalesce(nullif(trim(platform), ''), 'unknown'), epoch(replied_at - posted_at) / 3600.0,
       {mlabel}
FROM mentions WHERE posted_at IS NOT NULL AND ?
"""


@pytest.fixture(scope="module")
def demo_db(tmp_path_factory):
    from cxstats import demo

    path = tmp_path_factory.mktemp("uad") / "demo.duckdb"
    demo.build_demo(path, units=8, customers=300)
    return path


@pytest.mark.parametrize(
    "units, window", [(None, (None, None)), (None, ("2025-Q1", "2025-Q3")), (["S002", "S003"], ("2025-Q2", None))]
)
def test_reply_times_equal_the_rows_they_summarise(demo_db, units, window):
    con = duckdb.connect(str(demo_db))
    try:
        t = ibis.duckdb.from_connection(con)
        mentions = units is None
        got = (
            ua.reply_times(
                t.table("feedback"),
                t.table("unit_map"),
                t.table("mentions") if mentions else None,
                period="quarter",
                units=units,
                period_from=window[0],
                period_to=window[1],
            )
            .to_pyarrow()
            .to_pandas()
        )
        rows = con.execute(
            REF_REPLIES.format(
                label="(CAST(year(date) AS VARCHAR) || '-Q' || CAST(quarter(date) AS VARCHAR))",
                mlabel="(CAST(year(posted_at) AS VARCHAR) || '-Q' || CAST(quarter(posted_at) AS VARCHAR))",
            ),
            [units is None, list(units or []), mentions],
        ).df()
    finally:
        con.close()
    lo, hi = window
    if lo:
        rows = rows[rows["period"] >= lo]
    if hi:
        rows = rows[rows["period"] <= hi]
    assert len(rows) > 50
    got = got.sort_values(["source", "channel"]).reset_index(drop=True)
    keys = sorted(set(zip(rows["source"], rows["channel"])))
    assert list(zip(got["source"], got["channel"])) == keys
    for (src, ch), g in zip(keys, got.itertuples()):
        h = rows[(rows["source"] == src) & (rows["channel"] == ch)]["hours"]
        assert g.contacts == len(h) and g.answered == h.notna().sum()
        for target in ua.REPLY_TARGETS:
            assert getattr(g, ua.within_column(target)) == (h <= target).sum()
        assert g.median_hours == pytest.approx(h.median(), rel=1e-12, abs=1e-9)


def test_manager_viewer_sees_his_units_only(tables):
    con, t = tables
    mgr = Viewer("manager", ("U001",))
    got = (
        ua.cx_counts(t.table("feedback"), t.table("unit_map"), period="quarter", units=metrics._cx_viewer(mgr)[1])
        .to_pyarrow()
        .to_pandas()
    )
    assert set(got["unit_id"]) == {"U001"}


def test_reply_targets_cover_every_channel_target():
    assert set(ua.REPLY_TARGETS) == set(metrics.REPLY_TARGET_HOURS.values()) | {metrics.DEFAULT_REPLY_TARGET_HOURS}


# ---------------------------------------------------------------- the DuckDB file runs the same expressions


def test_the_shipped_sql_is_what_the_expressions_compile_to():
    """cxstats.unit_aggregates_sql (what the DuckDB file runs) is generated from the expressions: the
    stored SQL must be today's compile (else: python -m cxstats.unit_aggregates)."""
    from cxstats import unit_aggregates_sql as compiled

    assert set(compiled.SQL) == set(ua.duckdb_variants())
    assert compiled.REPLY_TARGETS == ua.REPLY_TARGETS
    assert compiled.WITHIN_COLUMNS == {h: ua.within_column(h) for h in ua.REPLY_TARGETS}
    assert (compiled.NO_PERIOD_FROM, compiled.NO_PERIOD_TO) == (ua.NO_PERIOD_FROM, ua.NO_PERIOD_TO)
    for key, sql in compiled.SQL.items():
        assert ("$units" in sql) == (key[-1] is True), key  # the viewer's units are bound, never written into the SQL
        assert ("$period_from" in sql) == (key[0] == "reply_times"), key
    # the text itself is one compiler's: another sqlglot release may print the same query differently (the
    # stored SQL's results stay checked against the reference SQL below whatever is installed)
    if compiled.COMPILED_WITH != ua.compiler_versions():
        pytest.skip(f"stored SQL compiled with {compiled.COMPILED_WITH}, installed {ua.compiler_versions()}")
    assert compiled.SQL == ua.compiled_duckdb_sql(), "stale: regenerate with python -m cxstats.unit_aggregates"


@pytest.mark.parametrize("viewer", [ADMIN, Viewer("manager", ("U001", "U002")), Viewer("manager", ())])
@pytest.mark.parametrize("period, by_channel", [("quarter", False), ("month", True)])
def test_metrics_counts_on_the_duckdb_file_equal_the_sql(db, viewer, period, by_channel):
    """metrics.cx_counts on the DuckDB file (the compiled expressions, with $units bound) gives the
    reference SQL's rows, for an admin and for managers (one with no unit at all)."""
    units = viewer.unit_filter()
    with store.connect(db) as con:
        ref = _ref_counts(con, period, None if units is None else list(units), by_channel)
        got = metrics.cx_counts(con, viewer=viewer, period=period, by_channel=by_channel)
    keys = ["unit_id"] + (["channel"] if by_channel else []) + ["period_start"]
    ref, got = _sorted(ref, keys), _sorted(got, keys)
    assert list(got.columns) == list(ref.columns) and len(got) == len(ref)
    for c in ref.columns:
        assert list(got[c]) == list(ref[c]), c


def test_the_duckdb_file_path_does_not_import_ibis(demo_db):
    """A command on the DuckDB file runs the compiled SQL: Ibis (about 1 s of CPU to import and set
    up) is not loaded by linkage, focus or the CX figures."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    code = f"""
import sys
from cxstats import ADMIN, focus, linkage, metrics, store
with store.connect({str(demo_db)!r}) as con:
    linkage.analyse(con, viewer=ADMIN)
    focus.changes(con, viewer=ADMIN)
    metrics.response_times(con, viewer=ADMIN)
    metrics.cx_by_channel(con, viewer=ADMIN)
print(sorted(m for m in sys.modules if m == "ibis" or m.startswith("ibis.")))
"""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CXSTATS_")}
    root = Path(__file__).resolve().parents[1]
    env["PYTHONPATH"] = str(root)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=root)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == "[]"
