"""Issue 16 (engine-adv): the advocates list (JSON), the value model and the programme effect give the
same results on the DuckDB file, on a Parquet lake read by DuckDB and on Spark local[2] over the same
lake; the partitioned percentile ranks equal scipy's rankdata(..., 'average') / n.

Two databases: the demo, and a planted customer panel built to hit every rule of the per-customer
aggregation: orders of several lines, lines without an order_id, returns (orders that net to zero or
below do not count), several orders on one day (one transaction day), orders whose lines straddle an
explicit as_of, mentions matched by customer_id and by handle (with '@' and case), a handle two
customers share, unknown handles, repeated posts, mentions without a stored sentiment (VADER), NPS
answers on the same day, recent detractors, duplicate e-mails and a hold-out export. The lake is
written by ``lake export``. The bar (DESIGN.md "Acceptance notes"): same ids in the same order
(score ties by customer_id), numbers within ``1e-9 * max(1, |a|, |b|)``, the same warnings word for
word. Spark tests are ``slow`` (CI runs them) and share the process's one SparkSession
(cxstats.engine caches it).
"""

from __future__ import annotations

import json
import uuid
from datetime import date, timedelta
from pathlib import Path

import duckdb
import ibis
import numpy as np
import pandas as pd
import pytest
from engine_fixtures import assert_same, build_dbs, engine_cfg, engine_of
from scipy.stats import rankdata

from cxstats import ADMIN, advocates, engine, programme, store, value
from cxstats import customer_aggregates as ca

pytest_plugins = ["engine_fixtures"]  # on_duckdb: results() on the DuckDB file for each of dbs

START = date(2023, 1, 2)
CUT = date(2024, 9, 15)  # an explicit as_of that cuts orders whose lines straddle it


# ---------------------------------------------------------------- the planted panel


def _load(con, kind: str, frame: pd.DataFrame) -> None:
    frame = frame.copy()
    frame.insert(0, "row_no", range(2, 2 + len(frame)))
    store.load_batch(con, kind, {kind: frame}, file_name=f"{kind}.csv", sha256=uuid.uuid4().hex, rows=len(frame))


