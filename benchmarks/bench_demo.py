"""Benchmark: building the demo database (``python benchmarks/bench_demo.py [--sizes 40:3000,200:30000]``).

cxstats: ``demo.build_demo`` (generate, VADER on the mention texts, one hashed batch per kind through
store.load_batch, each in one transaction). Peer: the same ``demo.generate`` frames written by plain
pandas + DuckDB (the same VADER scoring with its language check, ``cxstats.sentiment.compound``, on
the same distinct texts, then ``CREATE TABLE AS SELECT * FROM frame`` per table), with no batches,
hashes or transactions. Each run is a fresh subprocess so peak memory
(ru_maxrss) is its own. The machine is shared: figures are noisy.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

CHILD = r"""
import json, resource, sys, time
from datetime import date
sys.path.insert(0, {root!r})
which, units, customers, db = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
END = date(2026, 11, 26)
t0 = time.perf_counter()
if which == "cxstats":
    from cxstats import demo
    demo.build_demo(db, seed=7, units=units, customers=customers, end=END)
    gen = None
else:
    import duckdb
    from cxstats import demo
    from cxstats.sentiment import compound
    d = demo.generate(seed=7, units=units, customers=customers, end=END)
    gen = time.perf_counter() - t0
    m = d.mentions.copy()
    uniq = m["text"].dropna().unique().tolist()
    scores = dict(zip(uniq, compound(uniq)))
    m["sentiment"] = m["text"].map(scores)
    con = duckdb.connect(db)
    frames = dict(d.kinds(), mentions=m, engagement_answers=d.engagement_answers)
    for name, frame in frames.items():
        con.register("f", frame)
        con.execute(f"CREATE TABLE {{name}} AS SELECT * FROM f")
        con.unregister("f")
    con.close()
secs = time.perf_counter() - t0
print(json.dumps({{"which": which, "seconds": secs, "generate_s": gen,
                  "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}}))
"""


def run(which: str, units: int, customers: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        db = str(Path(tmp) / "bench.duckdb")
        code = CHILD.format(root=str(ROOT))
        out = subprocess.run(
            [sys.executable, "-c", code, which, str(units), str(customers), db],
            capture_output=True,
            text=True,
            check=True,
        )
        return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="40:3000,200:30000", help="units:customers pairs, comma-separated")
    ap.add_argument("--repeat", type=int, default=2, help="runs per size and side (best is reported)")
    args = ap.parse_args()
    print(
        f"{'units':>5} {'customers':>9}  {'cxstats s':>9} {'peer s':>7} {'ratio':>6}  "
        f"{'cx MB':>6} {'peer MB':>7}  (peer generate s)"
    )
    for pair in args.sizes.split(","):
        units, customers = (int(x) for x in pair.split(":"))
        t0 = time.perf_counter()
        cx = min((run("cxstats", units, customers) for _ in range(args.repeat)), key=lambda r: r["seconds"])
        peer = min((run("peer", units, customers) for _ in range(args.repeat)), key=lambda r: r["seconds"])
        print(
            f"{units:>5} {customers:>9}  {cx['seconds']:>9.2f} {peer['seconds']:>7.2f} "
            f"{peer['seconds'] / cx['seconds']:>6.2f}  {cx['peak_mb']:>6.0f} {peer['peak_mb']:>7.0f}  "
            f"({peer['generate_s']:.2f}; wall {time.perf_counter() - t0:.0f} s)"
        )


if __name__ == "__main__":
    main()
