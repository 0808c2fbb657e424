"""From findings to action: focus areas, action plans with follow-up, and what changed.

DESIGN.md, sections "Focus areas and action plans" and "What changed". Every figure is built from
:mod:`cxstats.metrics` (kept groups and kept item cells only: a suppressed group or an item cell
answered by fewer than ``min_group`` respondents never enters anything here) and the item drivers
from :func:`cxstats.linkage.analyse`.

Focus areas, for one kept (unit, period) group and each index item with a kept cell:

- ``unit_mean``: mean answer (scale points, 1..k) of the unit's respondents on the item;
- ``others_mean``: mean answer over every other kept group of the period with a kept cell for the
  item (answers pooled, so larger groups weigh more);
- ``gap = others_mean - unit_mean`` with the Welch 95% CI of that difference
  (:func:`cxstats.stats.welch_from_moments`; Welch 1947);
- ``r``, ``q``: the item's between-unit driver correlation with the CX metric and its
  Benjamini-Hochberg q (linkage, "Drivers");
- ``priority = gap * r``; a *focus item* has ``gap_ci_low > 0``, ``r > 0`` and ``q < 0.10``; the three
  with the highest priority are the unit's focus areas (``focus`` true), each with one sentence.
  Strengths: up to three items whose gap CI lies wholly below 0 (the unit above the others),
  largest negative gap first.

A manager sees only his own units; the company benchmark (``others_mean`` and the gap) is shown to
him only when it pools at least 5 other units, so it never stands for another unit's figures.

Action plans live in the ``actions`` table (one statement per write: crash safe, before or after).
Follow-up of a plan: baseline = the unit's latest kept period ending before the plan was created,
outcome = its first kept period starting after; item change and CSAT % change with Welch CIs.
Across units, :func:`plan_effect` fits the ANCOVA ``change ~ has_plan + baseline`` with standard
errors clustered by unit (an estimate: plans are not randomised).

What changed (:func:`changes`): one test per (unit, measure) between two periods - Welch t for
the engagement index, an unpooled Wald z for CSAT %, the NPS standard error for NPS - and a change
is listed when its Benjamini-Hochberg q < 0.10 over every comparison made company-wide.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timezone

import duckdb
import numpy as np
import pandas as pd
from scipy import stats

from . import ADMIN, AccessDenied, CxStatsError, Viewer, linkage, metrics, periods, store
from .stats import Z_975, bh_q, num, welch_from_moments

Q_FOCUS = 0.10  # BH q below which a driver counts (DESIGN.md)
Q_CHANGE = 0.10  # BH q below which a change is listed
MIN_BENCHMARK_UNITS = 5  # a manager's company benchmark pools at least this many other units
TOP_AREAS = 3
STATUSES = ("open", "done", "dropped")
MAX_TITLE = 200
MAX_TEXT = 2000
MEASURES = ("engagement", "csat_pct", "nps")
FOLLOW_UP_METRICS = ("csat_pct", "nps")


_f = num  # a finite float or None (JSON has no NaN): cxstats.stats.num


def _check_unit(con: duckdb.DuckDBPyConnection, viewer: Viewer, unit_id: str) -> str:
    """Resolve a unit spelling (id or alias) and refuse a manager's request for another unit."""
    viewer.require_employee_data()
    raw = str(unit_id).strip()
    known = store.known_units(con)
    unit = known.get(raw, raw)
    allowed = viewer.unit_filter()
    if allowed is not None and unit not in allowed:
        raise AccessDenied(f"unit {raw!r} is not one of your units; you may see {', '.join(allowed) or 'none'}")
    return unit


# ---------------------------------------------------------------- focus areas


@dataclass(frozen=True)
class FocusItem:
    item: str
    unit_mean: float
    others_mean: float | None
    gap: float | None
    gap_ci_low: float | None
    gap_ci_high: float | None
    r: float | None
    q: float | None
    priority: float | None
    focus: bool
    n_unit: int
    n_others: int
    other_units: int

    def as_json(self) -> dict:
        return {
            "item": self.item,
            "unit_mean": _f(self.unit_mean),
            "others_mean": _f(self.others_mean),
            "gap": _f(self.gap),
            "gap_ci_low": _f(self.gap_ci_low),
            "gap_ci_high": _f(self.gap_ci_high),
            "r": _f(self.r),
            "q": _f(self.q),
            "priority": _f(self.priority),
            "focus": bool(self.focus),
        }


@dataclass(frozen=True)
class FocusArea:
    item: str
    gap: float
    r: float
    priority: float
    sentence: str


@dataclass(frozen=True)
class FocusResult:
    """One unit's focus areas in one period (``focus UNIT --json``)."""

    unit_id: str
    period: str
    metric: str
    items: tuple[FocusItem, ...]
    areas: tuple[FocusArea, ...]
    strengths: tuple[str, ...]
    suppressed_items: int
    warnings: tuple[str, ...]
    min_group: int

    def as_json(self) -> dict:
        """Exactly the fields of DESIGN.md ("Focus areas and action plans")."""
        return {
            "unit_id": self.unit_id,
            "period": self.period,
            "metric": self.metric,
            "items": [i.as_json() for i in self.items],
            "strengths": list(self.strengths),
            "suppressed_items": int(self.suppressed_items),
            "warnings": list(self.warnings),
        }

    @property
    def summary(self) -> list[str]:
        """One sentence per focus area, or "no clear focus area"."""
        if not self.areas:
            return [
                f"No clear focus area for {self.unit_id} in {self.period}: no item is both clearly below the "
                f"other units and linked with {linkage.METRICS[self.metric]} across units."
            ]
        return [a.sentence for a in self.areas]


