"""cxstats.charts: figure specs (suppression never drawn as a number, escaping, intervals).

Reference values are worked by hand or come from the textbook formulas, never from the code under test.
"""

from __future__ import annotations

import json
import math

import pandas as pd
import plotly.graph_objects as go
import pytest

from cxstats import charts


def spec(fig: go.Figure) -> str:
    return json.dumps(fig.to_plotly_json(), default=str)


# ---------------------------------------------------------------- fit band (hand-worked example)

# x = 1..5, y = 2,4,5,4,5: b = Sxy/Sxx = 6/10 = 0.6, a = 4 - 0.6*3 = 2.2, SSE = 2.4, s = sqrt(0.8),
# t(0.975, 3) = 3.182446; band half-width at x0 = s * t * sqrt(1/5 + (x0-3)^2/10)
T3 = 3.182446305284263
S = math.sqrt(0.8)


@pytest.mark.parametrize("x0, fit", [(1.0, 2.8), (2.0, 3.4), (3.0, 4.0), (4.0, 4.6), (5.0, 5.2)])
def test_fit_band_matches_hand_worked_ols(x0, fit):
    band = charts.fit_band([1, 2, 3, 4, 5], [2, 4, 5, 4, 5], points=5)
    row = band[band["x"] == x0].iloc[0]
    half = T3 * S * math.sqrt(1 / 5 + (x0 - 3) ** 2 / 10)
    assert row["fit"] == pytest.approx(fit)
    assert row["low"] == pytest.approx(fit - half, abs=1e-6)
    assert row["high"] == pytest.approx(fit + half, abs=1e-6)


@pytest.mark.parametrize("x, y", [([1, 2], [3, 4]), ([2, 2, 2, 2], [1, 2, 3, 4]), ([], [])])
def test_fit_band_empty_when_no_line_can_be_fitted(x, y):
    assert len(charts.fit_band(x, y)) == 0


# ---------------------------------------------------------------- engagement heatmap suppression


def cells():
    # shown cells of kept groups over two periods (what metrics.item_scores returns)
    return pd.DataFrame(
        [
            {"unit_id": "U1", "period": "2025-Q1", "item": "pride", "n": 10, "favourable": 8},
            {"unit_id": "U1", "period": "2025-Q2", "item": "pride", "n": 5, "favourable": 3},
            {"unit_id": "U1", "period": "2025-Q1", "item": "growth", "n": 10, "favourable": 5},
            {"unit_id": "U3", "period": "2025-Q1", "item": "growth", "n": 6, "favourable": 3},
        ]
    )


@pytest.mark.parametrize(
    "unit, item, shown",
    [
        ("U1", "pride", "73%"),  # (8 + 3) / (10 + 5) = 73.3 %
        ("U1", "growth", "50%"),
        ("U3", "pride", "suppressed"),  # item answered by too few in U3: no cell
        ("U3", "growth", "50%"),
        ("U2", "pride", "suppressed"),  # every group of U2 below the threshold
        ("U2", "growth", "suppressed"),
    ],
)
def test_heatmap_pools_periods_and_labels_suppressed_cells(unit, item, shown):
    hm = charts.engagement_heatmap(cells(), suppressed_units=["U2"]).data[0]
    assert hm.text[list(hm.y).index(unit)][list(hm.x).index(item)] == shown


def test_pooled_favourable_is_count_weighted():
    pooled = charts.pool_item_cells(cells()).set_index(["unit_id", "item"])
    assert pooled.loc[("U1", "pride"), "favourable_pct"] == pytest.approx(100 * 11 / 15)


def test_heatmap_never_draws_a_value_marked_suppressed():
    leaked = pd.DataFrame(
        [
            {"unit_id": "U1", "item": "pride", "favourable_pct": 81.25, "suppressed": False},
            {"unit_id": "U2", "item": "pride", "favourable_pct": 66.6666, "suppressed": True},
        ]
    )
    fig = charts.engagement_heatmap(leaked, suppressed_units=["U2"])
    s = spec(fig)
    assert "66.66" not in s and "67%" not in s
    hm = fig.data[0]
    assert list(hm.z[list(hm.y).index("U2")]) == [None]


def test_trend_overall_line_pools_respondents():
    # 2025-Q1: (70*10 + 50*30) / 40 = 55; 2025-Q2: only U1 kept -> 72
    groups = pd.DataFrame(
        {
            "unit_id": ["U1", "U2", "U1"],
            "period": ["2025-Q1", "2025-Q1", "2025-Q2"],
            "respondents": [10, 30, 8],
            "index": [70.0, 50.0, 72.0],
            "score_sum": [700.0, 1500.0, 576.0],
        }
    )
    fig = charts.engagement_trend(groups)
    assert list(fig.data[0].y) == pytest.approx([55.0, 72.0])


