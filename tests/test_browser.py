"""Browser journeys (issue 6): the real app in headless Chromium, driven by Playwright.

One app server (streamlit run app.py) and one Chromium serve the whole module; each journey gets
its own browser context, so logins never leak between users. The database is the default demo,
dated so that the messy demo upload is the next survey wave. Screenshots of every step go to
test-artifacts/ (1280x800). Skipped without /usr/bin/chromium, except in CI, which installs it.
"""

from __future__ import annotations

import csv
import io
import os
import re
import time
from pathlib import Path

import pytest
from browser_support import (
    ARTIFACTS,
    CHROMIUM,
    LOGIN_FORM_TITLE,
    ROOT,
    TIMEOUT_MS,
    USERS,
    VIEWPORT,
    AppServer,
    assert_no_traceback,
    launch_chromium,
    log_in,
    nav_titles,
    open_page,
    screenshot,
    tracebacks,
    wait_idle,
    write_users,
)

pytestmark = [pytest.mark.browser, pytest.mark.timeout(600)]

DEMO_DIR = ROOT / "data" / "demo"
EMPLOYEE_PAGES = ("Engagement", "Linkage")  # pages with employee survey data (never for marketing)
RESPONDENTS = re.compile(r"respondents", re.I)  # the Overview's count of survey respondents
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


@pytest.fixture(scope="module")
def chromium_path() -> Path:
    if not CHROMIUM.exists():
        if os.environ.get("CI"):
            pytest.fail(f"{CHROMIUM} is missing: CI installs Debian's chromium (scripts/install-chromium.sh)")
        pytest.skip(f"{CHROMIUM} is missing (apt-get install chromium)")
    return CHROMIUM


@pytest.fixture(scope="module")
def demo_state(tmp_path_factory, chromium_path) -> dict:
    """A demo database ending the quarter before the messy upload's wave, and its consent list.

    Consent is read before the server starts (DuckDB lets one process hold the file) and the
    journeys upload no customers, so it stays the truth the export must follow.
    """
    from cxstats import demo, store

    tmp = tmp_path_factory.mktemp("browser")
    db = tmp / "browser.duckdb"
    demo.build_demo(db, end=demo.MESSY_FILES_END)
    with store.connect(db) as con:
        rows = con.execute(f"SELECT email, marketing_consent FROM ({store.current_customers_sql()})").fetchall()
    return {
        "db": db,
        "tmp": tmp,
        "consented_emails": {e for e, ok in rows if ok and e},
        "all_emails": {e for e, _ in rows if e},
    }


@pytest.fixture(scope="module")
def server(demo_state):
    users = write_users(demo_state["tmp"] / "users.yaml")
    ARTIFACTS.mkdir(exist_ok=True)
    for old in ARTIFACTS.glob("j[0-9]_*.png"):  # the screenshots show this run only
        old.unlink()
    srv = AppServer(demo_state["db"], users, demo_state["tmp"] / "server.log")
    try:
        srv.start()
        yield srv
    finally:
        srv.stop()
        # the server's own log beside the screenshots, for a failed run in CI
        ARTIFACTS.mkdir(exist_ok=True)
        (ARTIFACTS / "browser-server.log").write_text(srv.log_tail(200_000), encoding="utf-8")


@pytest.fixture(scope="module")
def browser(chromium_path):
    from playwright.sync_api import sync_playwright

    pw = sync_playwright().start()
    try:
        b = launch_chromium(pw)
        try:
            yield b
        finally:
            b.close()
    finally:
        pw.stop()


@pytest.fixture
def page(browser, server):
    """A fresh browser context (no cookies) at 1280x800."""
    from playwright.sync_api import expect

    expect.set_options(timeout=TIMEOUT_MS)
    context = browser.new_context(viewport=VIEWPORT, accept_downloads=True)
    context.set_default_timeout(TIMEOUT_MS)
    try:
        yield context.new_page()
    finally:
        context.close()