def _focus_area(i: FocusItem, label: str) -> FocusArea | None:
    """The item as a focus area when the unit is below the others (the gap's interval above 0) on an
    item that drives ``label`` (r > 0, q < Q_FOCUS); else None. The priority is gap x r."""
    if i.gap is None or i.gap_ci_low is None or i.r is None or i.q is None or i.priority is None:
        return None
    if not (i.gap_ci_low > 0 and i.r > 0 and i.q < Q_FOCUS):
        return None
    return FocusArea(
        i.item,
        i.gap,
        i.r,
        i.priority,
        f"Your unit scores {i.gap:.1f} points below the other units on '{i.item}', an item "
        f"that goes with {label} across units (r = {i.r:.2f}).",
    )


def _pooled(cells: pd.DataFrame) -> tuple[float, float, int]:
    """Mean and sample variance of the answers pooled over cells (n, mean_score, var_score).

    ``SS = sum((n_i - 1) v_i + n_i (m_i - M)^2)``, variance SS / (N - 1).
    """
    n = cells["n"].to_numpy("float64")
    m = cells["mean_score"].to_numpy("float64")
    v = np.nan_to_num(cells["var_score"].to_numpy("float64"), nan=0.0)
    total = float(n.sum())
    mean = float((n * m).sum() / total)
    ss = float(((n - 1) * v + n * (m - mean) ** 2).sum())
    return mean, ss / (total - 1) if total > 1 else 0.0, int(total)


def _index_items(con: duckdb.DuckDBPyConnection, sc: metrics.Scope) -> list[str]:
    if sc.index_items:
        return list(sc.index_items)
    return [r[0] for r in con.execute("SELECT DISTINCT item FROM engagement_items ORDER BY item").fetchall()]


def focus_areas(
    con: duckdb.DuckDBPyConnection,
    unit_id: str,
    *,
    viewer: Viewer,
    period: str | None = None,
    metric: str = "csat_pct",
    min_group: int | None = None,
    drivers: dict | None = None,
    company: tuple | None = None,
    engine=None,
) -> FocusResult:
    """Focus areas of one unit in one period (default: the unit's latest shown period).

    For each index item with a kept cell: gap = others_mean - unit_mean (scale points) with the
    Welch 95% CI, driver r and q from :func:`cxstats.linkage.analyse`, ``priority = gap * r``. Focus:
    gap_ci_low > 0, r > 0, q < 0.10; the top three by priority are the focus areas.

    Example: a unit scoring 3.1 on "tools" where the other units score 3.6 (CI of the gap 0.2 to
    0.8) and tools goes with CSAT % at r = 0.41 (q 0.01) has priority 0.5 * 0.41 = 0.205.
    """
    if metric not in linkage.METRICS:
        raise CxStatsError(f"unknown metric {metric!r}; use one of {', '.join(linkage.METRICS)}")
    unit = _check_unit(con, viewer, unit_id)
    sc = metrics.scope(con, min_group)
    # the company view is built once, as admin; only pooled figures of other units leave this function
    eg, scores = company if company is not None else _company_view(con, sc.min_group)
    cells = scores.cells
    mine = eg.groups[eg.groups["unit_id"] == unit]
    shown = list(mine.sort_values("period_start")["period"])
    if period is None:
        if not shown:
            raise CxStatsError(
                f"unit {unit!r} has no shown survey group (groups under {sc.min_group} respondents "
                f"are suppressed); nothing to focus on yet"
            )
        period = shown[-1]
    period = periods.normalise(period, sc.period)  # a malformed --in label says how to write one
    if period not in shown:
        raise CxStatsError(
            f"unit {unit!r} has no shown group in {period} (groups under {sc.min_group} "
            f"respondents are suppressed); shown periods: {', '.join(shown) or 'none'}"
        )
    index_items = set(_index_items(con, sc))
    cells = cells[(cells["period"] == period) & cells["item"].isin(index_items)]
    own = cells[cells["unit_id"] == unit].set_index("item")
    hidden = scores.suppressed
    suppressed_items = int(
        ((hidden["unit_id"] == unit) & (hidden["period"] == period) & hidden["item"].isin(index_items)).sum()
    )
    if drivers is None:  # a caller looping over units passes them once (focus_counts)
        drivers = {
            d.item: d
            for d in linkage.analyse(con, viewer=ADMIN, metric=metric, min_group=sc.min_group, engine=engine).drivers
        }
    warnings: list[str] = []
    manager = viewer.role == "manager"
    items: list[FocusItem] = []
    few_others = False
    for item in sorted(own.index):
        u = own.loc[item]
        others = cells[(cells["item"] == item) & (cells["unit_id"] != unit)]
        n_other_units = int(others["unit_id"].nunique())
        d = drivers.get(item)
        r = d.r if d is not None else None
        q = d.q if d is not None else None
        if manager and d is not None and d.n < MIN_BENCHMARK_UNITS + 1:
            r = q = None
        om = gap = lo = hi = None
        n_o = 0
        if n_other_units and not (manager and n_other_units < MIN_BENCHMARK_UNITS):
            om, ov, n_o = _pooled(others)
            gap, lo, hi, _, _ = welch_from_moments(
                float(u["mean_score"]), float(u["var_score"]), int(u["n"]), om, ov, n_o
            )
        elif n_other_units:
            few_others = True
        pr = gap * r if gap is not None and r is not None else None
        items.append(
            FocusItem(
                item=str(item),
                unit_mean=float(u["mean_score"]),
                others_mean=om,
                gap=gap,
                gap_ci_low=lo,
                gap_ci_high=hi,
                r=r,
                q=q,
                priority=pr,
                focus=False,  # set below, once the top areas are known
                n_unit=int(u["n"]),
                n_others=n_o,
                other_units=n_other_units,
            )
        )
    label = linkage.METRICS[metric]
    candidates = [a for a in (_focus_area(i, label) for i in items) if a is not None]
    candidates.sort(key=lambda a: (-a.priority, a.item))
    areas = tuple(candidates[:TOP_AREAS])
    top = {a.item for a in areas}
    items = [replace(i, focus=i.item in top) for i in items]
    items.sort(key=lambda i: (i.priority is None, -(i.priority or 0.0), i.item))
    # gap and its interval are computed together: an item with gap_ci_high has a gap
    strong = [(i.gap, i.item) for i in items if i.gap is not None and i.gap_ci_high is not None and i.gap_ci_high < 0]
    strong.sort()
    if few_others:
        warnings.append(
            f"the company benchmark is shown only when it pools at least {MIN_BENCHMARK_UNITS} other "
            f"units; some items have fewer in {period}"
        )
    if suppressed_items:
        warnings.append(
            f"{suppressed_items} item(s) answered by fewer than {sc.min_group} of this group's "
            f"respondents are suppressed and left out"
        )
    if not drivers:
        warnings.append(f"no driver figures: too few units with both survey results and {label}")
    warnings.append("items overlap and a driver correlation between units is not proof of cause")
    return FocusResult(
        unit_id=unit,
        period=period,
        metric=metric,
        items=tuple(items),
        areas=areas,
        strengths=tuple(item for _, item in strong[:TOP_AREAS]),
        suppressed_items=int(suppressed_items),
        warnings=tuple(warnings),
        min_group=sc.min_group,
    )


