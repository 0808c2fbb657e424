"""Rerun the linkage simulations and write docs/simulations-linkage.md.

    python scripts/simulate_linkage.py            # 100 seeds per scenario (about a minute)
    python scripts/simulate_linkage.py --seeds 20 --out -    # quicker, to stdout

The generators are tests/linkage_sims.py (the test suite uses the same ones with the same seeds:
tests/test_linkage_sims.py). Every number in the page comes from this script's run.
"""

from __future__ import annotations

import argparse
import math
import platform
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from linkage_sims import PLANTED, corrected_of, noisy_panel, one_way_rm_p, shock_panel  # noqa: E402

from cxstats import stats  # noqa: E402


def wilson(k: int, n: int) -> tuple[float, float]:
    """95% Wilson interval of a proportion k/n."""
    z = stats.Z_975
    p = k / n
    den = 1 + z * z / n
    mid = (p + z * z / (2 * n)) / den
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / den
    return mid - half, mid + half


def rate(k: int, n: int) -> str:
    lo, hi = wilson(k, n)
    return f"{k} / {n} ({100 * k / n:.0f}%; 95% CI {100 * lo:.0f}-{100 * hi:.0f}%)"


def shocks(seeds: int) -> list[tuple[str, str, str, str]]:
    rows = []
    for label, kw in [
        ("40 units x 8 quarters, iid errors (CRV1)", {}),
        ("40 units x 8 quarters, AR(1) 0.7 errors (CRV1)", {"ar": 0.7}),
        ("12 units x 8 quarters, iid errors (CRV3)", {"units": 12}),
        ("12 units x 8 quarters, AR(1) 0.7 errors (CRV3)", {"units": 12, "ar": 0.7}),
    ]:
        within = one_way = 0
        for seed in range(seeds):
            d = shock_panel(10_000 + seed, **kw)
            fe = stats.TwoWayPanel(d["cx"], d["engagement"], d["unit"], d["period"]).fit()
            within += fe.p < 0.05
            one_way += one_way_rm_p(d) < 0.05
        rows.append((label, rate(within, seeds), rate(within, seeds), rate(one_way, seeds)))
    return rows


def two_units(seeds: int) -> tuple[int, int]:
    given = 0
    for seed in range(seeds):
        d = shock_panel(20_000 + seed, units=2)
        fe = stats.TwoWayPanel(d["cx"], d["engagement"], d["unit"], d["period"]).fit()
        given += fe.p is not None or fe.ci_low is not None
    return given, seeds


def noisy(seeds: int) -> dict:
    unc, cor, rel, width = [], [], [], []
    cov = cov_unc = 0
    for seed in range(seeds):
        fit, c = corrected_of(noisy_panel(30_000 + seed))
        unc.append(fit.coef)
        cor.append(c.coef)
        rel.append(c.reliability)
        width.append(c.ci_high - c.ci_low)
        cov += c.ci_low <= PLANTED <= c.ci_high
        cov_unc += fit.ci_low <= PLANTED <= fit.ci_high
    return {
        "unc": np.array(unc),
        "cor": np.array(cor),
        "rel": np.array(rel),
        "width": np.array(width),
        "cov": cov,
        "cov_unc": cov_unc,
    }


