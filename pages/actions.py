"""Actions: a unit's focus areas, its action plans (add, edit, close) and their follow-up.

Managers see their own units and keep their plans; leaders and admins see every plan with counts
by item and status and the across-units estimate. Every figure comes from cxstats.focus; plan text
is user text and is shown only in plain tables or escaped (never as Markdown or HTML).
"""

from datetime import date

import streamlit as st

import ui
from cxstats import CxStatsError, focus, quality, store

ctx = ui.page_setup("Actions", employee_data=True, roles=("admin", "leader", "manager"))
viewer = ctx.viewer
writer = viewer.role in ("manager", "admin")


def fmt(x, spec=".2f"):
    return "—" if x is None else format(x, spec)


def ci(lo, hi, spec=".2f"):
    return "—" if lo is None or hi is None else f"[{lo:{spec}}, {hi:{spec}}]"


try:
    options = ui.cached(quality.filter_options, viewer=viewer)
except CxStatsError as exc:
    ui.show_error(exc)
    st.stop()
labels = {u.unit_id: u.label for u in options.units}
if not labels:
    st.info("No units yet. Load survey and feedback files on the Upload page.")
    st.stop()
choices = list(ctx.units) if ctx.units else list(labels)
unit = st.selectbox("Unit", choices, format_func=lambda u: labels.get(u, u), key="act_unit")

# ---------------------------------------------------------------- focus areas
st.subheader("Focus areas")
res = None
try:
    res = ui.cached(focus.focus_areas, unit, viewer=viewer)
except CxStatsError as exc:
    st.info(ui.escape_md(exc))
if res is not None:
    st.caption(
        f"{res.period}: items where this unit is clearly below the other units and that go with "
        f"{res.metric.replace('_pct', ' %').upper()} across units; priority = gap x r."
    )
    for sentence in res.summary:
        st.info(ui.escape_md(sentence))
    rows = [
        {
            "item": i.item,
            "unit mean": i.unit_mean,
            "others mean": i.others_mean,
            "gap": i.gap,
            "gap 95% CI": ci(i.gap_ci_low, i.gap_ci_high),
            "r": i.r,
            "q": i.q,
            "priority": i.priority,
            "focus area": i.focus,
        }
        for i in res.items
    ]
    st.dataframe(rows, hide_index=True, width="stretch", key="act_focus_table")
    if res.strengths:
        st.caption("Strengths (clearly above the other units): " + ui.escape_md("; ".join(res.strengths)))
    for w in res.warnings:
        st.caption(ui.escape_md(w))

# ---------------------------------------------------------------- plans
st.subheader("Action plans")
try:
    plans = ui.cached(focus.list_actions, viewer=viewer)
except CxStatsError as exc:
    ui.show_error(exc)
    st.stop()
shown = [a for a in plans.actions if viewer.role != "manager" or a.unit_id in viewer.units]
if not shown:
    st.caption("No action plans yet.")
else:
    table = []
    for a in shown:
        fu = a.follow_up
        table.append(
            {
                "id": a.action_id,
                "unit": a.unit_id,
                "item": a.item,
                "title": a.title,
                "owner": a.owner or "",
                "due": a.due_date,
                "status": a.status,
                "periods": "" if fu is None else f"{fu.baseline} -> {fu.outcome}",
                "item change": None if fu is None else fu.item_change,
                "item 95% CI": "" if fu is None else ci(fu.ci_low, fu.ci_high),
                "CSAT % change": None if fu is None else fu.cx_change,
                "CSAT 95% CI": "" if fu is None else ci(fu.cx_ci_low, fu.cx_ci_high, ".1f"),
            }
        )
    st.dataframe(table, hide_index=True, width="stretch", key="act_plans_table")
    st.caption(
        "Follow-up: the unit's change from the last survey period ended before the plan was made to the "
        "first period started after it, with Welch 95% intervals; blank until both periods have results."
    )

if viewer.role in ("leader", "admin") and shown:
    st.subheader("Plans by item and status")
    st.dataframe(plans.counts, hide_index=True, width="content", key="act_counts")
    try:
        effects = ui.cached(focus.plan_effect, viewer=viewer)
    except CxStatsError as exc:
        ui.show_error(exc)
        effects = ()
    if effects:
        st.caption(
            "Estimate, not proof: units with a plan on an item against units without, adjusted for the "
            "baseline score (ANCOVA, errors clustered by unit). Plans are not assigned at random."
        )
        st.dataframe(
            [
                {
                    "item": e.item,
                    "estimate": e.estimate,
                    "95% CI": ci(e.ci_low, e.ci_high),
                    "p": e.p,
                    "units with plan": e.n_plan_units,
                    "units without": e.n_other_units,
                    "note": e.reason or "",
                }
                for e in effects
            ],
            hide_index=True,
            width="stretch",
            key="act_effects",
        )


def write(fn, **kwargs):
    try:
        with store.connect(ctx.db) as con:
            a = fn(con, viewer=viewer, **kwargs)
    except CxStatsError as exc:
        ui.show_error(exc)
        return None
    ui.invalidate()
    return a


if writer:
    items = [i.item for i in res.items] if res is not None else []
    focus_first = [a.item for a in res.areas] if res is not None else []
    ordered = focus_first + [i for i in items if i not in focus_first]
    st.subheader("Add a plan")
    if not ordered:
        st.caption("A plan needs an item with survey results for this unit.")
    else:
        with st.form("act_add", clear_on_submit=True):
            item = st.selectbox("Item", ordered, key="act_add_item")
            title = st.text_input("Title (1-200 characters)", key="act_add_title", max_chars=200)
            owner = st.text_input("Owner", key="act_add_owner")
            due = st.date_input("Due date", value=None, key="act_add_due")
            note = st.text_area("Note", key="act_add_note")
            if st.form_submit_button("Add plan"):
                a = write(focus.add_action, unit_id=unit, item=item, title=title, owner=owner, due_date=due, note=note)
                if a is not None:
                    st.success(f"Plan {a.action_id} added.")
                    st.rerun()

    mine = [a for a in shown if a.unit_id == unit]
    if mine:
        st.subheader("Edit or close a plan")
        ids = {a.action_id: a for a in mine}
        pick = st.selectbox("Plan", list(ids), format_func=lambda i: f"{i}: {ids[i].title[:60]}", key="act_edit_id")
        cur = ids[pick]
        with st.form(f"act_edit_{pick}"):
            title = st.text_input("Title", value=cur.title, key=f"act_edit_title_{pick}", max_chars=200)
            owner = st.text_input("Owner", value=cur.owner or "", key=f"act_edit_owner_{pick}")
            due = st.date_input("Due date", value=cur.due_date, key=f"act_edit_due_{pick}")
            status = st.selectbox(
                "Status",
                list(focus.STATUSES),
                index=list(focus.STATUSES).index(cur.status),
                key=f"act_edit_status_{pick}",
            )
            note = st.text_area("Note", value=cur.note or "", key=f"act_edit_note_{pick}")
            if st.form_submit_button("Save changes"):
                a = write(
                    focus.update_action,
                    action_id=pick,
                    title=title,
                    owner=owner,
                    due_date=due if isinstance(due, date) else "",
                    status=status,
                    note=note,
                )
                if a is not None:
                    st.success(f"Plan {a.action_id} saved ({a.status}).")
                    st.rerun()
