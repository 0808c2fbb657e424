"""AppTest of the Overview page (pages/overview.py): "What changed" with its count, the within-unit
sentence with the corrected figure, the board report's build and download, and marketing's refusal."""

from __future__ import annotations

import pytest
from app_fixtures import MANAGER_UNITS, assert_clean, switch, texts

pytest_plugins = ["app_fixtures"]  # demo_db, fresh_demo_db, empty_db, users_yaml, make_app


def test_overview_shows_what_changed_with_the_count(make_app, demo_db):
    at = make_app(demo_db, "leader")
    assert_clean(at)
    assert "What changed" in [s.value for s in at.subheader]
    assert any("comparisons" in c.value and "q < 0.10" in c.value for c in at.caption)
    mgr = make_app(demo_db, "manager")
    rows = [d.value for d in mgr.dataframe if "measure" in d.value.columns]
    for r in rows:
        assert set(r["unit"]) <= set(MANAGER_UNITS)


def test_overview_sentence_carries_the_corrected_figure(make_app, demo_db):
    at = switch(make_app(demo_db), "pages/overview.py")
    assert not at.exception
    info = " ".join(i.value for i in at.info).replace("\\", "")  # escape_md adds backslashes
    assert "Within units:" in info and "Corrected for small-group noise" in info
    assert info.index("Within units:") < info.index("Corrected for small-group noise")


# ---------------------------------------------------------------- the board report's download (DESIGN.md "Leader's report"; tests/test_report.py for its contents)


def test_leader_builds_and_downloads_the_report_on_the_overview(make_app, demo_db):
    at = make_app(demo_db, "leader")
    switch(at, "pages/overview.py")
    assert not at.exception
    at.button(key="ov_report_build").click().run(timeout=300)  # charts by Chromium: slow on a loaded machine
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert at.get("download_button"), "no download button after building"
    assert "Board report" in texts(at)


def test_marketing_has_no_overview_and_no_report(make_app, demo_db):
    at = make_app(demo_db, "marketing")
    with pytest.raises(ValueError, match="Could not find a navigation page"):
        at.switch_page("pages/overview.py")
