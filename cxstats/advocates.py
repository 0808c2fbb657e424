"""Brand advocates: loyal customers who speak up for the brand (DESIGN.md, "Advocates").

Everything is computed from evidence dated up to and including ``as_of`` (default: the latest
order date). Per customer:

- orders: distinct order_id (rows without an order_id are one order each) whose net amount is
  > 0; spend: net amount of all rows (returns subtract), summed as DECIMAL;
  recency_days = as_of - last counted order date, in whole days (dates, not timestamps).
- R, F, M: ``rankdata(x, 'average') / n`` over the n customers with at least one counted order
  (R ranks -recency_days, so recent is high); ``loyalty = (R + F + M) / 3``.
- mentions: positive when VADER compound >= 0.05, negative when <= -0.05;
  ``reach = log10(1 + max followers)``; ``advocacy = min(positive, 5) / 5``;
  ``reach_score = min(reach / 6, 1)``. A customer without mentions has reach 0.
- satisfaction: latest NPS / 10, else (mean CSAT - 1) / 4, else missing (latest: the latest date; of
  several answers on that day, the highest, so that every engine picks the same one).
- ``score = 100 * sum(w_i * c_i) / sum(w_i over present components)``; only satisfaction can be
  missing. Default weights loyalty 0.5, advocacy 0.3, satisfaction 0.15, reach 0.05.

Worked example (default weights): a customer with R = 0.9, F = 0.8, M = 0.7 (loyalty 0.8), three
positive posts (advocacy 0.6), latest NPS 10 (satisfaction 1.0) and 999 followers
(reach = log10(1000) = 3, reach_score 0.5) scores
``100 * (0.5*0.8 + 0.3*0.6 + 0.15*1.0 + 0.05*0.5) / 1.0 = 75.5`` -> tier "Advocate".
Without any survey answer the same customer scores
``100 * (0.4 + 0.18 + 0.025) / 0.85 = 71.18``.

Gates (a customer is listed only when all hold): at least 2 orders; at least one positive mention
or a promoter answer (NPS 9-10); no negative mention and no detractor answer (NPS 0-6) dated in
the 90 days up to as_of (0 <= as_of - date <= 90 days). Tiers: Champion >= 80, Advocate >= 60,
Rising >= 40, otherwise Candidate.

Flags (duplicates and fraud): the same e-mail or handle under several customer ids, orders that
are mostly returns (returned value >= half the purchased value), and one account posting the same
text many times (>= 3) are flagged and explained in ``flags`` and in ``reasons``. Flags never
change the score or the order of the list (the figures stay those DESIGN.md defines, so they can
be checked), but a flagged customer is left out of :func:`to_reward` until a person has reviewed
them (``to_reward(..., include_flagged=True)`` once reviewed).
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field
from datetime import date, datetime
from types import MappingProxyType
from typing import Mapping

import ibis
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from scipy.stats import rankdata

from . import ADMIN, CxStatsError, Viewer, store, value
from . import customer_aggregates as ca
from .sentiment import NEGATIVE, POSITIVE

DEFAULT_WEIGHTS: Mapping[str, float] = MappingProxyType(
    {"loyalty": 0.5, "advocacy": 0.3, "satisfaction": 0.15, "reach": 0.05}
)
REACH_CAP = 0.1  # reach's weight never exceeds 0.1 of the total: followers alone never make an advocate
QUIET_DAYS = 90  # no negative post or detractor answer in the 90 days up to as_of
TIERS = (("Champion", 80.0), ("Advocate", 60.0), ("Rising", 40.0), ("Candidate", float("-inf")))
MIN_ORDERS = 2
REPEAT_POSTS = 3  # the same text from one account this many times is flagged
RETURN_SHARE = 0.5  # returned value at least this share of purchased value is flagged
SCORING_ROLES = ("marketing", "admin", "leader")
REWARD_ROLES = ("marketing", "admin")

JSON_FIELDS = (
    "customer_id",
    "score",
    "tier",
    "orders",
    "spend",
    "recency_days",
    "positive_mentions",
    "negative_mentions",
    "reach",
    "nps",
    "consent",
    "recently_rewarded",
    "reasons",
    "contributions",
)


# ---------------------------------------------------------------- small pure functions


def percentile_ranks(x) -> np.ndarray:
    """Tie-averaged percentile ranks ``rankdata(x, 'average') / n`` (0 < rank <= 1).

    Ties share the mean of the ranks they span, so many one-order customers all get the same F.

    >>> percentile_ranks([1, 1, 2, 5]).tolist()
    [0.375, 0.375, 0.75, 1.0]
    """
    x = np.asarray(x, dtype=float)
    if len(x) == 0:
        return x
    return rankdata(x, method="average") / len(x)


def tier(score: float) -> str:
    """Champion >= 80, Advocate >= 60, Rising >= 40, otherwise Candidate.

    >>> [tier(s) for s in (80, 79.99, 60, 40, 39.9)]
    ['Champion', 'Advocate', 'Advocate', 'Rising', 'Candidate']
    """
    for name, lo in TIERS:
        if score >= lo:
            return name
    return TIERS[-1][0]


def reach(max_followers) -> float:
    """``log10(1 + max followers)``; 0 without followers. reach(999) = 3.0."""
    if max_followers is None or (isinstance(max_followers, float) and math.isnan(max_followers)):
        return 0.0
    return math.log10(1 + max(float(max_followers), 0.0))


def check_weights(weights: Mapping[str, float] | None) -> dict[str, float]:
    """Validate user weights (missing names take the default); refuse reach above the cap.

    Reach's weight may be at most 0.1 of the sum of all four weights; a larger one raises
    CxStatsError (it is not silently clamped, so the user knows which weights were used).
    """
    w = dict(DEFAULT_WEIGHTS)
    if weights:
        unknown = sorted(set(weights) - set(DEFAULT_WEIGHTS))
        if unknown:
            raise CxStatsError(f"unknown weight {', '.join(unknown)}; use {', '.join(DEFAULT_WEIGHTS)}")
        for k, v in weights.items():
            try:
                v = float(v)
            except (TypeError, ValueError):
                raise CxStatsError(f"weight {k} must be a number, got {v!r}") from None
            if not math.isfinite(v) or v < 0:
                raise CxStatsError(f"weight {k} must be a number >= 0, got {v!r}")
            w[k] = v
    total = sum(w.values())
    if total <= 0 or w["loyalty"] + w["advocacy"] <= 0:
        raise CxStatsError("at least one of the weights loyalty, advocacy must be above 0")
    if w["reach"] > REACH_CAP * total + 1e-12:
        raise CxStatsError(
            f"reach weight {w['reach']:g} is more than 0.1 of the total {total:g}: lower it to at most "
            f"{REACH_CAP * (total - w['reach']) / (1 - REACH_CAP):.4g} (follower count alone never makes an advocate)"
        )
    return w


def weighted_score(
    loyalty: float,
    advocacy: float,
    satisfaction: float | None,
    reach_score: float,
    weights: Mapping[str, float] = DEFAULT_WEIGHTS,
) -> float:
    """``100 * sum(w_i * c_i) / sum(w_i over present components)`` (satisfaction may be missing).

    >>> round(weighted_score(0.8, 0.6, 1.0, 0.5), 2)
    75.5
    >>> round(weighted_score(0.8, 0.6, None, 0.5), 2)
    71.18
    """
    w = check_weights(weights)
    parts = [(w["loyalty"], loyalty), (w["advocacy"], advocacy), (w["reach"], reach_score)]
    if satisfaction is not None and not (isinstance(satisfaction, float) and math.isnan(satisfaction)):
        parts.append((w["satisfaction"], satisfaction))
    else:
        # reach's share of the present weights is held at the cap (see score())
        parts[2] = (min(w["reach"], REACH_CAP / (1 - REACH_CAP) * (w["loyalty"] + w["advocacy"])), reach_score)
    return 100 * sum(wi * c for wi, c in parts) / sum(wi for wi, _ in parts)


def _as_date(value, what: str = "as_of") -> date | None:
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    try:
        return date.fromisoformat(str(value).strip()[:10])
    except ValueError:
        raise CxStatsError(f"{what} must be a date like 2024-06-30, got {value!r}") from None


# ---------------------------------------------------------------- SQL

# The per-customer aggregation runs on the engine (cxstats.customer_aggregates: the DuckDB file, a
# Parquet lake or Spark; only one row per customer comes back); the gates and the plain-language
# reasons are then formatted by DuckDB locally over those rows (with the rewards and the duplicate
# groups), and Python weighs and sorts.

# Orders up to as_of, one row each (columns customer_id, d, net, gross, returned). From the lines,
# with store's one definition of an order's totals (a line without an order_id is an order):
_ORDERS_FROM_LINES = f"""
    SELECT customer_id, first_date AS d, net, gross, returned
    FROM ({store.order_totals_sql("AND order_date <= $as_of")})
