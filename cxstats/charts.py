"""Plotly figure builders for the dashboard: a DataFrame or a result in, a ``go.Figure`` out.

Rules kept here so every page gets them for free:
- A suppressed group (fewer than min_group respondents) is never drawn as a number: its cell is
  empty and labelled "suppressed", whatever value the input carries (defence in depth; the library
  already leaves those values out).
- User text (unit names, items, customer ids) is HTML-escaped before it reaches a label or a
  hover, so a unit called ``<b>x</b>`` is shown as typed, never rendered.
- Figures carry full-precision data; only labels are rounded.

This module never imports streamlit.
"""

from __future__ import annotations

import html
import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from . import metrics
from .stats import Z_975, num

SUPPRESSED = "suppressed"
FAVOURABLE_SCALE = "RdYlGn"
CX_LABELS = {"csat_pct": "CSAT % (share 4-5)", "csat_mean": "CSAT mean (1-5)", "nps": "NPS (-100..100)"}
TIER_COLOURS = {"Champion": "#1b7837", "Advocate": "#5aae61", "Rising": "#a6dba0", "Candidate": "#d9d9d9"}


def safe_text(value: Any) -> str:
    """User text as a label: HTML-escaped (Plotly renders a subset of HTML in labels)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return html.escape(str(value), quote=False)


_num = num  # a finite float, or None (so Plotly leaves a gap instead of drawing NaN): cxstats.stats.num


def _get(obj: Any, name: str, default: Any = None) -> Any:
    """Field of a result: works for dataclasses and for the JSON dicts of ``as_json()``."""
    if obj is None:
        return default
    if isinstance(obj, Mapping):
        return obj.get(name, default)
    return getattr(obj, name, default)


def _records(rows: Any) -> list[Any]:
    if rows is None:
        return []
    if isinstance(rows, pd.DataFrame):
        return rows.to_dict("records")
    return list(rows)


def empty_figure(message: str) -> go.Figure:
    """A blank figure that says why there is nothing to draw."""
    fig = go.Figure()
    fig.add_annotation(text=safe_text(message), showarrow=False, x=0.5, y=0.5, xref="paper", yref="paper")
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    fig.update_layout(height=240, margin=dict(l=10, r=10, t=30, b=10))
    return fig


def _suppressed_mask(df: pd.DataFrame) -> pd.Series:
    if "suppressed" in df.columns:
        return df["suppressed"].fillna(False).astype(bool)
    return pd.Series(False, index=df.index)


in_selection = metrics.in_selection  # the one selection filter (whole units, whole periods)


def pooled_index(groups: pd.DataFrame) -> float | None:
    """Engagement index over every respondent of the given kept groups: ``sum(score_sum) / sum(respondents)``.

    Example: groups (index 70, 10 people) and (index 50, 30 people) pool to (700 + 1500) / 40 = 55.
    """
    if groups is None or len(groups) == 0:
        return None
    n = float(groups["respondents"].sum())
    if n <= 0:
        return None
    total = (
        groups["score_sum"].sum() if "score_sum" in groups.columns else (groups["index"] * groups["respondents"]).sum()
    )
    return float(total / n)


# ---------------------------------------------------------------- engagement


def pool_item_cells(cells: pd.DataFrame) -> pd.DataFrame:
    """Pool shown (unit, period, item) cells over the selected periods: one row per unit and item.

    ``favourable_pct = 100 * sum(favourable) / sum(n)`` over the unit's shown cells of that item
    (the cells of suppressed groups are not in the input, so they never enter the sum).
    Example: cells 8 of 10 and 3 of 5 favourable pool to 100 * 11 / 15 = 73.3 %.
    """
    if cells is None or len(cells) == 0:
        return pd.DataFrame(columns=["unit_id", "item", "n", "favourable", "favourable_pct"])
    out = (
        cells.assign(unit_id=cells["unit_id"].astype(str), item=cells["item"].astype(str))
        .groupby(["unit_id", "item"], as_index=False)[["n", "favourable"]]
        .sum()
    )
    out["favourable_pct"] = 100.0 * out["favourable"] / out["n"]
    return out


def engagement_heatmap(
    cells: pd.DataFrame, *, suppressed_units: Iterable[str] = (), items: Sequence[str] | None = None
) -> go.Figure:
    """Units x items heatmap of favourable % (score >= k-1); suppressed cells are blank and say so.

    ``cells``: shown cells with unit_id, item and either favourable + n (pooled over periods with
    :func:`pool_item_cells`) or favourable_pct; a ``suppressed`` column, when present, blanks a
    row whatever value it carries (defence in depth). ``suppressed_units``: units in the selection
    whose every group is below min_group (drawn as a row of "suppressed" cells). A missing
    (unit, item) cell is an item answered by too few people: also "suppressed".
    """
    d = pd.DataFrame() if cells is None else cells.copy()
    extra = [str(u) for u in suppressed_units]
    if len(d) == 0 and not extra:
        return empty_figure("No engagement results for this selection")
    if len(d):
        mask = _suppressed_mask(d)
        d = d[~mask]
        if "favourable_pct" not in d.columns or "n" in d.columns:
            d = pool_item_cells(d)
    units = sorted(set(d["unit_id"].astype(str)) if len(d) else set()) + sorted(
        set(extra) - (set(d["unit_id"].astype(str)) if len(d) else set())
    )
    cols = list(items) if items else (sorted(set(d["item"].astype(str))) if len(d) else [])
    if not cols:
        return empty_figure("Every group in this selection is suppressed (fewer respondents than the threshold)")
    grid = (
        d.pivot_table(index="unit_id", columns="item", values="favourable_pct", aggfunc="first")
        if len(d)
        else pd.DataFrame()
    ).reindex(index=units, columns=cols)
    z = [[_num(v) for v in row] for row in grid.to_numpy()]
    text = [[SUPPRESSED if v is None else f"{v:.0f}%" for v in row] for row in z]
    fig = go.Figure(
        go.Heatmap(
            z=z,
            x=[safe_text(i) for i in cols],
            y=[safe_text(u) for u in units],
            text=text,
            texttemplate="%{text}",
            hovertemplate="unit %{y}<br>item %{x}<br>favourable: %{text}<extra></extra>",
            colorscale=FAVOURABLE_SCALE,
            zmin=0,
            zmax=100,
            colorbar=dict(title="favourable %"),
            hoverongaps=True,
        )
    )
    fig.update_layout(
        title="Favourable answers by unit and item (blank = suppressed, too few respondents)",
        height=max(300, 26 * len(units) + 160),
        margin=dict(l=10, r=10, t=50, b=10),
        yaxis=dict(autorange="reversed", type="category"),
        xaxis=dict(type="category"),
    )
    return fig


def engagement_trend(groups: pd.DataFrame, *, by_unit: bool = False) -> go.Figure:
    """Engagement index (0-100) by period: one line over all selected units, or one per unit.

    ``groups``: kept (unit, period) groups with unit_id, period, respondents and score_sum (sum of
    respondent scores) or index. The overall line pools respondents:
    ``index(period) = sum(score_sum) / sum(respondents)`` over the period's kept groups, so it
    equals the mean over every kept respondent. Suppressed groups are not in the input: a unit's
    line has a gap there (and a suppressed column, when present, blanks a point).
    """
    if groups is None or len(groups) == 0:
        return empty_figure("No engagement periods with enough respondents for this selection")
    d = groups.copy()
    d = d[~_suppressed_mask(d)]
    periods = sorted(set(d["period"].astype(str)))
    fig = go.Figure()
    if by_unit:
        for name, g in d.groupby(d["unit_id"].astype(str), sort=True):
            s = g.set_index(g["period"].astype(str))["index"].reindex(periods)
            ys = [_num(v) for v in s]
            fig.add_trace(
                go.Scatter(
                    x=periods,
                    y=ys,
                    mode="lines+markers",
                    name=safe_text(name),
                    connectgaps=False,
                    text=[SUPPRESSED if v is None else f"{v:.1f}" for v in ys],
                    hovertemplate="%{x}: %{text}<extra>" + safe_text(name) + "</extra>",
                )
            )
    else:
        if "score_sum" not in d.columns:
            d["score_sum"] = d["index"] * d["respondents"]
        p = d.groupby(d["period"].astype(str))[["score_sum", "respondents"]].sum().reindex(periods)
        ys = [_num(v) for v in p["score_sum"] / p["respondents"]]
        fig.add_trace(
            go.Scatter(
                x=periods,
                y=ys,
                mode="lines+markers",
                name="all selected units",
                customdata=p["respondents"].fillna(0).astype(int).tolist(),
                hovertemplate="%{x}: %{y:.1f} (%{customdata} respondents)<extra></extra>",
            )
        )
    fig.update_layout(
        title="Engagement index by period (gaps = suppressed or no survey)",
        yaxis=dict(title="engagement index (0-100)", range=[0, 100]),
        xaxis=dict(title="period", type="category"),
        height=380,
        margin=dict(l=10, r=10, t=50, b=10),
    )
    return fig


def answer_distribution(df: pd.DataFrame) -> go.Figure:
    """Share of each answer per item (stacked to 100%), from answer counts over shown cells only.

    ``df`` columns: item, score, and answers (or count); items on a 7-point scale get 7 segments.
    """
    if df is None or len(df) == 0:
        return empty_figure("No answers in kept groups for this selection")
    d = df.rename(columns={"answers": "count"}).copy()
    d["item"] = d["item"].astype(str)
    d["score"] = d["score"].astype(int)
    d = d.groupby(["item", "score"], as_index=False)["count"].sum()
    totals = d.groupby("item")["count"].transform("sum")
    d["share"] = 100 * d["count"] / totals
    items = sorted(d["item"].unique())
    k = int(d["score"].max())
    colours = _diverging(k)
    fig = go.Figure()
    for s in range(1, k + 1):
        g = d[d["score"] == s].set_index("item")
        fig.add_trace(
            go.Bar(
                y=[safe_text(i) for i in items],
                x=[_num(g["share"].get(i)) or 0.0 for i in items],
                customdata=[int(g["count"].get(i, 0)) for i in items],
                name=str(s),
                orientation="h",
                marker_color=colours[s - 1],
                hovertemplate="%{y}: answer " + str(s) + " %{x:.1f}% (%{customdata} answers)<extra></extra>",
            )
        )
    fig.update_layout(
        barmode="stack",
        title="Answer distribution per item (kept groups only)",
        xaxis=dict(title="share of answers (%)", range=[0, 100]),
        legend=dict(title="answer", traceorder="normal"),
        height=max(300, 28 * len(items) + 140),
        margin=dict(l=10, r=10, t=50, b=10),
        yaxis=dict(autorange="reversed", type="category"),
    )
    return fig


def _diverging(k: int) -> list[str]:
    from plotly.colors import sample_colorscale

    return sample_colorscale(FAVOURABLE_SCALE, [i / (k - 1) if k > 1 else 0.5 for i in range(k)])


def wave_change(change: Any) -> go.Figure:
    """Two periods of one unit and the difference with its 95% CI (Welch), from ``metrics.WaveChange``.

    Fields used: period_from, period_to, index_from, index_to, change, ci_low, ci_high, n_from, n_to.
    """
    if change is None:
        return empty_figure("Choose a unit and two periods with enough respondents")
    labels = [
        f"{_get(change, 'period_from')} (n={_get(change, 'n_from')})",
        f"{_get(change, 'period_to')} (n={_get(change, 'n_to')})",
    ]
    fig = go.Figure(
        go.Bar(
            x=[safe_text(v) for v in labels],
            y=[_num(_get(change, "index_from")), _num(_get(change, "index_to"))],
            marker_color=["#9ecae1", "#3182bd"],
            hovertemplate="%{x}: %{y:.1f}<extra></extra>",
        )
    )
    fig.update_layout(
        title=(
            f"Change {_fmt(_get(change, 'change'), '+.1f')} points (95% CI {_fmt(_get(change, 'ci_low'), '+.1f')}"
            f" to {_fmt(_get(change, 'ci_high'), '+.1f')}, Welch)"
        ),
        yaxis=dict(title="engagement index (0-100)", range=[0, 100]),
        xaxis=dict(type="category"),
        height=320,
        margin=dict(l=10, r=10, t=50, b=10),
        showlegend=False,
    )
    return fig


def _fmt(v: Any, spec: str) -> str:
    n = _num(v)
    return "n/a" if n is None else format(n, spec)


# ---------------------------------------------------------------- customers


def pool_cx(frame: pd.DataFrame, by: str | Sequence[str]) -> pd.DataFrame:
    """Sum feedback counts (``metrics.CX_COLUMNS``) by ``by`` and recompute CSAT %, CSAT mean, NPS.

    Adds the NPS 95% margin of error ``nps_margin = 1.959964 * nps_se``, the interval ``nps +- nps_margin``
    (nps_low, nps_high) and n (answers).
    Pooling counts, not averaging rates, weights every answer equally.
    """
    from .metrics import CX_COLUMNS, add_cx_metrics

    keys = [by] if isinstance(by, str) else list(by)
    if frame is None or len(frame) == 0:
        return pd.DataFrame(
            columns=keys
            + CX_COLUMNS
            + ["csat_pct", "csat_mean", "nps", "nps_se", "nps_margin", "nps_low", "nps_high", "n"]
        )
    out = add_cx_metrics(frame.groupby(keys, as_index=False)[CX_COLUMNS].sum())
    out["nps_margin"] = Z95 * out["nps_se"]  # the 95% margin of error shown as "NPS +- margin"
    out["nps_low"] = out["nps"] - out["nps_margin"]
    out["nps_high"] = out["nps"] + out["nps_margin"]
    return out


Z95 = Z_975  # one definition of the 1.959964 constant (cxstats.stats)


def cx_bars(
    df: pd.DataFrame,
    *,
    by: str,
    value: str,
    low: str | None = None,
    high: str | None = None,
    n: str | None = None,
    title: str = "",
    axis_title: str = "",
) -> go.Figure:
    """A bar per category (unit, channel) with an optional interval (e.g. NPS margin of error).

    ``df`` columns: ``by``, ``value``, optionally ``low``/``high`` (interval ends) and ``n``.
    """
    if df is None or len(df) == 0 or df[value].notna().sum() == 0:
        return empty_figure("No customer feedback for this selection")
    d = df[df[value].notna()].sort_values(value, ascending=False)
    ys = [_num(v) for v in d[value]]
    bar = dict(x=[safe_text(v) for v in d[by]], y=ys, marker_color="#3182bd", name=value)
    bar["customdata"] = d[n].fillna(0).astype(int).tolist() if n and n in d.columns else [0] * len(d)
    bar["hovertemplate"] = "%{x}: %{y:.1f} (n=%{customdata})<extra></extra>"
    if low and high and low in d.columns and high in d.columns:
        up = [None if (h is None or y is None) else h - y for h, y in zip(map(_num, d[high]), ys)]
        down = [None if (lo is None or y is None) else y - lo for lo, y in zip(map(_num, d[low]), ys)]
        bar["error_y"] = dict(type="data", array=up, arrayminus=down, visible=True)
    fig = go.Figure(go.Bar(**bar))
    fig.update_layout(
        title=title,
        yaxis=dict(title=axis_title),
        xaxis=dict(type="category"),
        height=360,
        margin=dict(l=10, r=10, t=50, b=10),
    )
    return fig


def cx_trend(
    df: pd.DataFrame, *, value: str, group: str | None = None, title: str = "", axis_title: str = ""
) -> go.Figure:
    """A CX metric by period, one line per group (or one line)."""
    if df is None or len(df) == 0:
        return empty_figure("No customer feedback for this selection")
    fig = go.Figure()
    groups = df.groupby(group, sort=True) if group else [("all", df)]
    for name, g in groups:
        g = g.sort_values("period")
        fig.add_trace(
            go.Scatter(
                x=[str(p) for p in g["period"]],
                y=[_num(v) for v in g[value]],
                mode="lines+markers",
                name=safe_text(name),
                hovertemplate="%{x}: %{y:.1f}<extra>" + safe_text(name) + "</extra>",
            )
        )
    fig.update_layout(
        title=title,
        yaxis=dict(title=axis_title),
        xaxis=dict(title="period", type="category"),
        height=360,
        margin=dict(l=10, r=10, t=50, b=10),
    )
    return fig


def response_times(df: pd.DataFrame) -> go.Figure:
    """Share of contacts answered within the expected time (1 h Twitter/X, 6 h Facebook/email, 12 h else).

    ``df`` (``metrics.response_times``) columns: source, channel, target_hours, contacts,
    share_within_target (0..1), median_hours.
    """
    if df is None or len(df) == 0:
        return empty_figure("No contacts with a recorded contact time (contacted_at / posted_at)")
    d = df.copy()
    label = d["channel"].map(safe_text)
    if "source" in d.columns:
        label = label + " (" + d["source"].map(safe_text) + ")"
    med = d["median_hours"] if "median_hours" in d.columns else pd.Series(np.nan, index=d.index)
    custom = np.column_stack([d["target_hours"].astype(float), d["contacts"].astype(int), med.astype(float)])
    fig = go.Figure(
        go.Bar(
            x=label.tolist(),
            y=[_num(v) for v in 100 * d["share_within_target"].astype(float)],
            customdata=custom,
            marker_color="#31a354",
            text=[f"target {t:g} h" for t in d["target_hours"].astype(float)],
            textposition="outside",
            hovertemplate="%{x}: %{y:.0f}% within %{customdata[0]:g} h (of %{customdata[1]} contacts; "
            "median reply %{customdata[2]:.1f} h)<extra></extra>",
        )
    )
    fig.update_layout(
        title="Contacts answered within the expected time",
        yaxis=dict(title="% within target", range=[0, 110]),
        xaxis=dict(type="category"),
        height=360,
        margin=dict(l=10, r=10, t=50, b=10),
    )
    return fig


# ---------------------------------------------------------------- linkage


def fit_band(x: Sequence[float], y: Sequence[float], *, points: int = 50, level: float = 0.95) -> pd.DataFrame:
    """OLS line y = a + b x over the x range, with the confidence band of the fitted mean.

    Band: ``yhat +- t(1-(1-level)/2, n-2) * s * sqrt(1/n + (x0 - xbar)^2 / Sxx)`` where s is the
    residual standard error. Returns columns x, fit, low, high (empty when n < 3 or x constant).

    Example: x = 1..5, y = 2, 4, 5, 4, 5 gives a = 2.2, b = 0.6; at x0 = 3 the fit is 4.0 and the
    95% band is 4.0 +- 3.182 * 0.8944 * sqrt(1/5) = [2.727, 5.273].
    """
    import statsmodels.api as sm

    xa = np.asarray(x, dtype=float)
    ya = np.asarray(y, dtype=float)
    ok = np.isfinite(xa) & np.isfinite(ya)
    xa, ya = xa[ok], ya[ok]
    if len(xa) < 3 or np.ptp(xa) == 0:
        return pd.DataFrame(columns=["x", "fit", "low", "high"])
    model = sm.OLS(ya, sm.add_constant(xa)).fit()
    grid = np.linspace(xa.min(), xa.max(), points)
    pred = model.get_prediction(sm.add_constant(grid, has_constant="add")).summary_frame(alpha=1 - level)
    return pd.DataFrame(
        {
            "x": grid,
            "fit": pred["mean"].to_numpy(),
            "low": pred["mean_ci_lower"].to_numpy(),
            "high": pred["mean_ci_upper"].to_numpy(),
        }
    )


def linkage_scatter(units: Any, *, metric: str = "csat_pct") -> go.Figure:
    """Units: engagement index (x) against the CX metric (y), OLS fit line and 95% band, hover per unit.

    ``units``: DataFrame or list of {unit_id, engagement, cx, respondents, cx_responses}
    (``LinkageResult.units``). Between-unit view: confounded by everything that differs between units.
    """
    rows = _records(units)
    d = (
        pd.DataFrame(rows, columns=["unit_id", "engagement", "cx", "respondents", "cx_responses"])
        if rows
        else pd.DataFrame()
    )
    if len(d) == 0:
        return empty_figure("No unit has both a kept engagement group and customer feedback")
    d = d.dropna(subset=["engagement", "cx"])
    band = fit_band(d["engagement"], d["cx"])
    ylabel = CX_LABELS.get(metric, metric)
    fig = go.Figure()
    if len(band):
        fig.add_trace(
            go.Scatter(
                x=np.concatenate([band["x"], band["x"][::-1]]),
                y=np.concatenate([band["high"], band["low"][::-1]]),
                fill="toself",
                fillcolor="rgba(49,130,189,0.15)",
                line=dict(width=0),
                hoverinfo="skip",
                name="95% band of the fit",
            )
        )
        fig.add_trace(
            go.Scatter(
                x=band["x"], y=band["fit"], mode="lines", line=dict(color="#3182bd"), name="fit (OLS)", hoverinfo="skip"
            )
        )
    custom = (
        np.column_stack(
            [
                d["respondents"].fillna(0).astype(int),
                d["cx_responses"].fillna(0).astype(int),
            ]
        )
        if len(d)
        else None
    )
    fig.add_trace(
        go.Scatter(
            x=d["engagement"],
            y=d["cx"],
            mode="markers",
            name="unit",
            marker=dict(size=9, color="#08519c", line=dict(width=1, color="white")),
            text=[safe_text(u) for u in d["unit_id"]],
            customdata=custom,
            hovertemplate="<b>%{text}</b><br>engagement %{x:.1f}<br>"
            + safe_text(ylabel)
            + " %{y:.1f}<br>%{customdata[0]} respondents, %{customdata[1]} CX responses<extra></extra>",
        )
    )
    fig.update_layout(
        title="Units: engagement against customer satisfaction (between units; confounded)",
        xaxis=dict(title="engagement index (0-100)"),
        yaxis=dict(title=ylabel),
        height=440,
        margin=dict(l=10, r=10, t=50, b=10),
        legend=dict(orientation="h", y=-0.15),
    )
    return fig


def _interval_points(rows: list[Any], x: str, est: str, *, z_se: bool = False) -> tuple[list, list, list, list]:
    xs, ys, up, down = [], [], [], []
    for r in rows:
        e = _num(_get(r, est))
        lo, hi = _num(_get(r, "ci_low")), _num(_get(r, "ci_high"))
        xs.append(_get(r, x))
        ys.append(e)
        up.append(None if (e is None or hi is None) else hi - e)
        down.append(None if (e is None or lo is None) else e - lo)
    return xs, ys, up, down


def lag_chart(lags: Iterable[Any], *, metric: str = "csat_pct") -> go.Figure:
    """Within-unit coefficient by lag (-2..+2, CX measured `lag` periods after engagement), 95% CIs.

    ``lags``: items with lag, coef, optionally ci_low/ci_high, r (the two-way within r), p, p_holm,
    n. A lag pattern does not prove direction.
    """
    rows = sorted(_records(lags), key=lambda r: _get(r, "lag", 0))
    if not rows:
        return empty_figure("Not enough periods to estimate lags")
    xs, ys, up, down = _interval_points(rows, "lag", "coef")
    custom = [[_num(_get(r, "p")), _get(r, "n") or 0, _num(_get(r, "r")), _num(_get(r, "p_holm"))] for r in rows]
    fig = go.Figure(
        go.Scatter(
            x=xs,
            y=ys,
            mode="markers+lines",
            marker=dict(size=10, color="#3182bd"),
            error_y=dict(type="data", array=up, arrayminus=down, visible=True),
            customdata=custom,
            hovertemplate="lag %{x}: %{y:.3f} per index point<br>p=%{customdata[0]:.3f} (Holm %{customdata[3]:.3f}), "
            "n=%{customdata[1]}, within r=%{customdata[2]:.2f}<extra></extra>",
            name="within-unit coefficient",
        )
    )
    fig.add_hline(y=0, line=dict(color="grey", dash="dot"))
    fig.update_layout(
        title="Within-unit effect by lag (CX measured k periods after engagement; not proof of direction)",
        xaxis=dict(title="lag (periods)", tickmode="array", tickvals=[-2, -1, 0, 1, 2]),
        yaxis=dict(title=f"{CX_LABELS.get(metric, metric)} per engagement point"),
        height=360,
        margin=dict(l=10, r=10, t=50, b=10),
    )
    return fig


def drivers_chart(drivers: Iterable[Any]) -> go.Figure:
    """Each item's unit-level correlation with CX, 95% CI, q-value (BH) in the hover; sorted by |r|."""
    rows = _records(drivers)
    if not rows:
        return empty_figure("No driver items (needs at least 4 units)")
    rows = sorted(rows, key=lambda r: abs(_num(_get(r, "r")) or 0), reverse=True)
    xs, ys, up, down = _interval_points(rows, "item", "r")
    qs = [_num(_get(r, "q")) for r in rows]
    colours = ["#3182bd" if (q is not None and q < 0.05) else "#9ecae1" for q in qs]
    fig = go.Figure(
        go.Bar(
            y=[safe_text(i) for i in xs],
            x=ys,
            orientation="h",
            marker_color=colours,
            error_x=dict(type="data", array=up, arrayminus=down, visible=True),
            customdata=[[_num(_get(r, "p")), q] for r, q in zip(rows, qs)],
            hovertemplate="%{y}: r=%{x:.2f}, p=%{customdata[0]:.3f}, q=%{customdata[1]:.3f}<extra></extra>",
        )
    )
    fig.update_layout(
        title="Driver items: correlation with CX across units (dark = q < 0.05; items overlap)",
        xaxis=dict(title="r (95% CI)", range=[-1, 1]),
        yaxis=dict(autorange="reversed"),
        height=max(300, 28 * len(rows) + 140),
        margin=dict(l=10, r=10, t=50, b=10),
    )
    return fig


