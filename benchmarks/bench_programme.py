"""The programme effect on the demo data: cxstats.programme beside a pandas peer doing equal work.

    python benchmarks/bench_programme.py [--customers 3000] [--units 40] [--repeat 3]

Builds the demo database once (not timed), then, each in a fresh subprocess (peak = ru_maxrss):

- cxstats: open the database, ``programme.programme_effect(con, viewer=ADMIN)`` (orders read once into
  prefix sums; every hold-out export and the matched design with its placebo). "cold" is the first
  call in the process (imports done), "warm" the best of the next calls.
- pandas peer: the purchases read into a DataFrame (not timed, which favours the peer), per-order
  nets with groupby, then for every reward date (and its placebo date) the covariates from boolean
  masks and groupby over the orders, the same greedy caliper matching and the same pair bootstrap.
  Its pairs and estimate are checked against cxstats' before any figure is shown.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

CHILD = r"""
import json, resource, sys, time
sys.path.insert(0, __ROOT__)
which, db, repeat = sys.argv[1], sys.argv[2], int(sys.argv[3])
from cxstats import ADMIN, store, programme
import numpy as np, pandas as pd

def cx():
    with store.connect(db) as con:
        return programme.programme_effect(con, viewer=ADMIN).matched

def peer_prepare():
    with store.connect(db) as con:
        lines = con.execute("SELECT customer_id, order_id, order_date, CAST(amount AS DOUBLE) AS amount, batch_id, "
                            "row_no, line_no FROM purchases WHERE customer_id IS NOT NULL").df()
        rewards = con.execute("SELECT customer_id, reward_date FROM rewards").df()
        as_of = con.execute("SELECT max(order_date) FROM purchases").fetchall()[0][0]
    return lines, rewards, pd.Timestamp(as_of)

def peer(lines, rewards, as_of):
    key = lines["order_id"].fillna("#" + lines["batch_id"].astype(str) + "-" + lines["row_no"].astype(str)
                                   + "-" + lines["line_no"].astype(str))
    o = (lines.assign(k=key).groupby(["customer_id", "k"], as_index=False)
         .agg(d=("order_date", "min"), net=("amount", "sum")))
    o["d"] = pd.to_datetime(o["d"])
    o = o[o["d"] <= as_of]
    rewards = rewards.assign(t=pd.to_datetime(rewards["reward_date"]))
    rewards = rewards[rewards["t"] <= as_of]
    first = rewards.groupby("customer_id")["t"].min()
    cutoff = as_of - pd.Timedelta(days=90)
    treated = first[first <= cutoff].sort_index()
    ids = np.array(sorted(o["customer_id"].unique()))
    D = pd.Timedelta

    def cov_at(t):
        w = o[o["d"] < t]
        cnt = w[w["net"] > 0]
        g = pd.DataFrame(index=pd.Index(ids, name="customer_id"))
        r90 = w[w["d"] >= t - D(days=90)]
        g["o90"] = r90[r90["net"] > 0].groupby("customer_id").size()
        g["s90"] = r90.groupby("customer_id")["net"].sum()
        p90 = w[(w["d"] >= t - D(days=180)) & (w["d"] < t - D(days=90))]
        g["o180"] = p90[p90["net"] > 0].groupby("customer_id").size()
        g = g.fillna(0.0)
        g["trend"] = g["o90"] - g["o180"]
        g["rec"] = (t - cnt.groupby("customer_id")["d"].max()).dt.days
        g["ten"] = (t - o[o["net"] > 0].groupby("customer_id")["d"].min()).dt.days
        g.loc[g["rec"].isna(), "ten"] = np.nan
        return g[["o90", "s90", "trend", "rec", "ten"]]

    def change(cids, t):
        b = o[(o["customer_id"].isin(cids)) & (o["d"] >= t - D(days=90)) & (o["d"] < t)]
        a = o[(o["customer_id"].isin(cids)) & (o["d"] >= t) & (o["d"] < t + D(days=90))]
        f = lambda x, col: (x[x["net"] > 0].groupby("customer_id").size() if col is None
                            else x.groupby("customer_id")["net"].sum())
        return ((f(a, None).reindex(cids, fill_value=0) - f(b, None).reindex(cids, fill_value=0)).to_numpy(),
                (f(a, 1).reindex(cids, fill_value=0) - f(b, 1).reindex(cids, fill_value=0)).to_numpy())

    rew_days = rewards.groupby("customer_id")["t"].apply(list).to_dict()

    def match(offset):
        used, pairs = set(), []
        for t, grp in treated.groupby(treated):
            d = t - D(days=offset)
            cov = cov_at(d)
            has = cov["rec"].notna()
            blocked = {c for c, ts in rew_days.items() if any(d - D(days=180) <= x <= d + D(days=90) for x in ts)}
            tr = [c for c in sorted(grp.index) if c in cov.index and has[c]]
            pool = cov[has & ~cov.index.isin(blocked) & ~cov.index.isin(tr)]
            ref = pd.concat([cov.loc[tr], pool])
            sd = ref.std(ddof=1).to_numpy()
            vi = np.linalg.pinv(np.cov(ref.to_numpy(), rowvar=False))
            P = pool.to_numpy()
            for c in tr:
                free = ~pool.index.isin(used)
                diff = P - cov.loc[c].to_numpy()
                ok = free & (np.abs(diff) <= 0.25 * sd + 1e-12).all(axis=1)
                if not ok.any():
                    continue
                cand = np.flatnonzero(ok)
                dist = np.einsum("ij,jk,ik->i", diff[cand], vi, diff[cand])
                best = pool.index[cand[np.argmin(np.round(dist, 12))]]
                used.add(best)
                pairs.append((c, best, d))
        return pairs

    out = {}
    rng = np.random.default_rng(12345)
    for name, off in (("orders", 0), ("pretrend", 180)):
        pairs = match(off)
        dd = [(change([c], d)[0][0] - change([k], d)[0][0]) for c, k, d in pairs]
        dd = np.array(dd, dtype=float)
        idx = rng.integers(0, len(dd), size=(2000, len(dd)))
        if name == "orders":
            ds = np.array([(change([c], d)[1][0] - change([k], d)[1][0]) for c, k, d in pairs])
            rng.integers(0, len(dd), size=(2000, len(dd)))  # cxstats draws orders and spend from one matrix
        out[name] = (len(pairs), float(dd.mean()), float(np.percentile(dd[idx].mean(axis=1), 2.5)))
    return out

