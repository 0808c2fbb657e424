"""AppTest of the dashboard's frame: login and roles, navigation, sidebar, Overview, Upload, Data.

What each role can and cannot reach (DESIGN.md roles table), no exception element on any page with
the demo data, with an empty database and after a bad upload, and the login lockout end to end.
Engineer B's page tests live in tests/test_app_pages.py.
"""

from __future__ import annotations

import pytest

pytest.register_assert_rewrite("app_fixtures")  # it is also loaded as a plugin below
from app_fixtures import MANAGER_UNITS, ROOT, switch, texts  # noqa: E402

from cxstats import store  # noqa: E402

pytest_plugins = ["app_fixtures"]  # demo_db, fresh_demo_db, empty_db, users_yaml, make_app

ALL_PAGES = ("overview", "upload", "engagement", "customers", "linkage", "actions", "advocates", "data")
MINE = ("overview", "upload", "data")  # engineer B's pages are tested per role in test_app_pages.py
EMPLOYEE_PAGES = ("overview", "engagement", "linkage")

# role (None = local admin without a user file) -> pages in its navigation (DESIGN.md + the brief)
ROLE_PAGES = {
    None: ALL_PAGES,
    "admin": ALL_PAGES,
    "leader": ("overview", "engagement", "customers", "linkage", "actions", "advocates", "data"),
    "manager": ("overview", "upload", "engagement", "customers", "linkage", "actions"),
    "marketing": ("customers", "advocates", "upload", "data"),  # data: the customer erasure form only
}


def page_file(name: str) -> str:
    return f"pages/{name}.py"


def existing(pages) -> list[str]:
    return [p for p in pages if (ROOT / page_file(p)).exists()]


def assert_clean(at, where: str = "") -> None:
    assert not at.exception, f"{where}: {[e.value for e in at.exception]}"
    assert "Traceback" not in texts(at), where


# ---------------------------------------------------------------- roles and navigation


TITLES = {
    "overview": "Overview",
    "upload": "Upload",
    "engagement": "Engagement",
    "customers": "Customers",
    "linkage": "Linkage",
    "actions": "Actions",
    "advocates": "Advocates",
    "data": "Data",
}


@pytest.mark.parametrize("role", list(ROLE_PAGES), ids=lambda r: r or "local-admin")
def test_each_role_reaches_exactly_its_pages(make_app, demo_db, role):
    at = make_app(demo_db, role)
    assert_clean(at, f"{role} start")
    # right after the first run, switch_page knows exactly the pages st.navigation registered
    for page in existing(ALL_PAGES):
        if page not in ROLE_PAGES[role]:
            with pytest.raises(ValueError, match="Could not find a navigation page"):
                at.switch_page(page_file(page))
    for page in existing(p for p in ROLE_PAGES[role] if p in MINE):
        switch(at, page_file(page))
        assert_clean(at, f"{role} on {page}")
        assert TITLES[page] in [t.value for t in at.title]
        assert not any("not available to" in e.value or "may not see" in e.value for e in at.error)


def test_marketing_is_never_shown_employee_data(make_app, demo_db):
    at = make_app(demo_db, "marketing")
    for page in existing(ROLE_PAGES["marketing"]):
        switch(at, page_file(page))
        assert_clean(at, page)
        shown = texts(at)
        assert "Engagement index" not in shown and "Survey respondents" not in shown and "eNPS" not in shown


def _probe_page(make_app, db, user, **setup):
    """A tiny page calling ui.page_setup, run as ``user`` (how a page reached by URL behaves)."""
    from streamlit.testing.v1 import AppTest

    make_app(db, user, run=False)  # sets the environment for the probe
    args = ", ".join(f"{k}={v!r}" for k, v in setup.items())
    script = (
        f"import sys\nsys.path.insert(0, {str(ROOT)!r})\nimport streamlit as st\nimport ui\n"
        f"ui.page_setup('Probe', {args})\nst.write('SECRET CONTENT')\n"
    )
    probe = AppTest.from_string(script, default_timeout=30)
    probe.run()
    return probe


