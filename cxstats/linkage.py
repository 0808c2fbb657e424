"""Does engagement go with customer satisfaction? Told honestly (DESIGN.md, "Linkage analysis").

The headline is the *within-unit* answer: when a unit's engagement moves from one period to the
next, does its customer satisfaction move with it? Comparing units with each other is confounded by
everything that differs between them (location, size, clientele), so between-unit figures are
reported as such, and the pooled correlation of unit-period rows is never offered as an answer.
No figure here shows cause, and a lag pattern does not show direction; the sentences say so.

All inputs come from :mod:`cxstats.metrics`, so anonymity suppression has already been applied:
suppressed (unit, period) groups never enter any statistic below.
"""

from __future__ import annotations

import json
import math
import sys
from dataclasses import dataclass, field

import duckdb
import numpy as np
import pandas as pd
from scipy import stats
from statsmodels.regression.linear_model import OLS  # not statsmodels.api: it loads plotting too (slow start)
from statsmodels.tools.tools import add_constant

from . import ADMIN, CxStatsError, Viewer, metrics, store

METRICS = {"csat_pct": "CSAT %", "csat_mean": "CSAT mean", "nps": "NPS"}
# counts that define whether a (unit, period) has an answer for the metric
_METRIC_N = {"csat_pct": "csat_n", "csat_mean": "csat_n", "nps": "nps_n"}
Z_975 = 1.959964  # two-sided 95% (DESIGN.md pins this value)
Z_80 = 0.841621  # 80% power
LAGS = (-2, -1, 0, 1, 2)
FEW_UNITS = 30
MIN_N = 4
COVARIATE_COLUMNS = ("region", "headcount", "unit_name")


# ---------------------------------------------------------------- statistics (pure functions)


def _num(x) -> float | None:
    """A finite float or None (JSON has no NaN)."""
    if x is None:
        return None
    x = float(x)
    return x if math.isfinite(x) else None


def fisher_ci(r: float, n: int, k: int = 0) -> tuple[float | None, float | None]:
    """95% CI of a correlation by Fisher z: ``tanh(atanh(r) +- 1.959964 / sqrt(n - 3 - k))``.

    k = number of covariates partialled out. Example: r = .5, n = 30 -> [0.170, 0.729].
    """
    if r is None or n - 3 - k < 1 or not math.isfinite(r):
        return None, None
    if abs(r) >= 1:
        return float(r), float(r)
    z, h = math.atanh(r), Z_975 / math.sqrt(n - 3 - k)
    return math.tanh(z - h), math.tanh(z + h)


def min_detectable_r(n: int) -> float | None:
    """Smallest r detectable with 80% power at two-sided alpha .05 with n units.

    ``tanh((1.959964 + 0.841621) / sqrt(n - 3))``. Example: n = 30 -> 0.492; n = 100 -> 0.277.
    """
    if n < MIN_N:
        return None
    return math.tanh((Z_975 + Z_80) / math.sqrt(n - 3))


@dataclass(frozen=True)
class Pearson:
    """Pearson r with Fisher-z 95% CI; p from ``scipy.stats.pearsonr``."""

    r: float | None
    ci_low: float | None
    ci_high: float | None
    p: float | None
    n: int


def pearson(x, y) -> Pearson:
    """Pearson r = cov(x, y) / (sd_x sd_y), CI by :func:`fisher_ci`; all null when n < 4.

    Example: x = [1, 2, 3, 4, 5], y = [2, 1, 4, 3, 5] -> r = 0.8, p = 0.104.
    """
    x, y = np.asarray(x, dtype="float64"), np.asarray(y, dtype="float64")
    n = int(x.size)
    if n < MIN_N or np.ptp(x) == 0 or np.ptp(y) == 0:
        return Pearson(None, None, None, None, n)
    res = stats.pearsonr(x, y)
    r = float(res.statistic)
    lo, hi = fisher_ci(r, n)
    return Pearson(r, lo, hi, float(res.pvalue), n)


@dataclass(frozen=True)
class Spearman:
    rho: float | None
    p: float | None


def spearman(x, y) -> Spearman:
    """Spearman rho (Pearson r of average ranks) and p from ``scipy.stats.spearmanr``; null when n < 4."""
    x, y = np.asarray(x, dtype="float64"), np.asarray(y, dtype="float64")
    if x.size < MIN_N or np.ptp(x) == 0 or np.ptp(y) == 0:
        return Spearman(None, None)
    res = stats.spearmanr(x, y)
    return Spearman(float(res.statistic), float(res.pvalue))


