"""Focus areas, action plans with follow-up, what changed (cxstats/focus.py; DESIGN.md sections
"Focus areas and action plans" and "What changed").

Every figure is recomputed here from the generated rows with outside references: scipy's Welch
t-test (``ttest_ind(equal_var=False)``), ``scipy.stats.false_discovery_control`` for BH q, and
statsmodels' clustered OLS for the ANCOVA.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
from datetime import date, datetime

import numpy as np
import pandas as pd
import pytest
import statsmodels.formula.api as smf
from scipy import stats

from cxstats import ADMIN, AccessDenied, CxStatsError, Viewer, cli, focus, ingest, linkage, metrics, store
from cxstats import stats as cxstats_stats

ITEMS = ("Tools", "Recognition", "Voice")
UNITS = [f"U{i:02d}" for i in range(1, 13)]  # 12 units
Q1, Q2 = date(2024, 2, 10), date(2024, 8, 10)  # 2024-Q1 and 2024-Q3
SMALL = ("U12", Q1)  # a suppressed group (3 respondents)


def _rows(seed: int = 3) -> tuple[pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(seed)
    eng, fb = [], []
    k = 0
    for i, u in enumerate(UNITS):
        level = rng.normal(0, 0.6)
        for q in (Q1, Q2):
            n = 3 if (u, q) == SMALL else int(rng.integers(8, 16))
            shift = 1.6 if (u == "U02" and q == Q2) else 0.0
            for _ in range(n):
                k += 1
                base = 3 + level + shift + rng.normal(0, 0.8)
                ans = [
                    int(np.clip(round(base + rng.normal(0, 0.7) - (1.2 if (u == "U01" and j == 0) else 0)), 1, 5))
                    for j in range(len(ITEMS))
                ]
                eng.append({"unit_id": u, "survey_date": q, "respondent_id": f"R{k:04d}", **dict(zip(ITEMS, ans))})
            for _ in range(int(rng.integers(30, 60))):
                sat = rng.random() < 0.6 + 0.1 * level + (0.25 if (u == "U02" and q == Q2) else 0)
                fb.append(
                    {
                        "unit_id": u,
                        "date": q,
                        "csat": int(rng.choice([4, 5]) if sat else rng.choice([1, 2, 3])),
                        "nps": int(rng.choice([9, 10]) if sat else rng.integers(0, 9)),
                    }
                )
    return pd.DataFrame(eng), pd.DataFrame(fb)


def build(path, eng: pd.DataFrame, fb: pd.DataFrame) -> str:
    db = str(path)
    units = "unit_id,unit_name\n" + "".join(f"{u},Store {u}\n" for u in UNITS)
    ingest.import_file(db, "units", units.encode(), file_name="units.csv", viewer=ADMIN)
    ingest.import_file(
        db, "engagement", eng.to_csv(index=False).encode(), file_name="survey.csv", scale=5, viewer=ADMIN
    )
    ingest.import_file(db, "feedback", fb.to_csv(index=False).encode(), file_name="feedback.csv", viewer=ADMIN)
    return db


@pytest.fixture(scope="module")
def hand(tmp_path_factory):
    eng, fb = _rows()
    db = build(tmp_path_factory.mktemp("focus") / "hand.duckdb", eng, fb)
    return db, eng, fb


def _kept(eng: pd.DataFrame) -> pd.DataFrame:
    n = eng.groupby(["unit_id", "survey_date"]).size()
    keep = n[n >= 5].index
    return eng.set_index(["unit_id", "survey_date"]).loc[keep].reset_index()


# ---------------------------------------------------------------- pure formulas


def test_welch_from_moments_equals_scipy():
    rng = np.random.default_rng(1)
    a, b = rng.normal(3, 1, 12), rng.normal(3.6, 1.7, 30)
    diff, lo, hi, p, dof = cxstats_stats.welch_from_moments(
        a.mean(), a.var(ddof=1), a.size, b.mean(), b.var(ddof=1), b.size
    )
    ref = stats.ttest_ind(b, a, equal_var=False)
    ci = ref.confidence_interval(0.95)
    assert diff == pytest.approx(b.mean() - a.mean())
    assert (lo, hi, p, dof) == pytest.approx((ci.low, ci.high, ref.pvalue, ref.df), rel=1e-10)
    assert cxstats_stats.welch_diff(a, b)[:4] == pytest.approx((diff, lo, hi, p), rel=1e-12)


def test_wald_and_nps_change_by_hand():
    d, lo, hi, p = focus.wald_pct_change(60, 100, 75, 100)
    se = 100 * math.sqrt(0.6 * 0.4 / 100 + 0.75 * 0.25 / 100)
    assert d == pytest.approx(15) and (lo, hi) == pytest.approx((15 - 1.959964 * se, 15 + 1.959964 * se))
    assert p == pytest.approx(2 * stats.norm.sf(15 / se))
    d, lo, hi, p = focus.nps_change(10, 6, 30, 8)
    assert d == 20 and p == pytest.approx(2 * stats.norm.sf(20 / 10)) and hi - lo == pytest.approx(2 * 1.959964 * 10)


def test_ancova_equals_statsmodels_clustered():
    rng = np.random.default_rng(5)
    units = np.repeat([f"u{i}" for i in range(14)], 2)
    has = (np.arange(28) % 3 == 0).astype(float)
    base = rng.normal(3, 0.5, 28)
    change = 0.3 * has - 0.4 * (base - 3) + rng.normal(0, 0.3, 28)
    coef, se, lo, hi, p = focus.ancova_clustered(change, has, base, units)
    df = pd.DataFrame({"change": change, "has_plan": has, "baseline": base})
    ref = smf.ols("change ~ has_plan + baseline", df).fit(
        cov_type="cluster", cov_kwds={"groups": pd.factorize(units)[0]}, use_t=True
    )
    assert coef == pytest.approx(ref.params["has_plan"], rel=1e-10)
    assert se == pytest.approx(ref.bse["has_plan"], rel=1e-8)
    assert (lo, hi) == pytest.approx(tuple(ref.conf_int().loc["has_plan"]), rel=1e-8)
    assert p == pytest.approx(ref.pvalues["has_plan"], rel=1e-8)


# ---------------------------------------------------------------- focus areas


def test_focus_figures_against_scipy(hand):
    db, eng, fb = hand
    with store.connect(db) as con:
        res = focus.focus_areas(con, "U01", viewer=ADMIN, period="2024-Q3")
        drivers = {d.item: d for d in linkage.analyse(con, viewer=ADMIN).drivers}
    kept = _kept(eng)
    q2 = kept[kept["survey_date"] == Q2]
    assert {i.item for i in res.items} == set(ITEMS)
    for it in res.items:
        a = q2.loc[q2["unit_id"] == "U01", it.item].to_numpy(float)
        b = q2.loc[q2["unit_id"] != "U01", it.item].to_numpy(float)
        ref = stats.ttest_ind(b, a, equal_var=False)
        ci = ref.confidence_interval()
        assert it.unit_mean == pytest.approx(a.mean()) and it.others_mean == pytest.approx(b.mean())
        assert (it.gap, it.gap_ci_low, it.gap_ci_high) == pytest.approx(
            (b.mean() - a.mean(), ci.low, ci.high), rel=1e-9
        )
        assert (it.r, it.q) == (drivers[it.item].r, drivers[it.item].q)
        assert it.priority == pytest.approx(it.gap * it.r)
    js = res.as_json()
    assert list(js) == ["unit_id", "period", "metric", "items", "strengths", "suppressed_items", "warnings"]
    assert list(js["items"][0]) == [
        "item",
        "unit_mean",
        "others_mean",
        "gap",
        "gap_ci_low",
        "gap_ci_high",
        "r",
        "q",
        "priority",
        "focus",
    ]
    pri = [i.priority for i in res.items if i.priority is not None]
    assert pri == sorted(pri, reverse=True)
    for i in res.items:
        if i.focus:
            assert i.gap_ci_low > 0 and i.r > 0 and i.q < 0.10
    assert len(res.areas) == sum(i.focus for i in res.items) <= 3
    for a in res.areas:
        assert a.item in a.sentence and "below the other units" in a.sentence


def test_a_malformed_in_label_says_how_to_write_one(hand):
    db, _, _ = hand
    with store.connect(db) as con:
        for bad in ("2024-Q5", "Q3", "2024-07"):  # the database groups by quarter
            with pytest.raises(CxStatsError, match="like 2026-Q3"):
                focus.focus_areas(con, "U03", viewer=ADMIN, period=bad)
            with pytest.raises(CxStatsError, match="like 2026-Q3"):
                focus.changes(con, viewer=ADMIN, period=bad)
        assert focus.focus_areas(con, "U03", viewer=ADMIN, period=" 2024-q3").period == "2024-Q3"


def test_focus_defaults_and_refusals(hand):
    db, _, _ = hand
    with store.connect(db) as con:
        assert focus.focus_areas(con, "U03", viewer=ADMIN).period == "2024-Q3"
        assert focus.focus_areas(con, "U03", viewer=ADMIN, metric="nps").metric == "nps"
        with pytest.raises(CxStatsError, match="no shown group in 2024-Q1"):
            focus.focus_areas(con, "U12", viewer=ADMIN, period="2024-Q1")  # suppressed: same words as no data
        with pytest.raises(CxStatsError, match="unknown metric"):
            focus.focus_areas(con, "U01", viewer=ADMIN, metric="bogus")
        mgr = Viewer("manager", ("U01",), "m")
        with pytest.raises(AccessDenied, match="not one of your units"):
            focus.focus_areas(con, "U02", viewer=mgr)
        with pytest.raises(AccessDenied):
            focus.focus_areas(con, "U01", viewer=Viewer("marketing", (), "x"))
        # a manager's benchmark pools at least 5 other units: here 11 others in 2024-Q3
        m = focus.focus_areas(con, "U01", viewer=mgr, period="2024-Q3")
        assert m.as_json() == focus.focus_areas(con, "U01", viewer=ADMIN, period="2024-Q3").as_json()
        # in 2024-Q1 10 other units are kept
        assert all(i.others_mean is not None for i in focus.focus_areas(con, "U01", viewer=mgr, period="2024-Q1").items)


def test_manager_benchmark_needs_five_other_units(tmp_path):
    eng, fb = _rows()
    few = UNITS[:5]  # 4 other units
    db = build(tmp_path / "few.duckdb", eng[eng["unit_id"].isin(few)], fb[fb["unit_id"].isin(few)])
    with store.connect(db) as con:
        m = focus.focus_areas(con, "U01", viewer=Viewer("manager", ("U01",), "m"), period="2024-Q3")
        a = focus.focus_areas(con, "U01", viewer=ADMIN, period="2024-Q3")
    assert all(i.others_mean is None and i.gap is None and i.r is None for i in m.items)
    assert any("at least 5 other units" in w for w in m.warnings)
    assert all(i.others_mean is not None for i in a.items)


# ---------------------------------------------------------------- what changed


def test_changes_against_outside_references(hand):
    db, eng, fb = hand
    with store.connect(db) as con:
        res = focus.changes(con, viewer=ADMIN)
        everything = focus.changes(con, viewer=ADMIN)
    assert (res.period, res.previous) == ("2024-Q3", "2024-Q1")
    kept = _kept(eng)
    kept = kept.assign(score=100 * (kept[list(ITEMS)].mean(axis=1) - 1) / 4)
    rows = []
    for u in UNITS:
        a = kept[(kept["unit_id"] == u) & (kept["survey_date"] == Q1)]["score"].to_numpy()
        b = kept[(kept["unit_id"] == u) & (kept["survey_date"] == Q2)]["score"].to_numpy()
        if len(a) == 0 or len(b) == 0:
            continue  # U12's 2024-Q1 group is suppressed: not compared
        ref = stats.ttest_ind(b, a, equal_var=False)
        rows.append((u, "engagement", b.mean() - a.mean(), ref.pvalue))
        fa, fbb = fb[(fb["unit_id"] == u) & (fb["date"] == Q1)], fb[(fb["unit_id"] == u) & (fb["date"] == Q2)]
        pa, pb = (fa["csat"] >= 4).mean(), (fbb["csat"] >= 4).mean()
        se = 100 * math.sqrt(pa * (1 - pa) / len(fa) + pb * (1 - pb) / len(fbb))
        rows.append((u, "csat_pct", 100 * (pb - pa), 2 * stats.norm.sf(abs(100 * (pb - pa)) / se)))
        na, nb = metrics.nps(fa["nps"]), metrics.nps(fbb["nps"])
        rows.append((u, "nps", nb.nps - na.nps, 2 * stats.norm.sf(abs(nb.nps - na.nps) / math.hypot(na.se, nb.se))))
    q = stats.false_discovery_control([r[3] for r in rows])
    expected = {(r[0], r[1]): (r[2], r[3], qq) for r, qq in zip(rows, q) if qq < 0.10}
    assert res.compared == len(rows) == 33
    assert {(c.unit_id, c.measure) for c in res.changes} == set(expected)
    for c in res.changes:
        d, p, qq = expected[(c.unit_id, c.measure)]
        assert (c.diff, c.p, c.q) == pytest.approx((d, p, qq), rel=1e-9)
    assert ("U02", "engagement") in expected  # planted
    js = everything.as_json()
    assert list(js) == ["period", "previous", "compared", "changes"]
    if js["changes"]:
        assert list(js["changes"][0]) == [
            "unit_id",
            "measure",
            "before",
            "after",
            "n_before",
            "n_after",
            "diff",
            "ci_low",
            "ci_high",
            "p",
            "q",
        ]


def test_changes_manager_sees_own_rows_with_company_q(hand):
    db, _, _ = hand
    with store.connect(db) as con:
        full = focus.changes(con, viewer=ADMIN)
        mine = focus.changes(con, viewer=Viewer("manager", ("U02",), "m"))
        with pytest.raises(AccessDenied):
            focus.changes(con, viewer=Viewer("marketing", (), "x"))
        with pytest.raises(CxStatsError, match="earlier than"):
            focus.changes(con, viewer=ADMIN, period="2024-Q1", previous="2024-Q3")
        with pytest.raises(CxStatsError, match="no shown survey group in 2023-Q1"):
            focus.changes(con, viewer=ADMIN, previous="2023-Q1")
    assert mine.compared == full.compared
    assert [c for c in full.changes if c.unit_id == "U02"] == list(mine.changes)


# ---------------------------------------------------------------- action plans


def test_plan_journey_validation_and_roles(hand, tmp_path):
    db = tmp_path / "plans.duckdb"
    db.write_bytes(open(hand[0], "rb").read())
    mgr = Viewer("manager", ("U01",), "Mo Manager")
    with store.connect(db) as con:
        a = focus.add_action(
            con,
            viewer=mgr,
            unit_id="U01",
            item="Tools",
            title="  Fix the tills  ",
            owner="Ann",
            due_date="2024-06-30",
            now=datetime(2024, 4, 2, 9, 0),
        )
        assert (a.action_id, a.title, a.status, a.created_by, a.due_date) == (
            1,
            "Fix the tills",
            "open",
            "Mo Manager",
            date(2024, 6, 30),
        )
        b = focus.update_action(con, a.action_id, viewer=mgr, title="Fix the tills and printers", note="asked IT")
        assert (b.title, b.note, b.owner, b.created_at) == (
            "Fix the tills and printers",
            "asked IT",
            "Ann",
            a.created_at,
        )
        c = focus.close_action(con, a.action_id, viewer=mgr)
        assert c.status == "done"
        problems = {
            "title must be 1-200": dict(title=" "),
            "not a date": dict(due_date="31/02/2024"),
            "not one of open, done, dropped": dict(status="closed"),
            "not an index item": dict(item="Salary"),
        }
        for msg, bad in problems.items():
            kw = dict(unit_id="U01", item="Tools", title="t") | bad
            with pytest.raises(CxStatsError, match=msg):
                focus.add_action(con, viewer=mgr, **kw)
        with pytest.raises(CxStatsError, match="1-200"):
            focus.add_action(con, viewer=mgr, unit_id="U01", item="Tools", title="x" * 201)
        with pytest.raises(AccessDenied, match="not one of your units"):
            focus.add_action(con, viewer=mgr, unit_id="U02", item="Tools", title="t")
        with pytest.raises(AccessDenied):
            focus.add_action(con, viewer=Viewer("leader", (), "L"), unit_id="U02", item="Tools", title="t")
        with pytest.raises(AccessDenied):
            focus.list_actions(con, viewer=Viewer("marketing", (), "x"))
        other = focus.add_action(con, viewer=ADMIN, unit_id="U02", item="Voice", title="Listen")
        with pytest.raises(CxStatsError, match="no action plan"):
            focus.update_action(con, other.action_id, viewer=mgr, title="mine now")
        assert [x.action_id for x in focus.list_actions(con, viewer=mgr).actions] == [1]
        lead = focus.list_actions(con, viewer=Viewer("leader", (), "L"))
        assert [x.action_id for x in lead.actions] == [1, 2]
        assert lead.counts.to_dict("records") == [
            {"item": "Tools", "status": "done", "plans": 1},
            {"item": "Voice", "status": "open", "plans": 1},
        ]
        assert focus.list_actions(con, viewer=mgr).counts.empty


def test_follow_up_against_scipy(hand, tmp_path):
    db = tmp_path / "fu.duckdb"
    db.write_bytes(open(hand[0], "rb").read())
    _, eng, fb = hand
    with store.connect(db) as con:
        a = focus.add_action(con, viewer=ADMIN, unit_id="U01", item="Tools", title="t", now=datetime(2024, 5, 2))
        late = focus.add_action(con, viewer=ADMIN, unit_id="U01", item="Tools", title="t", now=datetime(2024, 9, 2))
        res = {x.action_id: x for x in focus.list_actions(con, viewer=ADMIN).actions}
    assert res[late.action_id].follow_up is None  # no kept period after it
    fu = res[a.action_id].follow_up
    assert (fu.baseline, fu.outcome) == ("2024-Q1", "2024-Q3")
    u = eng[eng["unit_id"] == "U01"]
    before, after = (
        u[u["survey_date"] == Q1]["Tools"].to_numpy(float),
        u[u["survey_date"] == Q2]["Tools"].to_numpy(float),
    )
    ref = stats.ttest_ind(after, before, equal_var=False)
    ci = ref.confidence_interval()
    assert (fu.item_change, fu.ci_low, fu.ci_high) == pytest.approx((after.mean() - before.mean(), ci.low, ci.high))
    f = fb[fb["unit_id"] == "U01"]
    xb = 100.0 * (f[f["date"] == Q1]["csat"] >= 4).to_numpy(float)
    xa = 100.0 * (f[f["date"] == Q2]["csat"] >= 4).to_numpy(float)
    ref = stats.ttest_ind(xa, xb, equal_var=False)
    ci = ref.confidence_interval()
    assert (fu.cx_change, fu.cx_ci_low, fu.cx_ci_high) == pytest.approx((xa.mean() - xb.mean(), ci.low, ci.high))
    assert list(res[a.action_id].as_json()) == [
        "action_id",
        "unit_id",
        "item",
        "title",
        "owner",
        "due_date",
        "status",
        "follow_up",
    ]
    assert list(res[a.action_id].as_json()["follow_up"]) == [
        "item_change",
        "ci_low",
        "ci_high",
        "cx_change",
        "cx_ci_low",
        "cx_ci_high",
    ]


def test_plan_effect_ancova_and_arms(hand, tmp_path):
    db = tmp_path / "eff.duckdb"
    db.write_bytes(open(hand[0], "rb").read())
    _, eng, _ = hand
    with store.connect(db) as con:
        for u in UNITS[:3]:
            focus.add_action(con, viewer=ADMIN, unit_id=u, item="Tools", title="t", now=datetime(2024, 5, 2))
        few = focus.plan_effect(con, viewer=ADMIN)
        assert few[0].estimate is None and "at least 5" in few[0].reason and few[0].n_plan_units == 3
        for u in UNITS[3:5]:
            focus.add_action(con, viewer=ADMIN, unit_id=u, item="Tools", title="t", now=datetime(2024, 5, 2))
        eff = focus.plan_effect(con, viewer=ADMIN)[0]
        with pytest.raises(AccessDenied):
            focus.plan_effect(con, viewer=Viewer("manager", ("U01",), "m"))
    m = eng.groupby(["unit_id", "survey_date"])["Tools"].agg(["mean", "size"]).reset_index()
    m = m[m["size"] >= 5].pivot(index="unit_id", columns="survey_date", values="mean").dropna()
    df = pd.DataFrame({"change": m[Q2] - m[Q1], "baseline": m[Q1], "has_plan": m.index.isin(UNITS[:5]).astype(float)})
    ref = smf.ols("change ~ has_plan + baseline", df).fit(
        cov_type="cluster", cov_kwds={"groups": np.arange(len(df))}, use_t=True
    )
    assert (eff.n_plan_units, eff.n_other_units, eff.n_obs) == (5, 6, 11)
    assert eff.estimate == pytest.approx(ref.params["has_plan"], rel=1e-9)
    assert (eff.ci_low, eff.ci_high) == pytest.approx(tuple(ref.conf_int().loc["has_plan"]), rel=1e-8)


# ---------------------------------------------------------------- command line


def _run(argv) -> tuple[int, str]:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        rc = cli.main(argv)
    return rc, out.getvalue()


def test_cli_json(hand, tmp_path):
    db = tmp_path / "cli.duckdb"
    db.write_bytes(open(hand[0], "rb").read())
    rc, out = _run(["focus", "U01", "--db", str(db), "--in", "2024-Q3", "--json"])
    assert rc == 0 and json.loads(out)["period"] == "2024-Q3"
    rc, out = _run(["changes", "--db", str(db), "--in", "2024-Q3", "--previous", "2024-Q1", "--json"])
    assert rc == 0 and json.loads(out)["compared"] == 33
    rc, out = _run(["actions", "--db", str(db), "--json"])
    assert rc == 0 and json.loads(out) == {"actions": []}
    assert cli.main(["focus", "NOPE", "--db", str(db)]) == 2
    rc, out = _run(["focus", "U01", "--db", str(db)])
    assert rc == 0 and "Tools" in out
