"""linkage.analyse over a database, and the `linkage` command: fields, anonymity, viewers, demo effect."""

from __future__ import annotations

import json

import numpy as np
import pytest
import statsmodels.formula.api as smf
from linkage_data import build, survey
from scipy import stats

from cxstats import ADMIN, AccessDenied, CxStatsError, Viewer, linkage, metrics, store

JSON_FIELDS = {
    "metric",
    "period",
    "lag",
    "min_group",
    "n_units",
    "suppressed_groups",
    "units",
    "within_unit",
    "lags",
    "pearson",
    "spearman",
    "min_detectable_r",
    "slope_per_10",
    "elasticity",
    "elasticity_reason",
    "partial",
    "drivers",
    "quartiles",
    "warnings",
}
NESTED = {
    "within_unit": {"coef", "ci_low", "ci_high", "p", "n_obs", "n_clusters", "vcov", "r", "r_dof", "r_p", "corrected"},
    "pearson": {
        "r",
        "ci_low",
        "ci_high",
        "p",
        "r_corrected",
        "r_corrected_ci_low",
        "r_corrected_ci_high",
        "rel_x",
        "rel_y",
    },
    "spearman": {"rho", "p"},
    "slope_per_10": {"estimate", "ci_low", "ci_high"},
    "quartiles": {"top", "bottom", "diff", "ci_low", "ci_high"},
}


@pytest.fixture(scope="module")
def small_db(tmp_path_factory):
    db = tmp_path_factory.mktemp("link") / "s.duckdb"
    with store.connect(db) as con:
        build(con, survey(11, n_units=12, n_periods=4, small_groups=4))
    return db


def test_json_has_exactly_the_design_fields(small_db, cli_inprocess):
    out = cli_inprocess("linkage", "--json", "--covariates", "region,headcount", db=small_db)
    assert out.returncode == 0, out.stderr
    d = json.loads(out.stdout)
    assert set(d) == JSON_FIELDS
    for key, fields in NESTED.items():
        assert set(d[key]) == fields
    assert set(d["units"][0]) == {"unit_id", "engagement", "cx", "respondents", "cx_responses"}
    assert [x["lag"] for x in d["lags"]] == [-2, -1, 0, 1, 2]
    assert set(d["lags"][0]) == {"lag", "coef", "r", "p", "p_holm", "n"}
    assert set(d["within_unit"]["corrected"]) == {"coef", "ci_low", "ci_high", "reliability"}
    assert d["within_unit"]["vcov"] == "CRV3" and d["within_unit"]["r_p"] == d["within_unit"]["p"]
    assert set(d["drivers"][0]) == {"item", "r", "ci_low", "ci_high", "p", "q"}
    assert set(d["elasticity"]) == {"beta", "ci_low", "ci_high", "p", "effect_of_10pct"}
    assert set(d["partial"]) == {"r", "ci_low", "ci_high", "p", "covariates"}
    assert d["partial"]["covariates"] == ["region", "headcount"]
    assert (d["metric"], d["period"], d["lag"], d["min_group"]) == ("csat_pct", "quarter", 0, 5)
    assert d["n_units"] == 12 and d["suppressed_groups"] >= 1
    assert any("below 30" in w for w in d["warnings"])


@pytest.mark.parametrize(
    "args, message",
    [
        (["--period", "month"], "differs from the database setting"),
        (["--min-group", "4"], "below the database setting"),
    ],
)
def test_refused_with_exit_2(small_db, cli_inprocess, args, message):
    out = cli_inprocess("linkage", "--json", *args, db=small_db)
    assert out.returncode == 2
    assert message in out.stderr and out.stdout == ""


def test_readable_table_and_sentences(small_db, cli_inprocess):
    out = cli_inprocess("linkage", "--metric", "nps", "--min-group", "6", db=small_db)
    assert out.returncode == 0, out.stderr
    assert "within-unit coef" in out.stdout and "min_group 6" in out.stdout
    assert "not proof" in out.stdout or "causes" in out.stdout
    assert "confounded" in out.stdout


def test_within_unit_matches_pyfixest_crv3_on_the_panel(small_db):
    """12 units: CRV3 (pyfixest's, without its small-sample factor, times (G-1)/G), t with G-1 dof."""
    pf = pytest.importorskip("pyfixest")
    with store.connect(small_db) as con:
        res = linkage.analyse(con, viewer=ADMIN)
    p = res.panel.assign(engagement=res.panel["engagement"].astype(float), cx=res.panel["cx"].astype(float))
    fit = pf.feols(
        "cx ~ engagement | unit_id + period_index",
        data=p,
        vcov={"CRV3": "unit_id"},
        ssc=pf.ssc(k_adj=False, G_adj=False),
    )
    g = p["unit_id"].nunique()
    se = float(np.sqrt(fit._vcov[0, 0] * (g - 1) / g))
    w = res.within_unit
    assert w.vcov == "CRV3" and w.n_obs == len(p) and w.n_clusters == g
    assert w.coef == pytest.approx(float(fit.coef().iloc[0]), rel=1e-8)
    assert w.se == pytest.approx(se, rel=1e-6)
    assert w.p == pytest.approx(2 * stats.t.sf(abs(w.coef / se), g - 1), rel=1e-6)
    ref = smf.ols("cx ~ engagement + C(unit_id) + C(period_index)", p).fit()
    assert w.coef == pytest.approx(ref.params["engagement"], rel=1e-8)