def _demean(a: np.ndarray, codes: np.ndarray, n_groups: int) -> np.ndarray:
    counts = np.bincount(codes, minlength=n_groups).astype("float64")
    if a.ndim == 1:
        return a - (np.bincount(codes, weights=a, minlength=n_groups) / counts)[codes]
    sums = np.zeros((n_groups, a.shape[1]))
    np.add.at(sums, codes, a)
    return a - (sums / counts[:, None])[codes]


@dataclass(frozen=True)
class RmCorr:
    """Repeated-measures correlation (Bakdash & Marusich 2017)."""

    r: float | None
    dof: int | None
    p: float | None


def rm_corr(x, y, subject) -> RmCorr:
    """Common within-subject correlation: Pearson r of subject-centred x and y.

    ``r = sum(xc*yc) / sqrt(sum(xc^2) sum(yc^2))`` with xc = x - mean_subject(x); dof = N - S - 1
    (S subjects); ``t = r sqrt(dof / (1 - r^2))``, two-sided p from t(dof).
    Example: pingouin's 'rm_corr' data (pH vs PacO2 by Subject) -> r = -0.507, dof 38, p = 0.000847.
    """
    f = pd.DataFrame({"x": x, "y": y, "s": subject}).dropna()
    codes, uniq = pd.factorize(f["s"])
    n, s = len(f), len(uniq)
    dof = n - s - 1
    if dof < 1:
        return RmCorr(None, None, None)
    xc = _demean(f["x"].to_numpy("float64"), codes, s)
    yc = _demean(f["y"].to_numpy("float64"), codes, s)
    den = math.sqrt(float((xc @ xc) * (yc @ yc)))
    if den == 0:
        return RmCorr(None, int(dof), None)
    r = float(xc @ yc) / den
    r = max(-1.0, min(1.0, r))
    t = r * math.sqrt(dof / (1 - r * r)) if abs(r) < 1 else math.copysign(math.inf, r)
    return RmCorr(r, int(dof), float(2 * stats.t.sf(abs(t), dof)))


@dataclass(frozen=True)
class FixedEffects:
    """Two-way fixed-effects slope with unit-clustered SE (t inference, G-1 dof)."""

    coef: float | None
    se: float | None
    ci_low: float | None
    ci_high: float | None
    p: float | None
    n_obs: int
    n_clusters: int


def fixed_effects(y, x, unit, period) -> FixedEffects:
    """Slope of ``y ~ x + C(unit) + C(period)`` (OLS) with standard errors clustered by unit.

    Computed by the within transformation (Frisch-Waugh-Lovell): x and y are centred within units
    and residualised on the unit-centred period dummies, so beta = x~'y~ / x~'x~. This equals the
    dummy-variable regression exactly, and so does the clustered variance
    ``c * sum_g (sum_{i in g} x~_i e_i)^2 / (x~'x~)^2`` with statsmodels' correction
    ``c = G/(G-1) * (N-1)/(N-K)``, K = G + T parameters (intercept, G-1 unit and T-1 period dummies,
    x). Inference uses t with G-1 dof (statsmodels ``use_t=True``). Null when G < 2, when x does
    not vary within units, or when N <= K (an exact fit leaves no residual to judge it by).
    """
    f = pd.DataFrame({"y": y, "x": x, "u": unit, "t": period}).dropna()
    n = len(f)
    ucodes, uniq = pd.factorize(f["u"], sort=True)
    g = len(uniq)
    empty = FixedEffects(None, None, None, None, None, n, g)
    if g < 2 or n <= g + 1:
        return empty
    tcodes, tuniq = pd.factorize(f["t"], sort=True)
    t_n = len(tuniq)
    yd = _demean(f["y"].to_numpy("float64"), ucodes, g)
    xd = _demean(f["x"].to_numpy("float64"), ucodes, g)
    if t_n > 1:
        dummies = np.zeros((n, t_n - 1))
        rows = np.nonzero(tcodes > 0)[0]
        dummies[rows, tcodes[rows] - 1] = 1.0
        dd = _demean(dummies, ucodes, g)
        xt = xd - dd @ np.linalg.lstsq(dd, xd, rcond=None)[0]
        yt = yd - dd @ np.linalg.lstsq(dd, yd, rcond=None)[0]
    else:
        xt, yt = xd, yd
    sxx = float(xt @ xt)
    if sxx <= 1e-12 * max(1.0, float(xd @ xd)):
        return empty
    beta = float(xt @ yt) / sxx
    e = yt - beta * xt
    k = g + t_n
    if n - k <= 0:
        return empty  # saturated: the fit is exact, so the slope says nothing
    scores = np.bincount(ucodes, weights=xt * e, minlength=g)
    c = g / (g - 1) * (n - 1) / (n - k)
    se = math.sqrt(c * float(scores @ scores)) / sxx
    dof = g - 1
    if se == 0:
        return FixedEffects(beta, 0.0, beta, beta, 0.0, n, g)
    tq = float(stats.t.ppf(0.975, dof))
    p = float(2 * stats.t.sf(abs(beta / se), dof))
    return FixedEffects(beta, se, beta - tq * se, beta + tq * se, p, n, g)


