"""Planted effects on generated panels: found when present, not invented when only confounded."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from linkage_data import panel
from scipy import stats

from cxstats import linkage

BETA = 0.3


@pytest.mark.parametrize("seed, n_units, n_periods", [(1, 40, 8), (2, 60, 4), (3, 30, 12), (4, 100, 3), (5, 45, 6)])
def test_true_within_effect_found(seed, n_units, n_periods):
    d = panel(seed, n_units=n_units, n_periods=n_periods, beta=BETA)
    fe = linkage.fixed_effects(d["cx"], d["engagement"], d["unit"], d["period"])
    assert fe.ci_low <= BETA <= fe.ci_high
    assert fe.p < 0.05
    assert fe.r > 0  # the within r; its test is the slope's (r_p = p)


def test_ci_covers_planted_coefficient_in_at_least_90_percent_of_seeds():
    covered = 0
    for seed in range(100):
        d = panel(1000 + seed, n_units=40, n_periods=8, beta=BETA)
        fe = linkage.fixed_effects(d["cx"], d["engagement"], d["unit"], d["period"])
        covered += fe.ci_low <= BETA <= fe.ci_high
    assert covered >= 90


def test_confounded_null_not_reported_within_units():
    """Units differ in engagement and CX levels together; within-unit changes are unrelated."""
    within_sig = pooled_sig = 0
    for seed in range(200):
        d = panel(5000 + seed, n_units=40, n_periods=8, beta=0.0, confounded=True)
        fe = linkage.fixed_effects(d["cx"], d["engagement"], d["unit"], d["period"])
        within_sig += fe.p < 0.05
        pooled_sig += stats.pearsonr(d["engagement"], d["cx"]).pvalue < 0.05
    assert within_sig <= 18  # 5% nominal; 18 is the binomial 99% bound for 200 seeds
    assert pooled_sig >= 190  # the pooled correlation would have "found" it


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_between_units_sees_the_confound_but_it_is_not_the_headline(seed):
    d = panel(seed, n_units=40, n_periods=8, beta=0.0, confounded=True)
    per_unit = d.groupby("unit")[["engagement", "cx"]].mean()
    pr = linkage.pearson(per_unit["engagement"], per_unit["cx"])
    fe = linkage.fixed_effects(d["cx"], d["engagement"], d["unit"], d["period"])
    assert pr.p < 0.05  # between units: confounded association
    assert fe.ci_low <= 0 <= fe.ci_high or abs(fe.coef) < 0.15


def test_null_without_confound_rarely_significant_between_units():
    sig = sum(linkage.pearson(*_unit_means(seed)).p < 0.05 for seed in range(100))
    assert sig <= 12  # 5% nominal, binomial 99% bound for 100 seeds


def _unit_means(seed):
    d = panel(9000 + seed, n_units=30, n_periods=4, beta=0.0, confounded=False)
    m = d.groupby("unit")[["engagement", "cx"]].mean()
    return m["engagement"].to_numpy(), m["cx"].to_numpy()


def test_panel_generator_is_deterministic():
    a, b = panel(7), panel(7)
    assert np.array_equal(a.to_numpy(), b.to_numpy())


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 10_000), unit_shift=st.floats(-50, 50), period_shift=st.floats(-20, 20))
def test_fixed_effects_ignore_unit_and_period_levels(seed, unit_shift, period_shift):
    """Whatever differs between units or between periods (constant within them) cannot move the estimate."""
    d = panel(seed, n_units=10, n_periods=4, beta=BETA)
    shifted = d["cx"] + unit_shift * np.sin(d["unit"] + 1.0) + period_shift * np.cos(d["period"] + 1.0)
    a = linkage.fixed_effects(d["cx"], d["engagement"], d["unit"], d["period"])
    b = linkage.fixed_effects(shifted, d["engagement"], d["unit"], d["period"])
    assert b.coef == pytest.approx(a.coef, rel=1e-6, abs=1e-9)
    assert b.se == pytest.approx(a.se, rel=1e-6, abs=1e-9)