def test_panel_and_units_built_from_shown_groups(small_db):
    with store.connect(small_db) as con:
        res = linkage.analyse(con, lag=1, viewer=ADMIN)
        g = metrics.unit_period_engagement(con, viewer=ADMIN).groups
        cx = metrics.cx_by_unit_period(con, viewer=ADMIN)
    row = res.panel.iloc[0]
    grp = g[(g["unit_id"] == row["unit_id"]) & (g["period_index"] == row["period_index"])].iloc[0]
    nxt = cx[(cx["unit_id"] == row["unit_id"]) & (cx["period_index"] == row["period_index"] + 1)].iloc[0]
    assert row["engagement"] == pytest.approx(grp["index"]) and row["cx"] == pytest.approx(nxt["csat_pct"])
    u = res.units.set_index("unit_id")
    first = u.index[0]
    mine = g[g["unit_id"] == first]
    assert u.loc[first, "respondents"] == mine["respondents"].sum()
    assert u.loc[first, "engagement"] == pytest.approx(mine["score_sum"].sum() / mine["respondents"].sum())


def test_suppressed_groups_never_change_any_output(tmp_path):
    """Alter every answer of the groups below min_group: every figure stays the same."""
    sv = survey(21, n_units=10, n_periods=4, small_groups=5)
    small = sv.engagement.groupby(["unit_id", "survey_date"])["q1"].transform("size") < 5
    assert small.any()
    outputs = []
    for variant in range(3):
        e = sv.engagement.copy()
        if variant == 1:  # other answers
            rng = np.random.default_rng(99)
            for it in sv.items:
                e.loc[small, it] = rng.integers(1, 6, small.sum())
            e.loc[small, "enps"] = 10
        if variant == 2:  # one respondent fewer in each small group (still suppressed)
            first = small & ~e.duplicated(["unit_id", "survey_date"])
            e = e[~first]
        db = tmp_path / f"v{variant}.duckdb"
        with store.connect(db) as con:
            build(con, type(sv)(e, sv.feedback, sv.units, sv.items, sv.coef))
            res = linkage.analyse(con, covariates=("region",), viewer=ADMIN)
            outputs.append(
                (
                    json.dumps(res.as_json(), sort_keys=True),
                    metrics.unit_period_engagement(con, viewer=ADMIN).groups.to_json(),
                    metrics.item_scores(con, viewer=ADMIN).cells.to_json(),
                    metrics.item_distribution(con, viewer=ADMIN).to_json(),
                    repr(metrics.engagement_summary(con, viewer=ADMIN)),
                )
            )
    assert outputs[0] == outputs[1] == outputs[2]


def test_marketing_refused_manager_filtered(small_db):
    with store.connect(small_db) as con:
        with pytest.raises(AccessDenied):
            linkage.analyse(con, viewer=Viewer("marketing"))
        res = linkage.analyse(con, viewer=Viewer("manager", ("U000", "U001", "U002", "U003", "U004"), "m"))
    assert set(res.units["unit_id"]) <= {"U000", "U001", "U002", "U003", "U004"}
    assert res.n_units <= 5 and res.within_unit.n_clusters <= 5


@pytest.mark.parametrize("metric", ["csat_pct", "csat_mean", "nps"])
def test_metrics_and_sentences(small_db, metric):
    with store.connect(small_db) as con:
        res = linkage.analyse(con, metric=metric, covariates=["region"], viewer=ADMIN)
    sentences = res.summary_sentences()
    text = " ".join(sentences)
    assert "confounded" in text and "thin evidence" in text  # 12 units
    # every mention of cause is a denial
    assert any("cause" in s for s in sentences)
    assert all(("not" in s or "Neither" in s) for s in sentences if "cause" in s)
    if metric == "nps":
        assert res.elasticity is None or (res.units["cx"] > 0).all()


def test_too_thin_evidence_said_plainly(tmp_path):
    db = tmp_path / "thin.duckdb"
    with store.connect(db) as con:
        build(con, survey(3, n_units=3, n_periods=1))
        res = linkage.analyse(con, viewer=ADMIN)
    assert res.pearson.r is None and res.min_detectable_r is None and res.within_unit.coef is None
    text = " ".join(res.summary_sentences())
    assert "too little repeated data" in text and "too few" in text
    d = res.as_json()
    assert set(d["pearson"].values()) == {None}
    assert d["within_unit"]["p"] is None and d["within_unit"]["corrected"] is None
    assert any("at least 4" in w for w in d["warnings"])


@pytest.mark.parametrize(
    "kwargs",
    [
        {"metric": "revenue"},
        {"lag": 20},
        {"period": "month"},
        {"min_group": 3},
        {"min_group": 2},
        {"covariates": ("salary",)},
    ],
)
def test_analyse_refuses_bad_input(small_db, kwargs):
    with store.connect(small_db) as con, pytest.raises(CxStatsError):
        linkage.analyse(con, **kwargs, viewer=ADMIN)


def test_demo_planted_effect_recovered_by_cli(tmp_path, cli_inprocess):
    demo = pytest.importorskip("cxstats.demo")
    db = tmp_path / "demo.duckdb"
    made = cli_inprocess("demo", db=db)
    assert made.returncode == 0, made.stderr
    out = cli_inprocess("linkage", "--json", db=db)
    assert out.returncode == 0, out.stderr
    d = json.loads(out.stdout)
    data = demo.generate()  # the same defaults as the demo command: seed 7, 40 units
    w = d["within_unit"]
    assert w["ci_low"] <= data.planted_within_coef <= w["ci_high"]
    assert w["p"] < 0.05 and d["n_units"] == 40
    assert d["suppressed_groups"] == len(data.small_groups)