@dataclass(frozen=True)
class Slope:
    """CX points per +10 engagement-index points (OLS, 95% CI)."""

    estimate: float | None
    ci_low: float | None
    ci_high: float | None


def slope_per_10(x, y) -> Slope:
    """10 * b from OLS ``y = a + b x``, with its t-based 95% CI (n - 2 dof); null when n < 4."""
    x, y = np.asarray(x, dtype="float64"), np.asarray(y, dtype="float64")
    if x.size < MIN_N or np.ptp(x) == 0:
        return Slope(None, None, None)
    fit = OLS(y, add_constant(x)).fit()
    lo, hi = fit.conf_int(0.05)[1]
    return Slope(10 * float(fit.params[1]), 10 * float(lo), 10 * float(hi))


@dataclass(frozen=True)
class Elasticity:
    """Log-log slope: +1% engagement goes with about beta % CX; +10% -> (1.1^beta - 1)."""

    beta: float
    ci_low: float
    ci_high: float
    p: float
    effect_of_10pct: float


def elasticity(x, y) -> tuple[Elasticity | None, str | None]:
    """OLS of ln(y) on ln(x); ``effect_of_10pct = 1.1^beta - 1`` (a fraction: 0.02 is +2%).

    Returns (None, reason) when a value is <= 0 (no logarithm) or n < 4. The engagement index's
    zero is arbitrary, so this is a secondary reading.
    """
    x, y = np.asarray(x, dtype="float64"), np.asarray(y, dtype="float64")
    if x.size < MIN_N:
        return None, f"too few units ({x.size}) for an elasticity; at least {MIN_N} needed"
    if (x <= 0).any():
        return None, "some units have an engagement index of 0 or below, where a logarithm is undefined"
    if (y <= 0).any():
        return None, "some units have a CX value of 0 or below (e.g. a negative NPS), where a logarithm is undefined"
    lx, ly = np.log(x), np.log(y)
    if np.ptp(lx) == 0:
        return None, "engagement does not vary between units"
    fit = OLS(ly, add_constant(lx)).fit()
    b = float(fit.params[1])
    lo, hi = fit.conf_int(0.05)[1]
    return Elasticity(b, float(lo), float(hi), float(fit.pvalues[1]), 1.1**b - 1), None


@dataclass(frozen=True)
class Partial:
    """Partial correlation of x and y controlling for covariates (dummies for categories)."""

    r: float | None
    ci_low: float | None
    ci_high: float | None
    p: float | None
    covariates: tuple[str, ...]
    n: int
    k: int


def covariate_matrix(frame: pd.DataFrame) -> pd.DataFrame:
    """Numeric columns as they are, categorical ones as 0/1 dummies (first level dropped)."""
    parts = []
    for col in frame.columns:
        s = frame[col]
        if pd.api.types.is_numeric_dtype(s) and not pd.api.types.is_bool_dtype(s):
            parts.append(s.astype("float64").rename(col))
        else:
            d = pd.get_dummies(s.astype("string"), prefix=col, drop_first=True, dtype="float64")
            parts.append(d)
    return pd.concat(parts, axis=1) if parts else pd.DataFrame(index=frame.index)


def partial_corr(x, y, covariates: pd.DataFrame, names: tuple[str, ...] = ()) -> Partial:
    """r of the residuals of x and y after OLS on [1, covariates]; k = covariate columns.

    dof = n - k - 2, ``t = r sqrt(dof / (1 - r^2))``; CI by Fisher z with sqrt(n - k - 3).
    Example: pingouin's 'partial_corr' data, x ~ y | cv1 -> r = 0.568, CI [0.25, 0.77];
    | cv1, cv2, cv3 -> r = 0.493, p = 0.009.
    """
    cov = covariate_matrix(pd.DataFrame(covariates).reset_index(drop=True))
    f = pd.concat([pd.DataFrame({"_x": np.asarray(x, "float64"), "_y": np.asarray(y, "float64")}), cov],
                  axis=1).dropna()
    n, k = len(f), cov.shape[1]
    names = tuple(names) or tuple(map(str, pd.DataFrame(covariates).columns))
    dof = n - k - 2
    if n < MIN_N or dof < 2:
        return Partial(None, None, None, None, names, n, k)
    z = np.column_stack([np.ones(n), f[cov.columns].to_numpy("float64")])
    rx = f["_x"].to_numpy() - z @ np.linalg.lstsq(z, f["_x"].to_numpy(), rcond=None)[0]
    ry = f["_y"].to_numpy() - z @ np.linalg.lstsq(z, f["_y"].to_numpy(), rcond=None)[0]
    den = math.sqrt(float((rx @ rx) * (ry @ ry)))
    if den == 0:
        return Partial(None, None, None, None, names, n, k)
    r = float(rx @ ry) / den
    t = r * math.sqrt(dof / max(1 - r * r, 1e-300))
    lo, hi = fisher_ci(r, n, k)
    return Partial(r, lo, hi, float(2 * stats.t.sf(abs(t), dof)), names, n, k)


