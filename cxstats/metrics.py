"""Engagement and customer-satisfaction metrics, with anonymity applied before any figure leaves.

Definitions follow DESIGN.md, "Metric definitions" (outside checks recompute them):

- item score 1..k (already reverse-keyed on import); favourable = score >= k-1;
- respondent score = ``100 * (mean of answered index items - 1) / (k - 1)``, over the items whose
  cell in the respondent's (unit, period) group is shown (>= min_group answers); a respondent who
  answered fewer than half of the index items, or none in a shown cell, is left out and counted;
- engagement index of a group = mean of its respondents' scores (0..100);
- eNPS / NPS = ``100 * (share 9-10 - share 0-6)``, SE ``100 * sqrt((pP + pD - (pP - pD)^2) / n)``;
- CSAT % = ``100 * share of {4, 5}``, CSAT mean = mean of 1..5;
- period = calendar quarter (or month, a database setting) of survey_date, or of the wave's first
  survey_date when the respondent has a wave, so a wave never splits.

Anonymity (why no suppressed answer can be recovered by subtraction)
--------------------------------------------------------------------
Engagement is only ever grouped by (unit, period) under the one database-wide period setting. A
group is *kept* when at least ``min_group`` respondents count towards its index (respondents left
out for answering too few items do not make a group bigger: a figure over 4 people is a figure
over 4 people). Suppressed groups are removed in SQL before anything is aggregated further, so
every total, overall average, distribution, alpha and statistic is computed over kept groups only;
a shown total therefore never contains a suppressed group, and subtracting shown figures yields
only other kept groups. The same holds one level down: an item answered by fewer than ``min_group``
respondents of a kept group is dropped from that group's item figures, from every item total *and*
from the group's index and alpha (a respondent's score is the mean of his answers in shown cells, so
the index cannot be solved for a hidden answer), and a group's eNPS is shown only when at least ``min_group`` of its respondents answered it. Other
groupings or thresholds could be differenced against these, so a caller may raise ``min_group``
(suppressing more, which reveals nothing new) but never lower it below the setting, and
``linkage --period`` other than the setting is refused. Counts of suppressed *groups* are shown;
counts of their respondents are not. Free-text comments are returned only for groups of at least
``comment_min_group`` (10) respondents.

Every function that returns data takes a :class:`cxstats.Viewer`: marketing may not see employee
data (``AccessDenied``); a manager sees only his own units (rows of other units are filtered out in
SQL, before any aggregate is formed).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import date
from typing import Iterable, Sequence

import duckdb
import numpy as np
import pandas as pd

from . import ADMIN, CxStatsError, Viewer, periods, store
from .stats import welch_diff  # noqa: F401  (one definition, in cxstats.stats; metrics.welch_diff keeps working)

PERIODS = periods.PERIODS

# Reply targets for the Customers page (DESIGN.md, "Response time"): hours by channel.
REPLY_TARGET_HOURS = {"twitter": 1.0, "x": 1.0, "facebook": 6.0, "email": 6.0, "e-mail": 6.0}
DEFAULT_REPLY_TARGET_HOURS = 12.0


# ---------------------------------------------------------------- pure formulas


@dataclass(frozen=True)
class NPS:
    """A net promoter score (also eNPS) with its standard error."""

    nps: float | None
    se: float | None
    n: int
    promoters: int
    detractors: int


def nps_from_counts(promoters: int, detractors: int, n: int) -> NPS:
    """NPS = 100 * (pP - pD); SE = 100 * sqrt((pP + pD - (pP - pD)^2) / n).

    pP is the share of answers 9-10, pD the share 0-6.

    Example: 50 promoters, 20 detractors of 100 -> NPS 30, SE = 100*sqrt((.5+.2-.09)/100) = 7.81.
    """
    if n <= 0:
        return NPS(None, None, 0, int(promoters), int(detractors))
    pp, pd_ = promoters / n, detractors / n
    var = max(pp + pd_ - (pp - pd_) ** 2, 0.0)
    return NPS(100.0 * (pp - pd_), 100.0 * math.sqrt(var / n), int(n), int(promoters), int(detractors))


def nps(scores) -> NPS:
    """NPS of 0..10 answers (missing values ignored); see :func:`nps_from_counts`.

    Example: [10, 9, 8, 7, 3] -> promoters 2/5, detractors 1/5 -> NPS 20.
    """
    a = np.asarray(pd.Series(scores, dtype="float64").dropna())
    return nps_from_counts(int((a >= 9).sum()), int((a <= 6).sum()), int(a.size))


def csat_pct(scores) -> float | None:
    """CSAT % = 100 * share of answers in {4, 5} (1..5 scale). Example: [5, 4, 3, 1] -> 50.0."""
    a = np.asarray(pd.Series(scores, dtype="float64").dropna())
    return None if a.size == 0 else 100.0 * float((a >= 4).mean())


def csat_mean(scores) -> float | None:
    """CSAT mean = mean of the 1..5 answers. Example: [5, 4, 3, 1] -> 3.25."""
    a = np.asarray(pd.Series(scores, dtype="float64").dropna())
    return None if a.size == 0 else float(a.mean())


def respondent_score(mean_item_score: float, k: int) -> float:
    """Respondent engagement on 0..100: ``100 * (mean - 1) / (k - 1)``. Example: mean 4 on k=5 -> 75."""
    return 100.0 * (mean_item_score - 1.0) / (k - 1.0)


def cronbach_alpha(items: pd.DataFrame) -> float | None:
    """Cronbach's alpha of item columns (rows = respondents with every item answered).

    ``alpha = k/(k-1) * (1 - sum(var_i) / var(total))`` with sample variances (ddof=1).

    Example: items [[1,2,3],[2,3,4],[3,4,5],[4,4,4]] -> alpha = 3/2 * (1 - 2.9167/7.5833) = 0.923.
    """
    x = pd.DataFrame(items).dropna().to_numpy(dtype="float64")
    n, k = x.shape
    if k < 2 or n < 2:
        return None
    total_var = x.sum(axis=1).var(ddof=1)
    if total_var == 0:
        return None
    return float(k / (k - 1) * (1.0 - x.var(axis=0, ddof=1).sum() / total_var))


def reply_target_hours(channel: str | None) -> float:
    """Reply target by channel: Twitter/X 1 h, Facebook and email 6 h, anything else 12 h."""
    key = (channel or "").strip().lower()
    return REPLY_TARGET_HOURS.get(key, DEFAULT_REPLY_TARGET_HOURS)


# ---------------------------------------------------------------- settings and periods


@dataclass(frozen=True)
class Scope:
    """The settings a query runs under: anonymity threshold, period grouping, index items."""

    min_group: int
    period: str
    index_items: tuple[str, ...]
    comment_min_group: int


def scope(con: duckdb.DuckDBPyConnection, min_group: int | None = None, period: str | None = None) -> Scope:
    """Resolve the database settings, refusing a lower min_group or another period grouping.

    Figures at two thresholds or two groupings could be subtracted to expose a small group, so a
    caller may only raise min_group and may only name the database's own period.
    """
    s = store.settings(con)
    mg = s.min_group
    if min_group is not None:
        if int(min_group) < s.min_group:
            raise CxStatsError(
                f"min_group {min_group} is below the database setting {s.min_group}; anonymity allows "
                f"raising it, never lowering it (an admin changes the setting)"
            )
        mg = int(min_group)
    if period is not None and period != s.period:
        raise CxStatsError(
            f"period {period!r} differs from the database setting {s.period!r}; engagement is only "
            f"grouped by the one period setting (figures under two groupings could be subtracted)"
        )
    if s.period not in PERIODS:
        raise CxStatsError(f"the database period setting {s.period!r} is not one of {', '.join(PERIODS)}")
    return Scope(mg, s.period, s.index_items, s.comment_min_group)


period_label = periods.label  # '2024-Q2' for a quarter starting 2024-04-01 (the one definition: cxstats.periods)


def _labels(frame: pd.DataFrame, period: str) -> pd.DataFrame:
    """Add period label and the 'incomplete' flag (the period has not ended yet)."""
    if frame.empty:
        frame["period"] = pd.Series(dtype="object")
        frame["incomplete"] = pd.Series(dtype="bool")
        return frame
    # few distinct periods: label each once, then map (cells can run to many thousand rows)
    starts = pd.to_datetime(frame["period_start"]).dt.date
    uniq = pd.unique(starts)
    today = date.today()
    label = {d: periods.label(d, period) for d in uniq}
    open_ = {d: periods.incomplete(d, period, today) for d in uniq}
    frame["period"] = starts.map(label)
    frame["incomplete"] = starts.map(open_).astype(bool)
    frame["period_start"] = starts
    return frame


def in_selection(
    frame: pd.DataFrame,
    units: Iterable[str] | None = None,
    period_from: str | None = None,
    period_to: str | None = None,
) -> pd.DataFrame:
    """Rows of whole units and whole periods in the sidebar's selection (None = no limit).

    The one selection filter (pages, the Overview's headline, the report, reply times). Period labels
    ('2025-Q1', '2025-03') sort as text in time order, so the range is a text range.
    """
    if frame is None or len(frame) == 0:
        return frame
    keep = pd.Series(True, index=frame.index)
    if units is not None and "unit_id" in frame.columns:
        keep &= frame["unit_id"].astype(str).isin([str(u) for u in units])
    if "period" in frame.columns:
        p = frame["period"].astype(str)
        if period_from:
            keep &= p >= str(period_from)
        if period_to:
            keep &= p <= str(period_to)
    return frame[keep]


_viewer_units = store.viewer_units  # the one viewer-unit filter (store.VIEWER_UNITS_SQL)


# The respondent-level relation every engagement figure starts from. Built from constant text only;
# values (index items, unit filter) are bound as parameters.
#
# Re-organisations and differencing are applied here, in one place (DESIGN.md, "Erasure, retention
# and re-organisations"): each respondent's ORIGINAL (unit, period) group is formed first; a group
# below min_group, or one in ``suppressed_groups`` (a non-batch change moved it by fewer than
# min_group respondents), is *blocked*: its respondents stay under their original unit, count for
# nothing (respondents 0, so the group is counted as suppressed) and never join a successor's group.
# The others take their unit's successor from ``unit_map`` (renames and merges), and a successor
# group named in ``suppressed_groups`` is blocked too. ``resp_all`` holds every respondent (blocked
# ones carry no score, eNPS or comment) and is what groups are counted from; ``resp`` holds the
# unblocked ones, the only rows any figure is built from.
#
# Suppressed item cells (DESIGN.md, "Differencing and oracles"; issue 18.5c): an item answered by
# fewer than min_group respondents of a (unit, period) group is hidden in item figures, and it is
# left out of that group's index as well, else the index would solve to the hidden answers. So a
# respondent's score is the mean of his answers in *shown* cells (``shown_cells``: the cells
# item_scores shows), and a respondent none of whose index answers is in a shown cell is left out of
# the index (and counted, like one who answered too few items). Which cells are shown, and who is in
# the index, depends only on which items were answered, never on the answers themselves.
def _respondents_sql(sc: Scope) -> str:
    # with every item in the index (the default) no answer needs matching against the item list
    index_join = "JOIN idx ON a.batch_id = idx.batch_id AND a.item = idx.item" if sc.index_items else ""
    return f"""
    items AS (
        SELECT batch_id, item, max(scale) AS scale FROM engagement_items GROUP BY batch_id, item
    ),
    idx AS (
        SELECT batch_id, item, scale FROM items WHERE ? OR list_contains(?::VARCHAR[], item)
    ),
    batch_k AS (
        SELECT batch_id, max(scale) AS k, count(*) AS n_index FROM idx GROUP BY batch_id
    ),
    resp_items AS (
        SELECT a.batch_id, a.row_no, count(*) AS n_answered
        FROM engagement_answers a {index_join}
        GROUP BY a.batch_id, a.row_no
    ),
    waves AS ({periods.waves_sql()}),
    resp0 AS MATERIALIZED (
        SELECT e.batch_id, e.row_no, e.unit_id AS orig_unit, coalesce(um.to_unit, e.unit_id) AS mapped_unit,
               e.respondent_id, e.enps, e.comment, bk.k,
               {periods.survey_start_sql(sc.period)} AS period_start,
               coalesce(ri.n_answered, 0) > 0 AND 2 * coalesce(ri.n_answered, 0) >= bk.n_index AS in_index
        FROM engagement e
        LEFT JOIN waves w ON e.wave = w.wave
        LEFT JOIN batch_k bk ON e.batch_id = bk.batch_id
        LEFT JOIN resp_items ri ON e.batch_id = ri.batch_id AND e.row_no = ri.row_no
        LEFT JOIN unit_map um ON um.from_unit = e.unit_id
    ),
    orig_grp AS (
        SELECT orig_unit, period_start, count(*) FILTER (WHERE in_index) AS n FROM resp0 GROUP BY ALL
    ),
    resp_flag AS (
        SELECT r.*, (og.n < ? OR EXISTS (SELECT 1 FROM suppressed_groups s WHERE s.unit_id = r.orig_unit
                                          AND s.period_start = r.period_start)) AS pre_blocked
        FROM resp0 r JOIN orig_grp og USING (orig_unit, period_start)
    ),
    resp_b AS MATERIALIZED (
        SELECT batch_id, row_no, unit_id, respondent_id, period_start, k, blocked, enps, comment, in_index
        FROM (
            SELECT *, CASE WHEN pre_blocked THEN orig_unit ELSE mapped_unit END AS unit_id,
                   pre_blocked OR EXISTS (SELECT 1 FROM suppressed_groups s WHERE s.unit_id = mapped_unit
                                          AND s.period_start = resp_flag.period_start) AS blocked
            FROM resp_flag)
        WHERE {store.VIEWER_UNITS_SQL}
    ),
    shown_cells AS MATERIALIZED (
        SELECT r.unit_id, r.period_start, a.item
        FROM resp_b r JOIN engagement_answers a ON a.batch_id = r.batch_id AND a.row_no = r.row_no
        WHERE NOT r.blocked
        GROUP BY r.unit_id, r.period_start, a.item HAVING count(*) >= ?
    ),
    resp_scores AS (
        SELECT r.batch_id, r.row_no, avg(a.score) AS mean_score
        FROM resp_b r
        JOIN engagement_answers a ON a.batch_id = r.batch_id AND a.row_no = r.row_no {index_join}
        JOIN shown_cells c ON c.unit_id = r.unit_id AND c.period_start = r.period_start AND c.item = a.item
        WHERE NOT r.blocked
        GROUP BY r.batch_id, r.row_no
    ),
    resp_all AS MATERIALIZED (
        SELECT b.batch_id, b.row_no, b.unit_id, b.respondent_id, b.period_start, b.k, b.blocked,
               CASE WHEN b.blocked THEN NULL ELSE b.enps END AS enps,
               CASE WHEN b.blocked THEN NULL ELSE b.comment END AS comment,
               b.in_index AND NOT b.blocked AND s.mean_score IS NOT NULL AS in_index,
               CASE WHEN b.blocked THEN NULL ELSE 100.0 * (s.mean_score - 1) / (b.k - 1) END AS score
        FROM resp_b b LEFT JOIN resp_scores s ON s.batch_id = b.batch_id AND s.row_no = b.row_no
    ),
    resp AS (
        SELECT * FROM resp_all WHERE NOT blocked
    ),
    grp AS (
        SELECT unit_id, period_start, count(*) FILTER (WHERE in_index) AS respondents
        FROM resp_all GROUP BY unit_id, period_start
    ),
    kept AS (
        SELECT unit_id, period_start, respondents FROM grp WHERE respondents >= ?
    )
    """


def _resp_params(sc: Scope, viewer: Viewer) -> list:
    all_units, units = _viewer_units(viewer)
    return [not sc.index_items, list(sc.index_items), sc.min_group, all_units, units, sc.min_group, sc.min_group]


# ---------------------------------------------------------------- engagement


@dataclass(frozen=True)
class EngagementGroups:
    """Kept (unit, period) groups; suppressed groups appear only as a count.

    ``groups`` columns: unit_id, period, period_start, period_index, respondents,
    excluded_respondents (answered fewer than half the index items), index, index_sd,
    enps, enps_se, enps_n (eNPS null when fewer than min_group answered it), incomplete.
    """

    groups: pd.DataFrame = field(compare=False, repr=False)
    suppressed_groups: int
    excluded_respondents: int
    min_group: int
    period: str


def comparable_periods(groups: EngagementGroups, units: Sequence[str] | None = None) -> dict[str, tuple[str, ...]]:
    """Units with at least two shown periods, each with its shown period labels in order (the choices of
    "change between periods"; ``units`` narrows to a selection, None means every unit in ``groups``).

    >>> import pandas as pd
    >>> g = EngagementGroups(pd.DataFrame({"unit_id": ["A", "A", "B"], "period": ["2024-Q2", "2024-Q1", "2024-Q1"]}),
    ...                      0, 0, 5, "quarter")
    >>> comparable_periods(g)
    {'A': ('2024-Q1', '2024-Q2')}
    """
    frame = groups.groups
    if frame is None or not len(frame):
        return {}
    ids = frame["unit_id"].astype(str)
    if units is not None:
        frame, ids = frame[ids.isin([str(u) for u in units])], ids[ids.isin([str(u) for u in units])]
    out: dict[str, tuple[str, ...]] = {}
    for unit, labels in frame["period"].astype(str).groupby(ids):
        shown = tuple(sorted(set(labels)))
        if len(shown) >= 2:
            out[str(unit)] = shown
    return dict(sorted(out.items()))


def unit_period_engagement(
    con: duckdb.DuckDBPyConnection, min_group: int | None = None, period: str | None = None, *, viewer: Viewer
) -> EngagementGroups:
    """Engagement index, eNPS and respondent counts per kept (unit, period) group.

    index = mean over the group's respondents of ``100 * (respondent_mean - 1) / (k - 1)``.
    Groups with fewer than ``min_group`` index respondents are suppressed (counted only).
    Example: five respondents with item means 5, 4, 3, 2, 1 on k = 5 score 100, 75, 50, 25, 0 ->
    index 50; a sixth who answered 1 of 4 items is left out and counted in excluded_respondents.
    """
    viewer.require_employee_data()
    sc = scope(con, min_group, period)
    ordinal = periods.ordinal_sql("period_start", sc.period)
    # one pass over respondents: every group is aggregated, only kept groups leave the database,
    # suppressed ones as a bare count
    sql = f"""
    WITH {_respondents_sql(sc)},
    allg AS MATERIALIZED (
        SELECT unit_id, period_start,
               count(*) FILTER (WHERE in_index) AS respondents,
               count(*) FILTER (WHERE (NOT in_index OR in_index IS NULL) AND NOT blocked) AS excluded_respondents,
               avg(score) FILTER (WHERE in_index) AS index,
               stddev_samp(score) FILTER (WHERE in_index) AS index_sd,
               sum(score) FILTER (WHERE in_index) AS score_sum,
               count(enps) AS enps_n,
               count(*) FILTER (WHERE enps >= 9) AS enps_promoters,
               count(*) FILTER (WHERE enps <= 6) AS enps_detractors
        FROM resp_all GROUP BY unit_id, period_start
    )
    SELECT *, {ordinal} AS period_index, (SELECT count(*) FROM allg WHERE respondents < ?) AS n_suppressed
    FROM allg WHERE respondents >= ?
    ORDER BY unit_id, period_start
    """
    params = _resp_params(sc, viewer)
    groups = con.execute(sql, params + [sc.min_group, sc.min_group]).df()
    suppressed = (
        int(groups["n_suppressed"].iloc[0])
        if len(groups)
        else con.execute(
            f"WITH {_respondents_sql(sc)} SELECT count(*) FROM grp WHERE respondents < ?", params + [sc.min_group]
        ).fetchall()[0][0]
    )
    groups = _labels(groups, sc.period)
    e = [
        nps_from_counts(p, d, n) if n >= sc.min_group else NPS(None, None, int(n), 0, 0)
        for p, d, n in zip(groups["enps_promoters"], groups["enps_detractors"], groups["enps_n"])
    ]
    groups["enps"] = [x.nps for x in e]
    groups["enps_se"] = [x.se for x in e]
    groups = groups.drop(columns=["enps_promoters", "enps_detractors"])
    for c in ("respondents", "excluded_respondents", "enps_n", "period_index"):
        groups[c] = groups[c].astype("int64")
    cols = [
        "unit_id",
        "period",
        "period_start",
        "period_index",
        "respondents",
        "excluded_respondents",
        "index",
        "index_sd",
        "score_sum",
        "enps",
        "enps_se",
        "enps_n",
        "incomplete",
    ]
    return EngagementGroups(
        groups[cols].reset_index(drop=True),
        int(suppressed),
        int(groups["excluded_respondents"].sum()),
        sc.min_group,
        sc.period,
    )


LINKED_SHARE = 0.5  # the linked variant applies when at least this share of kept answers is linked


def within_person_noise(
    con: duckdb.DuckDBPyConnection, min_group: int | None = None, period: str | None = None, *, viewer: Viewer
) -> pd.DataFrame | None:
    """Time-varying respondent noise per unit, where respondent_id links people across periods.

    When the same people answer a unit's survey period after period, a person's stable level is
    removed by the unit effect and only the time-varying part of their answers is noise in the
    within-unit change. Over the in-index respondents of kept (unit, period) groups whose
    respondent_id appears in two or more of the unit's kept periods, each answer's deviation from
    its group mean is centred on that respondent's own mean (repeated until both centrings hold:
    the exact two-way residual for unbalanced data), and per unit ``ss = sum of squared residuals``,
    ``dof = answers - respondents - groups + connected components``. Respondents seen once carry
    no information on this (their residual is zero) and are left out.

    Returns a frame (unit_id, ss, dof) when linked answers make up at least half of all kept
    answers, else None (use the pooled within-group variance). Aggregates only: no respondent's
    answer leaves this function.
    """
    viewer.require_employee_data()
    sc = scope(con, min_group, period)
    sql = f"""
    WITH {_respondents_sql(sc)},
    kr AS (
        SELECT r.unit_id, r.period_start, trim(r.respondent_id) AS rid, r.score
        FROM resp r JOIN kept k ON r.unit_id = k.unit_id AND r.period_start = k.period_start
        WHERE r.in_index
    ),
    linked AS (
        SELECT unit_id, rid FROM kr WHERE rid IS NOT NULL AND rid <> ''
        GROUP BY unit_id, rid HAVING count(DISTINCT period_start) >= 2
    )
    SELECT kr.unit_id, kr.period_start, kr.rid, kr.score, (SELECT count(*) FROM kr) AS total
    FROM kr JOIN linked l ON kr.unit_id = l.unit_id AND kr.rid = l.rid
    """
    f = con.execute(sql, _resp_params(sc, viewer)).df()
    if f.empty or len(f) < LINKED_SHARE * float(f["total"].iloc[0]):
        return None
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    g_codes, _ = pd.factorize(pd.MultiIndex.from_arrays([f["unit_id"], f["period_start"]]))
    r_codes, _ = pd.factorize(pd.MultiIndex.from_arrays([f["unit_id"], f["rid"]]))
    ng, nr = int(g_codes.max()) + 1, int(r_codes.max()) + 1
    gc = np.bincount(g_codes, minlength=ng).astype("float64")
    rc = np.bincount(r_codes, minlength=nr).astype("float64")
    v = f["score"].to_numpy("float64")
    v = v - v.mean()
    tol = 1e-10 * max(1.0, float(np.abs(v).max()))
    for _ in range(1000):
        v = v - (np.bincount(g_codes, weights=v, minlength=ng) / gc)[g_codes]
        step = (np.bincount(r_codes, weights=v, minlength=nr) / rc)[r_codes]
        v = v - step
        if float(np.abs(step).max()) <= tol:
            break
    graph = coo_matrix((np.ones(len(f)), (r_codes, nr + g_codes)), shape=(nr + ng, nr + ng))
    _, comp = connected_components(graph, directed=False)
    w = pd.DataFrame({"unit_id": f["unit_id"], "e2": v * v, "r": r_codes, "g": g_codes, "c": comp[r_codes]})
    per = w.groupby("unit_id").agg(
        ss=("e2", "sum"), n=("e2", "size"), r=("r", "nunique"), g=("g", "nunique"), c=("c", "nunique")
    )
    per["dof"] = (per["n"] - per["r"] - per["g"] + per["c"]).astype("float64")
    return per.reset_index()[["unit_id", "ss", "dof"]]


def small_changes_to_kept_groups(
    con: duckdb.DuckDBPyConnection, incoming: pd.DataFrame, *, viewer: Viewer
) -> pd.DataFrame:
    """Kept (unit, period) groups that loading ``incoming`` would change by 1..min_group-1 respondents.

    DESIGN.md, "Differencing and oracles": figures of a reported group before and after a small
    change reveal the few people added. Also listed: any group whose stored respondents would move
    to another period (an earlier survey date moves a wave's period; the moved group's figures
    before and after differ by the newcomers). ``incoming`` holds the new engagement rows
    (unit_id, survey_date, optional wave). Columns: unit_id, period, period_start, respondents
    (counted in the index now), added, removed (moved out).
    """
    viewer.require("admin")
    sc = scope(con)
    frame = pd.DataFrame(
        {
            "row_no": np.arange(len(incoming), dtype="int64"),
            "unit_id": incoming["unit_id"].astype(object).to_numpy(),
            "survey_date": pd.to_datetime(incoming["survey_date"]).dt.date.to_numpy(),
            "wave": (
                incoming["wave"].astype(object).where(incoming["wave"].notna(), None).to_numpy()
                if "wave" in incoming.columns
                else None
            ),
        }
    )
    frame["wave"] = frame["wave"].astype(object)
    sql = f"""
    WITH {_respondents_sql(sc)},
    new_rows AS (
        SELECT -1 AS batch_id, row_no, CAST(unit_id AS VARCHAR) AS unit_id,
               CAST(survey_date AS DATE) AS survey_date, CAST(wave AS VARCHAR) AS wave FROM _cxstats_incoming
    ),
    all_rows AS (
        SELECT batch_id, row_no, unit_id, survey_date, wave FROM engagement UNION ALL SELECT * FROM new_rows
    ),
    waves_after AS ({periods.waves_sql("all_rows")}),
    before_rows AS (
        SELECT e.batch_id, e.row_no, e.unit_id,
               {periods.survey_start_sql(sc.period)} AS period_start
        FROM engagement e LEFT JOIN waves w ON e.wave = w.wave
    ),
    after_rows AS (
        SELECT e.batch_id, e.row_no, e.unit_id,
               {periods.survey_start_sql(sc.period)} AS period_start
        FROM all_rows e LEFT JOIN waves_after w ON e.wave = w.wave
    ),
    moved AS (
        SELECT b.unit_id AS b_unit, b.period_start AS b_period, a.unit_id AS a_unit, a.period_start AS a_period
        FROM after_rows a FULL JOIN before_rows b ON a.batch_id = b.batch_id AND a.row_no = b.row_no
        WHERE b.unit_id IS DISTINCT FROM a.unit_id OR b.period_start IS DISTINCT FROM a.period_start
    ),
    added AS (
        SELECT a_unit AS unit_id, a_period AS period_start, count(*) AS n FROM moved
        WHERE a_unit IS NOT NULL GROUP BY ALL
    ),
    removed AS (
        SELECT b_unit AS unit_id, b_period AS period_start, count(*) AS n FROM moved
        WHERE b_unit IS NOT NULL GROUP BY ALL
    )
    SELECT g.unit_id, g.period_start, g.respondents, coalesce(ad.n, 0) AS added, coalesce(rm.n, 0) AS removed
    FROM grp g
    LEFT JOIN kept k ON k.unit_id = g.unit_id AND k.period_start = g.period_start
    LEFT JOIN added ad ON ad.unit_id = g.unit_id AND ad.period_start = g.period_start
    LEFT JOIN removed rm ON rm.unit_id = g.unit_id AND rm.period_start = g.period_start
    WHERE (k.unit_id IS NOT NULL AND coalesce(ad.n, 0) + coalesce(rm.n, 0) BETWEEN 1 AND ? - 1)
       OR coalesce(rm.n, 0) > 0
    ORDER BY g.unit_id, g.period_start
    """
    con.register("_cxstats_incoming", frame)
    try:
        out = con.execute(sql, _resp_params(sc, ADMIN) + [sc.min_group]).df()
    finally:
        con.unregister("_cxstats_incoming")
    out = _labels(out, sc.period)
    return out[["unit_id", "period", "period_start", "respondents", "added", "removed"]]


@dataclass(frozen=True)
class ItemScores:
    """Per kept (unit, period, item) cell with at least min_group answers.

    ``cells`` columns: unit_id, period, period_start, period_index, item, n, favourable,
    favourable_pct, mean_score (1..k), var_score (sample variance of the answers, ddof 1),
    mean_0_100, k. ``suppressed_cells`` counts item cells of kept
    groups answered by fewer than min_group respondents.
    """

    cells: pd.DataFrame = field(compare=False, repr=False)
    suppressed_cells: int
    min_group: int
    period: str
    # which cells of kept groups are suppressed: unit_id, period, item only (never their counts)
    suppressed: pd.DataFrame | None = field(default=None, compare=False, repr=False)


def item_scores(
    con: duckdb.DuckDBPyConnection,
    min_group: int | None = None,
    period: str | None = None,
    *,
    viewer: Viewer,
    groups: EngagementGroups | None = None,
) -> ItemScores:
    """Favourable % (score >= k-1) and mean per item in each kept group, small item cells suppressed.

    Every item (index item or not) is reported; a cell counts every answer to the item from the
    kept group's respondents and is shown only when at least min_group of them answered it.
    ``mean_0_100`` rescales item answers like the index: ``100 * (score - 1) / (k - 1)``.
    Example: answers 5, 4, 3, 2, 1 on k = 5 -> favourable 2 of 5 = 40 %, mean_0_100 = 50.
    ``groups``: the kept groups from :func:`unit_period_engagement` under the same viewer and
    scope, when the caller already has them (saves a pass over every answer).
    """
    viewer.require_employee_data()
    sc = scope(con, min_group, period)
    if groups is None:
        groups = unit_period_engagement(con, viewer=viewer, min_group=sc.min_group)
    elif (groups.min_group, groups.period) != (sc.min_group, sc.period):
        raise CxStatsError("item_scores: the groups given were made under another min_group or period")
    sql = f"""
    WITH {_respondents_sql(sc)},
    batch_scale AS (  -- one scale per loaded file: join answers on the integer batch_id only
        SELECT batch_id, max(scale) AS scale FROM engagement_items GROUP BY batch_id
    ),
    cell AS (
        SELECT r.unit_id, r.period_start, a.item, max(it.scale) AS k, count(*) AS n,
               count(*) FILTER (WHERE a.score >= it.scale - 1) AS favourable,
               avg(a.score) AS mean_score, var_samp(a.score) AS var_score,
               avg(100.0 * (a.score - 1) / (it.scale - 1)) AS mean_0_100
        FROM resp r
        JOIN _cxstats_kept_groups kg ON kg.unit_id = r.unit_id AND kg.period_start = r.period_start
        JOIN engagement_answers a ON a.batch_id = r.batch_id AND a.row_no = r.row_no
        JOIN batch_scale it ON it.batch_id = a.batch_id
        GROUP BY r.unit_id, r.period_start, a.item
    )
    SELECT unit_id, period_start, {periods.ordinal_sql("period_start", sc.period)} AS period_index,
           item, n, favourable, 100.0 * favourable / n AS favourable_pct, mean_score, var_score, mean_0_100, k,
           n >= ? AS shown
    FROM cell ORDER BY unit_id, period_start, item
    """
    kept = groups.groups[["unit_id", "period_start"]].copy()
    kept["period_start"] = pd.to_datetime(kept["period_start"]).astype("datetime64[s]")
    con.register("_cxstats_kept_groups", kept)
    try:
        cells = con.execute(sql, _resp_params(sc, viewer) + [sc.min_group]).df()
    finally:
        con.unregister("_cxstats_kept_groups")
    n_suppressed = int((~cells["shown"].astype(bool)).sum()) if len(cells) else 0
    hidden = _labels(
        cells.loc[~cells["shown"].astype(bool), ["unit_id", "period_start", "item"]].reset_index(drop=True), sc.period
    )[["unit_id", "period", "item"]]
    cells = cells[cells["shown"].astype(bool)].drop(columns=["shown"]).reset_index(drop=True)
    cells = _labels(cells, sc.period)
    cols = [
        "unit_id",
        "period",
        "period_start",
        "period_index",
        "item",
        "n",
        "favourable",
        "favourable_pct",
        "mean_score",
        "var_score",
        "mean_0_100",
        "k",
    ]
    return ItemScores(cells[cols], n_suppressed, sc.min_group, sc.period, hidden)


def item_favourable(
    con: duckdb.DuckDBPyConnection, min_group: int | None = None, period: str | None = None, *, viewer: Viewer
) -> pd.DataFrame:
    """Favourable % per item over all shown cells (kept groups, cells with >= min_group answers).

    Columns: item, n, favourable, favourable_pct, mean_0_100. Suppressed cells are left out of the
    totals too, so a total minus the shown cells is never a hidden cell.
    """
    cells = item_scores(con, viewer=viewer, min_group=min_group, period=period).cells
    if cells.empty:
        return pd.DataFrame(columns=["item", "n", "favourable", "favourable_pct", "mean_0_100"])
    cells = cells.assign(weighted=cells["mean_0_100"] * cells["n"])
    out = cells.groupby("item", as_index=False)[["n", "favourable", "weighted"]].sum()
    out["favourable_pct"] = 100.0 * out["favourable"] / out["n"]
    out["mean_0_100"] = out["weighted"] / out["n"]
    return out.drop(columns=["weighted"]).sort_values("item").reset_index(drop=True)


def item_distribution(
    con: duckdb.DuckDBPyConnection, min_group: int | None = None, period: str | None = None, *, viewer: Viewer
) -> pd.DataFrame:
    """Answer counts per kept group, item and score, over shown cells only.

    Columns: unit_id, period_start, period, incomplete, item, k, score, answers. One row per
    (unit, period, item, score) so that a page can sum over the units and periods it selects;
    a cell (group and item) with fewer than ``min_group`` answers is left out, like its group.
    """
    viewer.require_employee_data()
    sc = scope(con, min_group, period)
    sql = f"""
    WITH {_respondents_sql(sc)},
    ans AS (
        SELECT r.unit_id, r.period_start, a.item, it.scale AS k, a.score
        FROM resp r
        JOIN kept USING (unit_id, period_start)
        JOIN engagement_answers a ON a.batch_id = r.batch_id AND a.row_no = r.row_no
        JOIN items it ON it.batch_id = a.batch_id AND it.item = a.item
    ),
    shown AS (
        SELECT unit_id, period_start, item FROM ans GROUP BY ALL HAVING count(*) >= ?
    )
    SELECT unit_id, period_start, item, k, score, count(*) AS answers
    FROM ans JOIN shown USING (unit_id, period_start, item)
    GROUP BY ALL ORDER BY unit_id, period_start, item, k, score
    """
    return _labels(con.execute(sql, _resp_params(sc, viewer) + [sc.min_group]).df(), sc.period)


@dataclass(frozen=True)
class EngagementSummary:
    """Overall figures over kept groups only (suppressed groups excluded from every total)."""

    index: float | None
    respondents: int
    groups: int
    suppressed_groups: int
    excluded_respondents: int
    enps: float | None
    enps_se: float | None
    alpha: float | None
    min_group: int
    period: str
    by_period: pd.DataFrame = field(compare=False, repr=False)


def engagement_summary(
    con: duckdb.DuckDBPyConnection, min_group: int | None = None, period: str | None = None, *, viewer: Viewer
) -> EngagementSummary:
    """Overall index (mean over every kept respondent), eNPS, alpha and a per-period table.

    ``by_period`` columns: period, period_start, groups, respondents, index, incomplete.
    Example: kept groups of 5 respondents at index 50 and 7 at 75 -> (250 + 525) / 12 = 64.58; a
    suppressed group of 4 at 100 changes nothing.
    """
    g = unit_period_engagement(con, viewer=viewer, min_group=min_group, period=period)
    frame = g.groups
    n = int(frame["respondents"].sum()) if len(frame) else 0
    index = float(frame["score_sum"].sum() / n) if n else None
    e = _enps_over_groups(con, viewer, g)
    if len(frame):
        bp = frame.groupby(["period", "period_start", "incomplete"], as_index=False).agg(
            groups=("unit_id", "size"), respondents=("respondents", "sum"), score_sum=("score_sum", "sum")
        )
        bp["index"] = bp["score_sum"] / bp["respondents"]
        bp = bp.drop(columns=["score_sum"])[["period", "period_start", "groups", "respondents", "index", "incomplete"]]
    else:
        bp = pd.DataFrame(columns=["period", "period_start", "groups", "respondents", "index", "incomplete"])
    return EngagementSummary(
        index,
        n,
        len(frame),
        g.suppressed_groups,
        g.excluded_respondents,
        e.nps,
        e.se,
        index_alpha(con, viewer=viewer, min_group=g.min_group),
        g.min_group,
        g.period,
        bp,
    )


def _enps_over_groups(con, viewer: Viewer, g: EngagementGroups) -> NPS:
    """eNPS over the groups whose eNPS is shown (>= min_group answers in a kept group)."""
    sc = scope(con, g.min_group)
    sql = f"""
    WITH {_respondents_sql(sc)},
    eg AS (
        SELECT r.unit_id, r.period_start, count(r.enps) AS n,
               count(*) FILTER (WHERE r.enps >= 9) AS p, count(*) FILTER (WHERE r.enps <= 6) AS d
        FROM resp r JOIN kept USING (unit_id, period_start) GROUP BY ALL
    )
    SELECT coalesce(sum(p), 0), coalesce(sum(d), 0), coalesce(sum(n), 0) FROM eg WHERE n >= ?
    """
    p, d, n = con.execute(sql, _resp_params(sc, viewer) + [sc.min_group]).fetchall()[0]
    return nps_from_counts(int(p), int(d), int(n))


def index_alpha(con: duckdb.DuckDBPyConnection, min_group: int | None = None, *, viewer: Viewer) -> float | None:
    """Cronbach's alpha of the index items over kept respondents who answered every index item.

    Same formula as :func:`cronbach_alpha`, ``k/(k-1) * (1 - sum(var_i) / var(total))``, computed in
    SQL (the answers never leave the database). k is the number of distinct index items over kept
    groups; a respondent whose batch lacks an item, or who skipped one, is left out, and so is one
    whose group's cell of an item is suppressed (fewer than min_group answers: its answers are used
    nowhere). None when
    fewer than 2 items or 2 complete respondents.
    """
    viewer.require_employee_data()
    sc = scope(con, min_group)
    sql = f"""
    WITH {_respondents_sql(sc)},
    ans AS MATERIALIZED (
        SELECT a.batch_id, a.row_no, a.item, a.score
        FROM resp r
        JOIN kept USING (unit_id, period_start)
        JOIN engagement_answers a ON a.batch_id = r.batch_id AND a.row_no = r.row_no
        JOIN idx ON idx.batch_id = a.batch_id AND idx.item = a.item
        JOIN shown_cells c ON c.unit_id = r.unit_id AND c.period_start = r.period_start AND c.item = a.item
        WHERE r.in_index
    ),
    n_items AS (SELECT count(DISTINCT item) AS k FROM ans),
    complete AS (
        SELECT batch_id, row_no, sum(score) AS total FROM ans GROUP BY batch_id, row_no
        HAVING count(DISTINCT item) = (SELECT k FROM n_items)
    ),
    item_var AS (
        SELECT item, var_samp(score) AS v FROM ans JOIN complete USING (batch_id, row_no) GROUP BY item
    )
    SELECT (SELECT k FROM n_items), (SELECT sum(v) FROM item_var), (SELECT var_samp(total) FROM complete),
           (SELECT count(*) FROM complete)
    """
    k, sum_var, total_var, n = con.execute(sql, _resp_params(sc, viewer)).fetchall()[0]
    if not k or k < 2 or not n or n < 2 or not total_var:
        return None
    return float(k / (k - 1) * (1.0 - sum_var / total_var))


@dataclass(frozen=True)
class WaveChange:
    """Change of a unit's engagement index between two periods, with a Welch 95% CI."""

    unit_id: str
    period_from: str
    period_to: str
    index_from: float
    index_to: float
    change: float
    ci_low: float
    ci_high: float
    p: float
    n_from: int
    n_to: int

    @property
    def is_clear(self) -> bool:
        """True when the 95% interval excludes zero (a real move rather than noise)."""
        return self.ci_low > 0 or self.ci_high < 0


