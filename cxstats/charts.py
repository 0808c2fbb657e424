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

SUPPRESSED = "suppressed"
FAVOURABLE_SCALE = "RdYlGn"
CX_LABELS = {"csat_pct": "CSAT % (share 4-5)", "csat_mean": "CSAT mean (1-5)", "nps": "NPS (-100..100)"}
TIER_COLOURS = {"Champion": "#1b7837", "Advocate": "#5aae61", "Rising": "#a6dba0", "Candidate": "#d9d9d9"}


def safe_text(value: Any) -> str:
    """User text as a label: HTML-escaped (Plotly renders a subset of HTML in labels)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return html.escape(str(value), quote=False)


def _num(value: Any) -> float | None:
    """A finite float, or None (so Plotly leaves a gap instead of drawing NaN)."""
    if value is None:
        return None
    try:
        v = float(value)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


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


# ---------------------------------------------------------------- engagement


def engagement_heatmap(df: pd.DataFrame, *, value: str = "favourable_pct") -> go.Figure:
    """Units x items heatmap of favourable % (score >= k-1), suppressed cells left blank.

    ``df`` columns: unit_id, item, ``value``, and optionally suppressed (bool) and respondents.
    A row marked suppressed, or with no value, becomes an empty cell with the text "suppressed";
    its value never enters the figure.
    """
    if df is None or len(df) == 0:
        return empty_figure("No engagement results for this selection")
    d = df.copy()
    mask = _suppressed_mask(d)
    d.loc[mask, value] = np.nan
    units = sorted(d["unit_id"].astype(str).unique())
    items = list(dict.fromkeys(d["item"].astype(str)))
    grid = d.assign(unit_id=d["unit_id"].astype(str), item=d["item"].astype(str)).pivot_table(
        index="unit_id", columns="item", values=value, aggfunc="first", dropna=False
    ).reindex(index=units, columns=items)
    z = [[_num(v) for v in row] for row in grid.to_numpy()]
    text = [[SUPPRESSED if v is None else f"{v:.0f}%" for v in row] for row in z]
    fig = go.Figure(
        go.Heatmap(
            z=z,
            x=[safe_text(i) for i in items],
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
        height=max(300, 26 * len(units) + 140),
        margin=dict(l=10, r=10, t=50, b=10),
        yaxis=dict(autorange="reversed"),
    )
    return fig


def engagement_trend(df: pd.DataFrame, *, value: str = "engagement", group: str = "unit_id") -> go.Figure:
    """Engagement index (0-100) by period, one line per group; suppressed points are gaps.

    ``df`` columns: period, ``group``, ``value``, optionally suppressed.
    """
    if df is None or len(df) == 0:
        return empty_figure("No engagement periods for this selection")
    d = df.copy()
    d.loc[_suppressed_mask(d), value] = np.nan
    fig = go.Figure()
    for name, g in d.groupby(group, sort=True):
        g = g.sort_values("period")
        ys = [_num(v) for v in g[value]]
        fig.add_trace(
            go.Scatter(
                x=[str(p) for p in g["period"]],
                y=ys,
                mode="lines+markers",
                name=safe_text(name),
                text=[SUPPRESSED if v is None else f"{v:.1f}" for v in ys],
                hovertemplate="%{x}: %{text}<extra>" + safe_text(name) + "</extra>",
                connectgaps=False,
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
    """Share of each answer per item (stacked, 100%), from answer counts over kept groups only.

    ``df`` columns: item, score, count.
    """
    if df is None or len(df) == 0:
        return empty_figure("No answers in kept groups for this selection")
    d = df.copy()
    d["score"] = d["score"].astype(int)
    totals = d.groupby("item")["count"].transform("sum")
    d["share"] = 100 * d["count"] / totals
    items = list(dict.fromkeys(d["item"].astype(str)))
    k = int(d["score"].max())
    colours = _diverging(k)
    fig = go.Figure()
    for s in range(1, k + 1):
        g = d[d["score"] == s].set_index(d.loc[d["score"] == s, "item"].astype(str))
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
        yaxis=dict(autorange="reversed"),
    )
    return fig


def _diverging(k: int) -> list[str]:
    from plotly.colors import sample_colorscale

    return sample_colorscale(FAVOURABLE_SCALE, [i / (k - 1) if k > 1 else 0.5 for i in range(k)])


def wave_change(before: float, after: float, diff: float, ci_low: float, ci_high: float,
                *, labels: tuple[str, str] = ("earlier", "later")) -> go.Figure:
    """Two waves of one unit and the difference with its 95% CI (Welch)."""
    fig = go.Figure()
    fig.add_trace(go.Bar(x=[safe_text(labels[0]), safe_text(labels[1])], y=[_num(before), _num(after)],
                         marker_color=["#9ecae1", "#3182bd"], name="index",
                         hovertemplate="%{x}: %{y:.1f}<extra></extra>"))
    fig.update_layout(
        title=f"Change {_fmt(diff, '+.1f')} points (95% CI {_fmt(ci_low, '+.1f')} to {_fmt(ci_high, '+.1f')})",
        yaxis=dict(title="engagement index (0-100)", range=[0, 100]),
        height=320,
        margin=dict(l=10, r=10, t=50, b=10),
        showlegend=False,
    )
    return fig


def _fmt(v: Any, spec: str) -> str:
    n = _num(v)
    return "n/a" if n is None else format(n, spec)


# ---------------------------------------------------------------- customers


def cx_bars(df: pd.DataFrame, *, by: str, value: str, low: str | None = None, high: str | None = None,
            title: str = "", axis_title: str = "") -> go.Figure:
    """A bar per category (unit, channel) with an optional interval (e.g. NPS margin of error).

    ``df`` columns: ``by``, ``value``, optionally ``low``/``high`` (interval ends) and n.
    """
    if df is None or len(df) == 0:
        return empty_figure("No customer feedback for this selection")
    d = df.sort_values(value, ascending=False, na_position="last")
    ys = [_num(v) for v in d[value]]
    bar = dict(x=[safe_text(v) for v in d[by]], y=ys, marker_color="#3182bd", name=value)
    custom = d["n"].fillna(0).astype(int).tolist() if "n" in d.columns else [0] * len(d)
    bar["customdata"] = custom
    bar["hovertemplate"] = "%{x}: %{y:.1f} (n=%{customdata})<extra></extra>"
    if low and high and low in d.columns and high in d.columns:
        up = [None if (h is None or y is None) else h - y for h, y in zip(map(_num, d[high]), ys)]
        down = [None if (lo is None or y is None) else y - lo for lo, y in zip(map(_num, d[low]), ys)]
        bar["error_y"] = dict(type="data", array=up, arrayminus=down, visible=True)
    fig = go.Figure(go.Bar(**bar))
    fig.update_layout(title=title, yaxis=dict(title=axis_title), xaxis=dict(type="category"),
                      height=360, margin=dict(l=10, r=10, t=50, b=10))
    return fig


def cx_trend(df: pd.DataFrame, *, value: str, group: str | None = None, title: str = "",
             axis_title: str = "") -> go.Figure:
    """A CX metric by period, one line per group (or one line)."""
    if df is None or len(df) == 0:
        return empty_figure("No customer feedback for this selection")
    fig = go.Figure()
    groups = df.groupby(group, sort=True) if group else [("all", df)]
    for name, g in groups:
        g = g.sort_values("period")
        fig.add_trace(go.Scatter(x=[str(p) for p in g["period"]], y=[_num(v) for v in g[value]],
                                 mode="lines+markers", name=safe_text(name),
                                 hovertemplate="%{x}: %{y:.1f}<extra>" + safe_text(name) + "</extra>"))
    fig.update_layout(title=title, yaxis=dict(title=axis_title), xaxis=dict(title="period", type="category"),
                      height=360, margin=dict(l=10, r=10, t=50, b=10))
    return fig


def response_times(df: pd.DataFrame) -> go.Figure:
    """Share answered within the expected time per channel (1 h Twitter/X, 6 h Facebook/email, 12 h else).

    ``df`` columns: channel, target_hours, share_within (0..1 or 0..100 as ``pct`` says), n,
    optionally median_hours and source ('feedback' or 'mentions').
    """
    if df is None or len(df) == 0:
        return empty_figure("No replies with both times recorded (responded_at / replied_at)")
    d = df.copy()
    share = d["share_within"].astype(float)
    if share.max() <= 1.0:
        share = share * 100
    d["pct"] = share
    label = d["channel"].map(safe_text)
    if "source" in d.columns:
        label = label + " (" + d["source"].map(safe_text) + ")"
    med = d["median_hours"] if "median_hours" in d.columns else pd.Series(np.nan, index=d.index)
    custom = np.column_stack([d["target_hours"].astype(float), d["n"].astype(int), med.astype(float)])
    fig = go.Figure(go.Bar(
        x=label.tolist(), y=[_num(v) for v in d["pct"]], customdata=custom, marker_color="#31a354",
        text=[f"target {t:g} h" for t in d["target_hours"].astype(float)], textposition="outside",
        hovertemplate="%{x}: %{y:.0f}% within %{customdata[0]:g} h (n=%{customdata[1]}, "
                      "median %{customdata[2]:.1f} h)<extra></extra>",
    ))
    fig.update_layout(title="Replies within the expected time", yaxis=dict(title="% within target", range=[0, 110]),
                      xaxis=dict(type="category"), height=360, margin=dict(l=10, r=10, t=50, b=10))
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
    return pd.DataFrame({"x": grid, "fit": pred["mean"].to_numpy(), "low": pred["mean_ci_lower"].to_numpy(),
                         "high": pred["mean_ci_upper"].to_numpy()})


def linkage_scatter(units: Any, *, metric: str = "csat_pct") -> go.Figure:
    """Units: engagement index (x) against the CX metric (y), OLS fit line and 95% band, hover per unit.

    ``units``: DataFrame or list of {unit_id, engagement, cx, respondents, cx_responses}
    (``LinkageResult.units``). Between-unit view: confounded by everything that differs between units.
    """
    rows = _records(units)
    d = pd.DataFrame(rows, columns=["unit_id", "engagement", "cx", "respondents", "cx_responses"]) if rows \
        else pd.DataFrame()
    if len(d) == 0:
        return empty_figure("No unit has both a kept engagement group and customer feedback")
    d = d.dropna(subset=["engagement", "cx"])
    band = fit_band(d["engagement"], d["cx"])
    ylabel = CX_LABELS.get(metric, metric)
    fig = go.Figure()
    if len(band):
        fig.add_trace(go.Scatter(
            x=np.concatenate([band["x"], band["x"][::-1]]), y=np.concatenate([band["high"], band["low"][::-1]]),
            fill="toself", fillcolor="rgba(49,130,189,0.15)", line=dict(width=0), hoverinfo="skip",
            name="95% band of the fit",
        ))
        fig.add_trace(go.Scatter(x=band["x"], y=band["fit"], mode="lines", line=dict(color="#3182bd"),
                                 name="fit (OLS)", hoverinfo="skip"))
    custom = np.column_stack([
        d["respondents"].fillna(0).astype(int), d["cx_responses"].fillna(0).astype(int),
    ]) if len(d) else None
    fig.add_trace(go.Scatter(
        x=d["engagement"], y=d["cx"], mode="markers", name="unit",
        marker=dict(size=9, color="#08519c", line=dict(width=1, color="white")),
        text=[safe_text(u) for u in d["unit_id"]], customdata=custom,
        hovertemplate="<b>%{text}</b><br>engagement %{x:.1f}<br>" + safe_text(ylabel)
                      + " %{y:.1f}<br>%{customdata[0]} respondents, %{customdata[1]} CX responses<extra></extra>",
    ))
    fig.update_layout(
        title="Units: engagement against customer satisfaction (between units; confounded)",
        xaxis=dict(title="engagement index (0-100)"), yaxis=dict(title=ylabel),
        height=440, margin=dict(l=10, r=10, t=50, b=10), legend=dict(orientation="h", y=-0.15),
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

    ``lags``: items with lag, coef, optionally ci_low/ci_high, r, p, n. A lag pattern does not
    prove direction.
    """
    rows = sorted(_records(lags), key=lambda r: _get(r, "lag", 0))
    if not rows:
        return empty_figure("Not enough periods to estimate lags")
    xs, ys, up, down = _interval_points(rows, "lag", "coef")
    custom = [[_num(_get(r, "p")), _get(r, "n") or 0, _num(_get(r, "r"))] for r in rows]
    fig = go.Figure(go.Scatter(
        x=xs, y=ys, mode="markers+lines", marker=dict(size=10, color="#3182bd"),
        error_y=dict(type="data", array=up, arrayminus=down, visible=True), customdata=custom,
        hovertemplate="lag %{x}: %{y:.3f} per index point<br>p=%{customdata[0]:.3f}, n=%{customdata[1]}, "
                      "rm r=%{customdata[2]:.2f}<extra></extra>",
        name="within-unit coefficient",
    ))
    fig.add_hline(y=0, line=dict(color="grey", dash="dot"))
    fig.update_layout(
        title="Within-unit effect by lag (CX measured k periods after engagement; not proof of direction)",
        xaxis=dict(title="lag (periods)", tickmode="array", tickvals=[-2, -1, 0, 1, 2]),
        yaxis=dict(title=f"{CX_LABELS.get(metric, metric)} per engagement point"),
        height=360, margin=dict(l=10, r=10, t=50, b=10),
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
    fig = go.Figure(go.Bar(
        y=[safe_text(i) for i in xs], x=ys, orientation="h", marker_color=colours,
        error_x=dict(type="data", array=up, arrayminus=down, visible=True),
        customdata=[[_num(_get(r, "p")), q] for r, q in zip(rows, qs)],
        hovertemplate="%{y}: r=%{x:.2f}, p=%{customdata[0]:.3f}, q=%{customdata[1]:.3f}<extra></extra>",
    ))
    fig.update_layout(
        title="Driver items: correlation with CX across units (dark = q < 0.05; items overlap)",
        xaxis=dict(title="r (95% CI)", range=[-1, 1]), yaxis=dict(autorange="reversed"),
        height=max(300, 28 * len(rows) + 140), margin=dict(l=10, r=10, t=50, b=10),
    )
    return fig


def quartile_chart(quartiles: Any, *, metric: str = "csat_pct") -> go.Figure:
    """CX of the top- against the bottom-quartile engagement units, with the CI of the difference."""
    top, bottom = _num(_get(quartiles, "top")), _num(_get(quartiles, "bottom"))
    if top is None or bottom is None:
        return empty_figure("Too few units for a quartile comparison")
    diff = _get(quartiles, "diff")
    fig = go.Figure(go.Bar(
        x=["bottom quartile (least engaged)", "top quartile (most engaged)"], y=[bottom, top],
        marker_color=["#9ecae1", "#08519c"], hovertemplate="%{x}: %{y:.1f}<extra></extra>",
    ))
    fig.update_layout(
        title=(f"Top minus bottom: {_fmt(diff, '+.1f')} (95% CI {_fmt(_get(quartiles, 'ci_low'), '+.1f')} "
               f"to {_fmt(_get(quartiles, 'ci_high'), '+.1f')})"),
        yaxis=dict(title=CX_LABELS.get(metric, metric)), height=340, margin=dict(l=10, r=10, t=50, b=10),
    )
    return fig


# ---------------------------------------------------------------- advocates


def contributions_chart(df: pd.DataFrame, *, top: int = 20) -> go.Figure:
    """Stacked score contributions (loyalty, advocacy, satisfaction, reach) of the top customers.

    ``df`` columns: customer_id, score, and one column per component contribution (points of the
    0..100 score), e.g. loyalty, advocacy, satisfaction, reach.
    """
    if df is None or len(df) == 0:
        return empty_figure("No customers pass the advocate gates for this selection")
    d = df.sort_values("score", ascending=False).head(top)
    comps = [c for c in ("loyalty", "advocacy", "satisfaction", "reach") if c in d.columns]
    colours = {"loyalty": "#3182bd", "advocacy": "#31a354", "satisfaction": "#fd8d3c", "reach": "#9e9ac8"}
    ids = [safe_text(c) for c in d["customer_id"]]
    fig = go.Figure()
    for c in comps:
        fig.add_trace(go.Bar(y=ids, x=[_num(v) or 0.0 for v in d[c]], name=c, orientation="h",
                             marker_color=colours[c], hovertemplate="%{y}: " + c + " %{x:.1f}<extra></extra>"))
    fig.update_layout(barmode="stack", title=f"Score contributions, top {len(d)}",
                      xaxis=dict(title="score points (0-100)", range=[0, 100]), yaxis=dict(autorange="reversed",
                      type="category"), height=max(300, 22 * len(d) + 140), margin=dict(l=10, r=10, t=50, b=10))
    return fig


def tier_counts(df: pd.DataFrame) -> go.Figure:
    """How many customers in each tier (Champion >= 80, Advocate >= 60, Rising >= 40, Candidate)."""
    if df is None or len(df) == 0:
        return empty_figure("No customers pass the advocate gates")
    order = list(TIER_COLOURS)
    counts = df["tier"].value_counts()
    fig = go.Figure(go.Bar(x=order, y=[int(counts.get(t, 0)) for t in order],
                           marker_color=[TIER_COLOURS[t] for t in order],
                           hovertemplate="%{x}: %{y} customers<extra></extra>"))
    fig.update_layout(title="Customers by tier", height=300, margin=dict(l=10, r=10, t=50, b=10))
    return fig


def programme_effect_chart(effect: Any) -> go.Figure:
    """Rewarded customers against matched controls: orders per 90 days before and after the reward.

    ``effect`` fields: before_rewarded, after_rewarded, before_control, after_control (orders per
    90 days), did, ci_low, ci_high, pairs. The difference-in-differences is an estimate (matched,
    not randomised).
    """
    vals = {k: _num(_get(effect, k)) for k in ("before_rewarded", "after_rewarded", "before_control",
                                               "after_control")}
    if effect is None or any(v is None for v in vals.values()):
        return empty_figure("No rewarded customers with a matched control yet")
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=["before", "after"], y=[vals["before_rewarded"], vals["after_rewarded"]],
                             mode="lines+markers", name="rewarded", line=dict(color="#31a354", width=3)))
    fig.add_trace(go.Scatter(x=["before", "after"], y=[vals["before_control"], vals["after_control"]],
                             mode="lines+markers", name="matched controls", line=dict(color="#969696", dash="dash")))
    fig.update_layout(
        title=(f"Programme effect (estimate): {_fmt(_get(effect, 'did'), '+.2f')} orders per 90 days "
               f"(95% CI {_fmt(_get(effect, 'ci_low'), '+.2f')} to {_fmt(_get(effect, 'ci_high'), '+.2f')}; "
               f"{_get(effect, 'pairs', 0)} pairs)"),
        yaxis=dict(title="orders per 90 days"), xaxis=dict(type="category"),
        height=340, margin=dict(l=10, r=10, t=50, b=10),
    )
    return fig