def _company_view(con: duckdb.DuckDBPyConnection, min_group: int):
    eg = metrics.unit_period_engagement(con, viewer=ADMIN, min_group=min_group)
    return eg, metrics.item_scores(con, viewer=ADMIN, min_group=min_group, groups=eg)


def focus_counts(
    con: duckdb.DuckDBPyConnection,
    *,
    viewer: Viewer,
    period: str | None = None,
    metric: str = "csat_pct",
    units: tuple[str, ...] | None = None,
    engine=None,
) -> tuple[int, dict[str, int]]:
    """Across units: how many units have each item among their focus areas (the report's summary).

    Every unit the viewer may see (or ``units``) with a shown group in ``period`` (default: each
    unit's latest shown period) is asked :func:`focus_areas` with the same driver figures. Returns
    (units looked at, {item: units with it as a focus area}).
    """
    viewer.require_employee_data()
    sc = metrics.scope(con)
    eg = metrics.unit_period_engagement(con, viewer=viewer, min_group=sc.min_group).groups
    if period is not None:
        eg = eg[eg["period"] == period]
    seen = sorted(set(eg["unit_id"].astype(str)))
    if units is not None:
        seen = [u for u in seen if u in set(units)]
    drivers = {
        d.item: d
        for d in linkage.analyse(con, viewer=ADMIN, metric=metric, min_group=sc.min_group, engine=engine).drivers
    }
    company = _company_view(con, sc.min_group)  # one company view and one set of drivers for every unit
    counts: dict[str, int] = {}
    for unit in seen:
        res = focus_areas(con, unit, viewer=viewer, period=period, metric=metric, drivers=drivers, company=company)
        for area in res.areas:
            counts[area.item] = counts.get(area.item, 0) + 1
    return len(seen), dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))


# ---------------------------------------------------------------- what changed


@dataclass(frozen=True)
class Change:
    unit_id: str
    measure: str
    before: float
    after: float
    n_before: int
    n_after: int
    diff: float
    ci_low: float
    ci_high: float
    p: float
    q: float

    def as_json(self) -> dict:
        return {
            "unit_id": self.unit_id,
            "measure": self.measure,
            "before": _f(self.before),
            "after": _f(self.after),
            "n_before": int(self.n_before),
            "n_after": int(self.n_after),
            "diff": _f(self.diff),
            "ci_low": _f(self.ci_low),
            "ci_high": _f(self.ci_high),
            "p": _f(self.p),
            "q": _f(self.q),
        }