def page(seeds: int) -> str:
    t0 = time.perf_counter()
    sh = shocks(seeds)
    two = two_units(seeds)
    nz = noisy(seeds)
    secs = time.perf_counter() - t0
    se = lambda a: a.std(ddof=1) / math.sqrt(a.size)  # noqa: E731
    lines = [
        "# Linkage statistics: simulation results",
        "",
        "Written by `python scripts/simulate_linkage.py` (generators in `tests/linkage_sims.py`; the test suite",
        "runs the same scenarios with the same seeds in `tests/test_linkage_sims.py`, 20 seeds in the fast tier",
        f"and 100 in the slow one). This run: {seeds} seeds per scenario, {secs:.0f} s, Python "
        f"{platform.python_version()}, numpy {np.__version__}. Rates carry a 95% Wilson interval.",
        "",
        'The estimators are those of DESIGN.md, "Linkage analysis": the two-way fixed-effects slope',
        "`cx ~ engagement + C(unit) + C(period)` with unit-clustered inference (CRV1 from 30 units, the jackknife",
        "CRV3 `V = (G-1)/G sum_g (b_(g) - b)^2` from 3 to 29, nothing below 3), t with G-1 degrees of freedom;",
        "`r_p` is the same test, so its rejection rate is the slope's. The corrected slope is `coef / reliability`",
        "with a percentile unit bootstrap (B = 999, fixed seed).",
        "",
        "## 1. Company-wide shocks, no within-unit effect",
        "",
        "Each seed draws `units` x 8 quarters: engagement `x = 60 + a_u + s_t + e_ut`, CX `y = 75 + c_u + 0.8 s_t +",
        "f_ut`, with unit levels a ~ N(0, 8), c ~ N(0, 6), a shock s_t ~ N(0, 5) shared by every unit in a quarter",
        "(a bad quarter for the whole chain moves both), and e, f ~ N(0, 3) independent (or a stationary AR(1)",
        "with coefficient 0.7 inside each unit, same variance). There is no within-unit link. Seeds 10000 +",
        "0..N-1. A test at 5% should reject in about 5% of seeds; the acceptance bound is 10 of 100.",
        "",
        "| panel | within-unit coefficient, p < 0.05 | r_p < 0.05 | old one-way repeated-measures r, p < 0.05 |",
        "|---|---|---|---|",
    ]
    lines += [f"| {a} | {b} | {c} | {d} |" for a, b, c, d in sh]
    lines += [
        "",
        "The one-way repeated-measures correlation (units centred, periods not) that this round replaces reads",
        "the shared shocks as a within-unit link in nearly every seed; removing period effects fixes that.",
        "",
        "## 2. Two units",
        "",
        f"The same shock panels with 2 units (seeds 20000 + 0..N-1): a CI or p was given in {two[0]} of {two[1]}",
        "seeds (the rule: below 3 units with two or more periods, CI and p are null with one reason; with two",
        "clusters the clustered variance is exactly zero). The CLI text and JSON on 2-unit databases are",
        "checked for any p below 0.05 in `tests/test_linkage_sims.py`.",
        "",
        "## 3. Small-group noise (CX driven by true engagement)",
        "",
        "Each seed: 40 units x 8 quarters; true engagement `E = 60 + a_u + q_t + e_ut` (a ~ N(0, 7), q ~ N(0, 2),",
        "e ~ N(0, 6)); each group has n ~ U{5..25} fresh respondents scoring `E + N(0, 14)`, the measured index is",
        f"their mean; `CX = 75 + c_u + p_t + {PLANTED} E + N(0, 2)` (c ~ N(0, 5), p ~ N(0, 1.5)). CX follows true",
        "engagement, so the measured slope is attenuated by the groups' sampling noise. Seeds 30000 + 0..N-1.",
        "",
        "| figure | mean over seeds (SE) | 95% CI holds 0.30 |",
        "|---|---|---|",
        f"| uncorrected within-unit coefficient | {nz['unc'].mean():.3f} ({se(nz['unc']):.3f}) | "
        f"{rate(nz['cov_unc'], seeds)} |",
        f"| corrected coefficient (coef / reliability) | {nz['cor'].mean():.3f} ({se(nz['cor']):.3f}) | "
        f"{rate(nz['cov'], seeds)} |",
        f"| reliability | {nz['rel'].mean():.3f} ({se(nz['rel']):.3f}) | |",
        "",
        f"Bias of the corrected coefficient: {nz['cor'].mean() - PLANTED:+.3f} (acceptance: within 0.03 of 0.30);",
        f"median width of its bootstrap CI {np.median(nz['width']):.3f}. The acceptance bound for coverage is 65",
        "of 100 (a unit bootstrap of a ratio undercovers a little; DESIGN.md's note reports about 75-80% for a",
        "reference implementation with B = 300).",
        "",
        "## What these simulations do not show",
        "",
        "- The correction assumes the noise in a group's index is only the sampling of its respondents (fresh",
        "  respondents each period, or the respondent_id-linked variant when the same people answer again). If",
        "  CX responds to the *measured* index (as in the demo data), the uncorrected figure is the right one",
        "  and the corrected one overshoots: it is shown beside the headline, never instead of it.",
        "- Few clusters: the CRV3 rows use 12 units; with 3-5 units any interval is very wide, and the",
        "  rejection rate there is not simulated here.",
        "",
    ]
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=100)
    ap.add_argument("--out", default=str(ROOT / "docs" / "simulations-linkage.md"), help="file, or - for stdout")
    args = ap.parse_args()
    text = page(args.seeds)
    if args.out == "-":
        print(text)
    else:
        Path(args.out).write_text(text, encoding="utf-8")
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
