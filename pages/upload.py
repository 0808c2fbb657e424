"""Upload: pick a kind, drop a file, preview and check it, then load it as one batch.

Nothing is written until the Load button: the preview lists every problem by row and column.
"""

import hashlib
from pathlib import Path

import pandas as pd
import streamlit as st

import ui
from cxstats import CxStatsError, ingest
from cxstats.schema import KINDS

PROBLEMS_SHOWN = 200

ctx = ui.page_setup("Upload", roles=("admin", "manager", "marketing"))
viewer = ctx.viewer

flash = st.session_state.pop("cx_upload_flash", None)
if flash:
    st.success(ui.escape_md(flash["summary"]))
    for w in flash.get("warnings", []):
        st.caption(ui.escape_md(f"note: {w}"))
    if flash.get("rejected"):
        st.download_button(
            f"Download the {flash['rejected_rows']:,} rejected rows (with reasons)",
            flash["rejected"],
            file_name=flash["rejected_name"],
            mime="text/csv",
            key="cx_rejected_download",
        )

kinds = [k for k in ingest.UPLOAD_KINDS.get(viewer.role, ()) if k in KINDS]
if not kinds:
    st.error(f"The {viewer.role} role does not upload files.")
    st.stop()
lake_note = ui.engine_config(ctx.db).upload_note()
if lake_note:
    st.info(ui.escape_md(lake_note))
if viewer.role == "manager":
    st.caption("You can load files for your own units only: " + ui.escape_md(", ".join(viewer.units)) + ".")
if viewer.role == "marketing":
    st.caption("Marketing loads customer-side files only (no employee survey data).")

left, right = st.columns([2, 1])
kind = left.selectbox(
    "What is in the file?", kinds, key="cx_upload_kind", format_func=lambda k: f"{k}: {KINDS[k].description}"
)
right.download_button(
    f"Template for {kind} (.csv)",
    ingest.template_csv(kind),
    file_name=f"cxstats_{kind}_template.csv",
    mime="text/csv",
    key=f"cx_template_{kind}",
    width="stretch",
)
spec = KINDS[kind]
needed = ", ".join(spec.required) + ("".join(f"; and {' or '.join(g)}" for g in spec.one_of))
right.caption(f"Needs: {needed}.")

nonce = st.session_state.setdefault("cx_upload_nonce", 0)  # a new key empties the uploader after a load
upload = st.file_uploader(
    "Drop a .xlsx or .csv file", type=["xlsx", "xlsm", "xls", "ods", "csv", "txt", "tsv"], key=f"cx_upload_file_{nonce}"
)
if upload is None:
    st.info("Choose the kind, then drop a file. You will see a preview and every problem before anything is written.")
    st.stop()

data = upload.getvalue()
file_name = Path(upload.name).name
file_key = hashlib.sha256(data).hexdigest()[:16] + kind

# ---------------------------------------------------------------- options that change how the file is read
with st.expander("Reading options", expanded=False):
    o1, o2, o3 = st.columns(3)
    dates = o1.selectbox(
        "Dates",
        ["detect", "day first (31/12/2025)", "month first (12/31/2025)"],
        key=f"cx_dates_{file_key}",
        help="only needed when a date column is ambiguous",
    )
    dayfirst = {"detect": None}.get(dates, dates.startswith("day"))
    scale = None
    if kind == "engagement":
        scale_choice = o2.selectbox("Answer scale", ["detect", "5 points", "7 points"], key=f"cx_scale_{file_key}")
        scale = None if scale_choice == "detect" else int(scale_choice[0])


def run_preview(sheet, mapping, reverse):
    """Preview once per set of options (kept for this session, not recomputed on every click)."""
    key = (file_key, sheet, tuple(sorted((mapping or {}).items())), dayfirst, scale, tuple(reverse))
    store_ = st.session_state.setdefault("cx_previews", {})
    if key not in store_:
        if len(store_) > 8:
            store_.clear()
        with st.spinner("Reading and checking the file..."):
            store_[key] = ingest.preview(
                data,
                file_name,
                kind,
                sheet=sheet,
                mapping=mapping,
                dayfirst=dayfirst,
                scale=scale,
                reverse=tuple(reverse),
                db=ctx.db,
                viewer=viewer,
                isolated=True,
            )
    return store_[key]


sheet = st.session_state.get(f"cx_sheet_{file_key}")
mapping = st.session_state.get(f"cx_mapping_{file_key}")
reverse = st.session_state.get(f"cx_reverse_{file_key}", [])
try:
    pv = run_preview(sheet, mapping, reverse)