def planted(path: Path, seed: int = 7, n: int = 160) -> None:
    rng = np.random.default_rng(seed)
    ids = [f"P{i:04d}" for i in range(n)]
    lines = []
    order_no = 0
    for i, cid in enumerate(ids):
        rate = rng.gamma(1.5, 1.0)  # orders per month while active
        stop = START + timedelta(days=int(rng.integers(60, 700)))
        d = START + timedelta(days=int(rng.integers(0, 120)))
        while d <= min(stop, date(2024, 12, 31)):
            order_no += 1
            no_id = rng.random() < 0.08
            for ln in range(1 if no_id else int(rng.integers(1, 4))):
                amt = round(float(rng.integers(100, 9000)) / 100, 2)
                lines.append((cid, d, amt, None if no_id else f"O{order_no}", ln + 1))
            if rng.random() < 0.08:  # a return on a later day: the order may net to zero or below
                lines.append(
                    (
                        cid,
                        d + timedelta(days=int(rng.integers(1, 30))),
                        -round(float(rng.integers(100, 20000)) / 100, 2),
                        f"O{order_no}",
                        9,
                    )
                )
            if rng.random() < 0.15:  # a second order on the same day: one transaction day
                order_no += 1
                lines.append((cid, d, 12.5, f"O{order_no}", 1))
            d += timedelta(days=max(1, int(rng.exponential(30 / rate))))
    p = pd.DataFrame(lines, columns=["customer_id", "order_date", "amount", "order_id", "line_no"])
    # orders whose lines straddle CUT (first line before, more after)
    p = pd.concat(
        [
            p,
            pd.DataFrame(
                [
                    (ids[1], CUT - timedelta(days=3), 40.0, "S1", 1),
                    (ids[1], CUT + timedelta(days=2), -55.0, "S1", 2),
                    (ids[2], CUT - timedelta(days=1), -5.0, "S2", 1),
                    (ids[2], CUT + timedelta(days=1), 30.0, "S2", 2),
                ],
                columns=p.columns,
            ),
        ],
        ignore_index=True,
    )
    emails = [f"p{i}@example.com" for i in range(n)]
    emails[5] = emails[6] = emails[7] = "Shared@Example.com "  # duplicates (case and spaces ignored)
    handles = [f"@Handle{i}" if i % 3 else None for i in range(n)]
    handles[10] = handles[11] = "@twin"  # one handle, two customers: mentions by it reach nobody
    customers = pd.DataFrame(
        {
            "customer_id": ids,
            "name": [f"Name {i}" for i in range(n)],
            "email": emails,
            "handle": handles,
            "marketing_consent": rng.random(n) < 0.8,
        }
    )
    ments = []
    for i, cid in enumerate(ids):
        for _ in range(int(rng.poisson(1.5))):
            by_handle = handles[i] is not None and rng.random() < 0.5
            ments.append(
                {
                    "customer_id": None if by_handle else cid,
                    "handle": (handles[i].upper() if rng.random() < 0.5 else handles[i].lstrip("@"))
                    if by_handle
                    else None,
                    "posted_at": pd.Timestamp(START) + pd.Timedelta(hours=int(rng.integers(0, 16000))),
                    "text": f"post {int(rng.integers(0, 40))}",
                    "followers": int(rng.integers(0, 200000)),
                    "sentiment": round(float(rng.uniform(-1, 1)), 3),
                    "sentiment_source": "file",
                }
            )
    for k in range(4):  # repeated posts; a shared handle; unknown handles; texts without a stored sentiment
        ments.append(
            {
                "customer_id": ids[20],
                "handle": None,
                "posted_at": pd.Timestamp("2024-05-01") + pd.Timedelta(days=k),
                "text": " Same text ",
                "followers": 10,
                "sentiment": 0.5,
                "sentiment_source": "file",
            }
        )
    ments += [
        {
            "customer_id": None,
            "handle": "@TWIN",
            "posted_at": pd.Timestamp("2024-06-01"),
            "text": "love it",
            "followers": 5,
            "sentiment": 0.8,
            "sentiment_source": "file",
        },
        {
            "customer_id": None,
            "handle": "nobody",
            "posted_at": pd.Timestamp("2024-06-02"),
            "text": "meh",
            "followers": None,
            "sentiment": -0.2,
            "sentiment_source": "file",
        },
        {
            "customer_id": ids[3],
            "handle": None,
            "posted_at": pd.Timestamp("2024-11-20"),
            "text": "I absolutely love this wonderful shop",
            "followers": 99,
            "sentiment": None,
            "sentiment_source": None,
        },
        {
            "customer_id": ids[4],
            "handle": None,
            "posted_at": pd.Timestamp("2024-12-01"),
            "text": "terrible awful service, I hate it",
            "followers": 3,
            "sentiment": None,
            "sentiment_source": None,
        },
    ]
    m = pd.DataFrame(ments)
    fb = []
    for i, cid in enumerate(ids):
        for _ in range(int(rng.poisson(1.2))):
            fb.append(
                {
                    "unit_id": "U1",
                    "date": START + timedelta(days=int(rng.integers(0, 720))),
                    "customer_id": cid,
                    "nps": int(rng.integers(0, 11)) if rng.random() < 0.7 else None,
                    "csat": int(rng.integers(1, 6)) if rng.random() < 0.6 else None,
                }
            )
    fb += [
        {"unit_id": "U1", "date": date(2024, 12, 1), "customer_id": ids[8], "nps": 10, "csat": None},
        {"unit_id": "U1", "date": date(2024, 12, 1), "customer_id": ids[8], "nps": 3, "csat": None},  # same day
        {"unit_id": "U1", "date": date(2024, 12, 10), "customer_id": ids[9], "nps": 4, "csat": 2},
    ]  # recent detractor
    fb = [r for r in fb if r["nps"] is not None or r["csat"] is not None]
    f = pd.DataFrame(fb)
    f[["nps", "csat"]] = f[["nps", "csat"]].astype("Int64")
    with store.connect(path) as con:
        _load(con, "units", pd.DataFrame({"unit_id": ["U1"]}))
        _load(con, "customers", customers)
        _load(con, "purchases", p)
        _load(con, "mentions", m)
        _load(con, "feedback", f)
        _load(
            con,
            "rewards",
            pd.DataFrame(
                {"customer_id": ids[:30:3], "reward_date": [date(2024, 6, 1)] * 10, "reward_type": ["voucher"] * 10}
            ),
        )
        # a hold-out export recorded by hand (arms and list date): the effect's first design
        arms = ["reward" if k % 2 else "holdout" for k in range(40)]
        store.record_holdout(
            con,
            1,
            [c for c, a in zip(ids[40:80], arms) if a == "reward"],
            [c for c, a in zip(ids[40:80], arms) if a == "holdout"],
            date(2024, 7, 1),
            3,
            50.0,
        )


# ---------------------------------------------------------------- results on each engine