def bh_q(p) -> np.ndarray:
    """Benjamini-Hochberg q-values (``scipy.stats.false_discovery_control``).

    q_(i) = min over j >= i of p_(j) * m / j. Example: [.01, .02, .03] -> [.03, .03, .03].
    """
    p = np.asarray(p, dtype="float64")
    return stats.false_discovery_control(p) if p.size else p


@dataclass(frozen=True)
class Driver:
    item: str
    r: float | None
    ci_low: float | None
    ci_high: float | None
    p: float | None
    q: float | None
    n: int


@dataclass(frozen=True)
class Quartiles:
    """Mean CX of top- vs bottom-quartile engagement units; CI of the difference by Welch t."""

    top: float | None
    bottom: float | None
    diff: float | None
    ci_low: float | None
    ci_high: float | None
    n_top: int
    n_bottom: int


def quartiles(x, y) -> Quartiles:
    """Top quartile = units with x >= 75th percentile, bottom = x <= 25th (numpy linear quantiles).

    diff = mean CX(top) - mean CX(bottom) with a Welch 95% CI; null when n < 4 or a side has < 2.
    """
    x, y = np.asarray(x, dtype="float64"), np.asarray(y, dtype="float64")
    if x.size < MIN_N:
        return Quartiles(None, None, None, None, None, 0, 0)
    hi_cut, lo_cut = np.quantile(x, 0.75), np.quantile(x, 0.25)
    top, bottom = y[x >= hi_cut], y[x <= lo_cut]
    if top.size < 2 or bottom.size < 2 or hi_cut == lo_cut:
        return Quartiles(None, None, None, None, None, int(top.size), int(bottom.size))
    diff, lo, hi, _, _ = metrics.welch_diff(bottom, top)
    return Quartiles(float(top.mean()), float(bottom.mean()), diff, _num(lo), _num(hi), int(top.size),
                     int(bottom.size))


# ---------------------------------------------------------------- the analysis


@dataclass(frozen=True)
class WithinUnit:
    coef: float | None
    ci_low: float | None
    ci_high: float | None
    p: float | None
    n_obs: int
    n_clusters: int
    rm_r: float | None
    rm_dof: int | None
    rm_p: float | None
    se: float | None = None


@dataclass(frozen=True)
class LagResult:
    """The within-unit model with CX measured `lag` periods after engagement (r is rm_r)."""

    lag: int
    coef: float | None
    r: float | None
    p: float | None
    n: int
    ci_low: float | None = None
    ci_high: float | None = None