@dataclass(frozen=True)
class ChangesResult:
    """What moved between two periods (``changes --json``); ``changes`` holds only those with q < 0.10."""

    period: str | None
    previous: str | None
    compared: int
    changes: tuple[Change, ...]
    min_group: int

    def as_json(self) -> dict:
        return {
            "period": self.period,
            "previous": self.previous,
            "compared": int(self.compared),
            "changes": [c.as_json() for c in self.changes],
        }


def wald_pct_change(top_a: int, n_a: int, top_b: int, n_b: int) -> tuple[float, float, float, float]:
    """Unpooled Wald z for a change of a percentage: (diff, ci_low, ci_high, p), in % points.

    ``diff = 100 (p_b - p_a)``, ``se = 100 sqrt(p_a(1-p_a)/n_a + p_b(1-p_b)/n_b)``, CI ``diff +- 1.959964 se``,
    p two-sided from the normal. Example: 60/100 -> 75/100: diff 15, se 6.5, z 2.31, p 0.021.
    """
    pa, pb = top_a / n_a, top_b / n_b
    se = 100.0 * math.sqrt(pa * (1 - pa) / n_a + pb * (1 - pb) / n_b)
    diff = 100.0 * (pb - pa)
    return _z_result(diff, se)


def nps_change(nps_a: float, se_a: float, nps_b: float, se_b: float) -> tuple[float, float, float, float]:
    """Change of NPS with ``se = sqrt(se_a^2 + se_b^2)`` (DESIGN.md's NPS SE per period): (diff, lo, hi, p)."""
    return _z_result(nps_b - nps_a, math.sqrt(se_a**2 + se_b**2))


def _z_result(diff: float, se: float) -> tuple[float, float, float, float]:
    if se <= 0:
        return diff, math.nan, math.nan, math.nan
    z = diff / se
    return diff, diff - Z_975 * se, diff + Z_975 * se, float(2 * stats.norm.sf(abs(z)))


def changes(
    con: duckdb.DuckDBPyConnection,
    *,
    viewer: Viewer,
    period: str | None = None,
    previous: str | None = None,
    min_group: int | None = None,
    engine=None,
) -> ChangesResult:
    """Units whose engagement index, CSAT % or NPS moved from ``previous`` to ``period``.

    period: default the latest period with a shown engagement group; previous: default the latest
    earlier such period. Only units with a kept group in both periods are compared (a suppressed
    group is never compared). Tests: :func:`cxstats.stats.welch_from_moments` (engagement),
    :func:`wald_pct_change` (CSAT %), :func:`nps_change` (NPS); BH q (:func:`cxstats.bh_q`)
    over every comparison company-wide; listed when q < 0.10. A manager gets his own rows, with
    those company-wide q.
    """
    viewer.require_employee_data()
    sc = metrics.scope(con, min_group)
    eg = metrics.unit_period_engagement(con, viewer=ADMIN, min_group=sc.min_group).groups
    listed = (
        eg[["period", "period_start"]].drop_duplicates().sort_values("period_start")["period"].tolist()
        if len(eg)
        else []
    )
    if period is None:
        period = listed[-1] if listed else None
    else:
        period = periods.normalise(period, sc.period)  # a malformed --in label says how to write one
        if period not in listed:
            raise CxStatsError(f"no shown survey group in {period}; periods with data: {', '.join(listed) or 'none'}")
    if previous is None:
        earlier = listed[: listed.index(period)] if period in listed else []
        previous = earlier[-1] if earlier else None
    else:
        previous = periods.normalise(previous, sc.period)
        if previous not in listed:
            raise CxStatsError(f"no shown survey group in {previous}; periods with data: {', '.join(listed) or 'none'}")
        if listed.index(previous) >= listed.index(period):
            raise CxStatsError(f"--previous {previous} must be earlier than {period}")
    if period is None or previous is None:
        return ChangesResult(period, previous, 0, (), sc.min_group)
    a = eg[eg["period"] == previous].set_index("unit_id")
    b = eg[eg["period"] == period].set_index("unit_id")
    units = sorted(set(a.index) & set(b.index))
    cx = metrics.add_cx_metrics(metrics.cx_counts(con, viewer=ADMIN, period=sc.period, engine=engine))
    ps_a, ps_b = a["period_start"].iloc[0], b["period_start"].iloc[0] if len(b) else None
    cx["period_start"] = pd.to_datetime(cx["period_start"]).dt.date
    ca = cx[cx["period_start"] == ps_a].set_index("unit_id")
    cb = cx[cx["period_start"] == ps_b].set_index("unit_id")
    rows = []
    for u in units:
        ga, gb = a.loc[u], b.loc[u]
        diff, lo, hi, p, _ = welch_from_moments(
            float(ga["index"]),
            float(ga["index_sd"]) ** 2,
            int(ga["respondents"]),
            float(gb["index"]),
            float(gb["index_sd"]) ** 2,
            int(gb["respondents"]),
        )
        rows.append((u, "engagement", ga["index"], gb["index"], ga["respondents"], gb["respondents"], diff, lo, hi, p))
        if u in ca.index and u in cb.index:
            xa, xb = ca.loc[u], cb.loc[u]
            if xa["csat_n"] > 0 and xb["csat_n"] > 0:
                d, lo, hi, p = wald_pct_change(
                    int(xa["csat_top2"]), int(xa["csat_n"]), int(xb["csat_top2"]), int(xb["csat_n"])
                )
                rows.append((u, "csat_pct", xa["csat_pct"], xb["csat_pct"], xa["csat_n"], xb["csat_n"], d, lo, hi, p))
            if xa["nps_n"] > 0 and xb["nps_n"] > 0:
                d, lo, hi, p = nps_change(float(xa["nps"]), float(xa["nps_se"]), float(xb["nps"]), float(xb["nps_se"]))
                rows.append((u, "nps", xa["nps"], xb["nps"], xa["nps_n"], xb["nps_n"], d, lo, hi, p))
    rows = [r for r in rows if _f(r[9]) is not None]  # a zero standard error cannot be tested
    qs = bh_q([r[9] for r in rows]) if rows else np.empty(0)
    allowed = viewer.unit_filter()
    out = tuple(
        Change(
            str(r[0]),
            r[1],
            float(r[2]),
            float(r[3]),
            int(r[4]),
            int(r[5]),
            float(r[6]),
            float(r[7]),
            float(r[8]),
            float(r[9]),
            float(q),
        )
        for r, q in zip(rows, qs)
        if q < Q_CHANGE and (allowed is None or r[0] in allowed)
    )
    return ChangesResult(period, previous, len(rows), out, sc.min_group)