@pytest.mark.parametrize(
    "user, setup, refused",
    [
        ("marketing", {"employee_data": True}, True),
        ("marketing", {"employee_data": False}, False),
        ("leader", {"employee_data": True}, False),
        ("manager", {"roles": ("admin", "leader")}, True),
        ("leader", {"roles": ("admin", "manager", "marketing")}, True),
        ("admin", {"roles": ("admin", "leader")}, False),
    ],
)
def test_page_setup_refuses_a_page_the_role_may_not_see(make_app, demo_db, user, setup, refused):
    probe = _probe_page(make_app, demo_db, user, **setup)
    assert not probe.exception
    shown = texts(probe)
    assert ("SECRET CONTENT" in shown) is not refused
    assert bool(probe.error) is refused


def test_manager_sees_only_his_units(make_app, demo_db):
    at = make_app(demo_db, "manager")
    assert_clean(at)
    units = at.sidebar.multiselect(key="cx_f_units")
    assert tuple(units.options) != ()
    assert all(o.split(" ")[0] in MANAGER_UNITS for o in units.options), units.options
    assert len(units.options) == len(MANAGER_UNITS)
    assert {m.label: m.value for m in at.metric}["Units"] == str(len(MANAGER_UNITS))


def test_admin_sees_every_unit_and_the_filters_narrow(make_app, demo_db):
    at = make_app(demo_db)
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Units"] == "40"
    at.sidebar.multiselect(key="cx_f_units").set_value(["S001", "S002"]).run()
    assert_clean(at)
    assert {m.label: m.value for m in at.metric}["Units"] == "2"
    # the filter survives a page switch
    switch(at, "pages/data.py")
    switch(at, "pages/overview.py")
    assert {m.label: m.value for m in at.metric}["Units"] == "2"


# ---------------------------------------------------------------- sidebar notices


def test_local_admin_is_labelled_on_every_page(make_app, demo_db):
    at = make_app(demo_db)
    for page in existing(MINE):  # page_setup draws it, so B's pages carry it the same way
        switch(at, page_file(page))
        assert any("single local admin (no user file)" in c.value for c in at.sidebar.caption), page


def test_demo_data_is_labelled_and_real_data_is_not(make_app, demo_db, empty_db):
    at = make_app(demo_db)
    assert any("demo data" in i.value for i in at.sidebar.info)
    at = make_app(empty_db)
    assert not any("demo data" in i.value for i in at.sidebar.info)


def test_first_start_loads_the_demo_into_an_empty_database(make_app, empty_db):
    at = make_app(empty_db, demo=True)
    assert_clean(at)
    assert any("demo data" in i.value for i in at.sidebar.info)
    assert {m.label: m.value for m in at.metric}["Units"] == "40"


# ---------------------------------------------------------------- empty database


@pytest.mark.parametrize("role", [None, "leader", "manager", "marketing"], ids=lambda r: r or "local-admin")
def test_every_page_works_on_an_empty_database(make_app, empty_db, role):
    at = make_app(empty_db, role)
    assert_clean(at, "start")
    # every page once as the local admin; the other roles on this file's pages
    for page in existing(p for p in ROLE_PAGES[role] if role is None or p in MINE):
        switch(at, page_file(page))
        assert_clean(at, page)


# ---------------------------------------------------------------- upload


def _upload(at, kind: str, name: str, data: bytes, mime: str = "text/csv"):
    switch(at, "pages/upload.py")
    at.selectbox(key="cx_upload_kind").set_value(kind).run()
    at.file_uploader(key=f"cx_upload_file_{at.session_state['cx_upload_nonce']}").set_value((name, data, mime))
    at.run()
    return at


BAD_FEEDBACK = b"unit_id,date,csat,response_id\nS001,2026-10-02,4,T1\nS002,2026-10-03,7,T2\nS003,2026-10-04,5,T3\n"


