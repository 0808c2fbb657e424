"""Warm and cold renders of the Engagement, Customers, Linkage and Advocates pages (AppTest), beside a
plain pandas peer that recomputes the Customers page's figures from an in-memory frame.

    python benchmarks/bench_pages.py               # demo data, then the demo grown to 1,000,000 feedback rows
    python benchmarks/bench_pages.py --rows 0      # demo data only

Each (database, page) runs in its own subprocess, so peak memory (VmHWM) is that page's. "cold" is
the first render in a fresh process (every query computed), "warm" the best of three later renders
(cached results, only the page and its figures rebuilt), which is what a user sees on each click.
The peer does what a page without cxstats' cached queries would do on every click: group the
feedback frame by unit, channel and period and compute CSAT %, CSAT mean and NPS with its SE, and
reply times. The machine is shared (2 cores, several engineers' test suites): figures are noisy.
Targets (issue 6): warm under 2 s on the demo data, under 5 s with 1,000,000 feedback rows.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
PAGES = ("engagement", "customers", "linkage", "actions", "advocates")


def add_feedback(db: Path, total_rows: int) -> int:
    """Top the feedback table up to ``total_rows`` with one synthetic batch (units and dates of the demo)."""
    import numpy as np
    import pandas as pd

    from cxstats import store

    with store.connect(db) as con:
        have = con.execute("SELECT count(*) FROM feedback").fetchall()[0][0]
        n = total_rows - have
        if n <= 0:
            return have
        units = [r[0] for r in con.execute("SELECT unit_id FROM units").fetchall()]
        lo, hi = con.execute("SELECT min(date), max(date) FROM feedback").fetchall()[0]
        rng = np.random.default_rng(11)
        day = pd.to_datetime(lo) + pd.to_timedelta(rng.integers(0, (hi - lo).days + 1, n), unit="D")
        contacted = day + pd.to_timedelta(rng.integers(8 * 60, 18 * 60, n), unit="min")
        answered = rng.random(n) < 0.3
        frame = pd.DataFrame(
            {
                "row_no": np.arange(2, n + 2, dtype=np.int32),
                "unit_id": np.array(units)[rng.integers(0, len(units), n)],
                "date": day.date,
                "csat": pd.array(np.where(rng.random(n) < 0.85, rng.integers(1, 6, n), -1), dtype="Int64"),
                "nps": pd.array(np.where(rng.random(n) < 0.5, rng.integers(0, 11, n), -1), dtype="Int64"),
                "response_id": [f"BENCH{i:08d}" for i in range(n)],
                "channel": np.array(["email", "web", "phone", "twitter", "facebook"])[rng.integers(0, 5, n)],
                "contacted_at": contacted.where(answered),
                "responded_at": (contacted + pd.to_timedelta(rng.exponential(4 * 60, n).astype(int), unit="min")).where(
                    answered
                ),
            }
        )
        frame["csat"] = frame["csat"].mask(frame["csat"] < 0)
        frame["nps"] = frame["nps"].mask(frame["nps"] < 0)
        store.load_batch(
            con,
            "feedback",
            {"feedback": frame},
            file_name="bench_pages feedback",
            sha256=f"bench-pages-{n}",
            rows=n,
            loaded_by="benchmark",
        )
    return total_rows


def child_page(db: str, page: str, repeat: int) -> dict:
    """One page in this process: the cold render, then the best of ``repeat`` warm renders."""
    os.environ.update(CXSTATS_DB=db, CXSTATS_DEMO="0")
    for k in ("CXSTATS_USERS", "CXSTATS_TEST_USER", "CXSTATS_TESTING"):
        os.environ.pop(k, None)
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=600)
    at.run()
    at.switch_page(f"pages/{page}.py")
    t = time.perf_counter()
    at.run()
    cold = time.perf_counter() - t
    warm = []
    for _ in range(repeat):
        t = time.perf_counter()
        at.run()
        warm.append(time.perf_counter() - t)
    problems = [e.value for e in at.exception]
    return {
        "page": page,
        "cold_s": cold,
        "warm_s": min(warm),
        "warm_median_s": sorted(warm)[len(warm) // 2],
        "charts": len(at.get("plotly_chart")),
        "exceptions": problems,
        "peak_mb": peak_mb(),
    }


def child_peer(db: str, repeat: int) -> dict:
    """The pandas peer: load feedback once (like a cache), then recompute the Customers figures per click."""
    import numpy as np
    import pandas as pd

    from cxstats import store

    with store.connect(db) as con:
        t = time.perf_counter()
        fb = con.execute("SELECT unit_id, date, csat, nps, channel, contacted_at, responded_at FROM feedback").df()
        load = time.perf_counter() - t

    def figures(fb: pd.DataFrame) -> list[pd.DataFrame]:
        f = fb.assign(
            period=pd.PeriodIndex(pd.to_datetime(fb["date"]), freq="Q").astype(str),
            channel=fb["channel"].fillna("unknown"),
            top2=fb["csat"] >= 4,
            prom=fb["nps"] >= 9,
            detr=fb["nps"] <= 6,
        )
        out = []
        for keys in (["unit_id"], ["channel"], ["period"], ["all"]):
            g = (
                f.assign(all="all")
                .groupby(keys)
                .agg(
                    csat_n=("csat", "count"),
                    csat_sum=("csat", "sum"),
                    top2=("top2", "sum"),
                    nps_n=("nps", "count"),
                    prom=("prom", "sum"),
                    detr=("detr", "sum"),
                )
            )
            pp, pdt = g["prom"] / g["nps_n"], g["detr"] / g["nps_n"]
            g["csat_pct"] = 100 * g["top2"] / g["csat_n"]
            g["csat_mean"] = g["csat_sum"] / g["csat_n"]
            g["nps"] = 100 * (pp - pdt)
            g["nps_se"] = 100 * np.sqrt((pp + pdt - (pp - pdt) ** 2) / g["nps_n"])
            out.append(g)
        r = f[f["contacted_at"].notna()]
        hours = (r["responded_at"] - r["contacted_at"]).dt.total_seconds() / 3600
        target = r["channel"].str.lower().map({"twitter": 1.0, "x": 1.0, "facebook": 6.0, "email": 6.0}).fillna(12.0)
        out.append(
            pd.DataFrame({"channel": r["channel"], "within": hours <= target, "hours": hours})
            .groupby("channel")
            .agg(share=("within", "mean"), median=("hours", "median"))
        )
        return out

    t = time.perf_counter()
    figures(fb)
    first = time.perf_counter() - t
    runs = []
    for _ in range(repeat):
        t = time.perf_counter()
        figures(fb)
        runs.append(time.perf_counter() - t)
    return {
        "page": "pandas peer (Customers figures)",
        "load_s": load,
        "cold_s": load + first,
        "warm_s": min(runs),
        "rows": len(fb),
        "peak_mb": peak_mb(),
    }


def peak_mb() -> float:
    """Peak resident memory of this process in MB (VmHWM: reset at exec, unlike ru_maxrss)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_child(*args: str) -> dict:
    out = subprocess.run([sys.executable, __file__, *args], capture_output=True, text=True, cwd=ROOT)
    if out.returncode != 0:
        raise SystemExit(out.stderr[-3000:])
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=1_000_000, help="feedback rows of the large case (0 = skip)")
    ap.add_argument("--repeat", type=int, default=3, help="warm renders per page (best is kept)")
    ap.add_argument("--child", nargs=2, metavar=("DB", "PAGE"), help=argparse.SUPPRESS)
    ap.add_argument("--peer", metavar="DB", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(child_page(args.child[0], args.child[1], args.repeat)))
        return
    if args.peer:
        print(json.dumps(child_peer(args.peer, args.repeat)))
        return

    from cxstats import demo, store

    tmp = Path(tempfile.mkdtemp(prefix="bench_pages_"))
    try:
        base = tmp / "demo.duckdb"
        demo.build_demo(base)
        cases = [("demo", base)]
        if args.rows:
            big = tmp / "big.duckdb"
            shutil.copyfile(base, big)
            add_feedback(big, args.rows)
            cases.append((f"{args.rows:,} feedback rows", big))
        print("| data | page | cold s | warm s (best) | warm s (median) | peak MB | charts |")
        print("|---|---|---|---|---|---|---|")
        for name, db in cases:
            with store.connect(db) as con:
                n = con.execute("SELECT count(*) FROM feedback").fetchall()[0][0]
            for page in PAGES:
                r = run_child("--child", str(db), page, "--repeat", str(args.repeat))
                flag = f" (exceptions: {r['exceptions']})" if r["exceptions"] else ""
                print(
                    f"| {name} ({n:,} feedback) | {page} | {r['cold_s']:.2f} | {r['warm_s']:.2f} | "
                    f"{r['warm_median_s']:.2f} | "
                    f"{r['peak_mb']:.0f} | {r['charts']}{flag} |",
                    flush=True,
                )
            p = run_child("--peer", str(db), "--repeat", str(args.repeat))
            print(
                f"| {name} ({n:,} feedback) | {p['page']} | {p['cold_s']:.2f} | {p['warm_s']:.2f} | - | "
                f"{p['peak_mb']:.0f} | - |",
                flush=True,
            )
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