# ---------------------------------------------------------------- action plans


@dataclass(frozen=True)
class FollowUp:
    """A plan's unit from the baseline to the outcome period (Welch 95% CIs)."""

    baseline: str
    outcome: str
    item_before: float | None
    item_after: float | None
    item_change: float | None
    ci_low: float | None
    ci_high: float | None
    cx_before: float | None
    cx_after: float | None
    cx_change: float | None
    cx_ci_low: float | None
    cx_ci_high: float | None
    metric: str

    def as_json(self) -> dict:
        return {
            "item_change": _f(self.item_change),
            "ci_low": _f(self.ci_low),
            "ci_high": _f(self.ci_high),
            "cx_change": _f(self.cx_change),
            "cx_ci_low": _f(self.cx_ci_low),
            "cx_ci_high": _f(self.cx_ci_high),
        }


@dataclass(frozen=True)
class Action:
    action_id: int
    unit_id: str
    item: str
    title: str
    owner: str | None
    due_date: date | None
    status: str
    created_by: str | None
    created_at: datetime
    updated_at: datetime
    note: str | None
    follow_up: FollowUp | None = None

    def as_json(self) -> dict:
        return {
            "action_id": int(self.action_id),
            "unit_id": self.unit_id,
            "item": self.item,
            "title": self.title,
            "owner": self.owner,
            "due_date": None if self.due_date is None else self.due_date.isoformat(),
            "status": self.status,
            "follow_up": None if self.follow_up is None else self.follow_up.as_json(),
        }


@dataclass(frozen=True)
class PlanEffect:
    """ANCOVA ``change ~ has_plan + baseline`` for one item, clustered by unit (an estimate)."""

    item: str
    estimate: float | None
    ci_low: float | None
    ci_high: float | None
    p: float | None
    n_plan_units: int
    n_other_units: int
    n_obs: int
    reason: str | None


@dataclass(frozen=True)
class ActionsResult:
    actions: tuple[Action, ...]
    counts: pd.DataFrame = field(compare=False, repr=False)  # item, status, plans (leaders and admins)

    def as_json(self) -> dict:
        return {"actions": [a.as_json() for a in self.actions]}


_ACTION_COLS = "action_id, unit_id, item, title, owner, due_date, status, created_by, created_at, updated_at, note"


def _now() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None, microsecond=0)


def _clean_fields(
    con,
    *,
    unit_id=None,
    item=None,
    title=None,
    owner=None,
    due_date=None,
    status=None,
    note=None,
    partial: bool = False,
) -> dict:
    """Validate plan fields; every problem in one CxStatsError."""
    problems: list[str] = []
    out: dict = {}
    if item is not None or not partial:
        items = _index_items(con, metrics.scope(con))
        it = str(item or "").strip()
        if it not in items:
            problems.append(
                f"item {it!r} is not an index item of the survey; choose one of: " + "; ".join(items)
                if items
                else "no survey items are loaded yet; load an engagement file first"
            )
        out["item"] = it
    if title is not None or not partial:
        t = str(title or "").strip()
        if not 1 <= len(t) <= MAX_TITLE:
            problems.append(f"title must be 1-{MAX_TITLE} characters (it has {len(t)})")
        out["title"] = t
    if owner is not None:
        o = str(owner).strip()
        if len(o) > MAX_TITLE:
            problems.append(f"owner must be at most {MAX_TITLE} characters")
        out["owner"] = o or None
    if note is not None:
        n = str(note).strip()
        if len(n) > MAX_TEXT:
            problems.append(f"note must be at most {MAX_TEXT} characters")
        out["note"] = n or None
    if due_date is not None:
        if isinstance(due_date, datetime):
            out["due_date"] = due_date.date()
        elif isinstance(due_date, date):
            out["due_date"] = due_date
        elif str(due_date).strip() == "":
            out["due_date"] = None
        else:
            try:
                out["due_date"] = date.fromisoformat(str(due_date).strip())
            except ValueError:
                problems.append(f"due date {str(due_date)!r} is not a date; use YYYY-MM-DD, e.g. 2026-12-31")
    if status is not None or not partial:
        s = str(status or "open").strip().lower()
        if s not in STATUSES:
            problems.append(f"status {status!r} is not one of {', '.join(STATUSES)}")
        out["status"] = s
    if problems:
        raise CxStatsError(
            problems[0] if len(problems) == 1 else f"{len(problems)} problems with the plan",
            problems if len(problems) > 1 else None,
        )
    return out