@pytest.fixture(scope="module")
def dbs(tmp_path_factory):
    return build_dbs(tmp_path_factory.mktemp("engine_customers"), planted, demo_customers=400)


def _cut(con):
    """The explicit as_of: CUT on the planted panel (orders straddle it), 100 days before the end otherwise."""
    first, last = con.execute("SELECT min(order_date), max(order_date) FROM purchases").fetchall()[0]
    return CUT if first <= CUT <= last else last - timedelta(days=100)


def _rewardable_rising(df, as_of):
    return (advocates.reward_mask(df) & (df["tier"] == "Rising")).to_numpy(dtype=bool)


def results(db: Path, cfg: engine.EngineConfig) -> dict:
    """The JSON of advocates (every listed customer, default and explicit as_of), the value model's
    per-customer figures and the programme effect, on one engine."""
    out = {}
    with store.connect(db) as con:
        cut = _cut(con)
        for tag, as_of in (("latest", None), ("cut", cut)):
            r = advocates.score(con, viewer=ADMIN, as_of=as_of, engine=cfg, everyone=True)
            out[f"advocates_{tag}"] = r.as_json(0)
            out[f"unmatched_{tag}"] = r.unmatched_handles.drop(columns=["reach"]).to_dict("records")
            out[f"gates_{tag}"] = dict(r.gate_counts)
            ev = r.everyone.sort_values("customer_id")
            out[f"ranks_{tag}"] = ev[["customer_id", "R", "F", "M", "orders", "spend", "recency_days"]].to_dict("list")
            if r.clv is not None and r.clv.bgnbd is not None:
                c = r.clv.customers.sort_values("customer_id")
                out[f"clv_{tag}"] = c[
                    ["customer_id", "x", "t_x_days", "T_days", "m", "p_alive", "expected_orders", "expected_value"]
                ].to_dict("list")
            out[f"clv_reason_{tag}"] = r.clv.reason if r.clv else None
        # a filtered top N (an export's or to_reward's keep) pages through the list on the engine:
        # pages after the last (score, customer_id) fetched, small pages so that several are asked
        saved, advocates.PAGE_ROWS = advocates.PAGE_ROWS, 2
        try:
            paged = advocates.score(con, viewer=ADMIN, engine=cfg, top=4, keep=_rewardable_rising)
        finally:
            advocates.PAGE_ROWS = saved
        out["advocates_paged"] = paged.as_json(0)
        out["advocates_paged_complete"] = paged.complete
        cv = value.customer_value(con, viewer=ADMIN, as_of=cut, engine=cfg, horizon_weeks=26)
        out["value_cut"] = {
            "json": cv.as_json(),
            "reason": cv.reason,
            "backtest_reason": cv.backtest_reason,
            "summary": cv.customers[["customer_id", "x", "t_x_days", "T_days", "m", "cal_days", "actual"]].to_dict(
                "list"
            ),
        }
        out["effect"] = programme.programme_effect(con, viewer=ADMIN, n_boot=200, engine=cfg).as_json()
    return json.loads(json.dumps(out, default=str))


@pytest.mark.parametrize("name", ["demo", "planted"])
def test_the_figures_are_real(on_duckdb, name):
    r = on_duckdb[name]
    for tag in ("latest", "cut"):
        assert len(r[f"advocates_{tag}"]["customers"]) >= 5, tag
        assert len(r[f"ranks_{tag}"]["customer_id"]) >= 100
    if name == "planted":
        assert any(u["handle"] == "twin" and u["why"] == "handle belongs to 2 customers" for u in r["unmatched_latest"])
        reasons = [x for c in r["advocates_latest"]["customers"] for x in c["reasons"]]
        assert any("same email" in x for x in reasons) or r["gates_latest"]["passed"] > 0
    assert r["effect"]["designs"]
    assert len(r["value_cut"]["summary"]["customer_id"]) >= 100
    # the paged call asked more than its first page (2 x top = 8 rows) and four of its rows pass the filter
    paged = r["advocates_paged"]["customers"]
    assert len(paged) > 8 and not r["advocates_paged_complete"]
    assert sum(c["tier"] == "Rising" for c in paged) >= 4


@pytest.mark.parametrize("name", ["demo", "planted"])
def test_lake_read_by_duckdb_gives_the_same_results(dbs, on_duckdb, name):
    db, cfg = engine_of("lake", dbs, name)
    assert_same(on_duckdb[name], results(db, cfg), name)