@pytest.mark.parametrize(
    "name, data, mime, shown",
    [
        ("bad.csv", BAD_FEEDBACK, "text/csv", "3|csat|7 is outside 1-5"),
        ("broken.xlsx", b"PK\x03\x04 this is not a workbook", "application/octet-stream", None),
        ("empty.csv", b"", "text/csv", None),
        ("header_only.csv", b"unit_id,date,csat\n", "text/csv", None),
    ],
)
def test_a_bad_upload_writes_nothing_and_every_page_still_works(make_app, fresh_demo_db, name, data, mime, shown):
    with store.connect(fresh_demo_db) as con:
        before = store.table_fingerprint(con)
    at = _upload(make_app(fresh_demo_db), "feedback", name, data, mime)
    assert_clean(at, "upload")
    assert at.error, "a bad file must be reported"
    if shown:
        row, column, message = shown.split("|")
        problems = at.dataframe[-1].value
        hit = problems[(problems["row"] == int(row)) & (problems["column"] == column)]
        assert list(hit["problem"]) == [message]
    with store.connect(fresh_demo_db) as con:
        assert store.table_fingerprint(con) == before  # nothing written before the Load button
    for page in existing(ALL_PAGES if shown else MINE):  # every page once, after the first bad file
        switch(at, page_file(page))
        assert_clean(at, f"{page} after a bad upload")


def test_load_good_rows_only_then_undo_on_the_data_page(make_app, fresh_demo_db):
    at = _upload(make_app(fresh_demo_db), "feedback", "bad.csv", BAD_FEEDBACK)
    at.button(key="cx_load_good").click().run()
    assert_clean(at)
    assert any("2 rows loaded as batch" in s.value for s in at.success), [s.value for s in at.success]
    assert any("rejected rows" in b.label for b in at.get("download_button"))
    with store.connect(fresh_demo_db) as con:
        new = store.list_batches(con)[-1]
    assert (new.kind, new.rows, new.file_name, new.undone) == ("feedback", 2, "bad.csv", False)

    switch(at, "pages/data.py")
    assert_clean(at)
    at.selectbox(key="cx_undo_batch").set_value(new.batch_id)
    at.checkbox(key="cx_undo_sure").check()
    at.button[[b.label for b in at.button].index("Undo batch")].click().run()
    assert_clean(at)
    # the message is Markdown-escaped (it holds a file name): compare its text without the escapes
    assert any(
        f"Batch {new.batch_id} (feedback, 2 rows from bad.csv) undone" in s.value.replace("\\", "") for s in at.success
    ), [s.value for s in at.success]
    with store.connect(fresh_demo_db) as con:
        assert store.list_batches(con)[-1].undone


def test_a_clean_upload_is_loaded_and_the_numbers_change(make_app, fresh_demo_db):
    good = b"unit_id,date,csat,response_id\n" + b"".join(
        f"S007,2026-10-{d:02d},1,G{d}\n".encode() for d in range(1, 29)
    )
    at = make_app(fresh_demo_db)
    at.sidebar.multiselect(key="cx_f_units").set_value(["S007"]).run()
    before = {m.label: m.value for m in at.metric}["CSAT %"]
    _upload(at, "feedback", "good.csv", good)
    assert any("No problems found" in s.value for s in at.success)
    at.button(key="cx_load").click().run()
    assert_clean(at)
    assert any("28 rows loaded as batch" in s.value for s in at.success)
    switch(at, "pages/overview.py")
    after = {m.label: m.value for m in at.metric}["CSAT %"]
    assert float(after) < float(before)  # 28 answers of 1 pull CSAT % down


@pytest.mark.parametrize(
    "role, allowed, refused",
    [
        ("marketing", {"customers", "mentions", "purchases", "rewards"}, {"engagement", "feedback", "units"}),
        ("manager", {"feedback", "purchases"}, {"units", "customers", "engagement"}),
        (None, {"units", "engagement", "feedback", "purchases", "mentions", "customers", "rewards"}, set()),
    ],
    ids=["marketing", "manager", "local-admin"],
)
def test_upload_offers_only_the_kinds_a_role_may_load(make_app, demo_db, role, allowed, refused):
    at = switch(make_app(demo_db, role), "pages/upload.py")
    assert_clean(at)
    options = {o.split(":")[0] for o in at.selectbox(key="cx_upload_kind").options}
    assert allowed <= options and not (refused & options)


