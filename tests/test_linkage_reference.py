"""Linkage statistics against outside reference values (scipy, pingouin, statsmodels, published numbers)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pingouin as pg
import pytest
import statsmodels.formula.api as smf
from scipy import stats
from test_linkage_data import panel

from cxstats import linkage


def _xy(seed: int, n: int, rho: float):
    rng = np.random.default_rng(seed)
    x = rng.normal(50, 10, n)
    y = rho * (x - 50) / 10 + math.sqrt(1 - rho**2) * rng.normal(size=n)
    return x, 70 + 5 * y


@pytest.mark.parametrize("seed, n, rho", [(0, 10, 0.5), (1, 30, 0.2), (2, 100, -0.4), (3, 5, 0.9), (4, 500, 0.05)])
def test_pearson_spearman_match_scipy(seed, n, rho):
    x, y = _xy(seed, n, rho)
    pr, sp = linkage.pearson(x, y), linkage.spearman(x, y)
    ref = stats.pearsonr(x, y)
    ci = ref.confidence_interval(0.95)  # Fisher z, same formula as DESIGN.md's 1.959964
    assert (pr.r, pr.p) == pytest.approx((ref.statistic, ref.pvalue), rel=1e-10)
    assert (pr.ci_low, pr.ci_high) == pytest.approx((ci.low, ci.high), rel=1e-6)
    ref_s = stats.spearmanr(x, y)
    assert (sp.rho, sp.p) == pytest.approx((ref_s.statistic, ref_s.pvalue), rel=1e-10)


@pytest.mark.parametrize("n", [0, 1, 2, 3])
def test_every_figure_null_below_four(n):
    x, y = np.arange(n, dtype=float), np.arange(n, dtype=float) ** 2
    assert linkage.pearson(x, y).r is None and linkage.spearman(x, y).rho is None
    assert linkage.min_detectable_r(n) is None
    assert linkage.slope_per_10(x, y).estimate is None
    assert linkage.elasticity(x + 1, y + 1)[0] is None
    assert linkage.quartiles(x, y).diff is None


@pytest.mark.parametrize("n, expected", [(10, 0.785), (30, 0.492), (100, 0.277), (85, 0.3), (783, 0.1)])
def test_min_detectable_r(n, expected):
    # DESIGN.md / STACK_NOTES: 0.785, 0.492, 0.277; 85 and 783 units give r = .3 and .1 at 80% power
    assert linkage.min_detectable_r(n) == pytest.approx(expected, abs=0.0015)


def test_bh_q_values():
    p = [0.001, 0.008, 0.039, 0.041, 0.042, 0.06, 0.074, 0.205, 0.212, 0.216]
    q = [0.01, 0.04, 0.084, 0.084, 0.084, 0.1, 0.1057, 0.216, 0.216, 0.216]
    assert linkage.bh_q(p) == pytest.approx(q, abs=5e-5)


@pytest.mark.parametrize("covar, r, ci, p", [
    (["cv1"], 0.568, (0.25, 0.77), 0.001303),
    (["cv1", "cv2", "cv3"], 0.493, (0.14, 0.74), 0.009),
])
def test_partial_correlation_pingouin_example(covar, r, ci, p):
    df = pg.read_dataset("partial_corr")
    res = linkage.partial_corr(df["x"], df["y"], df[covar])
    assert res.r == pytest.approx(r, abs=5e-4)
    assert (res.ci_low, res.ci_high) == pytest.approx(ci, abs=5e-3)
    assert res.p == pytest.approx(p, abs=5e-4)
    assert res.k == len(covar) and res.n == 30


def test_partial_correlation_categorical_enters_as_dummies():
    rng = np.random.default_rng(5)
    n = 60
    region = rng.choice(["north", "south", "east"], n)
    shift = pd.Series(region).map({"north": 0.0, "south": 2.0, "east": -1.0}).to_numpy()
    x = shift + rng.normal(size=n)
    y = shift + 0.3 * x + rng.normal(size=n)
    cov = pd.DataFrame({"region": region})
    res = linkage.partial_corr(x, y, cov)
    dummies = pd.get_dummies(cov["region"], drop_first=True, dtype=float)
    ref = pg.partial_corr(pd.concat([pd.DataFrame({"x": x, "y": y}), dummies], axis=1), "x", "y",
                          covar=list(dummies.columns))
    assert res.k == 2
    assert res.r == pytest.approx(ref["r"].iloc[0], rel=1e-9)
    assert res.p == pytest.approx(ref["p_val"].iloc[0], rel=1e-6)


def test_rm_corr_pingouin_example():
    df = pg.read_dataset("rm_corr")
    res = linkage.rm_corr(df["pH"], df["PacO2"], df["Subject"])
    assert res.r == pytest.approx(-0.507, abs=5e-4)
    assert res.dof == 38
    assert res.p == pytest.approx(0.000847, abs=5e-7)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_rm_corr_matches_pingouin_function(seed):
    d = panel(seed, n_units=15, n_periods=5)
    res = linkage.rm_corr(d["engagement"], d["cx"], d["unit"])
    ref = pg.rm_corr(d, "engagement", "cx", "unit")
    assert (res.r, res.dof, res.p) == pytest.approx((ref["r"].iloc[0], ref["dof"].iloc[0], ref["pval"].iloc[0]),
                                                    rel=1e-6)


def _unbalanced(seed: int, n_units: int, n_periods: int) -> pd.DataFrame:
    d = panel(seed, n_units=n_units, n_periods=n_periods)
    rng = np.random.default_rng(seed + 100)
    return d[rng.random(len(d)) > 0.2].reset_index(drop=True)  # drop ~20% of unit-periods


@pytest.mark.parametrize("seed, n_units, n_periods, balanced", [
    (0, 12, 4, True), (1, 40, 8, False), (2, 8, 3, False), (3, 60, 6, False), (4, 5, 10, True)])
def test_fixed_effects_match_statsmodels_formula(seed, n_units, n_periods, balanced):
    d = panel(seed, n_units=n_units, n_periods=n_periods) if balanced else _unbalanced(seed, n_units, n_periods)
    fe = linkage.fixed_effects(d["cx"], d["engagement"], d["unit"], d["period"])
    ref = smf.ols("cx ~ engagement + C(unit) + C(period)", d).fit(
        cov_type="cluster", cov_kwds={"groups": d["unit"].to_numpy()}, use_t=True)
    lo, hi = ref.conf_int().loc["engagement"]
    assert fe.coef == pytest.approx(ref.params["engagement"], rel=1e-8)
    assert fe.se == pytest.approx(ref.bse["engagement"], rel=1e-8)
    assert (fe.ci_low, fe.ci_high) == pytest.approx((lo, hi), rel=1e-8)
    assert fe.p == pytest.approx(ref.pvalues["engagement"], rel=1e-6)
    assert (fe.n_obs, fe.n_clusters) == (len(d), d["unit"].nunique())


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_fixed_effects_match_hand_demeaned_regression(seed):
    """Balanced panel: two-way within transform y - y_i. - y_.t + y_.. then OLS through the origin."""
    d = panel(seed, n_units=20, n_periods=6)

    def within(col):
        v = d[col]
        return v - d.groupby("unit")[col].transform("mean") - d.groupby("period")[col].transform("mean") + v.mean()

    x, y = within("engagement").to_numpy(), within("cx").to_numpy()
    beta = float(x @ y / (x @ x))
    e = y - beta * x
    g, n, k = 20, len(d), 20 + 6  # clusters, observations, LSDV parameters
    scores = pd.Series(x * e).groupby(d["unit"]).sum().to_numpy()
    se = math.sqrt(g / (g - 1) * (n - 1) / (n - k) * float(scores @ scores)) / float(x @ x)
    fe = linkage.fixed_effects(d["cx"], d["engagement"], d["unit"], d["period"])
    assert fe.coef == pytest.approx(beta, rel=1e-9)
    assert fe.se == pytest.approx(se, rel=1e-9)
    assert fe.p == pytest.approx(2 * stats.t.sf(abs(beta / se), g - 1), rel=1e-6)


@pytest.mark.parametrize("units, periods", [
    ([1, 2, 3], [0, 0, 0]),  # one period per unit: nothing varies within units
    ([1, 1, 2, 2, 3], [0, 1, 0, 1, 0]),  # N = 5 = K (3 units + 2 periods): an exact fit
    ([1, 1, 1], [0, 1, 2]),  # one unit: no clusters to compare
])
def test_fixed_effects_not_estimable(units, periods):
    x = [1.0, 2.5, 3.0, 7.0, 4.0][: len(units)]
    y = [1.0, 2.0, 4.0, 3.0, 8.0][: len(units)]
    fe = linkage.fixed_effects(y, x, units, periods)
    assert (fe.coef, fe.se, fe.ci_low, fe.ci_high, fe.p) == (None,) * 5
    assert fe.n_clusters == len(set(units)) and fe.n_obs == len(units)


@pytest.mark.parametrize("seed, n", [(0, 10), (1, 40), (2, 200)])
def test_slope_per_10_matches_linregress(seed, n):
    x, y = _xy(seed, n, 0.4)
    ref = stats.linregress(x, y)
    tq = stats.t.ppf(0.975, n - 2)
    s = linkage.slope_per_10(x, y)
    assert (s.estimate, s.ci_low, s.ci_high) == pytest.approx(
        (10 * ref.slope, 10 * (ref.slope - tq * ref.stderr), 10 * (ref.slope + tq * ref.stderr)), rel=1e-8)


@pytest.mark.parametrize("seed, n", [(0, 12), (1, 50)])
def test_elasticity_matches_log_log_linregress(seed, n):
    x, y = _xy(seed, n, 0.5)
    ref = stats.linregress(np.log(x), np.log(y))
    el, reason = linkage.elasticity(x, y)
    tq = stats.t.ppf(0.975, n - 2)
    assert reason is None
    assert (el.beta, el.ci_low, el.ci_high, el.p) == pytest.approx(
        (ref.slope, ref.slope - tq * ref.stderr, ref.slope + tq * ref.stderr, ref.pvalue), rel=1e-7)
    assert el.effect_of_10pct == pytest.approx(1.1**ref.slope - 1)


@pytest.mark.parametrize("x, y, words", [
    ([10, 20, 30, 40, 50], [-5, 10, 20, 30, 40], "CX value of 0 or below"),
    ([0, 20, 30, 40, 50], [5, 10, 20, 30, 40], "engagement index of 0 or below"),
])
def test_elasticity_null_with_reason(x, y, words):
    el, reason = linkage.elasticity(np.array(x, float), np.array(y, float))
    assert el is None and words in reason


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_quartiles_match_scipy_welch(seed):
    x, y = _xy(seed, 40, 0.5)
    q = linkage.quartiles(x, y)
    top, bottom = y[x >= np.quantile(x, 0.75)], y[x <= np.quantile(x, 0.25)]
    ref = stats.ttest_ind(top, bottom, equal_var=False)
    ci = ref.confidence_interval(0.95)
    assert (q.top, q.bottom, q.diff) == pytest.approx((top.mean(), bottom.mean(), top.mean() - bottom.mean()))
    assert (q.ci_low, q.ci_high) == pytest.approx((ci.low, ci.high), rel=1e-9)
    assert (q.n_top, q.n_bottom) == (10, 10)


@pytest.mark.parametrize("r, n, k, expected", [
    (0.5, 30, 0, (0.170, 0.729)),  # tanh(atanh(.5) -+ 1.959964/sqrt(27))
    (0.568, 30, 1, (0.254, 0.774)),
    (0.0, 103, 0, (-0.1940, 0.1940)),
])
def test_fisher_ci(r, n, k, expected):
    assert linkage.fisher_ci(r, n, k) == pytest.approx(expected, abs=1e-3)