def step(page, name: str, where: str) -> None:
    """Every step of a journey: no exception block or traceback, then a screenshot."""
    wait_idle(page)
    assert_no_traceback(page, where)
    screenshot(page, name)


def metric_value(page, label: str | re.Pattern) -> str:
    """The shown value of the one st.metric whose label matches."""
    from playwright.sync_api import expect

    metric = page.get_by_test_id("stMetric").filter(has=page.get_by_test_id("stMetricLabel").filter(has_text=label))
    expect(metric).to_have_count(1)
    return metric.get_by_test_id("stMetricValue").inner_text().strip()


def grid_text(page, has_text: str | re.Pattern) -> str:
    """Text of the st.dataframe that contains ``has_text`` (the grid draws on a canvas; its
    accessible table copy holds the cells, header first)."""
    from playwright.sync_api import expect

    frame = page.get_by_test_id("stDataFrame").filter(has_text=has_text)
    expect(frame).to_have_count(1)
    return frame.text_content() or ""


def upload(page, path: Path) -> None:
    page.locator('[data-testid="stFileUploader"] input[type="file"]').set_input_files(str(path))


# ---------------------------------------------------------------- journey 1: admin uploads a survey file


def test_admin_uploads_messy_survey_file_fixes_it_and_sees_numbers_change(page, server):
    """Survey files are loaded by admins only (issue 18; the manager's Upload does not offer them)."""
    from playwright.sync_api import expect

    from cxstats import demo

    admin = USERS["admin"]
    log_in(page, server.url, admin)
    titles = nav_titles(page)
    assert "Upload" in titles and "Data" in titles, titles
    expect(page.get_by_role("heading", name="Overview", exact=True)).to_be_visible()
    respondents_before = metric_value(page, RESPONDENTS)
    step(page, "j1_01_admin_overview_before", "admin Overview")

    open_page(page, "Upload")
    step(page, "j1_02_admin_upload", "admin Upload")
    page.get_by_test_id("stSelectbox").first.click()
    page.get_by_role("option", name=re.compile(r"^engagement:")).click()
    wait_idle(page)

    # the file with a deliberate error: every problem by row and column, nothing written
    err = demo.MESSY_ERROR
    upload(page, DEMO_DIR / err["file"])
    refused = page.get_by_text(re.compile(r"1 problem\(s\) found: nothing has been written"))
    expect(refused).to_be_visible()
    problems = grid_text(page, re.compile(r"^\s*row\s*column\s*problem"))
    assert re.search(rf"{err['row']}\s*{re.escape(err['column'])}", problems), problems
    assert err["value"] in problems, problems
    expect(page.get_by_role("button", name=re.compile(r"^Load [\d,]+ rows$"))).to_be_disabled()
    refused.scroll_into_view_if_needed()
    step(page, "j1_03_admin_upload_error", "admin Upload with an error")

    # the fixed file: no problems, load it, read the result sentence
    upload(page, DEMO_DIR / "engagement_messy.xlsx")
    ready = page.get_by_text(re.compile(r"No problems found: [\d,]+ rows are ready to load"))
    expect(ready).to_be_visible()
    rows = int(re.search(r"([\d,]+) rows are ready", ready.inner_text()).group(1).replace(",", ""))
    ready.scroll_into_view_if_needed()
    step(page, "j1_04_admin_upload_fixed", "admin Upload of the fixed file")
    page.get_by_role("button", name=f"Load {rows:,} rows", exact=True).click()
    result = page.get_by_test_id("stAlertContentSuccess").filter(has_text=re.compile(r"loaded as batch \d+"))
    expect(result).to_be_visible()
    assert re.search(rf"\b{rows:,} rows loaded as batch \d+", result.inner_text()), result.inner_text()
    step(page, "j1_05_admin_upload_loaded", "admin Upload after loading")

    # the new wave shows: more respondents on the Overview
    open_page(page, "Overview")
    expect(page.get_by_test_id("stMetricValue").first).to_be_visible()
    respondents_after = metric_value(page, RESPONDENTS)
    assert int(respondents_after.replace(",", "")) > int(respondents_before.replace(",", "")), (
        respondents_before,
        respondents_after,
    )
    step(page, "j1_06_admin_overview_after", "admin Overview after the upload")


