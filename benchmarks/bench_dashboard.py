"""Dashboard speed: cold and warm renders of the Overview, Upload and Data pages (AppTest, in-process),
and the Overview's headline figures beside a plain pandas peer doing equal work.

    python benchmarks/bench_dashboard.py            # demo data, then demo + feedback up to 1,000,000 rows
    python benchmarks/bench_dashboard.py --rows 0   # demo data only

Each scenario runs in its own subprocess so that peak memory (ru_maxrss) is that scenario's. The
machine is shared: figures are noisy; the issue's bar is a warm render under 2 s on the demo data
and under 5 s with 1,000,000 feedback rows.
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


def _grow_feedback(db: Path, total_rows: int) -> int:
    """Add one synthetic feedback batch so the table holds ``total_rows`` rows."""
    import numpy as np
    import pandas as pd

    from cxstats import store

    with store.connect(db) as con:
        have = con.execute("SELECT count(*) FROM feedback").fetchall()[0][0]
        units = [r[0] for r in con.execute("SELECT DISTINCT unit_id FROM units").fetchall()]
        lo, hi = con.execute("SELECT min(date), max(date) FROM feedback").fetchall()[0]
        n = max(0, total_rows - have)
        if n == 0:
            return have
        rng = np.random.default_rng(1)
        days = (hi - lo).days
        frame = pd.DataFrame(
            {
                "row_no": np.arange(2, n + 2, dtype=np.int32),
                "unit_id": np.array(units)[rng.integers(0, len(units), n)],
                "date": pd.to_datetime(lo) + pd.to_timedelta(rng.integers(0, days + 1, n), unit="D"),
                "csat": np.where(rng.random(n) < 0.85, rng.integers(1, 6, n), None).astype("float64"),
                "nps": np.where(rng.random(n) < 0.5, rng.integers(0, 11, n), None).astype("float64"),
                "response_id": [f"B{i:08d}" for i in range(n)],
                "channel": np.array(["email", "web", "in-store", "twitter"])[rng.integers(0, 4, n)],
            }
        )
        store.load_batch(
            con,
            "feedback",
            {"feedback": frame},
            file_name="bench:feedback",
            sha256=f"bench{n}",
            rows=n,
            loaded_by="bench",
        )
    return total_rows


def _pandas_peer(db: Path) -> dict:
    """Equal work in pandas: read feedback + kept engagement groups, CSAT %, NPS with SE, units."""
    import duckdb
    import numpy as np

    t = time.perf_counter()
    con = duckdb.connect(str(db), read_only=True)
    fb = con.execute("SELECT unit_id, date, csat, nps FROM feedback").df()
    eng = con.execute(
        "SELECT e.unit_id, e.survey_date, e.batch_id, e.row_no, a.score, i.scale FROM engagement e "
        "JOIN engagement_answers a USING (batch_id, row_no) JOIN engagement_items i "
        "ON i.batch_id = a.batch_id AND i.item = a.item"
    ).df()
    con.close()
    csat = fb["csat"].dropna()
    csat_pct = 100 * (csat >= 4).mean()
    nps = fb["nps"].dropna()
    pp, pd_ = (nps >= 9).mean(), (nps <= 6).mean()
    nps_v = 100 * (pp - pd_)
    se = 100 * np.sqrt((pp + pd_ - (pp - pd_) ** 2) / len(nps))
    per = eng.groupby(["batch_id", "row_no", "unit_id", "survey_date", "scale"], as_index=False)["score"].agg(
        ["mean", "count"]
    )
    per["score"] = 100 * (per["mean"] - 1) / (per["scale"] - 1)
    per["q"] = per["survey_date"].astype("datetime64[ns]").dt.to_period("Q")
    g = per.groupby(["unit_id", "q"])["score"].agg(["sum", "count"])
    g = g[g["count"] >= 5]
    index = g["sum"].sum() / g["count"].sum()
    return {"seconds": time.perf_counter() - t, "csat_pct": csat_pct, "nps": nps_v, "nps_se": se, "index": index}


def scenario(db: str) -> dict:
    """Run in a subprocess: library call, pandas peer, then AppTest cold/warm renders."""
    os.environ.update({"CXSTATS_DB": db, "CXSTATS_DEMO": "0"})
    os.environ.pop("CXSTATS_USERS", None)
    from streamlit.testing.v1 import AppTest

    from cxstats import ADMIN, overview, store

    out: dict = {}
    t = time.perf_counter()
    with store.connect(db) as con:
        h = overview.headline(con, viewer=ADMIN)
        rows = con.execute("SELECT count(*) FROM feedback").fetchall()[0][0]
    out["feedback_rows"] = rows
    out["cxstats_headline_s"] = time.perf_counter() - t
    out["cxstats"] = {"csat_pct": h.csat_pct, "nps": h.nps, "index": h.engagement_index}
    out["pandas_peer"] = _pandas_peer(Path(db))
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=300)
    t = time.perf_counter()
    at.run()
    out["overview_cold_s"] = time.perf_counter() - t
    for page in ("pages/overview.py", "pages/data.py", "pages/upload.py"):
        at.switch_page(page)
        at.run()  # first render of the page in this session
        t = time.perf_counter()
        at.run()  # warm: cached queries
        out[f"{Path(page).stem}_warm_s"] = time.perf_counter() - t
        assert not at.exception, [e.value for e in at.exception]
    out["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return out


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=1_000_000, help="feedback rows of the large scenario (0: skip)")
    ap.add_argument("--scenario", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.scenario:
        print(json.dumps(scenario(args.scenario)))
        return 0
    from cxstats import demo

    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp) / "demo.duckdb"
        demo.build_demo(base)
        runs = [("demo", base)]
        if args.rows:
            big = Path(tmp) / "big.duckdb"
            shutil.copyfile(base, big)
            _grow_feedback(big, args.rows)
            runs.append((f"{args.rows:,} feedback rows", big))
        for label, db in runs:
            res = subprocess.run(
                [sys.executable, __file__, "--scenario", str(db)], capture_output=True, text=True, cwd=ROOT
            )
            if res.returncode:
                print(res.stderr[-3000:], file=sys.stderr)
                return 1
            r = json.loads(res.stdout.strip().splitlines()[-1])
            peer = r["pandas_peer"]
            print(f"\n## {label} ({r['feedback_rows']:,} feedback rows)")
            print(
                f"headline figures: cxstats {r['cxstats_headline_s']:.2f} s, pandas peer {peer['seconds']:.2f} s "
                f"(CSAT % {r['cxstats']['csat_pct']:.2f} vs {peer['csat_pct']:.2f}, NPS {r['cxstats']['nps']:.2f} "
                f"vs {peer['nps']:.2f})"
            )
            print(
                f"app: overview cold {r['overview_cold_s']:.2f} s; warm overview {r['overview_warm_s']:.2f} s, "
                f"data {r['data_warm_s']:.2f} s, upload {r['upload_warm_s']:.2f} s; peak RSS {r['peak_rss_mb']:.0f} MB"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
