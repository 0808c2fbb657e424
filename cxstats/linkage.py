"""Does engagement go with customer satisfaction? Told honestly (DESIGN.md, "Linkage analysis").

The headline is the *within-unit* answer: when a unit's engagement moves from one period to the
next, beyond what moved for every unit that period, does its customer satisfaction move with it?
Comparing units with each other is confounded by everything that differs between them (location,
size, clientele), so between-unit figures are reported as such, and the pooled correlation of
unit-period rows is never offered as an answer. Inference is honest about few units (CRV3 below 30,
nothing below 3), and the slope corrected for small-group noise is shown beside the headline.
No figure here shows cause, and a lag pattern does not show direction; the sentences say so.

All inputs come from :mod:`cxstats.metrics`, so anonymity suppression has already been applied:
suppressed (unit, period) groups never enter any statistic below.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import duckdb
import numpy as np
import pandas as pd
from scipy import stats
from statsmodels.regression.linear_model import OLS  # not statsmodels.api: it loads plotting too (slow start)
from statsmodels.tools.tools import add_constant

from . import CxStatsError, Viewer, metrics, store
from .stats import (  # noqa: F401  (re-exported: linkage.fisher_ci, linkage.pearson, ...)
    MIN_N,
    MIN_RELIABILITY,
    Z_80,
    Z_975,
    Corrected,
    Pearson,
    Spearman,
    TwoWayPanel,
    bh_q,
    corrected_slope,
    disattenuate,
    fisher_ci,
    holm,
    mean_reliability,
    min_detectable_r,
    num,
    pearson,
    pooled_variance,
    spearman,
    welch_diff,
)
from .stats import TwoWayFit as FixedEffects

METRICS = {"csat_pct": "CSAT %", "csat_mean": "CSAT mean", "nps": "NPS"}
# counts that define whether a (unit, period) has an answer for the metric
_METRIC_N = {"csat_pct": "csat_n", "csat_mean": "csat_n", "nps": "nps_n"}
LAGS = (-2, -1, 0, 1, 2)
FEW_UNITS = 30
COVARIATE_COLUMNS = ("region", "headcount", "unit_name")


# ---------------------------------------------------------------- statistics (pure functions)
# The formulas shared with other analyses live in cxstats.stats (one definition each); they are
# re-exported here so that ``linkage.fisher_ci`` and friends keep working.

_num = num


def fixed_effects(y, x, unit, period) -> FixedEffects:
    """Slope of ``y ~ x + C(unit) + C(period)`` (OLS) with unit-clustered inference (t, G-1 dof).

    See :class:`cxstats.stats.TwoWayPanel`: units with one period are dropped (``n_singletons``);
    CRV1 from 30 units, the jackknife CRV3 from 3 to 29, no CI or p below 3; degenerate data give
    nulls with one ``reason``.
    """
    return TwoWayPanel(y, x, unit, period).fit()


@dataclass(frozen=True)
class Slope:
    """CX points per +10 engagement-index points (OLS, 95% CI)."""

    estimate: float | None
    ci_low: float | None
    ci_high: float | None
    reason: str | None = None


def slope_per_10(x, y) -> Slope:
    """10 * b from OLS ``y = a + b x``, with its t-based 95% CI (n - 2 dof).

    Null with a reason when n < 4 or when engagement or CX is the same in every unit (a constant
    side has no slope to speak of, only floating-point noise).
    """
    x, y = np.asarray(x, dtype="float64"), np.asarray(y, dtype="float64")
    if x.size < MIN_N:
        return Slope(None, None, None)  # the between-unit warning says why
    if np.ptp(x) == 0:
        return Slope(None, None, None, "engagement is the same in every unit, so there is no slope")
    if np.ptp(y) == 0:
        return Slope(None, None, None, "customer satisfaction is the same in every unit, so there is no slope")
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
    if np.ptp(ly) == 0:
        return None, "customer satisfaction does not vary between units"
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
    f = pd.concat(
        [pd.DataFrame({"_x": np.asarray(x, "float64"), "_y": np.asarray(y, "float64")}), cov], axis=1
    ).dropna()
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
    reason: str | None = None

    @classmethod
    def none(cls, n_top: int, n_bottom: int, reason: str | None = None) -> Quartiles:
        """No comparison: the quartiles' sizes and why."""
        return cls(None, None, None, None, None, n_top, n_bottom, reason)