def wave_change(
    con: duckdb.DuckDBPyConnection,
    unit_id: str,
    period_from: str,
    period_to: str,
    min_group: int | None = None,
    *,
    viewer: Viewer,
) -> WaveChange:
    """Index(to) - index(from) for one unit, with a Welch t 95% CI over respondent scores.

    Both groups must be kept (>= min_group respondents); a suppressed group cannot be compared.
    """
    viewer.require_employee_data()
    allowed = viewer.unit_filter()
    if allowed is not None and unit_id not in allowed:
        raise CxStatsError(f"unit {unit_id!r} is not one of your units")
    sc = scope(con, min_group)
    sql = f"""
    WITH {_respondents_sql(sc)}
    SELECT r.period_start, r.score FROM resp r JOIN kept USING (unit_id, period_start)
    WHERE r.in_index AND r.unit_id = ?
    """
    frame = _labels(con.execute(sql, _resp_params(sc, viewer) + [str(unit_id)]).df(), sc.period)
    a = frame.loc[frame["period"] == period_from, "score"].to_numpy()
    b = frame.loc[frame["period"] == period_to, "score"].to_numpy()
    if a.size == 0 or b.size == 0:
        shown = sorted(frame["period"].unique())
        raise CxStatsError(
            f"unit {unit_id!r} has no shown group in {period_from if a.size == 0 else period_to} "
            f"(groups under {sc.min_group} respondents are suppressed); shown periods: {', '.join(shown) or 'none'}"
        )
    diff, lo, hi, p, _ = welch_diff(a, b)
    return WaveChange(
        str(unit_id),
        period_from,
        period_to,
        float(a.mean()),
        float(b.mean()),
        diff,
        lo,
        hi,
        p,
        int(a.size),
        int(b.size),
    )


