"""Simulations with fixed seeds for the linkage statistics (DESIGN.md, acceptance notes).

Fast tier: 20 seeds each; ``@pytest.mark.slow``: the 100-seed versions with the acceptance thresholds.
docs/simulations-linkage.md reports the same simulations (scripts/simulate_linkage.py).
"""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
from linkage_data import build, survey
from linkage_sims import PLANTED, corrected_of, noisy_panel, one_way_rm_p, shock_panel

from cxstats import ADMIN, cli, linkage, store

SEEDS_FAST = range(20)
SEEDS_SLOW = range(100)


def _shock_rejections(seeds, **kw) -> tuple[int, int]:
    within = one_way = 0
    for seed in seeds:
        d = shock_panel(10_000 + seed, **kw)
        fe = linkage.fixed_effects(d["cx"], d["engagement"], d["unit"], d["period"])
        within += fe.p < 0.05
        one_way += one_way_rm_p(d) < 0.05
    return within, one_way


@pytest.mark.parametrize("kw", [{}, {"ar": 0.7}, {"units": 12}], ids=["iid", "ar07", "12-units-crv3"])
def test_period_shocks_do_not_fake_a_within_unit_link(kw):
    within, one_way = _shock_rejections(SEEDS_FAST, **kw)
    assert within <= 4  # 5% nominal; P(X > 4 | 20, .05) = 0.016
    assert one_way >= 15  # the one-way repeated-measures r that this replaces is fooled


@pytest.mark.slow
@pytest.mark.parametrize("kw", [{}, {"ar": 0.7}, {"units": 12}], ids=["iid", "ar07", "12-units-crv3"])
def test_period_shocks_100_seeds(kw):
    within, _ = _shock_rejections(SEEDS_SLOW, **kw)
    assert within <= 10


def _two_unit_ps(seeds):
    for seed in seeds:
        d = shock_panel(20_000 + seed, units=2)
        fe = linkage.fixed_effects(d["cx"], d["engagement"], d["unit"], d["period"])
        yield fe.p, fe.ci_low


def test_two_units_never_give_a_p():
    assert all(p is None and lo is None for p, lo in _two_unit_ps(SEEDS_SLOW))


def _all_numbers(obj, key=""):
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from _all_numbers(v, k)
    elif isinstance(obj, list):
        for v in obj:
            yield from _all_numbers(v, key)
    elif isinstance(obj, (int, float)) and not isinstance(obj, bool):
        yield key, obj


def _no_small_p(d: dict, text: str) -> None:
    assert not [(k, v) for k, v in _all_numbers(d) if k in ("p", "p_holm", "r_p", "q") and v < 0.05]
    assert "unlikely to be chance" not in text
    shown = [float(m) for m in re.findall(r"\bp(?:_holm)?\s*=?\s*([0-9][0-9.e+-]*)", text)]
    assert all(v >= 0.05 for v in shown), shown


@pytest.mark.parametrize("seed", [2, 3, 4, 5])
def test_two_units_no_p_below_005_in_json_table_or_sentences(tmp_path, seed):
    """In process (the CLI prints exactly these: as_json, the table, the sentences, the warnings)."""
    db = tmp_path / "two.duckdb"
    with store.connect(db) as con:
        build(con, survey(seed, n_units=2, n_periods=6, coef=3.0))
        res = linkage.analyse(con, viewer=ADMIN)
    text = "\n".join([cli.linkage_table(res), *res.summary_sentences(), *res.warnings])
    _no_small_p(res.as_json(), text)
    assert res.within_unit.coef is not None and res.within_unit.p is None


@pytest.mark.parametrize("seed", [1])
def test_two_units_print_no_p_below_005_in_cli_text_or_json(tmp_path, cli_inprocess, seed):
    cli = cli_inprocess  # the command line in this process: the same parsing and printing
    db = tmp_path / "two.duckdb"
    with store.connect(db) as con:
        build(con, survey(seed, n_units=2, n_periods=6, coef=3.0))
    out = cli("linkage", "--json", db=db)
    assert out.returncode == 0, out.stderr
    d = json.loads(out.stdout)
    assert d["within_unit"]["coef"] is not None and d["within_unit"]["n_clusters"] == 2
    assert d["within_unit"]["p"] is None and d["within_unit"]["vcov"] is None
    text = cli("linkage", db=db)
    assert text.returncode == 0, text.stderr
    _no_small_p(d, text.stdout + text.stderr)
    warnings = [w for w in d["warnings"] if w.startswith("within units:")]
    assert len(warnings) == 1 and "only 2 units" in warnings[0]


def _corrected(seeds, b=999):
    unc, cor, covered, covered_unc = [], [], 0, 0
    for seed in seeds:
        fit, c = corrected_of(noisy_panel(30_000 + seed), b=b)
        unc.append(fit.coef)
        cor.append(c.coef)
        covered += c.ci_low <= PLANTED <= c.ci_high
        covered_unc += fit.ci_low <= PLANTED <= fit.ci_high
    return np.mean(unc), np.mean(cor), covered, covered_unc


def test_corrected_slope_undoes_small_group_attenuation():
    unc, cor, covered, covered_unc = _corrected(SEEDS_FAST)
    assert unc < 0.25  # visibly attenuated (about 0.21)
    assert abs(cor - PLANTED) <= 0.04
    assert covered >= 13  # 65% of 20
    assert covered_unc <= 8


@pytest.mark.slow
def test_corrected_slope_100_seeds():
    unc, cor, covered, _ = _corrected(SEEDS_SLOW)
    assert unc < 0.25
    assert abs(cor - PLANTED) <= 0.03
    assert covered >= 65


def test_corrected_null_rules():
    d = noisy_panel(5, units=8)
    fit, c = corrected_of(d)
    assert c.coef is not None and (c.ci_low, c.ci_high) == (None, None) and "fewer than 10 units" in c.reason
    d = noisy_panel(6, resp_sd=80.0, lo=5, hi=6)  # the groups' noise swamps the within-unit change
    fit, c = corrected_of(d)
    assert c.coef is None and c.reliability < 0.2 and "below 0.2" in c.reason


def test_reliability_matches_a_direct_dummy_regression():
    """m_gg from the hat matrix of the unit + period dummy design, computed directly."""
    d = noisy_panel(7, units=15, periods=5)
    d = d[np.random.default_rng(1).random(len(d)) > 0.15].reset_index(drop=True)
    d = d[d.groupby("unit")["period"].transform("nunique") >= 2].reset_index(drop=True)
    import pandas as pd

    z = pd.get_dummies(d[["unit", "period"]].astype(str), dtype=float).to_numpy()
    h = z @ np.linalg.pinv(z.T @ z) @ z.T
    m = 1 - np.diag(h)
    xt = d["engagement"].to_numpy() - h @ d["engagement"].to_numpy()
    n = d["respondents"].to_numpy("float64")
    s2 = float(((n - 1) * d["index_sd"] ** 2).sum() / (n - 1).sum())
    expected = 1 - float((m * s2 / n).sum()) / float(xt @ xt)
    from cxstats import stats

    tw = stats.TwoWayPanel(
        d["cx"],
        d["engagement"],
        d["unit"],
        d["period"],
        n_resp=n,
        noise_ss=(n - 1) * d["index_sd"] ** 2,
        noise_dof=n - 1,
    )
    assert tw.reliability() == pytest.approx(expected, rel=1e-9)