@dataclass(frozen=True)
class LinkageResult:
    """Everything the Linkage page and ``linkage --json`` show (full precision).

    ``units``: one row per unit (unit_id, engagement, cx, respondents, cx_responses) for the scatter;
    ``panel``: one row per unit and engagement period with matched CX at t+lag (unit_id, period,
    period_index, engagement, cx, respondents, cx_responses) for charts.
    """

    metric: str
    period: str
    lag: int
    min_group: int
    n_units: int
    suppressed_groups: int
    within_unit: WithinUnit
    lags: tuple[LagResult, ...]
    pearson: Pearson
    spearman: Spearman
    min_detectable_r: float | None
    slope_per_10: Slope
    elasticity: Elasticity | None
    elasticity_reason: str | None
    partial: Partial | None
    drivers: tuple[Driver, ...]
    quartiles: Quartiles
    warnings: tuple[str, ...]
    units: pd.DataFrame = field(compare=False, repr=False)
    panel: pd.DataFrame = field(compare=False, repr=False)

    @property
    def metric_label(self) -> str:
        return METRICS[self.metric]

    def as_json(self) -> dict:
        """Exactly the fields of DESIGN.md, "Command line" (linkage)."""
        w = self.within_unit
        units = [
            {"unit_id": str(r.unit_id), "engagement": _num(r.engagement), "cx": _num(r.cx),
             "respondents": int(r.respondents), "cx_responses": int(r.cx_responses)}
            for r in self.units.itertuples(index=False)
        ]
        el = self.elasticity
        pa = self.partial
        q = self.quartiles
        return {
            "metric": self.metric,
            "period": self.period,
            "lag": self.lag,
            "min_group": self.min_group,
            "n_units": self.n_units,
            "suppressed_groups": self.suppressed_groups,
            "units": units,
            "within_unit": {"coef": _num(w.coef), "ci_low": _num(w.ci_low), "ci_high": _num(w.ci_high),
                            "p": _num(w.p), "n_obs": w.n_obs, "n_clusters": w.n_clusters, "rm_r": _num(w.rm_r),
                            "rm_dof": w.rm_dof, "rm_p": _num(w.rm_p)},
            "lags": [{"lag": x.lag, "coef": _num(x.coef), "r": _num(x.r), "p": _num(x.p), "n": x.n}
                     for x in self.lags],
            "pearson": {"r": _num(self.pearson.r), "ci_low": _num(self.pearson.ci_low),
                        "ci_high": _num(self.pearson.ci_high), "p": _num(self.pearson.p)},
            "spearman": {"rho": _num(self.spearman.rho), "p": _num(self.spearman.p)},
            "min_detectable_r": _num(self.min_detectable_r),
            "slope_per_10": {"estimate": _num(self.slope_per_10.estimate), "ci_low": _num(self.slope_per_10.ci_low),
                             "ci_high": _num(self.slope_per_10.ci_high)},
            "elasticity": None if el is None else {
                "beta": _num(el.beta), "ci_low": _num(el.ci_low), "ci_high": _num(el.ci_high), "p": _num(el.p),
                "effect_of_10pct": _num(el.effect_of_10pct)},
            "elasticity_reason": self.elasticity_reason,
            "partial": None if pa is None else {
                "r": _num(pa.r), "ci_low": _num(pa.ci_low), "ci_high": _num(pa.ci_high), "p": _num(pa.p),
                "covariates": list(pa.covariates)},
            "drivers": [{"item": d.item, "r": _num(d.r), "ci_low": _num(d.ci_low), "ci_high": _num(d.ci_high),
                         "p": _num(d.p), "q": _num(d.q)} for d in self.drivers],
            "quartiles": {"top": _num(q.top), "bottom": _num(q.bottom), "diff": _num(q.diff),
                          "ci_low": _num(q.ci_low), "ci_high": _num(q.ci_high)},
            "warnings": list(self.warnings),
        }

    def summary_sentences(self) -> list[str]:
        """Plain-language reading: never claims cause, says when evidence is too thin."""
        return summary_sentences(self)


def _with_metric(cx: pd.DataFrame, metric: str) -> pd.DataFrame:
    """Feedback counts per (unit, period) with the chosen metric as `cx` (rows answering it only)."""
    c = cx[cx[_METRIC_N[metric]] > 0]
    return c.assign(cx=metrics.add_cx_metrics(c)[metric], cx_responses=c[_METRIC_N[metric]].astype("int64"))


def build_panel(groups: pd.DataFrame, cx: pd.DataFrame, metric: str, lag: int) -> pd.DataFrame:
    """Kept engagement groups at t joined with the unit's feedback at t + lag (metric answered).

    ``cx``: :func:`cxstats.metrics.cx_counts` output.
    """
    return _panel(groups, _with_metric(cx, metric), lag)


def _panel(groups: pd.DataFrame, cxm: pd.DataFrame, lag: int) -> pd.DataFrame:
    cols = ["unit_id", "period", "period_index", "engagement", "cx", "respondents", "cx_responses"]
    if groups.empty or cxm.empty:
        return pd.DataFrame(columns=cols)
    g = groups[["unit_id", "period", "period_index", "index", "respondents"]].rename(columns={"index": "engagement"})
    c = cxm[["unit_id", "period_index", "cx", "cx_responses"]]
    m = g.merge(c.assign(period_index=c["period_index"] - lag), on=["unit_id", "period_index"], how="inner")
    return m[cols].sort_values(["unit_id", "period_index"]).reset_index(drop=True)


def _within(panel: pd.DataFrame) -> WithinUnit:
    fe = fixed_effects(panel["cx"], panel["engagement"], panel["unit_id"], panel["period_index"])
    rm = rm_corr(panel["engagement"], panel["cx"], panel["unit_id"])
    return WithinUnit(fe.coef, fe.ci_low, fe.ci_high, fe.p, fe.n_obs, fe.n_clusters, rm.r, rm.dof, rm.p, fe.se)


