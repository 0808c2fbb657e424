"""Linkage: do engaged teams have happier customers? Within units first, then between units.

Employee data: marketing is refused by page_setup. All statistics come from cxstats.linkage; this
page lays them out, with what they cannot show.
"""

import streamlit as st

import ui
from cxstats import CxStatsError, charts, linkage

ctx = ui.page_setup("Linkage", employee_data=True)

METRICS = {"csat_pct": "CSAT %", "csat_mean": "CSAT mean", "nps": "NPS"}
COVARIATES = {"region": "region", "headcount": "headcount"}

c1, c2, c3 = st.columns([2, 2, 3])
metric = c1.selectbox("Customer measure", list(METRICS), format_func=METRICS.get, key="lk_metric")
lag = c2.select_slider(
    "Lag (periods from engagement to customers)",
    [-2, -1, 0, 1, 2],
    value=0,
    key="lk_lag",
    help="1 = customers measured one period after engagement; -1 = one period before",
)
covariates = c3.multiselect(
    "Adjust the between-unit correlation for",
    list(COVARIATES),
    key="lk_cov",
    help="unit columns from the units file; a region enters as one column per region",
)

try:
    res = ui.cached(
        linkage.analyse, viewer=ctx.viewer, metric=metric, lag=lag, min_group=None, covariates=tuple(covariates)
    )
except CxStatsError as exc:
    ui.show_error(exc)
    st.stop()

st.caption(
    f"Every unit you may see, every kept {ctx.period} (the sidebar's unit and period filters do not narrow "
    "this: fewer units would only widen the intervals). Groups under "
    f"{res.min_group} respondents are left out ({res.suppressed_groups} suppressed)."
    + (" Generated demo data, not real results." if ctx.is_demo else "")
)


def f(v, spec=".2f"):
    return "—" if v is None else format(v, spec)


for w in res.warnings:
    st.warning(ui.escape_md(w))

# ---------------------------------------------------------------- headline: within units
st.subheader("Within units (the headline)")
w = res.within_unit
c = w.corrected
cols = st.columns([1.1, 1.4, 0.7, 1, 1.3])
cols[0].metric(
    f"{res.metric_label} per +10 engagement points",
    "—" if w.coef is None else f"{10 * w.coef:+.2f}",
    border=True,
    help="two-way fixed effects (unit and period), errors clustered by unit",
)
cols[1].metric(
    "95% CI",
    "—" if w.ci_low is None else f"{10 * w.ci_low:.2f} to {10 * w.ci_high:.2f}",
    border=True,
    help="CRV1 from 30 units; the jackknife (CRV3) from 3 to 29; none below 3 units",
)
cols[2].metric("p", f(w.p, ".3g"), border=True)
cols[3].metric("Units · unit-periods", f"{w.n_clusters} · {w.n_obs}", border=True)
cols[4].metric(
    "Corrected for small-group noise",
    "—" if c is None else f"{10 * c.coef:+.2f}",
    border=True,
    help="the same figure divided by the reliability of the groups' indices (unit bootstrap CI)",
)
sentences = list(res.summary_sentences())
if sentences:
    st.info(ui.escape_md(" ".join(sentences[:2])))
st.caption(
    f"Within-unit correlation r = {f(w.r)} (unit and company-wide period effects removed; dof {f(w.r_dof, 'd')}; "
    f"p = {f(w.r_p, '.3g')}, the clustered test of the slope above). Comparing each unit with itself over time "
    "removes everything that is fixed about a unit (location, size, clientele), and removing each period's "
    "company-wide level keeps a chain-wide good or bad quarter from looking like a link; comparisons "
    "between units cannot do either."
)
if c is not None:
    st.caption(
        f"Corrected for small-group noise: {10 * c.coef:+.2f} per +10 points (95% CI "
        f"{f(None if c.ci_low is None else 10 * c.ci_low, '+.2f')} to "
        f"{f(None if c.ci_high is None else 10 * c.ci_high, '+.2f')}; reliability {c.reliability:.2f}). "
        "Each group's index is an average over a few people, and that noise pulls the headline towards zero "
        "when customers respond to true engagement. This figure undoes that shrinkage; it assumes the noise is "
        "only sampling of respondents, so read it beside the headline, not instead of it."
    )

st.plotly_chart(charts.lag_chart(res.lags, metric=metric), width="stretch", key="lk_lags")
st.caption(
    "Each point is the within-unit model with customers measured k periods after engagement. A stronger "
    "link at positive lags fits engagement leading satisfaction, but does not prove direction. Each lag uses "
    "the unit-periods it has, so n differs; Holm's p allows for looking at five lags at once."
)
st.dataframe(
    [
        {
            "lag": x.lag,
            "coefficient": x.coef,
            "within r": x.r,
            "p": x.p,
            "p (Holm, 5 lags)": x.p_holm,
            "unit-periods": x.n,
        }
        for x in res.lags
    ],
    hide_index=True,
    width="content",
    column_config={
        k: st.column_config.NumberColumn(format="%.3f") for k in ("coefficient", "within r", "p", "p (Holm, 5 lags)")
    },
)

