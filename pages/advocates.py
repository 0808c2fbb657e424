"""Advocates: loyal customers who speak up for the brand, ranked, explained, exported, thanked.

Scores are computed once per set of weights (cached); the tier, consent and score filters only
narrow the table. Exports hold consented customers only and are audited by the library.
"""

import dataclasses
from datetime import date

import pandas as pd
import streamlit as st

import ui
from cxstats import CxStatsError, advocates, charts, export, programme, store

ctx = ui.page_setup("Advocates", roles=("marketing", "leader", "admin"))

DEFAULTS = dict(advocates.DEFAULT_WEIGHTS)
TIERS = [name for name, _ in advocates.TIERS]  # the one definition: cxstats.advocates.TIERS

# ---------------------------------------------------------------- weights (applied together, not per slider move)
with st.expander("Score weights and date", expanded=False):
    st.caption(
        "The score is 100 x the weighted mean of the parts a customer has. Reach (followers) is capped at "
        "0.1 of the total weight: a follower count alone never makes an advocate."
    )
    with st.form("adv_weights"):
        cols = st.columns(4)
        chosen = {
            k: cols[i].slider(k, 0.0, 1.0, float(st.session_state.get("adv_w", DEFAULTS)[k]), 0.05, key=f"adv_w_{k}")
            for i, k in enumerate(DEFAULTS)
        }
        as_of_choice = st.date_input(
            "Evidence up to (empty = the latest order date)",
            value=st.session_state.get("adv_as_of"),
            key="adv_as_of_input",
        )
        applied = st.form_submit_button("Apply weights")
    if applied:
        st.session_state["adv_w"] = chosen
        st.session_state["adv_as_of"] = as_of_choice
weights = st.session_state.get("adv_w", DEFAULTS)
as_of = st.session_state.get("adv_as_of")


def advocate_scores(con, viewer, as_of, weights):
    """advocates.score with plain dicts (its read-only mappings cannot be pickled into the cache)."""
    res = advocates.score(con, viewer=viewer, as_of=as_of, weights=weights)
    return dataclasses.replace(res, weights=dict(res.weights), gate_counts=dict(res.gate_counts))


try:
    result = ui.cached(advocate_scores, ctx.viewer, as_of, dict(weights))
except CxStatsError as exc:
    ui.show_error(exc)
    st.caption("Using the default weights instead.")
    st.session_state["adv_w"] = DEFAULTS
    weights = DEFAULTS
    result = ui.cached(advocate_scores, ctx.viewer, as_of, dict(DEFAULTS))

st.caption(
    "Weights: "
    + ", ".join(f"{k} {v:g}" for k, v in weights.items())
    + (f" · evidence up to {result.as_of}" if result.as_of else "")
    + (" · generated demo data, not real customers" if ctx.is_demo else "")
)

if result.as_of is None:
    st.info(
        "No purchases loaded yet: advocates are found from orders, social posts and survey answers. "
        "Load purchases, mentions and customers on the Upload page."
    )
    st.stop()

# ---------------------------------------------------------------- filters (on the cached result)
df = result.customers
f1, f2, f3, f4 = st.columns([5, 3, 2, 2])
tiers = f1.multiselect("Tier", TIERS, default=TIERS, key="adv_tiers")
min_score = f2.slider("Minimum score", 0, 100, 0, key="adv_min_score")
consent_only = f3.checkbox("Marketing consent only", value=False, key="adv_consent")
hide_flagged = f4.checkbox("Hide flagged", value=False, key="adv_hide_flagged")
filters = dict(tiers=tiers, min_score=min_score, consent_only=consent_only, hide_flagged=hide_flagged)
shown = advocates.filter_customers(result, **filters)

gc = result.gate_counts
c = st.columns(4)
c[0].metric("Customers with orders", f"{result.ranked:,}", border=True)
c[1].metric(
    "Pass the gates",
    f"{len(df):,}",
    border=True,
    help="2+ orders; a positive post or a promoter answer; no negative post or detractor answer in the last 90 days",
)
c[2].metric("Shown", f"{len(shown):,}", border=True)
c[3].metric("With consent", f"{int(shown['consent'].astype(bool).sum()) if len(shown) else 0:,}", border=True)
if gc:
    st.caption(
        f"Of {gc.get('customers_with_orders', 0):,} customers with orders, {gc.get('two_orders', 0):,} have 2+ "
        f"orders, {gc.get('positive_voice', 0):,} of those spoke up positively, {gc.get('passed', 0):,} pass "
        "every gate."
    )