def _between(groups: pd.DataFrame, cx: pd.DataFrame, metric: str, lag: int) -> pd.DataFrame:
    """One row per unit: index over all kept respondents, CX over feedback in kept periods + lag."""
    cols = ["unit_id", "engagement", "cx", "respondents", "cx_responses"]
    if groups.empty or cx.empty:
        return pd.DataFrame(columns=cols)
    eng = groups.groupby("unit_id", as_index=False).agg(respondents=("respondents", "sum"),
                                                        score_sum=("score_sum", "sum"))
    eng["engagement"] = eng["score_sum"] / eng["respondents"]
    wanted = groups[["unit_id", "period_index"]].assign(period_index=groups["period_index"] + lag)
    c = cx.merge(wanted, on=["unit_id", "period_index"], how="inner")
    c = c.groupby("unit_id", as_index=False)[metrics.CX_COLUMNS].sum()
    c = _with_metric(c, metric)
    out = eng.merge(c[["unit_id", "cx", "cx_responses"]], on="unit_id", how="inner")
    out["respondents"] = out["respondents"].astype("int64")
    return out[cols].sort_values("unit_id").reset_index(drop=True)


def _unit_covariates(con: duckdb.DuckDBPyConnection, names: tuple[str, ...]) -> pd.DataFrame:
    bad = [c for c in names if c not in COVARIATE_COLUMNS]
    if bad:
        raise CxStatsError(f"unknown covariate {', '.join(bad)}; choose from {', '.join(COVARIATE_COLUMNS)} "
                           f"(columns of the units table)")
    frame = con.execute(
        "SELECT unit_id, unit_name, region, headcount FROM units "
        "QUALIFY row_number() OVER (PARTITION BY unit_id ORDER BY batch_id DESC, row_no DESC) = 1"
    ).df()
    return frame[["unit_id", *names]]


def _drivers(items: pd.DataFrame, units: pd.DataFrame) -> tuple[Driver, ...]:
    if items.empty or units.empty:
        return ()
    w = items.assign(wsum=items["mean_0_100"] * items["n"])
    per = w.groupby(["unit_id", "item"], as_index=False)[["wsum", "n"]].sum()
    per["item_mean"] = per["wsum"] / per["n"]
    per = per.merge(units[["unit_id", "cx"]], on="unit_id", how="inner")
    found = []
    for item, f in per.groupby("item", sort=True):
        pr = pearson(f["item_mean"], f["cx"])
        found.append((str(item), pr.r, pr.ci_low, pr.ci_high, pr.p, len(f)))
    ps = [x[4] for x in found if x[4] is not None]
    qs = iter(bh_q(ps)) if ps else iter(())
    out = [Driver(it, r, lo, hi, p, (float(next(qs)) if p is not None else None), n) for it, r, lo, hi, p, n in found]
    return tuple(sorted(out, key=lambda d: (-(abs(d.r) if d.r is not None else -1), d.item)))


