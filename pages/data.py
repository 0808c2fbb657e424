"""Data: batch history (undo for admin), data quality per table, export audit log, settings,
erasure (admins; marketing erases customers and sees nothing else here) and retention."""

import streamlit as st

import ui
from cxstats import CxStatsError, export, governance, periods, quality, store

ctx = ui.page_setup("Data", roles=("admin", "leader", "marketing"))
is_admin = ctx.viewer.role == "admin"

flash = st.session_state.pop("cx_data_flash", None)
if flash:
    st.success(ui.escape_md(flash))  # holds file names (issue 18: a Markdown file name rendered as a link)


def erasure_form() -> None:
    st.subheader("Erase a person (right to be forgotten)")
    kinds = ["customer", "respondent"] if is_admin else ["customer"]
    with st.form("cx_forget"):
        st.markdown(
            "Removes every row of each id from every table and from the rejected-row files the app "
            "wrote, then rewrites the database file so the values are gone from its bytes. Later "
            "imports skip these people. Files already exported and backups are out of reach."
        )
        kind = st.radio("Who", kinds, horizontal=True, key="cx_forget_kind")
        text = st.text_area("Ids, one per line (or separated by commas)", key="cx_forget_ids")
        sure = st.checkbox("I understand this cannot be undone", key="cx_forget_sure")
        if st.form_submit_button("Erase", type="primary"):
            ids = [t.strip() for t in text.replace(",", "\n").splitlines() if t.strip()]
            if not sure:
                st.warning("Tick the box to confirm first.")
            elif not ids:
                st.warning("Enter at least one id.")
            else:
                try:
                    res = governance.forget(ctx.db, kind, ids, viewer=ctx.viewer)
                except CxStatsError as exc:
                    ui.show_error(exc)
                else:
                    ui.invalidate()
                    rows = sum(p.total for p in res.people)
                    st.session_state["cx_data_flash"] = (
                        f"Erased {len(res.people):,} {kind}{'s' if len(res.people) != 1 else ''}: {rows:,} rows "
                        "removed; the database file was rewritten."
                    )
                    st.rerun()


if ctx.viewer.role == "marketing":
    erasure_form()
    st.stop()

# ---------------------------------------------------------------- batches
st.subheader("Loaded batches")
try:
    batches = ui.cached(quality.batches, viewer=ctx.viewer)  # a leader's counts leave out suppressed respondents
except CxStatsError as exc:
    ui.show_error(exc)
    batches = []
if not batches:
    st.info("Nothing loaded yet. Files go in on the Upload page (or `python -m cxstats import`).")
else:
    st.dataframe(
        [
            {
                "batch": b.batch_id,
                "kind": b.kind,
                "file": b.file_name,
                "rows": b.rows,
                "skipped rows": b.skipped_rows,
                "loaded at": b.loaded_at,
                "loaded by": b.loaded_by,
                "status": "undone" if b.undone else "live",
            }
            for b in reversed(batches)
        ],
        hide_index=True,
        width="stretch",
    )
    live = [b for b in reversed(batches) if not b.undone]
    if is_admin and live:
        with st.form("cx_undo"):
            st.markdown("**Undo a batch**: removes exactly that batch's rows; the history keeps a line saying so.")
            labels = {b.batch_id: f"{b.batch_id} · {b.kind} · {b.rows:,} rows · {b.file_name}" for b in live}
            choice = st.selectbox("Batch", list(labels), format_func=lambda i: labels[i], key="cx_undo_batch")
            sure = st.checkbox("I understand these rows will be removed from every page", key="cx_undo_sure")
            if st.form_submit_button("Undo batch", type="primary"):
                if not sure:
                    st.warning("Tick the box to confirm first.")
                else:
                    try:
                        with store.connect(ctx.db) as con:
                            b = governance.undo_batch(con, choice, viewer=ctx.viewer)
                    except CxStatsError as exc:
                        ui.show_error(exc)
                    else:
                        ui.invalidate()
                        st.session_state["cx_data_flash"] = (
                            f"Batch {b.batch_id} ({b.kind}, {b.rows:,} rows from {b.file_name}) undone."
                        )
                        st.rerun()
    elif not is_admin:
        st.caption("Only an admin can undo a batch.")