except CxStatsError as exc:
    ui.show_error(exc)
    st.stop()

if len(pv.sheets) > 1:
    chosen = st.selectbox(
        "Sheet",
        pv.sheets,
        index=pv.sheets.index(pv.sheet) if pv.sheet in pv.sheets else 0,
        key=f"cx_sheet_pick_{file_key}",
    )
    if chosen != pv.sheet:
        st.session_state[f"cx_sheet_{file_key}"] = chosen
        st.session_state.pop(f"cx_mapping_{file_key}", None)
        st.rerun()

# ---------------------------------------------------------------- what was found
st.subheader("Preview")
st.write(ui.escape_md("; ".join(pv.facts()) + "."))
for w in pv.warnings:
    st.caption(ui.escape_md(w))

st.markdown("**Column mapping** (change a row if a column was read wrongly; 'ignore' drops it)")
choices = ["ignore"] + list(spec.field_names) + (["item"] if kind == "engagement" else [])
map_frame = pd.DataFrame({"column in file": list(pv.mapping), "maps to": [pv.mapping[c] for c in pv.mapping]})
edited = st.data_editor(
    map_frame,
    hide_index=True,
    width="stretch",
    key=f"cx_map_editor_{file_key}",
    disabled=["column in file"],
    column_config={"maps to": st.column_config.SelectboxColumn("maps to", options=choices, required=True)},
)
new_mapping = dict(zip(edited["column in file"], edited["maps to"]))
if new_mapping != pv.mapping:
    st.session_state[f"cx_mapping_{file_key}"] = new_mapping
    st.rerun()
if kind == "engagement":
    items = [c for c, f in pv.mapping.items() if f == "item"]
    rev = st.multiselect(
        "Reverse-keyed items (score becomes k + 1 - score)",
        items,
        default=[r for r in reverse if r in items],
        key=f"cx_reverse_pick_{file_key}",
    )
    if sorted(rev) != sorted(reverse):
        st.session_state[f"cx_reverse_{file_key}"] = rev
        st.rerun()

with st.expander(f"First rows as they will be stored ({min(len(pv.sample), 20)} shown)"):
    st.dataframe(pv.sample, hide_index=True, width="stretch")

# ---------------------------------------------------------------- problems, then load
if pv.n_problems:
    st.error(
        f"{pv.n_problems:,} problem(s) found: nothing has been written. Fix the file (or the mapping) "
        "and drop it again, or load only the good rows."
    )
    shown = pv.problems[:PROBLEMS_SHOWN]
    st.dataframe(
        pd.DataFrame(
            {"row": [p.row for p in shown], "column": [p.column for p in shown], "problem": [p.message for p in shown]}
        ),
        hide_index=True,
        width="stretch",
    )
    if pv.n_problems > len(shown):
        st.caption(f"... and {pv.n_problems - len(shown):,} more")
else:
    st.success(f"No problems found: {pv.rows:,} rows are ready to load.")


def do_import(skip_invalid: bool) -> None:
    # the library imports the bytes from a private folder and hands back the rejected rows for a download
    try:
        up = ingest.import_upload(
            ctx.db,
            kind,
            data,
            file_name=file_name,
            sheet=pv.sheet,
            mapping=pv.mapping,
            dayfirst=dayfirst,
            scale=scale,
            reverse=tuple(reverse),
            skip_invalid=skip_invalid,
            viewer=viewer,
            loaded_by=viewer.name,
        )
    except CxStatsError as exc:
        ui.show_error(exc)
        return
    res, rejected = up.result, up.rejected_csv
    ui.invalidate()
    st.session_state["cx_upload_flash"] = {
        "summary": res.summary().split(" (see ")[0] + ".",
        "warnings": list(res.warnings),
        "rejected": rejected,
        "rejected_rows": res.rejected,
        "rejected_name": f"{Path(file_name).stem}.rejected.csv",
    }
    st.session_state["cx_upload_nonce"] = nonce + 1
    st.session_state.pop("cx_previews", None)
    st.rerun()


b1, b2 = st.columns(2)
if b1.button(f"Load {pv.rows:,} rows", type="primary", disabled=not pv.ok, key="cx_load"):
    do_import(skip_invalid=False)
if pv.n_problems and b2.button(
    "Load good rows only (skip invalid)",
    key="cx_load_good",
    help="the rejected rows, with the reason, are offered as a download",
):
    do_import(skip_invalid=True)
