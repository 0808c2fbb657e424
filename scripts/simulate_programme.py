"""Rerun the programme-effect simulations and write docs/simulations-programme.md.

    python scripts/simulate_programme.py [--seeds 100] [--boot 1000] [--out docs/simulations-programme.md]

The generator is tests/programme_sim.py (the same code the tests run: 8 seeds in the fast tier,
100 in tests/test_programme.py::test_targeted_rewards_100_seeds, marked slow).
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

import programme_sim as sim  # noqa: E402


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=100)
    ap.add_argument("--boot", type=int, default=1000)
    ap.add_argument("--out", default=str(ROOT / "docs" / "simulations-programme.md"))
    args = ap.parse_args(argv)
    seeds = list(range(args.seeds))
    t0 = time.perf_counter()
    r = sim.rates(seeds, n_boot=args.boot)
    naive = [sim.matched_run_raw(s) for s in seeds]
    secs = time.perf_counter() - t0
    n = len(seeds)
    pairs = np.array(r["pairs"])
    null_est = np.array([x for x in r["null_estimates"] if x is not None])
    planted_est = np.array([x for x in r["planted_estimates"] if x is not None])
    text = f"""# Programme effect: simulations

Written by `python scripts/simulate_programme.py --seeds {n} --boot {args.boot}` on
{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC ({secs:.0f} s). The generator is
`tests/programme_sim.py`; the same seeds run in `tests/test_programme.py` (8 in the fast tier, all
{n} in the slow test). Definitions: DESIGN.md, "Did rewarding work? (programme effect)";
implementation: `cxstats/programme.py`.

## How the data are generated

- {sim.N_CUSTOMERS:,} customers over {sim.DAYS} days. Each buys as a Poisson process with a rate drawn
  from a gamma distribution (shape {sim.SHAPE}, mean {sim.BASE} orders per 90 days), from a start day
  drawn uniformly in the first 300 days (so tenure varies). Order amounts are log-normal (median 45).
- **Targeted rewards (matched design).** Staff reward, on days {", ".join(map(str, sim.ROUNDS))}, the
  {sim.PER_ROUND} not yet rewarded customers with the highest "recent buying" score: orders in the
  last 90 days, minus 0.3 per month since the last order, plus a Gumbel(0, 1) judgement. These are the
  top recent buyers: their recent counts are high partly by luck, so their next 90 days fall back
  (regression to the mean) whatever the reward does.
- **Planted effect.** With effect +1, every rewarded customer places one extra order in the 90 days
  after the reward (so the true change of orders per 90 days is exactly +1); with 0, nothing changes.
- **Hold-out design.** On day {sim.LIST_DAY} the {sim.LIST_SIZE} top recent buyers are listed and
  `export.draw_holdout` holds out {sim.HOLDOUT_PCT}% at random (seeded); only the reward arm gets the
  planted effect. The estimate is the intention-to-treat difference with the Welch 95% CI.
- Seeds 0-{n - 1} (`numpy.random.default_rng(seed)`); the pair bootstrap uses B = {args.boot}.

## Rates over {n} seeds

| check | DESIGN.md threshold | result |
|---|---|---|
| matched, no effect: 95% CI holds 0 | (with the warning rule below) | {r["null_held"]} of {n} |
| matched, no effect: the estimate carries a warning | | {r["null_warned"]} of {n} |
| matched, no effect: CI holds 0 **or** a warning | >= 85 of 100 | **{r["null_ok"]} of {n}** |
| matched, planted +1: 95% CI holds +1 | >= 80 of 100 | **{r["planted_held"]} of {n}** |
| hold-out, no effect: Welch CI holds 0 | >= 90 of 100 | **{r["holdout_null_held"]} of {n}** |
| hold-out, planted +1: Welch CI holds +1 | >= 90 of 100 | **{r["holdout_planted_held"]} of {n}** |

Other figures from the same runs:

- Matched pairs per run (of 150 rewarded customers): median {np.median(pairs):.0f}, range
  {pairs.min()}-{pairs.max()}. The rest are counted as unmatched: the very top buyers have no
  look-alike within the caliper (0.25 SD on each covariate), and they are not forced onto one.
- Matched estimate of orders per 90 days: mean {null_est.mean():+.3f} with no effect (SD over seeds
  {null_est.std(ddof=1):.3f}), mean {planted_est.mean():+.3f} with +1 planted. The small bias that
  remains is what the caliper lets through: within 0.25 SD the rewarded customers still sit a little
  above their look-alikes on recent buying. It is small beside the interval's width (few pairs).
- The naive comparison (rewarded customers' change minus everyone else's, no matching) with no effect:
  mean {np.mean(naive):+.2f} orders per 90 days (range {min(naive):+.2f} to {max(naive):+.2f}): pure
  regression to the mean, which is what the matched design removes.
- The hold-out arms hold {sim.LIST_SIZE - round(sim.LIST_SIZE * sim.HOLDOUT_PCT / 100)} and
  {round(sim.LIST_SIZE * sim.HOLDOUT_PCT / 100)} customers; a correct 95% interval holds the truth in
  at least 90 of 100 seeds with probability 0.99.

## Reading the warnings

Almost every matched run warns, for two reasons that are real properties of targeted rewards, not
defects of the simulation: fewer than half of the rewarded customers find a look-alike (rewards aimed
at the very best buyers leave few), and the placebo (the whole matching and DiD rerun 180 days before
each reward) usually finds a difference. The placebo's treated customers were chosen later, for buying
that had not happened at the placebo date, so they do buy more than their placebo look-alikes: the
placebo warns that whatever drove the choice is not fully visible in the covariates. The matched
estimate itself stays close to the truth here because the choice depended on recent orders and
recency, which are matched on; a choice driven by something the data do not hold would bias it, and
only the hold-out is safe from that. That is why the Advocates page recommends the hold-out first.
"""
    Path(args.out).write_text(text, encoding="utf-8")
    print(
        f"wrote {args.out} in {secs:.0f} s: null_ok {r['null_ok']}, planted {r['planted_held']}, "
        f"holdout {r['holdout_null_held']}/{r['holdout_planted_held']} of {n}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