def test_trend_by_unit_leaves_missing_periods_as_gaps():
    groups = pd.DataFrame(
        {
            "unit_id": ["U1", "U2", "U1"],
            "period": ["2025-Q1", "2025-Q1", "2025-Q2"],
            "respondents": [10, 30, 8],
            "index": [70.0, 50.0, 72.0],
        }
    )
    fig = charts.engagement_trend(groups, by_unit=True)
    u2 = [t for t in fig.data if t.name == "U2"][0]
    assert list(u2.y) == [50.0, None]
    assert list(u2.text) == ["50.0", "suppressed"]


def test_answer_distribution_shares_per_item():
    df = pd.DataFrame({"item": ["a"] * 5, "k": [5] * 5, "score": [1, 2, 3, 4, 5], "answers": [1, 1, 2, 4, 2]})
    fig = charts.answer_distribution(df)
    assert [t.x[0] for t in fig.data] == pytest.approx([10, 10, 20, 40, 20])


# ---------------------------------------------------------------- escaping user text


@pytest.mark.parametrize(
    "build",
    [
        lambda u: charts.engagement_heatmap(pd.DataFrame([{"unit_id": u, "item": "i", "n": 5, "favourable": 2}])),
        lambda u: charts.linkage_scatter(
            [{"unit_id": u, "engagement": 50, "cx": 70, "respondents": 9, "cx_responses": 40}]
        ),
        lambda u: charts.cx_bars(pd.DataFrame({"unit_id": [u], "csat_pct": [80.0]}), by="unit_id", value="csat_pct"),
        lambda u: charts.contributions_chart(
            pd.DataFrame({"customer_id": [u], "score": [70], "contribution_loyalty": [40.0]})
        ),
    ],
)
def test_user_text_is_escaped(build):
    s = spec(build("<img src=x onerror=alert(1)>"))
    assert "<img" not in s
    assert "&lt;img" in s


# ---------------------------------------------------------------- linkage figures


def test_scatter_has_points_fit_and_band():
    units = [
        {"unit_id": f"U{i}", "engagement": 50 + i, "cx": 60 + 0.5 * i + (i % 3), "respondents": 10, "cx_responses": 30}
        for i in range(10)
    ]
    fig = charts.linkage_scatter(units, metric="csat_pct")
    names = [t.name for t in fig.data]
    assert names == ["95% band of the fit", "fit (OLS)", "unit"]
    assert list(fig.data[2].text) == [f"U{i}" for i in range(10)]


def test_lag_chart_error_bars_are_ci_minus_estimate():
    lags = [
        {"lag": 1, "coef": 0.2, "ci_low": 0.05, "ci_high": 0.4, "p": 0.01, "n": 50, "r": 0.3},
        {"lag": -1, "coef": 0.0, "ci_low": -0.1, "ci_high": 0.1, "p": 0.9, "n": 50, "r": 0.0},
    ]
    tr = charts.lag_chart(lags).data[0]
    assert list(tr.x) == [-1, 1]
    assert list(tr.error_y.array) == pytest.approx([0.1, 0.2])
    assert list(tr.error_y.arrayminus) == pytest.approx([0.1, 0.15])


def test_drivers_sorted_by_absolute_r():
    drivers = [
        {"item": "a", "r": 0.1, "ci_low": -0.2, "ci_high": 0.4, "p": 0.5, "q": 0.5},
        {"item": "b", "r": -0.6, "ci_low": -0.8, "ci_high": -0.3, "p": 0.001, "q": 0.002},
    ]
    tr = charts.drivers_chart(drivers).data[0]
    assert list(tr.y) == ["b", "a"]


@pytest.mark.parametrize(
    "build",
    [
        lambda: charts.engagement_heatmap(pd.DataFrame()),
        lambda: charts.engagement_trend(pd.DataFrame()),
        lambda: charts.wave_change(None),
        lambda: charts.answer_distribution(pd.DataFrame()),
        lambda: charts.cx_bars(pd.DataFrame(), by="unit_id", value="nps"),
        lambda: charts.cx_trend(pd.DataFrame(), value="nps"),
        lambda: charts.response_times(pd.DataFrame()),
        lambda: charts.linkage_scatter([]),
        lambda: charts.lag_chart([]),
        lambda: charts.drivers_chart([]),
        lambda: charts.quartile_chart(None),
        lambda: charts.contributions_chart(pd.DataFrame()),
        lambda: charts.tier_counts(pd.DataFrame()),
        lambda: charts.programme_effect_chart(None),
    ],
)
def test_empty_input_gives_a_figure_that_says_so(build):
    fig = build()
    assert isinstance(fig, go.Figure)
    assert fig.layout.annotations and fig.layout.annotations[0].text


def test_quartile_title_carries_difference_and_interval():
    fig = charts.quartile_chart({"top": 85.0, "bottom": 75.0, "diff": 10.0, "ci_low": 2.5, "ci_high": 17.5})
    assert "+10.0" in fig.layout.title.text and "+2.5" in fig.layout.title.text
    assert list(fig.data[0].y) == [75.0, 85.0]


