"""Overview: headline figures, data freshness, the linkage finding in one sentence, what next."""

import streamlit as st

import ui
from cxstats import CxStatsError, focus, linkage, overview, report

ctx = ui.page_setup("Overview", roles=("admin", "leader", "manager"))
st.caption(f"Selection: {ui.period_filter_text(ctx)}. Whole units and whole {ctx.period}s only (anonymity).")

try:
    h = ui.cached(
        overview.headline, viewer=ctx.viewer, units=ctx.units, period_from=ctx.period_from, period_to=ctx.period_to
    )
except CxStatsError as exc:
    ui.show_error(exc)
    st.stop()

if not h.units:
    st.info(
        "No survey or feedback data in this selection yet. Load files on the Upload page, "
        "or widen the filters in the sidebar."
    )


def fmt(value, spec=".1f", none="—"):
    return none if value is None else format(value, spec)


top = st.columns(3)
if ctx.viewer.sees_employee_data:
    top[0].metric(
        "Engagement index",
        fmt(h.engagement_index),
        border=True,
        help="0-100: mean over respondents of 100 x (mean item answer - 1) / (k - 1); "
        f"groups under {h.min_group} respondents are left out of every figure.",
    )
top[1].metric("CSAT %", fmt(h.csat_pct), border=True, help=f"share of {h.csat_n:,} CSAT answers that are 4 or 5")
top[2].metric(
    "NPS",
    "—" if h.nps is None else f"{h.nps:+.1f}",
    border=True,
    delta=None if h.nps_margin is None else f"± {h.nps_margin:.1f} (95% margin of error)",
    delta_color="off",
    delta_arrow="off",
    help=f"promoters minus detractors, % of {h.nps_n:,} answers",
)
counts = st.columns(3)
counts[0].metric("Units", f"{h.units:,}", border=True)
if ctx.viewer.sees_employee_data:
    counts[1].metric(
        "Survey respondents",
        f"{h.respondents:,}",
        border=True,
        help=f"in {h.engagement_groups:,} unit-{ctx.period} groups of at least {h.min_group}",
    )
counts[2].metric(
    "Customer answers",
    f"{max(h.csat_n, h.nps_n):,}",
    border=True,
    help=f"{h.csat_n:,} CSAT and {h.nps_n:,} NPS answers",
)

notes = []
if ctx.viewer.sees_employee_data and h.suppressed_groups:
    notes.append(
        f"{h.suppressed_groups:,} unit-{ctx.period} group(s) had fewer than {h.min_group} respondents "
        "and are suppressed everywhere."
    )
if h.incomplete_period:
    notes.append(f"{h.incomplete_period} has not ended yet: its figures will still move.")
if ctx.is_demo:
    notes.append("These are generated demo data, not real results.")
for n in notes:
    st.caption(n)

# ---------------------------------------------------------------- the linkage headline
if ctx.viewer.sees_employee_data:
    st.subheader("Do engaged teams have happier customers?")
    try:
        result = ui.cached(linkage.analyse, viewer=ctx.viewer)
    except CxStatsError as exc:
        st.info(f"No linkage finding yet: {ui.escape_md(exc)}")
    else:
        sentences = list(result.summary_sentences())
        corrected = result.corrected_sentence()
        if sentences:
            # the within-unit headline, with its interval, and beside it (never instead) the corrected figure
            st.info(ui.escape_md(" ".join([sentences[0]] + ([corrected] if corrected else []))))
            for extra in sentences[1:]:
                if extra != corrected:
                    st.caption(ui.escape_md(extra))
        st.caption(
            "Across all the units you may see (the sidebar's filters do not narrow it); "
            "the Linkage page shows the between-unit view, lags, drivers and power."
        )