# ---------------------------------------------------------------- data quality
st.subheader("Data quality")
try:
    tables = ui.cached(quality.data_quality, viewer=ctx.viewer)
except CxStatsError as exc:
    ui.show_error(exc)
    tables = []
st.dataframe(
    [
        {
            "table": q.table,
            "rows": q.rows,
            "live batches": q.batches,
            "from": q.first_date,
            "to": q.last_date,
            "units": q.units,
            "missing values (optional columns)": q.missing_text,
        }
        for q in tables
    ],
    hide_index=True,
    width="stretch",
)
st.caption(
    "Dates are survey dates (engagement), feedback dates, order dates, post dates, consent dates "
    "(customers, current version of each) and reward dates. Missing counts cover optional columns only: "
    "required ones are never empty."
)

# ---------------------------------------------------------------- export audit log
st.subheader("Export audit log")
try:
    log = ui.cached(export.audit_log, viewer=ctx.viewer)
except CxStatsError as exc:
    ui.show_error(exc)
else:
    if len(log):
        st.dataframe(log, hide_index=True, width="stretch")
    else:
        st.caption("No advocate list has been exported yet.")

# ---------------------------------------------------------------- settings
st.subheader("Settings")
with store.connect(ctx.db) as con:
    current = store.settings(con)
if not is_admin:
    st.write(
        f"Anonymity threshold: groups under **{current.min_group}** respondents are suppressed; "
        f"engagement is grouped by **{current.period}**. Only an admin changes these."
    )
else:
    with st.form("cx_settings"):
        min_group = st.number_input(
            "Smallest group shown (respondents per unit and period)",
            min_value=store.MIN_GROUP_FLOOR,
            max_value=100,
            value=current.min_group,
            step=1,
            help=f"never below {store.MIN_GROUP_FLOOR}: smaller groups could identify people",
        )
        period = st.selectbox(
            "Group engagement and customer figures by",
            list(periods.PERIODS),
            index=periods.PERIODS.index(current.period) if current.period in periods.PERIODS else 0,
        )
        cooldown = st.number_input(
            "Reward cooldown (days)", min_value=0, max_value=3650, value=current.reward_cooldown_days, step=1
        )
        if st.form_submit_button("Save settings"):
            try:
                with store.connect(ctx.db) as con:
                    store.set_settings(
                        con,
                        {"min_group": int(min_group), "period": period, "reward_cooldown_days": int(cooldown)},
                        viewer=ctx.viewer,
                    )
            except CxStatsError as exc:
                ui.show_error(exc)
            else:
                ui.invalidate()
                for k in ("cx_f_periods", "cx_saved_periods"):  # period labels change with the setting
                    st.session_state.pop(k, None)
                st.session_state["cx_data_flash"] = "Settings saved; every page now uses them."
                st.rerun()
    st.caption(
        "Changing the grouping changes every figure; the threshold applies to every figure, chart, "
        "table and export (a view may raise it, never lower it)."
    )

if is_admin:
    erasure_form()

    st.subheader("Retention")
    kinds = list(store.RETENTION_DATES)
    with store.connect(ctx.db) as con:
        kept = store.retention_months(con)
    with st.form("cx_retention"):
        st.caption(
            "Months to keep per kind (0 = keep everything). Purging deletes whole periods older than "
            "that and rewrites the database file; each purge is logged."
        )
        cols = st.columns(len(kinds))
        months = {
            k: cols[i].number_input(k, min_value=0, max_value=1200, step=1, key=f"cx_retain_{k}", value=kept[k])
            for i, k in enumerate(kinds)
        }
        save, run = st.columns(2)
        do_save = save.form_submit_button("Save retention")
        do_purge = run.form_submit_button("Save and purge now", type="primary")
        if do_save or do_purge:
            try:
                with store.connect(ctx.db) as con:
                    store.set_settings(
                        con,
                        {f"retain_months_{k}": str(int(m)) if m else "" for k, m in months.items()},
                        viewer=ctx.viewer,
                    )
                res = governance.purge(ctx.db, viewer=ctx.viewer) if do_purge else None
            except CxStatsError as exc:
                ui.show_error(exc)
            else:
                ui.invalidate()
                gone = sum(p.rows for p in res.purged) if res else 0
                st.session_state["cx_data_flash"] = f"Purged {gone:,} rows." if res else "Retention saved."
                st.rerun()
