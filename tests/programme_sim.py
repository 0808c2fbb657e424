"""Simulated reward programmes for the programme-effect checks (tests/test_programme.py and
scripts/simulate_programme.py, which writes docs/simulations-programme.md).

Customers buy as Poisson processes with gamma-distributed rates (the heterogeneity that makes
"top recent buyers" regress to the mean). Staff reward, in three rounds, the 50 customers with the
highest "recent buying" score (orders in the last 90 days, minus a little for every month since the
last order, plus a Gumbel-distributed judgement of scale 1): top recent buyers, chosen by people, not
by a coin. A planted effect adds ``effect`` orders (spaced in the 90 days after the reward) to every
rewarded customer. For the hold-out design, a list of the 300 top recent buyers is split by
``draw_holdout`` (20% held out) and only the reward arm gets the effect.

Everything is seeded (``numpy.random.default_rng(seed)``); nothing reads the database.
"""

from __future__ import annotations

import numpy as np

from cxstats import programme

N_CUSTOMERS = 1500
DAYS = 720  # day 0 .. as_of
ROUNDS = (360, 450, 540)  # reward dates (day numbers)
PER_ROUND = 50
LIST_DAY = 540  # the hold-out list's date
LIST_SIZE = 300
HOLDOUT_PCT = 20
BASE = 1.2  # mean orders per 90 days
SHAPE = 1.5  # gamma shape of the rates (smaller: more heterogeneous)
DAY0 = 19000  # day numbers (2022-01-08): any origin works


def _orders(rng, n: int = N_CUSTOMERS):
    rates = rng.gamma(SHAPE, BASE / SHAPE / 90, n)  # orders per day
    start = rng.integers(0, 300, n)  # when each customer's history begins
    cust, day = [], []
    for i in range(n):
        k = rng.poisson(rates[i] * (DAYS - start[i]))
        d = rng.integers(start[i], DAYS, k)
        cust.append(np.full(k, i))
        day.append(d)
    cust, day = np.concatenate(cust), np.concatenate(day)
    amount = np.round(rng.lognormal(np.log(45), 0.4, len(day)), 2)
    return cust, day, amount


def _recent_score(rng, cust, day, t: int, n: int) -> np.ndarray:
    m = (day >= t - 90) & (day < t)
    o90 = np.bincount(cust[m], minlength=n).astype(float)
    last = np.full(n, -10_000)
    before = day < t
    np.maximum.at(last, cust[before], day[before])
    months = np.minimum((t - last) / 30.0, 12)
    return o90 - 0.3 * months + rng.gumbel(0, 1.0, n)


def _book(cust, day, amount) -> programme.OrderBook:
    ids = np.array([f"c{i:05d}" for i in cust], dtype=object)
    return programme.OrderBook(ids, day + DAY0, amount)


def _add_effect(rng, cust, day, amount, who, t, effect: int):
    if effect <= 0 or not len(who):
        return cust, day, amount
    extra_c = np.repeat(who, effect)
    extra_d = np.concatenate([t + 5 + (80 // effect) * np.arange(effect) for _ in who])
    extra_a = np.round(rng.lognormal(np.log(45), 0.4, len(extra_c)), 2)
    return np.r_[cust, extra_c], np.r_[day, extra_d.astype(int)], np.r_[amount, extra_a]


def _targeted(seed: int, effect: int):
    """Orders and the rewards of three rounds to the top recent buyers (effect planted on them)."""
    rng = np.random.default_rng(seed)
    cust, day, amount = _orders(rng)
    rewarded: dict[int, int] = {}
    for t in ROUNDS:
        s = _recent_score(rng, cust, day, t, N_CUSTOMERS)
        s[list(rewarded)] = -np.inf
        who = np.argsort(-s, kind="stable")[:PER_ROUND]
        for i in who:
            rewarded[int(i)] = t
        cust, day, amount = _add_effect(rng, cust, day, amount, who, t, effect)
    return _book(cust, day, amount), rewarded


def matched_run(seed: int, effect: int = 0, n_boot: int = 1000) -> programme.Design:
    """One programme of targeted rewards (three rounds), then the matched design."""
    book, rewarded = _targeted(seed, effect)
    rewards = {f"c{i:05d}": t + DAY0 for i, t in rewarded.items()}
    excluded = {c: np.array([d]) for c, d in rewards.items()}
    return programme.matched_design(book, rewards, excluded, DAYS + DAY0, n_boot=n_boot, seed=seed)


def holdout_run(seed: int, effect: int = 0) -> programme.Design:
    """A list of the top recent buyers with a 20% random hold-out; the reward arm gets the effect."""
    rng = np.random.default_rng(seed)
    cust, day, amount = _orders(rng)
    s = _recent_score(rng, cust, day, LIST_DAY, N_CUSTOMERS)
    listed = np.argsort(-s, kind="stable")[:LIST_SIZE]
    reward, held = programme.draw_holdout([f"c{i:05d}" for i in listed], HOLDOUT_PCT, seed)
    who = np.array([int(c[1:]) for c in reward])
    cust, day, amount = _add_effect(rng, cust, day, amount, who, LIST_DAY, effect)
    book = _book(cust, day, amount)
    return programme.holdout_design(book, 1, LIST_DAY + DAY0, reward, held, DAYS + DAY0)


def matched_run_raw(seed: int, effect: int = 0) -> float:
    """The naive comparison: rewarded customers' change of orders minus every never-rewarded
    customer's, averaged over the rounds (no matching; for the docs)."""
    book, rewarded = _targeted(seed, effect)
    others = [f"c{i:05d}" for i in range(N_CUSTOMERS) if i not in rewarded]
    diffs = []
    for t in ROUNDS:
        ot, _ = book.change(book.idx([f"c{i:05d}" for i, tt in rewarded.items() if tt == t]), t + DAY0)
        oc, _ = book.change(book.idx(others), t + DAY0)
        diffs.append(ot.mean() - oc.mean())
    return float(np.mean(diffs))


def holds(iv: programme.Interval, value: float) -> bool:
    return iv.ci_low is not None and iv.ci_low <= value <= iv.ci_high


def rates(seeds, n_boot: int = 1000) -> dict:
    """Acceptance rates over ``seeds`` (DESIGN.md acceptance notes)."""
    out = {
        "seeds": len(seeds),
        "null_held": 0,
        "null_warned": 0,
        "null_ok": 0,
        "planted_held": 0,
        "holdout_null_held": 0,
        "holdout_planted_held": 0,
        "pairs": [],
        "null_estimates": [],
        "planted_estimates": [],
        "naive": [],
    }
    for s in seeds:
        d0 = matched_run(s, 0, n_boot)
        d1 = matched_run(s, 1, n_boot)
        h0 = holdout_run(s, 0)
        h1 = holdout_run(s, 1)
        held0 = holds(d0.orders, 0.0)
        out["null_held"] += held0
        out["null_warned"] += bool(d0.warnings)
        out["null_ok"] += held0 or bool(d0.warnings)
        out["planted_held"] += holds(d1.orders, 1.0)
        out["holdout_null_held"] += holds(h0.orders, 0.0)
        out["holdout_planted_held"] += holds(h1.orders, 1.0)
        out["pairs"].append(d0.n_treated)
        out["null_estimates"].append(d0.orders.estimate)
        out["planted_estimates"].append(d1.orders.estimate)
    return out
