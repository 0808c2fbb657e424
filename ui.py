"""App-side helpers shared by every page: login, the sidebar (page_setup), cached queries.

Pages import this module; the library (cxstats/) never imports streamlit, so everything that
touches st.* lives here or in pages/. Test hook (documented in README): with CXSTATS_TESTING=1
and CXSTATS_USERS pointing at a user file, CXSTATS_TEST_USER=<username> logs that user in
without the form; without a user file or without CXSTATS_TESTING the hook does nothing.
"""

from __future__ import annotations

import importlib
import logging
import os
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Callable

import streamlit as st  # noqa: TID251 (ui.py is app-side, beside app.py and pages/)
from streamlit.errors import StreamlitAPIException  # noqa: TID251

import cxstats
from cxstats import ADMIN, CxStatsError, Viewer, auth, engine, quality, store

LOCAL_ADMIN_NOTICE = "single local admin (no user file): set CXSTATS_USERS to require logins"


@dataclass(frozen=True)
class Ctx:
    """What a page needs: who is looking, which database, and the sidebar's filters.

    ``units`` is None for "every unit this viewer may see"; periods are whole period labels
    (e.g. '2025-Q1'), never free dates, for anonymity (DESIGN.md).
    """

    viewer: Viewer
    db: Path
    units: tuple[str, ...] | None
    regions: tuple[str, ...] | None
    period_from: str | None
    period_to: str | None
    is_demo: bool
    period: str = "quarter"


HERE = Path(__file__).resolve().parent

# key -> (file, title, icon); file names are fixed (both dashboard engineers rely on them). Icons are
# emoji: a ":material/...:" icon makes the browser fetch the tab icon from fonts.gstatic.com on every
# page load, and the app holds employee data and runs offline (issue 18)
PAGES = {
    "overview": ("pages/overview.py", "Overview", "📊"),
    "upload": ("pages/upload.py", "Upload", "📤"),
    "engagement": ("pages/engagement.py", "Engagement", "👥"),
    "customers": ("pages/customers.py", "Customers", "🙂"),
    "linkage": ("pages/linkage.py", "Linkage", "🔗"),
    "actions": ("pages/actions.py", "Actions", "✅"),
    "advocates": ("pages/advocates.py", "Advocates", "📣"),
    "data": ("pages/data.py", "Data", "🗄️"),
}

# DESIGN.md roles: marketing never gets a page with employee data (its Data page is the customer
# erasure form alone); a manager has no Data page
VISIBLE = {
    "admin": ("overview", "upload", "engagement", "customers", "linkage", "actions", "advocates", "data"),
    "leader": ("overview", "engagement", "customers", "linkage", "actions", "advocates", "data"),
    "manager": ("overview", "upload", "engagement", "customers", "linkage", "actions"),
    "marketing": ("advocates", "customers", "upload", "data"),  # data: erasing customers only
}


def visible_pages(role: str) -> list[str]:
    """Page keys a role sees, in menu order, among the page files that exist."""
    return [k for k in VISIBLE.get(role, ()) if (HERE / PAGES[k][0]).exists()]


def page_visible(viewer: Viewer, path: str) -> bool:
    """Whether a page file is in this run's navigation (st.page_link refuses any other)."""
    keys = st.session_state.get("cx_nav_pages")
    if keys is None:
        keys = visible_pages(viewer.role)
    return any(PAGES[k][0] == path for k in keys)


# ---------------------------------------------------------------- database and caching


def db_path() -> Path:
    """CXSTATS_DB or data/cxstats.duckdb."""
    return store.db_path(None)


def data_version(db: Path | str | None = None) -> tuple:
    """Changes when a batch is loaded or undone, a setting changes or a reward/export is recorded."""
    with store.connect(db or db_path()) as con:
        return quality.data_version(con)


@st.cache_data(show_spinner=False, max_entries=512)
def _cached_call(fn_key: str, db: str, version: tuple, args: tuple, kwargs: dict, _fn: Callable) -> Any:
    with store.connect(db) as con:
        return _fn(con, *args, **kwargs)