# ---------------------------------------------------------------- journey 2: leader reads charts


def test_leader_opens_linkage_and_engagement_and_sees_charts(page, server):
    from playwright.sync_api import expect

    log_in(page, server.url, USERS["leader"])
    titles = nav_titles(page)
    assert {"Linkage", "Engagement"} <= set(titles), titles
    step(page, "j2_01_leader_landing", "leader's first page")
    for n, title in enumerate(("Linkage", "Engagement"), start=2):
        open_page(page, title)
        chart = page.get_by_test_id("stPlotlyChart").first
        expect(chart).to_be_visible()
        # plotly has drawn: its SVG layer is there, with at least one trace (or heatmap) in it
        expect(chart.locator(".main-svg").first).to_be_visible()
        expect(chart.locator(".trace, .hm").first).to_be_attached()
        chart.scroll_into_view_if_needed()
        step(page, f"j2_{n:02d}_leader_{title.lower()}", f"leader {title}")


# ---------------------------------------------------------------- journey 3: marketing exports


def test_marketing_exports_consented_formula_safe_csv(page, server, demo_state):
    from playwright.sync_api import expect

    log_in(page, server.url, USERS["marketing"])
    titles = nav_titles(page)
    assert "Advocates" in titles, titles
    assert not set(EMPLOYEE_PAGES) & set(titles), f"marketing sees pages with employee data: {titles}"
    open_page(page, "Advocates")
    step(page, "j3_01_marketing_advocates", "marketing Advocates")

    page.get_by_test_id("stRadio").get_by_text("csv", exact=True).click()
    wait_idle(page)
    page.get_by_role("button", name=re.compile(r"^Prepare export")).click()
    button = page.get_by_test_id("stDownloadButton").filter(has_text=re.compile(r"consented customers \(csv\)"))
    expect(button).to_be_visible()
    announced = int(re.search(r"Download ([\d,]+) consented", button.inner_text()).group(1).replace(",", ""))
    button.scroll_into_view_if_needed()
    step(page, "j3_02_marketing_export_ready", "marketing Advocates with the export prepared")
    with page.expect_download(timeout=TIMEOUT_MS) as info:
        button.click()
    download = info.value
    assert download.suggested_filename.endswith(".csv"), download.suggested_filename
    saved = demo_state["tmp"] / download.suggested_filename
    download.save_as(saved)
    step(page, "j3_03_marketing_after_download", "marketing Advocates after the download")

    rows = list(csv.DictReader(io.StringIO(saved.read_bytes().decode("utf-8-sig"))))
    assert rows, "the advocate export has no rows on the demo data"
    assert len(rows) == announced, (len(rows), announced)
    emails = [r["email"] for r in rows]
    assert len(set(emails)) == len(emails), "a customer is exported twice"
    unknown = [e for e in emails if e not in demo_state["all_emails"]]
    assert not unknown, f"exported rows that match no customer: {unknown[:5]}"
    not_consented = [e for e in emails if e not in demo_state["consented_emails"]]
    assert not not_consented, f"customers without marketing consent exported: {not_consented[:5]}"
    unsafe = [
        (line, col, v)
        for line, r in enumerate(rows, start=2)
        for col, v in r.items()
        if str(v).startswith(FORMULA_START)
    ]
    assert not unsafe, f"cells a spreadsheet would run as formulas: {unsafe[:5]}"
    # the demo's social handles start with @: they must arrive neutralised, not dropped
    assert any(r["handle"].startswith("'@") for r in rows), "no neutralised @handle in the export"

    # a typed address does not open a page with employee data either
    page.goto(f"{server.url}/engagement")
    # the login cookie brings marketing back to its own first page
    expect(page.get_by_role("heading", name=titles[0], exact=True)).to_be_visible()
    wait_idle(page)
    expect(page.get_by_role("heading", name="Engagement", exact=True)).to_have_count(0)
    step(page, "j3_04_marketing_engagement_url", "marketing typing /engagement")