"""
# From store.order_totals (kept in step at import and undo); an order whose lines straddle as_of
# is summed again from its lines up to as_of.
_ORDERS_FROM_TOTALS = """
    SELECT customer_id, first_date AS d, net, gross, returned FROM order_totals WHERE last_date <= $as_of
"""
_ORDERS_STRADDLING = f"""
    UNION ALL
    SELECT customer_id, first_date, net, gross, returned
    FROM ({
    store.order_totals_sql(
        "AND order_date <= $as_of AND (customer_id, order_id) IN (SELECT (customer_id, order_id) "
        "FROM order_totals WHERE first_date <= $as_of AND last_date > $as_of)"
    )
})
"""


def _orders_sql(con, as_of: date) -> str:
    """The cheapest exact source of per-order totals up to as_of (SQL on the DuckDB file)."""
    if not store.order_totals_fresh(con):
        return _ORDERS_FROM_LINES
    straddling = con.execute(
        "SELECT count(*) FROM order_totals WHERE first_date <= ? AND last_date > ?", [as_of, as_of]
    ).fetchall()[0][0]
    return _ORDERS_FROM_TOTALS + (_ORDERS_STRADDLING if straddling else "")


# Per (customer, order day) totals up to as_of (columns customer_id, d, orders = counted orders,
# counted_net, net, gross, returned) in SQL on the DuckDB file: store.day_totals when it is fresh and
# no order's lines straddle as_of, else grouped from the orders above.
_DAYS_FROM_TOTALS = """
    SELECT customer_id, d, orders, counted_net, net, gross, returned FROM day_totals WHERE d <= $as_of
"""
_DAYS_FROM_ORDERS = """
    SELECT customer_id, d, count(*) FILTER (WHERE net > 0) AS orders,
           coalesce(sum(net) FILTER (WHERE net > 0), 0) AS counted_net, sum(net) AS net,
           sum(gross) AS gross, sum(returned) AS returned
    FROM (__ORDERS__) GROUP BY customer_id, d
