"""cxstats.overview (Overview headline figures) and cxstats.quality (filters, data quality, freshness).

A small database whose figures are worked out by hand below (DESIGN.md formulas), loaded
through the ordinary import path.
"""

from __future__ import annotations

import math
from datetime import date

import pytest

from cxstats import ADMIN, Viewer, ingest, overview, quality, store

# Unit A, 2025-Q1: five respondents on a 5-point scale (respondent score 100 * (mean - 1) / 4):
#   (5,5) -> 100, (4,4) -> 75, (3,3) -> 50, (2,4) -> 50, (1,1) -> 0   => index 275 / 5 = 55.0
# Unit B, 2025-Q1: four respondents, all 5s -> below min_group 5: suppressed everywhere.
ENGAGEMENT = """unit_id,survey_date,respondent_id,q1,q2
A,2025-01-10,r1,5,5
A,2025-01-11,r2,4,4
A,2025-01-12,r3,3,3
A,2025-01-13,r4,2,4
A,2025-01-14,r5,1,1
B,2025-01-10,s1,5,5
B,2025-01-11,s2,5,5
B,2025-01-12,s3,5,5
B,2025-01-13,s4,5,5
"""
# Feedback. A: csat 5,4,3,1 (2 of 4 in {4,5} -> 50.0 %); nps 10,9,8,7,3 (P 2/5, D 1/5 -> NPS 20,
#   SE 100 * sqrt((.4 + .2 - .2^2) / 5) = 33.4664). B: csat 2,2; nps 0,0.
# A and B together: csat 2 of 6 -> 33.333 %; nps P 2/7, D 3/7 -> NPS -14.2857,
#   SE 100 * sqrt((5/7 - (1/7)^2) / 7) = 31.4842.
FEEDBACK = """unit_id,date,csat,nps,response_id,channel
A,2025-02-01,5,10,f1,email
A,2025-02-02,4,9,f2,email
A,2025-02-03,3,8,f3,
A,2025-02-04,1,7,f4,web
A,2025-03-05,,3,f5,web
B,2025-02-01,2,0,f6,email
B,2025-02-02,2,0,f7,email
"""


@pytest.fixture(scope="module")
def small_db(tmp_path_factory):
    db = tmp_path_factory.mktemp("overview") / "small.duckdb"
    ingest.import_file(db, "engagement", ENGAGEMENT.encode(), file_name="eng.csv", viewer=ADMIN)
    ingest.import_file(db, "feedback", FEEDBACK.encode(), file_name="fb.csv", viewer=ADMIN)
    return db


def headline(db, viewer=ADMIN, *args, **kw):
    with store.connect(db) as con:
        return overview.headline(con, *args, viewer=viewer, **kw)


@pytest.mark.parametrize(
    "viewer, units, expected",
    [
        # viewer, unit filter -> index, respondents, suppressed, csat %, nps, nps se, units
        (ADMIN, None, (55.0, 5, 1, 100 * 2 / 6, -100 / 7, 31.4842, 2)),
        (ADMIN, ("A",), (55.0, 5, 1, 50.0, 20.0, 33.4664, 1)),
        (ADMIN, ("B",), (None, 0, 1, 0.0, -100.0, 0.0, 1)),
        (Viewer("manager", ("A",), "m"), None, (55.0, 5, 0, 50.0, 20.0, 33.4664, 1)),
        (Viewer("marketing", (), "mk"), None, (None, 0, 0, 100 * 2 / 6, -100 / 7, 31.4842, 2)),
    ],
    ids=["admin-all", "admin-A", "admin-B-suppressed", "manager-A", "marketing"],
)
def test_headline_figures_match_hand_computation(small_db, viewer, units, expected):
    index, respondents, suppressed, csat, nps, se, n_units = expected
    h = headline(small_db, viewer, units)
    if index is None:
        assert h.engagement_index is None
    else:
        assert h.engagement_index == pytest.approx(index)
    assert (h.respondents, h.suppressed_groups, h.units) == (respondents, suppressed, n_units)
    assert h.csat_pct == pytest.approx(csat)
    assert h.nps == pytest.approx(nps)
    assert h.nps_se == pytest.approx(se, abs=1e-4)
    assert h.nps_margin == pytest.approx(1.959964 * se, abs=1e-3)


