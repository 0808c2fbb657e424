"""AppTest of the Customers page (pages/customers.py): marketing sees no employee figures, the reply
times follow the sidebar, and feedback and post themes with examples (issue 17), none for a manager's posts."""

from __future__ import annotations

import pytest
from app_fixtures import assert_clean, example_tables, open_page, page_file, switch, texts, theme_tables

from cxstats import ADMIN, store

pytest_plugins = ["app_fixtures"]  # demo_db, fresh_demo_db, empty_db, users_yaml, make_app

CUSTOMERS = "pages/customers.py"


def test_customers_page_shows_marketing_no_employee_figures(make_app, demo_db):
    at = switch(make_app(demo_db, "marketing"), page_file("customers"))
    assert_clean(at, "marketing customers")
    shown = texts(at)
    assert "Engagement index" not in shown and "Respondents" not in shown and "eNPS" not in shown
    assert {m.label for m in at.metric} == {"CSAT %", "CSAT mean", "NPS", "Answers"}


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


# ---------------------------------------------------------------- comment themes


@pytest.mark.parametrize("user", [None, "marketing"], ids=["local-admin", "marketing"])
def test_customers_page_shows_feedback_and_post_themes(make_app, demo_db, user):
    at = open_page(make_app(demo_db, user), CUSTOMERS)
    assert not theme_tables(at)
    at.radio(key="cx_themes_source").set_value("feedback").run()
    assert not at.exception and not at.error
    (table,) = theme_tables(at)
    assert {"CSAT % with", "CSAT % without", "difference", "95% CI"} <= set(table.columns)
    assert any("queue" in label for label in table["label"])
    (examples,) = example_tables(at)
    assert 0 < len(examples) <= 3 * len(table)
    # examples are user text: shown in table cells, never as Markdown
    markdown = " ".join(str(m.value) for m in at.markdown)
    assert not any(e in markdown for e in examples["example"])
    at.radio(key="cx_themes_source").set_value("mentions").run()
    assert not at.exception and not at.error
    (table,) = theme_tables(at)
    assert "CSAT % with" not in table.columns and len(table) >= 2


def test_a_manager_gets_no_post_themes(make_app, demo_db):
    at = open_page(make_app(demo_db, "manager"), CUSTOMERS)
    at.radio(key="cx_themes_source").set_value("mentions").run()
    assert not at.exception and not at.error
    assert not theme_tables(at)
    assert "Social posts carry no unit" in texts(at)
    at.radio(key="cx_themes_source").set_value("feedback").run()
    assert not at.exception and not at.error
    assert theme_tables(at) or "at least 50 are needed" in texts(at)