def comments(con: duckdb.DuckDBPyConnection, min_group: int | None = None, *, viewer: Viewer) -> pd.DataFrame:
    """Free-text comments of groups with at least ``comment_min_group`` (10) respondents.

    Columns: unit_id, period, comment (shuffled order within a group is not promised; sorted by text
    so that row order does not follow the spreadsheet order of respondents).
    """
    viewer.require_employee_data()
    sc = scope(con, min_group)
    sql = f"""
    WITH {_respondents_sql(sc)}
    SELECT r.unit_id, r.period_start, r.comment FROM resp r JOIN kept USING (unit_id, period_start)
    WHERE kept.respondents >= ? AND r.comment IS NOT NULL AND trim(r.comment) <> ''
    ORDER BY r.unit_id, r.period_start, r.comment
    """
    frame = _labels(
        con.execute(sql, _resp_params(sc, viewer) + [max(sc.comment_min_group, sc.min_group)]).df(), sc.period
    )
    return frame[["unit_id", "period", "comment"]]


# ---------------------------------------------------------------- customer satisfaction


_cx_viewer = store.viewer_units  # feedback rows a viewer may see: the same filter as engagement's


CX_COLUMNS = ["csat_n", "csat_top2", "csat_sum", "nps_n", "promoters", "detractors"]


