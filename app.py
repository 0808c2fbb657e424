"""cxstats dashboard router (pages arrive with the dashboard issue)."""

import streamlit as st

st.set_page_config(page_title="cxstats", layout="wide")
st.title("cxstats")
st.write("The dashboard pages are being built; use the command line meanwhile: `python -m cxstats --help`.")