def cached(fn: Callable, *args, **kwargs) -> Any:
    """Call ``fn(con, *args, **kwargs)`` through st.cache_data, keyed on the data version and the engine.

    Any load, undo or settings change moves the version, so stale results are never shown; a figure
    read from a lake or Spark (CXSTATS_LAKE, CXSTATS_ENGINE) is never served for another engine.
    """
    db = str(db_path())
    version = run_version(db) + (_engine_key(db),)
    return _cached_call(f"{fn.__module__}.{fn.__qualname__}", db, version, args, kwargs, fn)


def _engine_key(db: str) -> str:
    """The engine the environment names (its description), part of every cached result's key."""
    from cxstats import engine

    try:
        return engine.config_from_env(db).describe()
    except CxStatsError as exc:  # the call itself raises it again, where the page shows it
        return f"invalid: {exc}"


def run_version(db: str) -> tuple:
    """The data version, read once per script run (page_setup refreshes it at the top of each run)."""
    held = st.session_state.get("cx_run_version")
    if held and held[0] == db:
        return held[1]
    version = data_version(db)
    st.session_state["cx_run_version"] = (db, version)
    return version


def invalidate() -> None:
    """Drop every cached result (after an upload or an undo; the version key would also move)."""
    _cached_call.clear()
    st.session_state.pop("cx_run_version", None)


def demo_state(db: Path | str | None = None) -> bool:
    """True when the database holds only demo batches (the sidebar then says so)."""
    from cxstats import demo

    return bool(demo.is_demo(Path(db or db_path())))


# ---------------------------------------------------------------- login


class LoginUnavailable(CxStatsError):
    """The app cannot let anyone in (user file missing, broken or unsafe). The message is shown to
    whoever opens the page, so it names no server path; details go to the server log."""


_log = logging.getLogger("cxstats.app")

SESSION_KEY = "cx_session"  # (user name, session generation) of this browser session


def users_file() -> Path | None:
    """CXSTATS_USERS, or None when it is not set (single local admin). Set but empty is an error:
    it must not quietly mean "no logins"."""
    p = os.environ.get("CXSTATS_USERS")
    if p is None:
        return None
    if not p.strip():
        raise LoginUnavailable(
            "cxstats will not start: CXSTATS_USERS is set but empty. Point it at the user "
            "file, or unset it to run as the single local admin on your own machine."
        )
    return Path(p)


@st.cache_resource(show_spinner=False)
def _load_users(path: str, mtime: float) -> auth.UserDirectory:
    directory = auth.load_users(path)
    auth.check_cookie_key(directory)
    return directory


def user_directory() -> auth.UserDirectory | None:
    p = users_file()
    if p is None:
        return None
    try:
        mtime = p.stat().st_mtime
    except OSError:
        mtime = 0.0
    try:
        return _load_users(str(p), mtime)
    except LoginUnavailable:
        raise
    except CxStatsError as exc:
        _log.error("user file %s refused: %s%s", p, exc, "".join(f"\n  - {q}" for q in exc.problems))
        if str(exc).startswith("cxstats will not start"):  # the cookie key: its message names no path
            raise LoginUnavailable(str(exc)) from None
        raise LoginUnavailable(
            "cxstats will not start: the user file cannot be used (the server log says why). "
            "Nobody can log in until an administrator fixes it."
        ) from None


def _test_user(directory: auth.UserDirectory) -> Viewer | None:
    """The documented test hook: only with CXSTATS_TESTING=1 and a user file naming the user."""
    name = os.environ.get("CXSTATS_TEST_USER")
    if os.environ.get("CXSTATS_TESTING") != "1" or not name:
        return None
    if auth.normalise_username(name) not in directory.users:
        return None
    return directory.viewer(name)


def _client_address() -> str | None:
    """The client's address where Streamlit knows it (see auth.client_address)."""
    try:
        return auth.client_address(st.context.ip_address, st.context.headers)
    except Exception:  # no client context (a bare script run)
        return None


def _request_cookie(name: str) -> str | None:
    """The login cookie the browser sent when this session connected."""
    try:
        return st.context.cookies.get(name)
    except Exception:
        return None