def test_a_manager_upload_for_another_unit_is_refused(make_app, fresh_demo_db):
    other = b"unit_id,date,csat,response_id\nS001,2026-10-02,4,M1\nS040,2026-10-03,5,M2\n"
    at = _upload(make_app(fresh_demo_db, "manager"), "feedback", "other.csv", other)
    assert_clean(at)
    shown = texts(at) + " ".join(str(d.value) for d in at.dataframe)
    assert "S040" in shown
    loads = [b for b in at.button if b.key == "cx_load"]
    assert not loads or loads[0].disabled  # refused at preview, or shown as a problem: never loadable


# ---------------------------------------------------------------- data page


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


# ---------------------------------------------------------------- login through the form


def _login_app(make_app, db, monkeypatch):
    at = make_app(db, "admin", run=False)
    monkeypatch.delenv("CXSTATS_TEST_USER")  # the real form, as in production
    at.run()
    return at


def _submit(at, user, password):
    at.text_input[0].input(user)
    at.text_input[1].input(password)
    at.button[0].click().run()
    return at


def test_login_form_gates_every_page_and_logs_in(make_app, demo_db, monkeypatch):
    at = _login_app(make_app, demo_db, monkeypatch)
    assert_clean(at)
    assert [t.label for t in at.text_input] == ["Username", "Password"]
    assert not at.metric and "Overview" not in [t.value for t in at.title]
    _submit(at, "leader", "leader-demo-2026")
    assert_clean(at)
    assert "Overview" in [t.value for t in at.title]
    assert any("Lee Leader" in m.value for m in at.sidebar.markdown)
    assert "Log out" in [b.label for b in at.sidebar.button]


def test_five_wrong_passwords_lock_the_name_even_for_the_right_one(make_app, fresh_demo_db, monkeypatch):
    at = _login_app(make_app, fresh_demo_db, monkeypatch)
    for _ in range(5):
        _submit(at, "manager", "not-the-password")
        assert_clean(at)
    shown = [e.value.replace("\\", "") for e in at.error]  # the message is Markdown-escaped
    assert any("try again in 15 minute(s)" in e for e in shown), shown
    _submit(at, "manager", "manager-demo-2026")
    assert not at.metric and any("too many failed logins" in e.value for e in at.error)
    # the count lives in the database: a new session is locked out too, other names are not
    at = _login_app(make_app, fresh_demo_db, monkeypatch)
    _submit(at, "manager", "manager-demo-2026")
    assert not at.metric
    _submit(at, "leader", "leader-demo-2026")
    assert "Overview" in [t.value for t in at.title]


@pytest.mark.parametrize(
    "testing, user",
    [(None, "admin"), ("0", "admin"), ("1", "nobody")],
)
def test_the_test_hook_does_nothing_unless_fully_enabled(make_app, demo_db, monkeypatch, testing, user):
    at = make_app(demo_db, "admin", run=False)
    monkeypatch.setenv("CXSTATS_TEST_USER", user)
    if testing is None:
        monkeypatch.delenv("CXSTATS_TESTING")
    else:
        monkeypatch.setenv("CXSTATS_TESTING", testing)
    at.run()
    assert_clean(at)
    assert [t.label for t in at.text_input] == ["Username", "Password"]
    assert not at.metric


def test_a_broken_user_file_lets_nobody_in(make_app, demo_db, monkeypatch, tmp_path):
    bad = tmp_path / "users.yaml"
    bad.write_text("credentials:\n  usernames:\n    x: {password: plain, roles: [admin]}\n", encoding="utf-8")
    at = make_app(demo_db, "admin", run=False)
    monkeypatch.setenv("CXSTATS_USERS", str(bad))
    at.run()
    assert_clean(at)
    assert at.error and not at.metric