def test_pool_cx_nps_and_margin_by_hand():
    # 50 promoters, 20 detractors of 100: NPS 30; SE = 100 * sqrt((.5 + .2 - .3^2) / 100) = 7.8102
    frame = pd.DataFrame(
        {
            "unit_id": ["A", "A"],
            "csat_n": [3, 1],
            "csat_top2": [2, 1],
            "csat_sum": [11.0, 5.0],
            "nps_n": [60, 40],
            "promoters": [30, 20],
            "detractors": [12, 8],
        }
    )
    row = charts.pool_cx(frame, "unit_id").iloc[0]
    assert row["nps"] == pytest.approx(30.0)
    assert row["nps_se"] == pytest.approx(7.810250, abs=1e-6)
    assert row["nps_low"] == pytest.approx(30 - 1.959964 * 7.810250, abs=1e-5)
    assert row["csat_pct"] == pytest.approx(75.0)
    assert row["csat_mean"] == pytest.approx(4.0)


def test_nps_bars_carry_margin_of_error():
    df = pd.DataFrame(
        {"unit_id": ["A", "B"], "nps": [30.0, 10.0], "low": [20.0, -5.0], "high": [40.0, 25.0], "n": [100, 50]}
    )
    tr = charts.cx_bars(df, by="unit_id", value="nps", low="low", high="high", n="n").data[0]
    assert list(tr.error_y.array) == pytest.approx([10, 15])
    assert list(tr.error_y.arrayminus) == pytest.approx([10, 15])
    assert list(tr.customdata) == [100, 50]


def test_response_times_in_percent():
    df = pd.DataFrame(
        {
            "source": ["mentions", "feedback"],
            "channel": ["twitter", "email"],
            "target_hours": [1, 6],
            "contacts": [10, 4],
            "share_within_target": [0.5, 0.25],
            "median_hours": [0.9, 7.0],
        }
    )
    tr = charts.response_times(df).data[0]
    assert list(tr.y) == pytest.approx([50, 25])
    assert list(tr.x) == ["twitter (mentions)", "email (feedback)"]


def test_programme_effect_is_labelled_estimate():
    means = pd.DataFrame({"group": ["rewarded", "comparison"], "orders_before": [1.0, 1.0], "orders_after": [1.5, 1.1]})
    eff = {
        "means": means,
        "orders": {"estimate": 0.4, "ci_low": 0.1, "ci_high": 0.7},
        "n_treated": 12,
        "design": "matched",
    }
    fig = charts.programme_effect_chart(eff)
    assert "estimate" in fig.layout.title.text and "+0.40" in fig.layout.title.text
    assert [list(t.y) for t in fig.data] == [[1.0, 1.5], [1.0, 1.1]]
    fig = charts.programme_effect_chart(eff | {"design": "holdout", "n_control": 3})
    assert "randomised" in fig.layout.title.text and "3 held out" in fig.layout.title.text


def test_wave_change_title_has_interval():
    ch = {
        "period_from": "2025-Q1",
        "period_to": "2025-Q2",
        "index_from": 60.0,
        "index_to": 65.0,
        "change": 5.0,
        "ci_low": 1.5,
        "ci_high": 8.5,
        "n_from": 20,
        "n_to": 22,
    }
    fig = charts.wave_change(ch)
    assert "+5.0" in fig.layout.title.text and "+1.5" in fig.layout.title.text


# ---------------------------------------------------------------- selection and pooling helpers


@pytest.mark.parametrize(
    "units, p_from, p_to, expected",
    [
        (None, None, None, ["a1", "a2", "b1", "b3"]),
        (["A"], None, None, ["a1", "a2"]),
        (None, "2025-Q2", None, ["a2", "b3"]),
        (None, "2024-Q4", "2025-Q1", ["a1", "b1"]),
        (["B"], "2025-Q2", "2025-Q4", ["b3"]),
        ([], None, None, []),
    ],
)
def test_in_selection_whole_units_and_periods(units, p_from, p_to, expected):
    frame = pd.DataFrame(
        {
            "unit_id": ["A", "A", "B", "B"],
            "period": ["2025-Q1", "2025-Q2", "2025-Q1", "2025-Q3"],
            "tag": ["a1", "a2", "b1", "b3"],
        }
    )
    assert list(charts.in_selection(frame, units, p_from, p_to)["tag"]) == expected


@pytest.mark.parametrize(
    "respondents, index, expected",
    [([10, 30], [70.0, 50.0], 55.0), ([5], [62.5], 62.5), ([], [], None)],
)
def test_pooled_index_weights_by_respondents(respondents, index, expected):
    groups = pd.DataFrame({"respondents": respondents, "index": index})
    got = charts.pooled_index(groups)
    assert got == (None if expected is None else pytest.approx(expected))


def test_backtest_chart():
    from cxstats import charts as ch

    bt = {
        "weeks": 26,
        "predicted": 30.0,
        "actual": 33,
        "deciles": [{"decile": 1, "predicted": 1.0, "actual": 2}, {"decile": 2, "predicted": 29.0, "actual": 31}],
    }
    fig = ch.backtest_chart(bt)
    assert [t.name for t in fig.data] == ["expected by the model", "actual"]
    assert list(fig.data[1].y) == [2, 31] and "26 weeks" in fig.layout.title.text
    assert ch.backtest_chart(None).layout.annotations