def analyse(
    con: duckdb.DuckDBPyConnection,
    viewer: Viewer = ADMIN,
    metric: str = "csat_pct",
    lag: int = 0,
    min_group: int | None = None,
    covariates: tuple[str, ...] | list[str] = (),
    period: str | None = None,
) -> LinkageResult:
    """Engagement index against a CX metric, within units (headline) and between units.

    metric: 'csat_pct', 'csat_mean' or 'nps'. lag K pairs engagement in period t with CX in t+K.
    min_group may only raise the database's anonymity threshold; period must equal the setting.
    Formulas: :func:`fixed_effects`, :func:`rm_corr`, :func:`pearson`, :func:`spearman`,
    :func:`min_detectable_r`, :func:`slope_per_10`, :func:`elasticity`, :func:`partial_corr`,
    :func:`bh_q`, :func:`quartiles`.
    Example: on the demo database (``python -m cxstats demo``; planted +0.30 CSAT % points per
    index point inside units) the within-unit coefficient is 0.293, 95% CI [0.230, 0.357], over 40
    units and 304 unit-quarters, while the between-unit r of 0.72 mixes in the planted confound.
    """
    viewer.require_employee_data()
    if metric not in METRICS:
        raise CxStatsError(f"unknown metric {metric!r}; use one of {', '.join(METRICS)}")
    lag = int(lag)
    if abs(lag) > 8:
        raise CxStatsError(f"lag {lag} is too far; use a lag between -8 and 8 periods")
    covariates = tuple(c.strip() for c in covariates if c and c.strip())
    sc = metrics.scope(con, min_group, period)
    eg = metrics.unit_period_engagement(con, viewer, sc.min_group)
    cx = metrics.cx_counts(con, viewer, sc.period)
    items = metrics.item_scores(con, viewer, sc.min_group, groups=eg).cells

    cxm = _with_metric(cx, metric)
    panels = {k: _panel(eg.groups, cxm, k) for k in sorted(set(LAGS) | {lag})}
    within = _within(panels[lag])
    lag_results = []
    for k in LAGS:
        w = within if k == lag else _within(panels[k])
        lag_results.append(LagResult(k, w.coef, w.rm_r, w.p, w.n_obs, w.ci_low, w.ci_high))

    units = _between(eg.groups, cx, metric, lag)
    n = len(units)
    x, y = units["engagement"].to_numpy("float64"), units["cx"].to_numpy("float64")
    el, el_reason = elasticity(x, y)
    partial = None
    if covariates:
        cov = _unit_covariates(con, covariates)
        merged = units.merge(cov, on="unit_id", how="left")
        partial = partial_corr(merged["engagement"], merged["cx"], merged[list(covariates)], covariates)

    warnings = []
    if n < MIN_N:
        warnings.append(f"only {n} units have both a shown engagement group and customer feedback; "
                        f"at least {MIN_N} are needed for any between-unit figure")
    elif n < FEW_UNITS:
        warnings.append(f"only {n} units: between-unit correlations are very uncertain below {FEW_UNITS} "
                        f"(the smallest correlation this can detect reliably is {min_detectable_r(n):.2f})")
    if 0 < within.n_clusters < FEW_UNITS:
        warnings.append(f"only {within.n_clusters} units in the within-unit model: clustered standard errors "
                        f"are unreliable with fewer than {FEW_UNITS} clusters")
    if within.coef is None:
        warnings.append("the within-unit model could not be estimated: it needs at least two units with "
                        "engagement measured in two or more periods, with feedback in the matching periods")
    if eg.suppressed_groups:
        warnings.append(f"{eg.suppressed_groups} unit-period groups with fewer than {sc.min_group} respondents "
                        f"are suppressed and left out of every figure")
    if partial is not None and partial.r is None:
        warnings.append("the partial correlation needs more units than covariate columns plus 4")

    return LinkageResult(
        metric=metric, period=sc.period, lag=lag, min_group=sc.min_group, n_units=n,
        suppressed_groups=eg.suppressed_groups, within_unit=within, lags=tuple(lag_results),
        pearson=pearson(x, y), spearman=spearman(x, y), min_detectable_r=min_detectable_r(n),
        slope_per_10=slope_per_10(x, y), elasticity=el, elasticity_reason=el_reason, partial=partial,
        drivers=_drivers(items, units), quartiles=quartiles(x, y), warnings=tuple(warnings),
        units=units, panel=panels[lag],
    )


def _fmt(x: float | None, spec: str = ".2f") -> str:
    return "n/a" if x is None else format(x, spec)


def summary_sentences(res: LinkageResult) -> list[str]:
    """The result in plain words; never claims cause and says when the evidence is too thin."""
    label = res.metric_label
    out = []
    w = res.within_unit
    lag_txt = "" if res.lag == 0 else (f" {abs(res.lag)} period(s) later" if res.lag > 0
                                      else f" {abs(res.lag)} period(s) earlier")
    if w.coef is None or w.ci_low is None or w.ci_high is None:
        out.append("Within units: there is too little repeated data (a unit measured in two or more periods) to "
                   "say whether changes in engagement go with changes in " + label + ".")
    else:
        per10 = 10 * w.coef
        out.append(
            f"Within units: when a unit's engagement index was 10 points higher than its usual level, its {label}"
            f"{lag_txt} was on average {per10:+.2f} points different (95% CI {10 * w.ci_low:+.2f} to "
            f"{10 * w.ci_high:+.2f}; {w.n_clusters} units, {w.n_obs} unit-periods)."
        )
        if w.p is not None and w.p < 0.05:
            out.append("This within-unit association is unlikely to be chance alone (p = "
                       f"{w.p:.3g}), but it is an association, not proof that engagement causes it.")
        else:
            out.append("The data cannot tell this within-unit association apart from none at all (p = "
                       f"{_fmt(w.p, '.3g')}); absence of evidence is not evidence of no link.")
        if w.n_clusters < FEW_UNITS:
            out.append(f"With only {w.n_clusters} units, treat this as thin evidence.")
    pr = res.pearson
    if pr.r is None:
        out.append(f"Between units: with {res.n_units} units there are too few to compare units with each other.")
    else:
        direction = "higher" if pr.r > 0 else "lower"
        out.append(
            f"Between units: units with higher engagement tended to have {direction} {label} (r = {pr.r:.2f}, "
            f"95% CI {pr.ci_low:.2f} to {pr.ci_high:.2f}, {res.n_units} units). Units differ in many other ways "
            f"(location, size, clientele), so this comparison is confounded."
        )
        if pr.p is not None and pr.p >= 0.05:
            out.append(f"The 95% interval includes no relation at all (p = {pr.p:.3g}), so between units this "
                       f"could well be chance.")
        if res.min_detectable_r is not None:
            out.append(f"With {res.n_units} units, only correlations of about {res.min_detectable_r:.2f} or larger "
                       f"would reliably show up.")
    out.append("Neither figure shows that engagement causes customer satisfaction, and a pattern across lags "
               "does not show which way any influence runs.")
    return out


