"""Import benchmark: cxstats.ingest beside a plain pandas peer doing equal work.

    python benchmarks/bench_import.py [--rows 1000000] [--xlsx-rows 200000] [--repeat 3] [--only csv|xlsx]

Two files (generated once into $TMPDIR/cxstats-bench, reused):
- a 1,000,000-row feedback CSV (response id, store, date, csat, nps, customer, channel);
- a 200,000-row purchases .xlsx with 12 columns (7 of them not used by cxstats).

The peer reads with pandas (read_csv / read_excel with the calamine engine), checks the same rules
(required cells, ids as text, dates, whole numbers in range, known units, repeated keys, content
hash against earlier batches) and inserts into DuckDB in one transaction. Each run is a fresh
subprocess on a fresh database, run under /usr/bin/time -v: whole-process figures (interpreter start and
imports included), wall seconds, CPU seconds (user + system, all threads; the steadier figure on a busy
machine) and peak RSS. The two sides alternate (cxstats, peer, cxstats, peer...) so that both see the same
load; the table gives medians of --repeat runs and `uptime`'s load before and after.
The machine is shared: expect noise.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
CACHE = Path(tempfile.gettempdir()) / "cxstats-bench"
UNITS = [f"S{u:03d}" for u in range(1, 41)]


def feedback_csv(n: int) -> Path:
    path = CACHE / f"feedback_{n}.csv"
    if path.exists():
        return path
    import pandas as pd

    rng = np.random.default_rng(1)
    frame = pd.DataFrame(
        {
            "Response ID": [f"R{i:08d}" for i in range(n)],
            "Store": np.array(UNITS)[rng.integers(0, len(UNITS), n)],
            "Date": (np.datetime64("2024-01-01") + rng.integers(0, 700, n)).astype(str),
            "CSAT": rng.integers(1, 6, n),
            "NPS": rng.integers(0, 11, n),
            "Customer ID": [f"C{c:06d}" for c in rng.integers(0, 200_000, n)],
            "Channel": np.array(["web", "email", "in-store", "phone"])[rng.integers(0, 4, n)],
        }
    )
    frame.to_csv(path, index=False)
    return path


def purchases_xlsx(n: int) -> Path:
    path = CACHE / f"purchases_{n}.xlsx"
    if path.exists():
        return path
    import datetime

    import openpyxl

    rng = np.random.default_rng(2)
    wb = openpyxl.Workbook(write_only=True)
    ws = wb.create_sheet("Orders")
    ws.append(
        [
            "Order ID",
            "Customer ID",
            "Order date",
            "Amount",
            "Store",
            "Product",
            "SKU",
            "Qty",
            "Unit price",
            "Category",
            "Payment",
            "Cashier",
        ]
    )
    start = datetime.date(2024, 1, 1)
    cats = ["food", "drink", "home", "gift"]
    pays = ["card", "cash", "voucher"]
    order = 0
    for i in range(n):
        if i == 0 or rng.random() > 0.3:  # about 1.4 lines per order
            order += 1
            cust = f"C{int(rng.integers(0, 50_000)):06d}"
            day = start + datetime.timedelta(days=int(rng.integers(0, 700)))
            store = UNITS[int(rng.integers(0, len(UNITS)))]
        qty = int(rng.integers(1, 5))
        price = round(float(rng.uniform(1, 80)), 2)
        ws.append(
            [
                f"O{order:07d}",
                cust,
                day,
                round(qty * price, 2),
                store,
                f"Product {i % 500}",
                f"SKU{i % 997}",
                qty,
                price,
                cats[i % 4],
                pays[i % 3],
                f"E{i % 60:03d}",
            ]
        )
    wb.save(path)
    return path


CXSTATS_RUN = """
import resource, sys, time
t = time.perf_counter()
from cxstats import ADMIN, ingest
r = ingest.import_file(sys.argv[1], sys.argv[2], sys.argv[3], viewer=ADMIN)
took = time.perf_counter() - t
u = resource.getrusage(resource.RUSAGE_SELF)
print(json.dumps({"seconds": took, "rows": r.rows_loaded, "cpu": u.ru_utime + u.ru_stime, "peak_mb": u.ru_maxrss / 1024}))
"""

PEER_RUN = """
import hashlib, resource, sys, time
t = time.perf_counter()
import duckdb, numpy as np, pandas as pd
from cxstats import store
db, kind, path = sys.argv[1], sys.argv[2], sys.argv[3]
if kind == "feedback":
    df = pd.read_csv(path, dtype={"Response ID": str, "Store": str, "Customer ID": str, "Channel": str})
    df = df.rename(columns={"Response ID": "response_id", "Store": "unit_id", "Date": "date", "CSAT": "csat",
                            "NPS": "nps", "Customer ID": "customer_id", "Channel": "channel"})
    ranges, dates, ids, key = {"csat": (1, 5), "nps": (0, 10)}, ["date"], ["response_id", "unit_id", "customer_id"], ["response_id"]
    required = ["unit_id", "date"]
else:
    df = pd.read_excel(path, engine="calamine")
    df = df.rename(columns={"Order ID": "order_id", "Customer ID": "customer_id", "Order date": "order_date",
                            "Amount": "amount", "Store": "unit_id"})[["order_id", "customer_id", "order_date", "amount", "unit_id"]]
    ranges, dates, ids, key = {"amount": (-1e12, 1e12)}, ["order_date"], ["order_id", "customer_id", "unit_id"], None
    required = ["customer_id", "order_date", "amount"]