# ---------------------------------------------------------------- journey 3b: marketing exports with a hold-out


def test_marketing_exports_a_list_with_a_hold_out(page, server, demo_state):
    """The downloaded file has customer_id first and none of the held-out customers (the holdouts table)."""
    from playwright.sync_api import expect

    from cxstats import store

    log_in(page, server.url, USERS["marketing"])
    open_page(page, "Advocates")
    page.get_by_test_id("stRadio").get_by_text("csv", exact=True).click()
    wait_idle(page)
    box = page.get_by_test_id("stNumberInput").filter(has_text="Hold out (%)").locator("input")
    box.scroll_into_view_if_needed()
    box.fill("20")
    box.press("Enter")
    wait_idle(page)
    page.get_by_role("button", name=re.compile(r"^Prepare export")).click()
    button = page.get_by_test_id("stDownloadButton").filter(has_text=re.compile(r"consented customers \(csv\)"))
    expect(button).to_be_visible()
    expect(page.get_by_text(re.compile(r"customers held out at random \(seed \d+\)"))).to_be_visible()
    button.scroll_into_view_if_needed()
    step(page, "j3b_01_marketing_holdout_ready", "marketing Advocates with a hold-out export prepared")
    with page.expect_download(timeout=TIMEOUT_MS) as info:
        button.click()
    saved = demo_state["tmp"] / ("holdout-" + info.value.suggested_filename)
    info.value.save_as(saved)
    rows = list(csv.reader(io.StringIO(saved.read_bytes().decode("utf-8-sig"))))
    assert rows[0][:4] == ["customer_id", "name", "email", "handle"], rows[0]
    listed = {r[0] for r in rows[1:]}
    assert listed, "the hold-out export has no rows on the demo data"

    with store.connect(demo_state["db"], wait_s=30) as con:  # the server holds the file only per operation
        eid, pct, seed = con.execute(
            "SELECT export_id, max(pct), max(seed) FROM holdouts GROUP BY export_id ORDER BY export_id DESC LIMIT 1"
        ).fetchall()[0]
        arms = con.execute("SELECT customer_id, arm FROM holdouts WHERE export_id = ?", [eid]).fetchall()
        every_held = {c for (c,) in con.execute("SELECT customer_id FROM holdouts WHERE arm = 'holdout'").fetchall()}
    held = {c for c, a in arms if a == "holdout"}
    assert pct == 20 and held and len(held) == round(len(arms) * 0.2), (pct, len(held), len(arms))
    assert listed == {c for c, a in arms if a == "reward"}, "the file is not the reward arm"
    assert not listed & every_held, "a held-out customer is in the file"
    step(page, "j3b_02_marketing_after_holdout_download", "marketing Advocates after the hold-out download")


# ---------------------------------------------------------------- journey 4: leader downloads the board report


def test_leader_downloads_the_board_report_as_pdf(page, server, demo_state):
    from playwright.sync_api import expect
    from pypdf import PdfReader

    log_in(page, server.url, USERS["leader"])
    open_page(page, "Overview")
    build = page.get_by_role("button", name="Build the board report")
    build.scroll_into_view_if_needed()
    build.click()
    button = page.get_by_test_id("stDownloadButton").filter(has_text=re.compile(r"board report \(PDF\)"))
    expect(button).to_be_visible(timeout=120_000)  # the charts are drawn by kaleido's Chromium
    step(page, "j6_01_leader_report_ready", "leader Overview with the report built")
    with page.expect_download(timeout=TIMEOUT_MS) as info:
        button.click()
    saved = demo_state["tmp"] / info.value.suggested_filename
    info.value.save_as(saved)
    data = saved.read_bytes()
    assert saved.suffix == ".pdf" and data.startswith(b"%PDF"), saved
    pages = PdfReader(io.BytesIO(data)).pages
    assert len(pages) >= 8, len(pages)
    assert "Headline figures" in (pages[1].extract_text() or "")


