"""Engagement: favourable % by unit and item, trend by period, answer distribution, change, comments.

Employee data: marketing is refused by page_setup. Every figure comes from cxstats.metrics, which
drops groups below the anonymity threshold before anything is aggregated; this page only says
which groups are suppressed, never a number for them.
"""

import streamlit as st

import ui
from cxstats import CxStatsError, charts, metrics, themes

ctx = ui.page_setup("Engagement", employee_data=True)


def engagement_page_data(con, viewer):
    """Every library result this page shows, fetched on one connection and cached as one."""
    return (
        metrics.unit_period_engagement(con, viewer=viewer),
        metrics.item_scores(con, viewer=viewer),
        metrics.suppressed_group_list(con, viewer=viewer),
        metrics.index_alpha(con, viewer=viewer),
        metrics.item_distribution(con, viewer=viewer),
        metrics.comments(con, viewer=viewer),
    )


try:
    groups_all, items, suppressed_all, alpha, dist, com = ui.cached(engagement_page_data, ctx.viewer)
except CxStatsError as exc:
    ui.show_error(exc)
    st.stop()

sel = (ctx.units, ctx.period_from, ctx.period_to)
groups = charts.in_selection(groups_all.groups, *sel)
cells = charts.in_selection(items.cells, *sel)
suppressed = charts.in_selection(suppressed_all, *sel)
min_group = groups_all.min_group

st.caption(
    f"Selection: {ui.period_filter_text(ctx)}. Groups are whole units in whole {ctx.period}s; a group "
    f"with fewer than {min_group} respondents is suppressed and left out of every figure."
)
if ctx.is_demo:
    st.caption("Generated demo data, not real results.")

if groups_all.groups.empty and suppressed_all.empty:
    st.info("No engagement survey loaded yet. Load an engagement file on the Upload page.")
    st.stop()

index = charts.pooled_index(groups)
c = st.columns(5)
c[0].metric(
    "Engagement index",
    "—" if index is None else f"{index:.1f}",
    border=True,
    help="0-100: mean over respondents of 100 x (mean item answer - 1) / (k - 1), kept groups only",
)
c[1].metric("Respondents", f"{int(groups['respondents'].sum()) if len(groups) else 0:,}", border=True)
c[2].metric("Groups shown", f"{len(groups):,}", border=True, help=f"unit-{ctx.period} groups of at least {min_group}")
c[3].metric(
    "Groups suppressed",
    f"{len(suppressed):,}",
    border=True,
    help=f"unit-{ctx.period} groups with fewer than {min_group} respondents: no figure is shown for them",
)
c[4].metric(
    "Cronbach's alpha",
    "—" if alpha is None else f"{alpha:.2f}",
    border=True,
    help="internal consistency of the index items, over every kept respondent who answered them all "
    "(all units and periods you may see); 0.7 or more is usually taken as acceptable",
)

tab_heat, tab_trend, tab_dist, tab_change, tab_comments, tab_themes = st.tabs(
    ["Heatmap", "Trend", "Distribution", "Change between periods", "Comments", "Comment themes"]
)

with tab_heat:
    kept_units = set(cells["unit_id"].astype(str)) if len(cells) else set()
    only_suppressed = sorted(set(suppressed["unit_id"].astype(str)) - kept_units) if len(suppressed) else []
    all_items = sorted(set(items.cells["item"].astype(str))) if len(items.cells) else None
    st.plotly_chart(
        charts.engagement_heatmap(cells, suppressed_units=only_suppressed, items=all_items),
        width="stretch",
        key="eng_heatmap",
    )
    st.caption(
        "Favourable = answer 4-5 on 5 points (6-7 on 7 points), pooled over the "
        f"selected {ctx.period}s. A blank cell is suppressed: its group, or the item within it, had fewer "
        f"than {min_group} respondents."
    )
    if len(suppressed):
        with st.expander(f"Suppressed groups in this selection ({len(suppressed)})"):
            st.dataframe(suppressed.assign(status="suppressed"), hide_index=True, width="content")

with tab_trend:
    n_units = groups["unit_id"].nunique() if len(groups) else 0
    by_unit = st.toggle(
        "One line per unit",
        value=False,
        disabled=n_units > 15,
        help="available when 15 units or fewer are selected (use the sidebar's unit filter)",
    )
    st.plotly_chart(
        charts.engagement_trend(groups, by_unit=by_unit and n_units <= 15), width="stretch", key="eng_trend"
    )
    st.caption(
        f"A survey wave is kept within one {ctx.period} (its first survey date). Gaps are suppressed "
        "groups or periods without a survey."
    )

with tab_dist:
    st.plotly_chart(
        charts.answer_distribution(charts.in_selection(dist, *sel)), width="stretch", key="eng_distribution"
    )
    st.caption(
        "Answer counts per item over the kept groups in this selection; suppressed groups, and items "
        "a group answered too few times, are left out."
    )

with tab_change:
    st.write("Did a unit's engagement really move between two periods, or is it noise?")
    comparable = metrics.comparable_periods(groups_all, ctx.units)
    candidates = list(comparable)
    if not candidates:
        st.info("No unit in this selection has two periods with enough respondents to compare.")
    else:
        col1, col2, col3 = st.columns(3)
        unit = col1.selectbox("Unit", candidates, key="eng_change_unit")
        periods = list(comparable[unit])
        p_from = col2.selectbox("From", periods[:-1], index=max(len(periods) - 2, 0), key="eng_change_from")
        later = [p for p in periods if p > p_from]
        p_to = col3.selectbox("To", later, index=len(later) - 1, key="eng_change_to")
        try:
            change = ui.cached(metrics.wave_change, unit, p_from, p_to, viewer=ctx.viewer)
        except CxStatsError as exc:
            ui.show_error(exc)
        else:
            st.plotly_chart(charts.wave_change(change), width="stretch", key="eng_change_chart")
            if change.is_clear:
                st.success(
                    f"A clear move: the 95% interval ({change.ci_low:+.1f} to {change.ci_high:+.1f}) leaves out zero."
                )
            else:
                st.info(
                    f"Could be noise: the 95% interval ({change.ci_low:+.1f} to {change.ci_high:+.1f}) includes zero."
                )
            st.caption("Welch's t interval over respondent scores; both periods must have enough respondents.")

with tab_comments:
    com = charts.in_selection(com, *sel)
    st.caption(
        "Comments are shown only for groups of at least 10 respondents, so that no one is recognisable by their words."
    )
    if com is None or len(com) == 0:
        st.info("No comments from groups of 10 or more respondents in this selection.")
    else:
        st.dataframe(com, hide_index=True, width="stretch")

with tab_themes:
    st.caption(
        "What employees write about, over every comment you may see (all periods, not the sidebar's "
        "selection), from groups of at least 10 respondents only. Comments are never quoted here."
    )
    if st.toggle("Find the themes", key="eng_themes_on", help="a few seconds the first time, then kept"):
        try:
            comment_themes = ui.cached(themes.themes, "comments", viewer=ctx.viewer)
        except CxStatsError as exc:
            ui.show_error(exc)
        else:
            ui.show_themes(comment_themes, key="eng_themes")