res = {"which": which}
if which == "cxstats":
    times = []
    for i in range(repeat + 1):
        t0 = time.perf_counter(); m = cx(); times.append(time.perf_counter() - t0)
    res.update(cold=times[0], warm=min(times[1:]), pairs=m.n_treated, estimate=m.orders.estimate,
               ci_low=m.orders.ci_low, placebo=m.pretrend.estimate if m.pretrend else None)
else:
    lines, rewards, as_of = peer_prepare()
    times = []
    for i in range(repeat):
        t0 = time.perf_counter(); out = peer(lines, rewards, as_of); times.append(time.perf_counter() - t0)
    res.update(best=min(times), pairs=out["orders"][0], estimate=out["orders"][1], placebo=out["pretrend"][1])
res["peak_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps(res))
"""


def child(which: str, db: str, repeat: int) -> dict:
    r = subprocess.run(
        [sys.executable, "-c", CHILD.replace("__ROOT__", repr(str(ROOT))), which, db, str(repeat)],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(r.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--customers", type=int, default=3000)
    ap.add_argument("--units", type=int, default=40)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args(argv)
    sys.path.insert(0, str(ROOT))
    from cxstats import demo

    with tempfile.TemporaryDirectory() as tmp:
        db = str(Path(tmp) / "demo.duckdb")
        demo.build_demo(db, units=args.units, customers=args.customers)
        cx = child("cxstats", db, args.repeat)
        peer = child("pandas", db, args.repeat)
    assert cx["pairs"] == peer["pairs"], (cx, peer)
    assert abs(cx["estimate"] - peer["estimate"]) < 1e-9 and abs(cx["placebo"] - peer["placebo"]) < 1e-9, (cx, peer)
    print(json.dumps({"cxstats": cx, "pandas": peer, "peer_over_cxstats_warm": peer["best"] / cx["warm"]}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
