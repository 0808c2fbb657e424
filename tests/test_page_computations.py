"""Computations that used to sit in pages, now in the library (pages hold no SQL and no statistics):
the Customers page's NPS margin, the Engagement page's units with two periods, the Advocates page's filters
and their audit text, and the Data page's settings in one transaction."""

from __future__ import annotations

import io
import os
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from scipy.stats import norm

from cxstats import ADMIN, AccessDenied, CxStatsError, Viewer, advocates, charts, ingest, metrics, store


def test_nps_margin_is_the_95pct_margin_of_the_promoter_minus_detractor_mean():
    # 2 units; per answer +1 promoter, 0 passive, -1 detractor: NPS is 100 x the mean, its SE 100 x sd / sqrt(n)
    answers = {"A": [1] * 7 + [0] * 2 + [-1] * 3, "B": [1] * 5 + [0] * 9 + [-1] * 4}
    frame = pd.DataFrame(
        [
            {
                "unit_id": u,
                "csat_n": 0,
                "csat_top2": 0,
                "csat_sum": 0,
                "nps_n": len(a),
                "promoters": a.count(1),
                "detractors": a.count(-1),
            }
            for u, a in answers.items()
        ]
    )
    pooled = charts.pool_cx(frame.assign(all="all"), "all").iloc[0]
    every = np.array(answers["A"] + answers["B"], dtype=float)
    se = 100 * every.std(ddof=0) / np.sqrt(len(every))
    assert pooled["nps"] == pytest.approx(100 * every.mean())
    assert pooled["nps_margin"] == pytest.approx(norm.ppf(0.975) * se, rel=1e-6)
    assert pooled["nps_high"] - pooled["nps"] == pytest.approx(pooled["nps_margin"])
    assert "nps_margin" in charts.pool_cx(frame.iloc[0:0], "unit_id").columns


def test_comparable_periods_lists_units_with_two_shown_periods_in_order():
    groups = metrics.EngagementGroups(
        pd.DataFrame(
            {
                "unit_id": ["S1", "S1", "S1", "S2", "S3", "S3"],
                "period": ["2024-Q3", "2024-Q1", "2024-Q2", "2024-Q1", "2024-Q2", "2024-Q4"],
            }
        ),
        suppressed_groups=0,
        excluded_respondents=0,
        min_group=5,
        period="quarter",
    )
    assert metrics.comparable_periods(groups) == {"S1": ("2024-Q1", "2024-Q2", "2024-Q3"), "S3": ("2024-Q2", "2024-Q4")}
    assert metrics.comparable_periods(groups, ["S2", "S3"]) == {"S3": ("2024-Q2", "2024-Q4")}
    assert metrics.comparable_periods(groups, []) == {}
    empty = metrics.EngagementGroups(pd.DataFrame(columns=["unit_id", "period"]), 0, 0, 5, "quarter")
    assert metrics.comparable_periods(empty) == {}


def _result():
    return SimpleNamespace(
        customers=pd.DataFrame(
            {
                "customer_id": ["C1", "C2", "C3", "C4"],
                "tier": ["Champion", "Advocate", "Rising", "Champion"],
                "score": [91.0, 65.0, 45.0, 85.0],
                "consent": [True, False, True, True],
                "flags": [(), (), (), ("returns",)],
            }
        )
    )


def test_filter_customers_by_tier_score_consent_and_flags():
    r = _result()
    assert list(advocates.filter_customers(r)["customer_id"]) == ["C1", "C2", "C3", "C4"]
    assert list(advocates.filter_customers(r, tiers=["Champion"])["customer_id"]) == ["C1", "C4"]
    assert list(advocates.filter_customers(r, min_score=60)["customer_id"]) == ["C1", "C2", "C4"]
    assert list(advocates.filter_customers(r, consent_only=True)["customer_id"]) == ["C1", "C3", "C4"]
    assert list(advocates.filter_customers(r, hide_flagged=True, consent_only=True)["customer_id"]) == ["C1", "C3"]
    assert list(advocates.filter_customers(r, tiers=[])["customer_id"]) == []
    assert "contribution_reach" in advocates.filter_customers(r).columns  # the table's columns always exist


def test_filter_text_says_every_filter():
    text = advocates.filter_text(
        as_of="2026-09-30",
        weights={"loyalty": 0.4, "reach": 0.1},
        tiers=["Champion", "Advocate"],
        min_score=40,
        consent_only=True,
        hide_flagged=True,
        min_p_alive=0.25,
    )
    assert text == (
        "tiers Champion/Advocate; score >= 40; consent only; flagged hidden; as of 2026-09-30; "
        "weights loyalty 0.4, reach 0.1; to reward: P(alive) >= 0.25"
    )
    assert advocates.filter_text(as_of="2026-09-30", weights={}).startswith(
        "tiers Champion/Advocate/Rising/Candidate; score >= 0; as of"
    )


def test_import_upload_returns_the_rejected_rows_and_leaves_no_file(db, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    data = b"Store,Date,CSAT\nS001,2024-01-01,4\nS001,2024-01-02,9\nS002,2024-01-03,5\n"
    up = ingest.import_upload(db, "feedback", data, file_name="week.csv", skip_invalid=True, viewer=ADMIN)
    assert up.result.rows_loaded == 2 and up.result.rejected == 1
    rejected = pd.read_csv(io.BytesIO(up.rejected_csv))
    assert len(rejected) == 1 and "9" in rejected.astype(str).to_csv()
    assert [p for p in os.listdir(tmp_path) if p.endswith(".rejected.csv")] == []
    clean = ingest.import_upload(
        db, "feedback", b"Store,Date,CSAT\nS001,2024-02-01,4\n", file_name="b.csv", viewer=ADMIN
    )
    assert clean.rejected_csv is None and clean.result.rows_loaded == 1
    with pytest.raises(AccessDenied):
        ingest.import_upload(db, "engagement", data, file_name="w.csv", viewer=Viewer("marketing", ()))


def test_set_settings_writes_all_or_nothing_in_one_call(db):
    with store.connect(db) as con:
        before = store.settings(con)
        with pytest.raises(CxStatsError, match="min_group may not be below"):
            store.set_settings(con, {"reward_cooldown_days": 30, "min_group": 2}, viewer=ADMIN)
        assert store.settings(con) == before  # the good value was not written either
        with pytest.raises(AccessDenied):
            store.set_settings(con, {"reward_cooldown_days": 30}, viewer=Viewer("leader", ()))
        store.set_settings(con, {"min_group": 7, "period": "month", "reward_cooldown_days": 30}, viewer=ADMIN)
        after = store.settings(con)
    assert (after.min_group, after.period, after.reward_cooldown_days) == (7, "month", 30)


def test_preview_facts_name_what_the_upload_page_shows():
    from cxstats import ADMIN, ingest

    pv = ingest.preview(b"Store;Date;CSAT\nS1;05/03/2024;4\nS2;25/03/2024;5\n", "march.csv", "feedback", viewer=ADMIN)
    assert pv.facts()[:2] == ["2 data rows", f"header found on row {pv.header_row}"]
