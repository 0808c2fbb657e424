"""AppTest of the analysis pages: Engagement, Customers, Linkage, Advocates (engineer B's pages).

For each role that may see a page: it renders without an exception and draws its Plotly charts;
marketing is refused on the employee-data pages; an empty database and a refused upload leave every
page clean; a planted group of 3 respondents never appears as a number; a manager sees only his
units; export, reward recording and the weight cap work from the page.
"""

from __future__ import annotations

import json

import pytest
from app_fixtures import MANAGER_UNITS, ROOT, TIMEOUT, switch, texts

from cxstats import ADMIN, CxStatsError, ingest, store

# the shared AppTest fixtures (demo_db, fresh_demo_db, empty_db, make_app) of tests/app_fixtures.py
pytest_plugins = ["app_fixtures"]

# page -> how many Plotly charts it draws with the demo data as an admin (tabs render all their content)
CHARTS = {"engagement": 4, "customers": 4, "linkage": 4, "advocates": 3}
SEES = {  # "admin" through the user file sees what the local admin sees (tests/test_app_core.py checks that)
    None: ("engagement", "customers", "linkage", "advocates"),
    "leader": ("engagement", "customers", "linkage", "advocates"),
    "manager": ("engagement", "customers", "linkage"),
    "marketing": ("customers", "advocates"),
}


def page_file(name: str) -> str:
    return f"pages/{name}.py"


def charts_of(at) -> list[dict]:
    return [json.loads(el.proto.spec) for el in at.get("plotly_chart")]


def assert_clean(at, where: str) -> None:
    assert not at.exception, f"{where}: {[e.value for e in at.exception]}"
    assert "Traceback" not in texts(at), where


# ---------------------------------------------------------------- every role, every page it sees


@pytest.mark.parametrize("role", list(SEES), ids=lambda r: r or "local-admin")
def test_pages_render_their_charts_for_each_role(make_app, demo_db, role):
    at = make_app(demo_db, role)
    for page in SEES[role]:
        switch(at, page_file(page))
        assert_clean(at, f"{role} on {page}")
        assert len(at.get("plotly_chart")) >= CHARTS[page], f"{role} on {page}"
        assert not at.error, f"{role} on {page}: {[e.value for e in at.error]}"


@pytest.mark.parametrize("page", ["engagement", "linkage"])
def test_marketing_is_refused_on_employee_pages(make_app, demo_db, page):
    at = make_app(demo_db, "marketing")
    with pytest.raises(ValueError, match="Could not find a navigation page"):
        at.switch_page(page_file(page))
    # even when the page file is run directly, page_setup refuses before any figure is computed
    from streamlit.testing.v1 import AppTest

    direct = AppTest.from_file(str(ROOT / page_file(page)), default_timeout=TIMEOUT)
    direct.run()
    assert not direct.exception
    assert any("may not see" in e.value for e in direct.error)
    assert not direct.get("plotly_chart") and not direct.metric


def test_customers_page_shows_marketing_no_employee_figures(make_app, demo_db):
    at = switch(make_app(demo_db, "marketing"), page_file("customers"))
    assert_clean(at, "marketing customers")
    shown = texts(at)
    assert "Engagement index" not in shown and "Respondents" not in shown and "eNPS" not in shown
    assert {m.label for m in at.metric} == {"CSAT %", "CSAT mean", "NPS", "Answers"}


# ---------------------------------------------------------------- empty database, refused upload


def test_every_page_is_clean_on_an_empty_database(make_app, empty_db):
    at = make_app(empty_db)
    for page in SEES[None]:
        switch(at, page_file(page))
        assert_clean(at, f"empty {page}")
        assert at.info, f"{page} should say there is nothing to show yet"


# ---------------------------------------------------------------- anonymity: a planted small group