def _may_write(viewer: Viewer) -> None:
    if viewer.role not in ("manager", "admin"):
        raise AccessDenied(
            f"the {viewer.role} role may not add or change action plans (managers keep their own "
            f"units' plans; admins any)"
        )


def _row_to_action(row) -> Action:
    d = row[5]
    return Action(
        int(row[0]),
        str(row[1]),
        str(row[2]),
        str(row[3]),
        row[4],
        d if d is None or isinstance(d, date) else pd.Timestamp(d).date(),
        str(row[6]),
        row[7],
        row[8],
        row[9],
        row[10],
    )


def add_action(
    con: duckdb.DuckDBPyConnection,
    *,
    viewer: Viewer,
    unit_id: str,
    item: str,
    title: str,
    owner: str | None = None,
    due_date=None,
    status: str = "open",
    note: str | None = None,
    now: datetime | None = None,
) -> Action:
    """Add a plan for one of the viewer's units (managers: own units; admins: any). One statement."""
    _may_write(viewer)
    unit = _check_unit(con, viewer, unit_id)
    if unit not in set(store.known_units(con).values()):
        raise CxStatsError(f"unknown unit {str(unit_id)!r}")
    f = _clean_fields(
        con,
        unit_id=unit,
        item=item,
        title=title,
        owner=owner if owner is not None else "",
        due_date=due_date,
        status=status,
        note=note if note is not None else "",
    )
    ts = now or _now()
    row = con.execute(
        f"""INSERT INTO actions ({_ACTION_COLS})
            SELECT coalesce(max(action_id), 0) + 1, ?, ?, ?, ?, ?, ?, ?, ?, ?, ? FROM actions
            RETURNING {_ACTION_COLS}""",
        [
            unit,
            f["item"],
            f["title"],
            f.get("owner"),
            f.get("due_date"),
            f["status"],
            viewer.name,
            ts,
            ts,
            f.get("note"),
        ],
    ).fetchall()[0]
    return _row_to_action(row)


def _get(con, action_id: int, viewer: Viewer) -> Action:
    rows = con.execute(f"SELECT {_ACTION_COLS} FROM actions WHERE action_id = ?", [int(action_id)]).fetchall()
    allowed = viewer.unit_filter()
    if not rows or (allowed is not None and rows[0][1] not in allowed):
        # the same answer whether the plan is missing or another unit's: ids reveal nothing
        raise CxStatsError(f"no action plan {action_id} among your units' plans")
    return _row_to_action(rows[0])


def update_action(
    con: duckdb.DuckDBPyConnection,
    action_id: int,
    *,
    viewer: Viewer,
    item: str | None = None,
    title: str | None = None,
    owner: str | None = None,
    due_date=None,
    status: str | None = None,
    note: str | None = None,
    now: datetime | None = None,
) -> Action:
    """Change a plan's fields (None leaves a field as it is; "" clears owner, due date or note)."""
    _may_write(viewer)
    viewer.require_employee_data()
    old = _get(con, action_id, viewer)
    f = _clean_fields(
        con, item=item, title=title, owner=owner, due_date=due_date, status=status, note=note, partial=True
    )
    new = {
        "item": old.item,
        "title": old.title,
        "owner": old.owner,
        "due_date": old.due_date,
        "status": old.status,
        "note": old.note,
    }
    new.update(f)
    row = con.execute(
        f"""UPDATE actions SET item = ?, title = ?, owner = ?, due_date = ?, status = ?, note = ?, updated_at = ?
            WHERE action_id = ? RETURNING {_ACTION_COLS}""",
        [
            new["item"],
            new["title"],
            new["owner"],
            new["due_date"],
            new["status"],
            new["note"],
            now or _now(),
            int(action_id),
        ],
    ).fetchall()[0]
    return _row_to_action(row)


def close_action(
    con: duckdb.DuckDBPyConnection,
    action_id: int,
    *,
    viewer: Viewer,
    status: str = "done",
    note: str | None = None,
    now: datetime | None = None,
) -> Action:
    """Close a plan as 'done' or 'dropped'."""
    if status not in ("done", "dropped"):
        raise CxStatsError(f"a plan is closed as 'done' or 'dropped', not {status!r}")
    return update_action(con, action_id, viewer=viewer, status=status, note=note, now=now)