# The cookie is set and deleted by a component: an iframe in the browser that does its work only
# once it has loaded. Drawn on one run only, it was gone again when a quick rerun came first (seen
# in CI: a log out that left the cookie). So the latest change stays drawn, at the same place, on
# every run of the session: the iframe repeats it on each render (the same cookie, harmless) and the
# page never shifts under the user's pointer when it goes away (taking it away did lose clicks).
_COOKIE_CHANGE = "cx_cookie_change"


def _queue_cookie(token: str | None, expiry_days: int = 0) -> None:
    """Ask the browser to store the login cookie (a token, kept expiry_days; 0: none is kept) or to
    forget it (None); login() draws the change on every run from now on (a later change replaces it)."""
    if token is not None and expiry_days == 0:
        return
    expires = (datetime.now() + timedelta(days=expiry_days)).isoformat() if token is not None else None
    previous = st.session_state.get(_COOKIE_CHANGE)
    serial = previous[0] + 1 if previous else 1  # a fresh component per change
    st.session_state[_COOKIE_CHANGE] = (serial, token, expires)


def _draw_cookie_change() -> None:
    """Draw the latest cookie change of this session, if any.

    login() runs twice in a browser's run (app.py, then the page's page_setup) but only once when a
    run starts at the page (AppTest's do), so each call draws and the second of a run is skipped."""
    change = st.session_state.get(_COOKIE_CHANGE)
    directory = user_directory() if change is not None else None
    if change is None or directory is None:
        return
    # the component streamlit-authenticator sets cookies with, without CookieManager's own
    # "read all cookies" iframe (it would ask for a rerun whenever the cookies change)
    component = importlib.import_module("extra_streamlit_components.CookieManager")._component_func
    serial, token, expires = change
    try:
        if token is None:
            component(method="delete", cookie=directory.cookie_name, key=f"cx_cookie_delete_{serial}", default=False)
        else:
            options = {"path": "/", "expires": expires, "sameSite": "strict"}
            component(
                method="set",
                cookie=directory.cookie_name,
                value=token,
                options=options,
                key=f"cx_cookie_set_{serial}",
                default=False,
            )
    except st.errors.StreamlitDuplicateElementKey:  # already drawn in this run
        pass


def _start_session(directory: auth.UserDirectory, out: auth.LoginOutcome, *, new_cookie: bool) -> Viewer:
    st.session_state[SESSION_KEY] = (out.username, out.generation)
    st.session_state["cx_viewer"] = out.viewer
    if new_cookie:
        _queue_cookie(auth.issue_token(directory, out.username, out.generation), directory.cookie_expiry_days)
    return out.viewer


def _drop_session(notice: str | None = None) -> None:
    for key in (SESSION_KEY, "cx_viewer"):
        st.session_state.pop(key, None)
    _queue_cookie(None)  # the browser forgets the login cookie
    st.session_state["cx_cookie_tried"] = True  # the cookie sent at connect time is not used again
    if notice:
        st.session_state["cx_login_notice"] = notice


def login() -> Viewer | None:
    """Who is using the app (and the login cookie's latest change, drawn on every run)."""
    viewer = _login()
    _draw_cookie_change()
    return viewer