@pytest.fixture
def planted_db(tmp_path):
    """U1: 10 respondents, all favourable; U2: 3 respondents (below min_group 5), 2/3 and 1/3 favourable."""
    db = tmp_path / "planted.duckdb"
    rows = ["unit_id,survey_date,respondent_id,pride,growth,comment"]
    rows += [f"U1,2025-02-10,r{i},5,4,fine" for i in range(10)]
    rows += [f"U2,2025-02-11,s{i},{a},{b},secret words" for i, (a, b) in enumerate([(5, 2), (4, 1), (2, 5)])]
    ingest.import_file(db, "engagement", ("\n".join(rows) + "\n").encode(), file_name="e.csv", viewer=ADMIN)
    fb = ["unit_id,date,csat,nps"] + [f"U{u},2025-02-{10 + i % 9},{4 + i % 2},9" for u in (1, 2) for i in range(20)]
    ingest.import_file(db, "feedback", ("\n".join(fb) + "\n").encode(), file_name="f.csv", viewer=ADMIN)
    return db


def test_suppressed_group_never_appears_as_a_number(make_app, planted_db):
    at = switch(make_app(planted_db), page_file("engagement"))
    assert_clean(at, "planted")
    specs = charts_of(at)
    heat = next(s for s in specs if s["data"] and s["data"][0]["type"] == "heatmap")["data"][0]
    row = heat["y"].index("U2")
    assert heat["z"][row] == [None, None]
    assert heat["text"][row] == ["suppressed", "suppressed"]
    assert heat["z"][heat["y"].index("U1")] == [100.0, 100.0]
    everything = json.dumps(specs) + texts(at) + "".join(str(df.value) for df in at.dataframe)
    # U2's favourable shares (66.7 %, 33.3 %) and its index must not leak anywhere on the page
    for leaked in ("66.6", "66.7", "67%", "33.3", "33%", "secret words"):
        assert leaked not in everything, leaked
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Respondents"] == "10" and metrics["Groups suppressed"] == "1"


# ---------------------------------------------------------------- a manager sees only his units


def test_manager_sees_only_his_units(make_app, demo_db):
    at = make_app(demo_db, "manager")
    switch(at, page_file("engagement"))
    heat = next(s for s in charts_of(at) if s["data"] and s["data"][0]["type"] == "heatmap")["data"][0]
    assert heat["y"] and set(heat["y"]) <= set(MANAGER_UNITS)
    switch(at, page_file("customers"))
    by_unit = charts_of(at)[0]["data"][0]
    assert by_unit["x"] and set(by_unit["x"]) <= set(MANAGER_UNITS)
    switch(at, page_file("linkage"))
    scatter = [t for t in charts_of(at)[1]["data"] if t.get("name") == "unit"][0]
    assert set(scatter["text"]) <= set(MANAGER_UNITS)


# ---------------------------------------------------------------- page interactions


def test_linkage_selectors_rerun_cleanly(make_app, demo_db):
    at = switch(make_app(demo_db), page_file("linkage"))
    at.selectbox(key="lk_metric").set_value("nps").run()
    at.select_slider(key="lk_lag").set_value(1).run()
    assert_clean(at, "linkage nps lag 1")
    assert "What this cannot show" in [s.value for s in at.subheader]
    assert len(at.get("plotly_chart")) >= CHARTS["linkage"]


def test_engagement_change_between_periods(make_app, demo_db):
    at = switch(make_app(demo_db), page_file("engagement"))
    assert at.selectbox(key="eng_change_unit").options
    assert any("95% interval" in m.value for m in list(at.info) + list(at.success))


def _distribution_counts(at) -> dict[str, int]:
    """Answers per item drawn in the Engagement page's answer-distribution chart."""
    for spec in charts_of(at):
        traces = spec["data"]
        if traces and "answers)" in str(traces[0].get("hovertemplate", "")):
            out: dict[str, int] = {}
            for t in traces:
                for item, n in zip(t["y"], t["customdata"]):
                    out[item] = out.get(item, 0) + int(n)
            return out
    raise AssertionError("no answer-distribution chart")


def test_engagement_distribution_follows_the_sidebar_selection(make_app, demo_db):
    from cxstats import metrics

    at = switch(make_app(demo_db), page_file("engagement"))
    everyone = _distribution_counts(at)
    at.sidebar.multiselect(key="cx_f_units").set_value(["S001"]).run()
    assert_clean(at, "one unit")
    one_unit = _distribution_counts(at)
    with store.connect(demo_db) as con:
        dist = metrics.item_distribution(con, viewer=ADMIN)
    expected = dist[dist["unit_id"] == "S001"].groupby("item")["answers"].sum()
    assert one_unit == {i: int(n) for i, n in expected.items()}
    assert sum(one_unit.values()) < sum(everyone.values())


