"""AppTest of the Engagement page (pages/engagement.py): a planted group of 3 respondents never appears
as a number, the change between periods, the answer distribution follows the sidebar, and employee
comment themes (issue 17) for leaders, admins and managers (their units), never quoted, never to marketing."""

from __future__ import annotations

import json

import pytest
from app_fixtures import assert_clean, charts_of, example_tables, open_page, page_file, switch, texts, theme_tables

from cxstats import ADMIN, ingest, store

pytest_plugins = ["app_fixtures"]  # demo_db, fresh_demo_db, empty_db, users_yaml, make_app

ENGAGEMENT = "pages/engagement.py"


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


# ---------------------------------------------------------------- comment themes


@pytest.mark.parametrize("user", [None, "leader"], ids=["local-admin", "leader"])
def test_engagement_page_shows_employee_themes_unquoted(make_app, demo_db, user):
    at = open_page(make_app(demo_db, user), ENGAGEMENT)
    assert not theme_tables(at)  # found only when asked
    at.toggle(key="eng_themes_on").set_value(True).run()
    assert not at.exception and not at.error, [e.value for e in at.exception]
    (table,) = theme_tables(at)
    labels = " ".join(table["label"])
    assert "staffing" in labels and "tools" in labels
    assert "CSAT % with" not in table.columns
    assert example_tables(at) == []  # employee comments are never quoted in themes


def test_engagement_themes_for_a_manager_cover_his_units(make_app, demo_db):
    at = open_page(make_app(demo_db, "manager"), ENGAGEMENT)
    at.toggle(key="eng_themes_on").set_value(True).run()
    assert not at.exception and not at.error
    # six units' comments from groups of 10 or more: either themes or the "too few texts" message
    assert theme_tables(at) or "at least 50 are needed" in texts(at)
    assert example_tables(at) == []


def test_marketing_never_reaches_employee_themes(make_app, demo_db):
    at = make_app(demo_db, "marketing")
    with pytest.raises(ValueError, match="Could not find a navigation page"):
        at.switch_page(ENGAGEMENT)
        at.run()