def _login() -> Viewer | None:
    """Who is using the app: the local admin without a user file, else the logged-in user.

    Every run checks this session's generation against the database (a log out anywhere ends it);
    a login cookie logs in once per browser session when it is current and the name is not locked;
    otherwise the login form is drawn and None returned. Failed logins are counted in the database
    for every name (known or not) and client address (cxstats.auth.attempt_login).
    """
    st.session_state.pop("cx_viewer", None)
    directory = user_directory()
    if directory is None:
        return ADMIN
    hooked = _test_user(directory)
    if hooked is not None:
        st.session_state["cx_viewer"] = hooked
        return hooked

    db = db_path()
    session = st.session_state.get(SESSION_KEY)
    if session is not None:
        username, generation = session
        with store.connect(db) as con:
            current = auth.session_is_current(con, username, generation)
        if current and username in directory.users:
            viewer = directory.viewer(username)
            st.session_state["cx_viewer"] = viewer
            return viewer
        _drop_session("your session has ended (logged out); please log in again")

    notice = st.session_state.pop("cx_login_notice", None)
    if not st.session_state.get("cx_cookie_tried"):
        st.session_state["cx_cookie_tried"] = True
        token = _request_cookie(directory.cookie_name)
        if token:
            out = auth.token_login(db, directory, token, address=_client_address())
            if out.ok:
                return _start_session(directory, out, new_cookie=False)
            _queue_cookie(None)  # forged, expired, logged out or locked: the browser forgets it
            if out.username:
                notice = out.message

    slot = st.empty()
    with slot.form("cx_login"):
        st.subheader("Log in to cxstats")
        name = st.text_input("Username", autocomplete="off")
        password = st.text_input("Password", type="password", autocomplete="off")
        submitted = st.form_submit_button("Login")
    if submitted:
        out = auth.attempt_login(db, directory, name, password, address=_client_address())
        if out.ok:
            slot.empty()
            return _start_session(directory, out, new_cookie=True)
        st.error(escape_md(out.message))  # the library's words today, but a message may quote what was typed
    elif notice:
        st.info(escape_md(notice))
    return None


def _log_out() -> None:
    """The Log out button's callback (runs before the rerun): end every session of the user."""
    session = st.session_state.get(SESSION_KEY)
    if session is None:
        return
    try:
        with store.connect(db_path()) as con:
            auth.end_sessions(con, session[0])
    except CxStatsError as exc:
        _log.error("log out of %r could not be recorded: %s", session[0], exc)
        _drop_session("the log out could not be recorded on the server (database busy): log in and out again")
        return
    _drop_session("you are logged out")


def logout_button() -> None:
    """Sidebar logout (only when logged in through the user file)."""
    if st.session_state.get(SESSION_KEY) is not None:
        st.sidebar.button("Log out", key="cx_logout", on_click=_log_out)


def current_viewer() -> Viewer:
    """Who is looking, checked again on this run (a log out elsewhere ends the session at once,
    also on runs that start at the page, as AppTest's do); no valid session: the form, then stop."""
    try:
        if users_file() is None:
            return ADMIN
        viewer = login()
    except CxStatsError as exc:
        st.error(escape_md(exc))
        st.stop()
    if viewer is None:
        st.stop()
    return viewer


# ---------------------------------------------------------------- text safety and errors

_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!|<>~$:])")


def escape_md(text: object) -> str:
    """User text made inert for st.markdown/st.write (no links, HTML, formatting or LaTeX)."""
    return _MD_SPECIAL.sub(r"\\\1", str(text))


def show_error(exc: Exception, *, cap: int = 50) -> None:
    """A CxStatsError as the user should see it: the summary, then each problem (capped)."""
    st.error(escape_md(exc))
    problems = getattr(exc, "problems", None) or []
    if problems:
        shown = problems[:cap]
        st.dataframe({"problem": shown}, hide_index=True, width="stretch")
        if len(problems) > cap:
            st.caption(f"... and {len(problems) - cap:,} more")


# ---------------------------------------------------------------- the shared sidebar


def _remembered(widget_key: str, saved_key: str, valid: list, new_page: bool = False) -> None:
    """Filters survive page switches: restore the widget from a saved copy on a new page."""
    if (new_page or widget_key not in st.session_state) and saved_key in st.session_state:
        saved = st.session_state[saved_key]
        if isinstance(saved, (list, tuple)):
            keep = [v for v in saved if v in valid]
            st.session_state[widget_key] = keep
        elif saved in valid or (isinstance(saved, tuple) and all(s in valid for s in saved)):
            st.session_state[widget_key] = saved


