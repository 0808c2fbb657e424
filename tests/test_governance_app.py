"""AppTest of the Data page's erasure form and retention settings (DESIGN.md, "Erasure, retention and
re-organisations"): an admin erases a customer or a respondent, marketing erases customers and sees
nothing else on the page."""

from __future__ import annotations

import pytest

pytest.register_assert_rewrite("app_fixtures")
from app_fixtures import switch, texts  # noqa: E402

from cxstats import store  # noqa: E402

pytest_plugins = ["app_fixtures"]


def _submit(at, label: str):
    next(b for b in at.button if b.label == label).click().run()
    return at


def _customer(db) -> str:
    with store.connect(db) as con:
        return con.execute("SELECT customer_id FROM customers ORDER BY customer_id LIMIT 1").fetchall()[0][0]


def test_admin_erases_a_customer_on_the_data_page(make_app, fresh_demo_db):
    cid = _customer(fresh_demo_db)
    at = switch(make_app(fresh_demo_db), "pages/data.py")
    assert not at.exception
    assert set(at.radio(key="cx_forget_kind").options) == {"customer", "respondent"}
    at.text_area(key="cx_forget_ids").input(cid)
    _submit(at, "Erase")
    assert any("Tick the box" in w.value for w in at.warning)
    at.checkbox(key="cx_forget_sure").check()
    _submit(at, "Erase")
    assert not at.exception
    assert any("Erased 1 customer" in s.value and "rewritten" in s.value for s in at.success)
    with store.connect(fresh_demo_db) as con:
        assert con.execute("SELECT count(*) FROM customers WHERE customer_id = ?", [cid]).fetchall()[0][0] == 0
        assert con.execute("SELECT count(*) FROM erasures").fetchall()[0][0] == 1


def test_marketing_sees_only_the_customer_erasure_form(make_app, fresh_demo_db):
    cid = _customer(fresh_demo_db)
    at = switch(make_app(fresh_demo_db, "marketing"), "pages/data.py")
    assert not at.exception
    assert list(at.radio(key="cx_forget_kind").options) == ["customer"]
    shown = texts(at)
    assert "Loaded batches" not in shown and "Data quality" not in shown and "Settings" not in shown
    assert "Retention" not in shown
    at.text_area(key="cx_forget_ids").input(cid)
    at.checkbox(key="cx_forget_sure").check()
    _submit(at, "Erase")
    assert not at.exception and any("Erased 1 customer" in s.value for s in at.success)


def test_admin_sets_retention_on_the_data_page(make_app, fresh_demo_db):
    at = switch(make_app(fresh_demo_db), "pages/data.py")
    at.number_input(key="cx_retain_feedback").set_value(12)
    _submit(at, "Save retention")
    assert not at.exception and any("Retention saved" in s.value for s in at.success)
    with store.connect(fresh_demo_db) as con:
        assert dict(con.execute("SELECT key, value FROM settings").fetchall())["retain_months_feedback"] == "12"
