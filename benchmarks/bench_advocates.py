"""Advocate scoring at scale: cxstats.advocates.score beside a plain pandas peer doing equal work.

    python benchmarks/bench_advocates.py [--purchases 10000000] [--mentions 1000000]
                                         [--customers 500000] [--vader 100000] [--repeat 3]

Builds (once, cached in $TMPDIR) a database with the given numbers of purchase rows, mentions
(sentiment precomputed, as the issue asks) and customers, then runs each side in its own
subprocess so peak memory (ru_maxrss) is that side's alone:

- cxstats: ``advocates.score(con)`` from the database file (DuckDB SQL aggregation, scipy ranks).
- pandas: the same tables already loaded as DataFrames (loading is not timed, which favours the
  peer), then per-order nets (integer cents), counted orders, spend, recency, tie-averaged ranks,
  handle matching, mention and feedback aggregation, the three gates, the score and the sort.
  The peer's gated customers and scores are checked against cxstats' before any figure is shown.

VADER on --vader texts is timed separately. The machine is shared: figures are noisy; the best
of --repeat runs is reported, in wall seconds and CPU seconds (process_time, summing DuckDB's
threads), which moves less with the load of other processes.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from cxstats import ADMIN  # noqa: E402  (after the path: the benchmarks run from a checkout)

# The orders of the dropout variant, as the BG/NBD story has it: customer c (drawn as in the plain file)
# starts on day s (a hash of c, within the first 720 of the 900 days) and his orders fall uniformly in
# [s, 900); after each order day he stops with his own probability p (0.005-0.6, a hash of c), so he
# keeps his first D days, D geometric(p) (inverse CDF of another hash): 18M lines drawn keep 7.56M.
_DROPOUT_ORDERS = """
            o AS (
                SELECT order_no, c, d, no_id FROM (
                    SELECT *, dense_rank() OVER (PARTITION BY c ORDER BY d) AS k,
                           0.005 + 0.6 * pow((hash(c + 7919) % 1000000) / 1e6, 2) AS p,
                           greatest((hash(c + 104729) % 1000000) / 1e6, 1e-6) AS u
                    FROM (SELECT order_no, c, DATE '2022-01-01' + CAST(s + floor(random() * (900 - s)) AS INTEGER) AS d,
                                 no_id
                          FROM (SELECT *, CAST(hash(c) % 720 AS INTEGER) AS s FROM (
                              SELECT i AS order_no, CAST(floor({customers} * pow(random(), 1.6)) AS BIGINT) AS c,
                                     random() < 0.05 AS no_id
                              FROM range({half}) t(i)))))
                WHERE k <= ceil(ln(u) / ln(1 - p))
            )"""


def build(path: Path, purchases: int, mentions: int, customers: int, dropout: bool = False) -> None:
    """The benchmark database. Order days are uniform over 900 days for everyone (nobody ever stops
    buying, so the value model's BG/NBD fit has no interior maximum there), or with ``dropout``
    customers start on different days and stop buying after a number of order days
    (_DROPOUT_ORDERS): the data a repeat-buying model is made for. Mentions and feedback alike."""
    from cxstats import store

    with store.connect(path) as con:
        con.execute("SELECT setseed(0.42)")
        orders = f"""
            o AS (
                SELECT i AS order_no,
                       CAST(floor({customers} * pow(random(), 1.6)) AS BIGINT) AS c,
                       DATE '2022-01-01' + CAST(floor(random() * 900) AS INTEGER) AS d,
                       random() < 0.05 AS no_id
                FROM range({purchases // 2}) t(i)
            )"""
        level = ""
        if dropout:
            orders = _DROPOUT_ORDERS.format(customers=customers, half=purchases // 2)
            # and each customer his own spend level (exponential, mean 1; a hash of c), as Gamma-Gamma has it
            level = " * (0.05 - ln(greatest((hash(c + 15485863) % 1000000) / 1e6, 1e-6)))"
        # about 2 lines per order; customers skewed (many buy once, a few very often)
        con.execute(f"""
            INSERT INTO purchases (batch_id, row_no, line_no, customer_id, order_date, amount, order_id, unit_id)
            WITH {orders}
            SELECT 1, row_number() OVER () + 1, line, 'C' || lpad(CAST(c AS VARCHAR), 7, '0'), d,
                   CAST(CASE WHEN random() < 0.03 THEN -1 ELSE 1 END * (1 + floor(random() * 9999)) / 100{level}
                        AS DECIMAL(18,2)),
                   CASE WHEN no_id THEN NULL ELSE 'O' || order_no END, 'U' || (c % 50)
            FROM o, range(1, 3) l(line)
        """)
        con.execute(f"""
            INSERT INTO customers (batch_id, row_no, customer_id, name, email, handle, marketing_consent)
            SELECT 2, i + 2, 'C' || lpad(CAST(i AS VARCHAR), 7, '0'), 'Customer ' || i,
                   CASE WHEN i % 997 = 0 THEN 'shared@example.com' ELSE 'c' || i || '@example.com' END,
                   'fan' || i, i % 3 <> 0
            FROM range({customers}) t(i)
        """)
        texts = [
            "love this shop",
            "great staff",
            "never again",
            "ok I guess",
            "best coffee in town",
            "slow checkout",
            "friendly and fast",
            "meh",
        ]
        text_list = "[" + ", ".join(f"'{t}'" for t in texts) + "]"
        con.execute(f"""
            INSERT INTO mentions (batch_id, row_no, customer_id, handle, posted_at, platform, text, followers,
                                  likes, shares, sentiment, sentiment_source)
            WITH m AS (SELECT i, CAST(floor({customers} * pow(random(), 1.3)) AS BIGINT) AS c,
                              random() < 0.1 AS by_handle, random() AS s FROM range({mentions}) t(i))
            SELECT 3, i + 2, CASE WHEN by_handle THEN NULL ELSE 'C' || lpad(CAST(c AS VARCHAR), 7, '0') END,
                   CASE WHEN by_handle THEN '@Fan' || c ELSE NULL END,
                   TIMESTAMP '2022-01-01' + to_seconds(CAST(floor(random() * 900 * 86400) AS BIGINT)),
                   'x', {text_list}[1 + CAST(floor(random() * {len(texts)}) AS INTEGER)],
                   CAST(floor(pow(10, random() * 6)) AS BIGINT), 0, 0,
                   round(s * 1.6 - 0.6, 4), 'file'
            FROM m
        """)
        con.execute(f"""
            INSERT INTO feedback (batch_id, row_no, unit_id, date, csat, nps, customer_id)
            SELECT 4, i + 2, 'U1', DATE '2022-01-01' + CAST(floor(random() * 900) AS INTEGER),
                   CASE WHEN random() < 0.5 THEN 1 + CAST(floor(random() * 5) AS INTEGER) END,
                   CASE WHEN random() < 0.7 THEN CAST(floor(random() * 11) AS INTEGER) END,
                   'C' || lpad(CAST(CAST(floor({customers} * random()) AS BIGINT) AS VARCHAR), 7, '0')
            FROM range({customers // 2}) t(i)
        """)
        con.execute(
            "INSERT INTO batches (batch_id, kind, file_name, rows, loaded_at, sha256) VALUES "
            "(1, 'purchases', 'bench', 0, now(), 'b1'), (2, 'customers', 'bench', 0, now(), 'b2'), "
            "(3, 'mentions', 'bench', 0, now(), 'b3'), (4, 'feedback', 'bench', 0, now(), 'b4')"
        )
        con.execute("CHECKPOINT")


def upkeep(path: str, batch_lines: int = 10_000) -> dict:
    """Import-time work that scoring relies on: store.order_totals, rebuilt in full (as the first
    load after rows written by hand, like build()'s, does) and kept in step for one more batch of
    ``batch_lines`` lines (half new orders, half lines of existing orders), then rolled back."""
    from cxstats import store

    with store.connect(path) as con:  # also migrates a file cached by an older version
        con.execute("BEGIN TRANSACTION")
        t0 = time.perf_counter()
        store.sync_order_totals(con)
        full = time.perf_counter() - t0
        con.execute("COMMIT")
        con.execute("BEGIN TRANSACTION")
        con.execute(f"""
            INSERT INTO purchases (batch_id, row_no, line_no, customer_id, order_date, amount, order_id, unit_id)
            SELECT 99, i + 2, 1, 'C' || lpad(CAST(i * 37 % 500000 AS VARCHAR), 7, '0'), DATE '2024-06-18', 12.50,
                   CASE WHEN i % 2 = 0 THEN 'N' || i ELSE 'O' || (i * 401) END, 'U1'
            FROM range({batch_lines}) t(i)""")
        t0 = time.perf_counter()
        store._touch_orders(con, 99)
        store.sync_order_totals(con, 99)
        one = time.perf_counter() - t0
        con.execute("ROLLBACK")
        assert store.order_totals_fresh(con)
    return {"full": full, "batch": one, "batch_lines": batch_lines}


# ---------------------------------------------------------------- the two sides (run in subprocesses)


def run_cxstats(path: str) -> dict:
    from cxstats import advocates, store

    t0, c0 = time.perf_counter(), time.process_time()
    with store.connect(path) as con:
        res = advocates.score(con, viewer=ADMIN)
    secs, cpu = time.perf_counter() - t0, time.process_time() - c0
    c = res.customers
    return {
        "seconds": secs,
        "cpu": cpu,
        "gated": len(c),
        "ranked": res.ranked,
        "ids": c["customer_id"].tolist()[:1000],
        "scores": c["score"].round(9).tolist()[:1000],
    }


def pandas_peer(p, m, f, cust, as_of, weights):
    """Plain pandas: the same definitions as DESIGN.md, written the way a pandas user would."""
    import numpy as np
    import pandas as pd

    as_of = pd.Timestamp(as_of)
    p = p[p["order_date"] <= as_of]
    cents = (p["amount"] * 100).round().astype("int64")  # exact money: integer cents
    no_id = p["order_id"].isna()
    okey = p["order_id"].where(~no_id, "\0" + p["batch_id"].astype(str) + "/" + p["row_no"].astype(str))
    o = pd.DataFrame({"customer_id": p["customer_id"], "okey": okey, "d": p["order_date"], "cents": cents})
    orders = o.groupby(["customer_id", "okey"], sort=False).agg(d=("d", "min"), net=("cents", "sum")).reset_index()
    counted = orders[orders["net"] > 0]
    g = counted.groupby("customer_id")
    base = pd.DataFrame({"orders": g.size(), "first": g["d"].min(), "last": g["d"].max()})
    base["spend"] = orders.groupby("customer_id")["net"].sum().reindex(base.index) / 100
    base["recency_days"] = (as_of - base["last"]).dt.days
    base["R"] = (-base["recency_days"]).rank(method="average", pct=True)
    base["F"] = base["orders"].rank(method="average", pct=True)
    base["M"] = base["spend"].rank(method="average", pct=True)
    base["loyalty"] = (base["R"] + base["F"] + base["M"]) / 3

    norm = cust["handle"].str.strip().str.lstrip("@").str.lower()
    owners = pd.DataFrame({"h": norm, "cid": cust["customer_id"]}).dropna().groupby("h")["cid"].agg(["min", "nunique"])
    single = owners[owners["nunique"] == 1]["min"]
    m = m[m["posted_at"].dt.normalize() <= as_of]
    mh = m["handle"].str.strip().str.lstrip("@").str.lower()
    cid = m["customer_id"].fillna(mh.map(single))
    d = m["posted_at"].dt.normalize()
    recent = (as_of - d).dt.days <= 90
    mm = pd.DataFrame(
        {
            "cid": cid,
            "s": m["sentiment"],
            "followers": m["followers"],
            "pos": m["sentiment"] >= 0.05,
            "neg": m["sentiment"] <= -0.05,
            "recent_neg": (m["sentiment"] <= -0.05) & recent,
        }
    ).dropna(subset=["cid"])
    mg = mm.groupby("cid").agg(
        positive=("pos", "sum"),
        negative=("neg", "sum"),
        recent_neg=("recent_neg", "sum"),
        max_followers=("followers", "max"),
    )

    # the latest NPS: the latest date, then (answers of one day) the highest
    f = f[f["customer_id"].notna() & (f["date"] <= as_of)].sort_values(["date", "nps"])
    fg = f.groupby("customer_id")
    nps_latest = f.dropna(subset=["nps"]).groupby("customer_id")["nps"].last()
    fd = pd.DataFrame(
        {
            "csat_mean": fg["csat"].mean(),
            "promoter": (f["nps"] >= 9).groupby(f["customer_id"]).sum(),
            "recent_det": ((f["nps"] <= 6) & ((as_of - f["date"]).dt.days <= 90)).groupby(f["customer_id"]).sum(),
        }
    )
    fd["nps"] = nps_latest

    df = base.join(mg).join(fd)
    for c in ("positive", "negative", "recent_neg", "promoter", "recent_det"):
        df[c] = df[c].fillna(0)
    df["reach_score"] = np.minimum(np.log10(1 + df["max_followers"].fillna(0)) / 6, 1)
    df["advocacy"] = np.minimum(df["positive"], 5) / 5
    df["satisfaction"] = np.where(df["nps"].notna(), df["nps"] / 10, (df["csat_mean"] - 1) / 4)
    has = df["satisfaction"].notna()
    num = (
        weights["loyalty"] * df["loyalty"]
        + weights["advocacy"] * df["advocacy"]
        + weights["reach"] * df["reach_score"]
        + weights["satisfaction"] * df["satisfaction"].fillna(0)
    )
    den = weights["loyalty"] + weights["advocacy"] + weights["reach"] + np.where(has, weights["satisfaction"], 0)
    df["score"] = 100 * num / den
    gated = df[
        (df["orders"] >= 2)
        & ((df["positive"] >= 1) | (df["promoter"] >= 1))
        & (df["recent_neg"] == 0)
        & (df["recent_det"] == 0)
    ]
    return gated.reset_index(names="customer_id").sort_values(["score", "customer_id"], ascending=[False, True])


def run_pandas(path: str) -> dict:
    import duckdb

    from cxstats import advocates

    con = duckdb.connect(path, read_only=True)
    p = con.execute("SELECT batch_id, row_no, customer_id, order_id, order_date, amount FROM purchases").df()
    m = con.execute("SELECT customer_id, handle, posted_at, followers, sentiment, text FROM mentions").df()
    f = con.execute("SELECT batch_id, row_no, customer_id, date, csat, nps FROM feedback").df()
    cust = con.execute("SELECT customer_id, handle FROM customers").df()
    as_of = con.execute("SELECT max(order_date) FROM purchases").fetchall()[0][0]
    con.close()
    import pandas as pd

    p["order_date"] = pd.to_datetime(p["order_date"])  # datetime64, the fast pandas way
    f["date"] = pd.to_datetime(f["date"])
    t0, c0 = time.perf_counter(), time.process_time()
    g = pandas_peer(p, m, f, cust, as_of, dict(advocates.DEFAULT_WEIGHTS))
    secs, cpu = time.perf_counter() - t0, time.process_time() - c0
    return {
        "seconds": secs,
        "cpu": cpu,
        "gated": len(g),
        "ids": g["customer_id"].tolist()[:1000],
        "scores": g["score"].round(9).tolist()[:1000],
    }


def run_vader(n: int) -> dict:
    import random

    from cxstats import sentiment

    rnd = random.Random(1)
    words = (
        "the staff were {a} and the coffee was {b}",
        "{a} service, {b} prices",
        "I {v} this store",
        "checkout was {a} today",
        "{b} experience, would {m} come back",
    )
    adj = ("great", "slow", "friendly", "rude", "lovely", "terrible", "ok", "excellent", "awful", "fine")
    texts = [
        rnd.choice(words).format(
            a=rnd.choice(adj),
            b=rnd.choice(adj),
            v=rnd.choice(("love", "hate", "like")),
            m=rnd.choice(("not", "definitely")),
        )
        + f" #{i}"
        for i in range(n)
    ]
    sentiment._analyzer()
    t0 = time.perf_counter()
    sentiment.compound(texts)
    return {"seconds": time.perf_counter() - t0, "texts": n}


def _child(which: str, arg: str) -> None:
    out = {"cxstats": run_cxstats, "pandas": run_pandas, "upkeep": upkeep, "vader": lambda a: run_vader(int(a))}[which](
        arg
    )
    out["peak_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(out))


def _spawn(which: str, arg: str) -> dict:
    r = subprocess.run(
        [sys.executable, __file__, "--child", which, arg],
        capture_output=True,
        text=True,
        env=dict(os.environ, PYTHONPATH=str(ROOT)),
    )
    if r.returncode != 0:
        raise SystemExit(r.stderr)
    return json.loads(r.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--purchases", type=int, default=10_000_000)
    ap.add_argument("--mentions", type=int, default=1_000_000)
    ap.add_argument("--customers", type=int, default=500_000)
    ap.add_argument("--vader", type=int, default=100_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--child", nargs=2, default=None, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        _child(*a.child)
        return
    path = Path(tempfile.gettempdir()) / f"cxstats_bench_{a.purchases}_{a.mentions}_{a.customers}.duckdb"
    if not path.exists():
        t0 = time.perf_counter()
        build(path, a.purchases, a.mentions, a.customers)
        print(f"built {path} in {time.perf_counter() - t0:.1f} s")
    up = _spawn("upkeep", str(path))  # first: it also migrates a file cached by an older version
    print(
        f"order_totals upkeep (import time, not in the score): full rebuild {up['full']:.2f} s; "
        f"a {up['batch_lines']:,}-line batch {up['batch']:.2f} s"
    )
    cx = [_spawn("cxstats", str(path)) for _ in range(a.repeat)]
    pd_ = [_spawn("pandas", str(path)) for _ in range(a.repeat)]
    best_cx = min(cx, key=lambda r: r["seconds"])
    best_pd = min(pd_, key=lambda r: r["seconds"])
    assert best_cx["gated"] == best_pd["gated"], (best_cx["gated"], best_pd["gated"])
    assert best_cx["ids"] == best_pd["ids"], "the peer ranks differently: not equal work"
    assert max(abs(x - y) for x, y in zip(best_cx["scores"], best_pd["scores"])) < 1e-6
    print(
        f"data: {a.purchases:,} purchase rows, {a.mentions:,} mentions, {a.customers:,} customers; "
        f"{best_cx['ranked']:,} with an order, {best_cx['gated']:,} pass the gates (same in both)"
    )

    def runs(rs):
        return ", ".join(f"{r['seconds']:.2f}" for r in rs)

    print(
        f"cxstats score: {best_cx['seconds']:.2f} s wall, {best_cx['cpu']:.2f} s CPU (runs {runs(cx)}), "
        f"peak {max(r['peak_mb'] for r in cx):,.0f} MB"
    )
    print(
        f"pandas peer:   {best_pd['seconds']:.2f} s wall, {best_pd['cpu']:.2f} s CPU (runs {runs(pd_)}), "
        f"peak {max(r['peak_mb'] for r in pd_):,.0f} MB (data already in memory, load not timed)"
    )
    print(
        f"speed-up: {best_pd['seconds'] / best_cx['seconds']:.1f}x wall, "
        f"{best_pd['cpu'] / best_cx['cpu']:.1f}x CPU (CPU sums DuckDB's threads)"
    )
    if a.vader:
        v = _spawn("vader", str(a.vader))
        print(
            f"VADER: {v['texts']:,} texts in {v['seconds']:.1f} s ({v['texts'] / v['seconds']:,.0f} texts/s), "
            f"peak {v['peak_mb']:,.0f} MB"
        )


if __name__ == "__main__":
    main()
