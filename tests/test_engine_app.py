"""The dashboard says which engine and lake are in use (sidebar, from EngineConfig.describe), the
Upload page says a lake is read-only to cxstats, and a bad engine configuration is shown as one
error (DESIGN.md "Engines")."""

from __future__ import annotations

from app_fixtures import switch, texts

pytest_plugins = ["app_fixtures", "engine_fixtures"]  # demo_db, make_app; demo_lake


def _sidebar(at) -> str:
    return "\n".join(str(c.value) for c in at.sidebar.caption)


def test_sidebar_names_the_duckdb_file_by_default(make_app, demo_db, monkeypatch):
    for var in ("CXSTATS_ENGINE", "CXSTATS_LAKE", "CXSTATS_SPARK"):
        monkeypatch.delenv(var, raising=False)
    at = make_app(demo_db)
    assert not at.exception
    assert f"engine: DuckDB file {demo_db}" in _sidebar(at).replace("\\", "")
    at = switch(at, "pages/upload.py")
    assert "read-only" not in texts(at)


def test_sidebar_and_upload_page_with_a_lake(make_app, demo_db, demo_lake, monkeypatch):
    monkeypatch.delenv("CXSTATS_ENGINE", raising=False)
    monkeypatch.setenv("CXSTATS_LAKE", str(demo_lake))
    at = make_app(demo_db)
    assert not at.exception
    side = _sidebar(at).replace("\\", "")
    assert f"engine: Parquet lake {demo_lake} (DuckDB)" in side
    at = switch(at, "pages/upload.py")
    assert not at.exception
    info = " ".join(str(i.value) for i in at.info).replace("\\", "")
    assert "A lake is read-only to cxstats: uploads go to the DuckDB file" in info
    assert str(demo_lake) in info
    assert at.file_uploader  # uploads still work: they go to the DuckDB file


def test_bad_engine_configuration_is_one_error_on_the_page(make_app, demo_db, monkeypatch):
    monkeypatch.setenv("CXSTATS_ENGINE", "presto")
    monkeypatch.delenv("CXSTATS_LAKE", raising=False)
    at = make_app(demo_db)
    assert not at.exception
    errors = [str(e.value).replace("\\", "") for e in at.error]
    assert len(errors) == 1 and "CXSTATS_ENGINE" in errors[0] and "presto" in errors[0]