def quartile_chart(quartiles: Any, *, metric: str = "csat_pct") -> go.Figure:
    """CX of the top- against the bottom-quartile engagement units, with the CI of the difference."""
    top, bottom = _num(_get(quartiles, "top")), _num(_get(quartiles, "bottom"))
    if top is None or bottom is None:
        return empty_figure("Too few units for a quartile comparison")
    diff = _get(quartiles, "diff")
    fig = go.Figure(
        go.Bar(
            x=["bottom quartile (least engaged)", "top quartile (most engaged)"],
            y=[bottom, top],
            marker_color=["#9ecae1", "#08519c"],
            hovertemplate="%{x}: %{y:.1f}<extra></extra>",
        )
    )
    fig.update_layout(
        title=(
            f"Top minus bottom: {_fmt(diff, '+.1f')} (95% CI {_fmt(_get(quartiles, 'ci_low'), '+.1f')} "
            f"to {_fmt(_get(quartiles, 'ci_high'), '+.1f')})"
        ),
        yaxis=dict(title=CX_LABELS.get(metric, metric)),
        height=340,
        margin=dict(l=10, r=10, t=50, b=10),
    )
    return fig


# ---------------------------------------------------------------- advocates


COMPONENTS = ("loyalty", "advocacy", "satisfaction", "reach")