table = shown.assign(
    reasons=shown["reasons"].map(lambda r: "; ".join(r)),
    flags=shown["flag_text"].map(lambda r: "; ".join(r)),
    loyalty=shown["contribution_loyalty"],
    advocacy=shown["contribution_advocacy"],
    satisfaction=shown["contribution_satisfaction"],
    reach_points=shown["contribution_reach"],
)[
    [
        "customer_id",
        "name",
        "tier",
        "score",
        "reasons",
        "loyalty",
        "advocacy",
        "satisfaction",
        "reach_points",
        "orders",
        "spend",
        "recency_days",
        "positive_mentions",
        "nps",
        "p_alive",
        "expected_orders",
        "expected_value",
        "consent",
        "recently_rewarded",
        "flags",
    ]
]
pts = st.column_config.NumberColumn(format="%.1f", help="points of the score from this part")
st.dataframe(
    table,
    hide_index=True,
    width="stretch",
    height=420,
    column_config={
        "score": st.column_config.ProgressColumn("score", min_value=0, max_value=100, format="%.1f"),
        "loyalty": pts,
        "advocacy": pts,
        "satisfaction": pts,
        "reach_points": st.column_config.NumberColumn("reach", format="%.1f", help="points of the score from reach"),
        "spend": st.column_config.NumberColumn(format="%.2f"),
        "p_alive": st.column_config.NumberColumn(
            "P(alive)", format="%.2f", help="chance the customer still buys (BG/NBD model); 1.0 for one-day buyers"
        ),
        "expected_orders": st.column_config.NumberColumn(
            "expected orders", format="%.1f", help="expected purchase days in the next 12 months"
        ),
        "expected_value": st.column_config.NumberColumn(
            "expected value", format="%.2f", help="expected orders x expected spend per order (undiscounted)"
        ),
        "recently_rewarded": st.column_config.CheckboxColumn(
            "rewarded recently", help=f"within the last {result.cooldown_days} days"
        ),
    },
)

ch1, ch2 = st.columns([1, 2])
ch1.plotly_chart(charts.tier_counts(shown), width="stretch", key="adv_tiers_chart")
ch2.plotly_chart(charts.contributions_chart(shown), width="stretch", key="adv_contrib_chart")

flagged = shown[shown["flags"].map(len) > 0]
if len(flagged):
    with st.expander(f"Flags to review ({len(flagged)}): duplicates, returns, repeated posts", expanded=False):
        st.caption(
            "Flags never change a score; flagged customers are left out of the 'to reward' list until a "
            "person has looked at them."
        )
        st.dataframe(
            flagged.assign(flags=flagged["flag_text"].map(lambda r: "; ".join(r)))[
                ["customer_id", "name", "tier", "score", "flags"]
            ],
            hide_index=True,
            width="stretch",
        )
if len(result.unmatched_handles):
    with st.expander(f"Social handles that match no customer ({len(result.unmatched_handles)})"):
        st.dataframe(result.unmatched_handles, hide_index=True, width="stretch")

# ---------------------------------------------------------------- who will keep buying (cxstats.value)
st.subheader("Who will keep buying?")
clv = result.clv
min_p_alive = 0.0
if clv is None or clv.as_json() is None:
    st.info(
        "No customer-value model: "
        + ui.escape_md(clv.reason if clv is not None and clv.reason else "not computed")
        + ". The advocate list is unaffected."
    )
else:
    v1, v2 = st.columns([2, 1])
    bt = clv.backtest
    v1.plotly_chart(charts.backtest_chart(bt), width="stretch", key="adv_backtest_chart")
    if bt is not None:
        v1.write(bt.sentence()[0].upper() + bt.sentence()[1:] + ".")
    else:
        v1.caption(ui.escape_md(clv.backtest_reason or "no backtest"))
    bg, gg = clv.bgnbd, clv.gamma_gamma
    v2.caption(
        f"BG/NBD repeat-buying model (Fader, Hardie and Lee 2005) fitted on {clv.n_customers:,} customers: "
        f"r {bg.r:.3g}, alpha {bg.alpha:.3g}, a {bg.a:.3g}, b {bg.b:.3g}; spend model (Gamma-Gamma) on "
        f"{gg.n:,} customers who bought on more than one day: mean spend {gg.mean_spend:,.2f}. "
        f"Expected orders cover the next {clv.horizon_weeks} weeks. The backtest refits the model without "
        "the last weeks and compares its forecast with what happened."
    )
    min_p_alive = v2.number_input(
        "Leave out of 'to reward' below P(alive)",
        min_value=0.0,
        max_value=1.0,
        value=0.0,
        step=0.05,
        key="adv_min_p_alive",
        help="customers the model thinks have probably stopped buying",
    )