def test_the_duckdb_path_reads_the_lines_when_day_totals_are_stale(dbs, on_duckdb):
    db, lake = dbs["planted"]
    with store.connect(db) as con:
        fresh = con.execute("SELECT value FROM meta WHERE key = 'day_totals_source'").fetchall()[0][0]
        con.execute("UPDATE meta SET value = 'stale' WHERE key IN ('order_totals_source', 'day_totals_source')")
    try:
        got = results(db, engine_cfg("duckdb", db, lake))
    finally:
        with store.connect(db) as con:
            con.execute("UPDATE meta SET value = ? WHERE key IN ('order_totals_source', 'day_totals_source')", [fresh])
    assert_same(on_duckdb["planted"], got, "stale")


# ---------------------------------------------------------------- percentile ranks against scipy


def _rank_cases():
    rng = np.random.default_rng(3)
    return {
        "ties": rng.integers(0, 7, 500),  # few distinct values: many ties in each partition
        "spend": np.round(rng.lognormal(3, 1.5, 2000), 2),  # about one distinct value per customer, skewed
        "one": np.array([5]),
        "constant": np.full(40, 2),
        "negative": rng.integers(-900, 0, 300),  # e.g. -recency
    }


def _ranks_on(backend_table, t_execute, values):
    stats = t_execute(backend_table.aggregate(n=backend_table.count(), b=ca.rank_bounds(backend_table.v)))
    row = stats.to_pylist()[0]
    r = t_execute(ca.percentile_rank(backend_table, "v", int(row["n"]), row["b"] or [])).to_pandas()
    got = dict(zip(r["value"].astype(float), r["pct"]))
    return np.array([got[float(x)] for x in values])


@pytest.mark.parametrize("case", list(_rank_cases()))
def test_partitioned_percentile_ranks_equal_scipy_rankdata(case):
    values = _rank_cases()[case]
    con = duckdb.connect()
    try:
        con.execute("CREATE TABLE r (v DECIMAL(18, 2))" if case == "spend" else "CREATE TABLE r (v BIGINT)")
        con.executemany("INSERT INTO r VALUES (?)", [[float(x) if case == "spend" else int(x)] for x in values])
        b = ibis.duckdb.from_connection(con)
        got = _ranks_on(b.table("r"), b.to_pyarrow, values)
    finally:
        con.close()
    want = rankdata(values, method="average") / len(values)
    assert np.allclose(got, want, rtol=0, atol=1e-12), case
    # several partitions really were used (not one window over everything)
    if case in ("spend", "negative"):
        assert len(set(np.round(want, 6))) > ca.RANK_PARTITIONS


def test_percentile_ranks_are_the_advocates_ranks(on_duckdb):
    r = on_duckdb["demo"]["ranks_latest"]
    n = len(r["customer_id"])
    assert np.allclose(r["F"], rankdata(r["orders"], "average") / n, atol=1e-12)
    assert np.allclose(r["M"], rankdata(r["spend"], "average") / n, atol=1e-12)
    assert np.allclose(r["R"], rankdata(-np.asarray(r["recency_days"]), "average") / n, atol=1e-12)


# ---------------------------------------------------------------- Spark


@pytest.mark.slow
@pytest.mark.timeout(2400)  # Spark local[2] on a loaded 2-core machine: many small jobs, each a few seconds
@pytest.mark.parametrize("name", ["demo", "planted"])
def test_spark_over_the_lake_gives_the_same_results(dbs, on_duckdb, name):
    pytest.importorskip("pyspark")
    db, cfg = engine_of("spark", dbs, name)
    assert_same(on_duckdb[name], results(db, cfg), name)


@pytest.mark.slow
def test_partitioned_percentile_ranks_on_spark_equal_scipy(tmp_path):
    pytest.importorskip("pyspark")
    session = engine.spark_session("local[2]")
    b = ibis.pyspark.connect(session)
    for case in ("ties", "spend"):
        values = _rank_cases()[case]
        path = tmp_path / f"{case}.parquet"
        local = duckdb.connect()
        local.register("values_frame", pd.DataFrame({"v": values}))
        local.sql(
            "SELECT CAST(v AS DECIMAL(18, 2)) AS v FROM values_frame"
            if case == "spend"
            else "SELECT v FROM values_frame"
        ).to_parquet(str(path))
        local.close()
        session.read.parquet(str(path)).createOrReplaceTempView(f"ranks_{case}")
        got = _ranks_on(b.table(f"ranks_{case}"), b.to_pyarrow, values)
        assert np.allclose(got, rankdata(values, "average") / len(values), rtol=0, atol=1e-12), case