def contributions_chart(df: pd.DataFrame, *, top: int = 20) -> go.Figure:
    """Stacked score contributions (loyalty, advocacy, satisfaction, reach) of the top customers.

    ``df`` (``AdvocateResult.customers``) columns: customer_id, score and contribution_<component>
    (points of the 0..100 score; they add up to the score).
    """
    if df is None or len(df) == 0:
        return empty_figure("No customers pass the advocate gates for this selection")
    d = df.sort_values("score", ascending=False).head(top)
    colours = {"loyalty": "#3182bd", "advocacy": "#31a354", "satisfaction": "#fd8d3c", "reach": "#9e9ac8"}
    ids = [safe_text(c) for c in d["customer_id"]]
    fig = go.Figure()
    for c in COMPONENTS:
        col = f"contribution_{c}" if f"contribution_{c}" in d.columns else c
        if col not in d.columns:
            continue
        fig.add_trace(
            go.Bar(
                y=ids,
                x=[_num(v) or 0.0 for v in d[col]],
                name=c,
                orientation="h",
                marker_color=colours[c],
                hovertemplate="%{y}: " + c + " %{x:.1f} points<extra></extra>",
            )
        )
    fig.update_layout(
        barmode="stack",
        title=f"Score contributions, top {len(d)}",
        xaxis=dict(title="score points (0-100)", range=[0, 100]),
        yaxis=dict(autorange="reversed", type="category"),
        height=max(300, 22 * len(d) + 140),
        margin=dict(l=10, r=10, t=50, b=10),
    )
    return fig