def _sidebar_filters(viewer: Viewer, options: quality.FilterOptions, page: str) -> tuple:
    sb = st.sidebar
    # Streamlit resets a widget when another page draws it: restore the saved choice there
    new_page = st.session_state.get("cx_filter_page") != page
    st.session_state["cx_filter_page"] = page
    sb.subheader("Filters")
    regions_sel: list[str] = []
    if options.regions:
        _remembered("cx_f_regions", "cx_saved_regions", list(options.regions), new_page)
        regions_sel = sb.multiselect("Region", list(options.regions), key="cx_f_regions", placeholder="all regions")
        st.session_state["cx_saved_regions"] = list(regions_sel)
    in_region = [u for u in options.units if not regions_sel or u.region in regions_sel]
    labels = {u.unit_id: u.label for u in in_region}
    _remembered("cx_f_units", "cx_saved_units", list(labels), new_page)
    units_sel = sb.multiselect(
        "Units",
        list(labels),
        format_func=lambda u: labels.get(u, u),
        key="cx_f_units",
        placeholder="all your units" if viewer.role == "manager" else "all units",
    )
    st.session_state["cx_saved_units"] = list(units_sel)
    periods = list(options.periods)
    p_from = p_to = None
    if len(periods) >= 2:
        saved = st.session_state.get("cx_saved_periods")
        if new_page or "cx_f_periods" not in st.session_state:
            st.session_state["cx_f_periods"] = (
                tuple(saved) if saved and all(p in periods for p in saved) else (periods[0], periods[-1])
            )
        elif any(p not in periods for p in st.session_state["cx_f_periods"]):
            st.session_state["cx_f_periods"] = (periods[0], periods[-1])
        last_seen = st.session_state.get("cx_last_period_seen")
        if last_seen and last_seen != periods[-1] and st.session_state["cx_f_periods"][1] == last_seen:
            # a range that ended at the latest period follows new data (e.g. after an upload)
            st.session_state["cx_f_periods"] = (st.session_state["cx_f_periods"][0], periods[-1])
        st.session_state["cx_last_period_seen"] = periods[-1]
        p_from, p_to = sb.select_slider(f"Periods ({options.period}s, whole periods only)", periods, key="cx_f_periods")
        st.session_state["cx_saved_periods"] = (p_from, p_to)
    elif periods:
        p_from = p_to = periods[0]
    if units_sel:
        units: tuple[str, ...] | None = tuple(units_sel)
    elif regions_sel:
        units = tuple(u.unit_id for u in in_region)
    elif viewer.role == "manager":
        units = tuple(viewer.units)
    else:
        units = None
    return units, (tuple(regions_sel) or None), p_from, p_to


def page_setup(title: str, *, employee_data: bool = False, roles: tuple[str, ...] | None = None) -> Ctx:
    """Title, shared sidebar (who, role, demo label, filters) and access check for one page.

    Refuses (error + stop) when the page shows employee data and the viewer is marketing, or when
    ``roles`` is given and the viewer's role is not among them.
    """
    if "cx_nav_pages" not in st.session_state:
        # Streamlit's legacy pages/ mode runs a deep link into a fresh server without app.py (no
        # router, no menu): send the session through app.py once. A lone test script stays here.
        try:
            st.switch_page("app.py")
        except StreamlitAPIException:
            pass
    viewer = current_viewer()
    db = db_path()
    sb = st.sidebar
    nav = st.session_state.get("cx_nav_pages")
    if nav:  # our own menu: .streamlit/config.toml hides Streamlit's (deep links showed the pages/ listing)
        for key in nav:
            sb.page_link(PAGES[key][0], label=PAGES[key][1], icon=PAGES[key][2])
        sb.divider()
    sb.markdown(f"**{escape_md(viewer.name)}** · {viewer.role}")
    if users_file() is None:
        sb.caption(LOCAL_ADMIN_NOTICE)
    if viewer.role == "manager":
        sb.caption("your units: " + escape_md(", ".join(viewer.units) or "none"))
    if employee_data and not viewer.sees_employee_data:
        st.error("This page shows employee survey data, which the marketing role may not see.")
        st.stop()
    if roles and viewer.role not in roles:
        st.error(f"This page is not available to the {viewer.role} role.")
        st.stop()
    st.title(title)
    st.session_state.pop("cx_run_version", None)  # read the data version afresh once in this run
    try:
        is_demo = cached_demo_state(str(db))
        options = cached(quality.filter_options, viewer=viewer)
    except CxStatsError as exc:
        show_error(exc)
        st.stop()
    if is_demo:
        sb.info("demo data: generated, not real; load your own files on the Upload page")
    units, regions, p_from, p_to = _sidebar_filters(viewer, options, title)
    sb.caption(f"cxstats {cxstats.__version__} · database {db.name}")
    sb.caption(escape_md("engine: " + engine_config(db).describe()))  # a lake path is the operator's text
    return Ctx(viewer, db, units, regions, p_from, p_to, is_demo, options.period)