def test_customer_reply_times_follow_the_sidebar_selection(make_app, demo_db):
    from cxstats import metrics

    def reply_table(at):
        return next(d.value for d in at.dataframe if "share_within_target" in d.value.columns)

    at = switch(make_app(demo_db), page_file("customers"))
    everyone = reply_table(at)
    assert {"feedback", "mentions"} <= set(everyone["source"])
    at.sidebar.multiselect(key="cx_f_units").set_value(["S001"]).run()
    assert_clean(at, "one unit")
    one_unit = reply_table(at)
    with store.connect(demo_db) as con:
        expected = metrics.response_times(con, units=["S001"], viewer=ADMIN)
    assert set(one_unit["source"]) == {"feedback"}  # posts carry no unit
    assert one_unit["contacts"].tolist() == expected["contacts"].tolist()
    assert one_unit["contacts"].sum() < everyone.loc[everyone["source"] == "feedback", "contacts"].sum()


def test_advocate_filters_narrow_the_table(make_app, demo_db):
    at = switch(make_app(demo_db, "marketing"), page_file("advocates"))
    at.multiselect(key="adv_tiers").set_value(["Champion"]).run()
    at.checkbox(key="adv_consent").check().run()
    assert_clean(at, "filters")
    table = at.dataframe[0].value
    assert len(table) > 0
    assert set(table["tier"]) == {"Champion"} and table["consent"].all()


def test_advocates_as_of_an_earlier_date(make_app, demo_db):
    from datetime import date

    from cxstats import advocates

    with store.connect(demo_db) as con:
        latest = advocates.latest_order_date(con)
    earlier = date(latest.year - 1, latest.month, 1)
    at = switch(make_app(demo_db, "marketing"), page_file("advocates"))
    at.date_input(key="adv_as_of_input").set_value(earlier)
    [b for b in at.get("form_submit_button") if b.label == "Apply weights"][0].click().run()
    assert_clean(at, "as of")
    assert f"evidence up to {earlier.isoformat()}" in texts(at)


def test_reach_weight_above_the_cap_is_refused_with_a_message(make_app, demo_db):
    at = switch(make_app(demo_db, "marketing"), page_file("advocates"))
    at.slider(key="adv_w_reach").set_value(1.0)
    [b for b in at.get("form_submit_button") if b.label == "Apply weights"][0].click().run()
    assert_clean(at, "reach cap")
    assert any("follower count alone never makes an advocate" in e.value for e in at.error)


def test_after_a_refused_upload_pages_are_clean_and_export_and_reward_work(make_app, fresh_demo_db):
    bad = b"unit_id,date,csat\nS001,2025-02-01,9\n"  # csat outside 1-5: the whole file is refused
    with pytest.raises(CxStatsError):
        ingest.import_file(fresh_demo_db, "feedback", bad, file_name="bad.csv", viewer=ADMIN)
    with store.connect(fresh_demo_db) as con:
        audits = con.execute("SELECT count(*) FROM export_audit").fetchall()[0][0]
        rewards = con.execute("SELECT count(*) FROM rewards").fetchall()[0][0]
    at = make_app(fresh_demo_db)
    for page in SEES[None]:
        switch(at, page_file(page))
        assert_clean(at, f"after refused upload: {page}")
    at.button(key="adv_prepare").click().run()
    assert_clean(at, "export")
    assert at.get("download_button"), "a download button appears once the export is prepared"
    at.text_input[0].input("voucher")
    [b for b in at.get("form_submit_button") if b.label == "Record reward"][0].click().run()
    assert_clean(at, "reward")
    assert any("Reward recorded" in s.value for s in at.success)
    with store.connect(fresh_demo_db) as con:
        assert con.execute("SELECT count(*) FROM export_audit").fetchall()[0][0] == audits + 1
        assert con.execute("SELECT count(*) FROM rewards").fetchall()[0][0] == rewards + 1


