"""AppTest of the Data page (pages/data.py): the batch history and settings by role, and the erasure
form and retention settings (DESIGN.md, "Erasure, retention and re-organisations"): an admin erases a
customer or a respondent, marketing erases customers and sees nothing else on the page."""

from __future__ import annotations

from app_fixtures import assert_clean, markdown_sources, switch, texts
from hostile_files import EVIL, RAW, hostile_customers_csv

from cxstats import ADMIN, ingest, store

pytest_plugins = ["app_fixtures"]  # demo_db, fresh_demo_db, empty_db, users_yaml, make_app


def test_leader_sees_history_read_only_and_no_settings_form(make_app, fresh_demo_db):
    at = switch(make_app(fresh_demo_db, "leader"), "pages/data.py")
    assert_clean(at)
    labels = [b.label for b in at.button]
    assert "Undo batch" not in labels and "Save settings" not in labels
    assert "Only an admin can undo a batch." in [c.value for c in at.caption]


def test_admin_changes_settings_but_never_below_three(make_app, fresh_demo_db):
    at = switch(make_app(fresh_demo_db), "pages/data.py")
    widget = at.number_input[0]
    assert widget.min == store.MIN_GROUP_FLOOR
    widget.set_value(7)
    at.button[[b.label for b in at.button].index("Save settings")].click().run()
    assert_clean(at)
    with store.connect(fresh_demo_db) as con:
        assert store.settings(con).min_group == 7


# ---------------------------------------------------------------- erasure and retention


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


def test_the_undo_message_names_a_hostile_file_escaped(fresh_demo_db, make_app):
    """The probe's case: the Data page's undo message names the file (a live link and image)."""
    db = fresh_demo_db
    cust = hostile_customers_csv()
    ingest.import_file(db, "customers", cust, file_name=f"{EVIL}.csv", viewer=ADMIN)
    at = make_app(db)
    switch(at, "pages/data.py")
    at.checkbox(key="cx_undo_sure").check()
    at.button[[b.label for b in at.button].index("Undo batch")].click().run()
    for text in markdown_sources(at):
        for raw in RAW:
            assert raw not in text, f"undo message: {text[:200]!r}"
    assert any("undone" in t and "x\\]" in t for t in markdown_sources(at))