def _db_file(con: duckdb.DuckDBPyConnection) -> str | None:
    """The file of ``con``'s database (None in memory): where the engine's local tables come from."""
    rows = con.execute("SELECT path FROM duckdb_databases() WHERE database_name = current_database()").fetchall()
    return rows[0][0] if rows and rows[0][0] else None


def engine_config(con: duckdb.DuckDBPyConnection, engine=None):
    """``engine`` itself, or the engine the environment names for ``con``'s database
    (:func:`cxstats.engine.config_from_env`; nothing set: the DuckDB file)."""
    if engine is not None:
        return engine
    from . import engine as engines

    return engines.config_from_env(_db_file(con))


def _on_engine(cfg, viewer: Viewer, build) -> pd.DataFrame:
    """Run ``build(tables, unit_map)`` (an Ibis expression, cxstats.unit_aggregates) on a lake or
    Spark; re-organisations come from the DuckDB file as a small table. Only aggregates come back."""
    from . import engine as engines

    with engines.open_tables(cfg, viewer=viewer) as t:
        um = t.local("SELECT from_unit, to_unit FROM unit_map ORDER BY from_unit")
        unit_map = t.small(um.astype({"from_unit": "object", "to_unit": "object"})) if len(um) else None
        return t.execute(build(t, unit_map)).to_pandas()