problems = []
for c in ids:  # identifiers are text; a number cell 42.0 becomes "42"
    s = df[c]
    if s.dtype != object and not pd.api.types.is_string_dtype(s):
        s = s.map(lambda v: None if pd.isna(v) else str(int(v)) if float(v).is_integer() else str(v))
    df[c] = s.astype(object).where(s.notna(), None)
for c in required:
    problems += list(df.index[df[c].isna()])
for c in dates:
    d = pd.to_datetime(df[c], errors="coerce")
    problems += list(df.index[d.isna() & df[c].notna()])
    df[c] = d.dt.normalize()
for c, (lo, hi) in ranges.items():
    x = pd.to_numeric(df[c], errors="coerce")
    bad = (x.isna() & df[c].notna()) | (x < lo) | (x > hi)
    if c in ("csat", "nps"):
        bad |= x.notna() & (x != x.round())
    problems += list(df.index[bad])
    df[c] = x.round(2) if c == "amount" else x.astype("Int64")
if kind == "purchases":
    df["line_no"] = df.groupby("order_id").cumcount() + 1
    first = df.groupby("order_id")[["customer_id", "order_date"]].transform("first")
    problems += list(df.index[(first["customer_id"] != df["customer_id"]) | (first["order_date"] != df["order_date"])])
if key:
    problems += list(df.index[df.duplicated(subset=key, keep=False) & df[key[0]].notna()])
with store.connect(db) as con:
    known = {u for (u,) in con.execute("SELECT unit_id FROM units").fetchall()}
    if known:
        problems += list(df.index[~df["unit_id"].isin(known) & df["unit_id"].notna()])
    assert not problems, problems[:5]
    sha = hashlib.sha256(pd.util.hash_pandas_object(df, index=False).to_numpy().tobytes()).hexdigest()
    df.insert(0, "row_no", np.arange(2, len(df) + 2, dtype=np.int32))
    store.load_batch(con, kind, {kind: df}, file_name=path, sha256=sha, rows=len(df))
took = time.perf_counter() - t
u = resource.getrusage(resource.RUSAGE_SELF)
print(json.dumps({"seconds": took, "rows": len(df), "cpu": u.ru_utime + u.ru_stime, "peak_mb": u.ru_maxrss / 1024}))
"""


def _time_v(stderr: str) -> dict:
    """Whole-process figures from /usr/bin/time -v."""
    got = {}
    for line in stderr.splitlines():
        key, _, value = line.strip().rpartition(": ")
        got[key] = value
    h_m_s = [float(x) for x in got["Elapsed (wall clock) time (h:mm:ss or m:ss)"].split(":")]
    wall = sum(x * 60**i for i, x in enumerate(reversed(h_m_s)))
    return {
        "wall": wall,
        "cpu": float(got["User time (seconds)"]) + float(got["System time (seconds)"]),
        "peak_mb": int(got["Maximum resident set size (kbytes)"]) / 1024,
    }


def run(code: str, db: Path, kind: str, path: Path) -> dict:
    if db.exists():
        db.unlink()
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    out = subprocess.run(
        [
            "/usr/bin/time",
            "-v",
            sys.executable,
            "-c",
            "import json\n" + textwrap.dedent(code),
            str(db),
            kind,
            str(path),
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=1800,
    )
    if out.returncode:
        raise SystemExit(out.stderr)
    inner = json.loads(out.stdout.strip().splitlines()[-1])
    return {**inner, **_time_v(out.stderr)}


def _uptime() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--xlsx-rows", type=int, default=200_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--only", choices=("csv", "xlsx"), help="run one of the two files")
    args = ap.parse_args()
    CACHE.mkdir(parents=True, exist_ok=True)
    cases = [
        ("feedback", feedback_csv(args.rows), f"{args.rows:,}-row feedback CSV"),
        ("purchases", purchases_xlsx(args.xlsx_rows), f"{args.xlsx_rows:,}-row purchases xlsx"),
    ]
    if args.only:
        cases = [cases[0] if args.only == "csv" else cases[1]]
    db = CACHE / "bench.duckdb"
    print("| file | side | wall s (median) | CPU s (median) | runs (wall / CPU s) | peak MB | load before, after |")
    print("|---|---|---|---|---|---|---|")
    for kind, path, label in cases:
        runs: dict[str, list[dict]] = {"cxstats": [], "pandas peer": []}
        before = _uptime().split("load average: ")[-1]
        for _ in range(args.repeat):  # side by side: each round runs both
            for who, code in (("cxstats", CXSTATS_RUN), ("pandas peer", PEER_RUN)):
                runs[who].append(run(code, db, kind, path))
        after = _uptime().split("load average: ")[-1]
        med = {
            who: (statistics.median(r["wall"] for r in rs), statistics.median(r["cpu"] for r in rs))
            for who, rs in runs.items()
        }
        for who, rs in runs.items():
            each = ", ".join(f"{r['wall']:.1f} / {r['cpu']:.2f}" for r in rs)
            print(
                f"| {label} | {who} | {med[who][0]:.2f} | {med[who][1]:.2f} | {each} | "
                f"{max(r['peak_mb'] for r in rs):.0f} | {before}; {after} |",
                flush=True,
            )
        print(
            f"| {label} | ratio (peer / cxstats) | {med['pandas peer'][0] / med['cxstats'][0]:.2f}x | "
            f"{med['pandas peer'][1] / med['cxstats'][1]:.2f}x | | | |",
            flush=True,
        )


if __name__ == "__main__":
    main()