# ---------------------------------------------------------------- export (consented only, audited, with a hold-out)
filter_text = advocates.filter_text(as_of=result.as_of, weights=weights, min_p_alive=min_p_alive or None, **filters)
st.subheader("Export")
e1, e2, e3 = st.columns([1, 1, 3])
fmt = e1.radio("Format", ["csv", "xlsx"], horizontal=True, key="adv_fmt")
may_hold = ctx.viewer.role in programme.HOLDOUT_ROLES
holdout_pct = e2.number_input(
    "Hold out (%)",
    min_value=0,
    max_value=int(programme.MAX_HOLDOUT_PCT),
    value=int(programme.PAGE_HOLDOUT_PCT) if may_hold else 0,
    step=5,
    key="adv_holdout",
    disabled=not may_hold,
    help="share of the customers to reward that the computer leaves out at random, so that in 90 days you can "
    "see what the rewards did (0 = no hold-out)",
)
if holdout_pct:
    e3.caption(
        f"A 'to reward' list: the consented customers shown who were not rewarded recently and are not "
        f"flagged. {holdout_pct}% of them are picked at random and left out of the file and of every export "
        "for 90 days: do not reward them until then. Their buying is the fair comparison for the others. "
        "Every export is recorded in the audit log (who, when, filter, rows, hold-out)."
    )
else:
    e3.caption(
        "Only customers who gave marketing consent are written, whatever the filters say; every export is "
        "recorded in the audit log (who, when, filter, rows). Without a hold-out nobody can tell later "
        "whether the rewards worked."
    )
export_key = (fmt, filter_text, int(holdout_pct))
if e3.button("Prepare export of the shown list", key="adv_prepare"):
    try:
        with store.connect(ctx.db) as con:
            listed = dataclasses.replace(result, customers=shown)
            if holdout_pct:  # a hold-out is drawn from the customers to reward now
                listed = dataclasses.replace(
                    result, customers=advocates.to_reward(listed, min_p_alive=min_p_alive or None)
                )
            data, info = export.export_bytes(
                con, viewer=ctx.viewer, result=listed, fmt=fmt, filter_text=filter_text, holdout_pct=holdout_pct or None
            )
    except CxStatsError as exc:
        ui.show_error(exc)
    else:
        st.session_state["adv_export"] = (data, export_key, info.rows, info.held_out, info.seed)
        if holdout_pct:
            st.session_state["adv_holdouts"] = st.session_state.get("adv_holdouts", 0) + 1
prepared = st.session_state.get("adv_export")
if prepared and prepared[1] == export_key:  # a changed filter or hold-out needs a new export
    data, (pfmt, _, pct), rows, held, seed = prepared
    mime = "text/csv" if pfmt == "csv" else "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    st.download_button(
        f"Download {rows:,} consented customers ({pfmt})",
        data,
        file_name=f"advocates.{pfmt}",
        mime=mime,
        key="adv_download",
    )
    if pct:
        st.caption(f"{held:,} customers held out at random (seed {seed}) and recorded; they are not in the file.")

# ---------------------------------------------------------------- record a reward


def held_out_now(con, as_of, holdouts_made):
    """Customers in a hold-out whose 90 days are running (``holdouts_made`` moves the cache key)."""
    return store.held_out(con, as_of) if as_of else set()


st.subheader("Record a reward")
if ctx.viewer.role not in advocates.REWARD_ROLES:
    st.caption("Rewards are recorded by marketing or an admin.")