def test_a_suppressed_group_never_reaches_a_total(small_db):
    # B's four perfect answers would lift the index to (275 + 400) / 9 = 75 if they leaked
    h = headline(small_db)
    assert h.engagement_index == pytest.approx(55.0)
    assert h.engagement_groups == 1 and h.min_group == 5


@pytest.mark.parametrize(
    "period_from, period_to, has_data",
    [("2025-Q1", "2025-Q1", True), ("2024-Q1", "2024-Q4", False), ("2025-Q2", None, False), (None, "2025-Q1", True)],
)
def test_period_range_selects_whole_periods(small_db, period_from, period_to, has_data):
    h = headline(small_db, ADMIN, None, period_from, period_to)
    assert (h.csat_n > 0) is has_data
    assert (h.respondents == 5) is has_data


def test_empty_database_gives_no_figures_and_no_error(tmp_path):
    h = headline(tmp_path / "empty.duckdb")
    assert (h.engagement_index, h.csat_pct, h.nps, h.nps_margin, h.units) == (None, None, None, None, 0)


# ---------------------------------------------------------------- quality


@pytest.mark.parametrize(
    "d, period, label",
    [
        (date(2025, 1, 1), "quarter", "2025-Q1"),
        (date(2025, 3, 31), "quarter", "2025-Q1"),
        (date(2025, 4, 1), "quarter", "2025-Q2"),
        (date(2025, 12, 31), "quarter", "2025-Q4"),
        (date(2025, 2, 3), "month", "2025-02"),
        (date(2025, 11, 30), "month", "2025-11"),
    ],
)
def test_period_label_is_the_calendar_period(d, period, label):
    assert quality.period_label(d, period) == label


def test_filter_options_list_whole_units_and_periods(small_db):
    with store.connect(small_db) as con:
        everyone = quality.filter_options(con, viewer=ADMIN)
        manager = quality.filter_options(con, viewer=Viewer("manager", ("B",), "m"))
    assert [u.unit_id for u in everyone.units] == ["A", "B"]
    assert everyone.periods == ("2025-Q1",) and everyone.period == "quarter"
    assert [u.unit_id for u in manager.units] == ["B"]


def test_data_quality_counts_rows_dates_units_and_missing_values(small_db):
    with store.connect(small_db) as con:
        tables = {q.table: q for q in quality.data_quality(con, viewer=ADMIN)}
        marketing = {q.table for q in quality.data_quality(con, viewer=Viewer("marketing", (), "mk"))}
        manager = {q.table: q for q in quality.data_quality(con, viewer=Viewer("manager", ("A",), "m"))}
    fb = tables["feedback"]
    assert (fb.rows, fb.batches, fb.units) == (7, 1, 2)
    assert (fb.first_date, fb.last_date) == (date(2025, 2, 1), date(2025, 3, 5))
    assert fb.missing["csat"] == 1 and fb.missing["nps"] == 0 and fb.missing["channel"] == 1
    assert "csat 1" in fb.missing_text
    assert tables["engagement"].rows == 9
    assert tables["units"].rows == 2  # created from the data, in the engagement batch
    assert "engagement" not in marketing
    assert manager["feedback"].rows == 5 and "customers" not in manager


@pytest.mark.parametrize("today, incomplete", [(date(2025, 3, 20), True), (date(2025, 4, 1), False)])
def test_freshness_flags_a_period_that_has_not_ended(small_db, today, incomplete):
    with store.connect(small_db) as con:
        fresh = {f.kind: f for f in quality.freshness(con, viewer=ADMIN, today=today)}
    assert fresh["feedback"].latest == date(2025, 3, 5)
    assert fresh["feedback"].period == "2025-Q1"
    assert fresh["feedback"].incomplete is incomplete


def test_data_version_moves_with_loads_undo_and_settings(small_db, tmp_path):
    import shutil

    db = tmp_path / "copy.duckdb"
    shutil.copyfile(small_db, db)
    with store.connect(db) as con:
        v0 = quality.data_version(con)
        store.set_setting(con, "min_group", 6, viewer=ADMIN)
        v1 = quality.data_version(con)
        store.undo(con, 2, viewer=ADMIN)
        v2 = quality.data_version(con)
    assert len({v0, v1, v2}) == 3
    assert not math.isnan(v2[0])
