"""AppTest of the Linkage page (pages/linkage.py): its selectors rerun cleanly, the within-unit r, Holm's
p over five lags and the corrected figure beside the headline, and two units show no p and say why."""

from __future__ import annotations

import re

from app_fixtures import CHARTS, assert_clean, page_file, switch, texts
from linkage_data import build, survey

from cxstats import store

pytest_plugins = ["app_fixtures"]  # demo_db, fresh_demo_db, empty_db, users_yaml, make_app


def test_linkage_selectors_rerun_cleanly(make_app, demo_db):
    at = switch(make_app(demo_db), page_file("linkage"))
    at.selectbox(key="lk_metric").set_value("nps").run()
    at.select_slider(key="lk_lag").set_value(1).run()
    assert_clean(at, "linkage nps lag 1")
    assert "What this cannot show" in [s.value for s in at.subheader]
    assert len(at.get("plotly_chart")) >= CHARTS["linkage"]


def test_linkage_page_shows_within_r_holm_and_the_corrected_figure_beside_the_headline(make_app, demo_db):
    at = switch(make_app(demo_db), "pages/linkage.py")
    assert not at.exception
    labels = [m.label for m in at.metric]
    head = labels.index("CSAT % per +10 engagement points")
    assert labels[head + 4] == "Corrected for small-group noise"  # beside the headline, not instead of it
    assert at.metric[head].value.startswith("+") and at.metric[head + 4].value.startswith("+")
    words = texts(at).replace("\\", "")  # escape_md adds backslashes
    assert "Within-unit correlation r = " in words and "company-wide period effects removed" in words
    assert "Corrected for small-group noise:" in words and "not instead of it" in words
    assert "Corrected for unreliable unit averages" in words and "just as confounded" in words
    assert "repeated-measures" not in words.lower()
    lag_table = next(d.value for d in at.dataframe if "p (Holm, 5 lags)" in d.value.columns)
    assert list(lag_table["lag"]) == [-2, -1, 0, 1, 2]
    assert (lag_table["p (Holm, 5 lags)"] >= lag_table["p"] - 1e-12).all()


def test_two_units_page_shows_no_p_and_says_why(make_app, tmp_path):
    db = tmp_path / "two.duckdb"
    with store.connect(db) as con:
        build(con, survey(2, n_units=2, n_periods=6, coef=3.0))
    at = switch(make_app(db), "pages/linkage.py")
    assert not at.exception
    p_metric = next(m for m in at.metric if m.label == "p")
    assert p_metric.value == "—"
    words = texts(at).replace("\\", "")  # escape_md adds backslashes
    assert "unlikely to be chance" not in words
    assert "cannot be told apart from chance" in words
    assert all(float(v) >= 0.05 for v in re.findall(r"\bp = ([0-9][0-9.e+-]*)", words))
    overview = switch(make_app(db), "pages/overview.py")
    assert "unlikely to be chance" not in texts(overview)
