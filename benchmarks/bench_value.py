"""Customer value (cxstats.value) at 500k customers: what it adds to the advocates command.

    python benchmarks/bench_value.py [--customers 500000] [--repeat 1]

1. The fit alone on a 500,000-customer summary simulated from the BG/NBD model (r 0.5, alpha 8,
   a 0.8, b 3; first purchases spread over 900 days; spend Gamma-Gamma): ``value.fit_bgnbd`` and
   ``value.fit_gamma_gamma``, P(alive) and the expectations for everyone, with the parameters it
   recovers (the estimator's check at scale: a pure-numpy peer is the per-customer formula of
   ``value.bgnbd_loglik`` summed over every customer, timed per evaluation).
2. On the advocates benchmark's database (benchmarks/bench_advocates.py builds it, cached in
   $TMPDIR: 10M purchase lines, 500k customers): ``advocates.score(con, clv=False)`` beside
   ``advocates.score(con)`` (the model, its backtest refit and the reasons), each in its own
   subprocess, and the parts of ``value.customer_value`` timed in-process.
Wall and CPU seconds (CPU sums DuckDB's threads). The machine is shared: see benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from cxstats import ADMIN  # noqa: E402  (after the path: the benchmarks run from a checkout)


def simulate(n: int, seed: int = 1):
    """x, t_x (days), T (days), m from the BG/NBD and Gamma-Gamma models, vectorised."""
    import numpy as np

    rng = np.random.default_rng(seed)
    r, alpha, a, b = 0.5, 8.0, 0.8, 3.0
    T_days = rng.integers(1, 900, n)
    T = T_days / 7
    lam = rng.gamma(r, 1 / alpha, n)
    p = rng.beta(a, b, n)
    N = rng.poisson(lam * T)  # Poisson events in (0, T] while alive
    D = rng.geometric(p)  # repeat transactions before dropping out (after each, out with prob p)
    x = np.minimum(N, D)
    # the x-th of N uniform event times in (0, T]
    frac = np.where(x > 0, rng.beta(np.maximum(x, 1), np.maximum(N - x + 1, 1)), 0.0)
    t_x_days = np.minimum(np.floor(frac * T_days), T_days).astype(np.int64)
    nu = rng.gamma(3.0, 1 / 40.0, n)
    m = np.where(x > 0, rng.gamma(4.0 * np.maximum(x, 1), 1 / (nu * np.maximum(x, 1))), np.nan)
    return x, t_x_days, T_days, m


def run_fit(n: int) -> dict:
    import numpy as np

    from cxstats import value

    x, t_x, T, m = simulate(n)
    t0, c0 = time.perf_counter(), time.process_time()
    bg = value.fit_bgnbd(x, t_x, T, days=True)
    fit_bg = time.perf_counter() - t0
    t1 = time.perf_counter()
    gg = value.fit_gamma_gamma(x, m)
    fit_gg = time.perf_counter() - t1
    t2 = time.perf_counter()
    pa = value.p_alive(bg, x, t_x / 7, T / 7)
    eo = value._expected_orders_pooled(bg, 52, x, t_x / 7, T, pa)
    es = value.expected_spend(gg, x, m)
    predict = time.perf_counter() - t2
    total, cpu = time.perf_counter() - t0, time.process_time() - c0
    t3 = time.perf_counter()
    for _ in range(3):
        value.bgnbd_loglik(bg.r, bg.alpha, bg.a, bg.b, x, t_x / 7, T / 7).sum()
    plain_eval = (time.perf_counter() - t3) / 3
    d = value._BGNBDData(x, t_x, T)
    th = np.log([bg.r, bg.alpha, bg.a, bg.b])
    t4 = time.perf_counter()
    for _ in range(3):
        d.nll(th)
    pooled_eval = (time.perf_counter() - t4) / 3
    return {
        "n": n,
        "repeaters": int((x > 0).sum()),
        "fit_bgnbd": fit_bg,
        "fit_gamma_gamma": fit_gg,
        "predict": predict,
        "total": total,
        "cpu": cpu,
        "bgnbd": bg.as_json(),
        "gamma_gamma": gg.as_json(),
        "plain_eval": plain_eval,
        "pooled_eval_with_gradient": pooled_eval,
        "value_sum": float((eo * es).sum()),
    }


def run_score(path: str, clv: str) -> dict:
    from cxstats import advocates, store

    t0, c0 = time.perf_counter(), time.process_time()
    with store.connect(path) as con:
        res = advocates.score(con, clv=clv == "1", viewer=ADMIN)
    out = {"seconds": time.perf_counter() - t0, "cpu": time.process_time() - c0, "gated": len(res.customers)}
    if res.clv is not None:
        out["clv_reason"] = res.clv.reason
        out["clv"] = res.clv.as_json() is not None
    return out


def run_parts(path: str) -> dict:
    from cxstats import ADMIN, advocates, store, value

    with store.connect(path) as con:
        as_of = advocates.latest_order_date(con)
        t0 = time.perf_counter()
        df = value.summary(con, as_of, viewer=ADMIN, days_sql=advocates._days_sql)
        t_sum = time.perf_counter() - t0
        t1 = time.perf_counter()
        bg, gg, reason = value._model_on(df, 52)
        t_fit = time.perf_counter() - t1
        t2 = time.perf_counter()
        cv = value.customer_value(con, viewer=ADMIN, as_of=as_of, days_sql=advocates._days_sql)
        t_all = time.perf_counter() - t2
    return {
        "summary_sql": t_sum,
        "fit": t_fit,
        "customer_value_total": t_all,
        "customers": len(df),
        "reason": reason or cv.reason,
    }


def _child(which: str, arg: str) -> None:
    import resource

    if which == "fit":
        out = run_fit(int(arg))
    elif which == "parts":
        out = run_parts(arg)
    else:
        path, clv = arg.rsplit("|", 1)
        out = run_score(path, clv)
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
    ap.add_argument("--customers", type=int, default=500_000)
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--skip-db", action="store_true", help="only the fit on the simulated summary")
    ap.add_argument("--child", nargs=2, default=None, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        _child(*a.child)
        return
    fits = [_spawn("fit", str(a.customers)) for _ in range(a.repeat)]
    f = min(fits, key=lambda r: r["total"])
    print(
        f"simulated summary, {f['n']:,} customers ({f['repeaters']:,} with repeat days): BG/NBD fit "
        f"{f['fit_bgnbd']:.2f} s, Gamma-Gamma fit {f['fit_gamma_gamma']:.2f} s, P(alive)+expectations "
        f"{f['predict']:.2f} s; total {f['total']:.2f} s wall, {f['cpu']:.2f} s CPU "
        f"(runs {', '.join(format(r['total'], '.2f') for r in fits)})"
    )
    print(
        f"  recovered BG/NBD {json.dumps({k: round(v, 4) for k, v in f['bgnbd'].items()})} (planted r 0.5, "
        f"alpha 8, a 0.8, b 3); Gamma-Gamma {json.dumps({k: round(v, 3) for k, v in f['gamma_gamma'].items()})} "
        "(planted p 4, q 3, gamma 40)"
    )
    print(
        f"  one log-likelihood evaluation over everyone: plain per-customer formula {f['plain_eval'] * 1000:.0f} ms, "
        f"pooled (with its gradient) {f['pooled_eval_with_gradient'] * 1000:.0f} ms"
    )
    if a.skip_db:
        return
    path = Path(tempfile.gettempdir()) / f"cxstats_bench_10000000_1000000_{a.customers}.duckdb"
    if not path.exists():
        raise SystemExit(f"{path} is missing: run benchmarks/bench_advocates.py first (it builds the file)")
    parts = _spawn("parts", str(path))
    print(
        f"advocates benchmark file ({parts['customers']:,} customers): summary SQL {parts['summary_sql']:.2f} s, "
        f"fit {parts['fit']:.2f} s ({parts['reason'] or 'fitted'}), customer_value with backtest "
        f"{parts['customer_value_total']:.2f} s"
    )
    plain = [_spawn("score", f"{path}|0") for _ in range(a.repeat)]
    full = [_spawn("score", f"{path}|1") for _ in range(a.repeat)]
    bp, bf = min(plain, key=lambda r: r["seconds"]), min(full, key=lambda r: r["seconds"])
    print(
        f"advocates.score without the model: {bp['seconds']:.2f} s wall, {bp['cpu']:.2f} s CPU; with it: "
        f"{bf['seconds']:.2f} s wall, {bf['cpu']:.2f} s CPU; the model adds {bf['seconds'] - bp['seconds']:.2f} s "
        f"wall, {bf['cpu'] - bp['cpu']:.2f} s CPU ({bf.get('clv_reason') or 'fitted'})"
    )


if __name__ == "__main__":
    main()