def _on_duckdb_file(con: duckdb.DuckDBPyConnection, key: tuple, params: dict) -> pd.DataFrame:
    """One of cxstats.unit_aggregates' expressions on the DuckDB file: the SQL compiled from it ahead
    of time (cxstats.unit_aggregates_sql, key of ``unit_aggregates.duckdb_variants``), with named
    parameters; no Ibis import in the path of a command."""
    from . import unit_aggregates_sql

    return con.execute(unit_aggregates_sql.SQL[key], params).df()


def cx_aggregate(
    con: duckdb.DuckDBPyConnection, key: tuple, params: dict, build, *, viewer: Viewer, engine=None
) -> pd.DataFrame:
    """One aggregate of :mod:`cxstats.unit_aggregates`, run where the engine is (``engine``; None:
    from the environment): on the DuckDB file the SQL compiled from it (``unit_aggregates_sql.SQL[key]``,
    ``key`` of ``unit_aggregates.duckdb_variants``, with the named ``params``), on a lake or Spark
    ``build(t, unit_map)`` (the same expression, over :func:`cxstats.engine.open_tables`' tables).
    The caller filters by ``viewer`` (its units are in ``params`` / ``build``)."""
    cfg = engine_config(con, engine)
    if cfg.kind == "duckdb":
        return _on_duckdb_file(con, key, params)
    return _on_engine(cfg, viewer, build)