"""


def _days_sql(con, as_of: date) -> str:
    """The cheapest exact source of per (customer, day) totals up to as_of (SQL on the DuckDB file)."""
    if ca.day_totals_usable(con, as_of):
        return _DAYS_FROM_TOTALS
    return _DAYS_FROM_ORDERS.replace("__ORDERS__", _orders_sql(con, as_of))


# Over the engine's rows of the customers that come back (_adv_j: scored and gated on the engine),
# their duplicate groups (_adv_dup) and the rewards of the DuckDB file: flags and reasons. Money
# arrives as DECIMAL and leaves as DOUBLE.
_CUSTOMER_SQL = """
WITH rw AS (
    -- a reward dated after as_of still counts: it was given, whatever date the list is scored for
    SELECT DISTINCT customer_id FROM rewards WHERE date_diff('day', reward_date, $as_of) < $cooldown
), dup AS (
    SELECT customer_id, list('duplicate_' || what ORDER BY what) AS dup_codes, list(txt ORDER BY what) AS dup_texts
    FROM (
        SELECT customer_id, what,
               'flag: same ' || what || ' as customer '
               || array_to_string(list_filter(list_sort(ids), lambda i: i <> customer_id)[1:3], ', ')
               || CASE WHEN len(ids) > 4 THEN ' and ' || (len(ids) - 4) || ' more' ELSE '' END AS txt
        FROM _adv_dup)
    GROUP BY customer_id
), j AS (
    SELECT o.* EXCLUDE (spend, gross, returned, repeat_net),
           CAST(o.spend AS DOUBLE) AS spend, CAST(o.gross AS DOUBLE) AS gross,
           CAST(o.returned AS DOUBLE) AS returned, CAST(o.repeat_net AS DOUBLE) AS repeat_net,
           rw.customer_id IS NOT NULL AS recently_rewarded, dup.dup_codes, dup.dup_texts
    FROM _adv_j o
    LEFT JOIN rw ON rw.customer_id = o.customer_id
    LEFT JOIN dup ON dup.customer_id = o.customer_id
), listed AS (
    -- the gates (gate_orders, gate_voice, gate_quiet, passes) and the score came from the engine
    SELECT *, gross > 0 AND returned >= $return_share * gross AS mostly_returns,
           top_repeat >= $repeat AS repeated_posts
    FROM j
)
SELECT * EXCLUDE (dup_codes, dup_texts),
       CASE WHEN passes THEN coalesce(dup_codes, [])
            || CASE WHEN mostly_returns THEN ['mostly_returns'] ELSE [] END
            || CASE WHEN repeated_posts THEN ['repeated_posts'] ELSE [] END END AS flags,
       CASE WHEN passes THEN coalesce(dup_texts, [])
            || CASE WHEN mostly_returns THEN ['flag: returned ' || CAST(round(100 * returned / gross) AS BIGINT)
                                              || '% of what was bought'] ELSE [] END
            || CASE WHEN repeated_posts THEN ['flag: the same post ' || top_repeat || ' times'] ELSE [] END
            END AS flag_text,
       -- plain-language reasons, only for the customers listed
       CASE WHEN passes THEN list_filter([
           format('{:,}', orders) || CASE WHEN orders = 1 THEN ' order' ELSE ' orders' END || ' in '
               || format('{:,}', months) || CASE WHEN months = 1 THEN ' month' ELSE ' months' END,
           'spent ' || format('{:,.2f}', spend),
           CASE WHEN recency_days = 0 THEN 'last order today'
                ELSE 'last order ' || format('{:,}', recency_days)
                     || CASE WHEN recency_days = 1 THEN ' day' ELSE ' days' END || ' ago' END,
           CASE WHEN positive_mentions > 0 THEN format('{:,}', positive_mentions)
                || CASE WHEN positive_mentions = 1 THEN ' positive post' ELSE ' positive posts' END END,
           CASE WHEN nps IS NOT NULL THEN 'NPS ' || CAST(nps AS INTEGER)
                WHEN csat_mean IS NOT NULL THEN 'CSAT ' || format('{:.1f}', csat_mean) || ' average' END,
           CASE WHEN max_followers > 0 THEN format('{:,}', CAST(max_followers AS BIGINT)) || ' followers' END
       ], lambda x: x IS NOT NULL) || flag_text END AS reasons
FROM (SELECT *, greatest(1, (year($as_of) - year(first_order)) * 12 + month($as_of) - month(first_order)
                            + CASE WHEN day($as_of) >= day(first_order) THEN 1 ELSE 0 END) AS months
      FROM listed)
