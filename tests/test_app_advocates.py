"""AppTest of the Advocates page (pages/advocates.py): filters, as of an earlier date, the reach
weight's cap, export and reward recording (also after a refused upload), who may record rewards, the
programme effect (hold-out first), an export with a hold-out, and the customer value with its backtest."""

from __future__ import annotations

import json
from datetime import date

import pytest
from app_fixtures import SEES, assert_clean, charts_of, page_file, switch, texts

from cxstats import ADMIN, CxStatsError, ingest, store

pytest_plugins = ["app_fixtures"]  # demo_db, fresh_demo_db, empty_db, users_yaml, make_app


def test_advocate_filters_narrow_the_table(make_app, demo_db):
    at = switch(make_app(demo_db, "marketing"), page_file("advocates"))
    at.multiselect(key="adv_tiers").set_value(["Champion"]).run()
    at.checkbox(key="adv_consent").check().run()
    assert_clean(at, "filters")
    table = at.dataframe[0].value
    assert len(table) > 0
    assert set(table["tier"]) == {"Champion"} and table["consent"].all()


def test_advocates_as_of_an_earlier_date(make_app, demo_db):

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