MIN_QUARTILE = 3


def quartiles(x, y) -> Quartiles:
    """Top quartile = units with x >= 75th percentile, bottom = x <= 25th (numpy linear quantiles).

    diff = mean CX(top) - mean CX(bottom) with a Welch 95% CI (:func:`cxstats.stats.welch_diff`).
    Null when n < 4, when either quartile holds fewer than 3 units, or when CX does not vary inside
    either quartile (a zero standard error), with the reason.
    """
    x, y = np.asarray(x, dtype="float64"), np.asarray(y, dtype="float64")
    if x.size < MIN_N:
        return Quartiles.none(0, 0)
    hi_cut, lo_cut = np.quantile(x, 0.75), np.quantile(x, 0.25)
    top, bottom = y[x >= hi_cut], y[x <= lo_cut]
    nt, nb = int(top.size), int(bottom.size)
    if hi_cut == lo_cut:
        return Quartiles.none(
            nt,
            nb,
            "engagement is too similar across units to form a top and a bottom quartile",
        )
    if nt < MIN_QUARTILE or nb < MIN_QUARTILE:
        return Quartiles.none(
            nt,
            nb,
            f"the top and bottom quartiles hold {nt} and {nb} units; each needs at least "
            f"{MIN_QUARTILE} for a comparison",
        )
    if np.ptp(top) == 0 and np.ptp(bottom) == 0:
        return Quartiles.none(
            nt,
            nb,
            "customer satisfaction does not vary inside either quartile, so the difference has no interval",
        )
    diff, lo, hi, _, _ = welch_diff(bottom, top)
    return Quartiles(float(top.mean()), float(bottom.mean()), diff, _num(lo), _num(hi), nt, nb)


# ---------------------------------------------------------------- the analysis


@dataclass(frozen=True)
class WithinUnit:
    """The headline: two-way fixed-effects slope (CX points per engagement-index point), its
    cluster-robust inference (``vcov`` 'CRV1', 'CRV3' or None), the two-way within correlation
    ``r`` (``r_p`` = ``p``, the clustered test of the same slope) and the slope corrected for
    small-group noise (``corrected``, None when it cannot be given). ``reason``: why a figure is null.
    """

    coef: float | None
    ci_low: float | None
    ci_high: float | None
    p: float | None
    n_obs: int
    n_clusters: int
    vcov: str | None
    r: float | None
    r_dof: int | None
    corrected: Corrected | None = None
    se: float | None = None
    n_singletons: int = 0
    reason: str | None = None

    @property
    def r_p(self) -> float | None:
        return self.p


@dataclass(frozen=True)
class LagResult:
    """The within-unit model with CX measured `lag` periods after engagement; ``p_holm`` is Holm's
    adjustment over the five lags (each lag uses the rows it has, so n differs)."""

    lag: int
    coef: float | None
    r: float | None
    p: float | None
    n: int
    ci_low: float | None = None
    ci_high: float | None = None
    p_holm: float | None = None


@dataclass(frozen=True)
class BetweenCorrected:
    """Between-unit r corrected for unreliable unit means (Spearman's disattenuation; the
    Harter/Gallup unit-linkage reading, secondary). ``reason`` says why it is null or capped."""

    r: float | None
    ci_low: float | None
    ci_high: float | None
    rel_x: float | None
    rel_y: float | None
    reason: str | None = None


