"""Customers: CSAT and NPS by unit, channel and period; reply times against the expected times.

Customer-side only (no employee figures), so marketing sees this page too. NPS comes with its
95% margin of error; figures pool answer counts over the sidebar's selection.
"""

import streamlit as st

import ui
from cxstats import AccessDenied, CxStatsError, charts, metrics, themes

ctx = ui.page_setup("Customers")


try:
    cx_all = ui.cached(
        metrics.cx_by_unit_period, viewer=ctx.viewer, period=None, by_channel=True
    )  # the page sums over the selection
    # a median does not add up over groups: reply times are computed for the selection itself
    replies = ui.cached(
        metrics.response_times, viewer=ctx.viewer, units=ctx.units, period_from=ctx.period_from, period_to=ctx.period_to
    )
except CxStatsError as exc:
    ui.show_error(exc)
    st.stop()

cx = charts.in_selection(cx_all, ctx.units, ctx.period_from, ctx.period_to)
st.caption(
    f"Selection: {ui.period_filter_text(ctx)}." + (" Generated demo data, not real results." if ctx.is_demo else "")
)
if cx_all.empty and replies.empty:
    st.info("No customer feedback loaded yet. Load a feedback file on the Upload page.")
    st.stop()

total = charts.pool_cx(cx.assign(all="all"), "all")
row = total.iloc[0] if len(total) else None


def fmt(v, spec=".1f"):
    return "—" if v is None or v != v else format(v, spec)


c = st.columns(4)
c[0].metric(
    "CSAT %",
    fmt(None if row is None else row["csat_pct"]),
    border=True,
    help="share of CSAT answers that are 4 or 5 (of 5)",
)
c[1].metric("CSAT mean", fmt(None if row is None else row["csat_mean"], ".2f"), border=True, help="mean of 1-5")
nps_text = "—" if row is None or row["nps"] != row["nps"] else f"{row['nps']:+.1f} ± {row['nps_margin']:.1f}"
c[2].metric(
    "NPS", nps_text, border=True, help="% promoters (9-10) minus % detractors (0-6); ± is the 95% margin of error"
)
c[3].metric(
    "Answers",
    f"{int(row['csat_n']) if row is not None else 0:,} CSAT · {int(row['nps_n']) if row is not None else 0:,} NPS",
    border=True,
)

labels = {"csat_pct": "CSAT %", "csat_mean": "CSAT mean (1-5)", "nps": "NPS"}
metric = st.radio("Measure", list(labels), format_func=labels.get, horizontal=True, key="cx_metric")
interval = ("nps_low", "nps_high") if metric == "nps" else (None, None)
n_col = "nps_n" if metric == "nps" else "csat_n"

tab_unit, tab_channel, tab_period, tab_reply, tab_themes = st.tabs(
    ["By unit", "By channel", "By period", "Reply times", "Comment themes"]
)

with tab_unit:
    by_unit = charts.pool_cx(cx, "unit_id")
    st.plotly_chart(
        charts.cx_bars(
            by_unit,
            by="unit_id",
            value=metric,
            low=interval[0],
            high=interval[1],
            n=n_col,
            title=f"{labels[metric]} by unit",
            axis_title=labels[metric],
        ),
        width="stretch",
        key="cx_by_unit",
    )
    if metric == "nps":
        st.caption("Bars show the 95% margin of error: units whose bars overlap may not really differ.")

with tab_channel:
    by_channel = charts.pool_cx(cx, "channel")
    st.plotly_chart(
        charts.cx_bars(
            by_channel,
            by="channel",
            value=metric,
            low=interval[0],
            high=interval[1],
            n=n_col,
            title=f"{labels[metric]} by channel",
            axis_title=labels[metric],
        ),
        width="stretch",
        key="cx_by_channel",
    )

with tab_period:
    split = st.toggle("One line per channel", value=False, key="cx_split_channel")
    by_period = charts.pool_cx(cx, ["period", "channel"] if split else "period")
    st.plotly_chart(
        charts.cx_trend(
            by_period,
            value=metric,
            group="channel" if split else None,
            title=f"{labels[metric]} by {ctx.period}",
            axis_title=labels[metric],
        ),
        width="stretch",
        key="cx_by_period",
    )
    incomplete = cx.loc[cx["incomplete"].astype(bool), "period"].unique() if len(cx) else []
    if len(incomplete):
        st.caption(f"{', '.join(map(str, incomplete))} has not ended yet: its figures will still move.")

with tab_reply:
    st.plotly_chart(charts.response_times(replies), width="stretch", key="cx_reply_times")
    st.caption(
        "Customers expect a reply within 1 hour on Twitter/X, 6 hours on Facebook and e-mail, and 12 hours "
        "elsewhere. Feedback counts from contacted_at to responded_at, social posts from posted_at to "
        "replied_at; contacts never answered count as missed. In this selection: social posts carry no "
        "unit, so they are counted only when no unit is selected."
    )
    if len(replies):
        st.dataframe(
            replies,
            hide_index=True,
            width="stretch",
            column_config={
                "share_within_target": st.column_config.NumberColumn("share within target", format="percent"),
                "median_hours": st.column_config.NumberColumn("median hours", format="%.1f"),
            },
        )

with tab_themes:
    st.caption("What customers write about, over every comment you may see (all periods, not the sidebar's selection).")
    sources = {"feedback": "Feedback comments", "mentions": "Social posts"}
    source = st.radio(
        "Texts",
        list(sources),
        format_func=sources.get,
        horizontal=True,
        index=None,
        key="cx_themes_source",
        help="a few seconds the first time, then kept",
    )
    if source is not None:
        try:
            result = ui.cached(themes.themes, source, viewer=ctx.viewer)
        except AccessDenied:
            st.info("Social posts carry no unit, so their themes are shown to leaders, admins and marketing only.")
        except CxStatsError as exc:
            ui.show_error(exc)
        else:
            ui.show_themes(result, key=f"cx_themes_{source}")