# ---------------------------------------------------------------- journey 8: log out, then reload (issue 18)


def _login_cookies(context) -> list[dict]:
    return [c for c in context.cookies() if c["name"] == "cxstats_browser_test"]


def test_after_log_out_a_reload_shows_the_login_form_and_the_old_cookie_is_dead(page, server, browser):
    from playwright.sync_api import expect

    leader = USERS["leader"]
    log_in(page, server.url, leader)
    deadline = time.monotonic() + TIMEOUT_MS / 1000
    while not _login_cookies(page.context) and time.monotonic() < deadline:  # set by the cookie component
        page.wait_for_timeout(250)
    captured = _login_cookies(page.context)
    assert captured, "the login set no cookie"
    # the cookie is what a reload logs in with: a second tab of the same browser is let in
    page.reload()
    expect(page.get_by_test_id("stSidebar").get_by_text(leader.name)).to_be_visible()
    wait_idle(page)
    step(page, "j8_01_leader_reloaded_while_logged_in", "leader after a reload")

    page.get_by_test_id("stSidebar").get_by_role("button", name="Log out").click()
    form = page.get_by_test_id("stForm").filter(has_text=LOGIN_FORM_TITLE)
    expect(form).to_be_visible()
    wait_idle(page)
    deadline = time.monotonic() + TIMEOUT_MS / 1000
    while _login_cookies(page.context) and time.monotonic() < deadline:  # deleted by the cookie component
        page.wait_for_timeout(250)
    assert not _login_cookies(page.context), "log out left the login cookie in the browser"
    step(page, "j8_02_logged_out", "after log out")

    page.reload()
    expect(form).to_be_visible()
    wait_idle(page)
    expect(page.get_by_test_id("stSidebar").get_by_text(leader.name)).to_have_count(0)
    expect(page.get_by_role("heading", name="Overview", exact=True)).to_have_count(0)
    step(page, "j8_03_reload_after_log_out", "reload after log out")

    # the cookie captured before log out, replayed in a fresh browser: refused on the server
    other = browser.new_context(viewport=VIEWPORT)
    try:
        other.add_cookies([{k: c[k] for k in ("name", "value", "domain", "path")} for c in captured])
        replay = other.new_page()
        replay.set_default_timeout(TIMEOUT_MS)
        replay.goto(server.url)
        expect(replay.get_by_test_id("stForm").filter(has_text=LOGIN_FORM_TITLE)).to_be_visible()
        wait_idle(replay)
        expect(replay.get_by_test_id("stSidebar").get_by_text(leader.name)).to_have_count(0)
        step(replay, "j8_04_replayed_cookie", "a cookie captured before log out")
    finally:
        other.close()


# ---------------------------------------------------------------- the Advocates table has no own download


def test_the_advocates_table_offers_no_built_in_download(page, server):
    from playwright.sync_api import expect

    log_in(page, server.url, USERS["marketing"])
    open_page(page, "Advocates")
    frame = page.get_by_test_id("stDataFrame").first
    expect(frame).to_be_visible()
    frame.scroll_into_view_if_needed()
    frame.hover()
    toolbar = page.get_by_test_id("stElementToolbar").first
    expect(toolbar).to_be_visible()  # the toolbar is there (search, full screen) ...
    expect(toolbar.get_by_role("button").first).to_be_visible()
    step(page, "j7_01_advocates_toolbar", "the Advocates table's toolbar")
    # ... without its "Download as CSV" (the export's own download is the audited one, further down)
    labels = [b.get_attribute("aria-label") or b.inner_text() for b in toolbar.get_by_role("button").all()]
    assert labels and not any("download" in (x or "").lower() for x in labels), labels
    expect(
        page.get_by_test_id("stElementToolbar").get_by_role("button", name=re.compile(r"download", re.I))
    ).to_have_count(0)