def _plans(con, viewer: Viewer, unit: str | None) -> list[Action]:
    if viewer.role == "marketing":
        raise AccessDenied("marketing may not see action plans (they rest on employee survey data)")
    rows = con.execute(
        f"""SELECT {_ACTION_COLS} FROM actions
            WHERE {store.VIEWER_UNITS_SQL} AND (? OR unit_id = ?)
            ORDER BY unit_id, action_id""",
        [*store.viewer_units(viewer), unit is None, unit or ""],
    ).fetchall()
    return [_row_to_action(r) for r in rows]


def _cx_moments(row, metric: str) -> tuple[float, float, int] | None:
    """Mean and sample variance of per-answer values behind CSAT % (100/0) or NPS (+100/0/-100)."""
    if metric == "csat_pct":
        n = int(row["csat_n"])
        if n < 2:
            return None
        k = int(row["csat_top2"])
        mean = 100.0 * k / n
        return mean, (100.0**2 * k - n * mean**2) / (n - 1), n
    n = int(row["nps_n"])
    if n < 2:
        return None
    pd_ = int(row["promoters"]) + int(row["detractors"])
    mean = 100.0 * (int(row["promoters"]) - int(row["detractors"])) / n
    return mean, (100.0**2 * pd_ - n * mean**2) / (n - 1), n


@dataclass(frozen=True)
class _Company:
    """Kept groups, kept item cells and CX counts (admin view, used inside this module only)."""

    groups: pd.DataFrame
    cells: pd.DataFrame
    cx: pd.DataFrame
    period: str


def _company(con, min_group: int | None = None, engine=None) -> _Company:
    sc = metrics.scope(con, min_group)
    eg = metrics.unit_period_engagement(con, viewer=ADMIN, min_group=sc.min_group)
    cells = metrics.item_scores(con, viewer=ADMIN, min_group=sc.min_group, groups=eg).cells.copy()
    cx = metrics.add_cx_metrics(metrics.cx_counts(con, viewer=ADMIN, period=sc.period, engine=engine))
    cx["period_start"] = pd.to_datetime(cx["period_start"]).dt.date
    groups = eg.groups.copy()
    groups["period_start"] = pd.to_datetime(groups["period_start"]).dt.date
    cells["period_start"] = pd.to_datetime(cells["period_start"]).dt.date
    return _Company(groups, cells, cx, sc.period)


def _periods_around(co: _Company, unit: str, created: datetime) -> tuple[date, date] | None:
    """(baseline start, outcome start) of the unit's kept periods around a plan's creation."""
    starts = sorted(co.groups.loc[co.groups["unit_id"] == unit, "period_start"])
    day = created.date() if isinstance(created, datetime) else pd.Timestamp(created).date()
    before = [s for s in starts if periods.end(s, co.period) < day]
    after = [s for s in starts if s > day]
    if not before or not after:
        return None
    return before[-1], after[0]


def _follow_up(co: _Company, a: Action, metric: str) -> FollowUp | None:
    pair = _periods_around(co, a.unit_id, a.created_at)
    if pair is None:
        return None
    b, o = pair
    c = co.cells[(co.cells["unit_id"] == a.unit_id) & (co.cells["item"] == a.item)].set_index("period_start")
    ib = ia = ich = lo = hi = None
    if b in c.index and o in c.index:
        cb, ca = c.loc[b], c.loc[o]
        ib, ia = float(cb["mean_score"]), float(ca["mean_score"])
        ich, lo, hi, _, _ = welch_from_moments(
            ib, float(cb["var_score"]), int(cb["n"]), ia, float(ca["var_score"]), int(ca["n"])
        )
    x = co.cx[co.cx["unit_id"] == a.unit_id].set_index("period_start")
    xb = xa = xch = xlo = xhi = None
    if b in x.index and o in x.index:
        mb, ma = _cx_moments(x.loc[b], metric), _cx_moments(x.loc[o], metric)
        if mb and ma:
            xb, xa = mb[0], ma[0]
            xch, xlo, xhi, _, _ = welch_from_moments(*mb, *ma)
    return FollowUp(
        periods.label(b, co.period), periods.label(o, co.period), ib, ia, ich, lo, hi, xb, xa, xch, xlo, xhi, metric
    )


def list_actions(
    con: duckdb.DuckDBPyConnection,
    *,
    viewer: Viewer,
    unit: str | None = None,
    metric: str = "csat_pct",
    engine=None,
) -> ActionsResult:
    """Plans the viewer may see (managers: own units; leaders, admins: all; marketing: none), with follow-up.

    Follow-up: baseline = the unit's latest kept period ending before ``created_at``, outcome = the
    first kept period starting after it; item change in scale points and CX change (CSAT % or NPS,
    from per-answer values 100/0 or +100/0/-100), each with a Welch 95% CI; None until both exist.
    ``counts``: plans by item and status (empty for managers).
    """
    if metric not in FOLLOW_UP_METRICS:
        raise CxStatsError(f"follow-up metric must be one of {', '.join(FOLLOW_UP_METRICS)}")
    viewer.require_employee_data()
    if unit is not None:
        unit = _check_unit(con, viewer, unit)
    plans = _plans(con, viewer, unit)
    out: tuple[Action, ...] = ()
    if plans:
        co = _company(con, engine=engine)
        out = tuple(Action(**{**a.__dict__, "follow_up": _follow_up(co, a, metric)}) for a in plans)
    if viewer.role in ("leader", "admin") and out:
        counts = (
            pd.DataFrame({"item": [a.item for a in out], "status": [a.status for a in out]})
            .value_counts()
            .rename("plans")
            .reset_index()
            .sort_values(["item", "status"])
        )
    else:
        counts = pd.DataFrame(columns=["item", "status", "plans"])
    return ActionsResult(out, counts.reset_index(drop=True))


