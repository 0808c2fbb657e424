"""cxstats.metrics: formulas against hand-worked and outside values, anonymity, viewers.

The hand-built survey below is small enough to compute every figure on paper (values in comments).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pingouin as pg
import pytest
from linkage_data import load_engagement, load_feedback
from scipy import stats

from cxstats import ADMIN, AccessDenied, CxStatsError, Viewer, metrics, store

ITEMS = ["q1", "q2", "q3", "q4"]
NA = np.nan


def _hand_survey() -> pd.DataFrame:
    rows = []
    # unit A, 2024-Q1: respondent scores 100, 75, 50, 25, 0 -> index 50; r6 answered 1 of 4 items
    for s, e in zip([5, 4, 3, 2, 1], [10, 9, 8, 3, 0]):
        rows.append(
            dict(unit_id="A", survey_date="2024-02-10", wave=None, enps=e, comment="hi", q1=s, q2=s, q3=s, q4=s)
        )
    rows.append(
        dict(unit_id="A", survey_date="2024-02-11", wave=None, enps=10, comment=None, q1=5, q2=NA, q3=NA, q4=NA)
    )
    # unit A, wave W2 spans 2024-06-25 .. 2024-07-03: one group in 2024-Q2 (7 respondents, all 4s -> 75);
    # q4 answered by 3 only (suppressed cell); eNPS answered by 2 only (suppressed)
    for i in range(7):
        rows.append(
            dict(
                unit_id="A",
                survey_date="2024-06-25" if i < 5 else "2024-07-03",
                wave="W2",
                enps=9 if i < 2 else None,
                comment=None,
                q1=4,
                q2=4,
                q3=4,
                q4=4 if i < 3 else NA,
            )
        )
    # unit B, 2024-Q1: 4 respondents -> suppressed
    for _ in range(4):
        rows.append(
            dict(unit_id="B", survey_date="2024-03-01", wave=None, enps=10, comment="secret", q1=5, q2=5, q3=5, q4=5)
        )
    # unit C, 2024-Q1: 10 respondents, all 3s -> index 50; comments shown (group >= 10)
    for i in range(10):
        rows.append(
            dict(unit_id="C", survey_date="2024-01-20", wave=None, enps=5, comment=f"c{i}", q1=3, q2=3, q3=3, q4=3)
        )
    return pd.DataFrame(rows)


def _hand_feedback() -> pd.DataFrame:
    t0 = pd.Timestamp("2024-02-01 09:00")
    h = pd.Timedelta(hours=1)
    return pd.DataFrame(
        [
            dict(
                unit_id="A",
                date="2024-02-01",
                csat=5,
                nps=10,
                channel="email",
                contacted_at=t0,
                responded_at=t0 + 5 * h,
            ),
            dict(
                unit_id="A",
                date="2024-02-02",
                csat=4,
                nps=9,
                channel="Twitter",
                contacted_at=t0,
                responded_at=t0 + 2 * h,
            ),
            dict(
                unit_id="A",
                date="2024-02-03",
                csat=3,
                nps=8,
                channel="phone",
                contacted_at=t0,
                responded_at=t0 + 11 * h,
            ),
            dict(unit_id="A", date="2024-02-04", csat=2, nps=0, channel="email", contacted_at=t0, responded_at=pd.NaT),
            dict(
                unit_id="A", date="2024-02-05", csat=1, nps=None, channel=None, contacted_at=pd.NaT, responded_at=pd.NaT
            ),
            dict(unit_id="B", date="2024-04-05", csat=5, nps=10, channel="email", contacted_at=t0, responded_at=t0 + h),
        ]
    )


@pytest.fixture
def hand(db):
    with store.connect(db) as con:
        load_engagement(con, _hand_survey(), ITEMS)
        load_feedback(con, _hand_feedback())
    return db


# ---------------------------------------------------------------- pure formulas


@pytest.mark.parametrize(
    "scores, expected_nps, expected_se",
    [
        # 50 promoters, 20 detractors of 100: 30, 100*sqrt((.5+.2-.09)/100) = 7.8102
        ([10] * 50 + [7] * 30 + [3] * 20, 30.0, 7.810249675906654),
        ([10, 9, 8, 7, 3], 20.0, 100 * math.sqrt((0.4 + 0.2 - 0.04) / 5)),
        ([0, 0, 0], -100.0, 0.0),
        ([9, 10], 100.0, 0.0),
    ],
)
def test_nps_and_se(scores, expected_nps, expected_se):
    r = metrics.nps(scores)
    assert r.nps == pytest.approx(expected_nps)
    assert r.se == pytest.approx(expected_se)
    assert r.n == len(scores)


@pytest.mark.parametrize(
    "fn, scores, expected",
    [
        (metrics.csat_pct, [5, 4, 3, 1], 50.0),
        (metrics.csat_pct, [5, 5, 5], 100.0),
        (metrics.csat_pct, [], None),
        (metrics.csat_mean, [5, 4, 3, 1], 3.25),
        (metrics.csat_mean, [2, None, 4], 3.0),
    ],
)
def test_csat(fn, scores, expected):
    assert fn(scores) == (pytest.approx(expected) if expected is not None else None)


@pytest.mark.parametrize(
    "mean, k, expected", [(4, 5, 75.0), (1, 5, 0.0), (5, 5, 100.0), (4, 7, 50.0), (6.5, 7, 91.6667)]
)
def test_respondent_score(mean, k, expected):
    assert metrics.respondent_score(mean, k) == pytest.approx(expected, abs=1e-4)


def test_cronbach_alpha_matches_pingouin_documented_example():
    # pingouin docs: cronbach_alpha dataset -> 0.5917
    df = pg.read_dataset("cronbach_alpha")
    wide = df.pivot(index="Subj", columns="Items", values="Scores")
    assert metrics.cronbach_alpha(wide) == pytest.approx(0.5917188, abs=1e-6)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_cronbach_alpha_matches_pingouin_random(seed):
    rng = np.random.default_rng(seed)
    base = rng.normal(size=(40, 1))
    wide = pd.DataFrame(base + rng.normal(size=(40, 5)), columns=list("abcde"))
    assert metrics.cronbach_alpha(wide) == pytest.approx(pg.cronbach_alpha(wide)[0], rel=1e-9)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_welch_diff_matches_scipy(seed):
    rng = np.random.default_rng(seed)
    a, b = rng.normal(50, 10, 12), rng.normal(55, 20, 30)
    diff, lo, hi, p, _ = metrics.welch_diff(a, b)
    ref = stats.ttest_ind(b, a, equal_var=False)
    ci = ref.confidence_interval(0.95)
    assert (diff, lo, hi, p) == pytest.approx((b.mean() - a.mean(), ci.low, ci.high, ref.pvalue), rel=1e-9)


@pytest.mark.parametrize(
    "channel, hours",
    [("Twitter", 1), ("x", 1), ("facebook", 6), ("Email", 6), ("phone", 12), (None, 12), ("instagram", 12)],
)
def test_reply_targets(channel, hours):
    assert metrics.reply_target_hours(channel) == hours


# ---------------------------------------------------------------- engagement from the database


def test_unit_period_groups_hand_values(hand):
    with store.connect(hand) as con:
        g = metrics.unit_period_engagement(con, viewer=ADMIN)
    f = g.groups.set_index(["unit_id", "period"])
    assert list(f.index) == [("A", "2024-Q1"), ("A", "2024-Q2"), ("C", "2024-Q1")]
    assert g.suppressed_groups == 1  # B 2024-Q1
    assert g.excluded_respondents == 1  # r6 answered 1 of 4 items
    assert f.loc[("A", "2024-Q1"), "index"] == pytest.approx(50.0)
    assert f.loc[("A", "2024-Q1"), "respondents"] == 5
    # eNPS over all 6 answers of the kept group: promoters 10,9,10, detractors 3,0 -> 100*(3-2)/6
    assert f.loc[("A", "2024-Q1"), "enps"] == pytest.approx(100 / 6)
    # the wave keeps 2024-07-03 answers in the wave's quarter
    assert f.loc[("A", "2024-Q2"), "respondents"] == 7
    assert f.loc[("A", "2024-Q2"), "index"] == pytest.approx(75.0)
    assert pd.isna(f.loc[("A", "2024-Q2"), "enps"])  # only 2 answered eNPS
    assert f.loc[("C", "2024-Q1"), "index"] == pytest.approx(50.0)
    assert f.loc[("A", "2024-Q1"), "index_sd"] == pytest.approx(np.std([100, 75, 50, 25, 0], ddof=1))


def test_summary_excludes_suppressed_groups(hand):
    with store.connect(hand) as con:
        s = metrics.engagement_summary(con, viewer=ADMIN)
    # (250 + 525 + 500) / 22; B's four 100s would raise it
    assert s.index == pytest.approx(1275 / 22)
    assert (s.respondents, s.groups, s.suppressed_groups) == (22, 3, 1)
    # eNPS over shown group eNPS only: A-Q1 (6 answers: 3 P, 2 D) + C (10 answers of 5: 10 D)
    assert s.enps == pytest.approx(100 * (3 - 12) / 16)
    assert list(s.by_period["period"]) == ["2024-Q1", "2024-Q2"]
    assert s.by_period["index"].tolist() == pytest.approx([750 / 15, 75.0])


def test_item_cells_and_favourable(hand):
    with store.connect(hand) as con:
        cells = metrics.item_scores(con, viewer=ADMIN)
        fav = metrics.item_favourable(con, viewer=ADMIN).set_index("item")
        dist = metrics.item_distribution(con, viewer=ADMIN)
    assert cells.suppressed_cells == 1  # q4 in A 2024-Q2 (3 answers)
    c = cells.cells.set_index(["unit_id", "period", "item"])
    # A-Q1 q1: 5,4,3,2,1 and r6's 5 -> favourable 3 of 6
    assert c.loc[("A", "2024-Q1", "q1"), "favourable_pct"] == pytest.approx(50.0)
    assert c.loc[("A", "2024-Q1", "q2"), "favourable_pct"] == pytest.approx(40.0)
    assert ("A", "2024-Q2", "q4") not in c.index
    assert not (cells.cells["unit_id"] == "B").any()
    # q4 totals: A-Q1 (2 of 5) + C (0 of 10); the suppressed A-Q2 cell and group B stay out
    assert fav.loc["q4", "n"] == 15 and fav.loc["q4", "favourable"] == 2
    # q1: A-Q1 3/6 + A-Q2 7/7 + C 0/10
    assert fav.loc["q1", "favourable_pct"] == pytest.approx(100 * 10 / 23)
    q4 = dist[dist["item"] == "q4"].groupby("score")["answers"].sum()
    assert q4.to_dict() == {1: 1, 2: 1, 3: 11, 4: 1, 5: 1}


def test_alpha_of_index_items(hand):
    with store.connect(hand) as con:
        a = metrics.index_alpha(con, viewer=ADMIN)
    # complete index respondents of kept groups: A-Q1 r1..r5, A-Q2 first 3, C all -> items identical
    # within each respondent, so alpha = 1
    assert a == pytest.approx(1.0)


@pytest.mark.parametrize("seed", [4, 5])
def test_alpha_from_database_matches_pingouin(db, seed):
    from linkage_data import survey

    sv = survey(seed, n_units=6, n_periods=2, small_groups=2)
    e = sv.engagement.copy()
    e.loc[e.index % 7 == 0, "q2"] = np.nan  # some skip one item: left out of alpha, still in the index
    with store.connect(db) as con:
        load_engagement(con, e, sv.items)
        a = metrics.index_alpha(con, viewer=ADMIN)
    sizes = e.groupby(["unit_id", "survey_date"])["q1"].transform("size")
    wide = e.loc[sizes >= 5, sv.items].dropna()
    assert a == pytest.approx(pg.cronbach_alpha(wide)[0], rel=1e-9)


def test_index_items_setting_names_a_subset(hand):
    with store.connect(hand) as con:
        store.set_setting(con, "index_items", "q1;q2", viewer=ADMIN)
        g = metrics.unit_period_engagement(con, viewer=ADMIN).groups.set_index(["unit_id", "period"])
        fav = metrics.item_favourable(con, viewer=ADMIN)
    # r6 answered q1 (1 of 2 index items = half): now in the index with score 100 -> (250 + 100) / 6
    assert g.loc[("A", "2024-Q1"), "respondents"] == 6
    assert g.loc[("A", "2024-Q1"), "index"] == pytest.approx(350 / 6)
    assert set(fav["item"]) == {"q1", "q2", "q3", "q4"}  # items outside the index still reported


def test_period_month_setting_and_wave(db):
    with store.connect(db) as con:
        store.set_setting(con, "period", "month", viewer=ADMIN)  # fixed once engagement data exists: set it first
        load_engagement(con, _hand_survey(), ITEMS)
        g = metrics.unit_period_engagement(con, min_group=5, viewer=ADMIN)
    assert set(g.groups["period"]) == {"2024-02", "2024-06", "2024-01"}


def test_period_setting_is_fixed_once_engagement_exists(hand):
    with store.connect(hand) as con:
        with pytest.raises(CxStatsError, match="fixed once engagement data exists"):
            store.set_setting(con, "period", "month", viewer=ADMIN)
        store.set_setting(con, "period", "quarter", viewer=ADMIN)  # the same value is no change


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"min_group": 4}, "below the database setting"),
        ({"min_group": 2}, "below the database setting"),
        ({"period": "month"}, "differs from the database setting"),
    ],
)
def test_scope_refuses_lowering_or_regrouping(hand, kwargs, message):
    with store.connect(hand) as con, pytest.raises(CxStatsError, match=message):
        metrics.unit_period_engagement(con, **kwargs, viewer=ADMIN)


def test_suppressed_group_list_names_groups_without_figures(hand):
    with store.connect(hand) as con:
        sup = metrics.suppressed_group_list(con, viewer=ADMIN)
        sup7 = metrics.suppressed_group_list(con, min_group=7, viewer=ADMIN)
    assert list(sup.columns) == ["unit_id", "period"]  # no counts, no figures
    assert sup[["unit_id", "period"]].values.tolist() == [["B", "2024-Q1"]]
    assert sup7[["unit_id", "period"]].values.tolist() == [["A", "2024-Q1"], ["B", "2024-Q1"]]


def test_raising_min_group_suppresses_more(hand):
    with store.connect(hand) as con:
        g = metrics.unit_period_engagement(con, min_group=7, viewer=ADMIN)
    assert list(g.groups["unit_id"]) == ["A", "C"] and g.suppressed_groups == 2


def test_wave_change_welch(hand):
    with store.connect(hand) as con:
        ch = metrics.wave_change(con, "A", "2024-Q1", "2024-Q2", viewer=ADMIN)
        with pytest.raises(CxStatsError, match="suppressed"):
            metrics.wave_change(con, "B", "2024-Q1", "2024-Q2", viewer=ADMIN)
    ref = stats.ttest_ind([75.0] * 7, [100, 75, 50, 25, 0], equal_var=False)
    ci = ref.confidence_interval(0.95)
    assert (ch.change, ch.ci_low, ch.ci_high, ch.p) == pytest.approx((25.0, ci.low, ci.high, ref.pvalue))
    assert (ch.n_from, ch.n_to) == (5, 7) and not ch.is_clear


def test_comments_only_for_groups_of_ten(hand):
    with store.connect(hand) as con:
        c = metrics.comments(con, viewer=ADMIN)
    assert set(c["unit_id"]) == {"C"} and len(c) == 10


@pytest.mark.parametrize(
    "fn",
    [
        metrics.unit_period_engagement,
        metrics.item_scores,
        metrics.engagement_summary,
        metrics.item_distribution,
        metrics.comments,
        metrics.suppressed_group_list,
        metrics.index_alpha,
    ],
)
def test_marketing_may_not_see_employee_data(hand, fn):
    with store.connect(hand) as con, pytest.raises(AccessDenied):
        fn(con, viewer=Viewer("marketing"))


def test_manager_sees_only_his_units(hand):
    mgr = Viewer("manager", ("B", "C"), "m")
    with store.connect(hand) as con:
        g = metrics.unit_period_engagement(con, viewer=mgr)
        cx = metrics.cx_by_unit_period(con, viewer=mgr)
        rt = metrics.response_times(con, viewer=mgr)
    assert list(g.groups["unit_id"]) == ["C"] and g.suppressed_groups == 1
    assert set(cx["unit_id"]) == {"B"}
    assert set(rt["source"]) == {"feedback"} and rt["contacts"].sum() == 1


# ---------------------------------------------------------------- customer satisfaction


def test_cx_by_unit_period_hand_values(hand):
    with store.connect(hand) as con:
        cx = metrics.cx_by_unit_period(con, viewer=ADMIN).set_index(["unit_id", "period"])
        ch = metrics.cx_by_channel(con, viewer=ADMIN).set_index("channel")
    a = cx.loc[("A", "2024-Q1")]
    assert (a["csat_n"], a["csat_pct"], a["csat_mean"]) == (5, pytest.approx(40.0), pytest.approx(3.0))
    # nps answers 10, 9, 8, 0: P 2/4, D 1/4 -> 25, SE 100*sqrt((.75 - .0625)/4)
    assert a["nps"] == pytest.approx(25.0)
    assert a["nps_se"] == pytest.approx(100 * math.sqrt(0.6875 / 4))
    assert cx.loc[("B", "2024-Q2"), "csat_pct"] == pytest.approx(100.0)
    assert ch.loc["email", "csat_n"] == 3 and ch.loc["email", "csat_pct"] == pytest.approx(200 / 3)


def test_response_times_by_channel(hand):
    with store.connect(hand) as con:
        rt = metrics.response_times(con, viewer=ADMIN).set_index("channel")
    # email: A 5 h (in 6 h), A unanswered, B 1 h -> 2 of 3 within target
    assert rt.loc["email", "contacts"] == 3 and rt.loc["email", "within_target"] == 2
    assert rt.loc["email", "share_within_target"] == pytest.approx(2 / 3)
    assert rt.loc["Twitter", "within_target"] == 0 and rt.loc["Twitter", "target_hours"] == 1
    assert rt.loc["phone", "within_target"] == 1 and rt.loc["phone", "median_hours"] == pytest.approx(11)


@pytest.mark.parametrize(
    "viewer, units, p_from, p_to, expected",
    [
        # (contacts, within target) per channel; A's rows are dated 2024-Q1, B's 2024-Q2
        (ADMIN, None, None, None, {"email": (3, 2), "Twitter": (1, 0), "phone": (1, 1)}),
        (ADMIN, ["B"], None, None, {"email": (1, 1)}),
        (ADMIN, None, "2024-Q2", None, {"email": (1, 1)}),
        (ADMIN, None, None, "2024-Q1", {"email": (2, 1), "Twitter": (1, 0), "phone": (1, 1)}),
        (ADMIN, ["A"], "2024-Q2", "2024-Q2", {}),
        (Viewer("manager", ("B", "C"), "m"), ["A", "B"], None, None, {"email": (1, 1)}),  # A is not his
    ],
)
def test_response_times_in_a_selection(hand, viewer, units, p_from, p_to, expected):
    with store.connect(hand) as con:
        rt = metrics.response_times(con, viewer=viewer, units=units, period_from=p_from, period_to=p_to)
    assert {r.channel: (r.contacts, r.within_target) for r in rt.itertuples()} == expected


def test_index_matches_demo_generator_computation(tmp_path):
    """The demo module computes each group's index independently from the same answers."""
    demo = pytest.importorskip("cxstats.demo")
    data = demo.generate(seed=3, units=8, customers=50)
    db = tmp_path / "demo.duckdb"
    demo.build_demo(db, seed=3, units=8, customers=50)
    with store.connect(db) as con:
        g = metrics.unit_period_engagement(con, viewer=ADMIN)
    ref = data.unit_quarter.rename(columns={"quarter": "period"})
    m = g.groups.merge(ref, on=["unit_id", "period"], how="left")
    assert len(m) and m["engagement_index"].notna().all()
    assert m["index"].to_numpy() == pytest.approx(m["engagement_index"].to_numpy(), abs=1e-9)
    assert g.suppressed_groups == len(data.small_groups)