def tier_counts(df: pd.DataFrame) -> go.Figure:
    """How many customers in each tier (Champion >= 80, Advocate >= 60, Rising >= 40, Candidate)."""
    if df is None or len(df) == 0:
        return empty_figure("No customers pass the advocate gates")
    order = list(TIER_COLOURS)
    counts = df["tier"].value_counts()
    fig = go.Figure(
        go.Bar(
            x=order,
            y=[int(counts.get(t, 0)) for t in order],
            marker_color=[TIER_COLOURS[t] for t in order],
            hovertemplate="%{x}: %{y} customers<extra></extra>",
        )
    )
    fig.update_layout(title="Customers by tier", height=300, margin=dict(l=10, r=10, t=50, b=10))
    return fig


def programme_effect_chart(design: Any) -> go.Figure:
    """One design of the programme effect: orders per 90 days before and after, both groups.

    ``design`` (``programme.Design`` or its fields as a dict): ``means`` rows (group, orders_before,
    orders_after), the first the rewarded/reward arm and the second the comparison/hold-out;
    ``orders`` (estimate, ci_low, ci_high), ``design`` 'holdout' or 'matched', ``n_treated``,
    ``n_control``. The matched design is labelled an estimate.
    """
    means = _get(design, "means")
    orders = _get(design, "orders")
    est = _num(_get(orders, "estimate"))
    if design is None or means is None or len(means) == 0 or est is None:
        return empty_figure("No finished comparison yet: rewards need 90 days after them")
    kind = _get(design, "design", "matched")
    rows = list(means.itertuples(index=False))
    fig = go.Figure()
    styles = (dict(color="#31a354", width=3), dict(color="#969696", dash="dash"))
    for r, style in zip(rows[:2], styles):
        fig.add_trace(
            go.Scatter(
                x=["90 days before", "90 days after"],
                y=[_num(r.orders_before), _num(r.orders_after)],
                mode="lines+markers",
                name=safe_text(str(r.group)),
                line=style,
                hovertemplate="%{x}: %{y:.2f} orders<extra>" + safe_text(str(r.group)) + "</extra>",
            )
        )
    lo, hi = _get(orders, "ci_low"), _get(orders, "ci_high")
    if kind == "holdout":
        what = (
            f"Hold-out (randomised): {_fmt(est, '+.2f')} orders per 90 days (95% CI {_fmt(lo, '+.2f')} to "
            f"{_fmt(hi, '+.2f')}; {_get(design, 'n_treated', 0)} listed vs {_get(design, 'n_control', 0)} held out)"
        )
    else:
        what = (
            f"Matched (estimate): {_fmt(est, '+.2f')} orders per 90 days (95% CI {_fmt(lo, '+.2f')} to "
            f"{_fmt(hi, '+.2f')}; {_get(design, 'n_treated', 0)} matched pairs)"
        )
    fig.update_layout(
        title="Programme effect, " + what,
        yaxis=dict(title="orders per 90 days"),
        xaxis=dict(type="category"),
        height=340,
        margin=dict(l=10, r=10, t=50, b=10),
    )
    return fig


