"""Linkage at scale: cxstats.linkage.analyse beside a pandas peer doing the same aggregation.

    python benchmarks/bench_linkage.py                      # 1,000,000 respondents, 5,000,000 feedback rows
    python benchmarks/bench_linkage.py --respondents 100000 --feedback 500000   # quicker

Data (built once into a DuckDB file, not timed): `units` units x `quarters` calendar quarters,
respondents spread evenly, `items` 1..5 items each (so respondents x items answer rows), feedback
rows with csat and nps. Wall and CPU seconds (all threads) are reported. Each side runs in its own subprocess (peak memory = that process's
ru_maxrss, which includes DuckDB's memory):

- cxstats: open the database and run ``linkage.analyse`` (respondent scores, (unit, quarter)
  groups with suppression, item cells, feedback counts, then the statistics);
- pandas peer: the same tables already loaded as DataFrames (loading not timed), then the same
  aggregation with groupby: respondent means over index items, the half-of-items rule, group
  index and suppression, item cells, feedback counts per unit-quarter, and the same statistics
  (fixed effects for 5 lags, unit-level correlations).

The machine is shared; run it when it is quiet and read figures as rough.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from cxstats import ADMIN  # noqa: E402  (after the path: the benchmarks run from a checkout)


def build(db: Path, respondents: int, feedback: int, units: int, quarters: int, items: int) -> None:
    from cxstats import store

    if db.exists():
        db.unlink()
    with store.connect(db) as con:
        con.execute("SELECT setseed(0.42)")
        con.execute(
            """
            CREATE TEMP TABLE uq AS
            SELECT u, q, random() * 2 - 1 AS level FROM range(?) t(u), range(?) s(q)""",
            [units, quarters],
        )
        con.execute(
            """
            INSERT INTO engagement (batch_id, row_no, unit_id, survey_date, enps)
            SELECT 1, i + 2, 'U' || lpad(CAST(i % ? AS VARCHAR), 4, '0'),
                   CAST(DATE '2023-01-10' + to_months(CAST(3 * ((i // ?) % ?) AS INTEGER)) AS DATE),
                   CAST(floor(random() * 11) AS INTEGER)
            FROM range(?) t(i)""",
            [units, units, quarters, respondents],
        )
        con.execute(
            """
            INSERT INTO engagement_answers (batch_id, row_no, item, score)
            SELECT 1, i + 2, 'item' || CAST(j AS VARCHAR),
                   CAST(least(5, greatest(1, round(3 + uq.level + random() * 2 - 1))) AS SMALLINT)
            FROM range(?) t(i) CROSS JOIN range(?) s(j)
            JOIN uq ON uq.u = i % ? AND uq.q = (i // ?) % ?""",
            [respondents, items, units, units, quarters],
        )
        con.execute(
            """INSERT INTO engagement_items SELECT 1, 'item' || CAST(j AS VARCHAR), 5, FALSE
                       FROM range(?) s(j)""",
            [items],
        )
        con.execute(
            """
            INSERT INTO feedback (batch_id, row_no, unit_id, date, csat, nps, channel)
            SELECT 2, i + 2, 'U' || lpad(CAST(i % ? AS VARCHAR), 4, '0'),
                   CAST(DATE '2023-01-05' + to_months(CAST(3 * ((i // ?) % ?) AS INTEGER))
                        + to_days(CAST(floor(random() * 80) AS INTEGER)) AS DATE),
                   CAST(least(5, greatest(1, round(3.5 + uq.level + random() * 3 - 1.5))) AS INTEGER),
                   CAST(floor(random() * 11) AS INTEGER),
                   CASE WHEN i % 3 = 0 THEN 'email' WHEN i % 3 = 1 THEN 'phone' ELSE 'twitter' END
            FROM range(?) t(i) JOIN uq ON uq.u = i % ? AND uq.q = (i // ?) % ?""",
            [units, units, quarters, feedback, units, units, quarters],
        )
        con.execute(
            """INSERT INTO batches (batch_id, kind, file_name, rows, loaded_at, sha256, undone)
                       VALUES (1, 'engagement', 'bench', ?, now(), 'b1', FALSE),
                              (2, 'feedback', 'bench', ?, now(), 'b2', FALSE)""",
            [respondents, feedback],
        )
        con.execute("CHECKPOINT")


def run_cxstats(db: Path) -> dict:
    from cxstats import linkage, store

    t0, c0 = time.perf_counter(), time.process_time()
    with store.connect(db) as con:
        res = linkage.analyse(con, viewer=ADMIN)
    seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
    return {
        "seconds": seconds,
        "cpu": cpu,
        "n_units": res.n_units,
        "n_obs": res.within_unit.n_obs,
        "coef": res.within_unit.coef,
        "r": res.pearson.r,
    }


def run_pandas(db: Path) -> dict:
    import duckdb
    import numpy as np
    import pandas as pd
    from scipy import stats

    from cxstats import linkage

    con = duckdb.connect(str(db), read_only=True)
    eng = con.execute("SELECT batch_id, row_no, unit_id, survey_date, enps FROM engagement").df()
    ans = con.execute("SELECT batch_id, row_no, item, score FROM engagement_answers").df()
    items = con.execute("SELECT batch_id, item, scale FROM engagement_items").df()
    fb = con.execute("SELECT unit_id, date, csat, nps FROM feedback").df()
    con.close()
    min_group = 5

    t0, c0 = time.perf_counter(), time.process_time()
    k = items.groupby("batch_id")["scale"].max()
    n_index = items.groupby("batch_id").size()
    per = ans.groupby(["batch_id", "row_no"], sort=False)["score"].agg(["size", "mean"]).reset_index()
    r = eng.merge(per, on=["batch_id", "row_no"], how="left")
    r["k"] = r["batch_id"].map(k)
    r["in_index"] = (r["size"].fillna(0) > 0) & (2 * r["size"].fillna(0) >= r["batch_id"].map(n_index))
    r["score"] = 100.0 * (r["mean"] - 1) / (r["k"] - 1)
    d = pd.to_datetime(r["survey_date"])
    r["pi"] = d.dt.year * 4 + d.dt.quarter - 1
    ri = r[r["in_index"]]
    g = ri.groupby(["unit_id", "pi"], sort=False)["score"].agg(["size", "mean", "sum"]).reset_index()
    kept = g[g["size"] >= min_group]
    # item cells over kept groups
    a = ans.merge(r.loc[:, ["batch_id", "row_no", "unit_id", "pi"]], on=["batch_id", "row_no"])
    a = a.merge(kept[["unit_id", "pi"]], on=["unit_id", "pi"])
    cells = a.groupby(["unit_id", "pi", "item"], sort=False)["score"].agg(["size", "mean"]).reset_index()
    cells = cells[cells["size"] >= min_group]
    # feedback counts per unit-quarter
    fd = pd.to_datetime(fb["date"])
    fb = fb.assign(pi=fd.dt.year * 4 + fd.dt.quarter - 1, top2=fb["csat"] >= 4)
    cx = fb.groupby(["unit_id", "pi"], sort=False).agg(csat_n=("csat", "count"), top2=("top2", "sum")).reset_index()
    cx["cx"] = 100.0 * cx["top2"] / cx["csat_n"]
    # the same statistics
    fes = {}
    for lag in (-2, -1, 0, 1, 2):
        p = kept.merge(cx.assign(pi=cx["pi"] - lag), on=["unit_id", "pi"])
        fes[lag] = linkage.fixed_effects(p["cx"], p["mean"], p["unit_id"], p["pi"])
    fe = fes[0]
    u = kept.groupby("unit_id")[["size", "sum"]].sum()
    u["eng"] = u["sum"] / u["size"]
    c = cx.groupby("unit_id")[["csat_n", "top2"]].sum()
    u = u.join((100.0 * c["top2"] / c["csat_n"]).rename("cx"), how="inner")
    pr = stats.pearsonr(u["eng"], u["cx"])
    stats.spearmanr(u["eng"], u["cx"])
    for _item, f in cells.groupby("item"):
        m = f.groupby("unit_id")["mean"].mean()
        stats.pearsonr(m.reindex(u.index), u["cx"])
    seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
    return {
        "seconds": seconds,
        "cpu": cpu,
        "n_units": len(u),
        "n_obs": int(fe.n_obs),
        "coef": fe.coef,
        "r": float(pr.statistic),
        "cells": int(np.int64(len(cells))),
    }


def child(side: str, db: Path) -> None:
    out = run_cxstats(db) if side == "cxstats" else run_pandas(db)
    out["peak_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(out))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--respondents", type=int, default=1_000_000)
    ap.add_argument("--feedback", type=int, default=5_000_000)
    ap.add_argument("--units", type=int, default=500)
    ap.add_argument("--quarters", type=int, default=12)
    ap.add_argument("--items", type=int, default=6)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--db", default=None)
    ap.add_argument("--child", choices=("cxstats", "pandas"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    db = Path(args.db or f"/tmp/cxstats_bench_linkage_{args.respondents}_{args.feedback}.duckdb")
    if args.child:
        child(args.child, db)
        return
    if not db.exists():
        t = time.perf_counter()
        build(db, args.respondents, args.feedback, args.units, args.quarters, args.items)
        print(f"built {db} in {time.perf_counter() - t:.1f} s")
    print(
        f"{args.respondents:,} respondents x {args.items} items, {args.feedback:,} feedback rows, "
        f"{args.units} units x {args.quarters} quarters; {args.repeat} runs, median and best (each in a fresh process)"
    )
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    for side in ("cxstats", "pandas"):
        runs = []
        for _ in range(args.repeat):
            p = subprocess.run(
                [sys.executable, __file__, "--child", side, "--db", str(db)],
                capture_output=True,
                text=True,
                env=env,
                check=True,
            )
            runs.append(json.loads(p.stdout.strip().splitlines()[-1]))
        best = min(runs, key=lambda x: x["seconds"])
        times = ", ".join(f"{x['seconds']:.2f}" for x in runs)
        cpus = ", ".join(f"{x['cpu']:.2f}" for x in runs)
        med_wall = sorted(x["seconds"] for x in runs)[len(runs) // 2]
        med_cpu = sorted(x["cpu"] for x in runs)[len(runs) // 2]
        print(
            f"{side:<8} median {med_wall:6.2f} s wall, {med_cpu:.2f} s CPU (wall runs: {times}; CPU runs: {cpus})  "
            f"best {best['seconds']:.2f} s wall, {best['cpu']:.2f} s CPU  "
            f"peak {max(x['peak_mb'] for x in runs):,.0f} MB  units {best['n_units']}  n_obs {best['n_obs']}  "
            f"coef {best['coef']:.4f}  r {best['r']:.4f}"
        )


if __name__ == "__main__":
    main()
