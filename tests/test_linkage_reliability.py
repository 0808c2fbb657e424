"""Reliability inputs against direct computations: the respondent_id-linked noise, rel_x and rel_y,
and the null-with-one-reason rules of the between-unit slope, elasticity and quartiles."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import statsmodels.formula.api as smf
from linkage_data import QUARTER_START, build, load_engagement, load_feedback, survey

from cxstats import ADMIN, linkage, metrics, store


def _linked_survey(seed: int, units: int = 6, periods: int = 4, people: int = 8):
    """The same people (respondent_id) answer each period; a few miss a period, one newcomer each."""
    rng = np.random.default_rng(seed)
    rows = []
    for u in range(units):
        level = rng.normal(0, 0.6, people)
        for p in range(periods):
            shift = rng.normal(0, 0.4)
            for i in range(people + 1):
                if i < people and rng.random() < 0.1:
                    continue  # missed this wave
                rid = f"U{u}P{i}" if i < people else f"U{u}new{p}"
                lat = (level[i] if i < people else rng.normal(0, 0.6)) + shift + rng.normal(0, 0.5)
                rec = {"unit_id": f"U{u:03d}", "survey_date": QUARTER_START[p], "respondent_id": rid}
                for it in ("q1", "q2", "q3"):
                    rec[it] = int(np.clip(np.rint(3 + lat + rng.normal(0, 0.5)), 1, 5))
                rows.append(rec)
    return pd.DataFrame(rows)


def test_linked_noise_equals_per_unit_two_way_regression(tmp_path):
    eng = _linked_survey(3)
    db = tmp_path / "linked.duckdb"
    with store.connect(db) as con:
        load_engagement(con, eng, ["q1", "q2", "q3"])
        got = metrics.within_person_noise(con, viewer=ADMIN).set_index("unit_id")
    scores = eng.assign(score=100 * (eng[["q1", "q2", "q3"]].mean(axis=1) - 1) / 4)
    counts = scores.groupby(["unit_id", "respondent_id"])["survey_date"].transform("nunique")
    linked = scores[counts >= 2]
    assert set(got.index) == set(eng["unit_id"])
    for unit, f in linked.groupby("unit_id"):
        fit = smf.ols("score ~ C(respondent_id) + C(survey_date)", f).fit()
        assert got.loc[unit, "ss"] == pytest.approx(float(fit.ssr), rel=1e-8, abs=1e-8)
        assert got.loc[unit, "dof"] == pytest.approx(fit.df_resid)


def test_fresh_respondents_use_the_pooled_within_group_variance(tmp_path):
    db = tmp_path / "fresh.duckdb"
    with store.connect(db) as con:
        build(con, survey(4, n_units=12, n_periods=4))
        assert metrics.within_person_noise(con, viewer=ADMIN) is None  # no respondent_id repeats


def test_between_reliabilities_match_a_direct_computation(tmp_path):
    sv = survey(8, n_units=14, n_periods=3, resp_per_group=8, fb_per_group=30)
    db = tmp_path / "rel.duckdb"
    with store.connect(db) as con:
        build(con, sv)
        res = linkage.analyse(con, metric="csat_mean", viewer=ADMIN)
    e = sv.engagement.assign(score=100 * (sv.engagement[sv.items].mean(axis=1) - 1) / 4)
    grp = e.groupby(["unit_id", "survey_date"])["score"]
    s2x = float(
        ((grp.transform("count") - 1) * 0 + (e["score"] - grp.transform("mean")) ** 2).sum() / (grp.count() - 1).sum()
    )
    per = e.groupby("unit_id")["score"].agg(["mean", "size"])
    rel_x = 1 - float((s2x / per["size"]).mean()) / float(per["mean"].var(ddof=1))
    fb = sv.feedback.dropna(subset=["csat"])
    g = fb.groupby(["unit_id", "date"])["csat"]
    s2y = float(((fb["csat"] - g.transform("mean")) ** 2).sum() / (g.count() - 1).sum())
    pu = fb.groupby("unit_id")["csat"].agg(["mean", "size"])
    rel_y = 1 - float((s2y / pu["size"]).mean()) / float(pu["mean"].var(ddof=1))
    pc = res.pearson_corrected
    assert (pc.rel_x, pc.rel_y) == pytest.approx((rel_x, rel_y), rel=1e-9)
    if pc.r is not None:
        assert pc.r == pytest.approx(max(-1, min(1, res.pearson.r / np.sqrt(rel_x * rel_y))), rel=1e-12)


def test_linkage_uses_the_linked_variant_when_people_repeat(tmp_path):
    eng = _linked_survey(5, units=12, periods=4, people=10)
    rng = np.random.default_rng(5)
    fb = pd.DataFrame(
        [
            {"unit_id": u, "date": d, "csat": int(rng.integers(1, 6))}
            for u in eng["unit_id"].unique()
            for d in QUARTER_START[:4]
            for _ in range(20)
        ]
    )
    db = tmp_path / "linked2.duckdb"
    with store.connect(db) as con:
        load_engagement(con, eng, ["q1", "q2", "q3"])
        load_feedback(con, fb)
        res = linkage.analyse(con, viewer=ADMIN)
        noise = metrics.within_person_noise(con, viewer=ADMIN)
    tw = linkage._two_way(res.panel, noise)
    assert res.within_unit.coef is not None
    expected = tw.reliability()
    got = res.within_unit.corrected.reliability if res.within_unit.corrected else None
    assert got == pytest.approx(expected, rel=1e-12)
    pooled = linkage._two_way(res.panel).reliability()
    assert expected != pytest.approx(pooled)  # the stable person level is no longer counted as noise


@pytest.mark.parametrize("y, words", [([70.0] * 6, "customer satisfaction is the same in every unit")])
def test_slope_null_with_reason_when_cx_is_constant(y, words):
    s = linkage.slope_per_10([40.0, 50, 55, 60, 65, 70], y)
    assert (s.estimate, s.ci_low, s.ci_high) == (None, None, None) and words in s.reason
    el, reason = linkage.elasticity(np.array([40.0, 50, 55, 60, 65, 70]), np.array(y))
    assert el is None and "does not vary between units" in reason


def test_quartiles_need_three_units_each():
    x = np.arange(8, dtype=float)
    q = linkage.quartiles(x, x * 2 + np.sin(x))
    assert q.diff is None and q.n_top == 2 and "at least 3" in q.reason
    x = np.arange(12, dtype=float)
    q = linkage.quartiles(x, x * 2 + np.sin(x))
    assert q.diff is not None and q.n_top == 3 and q.reason is None
    q = linkage.quartiles(x, np.where(x > 5, 80.0, 70.0))
    assert q.diff is None and "does not vary inside either quartile" in q.reason
