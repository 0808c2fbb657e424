"""AppTest: the Overview and the Customers page show the same figures when the feedback comes from a
Parquet lake (CXSTATS_LAKE) as from the DuckDB file (issue 16, engine-link), and the dashboard's
cache never serves one engine's figures for the other."""

from __future__ import annotations

import pytest
from app_fixtures import switch

pytest_plugins = ["app_fixtures", "engine_fixtures"]  # demo_db, make_app; demo_lake


def _shown(at) -> tuple:
    metrics = tuple((m.label, m.value) for m in at.metric)
    frames = tuple(d.value.to_json(orient="split", double_precision=12) for d in at.dataframe)
    return metrics, frames


@pytest.mark.parametrize("page", ["overview", "customers"])
def test_page_shows_the_same_figures_on_a_lake(make_app, demo_db, demo_lake, monkeypatch, page):
    at = switch(make_app(demo_db), f"pages/{page}.py")
    assert not at.exception, [e.value for e in at.exception]
    plain = _shown(at)
    assert plain[0] or plain[1]
    monkeypatch.setenv("CXSTATS_LAKE", str(demo_lake))
    at = switch(make_app(demo_db), f"pages/{page}.py")
    assert not at.exception, [e.value for e in at.exception]
    assert _shown(at) == plain


def test_cache_keys_differ_by_engine(demo_db, demo_lake, monkeypatch):
    import ui

    plain = ui._engine_key(str(demo_db))
    monkeypatch.setenv("CXSTATS_LAKE", str(demo_lake))
    assert ui._engine_key(str(demo_db)) != plain and str(demo_lake) in ui._engine_key(str(demo_db))
    monkeypatch.setenv("CXSTATS_LAKE", str(demo_lake / "nowhere"))
    assert ui._engine_key(str(demo_db)).startswith("invalid:")