@dataclass(frozen=True)
class LinkageResult:
    """Everything the Linkage page and ``linkage --json`` show (full precision).

    ``units``: one row per unit (unit_id, engagement, cx, respondents, cx_responses) for the scatter;
    ``panel``: one row per unit and engagement period with matched CX at t+lag (unit_id, period,
    period_index, engagement, cx, respondents, cx_responses, index_sd) for charts.
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
    pearson_corrected: BetweenCorrected
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
        pc = self.pearson_corrected
        units = [
            {
                "unit_id": str(r.unit_id),
                "engagement": _num(r.engagement),
                "cx": _num(r.cx),
                "respondents": int(r.respondents),
                "cx_responses": int(r.cx_responses),
            }
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
            "within_unit": {
                "coef": _num(w.coef),
                "ci_low": _num(w.ci_low),
                "ci_high": _num(w.ci_high),
                "p": _num(w.p),
                "n_obs": w.n_obs,
                "n_clusters": w.n_clusters,
                "vcov": w.vcov,
                "r": _num(w.r),
                "r_dof": w.r_dof,
                "r_p": _num(w.r_p),
                "corrected": None
                if w.corrected is None
                else {
                    "coef": _num(w.corrected.coef),
                    "ci_low": _num(w.corrected.ci_low),
                    "ci_high": _num(w.corrected.ci_high),
                    "reliability": _num(w.corrected.reliability),
                },
            },
            "lags": [
                {"lag": x.lag, "coef": _num(x.coef), "r": _num(x.r), "p": _num(x.p), "p_holm": _num(x.p_holm), "n": x.n}
                for x in self.lags
            ],
            "pearson": {
                "r": _num(self.pearson.r),
                "ci_low": _num(self.pearson.ci_low),
                "ci_high": _num(self.pearson.ci_high),
                "p": _num(self.pearson.p),
                "r_corrected": _num(pc.r),
                "r_corrected_ci_low": _num(pc.ci_low),
                "r_corrected_ci_high": _num(pc.ci_high),
                "rel_x": _num(pc.rel_x),
                "rel_y": _num(pc.rel_y),
            },
            "spearman": {"rho": _num(self.spearman.rho), "p": _num(self.spearman.p)},
            "min_detectable_r": _num(self.min_detectable_r),
            "slope_per_10": {
                "estimate": _num(self.slope_per_10.estimate),
                "ci_low": _num(self.slope_per_10.ci_low),
                "ci_high": _num(self.slope_per_10.ci_high),
            },
            "elasticity": None
            if el is None
            else {
                "beta": _num(el.beta),
                "ci_low": _num(el.ci_low),
                "ci_high": _num(el.ci_high),
                "p": _num(el.p),
                "effect_of_10pct": _num(el.effect_of_10pct),
            },
            "elasticity_reason": self.elasticity_reason,
            "partial": None
            if pa is None
            else {
                "r": _num(pa.r),
                "ci_low": _num(pa.ci_low),
                "ci_high": _num(pa.ci_high),
                "p": _num(pa.p),
                "covariates": list(pa.covariates),
            },
            "drivers": [
                {
                    "item": d.item,
                    "r": _num(d.r),
                    "ci_low": _num(d.ci_low),
                    "ci_high": _num(d.ci_high),
                    "p": _num(d.p),
                    "q": _num(d.q),
                }
                for d in self.drivers
            ],
            "quartiles": {
                "top": _num(q.top),
                "bottom": _num(q.bottom),
                "diff": _num(q.diff),
                "ci_low": _num(q.ci_low),
                "ci_high": _num(q.ci_high),
            },
            "warnings": list(self.warnings),
        }

    def summary_sentences(self) -> list[str]:
        """Plain-language reading: never claims cause, says when evidence is too thin."""
        return summary_sentences(self)

    def corrected_sentence(self) -> str | None:
        """The corrected within-unit figure in words, or None (see :func:`corrected_sentence`)."""
        return corrected_sentence(self)


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
    cols = ["unit_id", "period", "period_index", "engagement", "cx", "respondents", "cx_responses", "index_sd"]
    if groups.empty or cxm.empty:
        return pd.DataFrame(columns=cols)
    g = groups[["unit_id", "period", "period_index", "index", "respondents", "index_sd"]].rename(
        columns={"index": "engagement"}
    )
    c = cxm[["unit_id", "period_index", "cx", "cx_responses"]]
    m = g.merge(c.assign(period_index=c["period_index"] - lag), on=["unit_id", "period_index"], how="inner")
    return m[cols].sort_values(["unit_id", "period_index"]).reset_index(drop=True)


def _two_way(panel: pd.DataFrame, noise: pd.DataFrame | None = None) -> TwoWayPanel:
    """The panel as a :class:`TwoWayPanel`; engagement noise from the groups' spread (``index_sd``)
    or, when given, per-unit ``noise`` (unit_id, ss, dof: the respondent_id-linked variant)."""
    n = panel["respondents"].to_numpy("float64")
    if noise is None:
        sd = panel["index_sd"].to_numpy("float64")
        ss, dof = (n - 1) * sd * sd, n - 1
    else:
        first = ~panel["unit_id"].duplicated()
        per = noise.set_index("unit_id")
        ss = np.where(first, panel["unit_id"].map(per["ss"]).fillna(0).to_numpy("float64"), 0.0)
        dof = np.where(first, panel["unit_id"].map(per["dof"]).fillna(0).to_numpy("float64"), 0.0)
    return TwoWayPanel(
        panel["cx"].to_numpy("float64"),
        panel["engagement"].to_numpy("float64"),
        panel["unit_id"].astype(str).to_numpy(),
        panel["period_index"].to_numpy(),
        n_resp=n,
        noise_ss=ss,
        noise_dof=dof,
    )


def _within(
    panel: pd.DataFrame, corrected: bool = False, noise: pd.DataFrame | None = None
) -> tuple[WithinUnit, str | None]:
    """The within-unit figures of one panel, and why the corrected figure is null or has no CI."""
    tw = _two_way(panel, noise)
    fe = tw.fit()
    corr, corr_reason = None, None
    if corrected and fe.coef is not None:
        c = corrected_slope(tw, fe.coef)
        corr = c if c.coef is not None else None
        corr_reason = c.reason
    return WithinUnit(
        fe.coef,
        fe.ci_low,
        fe.ci_high,
        fe.p,
        fe.n_obs,
        fe.n_clusters,
        fe.vcov,
        fe.r,
        fe.r_dof,
        corr,
        fe.se,
        fe.n_singletons,
        fe.reason,
    ), corr_reason


def _noise_ss(c: pd.DataFrame, metric: str) -> tuple[np.ndarray, np.ndarray]:
    """Within-(unit, period) sum of squares of the CX answers and its dof, from the counts.

    csat_pct: each answer is 100 or 0, ``SS = 100^2 (k - k^2 / n)``; nps: +100 / 0 / -100,
    ``SS = 100^2 ((P + D) - (P - D)^2 / n)``; csat_mean: 1..5, ``SS = sum csat^2 - (sum csat)^2 / n``.
    """
    if metric == "csat_pct":
        n, k = c["csat_n"].to_numpy("float64"), c["csat_top2"].to_numpy("float64")
        ss = 1e4 * (k - k * k / np.maximum(n, 1))
    elif metric == "nps":
        n = c["nps_n"].to_numpy("float64")
        pp, dd = c["promoters"].to_numpy("float64"), c["detractors"].to_numpy("float64")
        ss = 1e4 * ((pp + dd) - (pp - dd) ** 2 / np.maximum(n, 1))
    else:
        n, s = c["csat_n"].to_numpy("float64"), c["csat_sum"].to_numpy("float64")
        ss = c["csat_sq"].to_numpy("float64") - s * s / np.maximum(n, 1)
    ok = n > 0
    return np.where(ok, np.maximum(ss, 0.0), 0.0), np.where(ok, n - 1, 0.0)


def _between(groups: pd.DataFrame, cx: pd.DataFrame, metric: str, lag: int) -> tuple[pd.DataFrame, dict]:
    """One row per unit: index over all kept respondents, CX over feedback in kept periods + lag.

    Also the pooled within-(unit, period) noise of both sides over the units kept (for rel_x, rel_y).
    """
    cols = ["unit_id", "engagement", "cx", "respondents", "cx_responses"]
    if groups.empty or cx.empty:
        return pd.DataFrame(columns=cols), {}
    eng = groups.groupby("unit_id", as_index=False).agg(
        respondents=("respondents", "sum"), score_sum=("score_sum", "sum")
    )
    eng["engagement"] = eng["score_sum"] / eng["respondents"]
    wanted = groups[["unit_id", "period_index"]].assign(period_index=groups["period_index"] + lag)
    c = cx.merge(wanted, on=["unit_id", "period_index"], how="inner")
    c = c[c[_METRIC_N[metric]] > 0]
    y_ss, y_dof = _noise_ss(c, metric)
    c = c.assign(_y_ss=y_ss, _y_dof=y_dof)
    cu = c.groupby("unit_id", as_index=False)[metrics.CX_COLUMNS + ["csat_sq", "_y_ss", "_y_dof"]].sum()
    cu = _with_metric(cu, metric)
    out = eng.merge(cu[["unit_id", "cx", "cx_responses", "_y_ss", "_y_dof"]], on="unit_id", how="inner")
    out["respondents"] = out["respondents"].astype("int64")
    kept = groups[groups["unit_id"].isin(set(out["unit_id"]))]
    n_g = kept["respondents"].to_numpy("float64")
    sd = kept["index_sd"].to_numpy("float64")
    noise = {
        "s2_x": pooled_variance((n_g - 1) * sd * sd, n_g - 1),
        "s2_y": pooled_variance(out["_y_ss"], out["_y_dof"]),
    }
    return out[cols].sort_values("unit_id").reset_index(drop=True), noise


def between_corrected(units: pd.DataFrame, r: Pearson, noise: dict) -> BetweenCorrected:
    """``r_corrected = r / sqrt(rel_x rel_y)`` with the Fisher bounds divided the same way.

    ``rel = 1 - mean_u(s^2 / n_u) / var(x_u)`` for each side (:func:`cxstats.stats.mean_reliability`;
    s^2 the pooled within-(unit, period) variance of respondents' 0-100 scores, or of the CX
    answers on the metric's scale; n_u the unit's respondents or CX answers). Null when either
    reliability is below 0.2; capped at +-1 with a reason.
    """
    if r.r is None or not noise:
        return BetweenCorrected(None, None, None, None, None)
    rel_x = mean_reliability(noise.get("s2_x"), units["respondents"], units["engagement"])
    rel_y = mean_reliability(noise.get("s2_y"), units["cx_responses"], units["cx"])
    if rel_x is None or rel_y is None or rel_x < MIN_RELIABILITY or rel_y < MIN_RELIABILITY:
        which = "engagement" if (rel_x is None or rel_x < MIN_RELIABILITY) else "customer satisfaction"
        rel = rel_x if which == "engagement" else rel_y
        return BetweenCorrected(
            None,
            None,
            None,
            rel_x,
            rel_y,
            f"the between-unit differences in {which} are mostly noise from few answers per unit "
            f"(reliability {_fmt(rel)}, below {MIN_RELIABILITY}), so no corrected r is given",
        )
    scale = math.sqrt(rel_x * rel_y)
    vals = [v / scale if v is not None else None for v in (r.r, r.ci_low, r.ci_high)]
    reason = None
    if any(v is not None and abs(v) > 1 for v in vals):
        reason = (
            "the corrected between-unit r reaches beyond +-1 and is capped there: the reliabilities are "
            "estimated from few answers, so read it as 'about as strong as it can be', not as an exact figure"
        )
        vals = [None if v is None else max(-1.0, min(1.0, v)) for v in vals]
    return BetweenCorrected(vals[0], vals[1], vals[2], rel_x, rel_y, reason)


def _unit_covariates(con: duckdb.DuckDBPyConnection, names: tuple[str, ...]) -> pd.DataFrame:
    bad = [c for c in names if c not in COVARIATE_COLUMNS]
    if bad:
        raise CxStatsError(
            f"unknown covariate {', '.join(bad)}; choose from {', '.join(COVARIATE_COLUMNS)} "
            f"(columns of the units table)"
        )
    frame = con.execute(f"SELECT unit_id, unit_name, region, headcount FROM ({store.current_units_sql()})").df()
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
    metric: str = "csat_pct",
    lag: int = 0,
    min_group: int | None = None,
    covariates: tuple[str, ...] | list[str] = (),
    period: str | None = None,
    *,
    viewer: Viewer,
    engine=None,
) -> LinkageResult:
    """Engagement index against a CX metric, within units (headline) and between units.

    metric: 'csat_pct', 'csat_mean' or 'nps'. lag K pairs engagement in period t with CX in t+K.
    min_group may only raise the database's anonymity threshold; period must equal the setting.
    Formulas: :class:`cxstats.stats.TwoWayPanel` (two-way fixed effects, CRV1/CRV3, within r,
    reliability and its unit bootstrap), :func:`cxstats.stats.holm`, :func:`pearson`,
    :func:`between_corrected`, :func:`spearman`, :func:`min_detectable_r`, :func:`slope_per_10`,
    :func:`elasticity`, :func:`partial_corr`, :func:`bh_q`, :func:`quartiles`.
    ``engine`` (:class:`cxstats.engine.EngineConfig`; None: from the environment) says where the
    feedback counts are formed (the DuckDB file, a lake, Spark); engagement always comes from ``con``.
    Example: on the demo database (``python -m cxstats demo``; planted +0.30 CSAT % points per
    index point inside units) the within-unit coefficient is 0.293, 95% CI [0.230, 0.357] (CRV1), over
    40 units and 304 unit-quarters, with a two-way within r of 0.485; the between-unit r of 0.72 mixes
    in the planted confound. The demo's CSAT follows the *measured* index, so its corrected figure
    (0.411, reliability 0.713) overshoots the planted 0.30 by design: it is a reading beside the
    headline, right when customers respond to true engagement (docs/simulations-linkage.md).
    """
    viewer.require_employee_data()
    if metric not in METRICS:
        raise CxStatsError(f"unknown metric {metric!r}; use one of {', '.join(METRICS)}")
    lag = int(lag)
    if abs(lag) > 8:
        raise CxStatsError(f"lag {lag} is too far; use a lag between -8 and 8 periods")
    covariates = tuple(c.strip() for c in covariates if c and c.strip())
    sc = metrics.scope(con, min_group, period)
    eg = metrics.unit_period_engagement(con, viewer=viewer, min_group=sc.min_group)
    cx = metrics.cx_counts(con, viewer=viewer, period=sc.period, engine=engine)
    items = metrics.item_scores(con, viewer=viewer, min_group=sc.min_group, groups=eg).cells

    cxm = _with_metric(cx, metric)
    noise = metrics.within_person_noise(con, viewer=viewer, min_group=sc.min_group)
    panels = {k: _panel(eg.groups, cxm, k) for k in sorted(set(LAGS) | {lag})}
    within, corr_reason = _within(panels[lag], corrected=True, noise=noise)
    fits = [within if k == lag else _within(panels[k])[0] for k in LAGS]
    p_holm = holm([w.p for w in fits])
    lag_results = [
        LagResult(k, w.coef, w.r, w.p, w.n_obs, w.ci_low, w.ci_high, ph) for k, w, ph in zip(LAGS, fits, p_holm)
    ]

    units, between_noise = _between(eg.groups, cx, metric, lag)
    n = len(units)
    x, y = units["engagement"].to_numpy("float64"), units["cx"].to_numpy("float64")
    pr = pearson(x, y)
    pc = between_corrected(units, pr, between_noise)
    slope = slope_per_10(x, y)
    quart = quartiles(x, y)
    el, el_reason = elasticity(x, y)
    partial = None
    if covariates:
        cov = _unit_covariates(con, covariates)
        merged = units.merge(cov, on="unit_id", how="left")
        partial = partial_corr(merged["engagement"], merged["cx"], merged[list(covariates)], covariates)

    warnings = []
    if n < MIN_N:
        warnings.append(
            f"only {n} units have both a shown engagement group and customer feedback; "
            f"at least {MIN_N} are needed for any between-unit figure"
        )
    elif n < FEW_UNITS:
        warnings.append(
            f"only {n} units: between-unit correlations are very uncertain below {FEW_UNITS} "
            f"(the smallest correlation this can detect reliably is {min_detectable_r(n):.2f})"
        )
    if within.reason:
        warnings.append(f"within units: {within.reason}")
    elif within.vcov == "CRV3":
        warnings.append(
            f"only {within.n_clusters} units in the within-unit model: below {FEW_UNITS} the interval and "
            f"p use the jackknife (CRV3) with {within.n_clusters - 1} degrees of freedom, and the evidence "
            f"is thin"
        )
    if within.n_singletons:
        warnings.append(
            f"{within.n_singletons} unit{'s' if within.n_singletons != 1 else ''} with a single period "
            f"left out of the within-unit model (a unit needs two periods to change)"
        )
    if corr_reason:
        warnings.append(f"corrected within-unit figure: {corr_reason}")
    for reason in (slope.reason, quart.reason, pc.reason):
        if reason and n >= MIN_N:
            warnings.append(reason)
    if eg.suppressed_groups:
        warnings.append(
            f"{eg.suppressed_groups} unit-period groups with fewer than {sc.min_group} respondents "
            f"are suppressed and left out of every figure"
        )
    if partial is not None and partial.r is None:
        warnings.append("the partial correlation needs more units than covariate columns plus 4")

    return LinkageResult(
        metric=metric,
        period=sc.period,
        lag=lag,
        min_group=sc.min_group,
        n_units=n,
        suppressed_groups=eg.suppressed_groups,
        within_unit=within,
        lags=tuple(lag_results),
        pearson=pr,
        pearson_corrected=pc,
        spearman=spearman(x, y),
        min_detectable_r=min_detectable_r(n),
        slope_per_10=slope,
        elasticity=el,
        elasticity_reason=el_reason,
        partial=partial,
        drivers=_drivers(items, units),
        quartiles=quart,
        warnings=tuple(warnings),
        units=units,
        panel=panels[lag],
    )


def _fmt(x: float | None, spec: str = ".2f") -> str:
    return "n/a" if x is None else format(x, spec)


def corrected_sentence(res: LinkageResult) -> str | None:
    """The within-unit figure corrected for small-group noise, in words (shown beside the headline)."""
    c = res.within_unit.corrected
    if c is None or c.coef is None:
        return None
    ci = (
        f" (95% CI {10 * c.ci_low:+.2f} to {10 * c.ci_high:+.2f})"
        if c.ci_low is not None and c.ci_high is not None
        else " (no interval: too few units for the bootstrap)"
    )
    return (
        f"Corrected for small-group noise: about {10 * c.coef:+.2f} points per 10 engagement points{ci}. A group's "
        f"index is an average over few people; if customers respond to true engagement rather than to the "
        f"measured index, that noise shrinks the figure above (reliability {c.reliability:.2f})."
    )


def summary_sentences(res: LinkageResult) -> list[str]:
    """The result in plain words; never claims cause and says when the evidence is too thin."""
    label = res.metric_label
    out = []
    w = res.within_unit
    lag_txt = (
        ""
        if res.lag == 0
        else (f" {abs(res.lag)} period(s) later" if res.lag > 0 else f" {abs(res.lag)} period(s) earlier")
    )
    if w.coef is None:
        if w.n_clusters < 2:
            out.append(
                "Within units: there is too little repeated data (a unit measured in two or more periods) to "
                "say whether changes in engagement go with changes in " + label + "."
            )
        else:
            out.append(f"Within units: no figure can be given: {w.reason}.")
    elif w.ci_low is None or w.ci_high is None or w.p is None:
        out.append(
            f"Within units: when a unit's engagement index was 10 points higher than its usual level, its {label}"
            f"{lag_txt} was {10 * w.coef:+.2f} points different ({w.n_clusters} units, {w.n_obs} unit-periods), "
            f"but {w.reason or 'no interval can be given'}."
        )
        out.append(
            "Without an interval this figure cannot be told apart from chance; treat it as no evidence either way."
        )
    else:
        per10 = 10 * w.coef
        out.append(
            f"Within units: when a unit's engagement index was 10 points higher than its usual level, its {label}"
            f"{lag_txt} was on average {per10:+.2f} points different (95% CI {10 * w.ci_low:+.2f} to "
            f"{10 * w.ci_high:+.2f}; {w.n_clusters} units, {w.n_obs} unit-periods)."
        )
        if w.p < 0.05:
            out.append(
                "This within-unit association is unlikely to be chance alone (p = "
                f"{w.p:.3g}), but it is an association, not proof that engagement causes it."
            )
        else:
            out.append(
                "The data cannot tell this within-unit association apart from none at all (p = "
                f"{w.p:.3g}); absence of evidence is not evidence of no link."
            )
        if w.n_clusters < FEW_UNITS:
            out.append(f"With only {w.n_clusters} units, treat this as thin evidence.")
    cs = corrected_sentence(res)
    if cs:
        out.append(cs)
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
            out.append(
                f"The 95% interval includes no relation at all (p = {pr.p:.3g}), so between units this "
                f"could well be chance."
            )
        if res.min_detectable_r is not None:
            out.append(
                f"With {res.n_units} units, only correlations of about {res.min_detectable_r:.2f} or larger "
                f"would reliably show up."
            )
    out.append(
        "Neither figure shows that engagement causes customer satisfaction, and a pattern across lags "
        "does not show which way any influence runs."
    )
    return out