# ---------------------------------------------------------------- the board report
st.subheader("Board report")
st.caption(
    "A PDF or PowerPoint of these figures for your board: headline, the within-unit finding with its caveats, "
    "the between-unit and lag charts, the trend, the unit x item heatmap and the advocate programme. "
    "It holds the same numbers as these pages, for the sidebar's selection; suppressed groups appear nowhere."
)
rc1, rc2 = st.columns([1, 3])
fmt = rc1.radio(
    "Format",
    list(report.FORMATS),
    horizontal=True,
    key="ov_report_fmt",
    format_func={"pdf": "PDF", "pptx": "PowerPoint"}.get,
)
selection = (ctx.units, ctx.period_from, ctx.period_to)
if rc2.button("Build the board report", key="ov_report_build"):
    with st.spinner("Building the report (the charts are drawn with Chromium; about 10 seconds)"):
        try:
            data = ui.cached(
                report.report_bytes,
                viewer=ctx.viewer,
                fmt=fmt,
                units=ctx.units,
                period_from=ctx.period_from,
                period_to=ctx.period_to,
            )
        except CxStatsError as exc:
            ui.show_error(exc)
        else:
            st.session_state["ov_report"] = (fmt, selection, data)
prepared = st.session_state.get("ov_report")
if prepared and prepared[:2] == (fmt, selection):  # another format or selection needs a new build
    mime = (
        "application/pdf"
        if fmt == "pdf"
        else "application/vnd.openxmlformats-officedocument.presentationml.presentation"
    )
    label = {"pdf": "Download the board report (PDF)", "pptx": "Download the board report (PPTX)"}[fmt]
    st.download_button(label, prepared[2], file_name=f"cxstats-report.{fmt}", mime=mime, key="ov_report_download")

# ---------------------------------------------------------------- what changed
if ctx.viewer.sees_employee_data:
    st.subheader("What changed")
    try:
        ch = ui.cached(focus.changes, viewer=ctx.viewer)
    except CxStatsError as exc:
        ui.show_error(exc)
    else:
        if ch.previous is None:
            st.caption("Nothing to compare yet: survey results of two periods are needed.")
        else:
            st.caption(
                f"{ch.previous} -> {ch.period}: {len(ch.changes)} change(s) passed Benjamini-Hochberg "
                f"q < 0.10 among {ch.compared:,} comparisons (every unit with a shown group in both periods, "
                f"on engagement, CSAT % and NPS), so noise is filtered out."
            )
            if ch.changes:
                st.dataframe(
                    [
                        {
                            "unit": c.unit_id,
                            "measure": c.measure,
                            "before": round(c.before, 1),
                            "after": round(c.after, 1),
                            "change": round(c.diff, 1),
                            "95% CI": f"[{c.ci_low:+.1f}, {c.ci_high:+.1f}]",
                            "q": float(f"{c.q:.3g}"),
                        }
                        for c in ch.changes
                    ],
                    hide_index=True,
                    width="content",
                    key="ov_changes",
                )

# ---------------------------------------------------------------- freshness
st.subheader("Data freshness")
rows = [
    {"data": f.kind, "latest date": f.latest, ctx.period: f.period, "period still running": f.incomplete}
    for f in h.freshness
]
st.dataframe(rows, hide_index=True, width="content")

# ---------------------------------------------------------------- what next
st.subheader("What to look at next")
links = {
    "pages/linkage.py": "Linkage: the scatter of units, the within-unit effect, lags and driver items",
    "pages/actions.py": "Actions: focus areas per unit, action plans and their follow-up",
    "pages/engagement.py": "Engagement: favourable % per unit and item, trends by wave",
    "pages/customers.py": "Customers: CSAT and NPS by unit, channel and period; reply times",
    "pages/advocates.py": "Advocates: who speaks up for the brand, and rewards",
    "pages/upload.py": "Upload: add this quarter's files",
    "pages/data.py": "Data: what is loaded, its quality, undo a batch",
}
for path, label in links.items():
    if ui.page_visible(ctx.viewer, path):
        st.page_link(path, label=label)