# ---------------------------------------------------------------- a hostile workbook (issue 18.1)


def test_the_server_answers_other_users_while_a_hostile_workbook_is_refused(page, browser, server, tmp_path):
    """The probe's 7 MB workbook that inflates to 1.1 GB: while the admin's upload is read (in the
    capped worker) and refused with the usual message, a leader logs in and reads the Overview, and
    the server is still up afterwards."""
    import urllib.request

    import hostile_files
    from playwright.sync_api import expect

    path = tmp_path / "long.xlsx"
    path.write_bytes(hostile_files.long_xlsx())
    log_in(page, server.url, USERS["admin"])
    open_page(page, "Upload")
    upload(page, path)
    context = browser.new_context(viewport=VIEWPORT)
    context.set_default_timeout(TIMEOUT_MS)
    try:
        leader = context.new_page()
        log_in(leader, server.url, USERS["leader"])
        expect(leader.get_by_role("heading", name="Overview", exact=True)).to_be_visible()
        metric_value(leader, RESPONDENTS)
        step(leader, "j9_01_leader_while_hostile_upload", "a leader's Overview during the upload")
    finally:
        context.close()
    expect(page.get_by_test_id("stAlert").filter(has_text="5,000,030 rows")).to_be_visible(timeout=180_000)
    step(page, "j9_02_hostile_upload_refused", "the hostile workbook refused")
    assert server.proc.poll() is None, server.log_tail()
    with urllib.request.urlopen(f"{server.url}/_stcore/health", timeout=10) as r:
        assert r.status == 200


# ---------------------------------------------------------------- the server's side of the journeys


# ---------------------------------------------------------------- journey 6: a manager's action plan


def test_manager_adds_a_plan_from_his_focus_areas_and_a_leader_sees_it(page, browser, server):
    from playwright.sync_api import expect

    log_in(page, server.url, USERS["manager"])
    open_page(page, "Actions")
    expect(page.get_by_text("Focus areas", exact=True)).to_be_visible()
    grid_text(page, "gap")  # the unit's items with gap, r, q and priority
    step(page, "j6_01_manager_focus", "manager's focus areas")
    title = "Browser plan: new tills"
    page.get_by_label("Title (1-200 characters)").fill(title)
    page.get_by_label("Owner").first.fill("Mia")
    page.get_by_role("button", name="Add plan").click()
    wait_idle(page)
    expect(page.get_by_test_id("stDataFrame").filter(has_text=title)).to_have_count(1)
    step(page, "j6_02_manager_plan_added", "manager added a plan")

    context = browser.new_context(viewport=VIEWPORT)
    context.set_default_timeout(TIMEOUT_MS)
    try:
        leader = context.new_page()
        log_in(leader, server.url, USERS["leader"])
        open_page(leader, "Actions")
        expect(leader.get_by_test_id("stDataFrame").filter(has_text=title)).to_have_count(1)
        expect(leader.get_by_text("Plans by item and status")).to_be_visible()
        step(leader, "j6_03_leader_sees_plan", "leader sees the plan")
    finally:
        context.close()


def test_server_logged_no_traceback(server):
    """Runs last: whatever the journeys did, the app's process logged no Python traceback (a tab closed
    mid-handshake makes Streamlit's websocket endpoint log a disconnect: its transport, not the app)."""
    log = server.log_tail(1_000_000)
    assert tracebacks(log) == [], log[-4000:]