def backtest_chart(backtest: Any) -> go.Figure:
    """The customer-value backtest: predicted and actual repeat purchase days by decile of prediction.

    ``backtest`` (``value.Backtest`` or its JSON dict): ``deciles`` rows (decile, predicted, actual),
    ``weeks``, ``predicted``, ``actual``. Decile 1 holds the tenth of customers with the lowest prediction.
    """
    deciles = _records(_get(backtest, "deciles")) if backtest is not None else []
    if not deciles:
        return empty_figure("No backtest: the data are too short or too few customers bought twice")
    x = [f"D{int(_get(d, 'decile'))}" for d in deciles]
    fig = go.Figure()
    fig.add_trace(
        go.Bar(
            x=x,
            y=[_num(_get(d, "predicted")) for d in deciles],
            name="expected by the model",
            marker_color="#9ecae1",
            hovertemplate="%{x}: %{y:,.0f} expected<extra></extra>",
        )
    )
    fig.add_trace(
        go.Bar(
            x=x,
            y=[_num(_get(d, "actual")) for d in deciles],
            name="actual",
            marker_color="#08519c",
            hovertemplate="%{x}: %{y:,.0f} actual<extra></extra>",
        )
    )
    weeks = _get(backtest, "weeks")
    fig.update_layout(
        title=f"Backtest: repeat purchase days in the last {weeks} weeks, by decile of prediction",
        barmode="group",
        yaxis=dict(title="repeat purchase days"),
        xaxis=dict(type="category", title="customers by predicted value (D10 = highest)"),
        height=320,
        margin=dict(l=10, r=10, t=50, b=10),
        legend=dict(orientation="h"),
    )
    return fig
