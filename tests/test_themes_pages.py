"""Comment themes on the Engagement and Customers pages (AppTest; issue 17).

Engagement: employee comment themes for leaders, admins and managers (their units), never quoted.
Customers: feedback and post themes with examples; marketing sees these, never employee themes.
"""

from __future__ import annotations

import pytest
from app_fixtures import texts

pytest_plugins = ["app_fixtures"]

ENGAGEMENT, CUSTOMERS = "pages/engagement.py", "pages/customers.py"


def _open(at, page):
    at.switch_page(page)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def _theme_tables(at):
    return [d.value for d in at.dataframe if "label" in d.value.columns and "share" in d.value.columns]


def _example_tables(at):
    return [d.value for d in at.dataframe if "example" in d.value.columns]


@pytest.mark.parametrize("user", [None, "leader"], ids=["local-admin", "leader"])
def test_engagement_page_shows_employee_themes_unquoted(make_app, demo_db, user):
    at = _open(make_app(demo_db, user), ENGAGEMENT)
    assert not _theme_tables(at)  # found only when asked
    at.toggle(key="eng_themes_on").set_value(True).run()
    assert not at.exception and not at.error, [e.value for e in at.exception]
    (table,) = _theme_tables(at)
    labels = " ".join(table["label"])
    assert "staffing" in labels and "tools" in labels
    assert "CSAT % with" not in table.columns
    assert _example_tables(at) == []  # employee comments are never quoted in themes


def test_engagement_themes_for_a_manager_cover_his_units(make_app, demo_db):
    at = _open(make_app(demo_db, "manager"), ENGAGEMENT)
    at.toggle(key="eng_themes_on").set_value(True).run()
    assert not at.exception and not at.error
    # six units' comments from groups of 10 or more: either themes or the "too few texts" message
    assert _theme_tables(at) or "at least 50 are needed" in texts(at)
    assert _example_tables(at) == []


@pytest.mark.parametrize("user", [None, "marketing"], ids=["local-admin", "marketing"])
def test_customers_page_shows_feedback_and_post_themes(make_app, demo_db, user):
    at = _open(make_app(demo_db, user), CUSTOMERS)
    assert not _theme_tables(at)
    at.radio(key="cx_themes_source").set_value("feedback").run()
    assert not at.exception and not at.error
    (table,) = _theme_tables(at)
    assert {"CSAT % with", "CSAT % without", "difference", "95% CI"} <= set(table.columns)
    assert any("queue" in label for label in table["label"])
    (examples,) = _example_tables(at)
    assert 0 < len(examples) <= 3 * len(table)
    # examples are user text: shown in table cells, never as Markdown
    markdown = " ".join(str(m.value) for m in at.markdown)
    assert not any(e in markdown for e in examples["example"])
    at.radio(key="cx_themes_source").set_value("mentions").run()
    assert not at.exception and not at.error
    (table,) = _theme_tables(at)
    assert "CSAT % with" not in table.columns and len(table) >= 2


def test_marketing_never_reaches_employee_themes(make_app, demo_db):
    at = make_app(demo_db, "marketing")
    with pytest.raises(ValueError, match="Could not find a navigation page"):
        at.switch_page(ENGAGEMENT)
        at.run()


def test_a_manager_gets_no_post_themes(make_app, demo_db):
    at = _open(make_app(demo_db, "manager"), CUSTOMERS)
    at.radio(key="cx_themes_source").set_value("mentions").run()
    assert not at.exception and not at.error
    assert not _theme_tables(at)
    assert "Social posts carry no unit" in texts(at)
    at.radio(key="cx_themes_source").set_value("feedback").run()
    assert not at.exception and not at.error
    assert _theme_tables(at) or "at least 50 are needed" in texts(at)
