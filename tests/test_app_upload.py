"""AppTest of the Upload page (pages/upload.py): a bad file writes nothing and every page still works,
good rows only then undo, a clean upload moves the numbers, the kinds each role may load, a manager's
upload for another unit, and the notice that a lake is read-only to cxstats."""

from __future__ import annotations

import hostile_files
import pytest
from app_fixtures import ALL_PAGES, CORE_PAGES, assert_clean, existing, page_file, sidebar_captions, switch, texts

from cxstats import store

pytest_plugins = ["app_fixtures", "engine_fixtures"]  # demo_db, fresh_demo_db, empty_db, make_app; demo_lake


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
    for page in existing(ALL_PAGES if shown else CORE_PAGES):  # every page once, after the first bad file
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


def test_sidebar_and_upload_page_with_a_lake(make_app, demo_db, demo_lake, monkeypatch):
    monkeypatch.delenv("CXSTATS_ENGINE", raising=False)
    monkeypatch.setenv("CXSTATS_LAKE", str(demo_lake))
    at = make_app(demo_db)
    assert not at.exception
    side = sidebar_captions(at).replace("\\", "")
    assert f"engine: Parquet lake {demo_lake} (DuckDB)" in side
    at = switch(at, "pages/upload.py")
    assert not at.exception
    info = " ".join(str(i.value) for i in at.info).replace("\\", "")
    assert "A lake is read-only to cxstats: uploads go to the DuckDB file" in info
    assert str(demo_lake) in info
    assert at.file_uploader  # uploads still work: they go to the DuckDB file


def test_hostile_workbook_upload_in_the_app_is_refused_with_the_message(tmp_path, make_app):
    at = make_app(tmp_path / "up.duckdb")
    switch(at, "pages/upload.py")
    uploaders = at.get("file_uploader")
    assert uploaders
    uploaders[0].set_value(
        ("wide.xlsx", hostile_files.wide_xlsx(), "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet")
    ).run(timeout=120)
    assert not at.exception
    assert any("16,381 columns" in e.value for e in at.error), [e.value for e in at.error]
