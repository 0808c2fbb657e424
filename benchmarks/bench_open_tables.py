"""What one analysis call pays for opening the engine's tables (issue 16: tables opened lazily).

    python benchmarks/bench_open_tables.py [--repeat 5] [--engines lake,spark] [--code CHECKOUT]

Builds the demo (``python -m cxstats demo``) and its lake (``lake export``) once under the temp
folder, then in one process times, per engine: ``open_tables`` alone followed by one table
(``purchases``: what the cheapest analysis needs), open + all five tables (what every call paid
before tables opened lazily; with lazy tables only), one ``advocates.score`` call and one
``linkage.analyse`` call, each repeated (the first call on Spark also starts the session; it is
reported apart). ``--code`` imports cxstats from another checkout (e.g. main before the change), so
the two are measured with the same script. Medians and the load average are printed.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--engines", default="lake,spark")
    ap.add_argument("--code", default=str(ROOT), help="the checkout whose cxstats is measured")
    a = ap.parse_args()
    sys.path.insert(0, a.code)
    from cxstats import ADMIN, advocates, cli, engine, linkage, store

    tmp = Path(tempfile.gettempdir()) / "cxstats_bench_open_tables"
    db, lake = tmp / "demo.duckdb", tmp / "lake"
    if not lake.exists():
        tmp.mkdir(exist_ok=True)
        assert cli.main(["demo", "--db", str(db)]) == 0
        engine.export_lake(db, lake, viewer=ADMIN)
    print(f"cxstats from {a.code}; load before: {os.getloadavg()}", flush=True)
    env = {
        "lake": {"CXSTATS_LAKE": str(lake)},
        "spark": {"CXSTATS_ENGINE": "spark", "CXSTATS_LAKE": str(lake), "CXSTATS_SPARK": "local[2]"},
        "duckdb": {},
    }

    def one_table(cfg):
        with engine.open_tables(cfg, viewer=ADMIN) as t:
            t.table("purchases")

    def all_five(cfg):  # what every call paid before tables opened lazily
        with engine.open_tables(cfg, viewer=ADMIN) as t:
            for name in engine.LAKE_TABLES:
                t.table(name)

    def adv(cfg):
        with store.connect(db) as con:
            advocates.score(con, engine=cfg, viewer=ADMIN, clv=False)

    def link(cfg):
        with store.connect(db) as con:
            linkage.analyse(con, engine=cfg, viewer=ADMIN)

    print("| engine | step | median s | runs |")
    print("|---|---|---|---|")
    for kind in a.engines.split(","):
        cfg = engine.config_from_env(db, env=env[kind])
        t0 = time.perf_counter()
        one_table(cfg)  # warm-up (on Spark: the session starts here)
        first = time.perf_counter() - t0
        print(f"| {kind} | first open (session start) | {first:.2f} | 1 |", flush=True)
        steps = [("open + purchases", one_table), ("advocates", adv), ("linkage", link)]
        if hasattr(engine.Tables, "opened"):  # lazy tables: the old cost, in the same process
            steps.insert(1, ("open + all five", all_five))
        for step, fn in steps:
            runs = []
            for _ in range(a.repeat):
                t0 = time.perf_counter()
                fn(cfg)
                runs.append(time.perf_counter() - t0)
            print(
                f"| {kind} | {step} | {statistics.median(runs):.2f} | {', '.join(f'{r:.2f}' for r in runs)} |",
                flush=True,
            )
    print(f"load after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