else:
    with st.form("adv_reward", clear_on_submit=True):
        r1, r2, r3 = st.columns(3)
        held = ui.cached(held_out_now, result.as_of, st.session_state.get("adv_holdouts", 0))
        options = [
            c
            for c in advocates.to_reward(result, min_p_alive=min_p_alive or None)["customer_id"].astype(str)
            if c not in held
        ]
        cid = r1.selectbox(
            "Customer",
            options + [c for c in shown["customer_id"].astype(str) if c not in options and c not in held],
            help="customers due a reward are listed first (not rewarded recently, not flagged); "
            "customers in a running hold-out are not offered",
        )
        rdate = r2.date_input("Reward date", value=date.today())
        rtype = r3.text_input("Reward type", placeholder="voucher, thank-you gift ...")
        r4, r5 = st.columns([1, 2])
        value = r4.number_input("Value", min_value=0.0, value=0.0, step=5.0)
        note = r5.text_input("Note")
        submitted = st.form_submit_button("Record reward")
    if submitted:
        try:
            batch = advocates.record_reward(ctx.db, cid, rdate, rtype, value or None, note or None, viewer=ctx.viewer)
        except CxStatsError as exc:
            ui.show_error(exc)
        else:
            ui.invalidate()
            st.success(f"Reward recorded as batch {batch} (undo it on the Data page if it was a mistake).")

# ---------------------------------------------------------------- programme effect (both designs, always shown)
st.subheader("Did the rewards work?")


def programme_effect(con, viewer, as_of, holdouts_made):
    """programme.programme_effect; ``holdouts_made`` moves the cache key after a hold-out export."""
    return programme.programme_effect(con, viewer=viewer, as_of=as_of)


try:
    eff = ui.cached(programme_effect, ctx.viewer, result.as_of, st.session_state.get("adv_holdouts", 0))
except CxStatsError as exc:
    ui.show_error(exc)
    st.stop()


def _iv(iv, unit: str, spec: str) -> str:
    if iv is None or iv.estimate is None:
        return "not available yet"
    if iv.ci_low is None:
        return f"{iv.estimate:{spec}} {unit} (too few customers for an interval)"
    return f"{iv.estimate:{spec}} {unit} (95% CI {iv.ci_low:{spec}} to {iv.ci_high:{spec}})"


st.markdown("**1. Hold-out (randomised): the design to use.** " + eff.holdout_text)
if not eff.holdouts:
    st.info(
        "No export with a hold-out yet. Export the list above with a hold-out (10% is proposed), reward "
        "only the customers in the file, and come back after 90 days."
    )
for d in eff.holdouts:
    title = f"Export {d.export_id} of {d.list_date}: {d.n_treated:,} to reward, {d.n_control:,} held out ({d.status})"
    with st.container(border=True):
        st.markdown(f"**{title}**")  # numbers and dates only, no user text
        if d.status == "done":
            st.write(
                f"Change of orders per 90 days, reward minus hold-out: {_iv(d.orders, 'orders', '+.2f')}; "
                f"spend: {_iv(d.spend, '', '+.2f')}."
            )
            st.plotly_chart(charts.programme_effect_chart(d), width="stretch", key=f"adv_holdout_chart_{d.export_id}")
        for w in d.warnings:
            st.caption(ui.escape_md(w))

m = eff.matched
st.markdown("**2. Matched comparison (observational): for rewards given without a hold-out.** " + eff.matched_text)
with st.container(border=True):
    st.write(
        f"{m.n_treated:,} rewarded customers matched to a look-alike, {m.n_unmatched:,} without one, "
        f"{m.n_too_recent:,} rewarded too recently to judge. Change of orders per 90 days (estimate): "
        f"{_iv(m.orders, 'orders', '+.2f')}; spend: {_iv(m.spend, '', '+.2f')}. Placebo 180 days earlier "
        f"(should hold 0): {_iv(m.pretrend, 'orders', '+.2f')}."
    )
    if m.means is not None:
        st.plotly_chart(charts.programme_effect_chart(m), width="stretch", key="adv_effect_chart")
    for w in m.warnings:
        st.warning(ui.escape_md(w))
    if m.balance:
        st.caption(
            "Balance: standardised mean difference of each covariate between rewarded and comparison "
            "customers, before and after matching (within 0.1 is good)."
        )
        st.dataframe(
            pd.DataFrame([b.as_json() for b in m.balance]),
            hide_index=True,
            width="stretch",
            column_config={
                "smd_before": st.column_config.NumberColumn("before", format="%.2f"),
                "smd_after": st.column_config.NumberColumn("after", format="%.2f"),
            },
        )