def cx_counts(
    con: duckdb.DuckDBPyConnection, period: str | None = None, by_channel: bool = False, *, viewer: Viewer, engine=None
) -> pd.DataFrame:
    """Feedback counts per (unit, period[, channel]): the sums CX metrics are built from.

    Columns: unit_id, [channel,] period_start, period_index, csat_n, csat_top2 (answers 4-5),
    csat_sum, csat_sq (sum of squared answers, for the within-group spread), nps_n, promoters (9-10),
    detractors (0-6). Ordered by unit_id, [channel,] period_start.

    The counts are :func:`cxstats.unit_aggregates.cx_counts` on every engine. ``engine`` (an
    :class:`cxstats.engine.EngineConfig`; None: from the environment) says where the feedback is
    read: on a lake or Spark the expression runs there; on the DuckDB file it runs as the SQL
    compiled from it (:mod:`cxstats.unit_aggregates_sql`).
    """
    s = store.settings(con)
    per = period or s.period
    if per not in PERIODS:
        raise CxStatsError(f"period must be one of {', '.join(PERIODS)}")
    all_units, units = _cx_viewer(viewer)
    only = None if all_units else units

    def build(t, um):
        from . import unit_aggregates as ua

        return ua.cx_counts(t.table("feedback"), um, period=per, units=only, by_channel=by_channel)

    key = ("cx_counts", per, bool(by_channel), only is not None)
    frame = cx_aggregate(con, key, {} if only is None else {"units": only}, build, viewer=viewer, engine=engine)
    keys = ["unit_id"] + (["channel"] if by_channel else []) + ["period_start"]
    frame["period_start"] = pd.to_datetime(frame["period_start"])
    frame = frame.sort_values(keys, kind="mergesort").reset_index(drop=True)
    return _cx_dtypes(frame)