def ancova_clustered(change, has_plan, baseline, cluster) -> tuple[float, float, float, float, float]:
    """OLS ``change ~ 1 + has_plan + baseline``; the has_plan coefficient with unit-clustered CI.

    CRV1 variance ``c (X'X)^-1 (sum_g X_g'e_g e_g'X_g) (X'X)^-1``, ``c = G/(G-1) (N-1)/(N-K)``, t with
    G-1 dof (as statsmodels ``fit(cov_type='cluster', use_t=True)``). Returns (coef, se, ci_low,
    ci_high, p).
    """
    y = np.asarray(change, "float64")
    x = np.column_stack([np.ones(len(y)), np.asarray(has_plan, "float64"), np.asarray(baseline, "float64")])
    codes, uniq = pd.factorize(pd.Series(cluster))
    g, n, k = len(uniq), len(y), x.shape[1]
    xtx_inv = np.linalg.pinv(x.T @ x)
    beta = xtx_inv @ x.T @ y
    e = y - x @ beta
    scores = np.zeros((g, k))
    np.add.at(scores, codes, x * e[:, None])
    c = g / (g - 1) * (n - 1) / (n - k)
    v = c * xtx_inv @ (scores.T @ scores) @ xtx_inv
    se = math.sqrt(max(float(v[1, 1]), 0.0))
    tq = float(stats.t.ppf(0.975, g - 1))
    p = float(2 * stats.t.sf(abs(beta[1] / se), g - 1)) if se > 0 else math.nan
    return float(beta[1]), se, float(beta[1] - tq * se), float(beta[1] + tq * se), p


def plan_effect(con: duckdb.DuckDBPyConnection, *, viewer: Viewer, engine=None) -> tuple[PlanEffect, ...]:
    """Per item with plans: did units with a plan on it move more than units without? (an estimate)

    Rows: each plan's unit with its baseline -> outcome change on the item (has_plan 1); for the
    same period pairs, every unit without a plan on the item with kept cells in both (has_plan 0).
    ANCOVA ``change ~ has_plan + baseline`` (:func:`ancova_clustered`), baseline = the item's
    baseline mean (units with plans were picked for low scores and would rise anyway: regression to
    the mean). Null with a reason when either arm has fewer than 5 units. Leaders and admins only.
    """
    viewer.require("leader", "admin")
    plans = _plans(con, viewer, None)
    if not plans:
        return ()
    co = _company(con, engine=engine)
    cells = co.cells.set_index(["unit_id", "item", "period_start"])
    out = []
    for item in sorted({a.item for a in plans}):
        planned_units = {a.unit_id for a in plans if a.item == item}
        rows: dict[tuple[str, date, date], tuple[int, float, float]] = {}
        pairs = set()
        for a in plans:
            if a.item != item:
                continue
            pair = _periods_around(co, a.unit_id, a.created_at)
            if pair is None:
                continue
            b, o = pair
            if (a.unit_id, item, b) in cells.index and (a.unit_id, item, o) in cells.index:
                mb = float(cells.loc[(a.unit_id, item, b), "mean_score"])
                rows[(a.unit_id, b, o)] = (1, float(cells.loc[(a.unit_id, item, o), "mean_score"]) - mb, mb)
                pairs.add((b, o))
        it = co.cells[co.cells["item"] == item]
        for b, o in sorted(pairs):
            mb = it[it["period_start"] == b].set_index("unit_id")["mean_score"]
            mo = it[it["period_start"] == o].set_index("unit_id")["mean_score"]
            for u in sorted(set(mb.index) & set(mo.index) - planned_units):
                rows[(u, b, o)] = (0, float(mo[u] - mb[u]), float(mb[u]))
        keys = sorted(rows)
        arm = {k[0]: rows[k][0] for k in keys}
        n_plan = sum(1 for v in arm.values() if v == 1)
        n_other = sum(1 for v in arm.values() if v == 0)
        if n_plan < MIN_BENCHMARK_UNITS or n_other < MIN_BENCHMARK_UNITS:
            out.append(
                PlanEffect(
                    item,
                    None,
                    None,
                    None,
                    None,
                    n_plan,
                    n_other,
                    len(keys),
                    f"needs at least {MIN_BENCHMARK_UNITS} units with a followed-up plan and "
                    f"{MIN_BENCHMARK_UNITS} without ({n_plan} and {n_other} so far)",
                )
            )
            continue
        coef, _, lo, hi, p = ancova_clustered(
            [rows[k][1] for k in keys], [rows[k][0] for k in keys], [rows[k][2] for k in keys], [k[0] for k in keys]
        )
        out.append(PlanEffect(item, coef, _f(lo), _f(hi), _f(p), n_plan, n_other, len(keys), None))
    return tuple(out)