# ---------------------------------------------------------------- between units
st.subheader("Between units (confounded)")
st.plotly_chart(charts.linkage_scatter(res.units, metric=metric), width="stretch", key="lk_scatter")
p = res.pearson
cols = st.columns([1, 1.5, 0.8, 1.1])
cols[0].metric("Pearson r", f(p.r), border=True, help="95% CI by Fisher z")
cols[1].metric("95% CI", "—" if p.ci_low is None else f"{p.ci_low:.2f} to {p.ci_high:.2f}", border=True)
cols[2].metric("Units (n)", f"{res.n_units}", border=True)
cols[3].metric(
    "Smallest r detectable",
    f(res.min_detectable_r),
    border=True,
    help="80% power, alpha 0.05: a true correlation smaller than this would often be missed",
)
pc = res.pearson_corrected
if pc.r is not None:
    st.caption(
        f"Corrected for unreliable unit averages (secondary): r = {pc.r:.2f} (95% CI {f(pc.ci_low)} to "
        f"{f(pc.ci_high)}; reliability of the units' engagement {f(pc.rel_x)}, of their {res.metric_label} "
        f"{f(pc.rel_y)}). This is how unit-level linkage studies usually report it; it is still a comparison "
        "between units, so it is just as confounded."
    )
st.caption(
    f"Spearman rho = {f(res.spearman.rho)} (p = {f(res.spearman.p, '.3g')}); Pearson p = {f(p.p, '.3g')}. "
    f"Power: with {res.n_units} units only correlations of about {f(res.min_detectable_r)} or larger would "
    "reliably show up; a non-significant result is not evidence of no link."
)
s10 = res.slope_per_10
st.write(
    f"Slope: {f(s10.estimate)} {res.metric_label} points per +10 engagement points "
    f"(95% CI {f(s10.ci_low)} to {f(s10.ci_high)})."
)
if res.partial is not None:
    pa = res.partial
    st.write(
        f"Adjusted for {', '.join(pa.covariates)}: partial r = {f(pa.r)} (95% CI {f(pa.ci_low)} to "
        f"{f(pa.ci_high)}, p = {f(pa.p, '.3g')})."
    )

tab_drivers, tab_quart, tab_elast = st.tabs(["Driver items", "Top vs bottom quartile", "Elasticity (secondary)"])
with tab_drivers:
    st.plotly_chart(charts.drivers_chart(res.drivers), width="stretch", key="lk_drivers")
    if res.drivers:
        st.dataframe(
            [
                {
                    "item": d.item,
                    "r": d.r,
                    "95% CI low": d.ci_low,
                    "95% CI high": d.ci_high,
                    "p": d.p,
                    "q (Benjamini-Hochberg)": d.q,
                    "units": d.n,
                }
                for d in res.drivers
            ],
            hide_index=True,
            width="stretch",
            column_config={
                k: st.column_config.NumberColumn(format="%.3f")
                for k in ("r", "95% CI low", "95% CI high", "p", "q (Benjamini-Hochberg)")
            },
        )
    st.caption(
        "Items overlap (they measure related things), so their correlations are not separate effects; "
        "q-values allow for testing many items at once."
    )
with tab_quart:
    st.plotly_chart(charts.quartile_chart(res.quartiles, metric=metric), width="stretch", key="lk_quartiles")
    q = res.quartiles
    st.caption(f"{q.n_top} top-quartile and {q.n_bottom} bottom-quartile units by engagement index.")
with tab_elast:
    el = res.elasticity
    if el is None:
        st.info(ui.escape_md(res.elasticity_reason or "Elasticity is not available for these data."))
    else:
        st.write(
            f"+10% engagement goes with {100 * el.effect_of_10pct:+.2f}% {res.metric_label} "
            f"(beta = {el.beta:.3f}, 95% CI {el.ci_low:.3f} to {el.ci_high:.3f}, p = {el.p:.3g})."
        )
    st.caption(
        "A secondary reading only: the engagement index's zero is arbitrary, so a percentage change of it "
        "has no natural meaning."
    )

st.subheader("What this cannot show")
st.info(
    "- **Correlation is not cause.** Engaged teams and happy customers may both follow from something else "
    "(a good manager, a better location, a quieter season).\n"
    "- **Lags do not prove direction.** Satisfied customers can also make work more pleasant.\n"
    f"- **Few units mean wide intervals.** With {res.n_units} units, only large correlations can be told apart "
    "from chance; read the intervals, not only the point estimates.\n"
    "- **Between-unit comparisons are confounded** by everything that differs between units; the within-unit "
    "result above is the better guide."
)