# ---------------------------------------------------------------- command line


def _table(res: LinkageResult) -> str:
    w = res.within_unit
    rows = [
        ("metric", f"{res.metric} ({res.metric_label}), period {res.period}, lag {res.lag}, "
                   f"min_group {res.min_group}"),
        ("units", f"{res.n_units} (suppressed unit-period groups: {res.suppressed_groups})"),
        ("within-unit coef", f"{_fmt(w.coef, '.4f')} per index point  95% CI [{_fmt(w.ci_low, '.4f')}, "
                             f"{_fmt(w.ci_high, '.4f')}]  p {_fmt(w.p, '.3g')}  n {w.n_obs}, {w.n_clusters} units"),
        ("repeated-measures r", f"{_fmt(w.rm_r, '.3f')}  dof {w.rm_dof if w.rm_dof is not None else 'n/a'}  "
                                f"p {_fmt(w.rm_p, '.3g')}"),
        ("between-unit r", f"{_fmt(res.pearson.r, '.3f')}  95% CI [{_fmt(res.pearson.ci_low, '.3f')}, "
                           f"{_fmt(res.pearson.ci_high, '.3f')}]  p {_fmt(res.pearson.p, '.3g')}"),
        ("Spearman rho", f"{_fmt(res.spearman.rho, '.3f')}  p {_fmt(res.spearman.p, '.3g')}"),
        ("min detectable r", _fmt(res.min_detectable_r, ".3f")),
        ("slope per +10", f"{_fmt(res.slope_per_10.estimate, '.3f')}  95% CI [{_fmt(res.slope_per_10.ci_low, '.3f')}, "
                          f"{_fmt(res.slope_per_10.ci_high, '.3f')}]"),
        ("elasticity", res.elasticity_reason if res.elasticity is None else
         f"{res.elasticity.beta:.3f} (+10% engagement -> {100 * res.elasticity.effect_of_10pct:+.2f}% CX)"),
        ("quartiles", f"top {_fmt(res.quartiles.top)}  bottom {_fmt(res.quartiles.bottom)}  diff "
                      f"{_fmt(res.quartiles.diff)} [{_fmt(res.quartiles.ci_low)}, {_fmt(res.quartiles.ci_high)}]"),
    ]
    if res.partial is not None:
        rows.append((f"partial r | {', '.join(res.partial.covariates)}",
                     f"{_fmt(res.partial.r, '.3f')}  95% CI [{_fmt(res.partial.ci_low, '.3f')}, "
                     f"{_fmt(res.partial.ci_high, '.3f')}]  p {_fmt(res.partial.p, '.3g')}"))
    width = max(len(k) for k, _ in rows)
    lines = [f"{k:<{width}}  {v}" for k, v in rows]
    lines.append("")
    lines.append(f"{'lag':>4}  {'coef':>10}  {'r':>7}  {'p':>8}  {'n':>6}")
    for x in res.lags:
        lines.append(f"{x.lag:>4}  {_fmt(x.coef, '.4f'):>10}  {_fmt(x.r, '.3f'):>7}  {_fmt(x.p, '.3g'):>8}  {x.n:>6}")
    if res.drivers:
        lines.append("")
        lines.append(f"{'driver item':<24}  {'r':>7}  {'95% CI':>17}  {'q':>7}")
        for d in res.drivers:
            lines.append(f"{d.item[:24]:<24}  {_fmt(d.r, '.3f'):>7}  [{_fmt(d.ci_low, '.2f'):>6}, "
                         f"{_fmt(d.ci_high, '.2f'):>6}]  {_fmt(d.q, '.3g'):>7}")
        lines.append("(items overlap: their correlations are not separate effects)")
    return "\n".join(lines)


def cli_linkage(args) -> int:
    """``python -m cxstats linkage``: JSON with --json, else a table and plain sentences."""
    covs = tuple(c for c in (args.covariates or "").split(",") if c.strip())
    with store.connect(args.db) as con:
        con.execute("SET enable_progress_bar = false")  # stdout carries JSON only
        res = analyse(con, ADMIN, metric=args.metric, lag=args.lag, min_group=args.min_group,
                      covariates=covs, period=args.period)
    if args.json:
        print(json.dumps(res.as_json()))
        return 0
    print(_table(res))
    print()
    for s in res.summary_sentences():
        print(s)
    for wmsg in res.warnings:
        print(f"warning: {wmsg}", file=sys.stderr)
    return 0
