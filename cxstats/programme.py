"""Did rewarding work? Hold-outs and the programme effect (DESIGN.md, "Did rewarding work?").

Rewards go to the best customers, so a naive comparison credits the reward with what those customers
would have done anyway. Two designs, the first preferred:

- **Hold-out** (randomised). A "to reward" export may hold out a random share of the customers it
  would list (:func:`draw_holdout`, seeded; recorded in ``holdouts`` in the same transaction as the
  export's audit row). Effect = intention-to-treat difference between the arms in the change of
  orders (and spend) per 90 days, windows ``[list_date - 90, list_date)`` and
  ``[list_date, list_date + 90)``, with a Welch 95% CI (:func:`arm_difference`). Valid whether or not
  every reward was recorded. An export whose window has not ended at as_of is "in progress".
- **Matched** (observational, for rewards without a hold-out). Each rewarded customer (first reward
  at t, at least 90 days before as_of) is matched to a control by Mahalanobis nearest neighbour on
  orders and spend in the 90 days before t, order trend (those orders minus the orders of the 90
  days before that), recency and tenure, within a caliper of 0.25 SD on each, without replacement,
  ties broken by customer_id. Difference-in-differences with a pair-bootstrap CI, a balance table
  (SMD before/after), a placebo at t - 180 days and warnings (:func:`matched_design`).

The covariates at any date come from prefix sums over the orders read once (:class:`OrderBook`):
no rescoring of the advocates per reward date.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import date, timedelta

import numpy as np
import pandas as pd

from . import Viewer
from . import customer_aggregates as ca
from .advocates import SCORING_ROLES, _as_date, latest_order_date
from .export import HOLDOUT_ROLES, MAX_HOLDOUT_PCT, check_pct, draw_holdout  # noqa: F401  (the hold-out is drawn at export)
from .stats import num, welch_diff

WINDOW_DAYS = 90  # before and after windows of the effect
EXCLUDE_BEFORE_DAYS = 180  # a control is neither rewarded nor held out from 180 days before ...
EXCLUDE_AFTER_DAYS = 90  # ... to 90 days after its pair's reward date
PLACEBO_DAYS = 180  # the placebo reruns everything at a pseudo reward date this much earlier
CALIPER_SD = 0.25
SMD_WARN = 0.1
MIN_PAIRS = 30
PAGE_HOLDOUT_PCT = 10.0  # what the Advocates page proposes
COVARIATES = ("orders_90d", "spend_90d", "order_trend", "recency_days", "tenure_days")

HOLDOUT_TEXT = (
    "The hold-out is an experiment: the computer, not a person, decided who was held back, so the two groups "
    "differ only by chance and by the reward. Its difference is what rewarding did to the listed customers "
    "(intention to treat: whether or not every reward was sent or recorded). It can only speak for customers "
    "like the ones on the list, and only after the 90 days have passed."
)
MATCHED_TEXT = (
    "The matched comparison is an estimate, not an experiment: rewarded customers were chosen by people, and "
    "whatever led to the choice can also change later buying. Each rewarded customer is compared with a "
    "customer who bought alike before (orders, spend, trend, recency, tenure). It cannot rule out reasons "
    "nobody recorded, and rewards aimed at the very best buyers leave few look-alikes; the warnings say when "
    "to distrust it. Use a hold-out when you can."
)


# ---------------------------------------------------------------- small results


@dataclass(frozen=True)
class Interval:
    """An estimate with its 95% CI (None when it cannot be computed)."""

    estimate: float | None
    ci_low: float | None
    ci_high: float | None

    def as_json(self) -> dict:
        return {"estimate": _f(self.estimate), "ci_low": _f(self.ci_low), "ci_high": _f(self.ci_high)}

    def excludes_zero(self) -> bool:
        return self.ci_low is not None and self.ci_high is not None and (self.ci_low > 0 or self.ci_high < 0)


NO_INTERVAL = Interval(None, None, None)


@dataclass(frozen=True)
class Balance:
    covariate: str
    smd_before: float | None
    smd_after: float | None

    def as_json(self) -> dict:
        return {"covariate": self.covariate, "smd_before": _f(self.smd_before), "smd_after": _f(self.smd_after)}


@dataclass(frozen=True)
class Design:
    """One design's estimate (DESIGN.md effect JSON, one entry of ``designs``).

    Beyond the JSON: ``list_date`` (hold-out) and ``n_too_recent`` (matched: rewards less than 90
    days before as_of, left out); ``means`` has one row per group (treated/control) with mean orders
    and spend before and after, for the chart.
    """

    design: str  # 'holdout' | 'matched'
    export_id: int | None
    n_treated: int
    n_control: int
    n_unmatched: int
    orders: Interval
    spend: Interval
    pretrend: Interval | None
    balance: tuple[Balance, ...]
    status: str  # 'done' | 'in progress'
    warnings: tuple[str, ...] = ()
    list_date: date | None = None
    n_too_recent: int = 0
    means: pd.DataFrame | None = field(default=None, compare=False)

    def as_json(self) -> dict:
        return {
            "design": self.design,
            "export_id": self.export_id,
            "n_treated": int(self.n_treated),
            "n_control": int(self.n_control),
            "n_unmatched": int(self.n_unmatched),
            "orders": self.orders.as_json(),
            "spend": self.spend.as_json(),
            "pretrend": None if self.pretrend is None else self.pretrend.as_json(),
            "balance": [b.as_json() for b in self.balance],
            "status": self.status,
            "warnings": list(self.warnings),
        }


@dataclass(frozen=True)
class ProgrammeEffect:
    """Every hold-out export (newest first), then the matched estimate. ``as_json()`` is DESIGN's
    ``designs[...]``."""

    as_of: date | None
    designs: tuple[Design, ...]
    window_days: int = WINDOW_DAYS
    holdout_text: str = HOLDOUT_TEXT
    matched_text: str = MATCHED_TEXT

    def as_json(self) -> dict:
        return {"designs": [d.as_json() for d in self.designs]}

    @property
    def matched(self) -> Design:
        return [d for d in self.designs if d.design == "matched"][0]

    @property
    def holdouts(self) -> tuple[Design, ...]:
        return tuple(d for d in self.designs if d.design == "holdout")


_f = num  # a finite float or None: cxstats.stats.num


# ---------------------------------------------------------------- pure formulas


def arm_difference(a, b) -> Interval:
    """Difference of means ``mean(a) - mean(b)`` with the Welch 95% CI (:func:`cxstats.stats.welch_diff`).

    ``se = sqrt(s_a^2 / n_a + s_b^2 / n_b)``, Welch-Satterthwaite degrees of freedom, t quantile at
    0.975 (Welch 1947, Biometrika 34: 28-35); equals
    ``scipy.stats.ttest_ind(a, b, equal_var=False).confidence_interval()``. Fewer than 2 values in an
    arm: the difference without an interval. Both variances 0: the interval is the point.

    >>> iv = arm_difference([1, 2, 3, 4], [0, 0, 1, 1])
    >>> round(iv.estimate, 3), round(iv.ci_low, 3), round(iv.ci_high, 3)
    (2.0, 0.065, 3.935)
    """
    a = np.asarray(a, dtype=float)
    b = np.asarray(b, dtype=float)
    if len(a) < 2 or len(b) < 2:
        return Interval(float(a.mean() - b.mean()) if len(a) and len(b) else None, None, None)
    diff, lo, hi, _, _ = welch_diff(b, a)  # stats.welch_diff gives its second argument minus its first
    return Interval(float(diff), float(lo), float(hi))


def smd(x_t, x_c, sd_t: float | None = None, sd_c: float | None = None) -> float | None:
    """Standardised mean difference ``(mean_t - mean_c) / sqrt((s_t^2 + s_c^2) / 2)``.

    ``sd_t``/``sd_c`` fix the denominator (the balance table uses the before-matching SDs for
    both columns, so a smaller "after" means better balance, not a smaller spread; Austin 2009,
    Statistics in Medicine 28: 3083-3107). Zero spread: 0 when the means agree, else None.

    >>> round(smd([1, 2, 3], [2, 3, 4]), 3)
    -1.0
    """
    x_t = np.asarray(x_t, dtype=float)
    x_c = np.asarray(x_c, dtype=float)
    if len(x_t) == 0 or len(x_c) == 0:
        return None
    st = x_t.std(ddof=1) if sd_t is None and len(x_t) > 1 else (sd_t or 0.0)
    sc = x_c.std(ddof=1) if sd_c is None and len(x_c) > 1 else (sd_c or 0.0)
    d = float(x_t.mean() - x_c.mean())
    den = math.sqrt((st**2 + sc**2) / 2)
    if den == 0:
        return 0.0 if abs(d) < 1e-12 else None
    return d / den


# ---------------------------------------------------------------- orders as prefix sums


def _day(d) -> int:
    """Days since 1970-01-01 of a date / datetime / Timestamp."""
    return int(pd.Timestamp(d).normalize().value // 86_400_000_000_000)


class OrderBook:
    """Orders read once: per customer, sorted order days with prefix sums of counts and spend.

    ``window(idx, start, end)`` gives counted orders (net > 0) and net spend of customers ``idx``
    in ``[start, end)`` (day numbers, vectorised); ``covariates(idx, t)`` the matching covariates at
    day t. Each call is two binary searches per customer, so any number of dates costs no new read.
    """

    SPAN = 1 << 20  # day numbers fit below 2**20 (year 4840)

    def __init__(self, customer_id, day, net, orders=None):
        """One row per order (``orders`` None: it counts when net > 0), or per customer and day with
        ``orders`` counted orders and the day's net spend."""
        cid = np.asarray(customer_id, dtype=object).astype(str)
        day = np.asarray(day, dtype=np.int64)
        net = np.asarray(net, dtype=float)
        cnt = (net > 0).astype(np.int64) if orders is None else np.asarray(orders, dtype=np.int64)
        self.ids, inv = np.unique(cid, return_inverse=True)
        self.index = {c: i for i, c in enumerate(self.ids)}
        order = np.lexsort((day, inv))
        inv, day, net, cnt = inv[order], day[order], net[order], cnt[order]
        self._key_all = inv.astype(np.int64) * self.SPAN + day
        self._cum_spend = np.concatenate([[0.0], np.cumsum(net)])
        # a day with k counted orders appears k times, so a window's count is a difference of positions
        self._key_cnt = np.repeat(self._key_all, cnt)
        self._day_cnt = np.repeat(day, cnt)
        first = np.full(len(self.ids), -1, dtype=np.int64)
        ci = np.repeat(inv, cnt)
        if len(ci):
            starts = np.flatnonzero(np.r_[True, ci[1:] != ci[:-1]])
            first[ci[starts]] = self._day_cnt[starts]
        self.first_day = first  # -1: no counted order

    @classmethod
    def from_frame(cls, df: pd.DataFrame) -> "OrderBook":
        days = (
            pd.to_datetime(df["d"]).to_numpy().astype("datetime64[D]").astype(np.int64)
            if len(df)
            else np.zeros(0, dtype=np.int64)
        )
        return cls(
            df["customer_id"].to_numpy(),
            days,
            df["net"].to_numpy(dtype=float),
            df["orders"].to_numpy() if "orders" in df else None,
        )

    def idx(self, ids) -> np.ndarray:
        return np.array([self.index.get(str(c), -1) for c in ids], dtype=np.int64)

    def window(self, idx, start, end) -> tuple[np.ndarray, np.ndarray]:
        idx = np.asarray(idx, dtype=np.int64)
        base = idx * self.SPAN
        lo_c = np.searchsorted(self._key_cnt, base + start, "left")
        hi_c = np.searchsorted(self._key_cnt, base + end, "left")
        lo_a = np.searchsorted(self._key_all, base + start, "left")
        hi_a = np.searchsorted(self._key_all, base + end, "left")
        n = (hi_c - lo_c).astype(float)
        s = self._cum_spend[hi_a] - self._cum_spend[lo_a]
        missing = idx < 0
        n[missing], s[missing] = 0.0, 0.0
        return n, s

    def last_before(self, idx, t) -> np.ndarray:
        """Day of the last counted order before day t (-1 if none)."""
        idx = np.asarray(idx, dtype=np.int64)
        t = np.broadcast_to(np.asarray(t, dtype=np.int64), idx.shape)
        pos = np.searchsorted(self._key_cnt, idx * self.SPAN + t, "left") - 1
        ok = (pos >= 0) & (idx >= 0)
        pos_c = np.clip(pos, 0, max(len(self._key_cnt) - 1, 0))
        same = ok & (len(self._key_cnt) > 0)
        if len(self._key_cnt):
            same &= (self._key_cnt[pos_c] // self.SPAN) == idx
        return np.where(same, self._day_cnt[pos_c] if len(self._day_cnt) else -1, -1)

    def covariates(self, idx, t) -> np.ndarray:
        """Rows of COVARIATES at day t (t scalar or per row); NaN recency/tenure without an order before t."""
        idx = np.asarray(idx, dtype=np.int64)
        t = np.broadcast_to(np.asarray(t, dtype=np.int64), idx.shape)
        o90, s90 = self.window(idx, t - WINDOW_DAYS, t)
        o180, _ = self.window(idx, t - 2 * WINDOW_DAYS, t - WINDOW_DAYS)
        last = self.last_before(idx, t)
        first = np.where(idx >= 0, self.first_day[np.clip(idx, 0, None)] if len(self.first_day) else -1, -1)
        has = (last >= 0) & (first >= 0) & (first < t)
        rec = np.where(has, t - last, np.nan).astype(float)
        ten = np.where(has, t - first, np.nan).astype(float)
        return np.column_stack([o90, s90, o90 - o180, rec, ten])

    def change(self, idx, t) -> tuple[np.ndarray, np.ndarray]:
        """Orders and spend in [t, t+90) minus [t-90, t), per customer."""
        ob, sb = self.window(idx, t - WINDOW_DAYS, t)
        oa, sa = self.window(idx, t, t + WINDOW_DAYS)
        return oa - ob, sa - sb


# ---------------------------------------------------------------- the hold-out design


def holdout_design(
    book: OrderBook, export_id: int | None, list_day: int, reward_ids, holdout_ids, as_of_day: int
) -> Design:
    """ITT difference between the arms in the change of orders and spend per 90 days (Welch CI)."""
    r_idx, h_idx = book.idx(reward_ids), book.idx(holdout_ids)
    list_date = date(1970, 1, 1) + timedelta(days=int(list_day))
    warnings: list[str] = []
    cov_r = book.covariates(r_idx, list_day)
    cov_h = book.covariates(h_idx, list_day)
    balance = []
    for k, name in enumerate(COVARIATES):
        a, b = cov_r[:, k], cov_h[:, k]
        v = smd(a[~np.isnan(a)], b[~np.isnan(b)])
        balance.append(Balance(name, v, v))  # randomised: nothing was matched, before = after
    if list_day + WINDOW_DAYS > as_of_day:
        left = list_day + WINDOW_DAYS - as_of_day
        return Design(
            "holdout",
            export_id,
            len(r_idx),
            len(h_idx),
            0,
            NO_INTERVAL,
            NO_INTERVAL,
            None,
            tuple(balance),
            "in progress",
            (f"in progress: the 90 days after the list of {list_date} end in {left} days",),
            list_date=list_date,
        )
    dor, dsr = book.change(r_idx, list_day)
    doh, dsh = book.change(h_idx, list_day)
    orders, spend = arm_difference(dor, doh), arm_difference(dsr, dsh)
    if len(r_idx) < 2 or len(h_idx) < 2:
        warnings.append("each arm needs at least 2 customers for an interval")
    elif min(len(r_idx), len(h_idx)) < 30:
        warnings.append(
            f"a small hold-out ({min(len(r_idx), len(h_idx))} customers in the smaller arm): the interval is wide"
        )
    means = _means(
        book, r_idx, h_idx, np.full(len(r_idx), list_day), np.full(len(h_idx), list_day), ("reward", "holdout")
    )
    return Design(
        "holdout",
        export_id,
        len(r_idx),
        len(h_idx),
        0,
        orders,
        spend,
        None,
        tuple(balance),
        "done",
        tuple(warnings),
        list_date=list_date,
        means=means,
    )


def _means(book, t_idx, c_idx, t_day, c_day, names=("rewarded", "comparison")) -> pd.DataFrame:
    rows = []
    for name, idx, day in ((names[0], t_idx, t_day), (names[1], c_idx, c_day)):
        ob, sb = book.window(idx, day - WINDOW_DAYS, day)
        oa, sa = book.window(idx, day, day + WINDOW_DAYS)
        rows.append(
            {
                "group": name,
                "customers": len(idx),
                "orders_before": float(ob.mean()) if len(idx) else None,
                "orders_after": float(oa.mean()) if len(idx) else None,
                "spend_before": float(sb.mean()) if len(idx) else None,
                "spend_after": float(sa.mean()) if len(idx) else None,
            }
        )
    return pd.DataFrame(rows)


# ---------------------------------------------------------------- the matched design


@dataclass(frozen=True)
class _Match:
    t_idx: np.ndarray
    c_idx: np.ndarray
    day: np.ndarray
    n_unmatched: int
    balance: tuple[Balance, ...]


def _match(book: OrderBook, treated: list[tuple[int, str]], excluded: dict[str, np.ndarray], offset: int = 0) -> _Match:
    """Greedy Mahalanobis nearest neighbour within the caliper, without replacement.

    ``treated``: (reward day, customer_id), matched in the order of (day, customer_id) at
    ``day - offset``. ``excluded[customer_id]``: days of that customer's rewards and hold-outs; a
    control has none of them in [d - 180, d + 90] of the matching day d.
    """
    all_idx = np.arange(len(book.ids), dtype=np.int64)
    ex_ids = [book.index[c] for c in excluded if c in book.index]
    ex_days = [excluded[c] for c in excluded if c in book.index]
    used = np.zeros(len(book.ids), dtype=bool)
    t_rows, c_rows, t_cov_all, pool_cov_all = [], [], [], []
    days_out = []
    unmatched = 0
    by_day: dict[int, list[str]] = {}
    for d, c in sorted(treated):
        by_day.setdefault(d - offset, []).append(c)
    for d, cids in sorted(by_day.items()):
        cov = book.covariates(all_idx, d)
        has = ~np.isnan(cov[:, 3])
        blocked = np.zeros(len(all_idx), dtype=bool)
        for i, days in zip(ex_ids, ex_days):
            if np.any((days >= d - EXCLUDE_BEFORE_DAYS) & (days <= d + EXCLUDE_AFTER_DAYS)):
                blocked[i] = True
        t_here = np.array([book.index.get(c, -1) for c in cids], dtype=np.int64)
        t_ok = t_here[(t_here >= 0)]
        t_ok = t_ok[has[t_ok]] if len(t_ok) else t_ok
        unmatched += len(t_here) - len(t_ok)
        candidates = has & ~blocked
        candidates[t_ok] = False
        pool = np.flatnonzero(candidates)
        if len(t_ok):
            t_cov_all.append(cov[t_ok])
        if len(pool):
            pool_cov_all.append(cov[pool])
        if not len(t_ok):
            continue
        ref = cov[np.concatenate([t_ok, pool])]
        sd = ref.std(axis=0, ddof=1) if len(ref) > 1 else np.zeros(ref.shape[1])
        vi = np.linalg.pinv(np.cov(ref, rowvar=False)) if len(ref) > 1 else np.zeros((5, 5))
        pool_cov = cov[pool]
        for ti in t_ok:
            free = ~used[pool]
            x = cov[ti]
            diff = pool_cov - x
            inside = free & np.all(np.abs(diff) <= CALIPER_SD * sd + 1e-12, axis=1)
            if not inside.any():
                unmatched += 1
                continue
            cand = np.flatnonzero(inside)
            dd = diff[cand]
            dist = np.einsum("ij,jk,ik->i", dd, vi, dd)
            best = cand[np.argmin(np.round(dist, 12))]  # pool is sorted by customer_id: ties go to the lower id
            used[pool[best]] = True
            t_rows.append(ti)
            c_rows.append(pool[best])
            days_out.append(d)
    t_idx, c_idx = np.array(t_rows, dtype=np.int64), np.array(c_rows, dtype=np.int64)
    day = np.array(days_out, dtype=np.int64)
    balance = []
    if t_cov_all and pool_cov_all:
        tc, pc = np.vstack(t_cov_all), np.vstack(pool_cov_all)
        mt = book.covariates(t_idx, day) if len(t_idx) else np.zeros((0, 5))
        mc = book.covariates(c_idx, day) if len(c_idx) else np.zeros((0, 5))
        for k, name in enumerate(COVARIATES):
            sd_t = tc[:, k].std(ddof=1) if len(tc) > 1 else 0.0
            sd_c = pc[:, k].std(ddof=1) if len(pc) > 1 else 0.0
            balance.append(
                Balance(
                    name,
                    smd(tc[:, k], pc[:, k], sd_t, sd_c),
                    smd(mt[:, k], mc[:, k], sd_t, sd_c) if len(t_idx) else None,
                )
            )
    return _Match(t_idx, c_idx, day, unmatched, tuple(balance))


def _did(book: OrderBook, m: _Match, n_boot: int, rng) -> tuple[Interval, Interval]:
    if len(m.t_idx) == 0:
        return NO_INTERVAL, NO_INTERVAL
    ot, st = book.change(m.t_idx, m.day)
    oc, sc = book.change(m.c_idx, m.day)
    d_o, d_s = ot - oc, st - sc
    if len(d_o) < 2:
        return Interval(float(d_o.mean()), None, None), Interval(float(d_s.mean()), None, None)
    idx = rng.integers(0, len(d_o), size=(n_boot, len(d_o)))
    bo, bs = d_o[idx].mean(axis=1), d_s[idx].mean(axis=1)
    return (
        Interval(float(d_o.mean()), float(np.percentile(bo, 2.5)), float(np.percentile(bo, 97.5))),
        Interval(float(d_s.mean()), float(np.percentile(bs, 2.5)), float(np.percentile(bs, 97.5))),
    )


def matched_design(
    book: OrderBook,
    rewards: dict[str, int],
    excluded: dict[str, np.ndarray],
    as_of_day: int,
    *,
    n_boot: int = 2000,
    seed: int = 12345,
    skipped: int = 0,
) -> Design:
    """Matched difference-in-differences of rewards on orders and spend per 90 days.

    ``rewards``: customer_id -> day of the first reward (up to as_of); ``excluded``: customer_id ->
    days of every reward and hold-out (controls have none in [d - 180, d + 90]).

    For each pair ``change = (after - before)`` over 90 days each side of the reward date (the
    control takes its pair's date); ``DiD = mean(change_rewarded - change_control)``; 95% CI:
    percentiles 2.5 / 97.5 of the DiD over ``n_boot`` resamples of whole pairs (seeded). The
    placebo reruns matching and DiD at a pseudo reward date 180 days earlier.

    Worked example: rewarded customers go from 1.0 to 2.0 orders per 90 days, their controls from 1.0
    to 1.2: DiD = (2.0 - 1.0) - (1.2 - 1.0) = 0.8 orders per 90 days.
    """
    cutoff = as_of_day - WINDOW_DAYS
    too_recent = sum(1 for d in rewards.values() if d > cutoff)
    treated = [(d, c) for c, d in rewards.items() if d <= cutoff]
    warnings: list[str] = []
    if too_recent:
        warnings.append(
            f"{too_recent} rewards less than 90 days before {_date(as_of_day)} are left out "
            "(their 90 days after have not ended)"
        )
    if skipped:
        warnings.append(f"{skipped} rewards inside a hold-out's 90 days are left to the hold-out design")
    if not treated:
        warnings.insert(
            0, "no rewards recorded early enough to judge" if rewards or skipped else "no rewards recorded yet"
        )
        return Design(
            "matched",
            None,
            0,
            0,
            0,
            NO_INTERVAL,
            NO_INTERVAL,
            None,
            (),
            "done",
            tuple(warnings),
            n_too_recent=too_recent,
        )
    rng = np.random.default_rng(seed)
    m = _match(book, treated, excluded)
    orders, spend = _did(book, m, n_boot, rng)
    p = _match(book, treated, excluded, offset=PLACEBO_DAYS)
    pretrend, _ = _did(book, p, n_boot, rng)
    n_pairs = len(m.t_idx)
    if n_pairs == 0:
        warnings.insert(0, "no rewarded customer could be matched to a comparable customer")
    if 0 < n_pairs < MIN_PAIRS or n_pairs < len(treated) / 2:
        warnings.append(
            f"only {n_pairs} of {len(treated)} rewarded customers have a comparable customer: the "
            "estimate rests on few look-alikes (rewards aimed at the very best buyers leave few)"
        )
    off = [b.covariate for b in m.balance if b.smd_after is not None and abs(b.smd_after) > SMD_WARN]
    if off and n_pairs:
        warnings.append("after matching the groups still differ on " + ", ".join(off) + " (|SMD| > 0.1)")
    if pretrend.excludes_zero():
        warnings.append(
            "placebo 180 days earlier finds a difference where the reward had not happened yet: "
            "the estimate is unreliable"
        )
    means = _means(book, m.t_idx, m.c_idx, m.day, m.day) if n_pairs else None
    return Design(
        "matched",
        None,
        n_pairs,
        len(m.c_idx),
        m.n_unmatched,
        orders,
        spend,
        pretrend if len(p.t_idx) else NO_INTERVAL,
        m.balance,
        "done",
        tuple(warnings),
        n_too_recent=too_recent,
        means=means,
    )


def _date(day: int) -> date:
    return date(1970, 1, 1) + timedelta(days=int(day))


# ---------------------------------------------------------------- from the database


def _book(con, as_of: date, *, t) -> OrderBook:
    """Every customer's order days up to as_of, read once from the engine ``t``
    (cxstats.customer_aggregates.order_days: counted orders and net spend per customer and day,
    the advocates' one definition of an order)."""
    days = ca.engine_order_days(t, as_of)
    rows = t.execute(days.select("customer_id", "d", "orders", net=days.net.cast("float64"))).to_pandas()
    rows = rows.sort_values(["customer_id", "d"], kind="stable").reset_index(drop=True)
    return OrderBook.from_frame(rows)


def holdout_lists(con) -> pd.DataFrame:
    """The recorded hold-outs: export_id, customer_id, arm, list_date, seed, pct."""
    return con.execute(
        "SELECT export_id, customer_id, arm, list_date, seed, pct FROM holdouts ORDER BY export_id, arm, customer_id"
    ).df()


def programme_effect(
    con, as_of=None, *, viewer: Viewer, n_boot: int = 2000, seed: int = 12345, engine=None
) -> ProgrammeEffect:
    """Both designs in one pass over the orders: every hold-out export (newest first), then matched.

    Marketing, admin and leader; a manager gets AccessDenied. ``as_of`` defaults to the latest order
    date. The orders are read on ``engine`` (None: the environment's, cxstats.engine.config_from_env);
    rewards and hold-outs always come from ``con``. Rewards and hold-outs dated after as_of are not used.
    """
    viewer.require(*SCORING_ROLES)
    as_of = _as_date(as_of, "--as-of")
    with ca.engine_tables(con, viewer=viewer, engine=engine) as t:
        as_of = as_of or latest_order_date(con, t=t)
        book = _book(con, as_of, t=t) if as_of is not None else None
    if as_of is None or book is None:
        empty = Design(
            "matched",
            None,
            0,
            0,
            0,
            NO_INTERVAL,
            NO_INTERVAL,
            None,
            (),
            "done",
            ("no purchases yet: load purchases and rewards first",),
        )
        return ProgrammeEffect(None, (empty,))
    as_of_day = _day(as_of)
    # every hold-out, newest first; one listed after as_of is simply still in progress
    hold = con.execute(
        "SELECT export_id, customer_id, arm, list_date FROM holdouts ORDER BY export_id DESC, customer_id"
    ).df()
    rewards = con.execute(
        "SELECT customer_id, reward_date FROM rewards WHERE reward_date <= ? AND customer_id IS NOT NULL", [as_of]
    ).df()
    designs = []
    excluded: dict[str, list[int]] = {}
    covered: dict[str, list[int]] = {}
    if len(hold):
        hold["day"] = pd.to_datetime(hold["list_date"]).to_numpy().astype("datetime64[D]").astype(np.int64)
        for eid, g in hold.groupby("export_id", sort=False):
            day = int(g["day"].iloc[0])
            designs.append(
                holdout_design(
                    book,
                    int(eid),
                    day,
                    g.loc[g["arm"] == "reward", "customer_id"],
                    g.loc[g["arm"] == "holdout", "customer_id"],
                    as_of_day,
                )
            )
        for c, arm, day in zip(hold["customer_id"], hold["arm"], hold["day"]):
            covered.setdefault(c, []).append(int(day))
            if arm == "holdout":
                excluded.setdefault(c, []).append(int(day))
    first: dict[str, int] = {}
    skipped = 0
    if len(rewards):
        rewards["day"] = pd.to_datetime(rewards["reward_date"]).to_numpy().astype("datetime64[D]").astype(np.int64)
        for c, day in zip(rewards["customer_id"], rewards["day"]):
            excluded.setdefault(c, []).append(int(day))
        for c, day in rewards.groupby("customer_id")["day"].min().items():
            if any(h <= day < h + WINDOW_DAYS for h in covered.get(c, ())):
                skipped += 1
                continue
            first[str(c)] = int(day)
    ex = {c: np.array(v, dtype=np.int64) for c, v in excluded.items()}
    designs.append(matched_design(book, first, ex, as_of_day, n_boot=n_boot, seed=seed, skipped=skipped))
    return ProgrammeEffect(as_of, tuple(designs))


__all__ = [
    "programme_effect",
    "holdout_design",
    "matched_design",
    "arm_difference",
    "smd",
    "draw_holdout",
    "check_pct",
    "holdout_lists",
    "OrderBook",
    "ProgrammeEffect",
    "Design",
    "Interval",
    "Balance",
    "HOLDOUT_TEXT",
    "MATCHED_TEXT",
    "PAGE_HOLDOUT_PCT",
]