def _cx_dtypes(frame: pd.DataFrame) -> pd.DataFrame:
    for c in CX_COLUMNS + ["csat_sq", "period_index"]:
        frame[c] = frame[c].astype("float64") if c in ("csat_sum", "csat_sq") else frame[c].astype("int64")
    return frame


def add_cx_metrics(frame: pd.DataFrame) -> pd.DataFrame:
    """Add csat_pct, csat_mean, nps, nps_se to a frame of counts (CX_COLUMNS); nulls where n = 0."""
    out = frame.copy()
    cn = out["csat_n"].astype("float64").replace(0, np.nan)
    nn = out["nps_n"].astype("float64").replace(0, np.nan)
    out["csat_pct"] = 100.0 * out["csat_top2"] / cn
    out["csat_mean"] = out["csat_sum"] / cn
    pp, pdd = out["promoters"] / nn, out["detractors"] / nn
    out["nps"] = 100.0 * (pp - pdd)
    out["nps_se"] = 100.0 * np.sqrt((pp + pdd - (pp - pdd) ** 2).clip(lower=0) / nn)
    return out


def cx_by_unit_period(
    con: duckdb.DuckDBPyConnection, period: str | None = None, by_channel: bool = False, *, viewer: Viewer, engine=None
) -> pd.DataFrame:
    """CSAT %, CSAT mean, NPS and its SE per unit and period (and channel), for the Customers page.

    Customer feedback carries no employee answers, so no anonymity suppression applies; a manager
    sees only his units. Example: csat 5, 4, 3, 2, 1 -> CSAT % 40, mean 3; nps 10, 9, 8, 0 -> NPS 25,
    SE = 100 * sqrt((.5 + .25 - .0625) / 4) = 41.5.
    """
    per = period or store.settings(con).period
    frame = _labels(
        add_cx_metrics(cx_counts(con, viewer=viewer, period=per, by_channel=by_channel, engine=engine)), per
    )
    lead = ["unit_id"] + (["channel"] if by_channel else [])
    return frame[
        lead
        + ["period", "period_start", "period_index", "incomplete"]
        + CX_COLUMNS
        + ["csat_pct", "csat_mean", "nps", "nps_se"]
    ]