"""


def _vader_table(t):
    """VADER scores of the mention texts stored without a sentiment and never scored (a small table
    text, vader for the engine to join), or None when every mention carries one."""
    m = t.table("mentions")
    todo = (
        m.filter(m.sentiment.isnull() & m.sentiment_source.isnull() & m.text.notnull() & (m.text.strip() != ""))
        .select("text")
        .distinct()
    )
    texts = sorted(t.execute(todo).column("text").to_pylist())
    if not texts:
        return None
    from .sentiment import compound

    return ca.small_table(
        t, pd.DataFrame({"text": texts, "vader": np.asarray(compound(texts), dtype=float)}), "_adv_vader"
    )


def _unmatched(t, m) -> pd.DataFrame:
    """Handles of mentions that reached no customer, most positive first."""
    u = t.execute(ca.unmatched_handles(m, positive=POSITIVE, negative=NEGATIVE)).to_pandas()
    if not len(u):
        return _unmatched_empty()
    owners = u.pop("owners")
    u["why"] = [
        f"handle belongs to {int(o)} customers" if o == o and o is not None and o > 1 else "no customer has this handle"
        for o in owners
    ]
    u = u.sort_values(["positive_mentions", "mentions", "handle"], ascending=[False, False, True], kind="stable")
    return u.reset_index(drop=True)


# ---------------------------------------------------------------- result


@dataclass(frozen=True)
class AdvocateResult:
    """Scored advocates.

    ``customers``: customers who pass the gates, highest score first (ties by customer_id): every
    one of them, or the first ones the caller asked for (``score(..., top=N)``; ``complete`` says
    whether this is the whole list), with the JSON columns (reasons, flags and flag_text as arrays
    of strings) plus name, email, handle, first_order, last_order (datetime64), mentions,
    mean_sentiment, loyalty/R/F/M, advocacy, satisfaction, reach_score, csat_mean, flags (list of
    short codes) and flag_text. ``unmatched_handles``: handles of mentions that reached no customer.
    ``ranked``: how many customers had an order (the n of the percentile ranks). ``gate_counts``:
    customers_with_orders, two_orders, positive_voice, passed (how many pass every gate, whatever
    came back); ``tier_counts``: gated customers per tier. ``everyone`` (only with
    ``score(..., everyone=True)``): every customer with an order, ungated, with
    gate_orders/gate_voice/gate_quiet/passes (answers "why is X not listed?").
    """

    as_of: date | None
    weights: Mapping[str, float]
    customers: pd.DataFrame
    unmatched_handles: pd.DataFrame
    ranked: int = 0
    cooldown_days: int = 90
    gate_counts: Mapping[str, int] = field(default_factory=dict)
    everyone: pd.DataFrame | None = None  # every customer with an order: ranks, components, gate columns
    clv: value.CustomerValue | None = None  # the repeat-buying model (cxstats.value); None when not asked for
    tier_counts: Mapping[str, int] = field(default_factory=dict)  # gated customers per tier (all of them)
    complete: bool = True  # customers holds every gated customer (not only the first ones asked for)

    @property
    def passed(self) -> int:
        """How many customers pass the gates (all of them, whatever came back)."""
        return int(self.gate_counts.get("passed", len(self.customers)))

    def top(self, n: int | None = 100) -> pd.DataFrame:
        """The top n rows (n None or 0 means all)."""
        return self.customers if not n else self.customers.head(int(n))

    def as_json(self, top: int | None = 100) -> dict:
        """DESIGN.md advocates JSON: as_of and the top N gated customers (0 = all), whatever the consent."""
        rows = []
        for r in self.top(top).itertuples(index=False):
            rows.append(
                {
                    "customer_id": str(r.customer_id),
                    "score": float(r.score),
                    "tier": r.tier,
                    "orders": int(r.orders),
                    "spend": float(r.spend),
                    "recency_days": int(r.recency_days),
                    "positive_mentions": int(r.positive_mentions),
                    "negative_mentions": int(r.negative_mentions),
                    "reach": float(r.reach),
                    "nps": None if pd.isna(r.nps) else int(r.nps),
                    "consent": bool(r.consent),
                    "recently_rewarded": bool(r.recently_rewarded),
                    "reasons": [str(x) for x in r.reasons],
                    "contributions": {
                        k: (None if v is None or pd.isna(v) else float(v)) for k, v in r.contributions.items()
                    },
                    **{k: _num_or_none(getattr(r, k, None)) for k in value.CUSTOMER_FIELDS},
                }
            )
        clv = self.clv
        return {
            "as_of": self.as_of.isoformat() if self.as_of else None,
            "customers": rows,
            "clv": None if clv is None else clv.as_json(),
            "clv_reason": _clv_reason(self),
        }


def _clv_reason(result: AdvocateResult) -> str | None:
    if result.clv is None:
        return "no purchases yet" if result.as_of is None else "customer value not computed (score(..., clv=False))"
    return None if result.clv.as_json() is not None else result.clv.reason


def _num_or_none(v) -> float | None:
    return None if v is None or pd.isna(v) else float(v)


def _empty_customers() -> pd.DataFrame:
    cols = (
        list(JSON_FIELDS)
        + ["name", "email", "handle", "first_order", "last_order", "flags", "flag_text"]
        + list(value.CUSTOMER_FIELDS)
    )
    return pd.DataFrame({c: pd.Series(dtype=object) for c in cols})


def latest_order_date(con, *, t=None) -> date | None:
    """The latest order date (of the engine's purchases when ``t`` is given, else of the DuckDB file)."""
    if t is not None:
        return ca.scalar(t, t.table("purchases").order_date.max())
    r = con.execute("SELECT max(order_date) FROM purchases").fetchall()
    return r[0][0]


# ---------------------------------------------------------------- scoring

_MATERIALIZED = ("_adv_o", "_adv_k", "_adv_m", "_adv_vader", "_adv_s")

# The columns the engine adds to each customer's row (the module docstring's formulas), and the gates.
SCORE_COLUMNS = (
    "loyalty",
    "reach",
    "reach_score",
    "advocacy",
    "satisfaction",
    "contribution_loyalty",
    "contribution_advocacy",
    "contribution_satisfaction",
    "contribution_reach",
    "score",
)
GATE_COLUMNS = ("gate_orders", "gate_voice", "gate_quiet", "passes")
ENGINE_ONLY = ("days", "repeat_net", "cal_days", "cal_last", "actual")  # the value model's inputs of the pass
PAGE_ROWS = 1_000  # with a filter of the caller (keep), gated customers come back in pages of at least this


def _scored(f, w: Mapping[str, float]):
    """Every customer's row (``f``: customer_features with R, F, M) with the score, its parts, the
    tier and the gates as engine columns: the formulas of the module docstring, term for term in the
    order the numpy version added them (so the figures agree to the last bits on every engine)."""
    wl, wa, ws, wr = (float(w[k]) for k in ("loyalty", "advocacy", "satisfaction", "reach"))
    wr_nosat = min(wr, REACH_CAP / (1 - REACH_CAP) * (wl + wa))  # reach held at the cap without satisfaction
    loyalty = (f.R + f.F + f.M) / 3.0
    reach_ = (ibis.greatest(f.max_followers.cast("float64").fill_null(0.0), 0.0) + 1.0).log10()
    reach_score = ibis.least(reach_ / 6.0, 1.0)
    advocacy = ibis.least(f.positive_mentions.cast("float64"), 5.0) / 5.0
    sat = ibis.ifelse(f.nps.notnull(), f.nps.cast("float64") / 10.0, (f.csat_mean.cast("float64") - 1.0) / 4.0)
    has = sat.notnull()
    denom = ibis.ifelse(has, wl + wa + wr + ws, wl + wa + wr_nosat + 0.0)
    w_reach = ibis.ifelse(has, wr, wr_nosat)
    c_l = 100 * wl * loyalty / denom
    c_a = 100 * wa * advocacy / denom
    c_s = ibis.ifelse(has, 100 * ws * sat / denom, ibis.null("float64"))
    c_r = 100 * w_reach * reach_score / denom
    score_ = c_l + c_a + c_r + c_s.fill_null(0.0)
    g_orders = f.orders >= MIN_ORDERS
    g_voice = (f.positive_mentions >= 1) | (f.promoter_answers >= 1)
    g_quiet = (f.recent_negative == 0) & (f.recent_detractor == 0)
    cases = [(score_ >= lo, name) for name, lo in TIERS[:-1]]
    return f.mutate(
        loyalty=loyalty,
        reach=reach_,
        reach_score=reach_score,
        advocacy=advocacy,
        satisfaction=sat,
        contribution_loyalty=c_l,
        contribution_advocacy=c_a,
        contribution_satisfaction=c_s,
        contribution_reach=c_r,
        score=score_,
        tier=ibis.cases(*cases, else_=TIERS[-1][0]),
        gate_orders=g_orders,
        gate_voice=g_voice,
        gate_quiet=g_quiet,
        passes=g_orders & g_voice & g_quiet,
    )


def _engine_pass(t, as_of: date, cutoff: date, w: Mapping[str, float]):
    """On the engine: every customer with a counted order, his features, ranks (R, F, M), score,
    tier and gates, kept on the engine (materialized as ``_adv_s``); the attributed mentions.
    Returns (scored table, n ranked, mentions table, keys). Nothing per customer comes back here.
    The customer keys are materialized too (``_adv_k``): the mentions, the features and the
    duplicate groups all read them, and each read would otherwise pick every customer's current
    row again (a window over the customers) and normalise the e-mails and handles again."""
    o = ca.customer_orders(ca.engine_order_days(t, as_of), as_of, cutoff)
    o = ca.materialize(t, o.mutate(neg_recency=-o.recency_days), "_adv_o")
    keys = ca.materialize(t, ca.customer_keys(t.table("customers")), "_adv_k")
    m = ca.materialize(t, ca.attributed_mentions(t.table("mentions"), keys, as_of, _vader_table(t)), "_adv_m")
    stats = t.execute(
        o.aggregate(
            n=o.count().cast("int64"),
            bR=ca.rank_bounds(o.neg_recency),
            bF=ca.rank_bounds(o.orders),
            bM=ca.rank_bounds(o.spend),
        )
    ).to_pylist()[0]
    n = int(stats["n"])
    ranked = o
    for name, col in (("R", "neg_recency"), ("F", "orders"), ("M", "spend")):
        if not n:
            ranked = ranked.mutate(**{name: ibis.null("float64")})
            continue
        r = ca.percentile_rank(o, col, n, stats["b" + name] or [])
        ranked = ranked.left_join(r.rename(**{name: "pct"}), ranked[col] == r.value).drop("value")
    feats = ca.customer_features(
        ranked.drop("neg_recency"),
        keys,
        ca.mention_features(m, as_of, positive=POSITIVE, negative=NEGATIVE, quiet_days=QUIET_DAYS),
        ca.repeat_posts(m),
        ca.satisfaction(t.table("feedback"), as_of, quiet_days=QUIET_DAYS),
    )
    s = ca.materialize(t, _scored(feats, w), "_adv_s")
    return s, n, m, keys


def _gate_counts(t, s) -> tuple[dict[str, int], dict[str, int]]:
    """The small aggregates the JSON, the command line and the page report: gate counts and the
    number of gated customers per tier (one row back)."""
    agg = {
        "customers_with_orders": s.count().cast("int64"),
        "two_orders": ca._count(s.customer_id, s.gate_orders),
        "positive_voice": ca._count(s.customer_id, s.gate_orders & s.gate_voice),
        "passed": ca._count(s.customer_id, s.passes),
    }
    for i, (name, _) in enumerate(TIERS):
        agg[f"tier_{i}"] = ca._count(s.customer_id, s.passes & (s.tier == name))
    row = t.execute(s.aggregate(**agg)).to_pylist()[0]
    counts = {k: int(row[k] or 0) for k in ("customers_with_orders", "two_orders", "positive_voice", "passed")}
    tiers = {name: int(row[f"tier_{i}"] or 0) for i, (name, _) in enumerate(TIERS)}
    return counts, tiers


def _gated_page(s, after: tuple[float, str] | None, limit: int | None):
    """Gated customers, highest score first, ties by customer_id: those after ``after`` (the last
    (score, customer_id) already fetched), at most ``limit`` (None: all)."""
    g = s.filter(s.passes)
    if after is not None:
        sc, cid = after
        g = g.filter((g.score < sc) | ((g.score == sc) & (g.customer_id > cid)))
    g = g.order_by([g.score.desc(), g.customer_id.asc()])
    return g.limit(limit) if limit else g


def _rank_order(rows: pa.Table) -> pa.Table:
    """Rows in the list's order (score descending, ties by customer_id): engines need not keep the
    order of a sorted result when it comes back."""
    if not rows.num_rows:
        return rows
    rows = rows.combine_chunks()  # a take over one chunk: half the time of one over the engine's chunks
    return rows.take(pc.sort_indices(rows, sort_keys=[("score", "descending"), ("customer_id", "ascending")]))


def _by_id(rows: pa.Table) -> pa.Table:
    if not rows.num_rows:
        return rows
    rows = rows.combine_chunks()
    return rows.take(pc.sort_indices(rows.column("customer_id")))  # ids are unique: no ties to break


def _frame(table: pa.Table) -> pd.DataFrame:
    """An Arrow result as pandas; list columns stay Arrow-backed (an element reads as a list of str)
    because turning 300k lists into numpy arrays cost about 1.5 s of a 10 s score."""
    table = table.combine_chunks()
    df = table.to_pandas(date_as_object=False, types_mapper=lambda t: pd.ArrowDtype(t) if pa.types.is_list(t) else None)
    for c in df.columns:  # the same datetime unit as DuckDB's .df()
        if df[c].dtype.kind == "M":
            df[c] = df[c].astype("datetime64[us]")
    return df


_LATE = GATE_COLUMNS[:3] + ("mostly_returns", "repeated_posts", "passes", "months", "flags", "flag_text", "reasons")


def _format(con, rows: pa.Table, dup: pa.Table, as_of: date, cooldown: int, by: str = "rank") -> pd.DataFrame:
    """The rows that came back, with the rewards of the DuckDB file, the flags and the plain-language
    reasons (DuckDB, locally), in the columns (and their order) of the result."""
    params = {"as_of": as_of, "cooldown": cooldown, "return_share": RETURN_SHARE, "repeat": REPEAT_POSTS}
    con.register("_adv_j", rows)
    con.register("_adv_dup", dup)
    try:
        table = con.sql(_CUSTOMER_SQL, params=params).to_arrow_table()
    finally:
        con.unregister("_adv_j")
        con.unregister("_adv_dup")
    moved = set(_LATE) | set(SCORE_COLUMNS) | {"tier"}
    table = table.select(
        [c for c in table.column_names if c not in moved] + list(_LATE) + list(SCORE_COLUMNS) + ["tier"]
    )
    if table.num_rows:
        # the joins above keep no order: the list's (score descending, ties by customer_id), or by id;
        # sorted in Arrow before pandas (reordering the pandas frame cost 0.4 s at 317k rows)
        keys = (
            [("score", "descending"), ("customer_id", "ascending")] if by == "rank" else [("customer_id", "ascending")]
        )
        table = table.take(pc.sort_indices(table.select([k for k, _ in keys]), sort_keys=keys))
    return _frame(table)


def _contributions(out: pd.DataFrame) -> pd.DataFrame:
    # Flags are explained, never scored away: the row keeps its score and place. reasons, flags and
    # flag_text hold arrays of strings as DuckDB returns them (converting 300k rows costs seconds).
    sat = [None if v != v else v for v in out["contribution_satisfaction"].tolist()]
    out["contributions"] = [
        {"loyalty": a, "advocacy": b, "satisfaction": c, "reach": d}
        for a, b, c, d in zip(
            out["contribution_loyalty"].tolist(),
            out["contribution_advocacy"].tolist(),
            sat,
            out["contribution_reach"].tolist(),
        )
    ]
    return out


def _dup_of(t, keys, ids_expr) -> pa.Table:
    """The duplicate groups of the customers of ``ids_expr`` only (a semi join on the engine)."""
    d = ca.duplicate_keys(keys)
    ids = ids_expr.select(_cid=ids_expr.customer_id)
    return t.execute(d.semi_join(ids, d.customer_id == ids._cid))


def _compute(
    con,
    as_of: date,
    weights: dict[str, float],
    cooldown: int,
    cutoff: date | None = None,
    *,
    t=None,
    viewer: Viewer = ADMIN,
):
    """Every customer with a counted order, ranked and scored (gates evaluated, not applied), sorted
    by customer_id: (frame, n, gate counts, unmatched handles). All of them come back: for tests and
    for "why is X not listed?" (``score(..., everyone=True)``), not for the list."""
    if t is None:
        with ca.engine_tables(con, viewer=viewer) as tt:
            return _compute(con, as_of, weights, cooldown, cutoff, t=tt, viewer=viewer)
    try:
        s, n, m, keys = _engine_pass(t, as_of, cutoff or as_of, weights)
        counts, _ = _gate_counts(t, s) if n else ({}, {})
        df = _everyone(t, con, s, keys, as_of, cooldown) if n else pd.DataFrame()
        unmatched = _unmatched(t, m)
    finally:
        ca.drop_materialized(t, _MATERIALIZED)
    return df, n, counts, unmatched


def _everyone(t, con, s, keys, as_of: date, cooldown: int) -> pd.DataFrame:
    rows = _by_id(t.execute(s))
    df = _format(con, rows, t.execute(ca.duplicate_keys(keys)), as_of, cooldown, by="id")
    return df.drop(columns=["tier"])


def _gated(t, con, s, keys, as_of, cooldown, top: int | None, keep, attach) -> tuple[pd.DataFrame, bool]:
    """The gated customers that come back, in the list's order: all of them (``top`` None), else the
    first ``top``; with ``keep`` (a function of the formatted rows and as_of giving a boolean mask,
    e.g. an export's consent and hold-out filters) as many as it takes for ``top`` rows to pass it
    (pages from the engine, the next one after the last (score, customer_id) fetched). ``attach``
    adds the value model's figures. Returns (rows, complete: every gated customer came back)."""
    if not top:  # the whole gated list (sorted once, by _format); duplicate groups are few: all of them
        rows = t.execute(s.filter(s.passes))
        return attach(_contributions(_format(con, rows, t.execute(ca.duplicate_keys(keys)), as_of, cooldown))), True
    limit = int(top) if keep is None else max(2 * int(top), PAGE_ROWS)
    parts, dups, after = [], [], None
    while True:
        page = _gated_page(s, after, limit)
        rows = _rank_order(t.execute(page))
        parts.append(rows)
        dups.append(_dup_of(t, keys, page))
        done = rows.num_rows < limit
        df = attach(_contributions(_format(con, pa.concat_tables(parts), pa.concat_tables(dups), as_of, cooldown)))
        if keep is None or done or int(np.asarray(keep(df, as_of), dtype=bool).sum()) >= top:
            return df, done
        last = rows.slice(rows.num_rows - 1).to_pylist()[0]
        after = (last["score"], last["customer_id"])
        limit *= 2


def score(
    con,
    as_of=None,
    weights: Mapping[str, float] | None = None,
    *,
    viewer: Viewer,
    horizon_weeks: int = value.HORIZON_WEEKS,
    clv: bool = True,
    engine=None,
    top: int | None = None,
    keep=None,
    everyone: bool = False,
) -> AdvocateResult:
    """Score and gate every customer (see the module docstring for every formula).

    The gates, the score, the tiers and the ranking run on the engine; what comes back is the
    gated customers the caller shows (``top``: the first N of the list, None or 0 = every gated
    customer), the gate and tier counts, and the value model's inputs. ``keep(frame, as_of)`` (a
    boolean mask over the formatted rows, e.g. an export's consent and hold-out filters, or
    :func:`reward_mask`) asks for as many rows as it takes for ``top`` of them to pass it, so that a
    filtered top N equals the top N of the filtered full list. ``everyone`` brings back every
    customer with an order, ungated (``result.everyone``: tests, "why is X not listed?"; at 100M
    customers that is the whole table).

    With ``clv`` (default) the repeat-buying model of :mod:`cxstats.value` runs on the same counted
    orders: each customer gains p_alive, expected_orders (transaction days in the next
    ``horizon_weeks``) and expected_value, and a "likely to buy again" / "probably lapsed" reason;
    the score is unchanged. When the model cannot be fitted those figures are NaN and
    ``result.clv.reason`` says why.

    Marketing, admin and leader may call it; a manager gets AccessDenied. ``weights`` overrides
    the defaults by name; reach's weight above 0.1 of the total raises CxStatsError. Flagged
    customers keep their score and place, carry ``flags`` and a "flag: ..." reason, and are left
    out of :func:`to_reward` until reviewed.

    ``engine`` (a :class:`cxstats.engine.EngineConfig`; None: the environment's, see
    :func:`cxstats.engine.config_from_env`) says where the per-customer aggregation runs: the
    DuckDB file of ``con``, a Parquet lake, or Spark; rewards and settings always come from ``con``.
    """
    viewer.require(*SCORING_ROLES)
    w = check_weights(weights)
    if top is not None and (int(top) != top or top < 0):
        raise CxStatsError(f"top must be 0 (all) or a positive whole number, got {top!r}")
    cooldown = store.settings(con).reward_cooldown_days
    with ca.engine_tables(con, viewer=viewer, engine=engine) as t:
        as_of = _as_date(as_of) or latest_order_date(con, t=t)
        if as_of is None:
            return AdvocateResult(None, MappingProxyType(w), _empty_customers(), _unmatched_empty(), 0, cooldown, {})
        window = value.backtest_window(con, as_of, horizon_weeks, t=t) if clv else (as_of, 0, 0)
        try:
            s, n, m, keys = _engine_pass(t, as_of, window[0], w)
            counts, tiers = _gate_counts(t, s) if n else ({}, {})
            cv = None
            if clv:  # the model's summary from the scoring pass
                cv = value.customer_value(
                    con,
                    viewer=viewer,
                    as_of=as_of,
                    horizon_weeks=horizon_weeks,
                    summary_frame=value.summary_from_rows(ca.value_rows(t, s, as_of, window[0]) if n else None),
                    window=window,
                )

            def attach(df: pd.DataFrame) -> pd.DataFrame:
                df = df.drop(columns=list(ENGINE_ONLY), errors="ignore")
                return value.attach(df, cv) if cv is not None else df

            if n:
                out, complete = _gated(t, con, s, keys, as_of, cooldown, top, keep, attach)
                every = (
                    _everyone(t, con, s, keys, as_of, cooldown).drop(columns=list(ENGINE_ONLY)) if everyone else None
                )
            unmatched = _unmatched(t, m)
        finally:
            ca.drop_materialized(t, _MATERIALIZED)
    if n == 0:
        out, complete, every = _empty_customers(), True, (pd.DataFrame() if everyone else None)
    unmatched["reach"] = np.log10(1 + unmatched["max_followers"].astype("float64").fillna(0))
    return AdvocateResult(
        as_of,
        MappingProxyType(w),
        out,
        unmatched,
        n,
        cooldown,
        MappingProxyType(counts),
        every,
        cv,
        dict(tiers),  # a plain dict: the page caches the result (a mappingproxy cannot be pickled)
        complete,
    )


def _unmatched_empty() -> pd.DataFrame:
    return pd.DataFrame(
        {
            c: pd.Series(dtype=object)
            for c in ("handle", "mentions", "positive_mentions", "negative_mentions", "max_followers", "why", "reach")
        }
    )


def to_reward(
    result: AdvocateResult,
    *,
    min_tier: str = "Candidate",
    include_flagged: bool = False,
    min_p_alive: float | None = None,
) -> pd.DataFrame:
    """Gated customers to thank now: not rewarded within the cooldown, not flagged (unless reviewed).

    ``min_tier`` keeps that tier and better ("Advocate" keeps Champions and Advocates).
    ``min_p_alive`` leaves out customers whose P(alive) is below it (customers without a P(alive),
    when the model could not be fitted, stay).
    """
    df = result.customers
    return df[reward_mask(df, min_tier=min_tier, include_flagged=include_flagged, min_p_alive=min_p_alive)].reset_index(
        drop=True
    )


def reward_mask(
    df: pd.DataFrame, *, min_tier: str = "Candidate", include_flagged: bool = False, min_p_alive: float | None = None
) -> pd.Series:
    """Which rows of a scored list :func:`to_reward` keeps (as a ``keep`` of :func:`score`, the
    first N of a "to reward" list come back without bringing back the whole list)."""
    names = [t for t, _ in TIERS]
    if min_tier not in names:
        raise CxStatsError(f"unknown tier {min_tier!r}; use one of {', '.join(names)}")
    keep = names[: names.index(min_tier) + 1]
    mask = ~df["recently_rewarded"].astype(bool) & df["tier"].isin(keep)
    if not include_flagged:
        mask &= df["flags"].map(len) == 0
    if min_p_alive is not None:
        pa = value.check_p_alive(min_p_alive)
        if "p_alive" in df:
            mask &= ~(df["p_alive"].astype(float) < pa)
    return mask


# ---------------------------------------------------------------- rewards


def record_reward(
    db_or_con, customer_id, reward_date, reward_type: str, value=None, note=None, *, viewer: Viewer
) -> int:
    """Store one reward as a ``rewards`` batch (undoable like any upload); returns the batch id.

    Marketing and admin only. ``db_or_con`` is a database path or an open connection.
    """
    viewer.require(*REWARD_ROLES)
    cid = str(customer_id).strip() if customer_id is not None else ""
    if not cid:
        raise CxStatsError("customer_id is required to record a reward")
    d = _as_date(reward_date, "reward_date")
    if d is None:
        raise CxStatsError("reward_date is required, e.g. 2024-06-30")
    rtype = str(reward_type or "").strip()
    if not rtype:
        raise CxStatsError("reward_type is required (e.g. 'voucher', 'thank-you gift')")
    if value is not None and value != "":
        try:
            value = round(float(value), 2)
        except (TypeError, ValueError):
            raise CxStatsError(f"reward value must be a number, got {value!r}") from None
        if not math.isfinite(value):
            raise CxStatsError("reward value must be a finite number")
    else:
        value = None
    frame = pd.DataFrame(
        {
            "row_no": [1],
            "customer_id": [cid],
            "reward_date": [d],
            "reward_type": [rtype],
            "value": pd.array([value], dtype="float64"),
            "note": [note],
        }
    )
    digest = hashlib.sha256(f"{cid}|{d}|{rtype}|{value}|{note}|{datetime.now().isoformat()}".encode()).hexdigest()

    def _load(con):
        return store.load_batch(
            con, "rewards", {"rewards": frame}, file_name="reward form", sha256=digest, rows=1, loaded_by=viewer.name
        )

    if hasattr(db_or_con, "execute"):
        return _load(db_or_con)
    with store.connect(db_or_con) as con:
        return _load(con)


# ---------------------------------------------------------------- the Advocates page's filters


def filter_customers(
    result: AdvocateResult, *, tiers=None, min_score: float = 0, consent_only: bool = False, hide_flagged: bool = False
) -> pd.DataFrame:
    """The scored customers that pass the page's filters (tiers, minimum score, consent, flags), in rank
    order; every column of ``result.customers`` (the contribution columns too, NaN when the result is empty)."""
    df = result.customers
    for col in ("contribution_loyalty", "contribution_advocacy", "contribution_satisfaction", "contribution_reach"):
        if col not in df.columns:  # an empty result carries only the JSON columns
            df = df.assign(**{col: float("nan")})
    mask = df["score"] >= min_score
    if tiers is not None:
        mask &= df["tier"].isin(list(tiers))
    if consent_only:
        mask &= df["consent"].astype(bool)
    if hide_flagged:
        mask &= df["flags"].map(len) == 0
    return df[mask]


def filter_text(
    *,
    as_of,
    weights: Mapping[str, float],
    tiers=None,
    min_score: float = 0,
    consent_only: bool = False,
    hide_flagged: bool = False,
    min_p_alive: float | None = None,
) -> str:
    """The filters of an export in words, as the audit log records them, e.g.
    "tiers Champion/Advocate; score >= 40; consent only; as of 2026-09-30; weights loyalty 0.35, ..."."""
    names = list(tiers) if tiers is not None else [name for name, _ in TIERS]
    text = (
        f"tiers {'/'.join(names)}; score >= {min_score:g}"
        + ("; consent only" if consent_only else "")
        + ("; flagged hidden" if hide_flagged else "")
        + f"; as of {as_of}; weights "
        + ", ".join(f"{k} {v:g}" for k, v in weights.items())
    )
    if min_p_alive:
        text += f"; to reward: P(alive) >= {min_p_alive:g}"
    return text


__all__ = [
    "score",
    "to_reward",
    "reward_mask",
    "record_reward",
    "filter_customers",
    "filter_text",
    "AdvocateResult",
    "percentile_ranks",
    "tier",
    "reach",
    "weighted_score",
    "check_weights",
    "DEFAULT_WEIGHTS",
]