def test_leader_may_not_record_rewards(make_app, demo_db):
    at = switch(make_app(demo_db, "leader"), page_file("advocates"))
    assert not [b for b in at.get("form_submit_button") if b.label == "Record reward"]
    assert "Rewards are recorded by marketing or an admin." in texts(at)


def test_programme_effect_shown_without_a_toggle_hold_out_first(make_app, demo_db):
    at = switch(make_app(demo_db, "marketing"), page_file("advocates"))
    assert not at.get("toggle"), "the effect is fast enough to show always"
    md = [m.value for m in at.markdown]
    first = [i for i, v in enumerate(md) if v.startswith("**1. Hold-out (randomised)")]
    second = [i for i, v in enumerate(md) if v.startswith("**2. Matched comparison")]
    assert first and second and first[0] < second[0], "the hold-out design is recommended first"
    assert any("not an experiment" in v for v in md) and any("differ only by chance" in v for v in md)
    assert any("No export with a hold-out yet" in i.value for i in at.info)
    effect = [s for s in charts_of(at) if "Programme effect" in json.dumps(s.get("layout", {}))]
    assert effect and "estimate" in json.dumps(effect[0]["layout"]["title"])
    assert at.number_input(key="adv_holdout").value == 10  # the page proposes a 10% hold-out
    assert any("before" in str(list(d.value.columns)) or "smd_before" in d.value.columns for d in at.dataframe)


def test_export_with_a_hold_out_is_recorded_and_shown_in_progress(make_app, fresh_demo_db):
    at = switch(make_app(fresh_demo_db, "marketing"), page_file("advocates"))
    at.number_input(key="adv_holdout").set_value(20).run()
    at.button(key="adv_prepare").click().run()
    assert_clean(at, "hold-out export")
    assert at.get("download_button")
    with store.connect(fresh_demo_db) as con:
        arms = con.execute("SELECT arm, count(*) FROM holdouts GROUP BY arm").fetchall()
        audit = con.execute("SELECT rows, filter FROM export_audit ORDER BY export_id DESC LIMIT 1").fetchall()[0]
    arms = dict(arms)
    assert arms["holdout"] == round((arms["holdout"] + arms["reward"]) * 0.2) and arms["holdout"] > 0
    assert audit[0] == arms["reward"] and "hold-out 20%" in audit[1]
    assert any(f"{arms['holdout']:,} customers held out at random" in c.value for c in at.caption)
    md = [m.value for m in at.markdown]
    assert any("held out (in progress)" in v for v in md), md
    with store.connect(fresh_demo_db) as con:
        held = {c for (c,) in con.execute("SELECT customer_id FROM holdouts WHERE arm = 'holdout'").fetchall()}
    offered = [b for b in at.selectbox if b.label == "Customer"][0].options
    assert offered and not held & set(offered), "a held-out customer is offered for a reward"


def test_advocates_show_customer_value_and_its_backtest(make_app, demo_db):
    """The value columns in the table (sortable), the backtest chart and its sentence, the P(alive) cut."""
    at = switch(make_app(demo_db, "marketing"), page_file("advocates"))
    assert_clean(at, "customer value")
    table = at.dataframe[0].value
    for col in ("p_alive", "expected_orders", "expected_value"):
        assert col in table.columns and table[col].notna().all()
    assert ((table["p_alive"] > 0) & (table["p_alive"] <= 1)).all()
    bt = [s for s in charts_of(at) if "Backtest" in json.dumps(s.get("layout", {}))]
    assert bt and len(bt[0]["data"]) == 2
    sentence = [m.value for m in at.markdown if m.value.startswith("Over the last ")]
    assert sentence and "repeat purchase days; there were" in sentence[0]
    assert any("likely to buy again" in r for r in table["reasons"])
    at.number_input(key="adv_min_p_alive").set_value(1.0).run()
    assert_clean(at, "min P(alive)")
    offered = [b for b in at.selectbox if b.label == "Customer"][0].options
    assert offered  # the remaining gated customers are still offered after the due ones