def cx_by_channel(con: duckdb.DuckDBPyConnection, *, viewer: Viewer, engine=None) -> pd.DataFrame:
    """CSAT %, CSAT mean, NPS (with SE) per channel over all feedback the viewer may see."""
    frame = cx_counts(con, viewer=viewer, by_channel=True, engine=engine)
    if frame.empty:
        return add_cx_metrics(pd.DataFrame(columns=["channel"] + CX_COLUMNS))
    out = frame.groupby("channel", as_index=False)[CX_COLUMNS].sum()
    return add_cx_metrics(out)


def response_times(
    con: duckdb.DuckDBPyConnection,
    units: Sequence[str] | None = None,
    period_from: str | None = None,
    period_to: str | None = None,
    *,
    viewer: Viewer,
    engine=None,
) -> pd.DataFrame:
    """Share of contacts answered within target, per source and channel, in a selection.

    Feedback: ``responded_at - contacted_at``; mentions: ``replied_at - posted_at``. Targets: Twitter/X
    1 h, Facebook and email 6 h, elsewhere 12 h. Columns: source, channel, target_hours, contacts,
    answered, within_target, share_within_target (of contacts), median_hours (of answered).
    The selection: ``units`` (None = all the viewer may see) and period labels ``period_from`` ..
    ``period_to`` (inclusive, in the database's period, of the feedback date or the post's date).
    Mentions carry no unit, so they count only when no unit is selected, and never for a manager.
    Example: email replies after 5 h and 1 h and one unanswered -> 2 of 3 within 6 h = 0.667.
    The counts and medians per (source, channel) are :func:`cxstats.unit_aggregates.reply_times` on
    every engine (on the DuckDB file as the SQL compiled from it); the channel's target picks one.
    """
    all_units, allowed = _cx_viewer(viewer)
    period = scope(con).period
    chosen = [str(u) for u in units] if units is not None else None
    if chosen is not None and not all_units:
        chosen = [u for u in chosen if u in allowed]
    only = chosen if chosen is not None else (None if all_units else allowed)
    with_mentions = viewer.role != "manager" and chosen is None
    from . import unit_aggregates_sql as compiled

    def build(t, um):
        from . import unit_aggregates as ua

        return ua.reply_times(
            t.table("feedback"),
            um,
            t.table("mentions") if with_mentions else None,
            period=period,
            units=only,
            period_from=period_from,
            period_to=period_to,
            targets=compiled.REPLY_TARGETS,
        )

    # the compiled SQL's named parameters: $period_from, $period_to (labels) and $units (a list)
    params: dict[str, str | list[str]] = {
        "period_from": period_from or compiled.NO_PERIOD_FROM,
        "period_to": period_to or compiled.NO_PERIOD_TO,
    }
    if only is not None:
        params["units"] = only
    key = ("reply_times", period, with_mentions, only is not None)
    out = cx_aggregate(con, key, params, build, viewer=viewer, engine=engine)
    if out.empty:
        return pd.DataFrame(columns=REPLY_COLUMNS)
    out["target_hours"] = [reply_target_hours(c) for c in out["channel"]]
    out["within_target"] = [
        int(row[compiled.WITHIN_COLUMNS[h]]) for h, (_, row) in zip(out["target_hours"], out.iterrows())
    ]
    out["share_within_target"] = out["within_target"] / out["contacts"]
    for c in ("contacts", "answered", "within_target"):
        out[c] = out[c].astype("int64")
    return out[REPLY_COLUMNS].sort_values(["source", "channel"]).reset_index(drop=True)


REPLY_COLUMNS = [
    "source",
    "channel",
    "target_hours",
    "contacts",
    "answered",
    "within_target",
    "share_within_target",
    "median_hours",
]


def suppressed_group_list(
    con: duckdb.DuckDBPyConnection, min_group: int | None = None, period: str | None = None, *, viewer: Viewer
) -> pd.DataFrame:
    """Which (unit, period) groups are suppressed (below min_group): columns unit_id, period only.

    Lets a page label them "suppressed" rather than leave a blank the reader must guess at; their
    respondent counts are never returned. (Added for the Engagement page by the dashboard.)
    """
    viewer.require_employee_data()
    sc = scope(con, min_group, period)
    sql = f"""
    WITH {_respondents_sql(sc)}
    SELECT unit_id, period_start FROM grp WHERE respondents < ? ORDER BY unit_id, period_start
    """
    frame = _labels(con.execute(sql, _resp_params(sc, viewer) + [sc.min_group]).df(), sc.period)
    return frame[["unit_id", "period"]].reset_index(drop=True)
