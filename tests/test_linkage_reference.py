"""Linkage statistics against outside reference values (scipy, pingouin, statsmodels, published numbers)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pingouin as pg
import pytest
import statsmodels.formula.api as smf
from linkage_data import panel
from scipy import stats

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
    assert sp.rho == pytest.approx(ref_s.statistic, rel=1e-10)
    if n > 9:  # t approximation above 9 units; exact permutation p at or below (tested below)
        assert sp.p == pytest.approx(ref_s.pvalue, rel=1e-10)


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


@pytest.mark.parametrize(
    "covar, r, ci, p",
    [
        (["cv1"], 0.568, (0.25, 0.77), 0.001303),
        (["cv1", "cv2", "cv3"], 0.493, (0.14, 0.74), 0.009),
    ],
)
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
    ref = pg.partial_corr(
        pd.concat([pd.DataFrame({"x": x, "y": y}), dummies], axis=1), "x", "y", covar=list(dummies.columns)
    )
    assert res.k == 2
    assert res.r == pytest.approx(ref["r"].iloc[0], rel=1e-9)
    assert res.p == pytest.approx(ref["p_val"].iloc[0], rel=1e-6)


def _unbalanced(seed: int, n_units: int, n_periods: int) -> pd.DataFrame:
    d = panel(seed, n_units=n_units, n_periods=n_periods)
    rng = np.random.default_rng(seed + 100)
    return d[rng.random(len(d)) > 0.2].reset_index(drop=True)  # drop ~20% of unit-periods


@pytest.mark.parametrize(
    "seed, n_units, n_periods, balanced", [(0, 30, 4, True), (1, 40, 8, False), (3, 60, 6, False), (4, 35, 10, True)]
)
def test_fixed_effects_match_statsmodels_formula_from_30_units(seed, n_units, n_periods, balanced):
    d = panel(seed, n_units=n_units, n_periods=n_periods) if balanced else _unbalanced(seed, n_units, n_periods)
    fe = linkage.fixed_effects(d["cx"], d["engagement"], d["unit"], d["period"])
    ref = smf.ols("cx ~ engagement + C(unit) + C(period)", d).fit(
        cov_type="cluster", cov_kwds={"groups": d["unit"].to_numpy()}, use_t=True
    )
    lo, hi = ref.conf_int().loc["engagement"]
    assert fe.vcov == "CRV1"
    assert fe.coef == pytest.approx(ref.params["engagement"], rel=1e-8)
    assert fe.se == pytest.approx(ref.bse["engagement"], rel=1e-8)
    assert (fe.ci_low, fe.ci_high) == pytest.approx((lo, hi), rel=1e-8)
    assert fe.p == pytest.approx(ref.pvalues["engagement"], rel=1e-6)
    assert (fe.n_obs, fe.n_clusters) == (len(d), d["unit"].nunique())


def _loo_crv3(d: pd.DataFrame, beta: float) -> float:
    """Direct leave-one-unit-out refits (statsmodels), V = (G-1)/G sum (b_(g) - b)^2."""
    units = sorted(d["unit"].unique())
    b = np.array(
        [smf.ols("cx ~ engagement + C(unit) + C(period)", d[d["unit"] != u]).fit().params["engagement"] for u in units]
    )
    g = len(units)
    return math.sqrt((g - 1) / g * float(((b - beta) ** 2).sum()))


@pytest.mark.parametrize(
    "seed, n_units, n_periods, balanced",
    [(0, 12, 4, True), (2, 8, 3, False), (4, 5, 10, True), (5, 3, 6, False), (6, 29, 5, False)],
)
def test_crv3_below_30_units_matches_leave_one_out_and_pyfixest(seed, n_units, n_periods, balanced):
    pf = pytest.importorskip("pyfixest")
    d = panel(seed, n_units=n_units, n_periods=n_periods) if balanced else _unbalanced(seed, n_units, n_periods)
    d = d[d.groupby("unit")["period"].transform("nunique") >= 2]  # the model drops single-period units
    fe = linkage.fixed_effects(d["cx"], d["engagement"], d["unit"], d["period"])
    g = d["unit"].nunique()
    assert fe.vcov == "CRV3" and fe.n_clusters == g
    assert fe.se == pytest.approx(_loo_crv3(d, fe.coef), rel=1e-6)
    # pyfixest's CRV3 is ssc * sum (b_(g) - b)^2: without its small-sample factor, times (G-1)/G
    fit = pf.feols(
        "cx ~ engagement | unit + period", data=d, vcov={"CRV3": "unit"}, ssc=pf.ssc(k_adj=False, G_adj=False)
    )
    assert fe.coef == pytest.approx(float(fit.coef().iloc[0]), rel=1e-9)
    assert fe.se == pytest.approx(math.sqrt(float(fit._vcov[0, 0]) * (g - 1) / g), abs=1e-6 * fe.se, rel=1e-6)
    tq = stats.t.ppf(0.975, g - 1)
    assert (fe.ci_low, fe.ci_high) == pytest.approx((fe.coef - tq * fe.se, fe.coef + tq * fe.se), rel=1e-12)
    assert fe.p == pytest.approx(2 * stats.t.sf(abs(fe.coef / fe.se), g - 1), rel=1e-9)


@pytest.mark.parametrize("seed, n_units, n_periods", [(0, 12, 4), (1, 40, 8), (2, 8, 3), (3, 25, 6)])
def test_within_r_is_the_correlation_of_two_way_residuals(seed, n_units, n_periods):
    """r = corr of the residuals of engagement and CX on unit + period dummies; r_dof = N - rank - 1."""
    d = _unbalanced(seed, n_units, n_periods)
    fe = linkage.fixed_effects(d["cx"], d["engagement"], d["unit"], d["period"])
    rx = smf.ols("engagement ~ C(unit) + C(period)", d).fit().resid
    ry = smf.ols("cx ~ C(unit) + C(period)", d).fit().resid
    assert fe.r == pytest.approx(float(np.corrcoef(rx, ry)[0, 1]), rel=1e-9)
    dummies = pd.get_dummies(d[["unit", "period"]].astype(str), dtype=float).to_numpy()
    assert fe.r_dof == len(d) - np.linalg.matrix_rank(dummies) - 1


def test_within_r_ignores_company_wide_shocks_that_fool_the_one_way_correlation():
    """A common period shock moves engagement and CX together in every unit: the one-way (unit-centred)
    correlation finds it, the two-way within r does not."""
    rng = np.random.default_rng(3)
    units, periods = 30, 8
    shock = rng.normal(0, 5, periods)
    u, t = np.repeat(np.arange(units), periods), np.tile(np.arange(periods), units)
    x = rng.normal(0, 8, units)[u] + shock[t] + rng.normal(0, 3, u.size)
    y = rng.normal(0, 8, units)[u] + shock[t] + rng.normal(0, 3, u.size)
    d = pd.DataFrame({"u": u, "x": x, "y": y})
    one_way = pg.rm_corr(d, "x", "y", "u")
    fe = linkage.fixed_effects(y, x, u, t)
    assert one_way["pval"].iloc[0] < 1e-6
    assert abs(fe.r) < 0.15 and fe.p > 0.05


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_fixed_effects_match_hand_demeaned_regression(seed):
    """Balanced panel: two-way within transform y - y_i. - y_.t + y_.. then OLS through the origin."""
    d = panel(seed, n_units=40, n_periods=6)

    def within(col):
        v = d[col]
        return v - d.groupby("unit")[col].transform("mean") - d.groupby("period")[col].transform("mean") + v.mean()

    x, y = within("engagement").to_numpy(), within("cx").to_numpy()
    beta = float(x @ y / (x @ x))
    e = y - beta * x
    g, n, k = 40, len(d), 40 + 6  # clusters, observations, LSDV parameters (CRV1 from 30 clusters)
    scores = pd.Series(x * e).groupby(d["unit"]).sum().to_numpy()
    se = math.sqrt(g / (g - 1) * (n - 1) / (n - k) * float(scores @ scores)) / float(x @ x)
    fe = linkage.fixed_effects(d["cx"], d["engagement"], d["unit"], d["period"])
    assert fe.coef == pytest.approx(beta, rel=1e-9)
    assert fe.se == pytest.approx(se, rel=1e-9)
    assert fe.p == pytest.approx(2 * stats.t.sf(abs(beta / se), g - 1), rel=1e-6)


@pytest.mark.parametrize(
    "units, periods, words",
    [
        ([1, 2, 3], [0, 0, 0], "at least two units"),  # one period per unit: all singletons
        ([1, 1, 2, 2, 3], [0, 1, 0, 1, 0], "exact fit"),  # unit 3 is a singleton; then N = 4 = K (2 units + 2 periods)
        ([1, 1, 1], [0, 1, 2], "at least two units"),  # one unit
        ([1, 1, 2, 2, 3, 3], [0, 1, 0, 2, 1, 2], "exact fit"),  # N = 6 = K (3 units + 3 periods)
    ],
)
def test_fixed_effects_not_estimable(units, periods, words):
    x = [1.0, 2.5, 3.0, 7.0, 4.0, 6.0][: len(units)]
    y = [1.0, 2.0, 4.0, 3.0, 8.0, 5.0][: len(units)]
    fe = linkage.fixed_effects(y, x, units, periods)
    assert (fe.coef, fe.se, fe.ci_low, fe.ci_high, fe.p, fe.vcov) == (None,) * 6
    assert fe.n_clusters + fe.n_singletons == len(set(units))
    assert words in fe.reason


def _two_units(seed: int, periods: int = 8) -> pd.DataFrame:
    return panel(seed, n_units=2, n_periods=periods, beta=0.0)


@pytest.mark.parametrize("seed", range(5))
def test_two_units_give_a_coefficient_but_never_a_p(seed):
    d = _two_units(seed)
    fe = linkage.fixed_effects(d["cx"], d["engagement"], d["unit"], d["period"])
    assert fe.coef is not None and fe.r is not None
    assert (fe.se, fe.ci_low, fe.ci_high, fe.p, fe.vcov) == (None,) * 5
    assert "only 2 units" in fe.reason and "zero" in fe.reason


@pytest.mark.parametrize(
    "what, words",
    [("x", "engagement does not change"), ("y", "customer satisfaction does not"), ("exact", "exact step")],
)
def test_degenerate_within_data_give_nulls_with_one_reason(what, words):
    d = panel(4, n_units=12, n_periods=5)
    unit_lvl = d["unit"] * 1.7
    period_lvl = d["period"] * -0.4
    x, y = d["engagement"].to_numpy(), d["cx"].to_numpy()
    if what == "x":  # engagement = unit level + period level: nothing left after removing them
        x = (50 + unit_lvl + period_lvl).to_numpy()
    elif what == "y":
        y = (70 + unit_lvl + period_lvl).to_numpy()
    else:  # CX an exact function of engagement plus effects: zero residual
        y = (0.3 * d["engagement"] + unit_lvl + period_lvl).to_numpy()
    fe = linkage.fixed_effects(y, x, d["unit"], d["period"])
    assert (fe.coef, fe.ci_low, fe.ci_high, fe.p) == (None,) * 4
    assert words in fe.reason


def test_crv3_null_when_a_leave_one_out_fit_cannot_be_estimated():
    """Only unit 0 changes engagement within itself: leaving it out leaves nothing to estimate."""
    d = panel(5, n_units=6, n_periods=4)
    x = np.where(d["unit"] == 0, d["engagement"], 50 + d["unit"] * 2.0 + d["period"] * 0.5)
    fe = linkage.fixed_effects(d["cx"], x, d["unit"], d["period"])
    assert fe.coef is not None and (fe.ci_low, fe.ci_high, fe.p) == (None, None, None)
    assert "leaving out unit 0" in fe.reason


def test_singletons_dropped_and_counted():
    d = panel(6, n_units=35, n_periods=5)
    extra = pd.DataFrame({"unit": [100, 101], "period": [0, 3], "engagement": [40.0, 90.0], "cx": [10.0, 99.0]})
    full = pd.concat([d, extra], ignore_index=True)
    a = linkage.fixed_effects(d["cx"], d["engagement"], d["unit"], d["period"])
    b = linkage.fixed_effects(full["cx"], full["engagement"], full["unit"], full["period"])
    assert b.n_singletons == 2 and b.n_clusters == 35 and b.n_obs == len(d)
    assert (b.coef, b.se, b.p, b.r) == pytest.approx((a.coef, a.se, a.p, a.r), rel=1e-12)


@pytest.mark.parametrize("seed", range(4))
def test_holm_matches_statsmodels_multipletests(seed):
    from statsmodels.stats.multitest import multipletests

    p = np.random.default_rng(seed).uniform(0, 0.2, 5)
    assert linkage.holm(p) == pytest.approx(list(multipletests(p, method="holm")[1]), rel=1e-12)
    with_null = [p[0], None, p[1], p[2], None]
    ref = multipletests(p[:3], method="holm")[1]
    got = linkage.holm(with_null)
    assert got[1] is None and got[4] is None
    assert [got[0], got[2], got[3]] == pytest.approx(list(ref), rel=1e-12)


def _brute_force_spearman_p(x, y) -> float:
    import itertools

    rx, ry = stats.rankdata(x), stats.rankdata(y)
    obs = abs(stats.pearsonr(rx, ry).statistic)
    hits = total = 0
    for perm in itertools.permutations(range(len(ry))):
        total += 1
        hits += abs(np.corrcoef(rx, ry[list(perm)])[0, 1]) >= obs - 1e-12
    return hits / total


@pytest.mark.parametrize("seed, n, ties", [(0, 4, False), (1, 5, False), (2, 6, True), (3, 7, False), (4, 8, True)])
def test_spearman_exact_p_equals_brute_force_permutation_count(seed, n, ties):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=n)
    y = 0.6 * x + rng.normal(size=n)
    if ties:
        x[1] = x[0]
        y = np.round(y, 0)
    sp = linkage.spearman(x, y)
    assert sp.rho == pytest.approx(stats.spearmanr(x, y).statistic, rel=1e-12)
    assert sp.p == pytest.approx(_brute_force_spearman_p(x, y), abs=1e-12)


def test_spearman_exact_p_at_nine_matches_scipy_permutation_test():
    rng = np.random.default_rng(9)
    x, y = rng.normal(size=9), rng.normal(size=9)
    rx = stats.rankdata(x) - 5.0

    def rho(a, axis=-1):  # Spearman's rho of x with each resample of y, vectorised over resamples
        ra = stats.rankdata(a, axis=axis) - 5.0
        return (ra @ rx) / np.sqrt((ra * ra).sum(axis=-1) * (rx @ rx))

    ref = stats.permutation_test(
        (y,), rho, permutation_type="pairings", vectorized=True, n_resamples=np.inf, alternative="two-sided"
    )
    assert ref.null_distribution.size == math.factorial(9)
    # no ties: the null distribution is symmetric, so scipy's 2 x one-sided p equals the |rho| count
    assert linkage.spearman(x, y).p == pytest.approx(ref.pvalue, rel=1e-9)


@pytest.mark.parametrize("seed, n", [(0, 10), (1, 40), (2, 200)])
def test_slope_per_10_matches_linregress(seed, n):
    x, y = _xy(seed, n, 0.4)
    ref = stats.linregress(x, y)
    tq = stats.t.ppf(0.975, n - 2)
    s = linkage.slope_per_10(x, y)
    assert (s.estimate, s.ci_low, s.ci_high) == pytest.approx(
        (10 * ref.slope, 10 * (ref.slope - tq * ref.stderr), 10 * (ref.slope + tq * ref.stderr)), rel=1e-8
    )


@pytest.mark.parametrize("seed, n", [(0, 12), (1, 50)])
def test_elasticity_matches_log_log_linregress(seed, n):
    x, y = _xy(seed, n, 0.5)
    ref = stats.linregress(np.log(x), np.log(y))
    el, reason = linkage.elasticity(x, y)
    tq = stats.t.ppf(0.975, n - 2)
    assert reason is None
    assert (el.beta, el.ci_low, el.ci_high, el.p) == pytest.approx(
        (ref.slope, ref.slope - tq * ref.stderr, ref.slope + tq * ref.stderr, ref.pvalue), rel=1e-7
    )
    assert el.effect_of_10pct == pytest.approx(1.1**ref.slope - 1)


@pytest.mark.parametrize(
    "x, y, words",
    [
        ([10, 20, 30, 40, 50], [-5, 10, 20, 30, 40], "CX value of 0 or below"),
        ([0, 20, 30, 40, 50], [5, 10, 20, 30, 40], "engagement index of 0 or below"),
    ],
)
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


@pytest.mark.parametrize(
    "r, n, k, expected",
    [
        (0.5, 30, 0, (0.170, 0.729)),  # tanh(atanh(.5) -+ 1.959964/sqrt(27))
        (0.568, 30, 1, (0.254, 0.774)),
        (0.0, 103, 0, (-0.1940, 0.1940)),
    ],
)
def test_fisher_ci(r, n, k, expected):
    assert linkage.fisher_ci(r, n, k) == pytest.approx(expected, abs=1e-3)
