"""cxstats dashboard: login, role -> visible pages, routing with st.navigation.

Run with `streamlit run app.py`. The database is CXSTATS_DB or data/cxstats.duckdb; an empty
database gets the demo data at start (CXSTATS_DEMO=0 turns that off). Without CXSTATS_USERS the
app runs as a single local admin and says so in the sidebar.
"""

import os
from pathlib import Path

import streamlit as st

import ui
from cxstats import CxStatsError

# an emoji favicon becomes an inline data: URL; ":material/...:" would be fetched from an outside font host
APP_ICON = "📈"


@st.cache_resource(show_spinner="Preparing the demo data (first start only)...")
def _ensure_demo(db: str) -> bool:
    from cxstats import demo

    return bool(demo.ensure_demo(Path(db)))


st.set_page_config(page_title="cxstats", page_icon=APP_ICON, layout="wide")
# tables holding customers or employee figures offer no built-in "Download as CSV" (and no copy):
# exports go through the audited, consent-filtered, formula-safe path only. .streamlit/config.toml
# sets it for the first run too; this covers a server started with another config.
st.set_option("client.disableDataExport", True)


def _refuse(exc: CxStatsError) -> None:
    """The app cannot start (user file unsafe, broken, missing): this message and nothing else."""
    st.error(ui.escape_md(exc))
    st.stop()


try:
    ui.user_directory()  # before anything else is drawn or prepared
except CxStatsError as exc:
    _refuse(exc)

if os.environ.get("CXSTATS_DEMO", "1") != "0":
    try:
        _ensure_demo(str(ui.db_path()))
    except CxStatsError as exc:
        ui.show_error(exc)

try:
    viewer = ui.login()
except ui.LoginUnavailable as exc:
    _refuse(exc)
except CxStatsError as exc:  # e.g. the database is busy
    ui.show_error(exc)
    st.stop()

if viewer is None:
    st.navigation([st.Page(lambda: None, title="Log in", url_path="login")], position="hidden")
    st.stop()

ui.logout_button()
keys = ui.visible_pages(viewer.role)
st.session_state["cx_nav_pages"] = tuple(keys)  # what page links may point at in this run
pages = [
    st.Page(ui.PAGES[k][0], title=ui.PAGES[k][1], icon=ui.PAGES[k][2], default=(i == 0)) for i, k in enumerate(keys)
]
if not pages:
    st.error(f"No page is available to the {viewer.role} role yet.")
    st.stop()
st.navigation(pages, position="hidden").run()  # ui.page_setup draws the menu