def engine_config(db: Path | None = None) -> "engine.EngineConfig":
    """The engine of DESIGN.md "Engines" (CXSTATS_ENGINE, CXSTATS_LAKE, CXSTATS_SPARK); a bad
    configuration is shown as one error and the page stops."""
    try:
        return engine.config_from_env(db or db_path())
    except CxStatsError as exc:
        show_error(exc)
        st.stop()
        raise


def cached_demo_state(db: str) -> bool:
    return _cached_demo(db, run_version(db))


@st.cache_data(show_spinner=False, max_entries=16)
def _cached_demo(db: str, version: tuple) -> bool:
    return demo_state(db)


def period_filter_text(ctx: Ctx) -> str:
    """The active filters in words, for captions and export audit notes."""
    parts = []
    if ctx.regions:
        parts.append("regions " + ", ".join(escape_md(r) for r in ctx.regions))  # uploaded text, shown as markdown
    if ctx.units is not None:
        parts.append(f"{len(ctx.units)} unit(s)")
    if ctx.period_from:
        parts.append(ctx.period_from if ctx.period_from == ctx.period_to else f"{ctx.period_from} to {ctx.period_to}")
    return "; ".join(parts) or "all data"


# ---------------------------------------------------------------- comment themes (Engagement, Customers)


def show_themes(result, *, key: str) -> None:
    """A cxstats.themes.ThemeResult laid out as plain text: labels and examples sit in table cells
    and st.text, never in Markdown or HTML (they are words from uploaded comments)."""
    lead = f"{result.n_texts:,} English texts"
    if result.n_non_english:
        lead += f"; {result.n_non_english:,} in other languages left out"
    if result.n_cut:
        lead += f"; {result.n_cut:,} very long texts cut for modelling"
    st.caption(lead + ".")
    if result.message:
        st.info(escape_md(result.message))
        return
    how = "chosen from the texts" if result.k_chosen else "as set"
    st.caption(
        f"{result.k:d} themes ({escape_md(how)}); each text belongs to its strongest theme when that theme holds at "
        "least 30% of its weight, else to 'other'. Labels are each theme's top terms. Sentiment is VADER's "
        "compound score, -1 (negative) to +1 (positive)."
    )
    csat = result.source == "feedback"
    rows = []
    for t in result.themes:
        row = {
            "theme": "other" if t.theme_id == 0 else str(t.theme_id),
            "label": t.label,
            "share": t.share,
            "texts": t.n,
            "sentiment": t.sentiment,
        }
        if csat:
            row.update(
                {
                    "CSAT % with": t.csat_with,
                    "CSAT % without": t.csat_without,
                    "difference": t.diff,
                    "95% CI": "" if t.diff is None else f"{t.ci_low:+.1f} to {t.ci_high:+.1f}",
                }
            )
        rows.append(row)
    st.dataframe(
        rows,
        hide_index=True,
        width="stretch",
        key=f"{key}_table",
        column_config={
            "share": st.column_config.ProgressColumn("share", format="percent", min_value=0.0, max_value=1.0),
            "sentiment": st.column_config.NumberColumn("sentiment", format="%+.2f"),
            "CSAT % with": st.column_config.NumberColumn(format="%.1f"),
            "CSAT % without": st.column_config.NumberColumn(format="%.1f"),
            "difference": st.column_config.NumberColumn("difference (points)", format="%+.1f"),
        },
    )
    if csat:
        st.caption(
            "CSAT % of the answers whose comment has the theme against the other commented answers; the "
            "difference comes with a 95% (Wald) interval. A theme is a pattern of words, not a cause."
        )
    examples = [{"theme": str(t.theme_id), "label": t.label, "example": e} for t in result.themes for e in t.examples]
    if examples:
        st.dataframe(examples, hide_index=True, width="stretch", key=f"{key}_examples")
