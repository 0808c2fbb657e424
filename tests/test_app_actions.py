"""AppTest of the Actions page (pages/actions.py): focus areas, plans and their follow-up."""

from __future__ import annotations

from datetime import datetime, timedelta

from app_fixtures import MANAGER_UNITS, assert_clean, switch

from cxstats import ADMIN, demo, focus, store

pytest_plugins = ["app_fixtures"]  # demo_db, fresh_demo_db, empty_db, users_yaml, make_app

PAGE = "pages/actions.py"


def _button(at, label):
    return next(b for b in at.button if b.label == label)


def _table(at, column):
    """The first table with this column (AppTest does not carry a dataframe's key)."""
    return next(d.value for d in at.dataframe if column in d.value.columns)


def _plans(at):
    return _table(at, "title")


def test_manager_plan_journey(make_app, fresh_demo_db):
    # a plan made inside the second-last quarter has a follow-up (baseline before it, outcome after)
    qs = demo.demo_quarters()
    with store.connect(fresh_demo_db) as con:
        item = focus.focus_areas(con, "S001", viewer=ADMIN).items[0].item
        old = focus.add_action(
            con,
            viewer=ADMIN,
            unit_id="S001",
            item=item,
            title="Earlier plan",
            now=datetime.combine(qs[-2][1] + timedelta(days=10), datetime.min.time()),
        )
    at = make_app(fresh_demo_db, "manager")
    switch(at, PAGE)
    assert_clean(at, "open")
    assert at.selectbox(key="act_unit").value == "S001"
    assert {o.split(" ")[0] for o in at.selectbox(key="act_unit").options} <= set(MANAGER_UNITS)
    focus_rows = _table(at, "gap")
    assert len(focus_rows) > 0 and "gap" in focus_rows.columns
    plans = _plans(at)
    row = plans[plans["id"] == old.action_id].iloc[0]
    base, out = row["periods"].split(" -> ")
    # the latest kept period ended before the plan (S001's 2026-Q1 group may be suppressed) -> the next
    assert out == qs[-1][0] and base <= qs[-3][0] and row["item change"] == row["item change"]  # not NaN

    # create
    at.text_input(key="act_add_title").set_value("Fix the tills <b>now</b> [x](http://e.vil)")
    at.text_input(key="act_add_owner").set_value("Ann")
    _button(at, "Add plan").click().run()
    assert_clean(at, "add")
    plans = _plans(at)
    new = plans[plans["title"] == "Fix the tills <b>now</b> [x](http://e.vil)"]
    assert len(new) == 1 and new.iloc[0]["status"] == "open" and new.iloc[0]["periods"] == ""
    new_id = int(new.iloc[0]["id"])
    assert not any("e.vil" in m.value for m in at.markdown)  # user text only in the plain table

    # edit
    at.selectbox(key="act_edit_id").set_value(new_id).run()
    at.text_input(key=f"act_edit_title_{new_id}").set_value("Fix the tills")
    _button(at, "Save changes").click().run()
    assert_clean(at, "edit")
    plans = _plans(at)
    assert plans[plans["id"] == new_id].iloc[0]["title"] == "Fix the tills"

    # close
    at.selectbox(key="act_edit_id").set_value(new_id).run()
    at.selectbox(key=f"act_edit_status_{new_id}").set_value("done")
    _button(at, "Save changes").click().run()
    assert_clean(at, "close")
    plans = _plans(at)
    assert plans[plans["id"] == new_id].iloc[0]["status"] == "done"

    # a bad title is refused with a message, nothing written
    at.text_input(key="act_add_title").set_value("   ")
    _button(at, "Add plan").click().run()
    assert any("title must be" in e.value for e in at.error)
    assert len(_plans(at)) == 2

    # the leader sees every plan, counts by item and status, and cannot add one
    lead = make_app(fresh_demo_db, "leader")
    switch(lead, PAGE)
    assert_clean(lead, "leader")
    lp = _plans(lead)
    assert set(lp["id"]) == {old.action_id, new_id}
    counts = _table(lead, "plans")
    assert counts["plans"].sum() == 2 and set(counts["status"]) == {"open", "done"}
    assert not any(b.label == "Add plan" for b in lead.button)
