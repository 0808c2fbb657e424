"""Web security review of the app, as tests (issue 7, point 4; threat model in SECURITY.md).

- user-supplied text (unit names, regions, comments, handles, file names) is never rendered as
  HTML or Markdown that runs: a static scan of pages/ and ui.py, and AppTest runs with hostile text;
- exports neutralise formulas (hypothesis over any text);
- the login checks bcrypt hashes and locks a name after repeated failures (server-side counter);
- roles are enforced in the library calls the pages make, not only by hiding pages.
"""

from __future__ import annotations

import ast
import csv
import io
from datetime import timedelta
from pathlib import Path

import openpyxl
import pytest
import yaml
from app_fixtures import safe_copy_of_example, switch  # noqa: F401
from hypothesis import given, settings
from hypothesis import strategies as st

from cxstats import (
    ADMIN,
    AccessDenied,
    CxStatsError,
    Viewer,
    auth,
    export,
    ingest,
    linkage,
    metrics,
    overview,
    quality,
    store,
)

# the shared AppTest fixtures (make_app and the fixtures it needs) of tests/app_fixtures.py
pytest_plugins = ["app_fixtures"]

ROOT = Path(__file__).resolve().parents[1]
IMG = "<img src=x onerror=alert(1)>"
LINK = "[x](javascript:alert(1))"
SCRIPT = "<script>alert(1)</script>"
PAYLOADS = (IMG, LINK, SCRIPT)

# ---------------------------------------------------------------- static review of the page code

MARKDOWN_CALLS = {
    "markdown",
    "write",
    "caption",
    "info",
    "success",
    "warning",
    "error",
    "title",
    "header",
    "subheader",
    "toast",
    "expander",
    "metric",
    "button",
    "checkbox",
    "radio",
    "selectbox",
    "multiselect",
    "text_input",
    "download_button",
    "popover",
    "page_link",
    "tabs",
    # widget labels render Markdown too (issue 18.7: every st.* message and label reviewed)
    "text_area",
    "number_input",
    "date_input",
    "time_input",
    "slider",
    "select_slider",
    "toggle",
    "form_submit_button",
    "file_uploader",
    "link_button",
    "status",
    "exception",
    "pills",
    "segmented_control",
    "color_picker",
    "camera_input",
    "chat_input",
    "badge",
}
# interpolations reviewed as not user text: roles, settings, counts, numbers formatted by the page,
# labels from fixed lists, the app's own version and database file name
REVIEWED = {
    "viewer.role",
    "ctx.period",
    "min_group",
    "h.min_group",
    "current.min_group",
    "current.period",
    "res.metric_label",
    "res.min_group",
    "res.suppressed_groups",
    "res.n_units",
    "q.n_top",
    "q.n_bottom",
    "len(flagged)",
    "len(result.unmatched_handles)",
    "len(suppressed)",
    "pfmt",
    "batch",
    "k",
    "result.as_of",
    "eff.n_pairs",
    "eff.n_too_recent",
    "eff.n_unmatched",
    "eff.window_days",
    "eff.label",
    "', '.join(map(str, incomplete))",
    "', '.join(pa.covariates)",
    "kind",
    "needed",
    "what",
    "cxstats.__version__",
    "db.name",
    "min(len(pv.sample), 20)",
    "ui.period_filter_text(ctx)",  # regions are escaped inside it (found by this review)
    # issue 11/14/17 pages: numbers, seeds and fixed phrases (reviewed 2026-12-01)
    "clv.horizon_weeks",
    "holdout_pct",
    "seed",
    "title",
    "result.k",
    "how",
    "_iv(m.orders, 'orders', '+.2f')",
    "_iv(m.spend, '', '+.2f')",
    "_iv(m.pretrend, 'orders', '+.2f')",
    "_iv(d.orders, 'orders', '+.2f')",
    "_iv(d.spend, '', '+.2f')",
    # issue 13 pages: period labels, the metric's fixed name, plan ids and their fixed statuses, counts
    "res.period",
    "res.metric.replace('_pct', ' %').upper()",
    "a.action_id",
    "a.status",
    "ch.previous",
    "ch.period",
    "len(ch.changes)",
    # issue 18.7: whole arguments that are not literal text (a name, a call, a sum of strings), reviewed
    # one by one and named with their file: fixed phrases, page titles and links, numbers
    "ui.py:title",  # the page's own title, a literal in each page file
    "ui.py:lead",  # counts of texts
    "ui.py:LOCAL_ADMIN_NOTICE",
    "ui.py:PAGES[key][0]",
    "ui.py:PAGES[key][1]",  # the fixed page list
    "ui.py:options.period",  # the period setting, quarter or month
    "data.py:store.MIN_GROUP_FLOOR",  # a constant, 3
    "overview.py:n",  # the notes above it: counts, the period setting and a period label
    "overview.py:label",
    "overview.py:path",  # fixed report button labels and page links
    "advocates.py:', '.join((f'{k} {v:g}' for k, v in weights.items()))",  # the score's fixed weights
    "advocates.py:eff.holdout_text",
    "advocates.py:eff.matched_text",  # programme.py's fixed explanations
    "advocates.py:bt.sentence()[0].upper()",
    "advocates.py:bt.sentence()[1:]",  # backtest counts
}


def _interpolations(path: Path):
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        if not (
            isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in MARKDOWN_CALLS
        ):
            continue
        for kw in node.keywords:
            if kw.arg == "unsafe_allow_html":
                yield node.lineno, "unsafe_allow_html"
        args = node.args[:1] + [k.value for k in node.keywords if k.arg in ("help", "label", "body")]
        for arg in args:
            yield from _whole(arg, node.lineno)


def _whole(node, lineno):
    """An argument that is not literal text as a whole (a name, an attribute, a call, a sum of such):
    reported unless escaped, then its f-string parts as below."""
    if isinstance(node, ast.Constant) or (isinstance(node, ast.Call) and "escape_md" in ast.unparse(node.func)):
        return
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        yield from _whole(node.left, lineno)
        yield from _whole(node.right, lineno)
        return
    if isinstance(node, ast.IfExp):
        yield from _whole(node.body, lineno)
        yield from _whole(node.orelse, lineno)
        return
    if isinstance(node, ast.JoinedStr):
        yield from _unescaped(node, lineno)
        return
    if isinstance(node, (ast.List, ast.Tuple)):  # st.tabs([...]): each label
        for el in node.elts:
            yield from _whole(el, lineno)
        return
    yield lineno, ast.unparse(node)


def _unescaped(node, lineno):
    if isinstance(node, ast.Call) and "escape_md" in ast.unparse(node.func):
        return
    if isinstance(node, ast.FormattedValue):
        src = ast.unparse(node.value)
        is_number = node.format_spec is not None or src.startswith("f(")
        if not is_number and "escape_md(" not in src:
            yield lineno, src
    for child in ast.iter_child_nodes(node):
        yield from _unescaped(child, lineno)


PAGE_FILES = sorted((ROOT / "pages").glob("*.py")) + [ROOT / "ui.py", ROOT / "app.py"]


@pytest.mark.parametrize("path", PAGE_FILES, ids=lambda p: p.name)
def test_pages_render_no_unescaped_user_text_as_markdown(path):
    """Every value put into a markdown-rendering call is escaped (ui.escape_md) or reviewed as not user text."""
    found = [
        f"{path.name}:{line}: {src}"
        for line, src in _interpolations(path)
        if src not in REVIEWED and f"{path.name}:{src}" not in REVIEWED
    ]
    assert not found, "unescaped interpolation in markdown (wrap it in ui.escape_md or review it): " + "; ".join(found)


def test_escape_md_makes_hostile_text_inert():
    import ui

    for p in PAYLOADS:
        escaped = ui.escape_md(p)
        for ch in "<>[]()":
            assert f"\\{ch}" in escaped or ch not in p


# ---------------------------------------------------------------- the app with hostile text


@pytest.fixture(scope="module")
def hostile_db(tmp_path_factory) -> Path:
    """Units named and placed with payloads, a group of 10 commenting payloads, hostile customers."""
    db = tmp_path_factory.mktemp("hostile") / "hostile.duckdb"
    units = "unit_id,unit_name,region\n" + "".join(
        f'S00{i},"{name}","{region}"\n'
        for i, (name, region) in enumerate(
            [(IMG, LINK), (LINK, IMG), ("Plain", SCRIPT), ("Also plain", "North")], start=1
        )
    )
    ingest.import_file(db, "units", units.encode(), file_name=f"{IMG}.csv", viewer=ADMIN)
    rows = ["unit_id,survey_date,respondent_id,comment,q1,q2"]
    for u in ("S001", "S002", "S003", "S004"):
        for q, day in (("01", 10), ("04", 10)):
            for r in range(10):
                rows.append(f'{u},2024-{q}-{day},{u}{q}r{r},"{PAYLOADS[r % 3]}",{1 + r % 5},{1 + (r * 3) % 5}')
    ingest.import_file(
        db, "engagement", ("\n".join(rows) + "\n").encode(), file_name=f"{LINK}.csv", scale=5, viewer=ADMIN
    )
    fb = ["unit_id,date,csat,nps,channel,comment"]
    for u in ("S001", "S002", "S003", "S004"):
        for q in ("01", "04"):
            for r in range(4):
                fb.append(f'{u},2024-{q}-12,{1 + (r + int(u[-1])) % 5},{(r * 3 + int(u[-1])) % 11},"{IMG}","{LINK}"')
    ingest.import_file(db, "feedback", ("\n".join(fb) + "\n").encode(), file_name="fb.csv", viewer=ADMIN)
    return db


def _rendered_markdown(at) -> list[str]:
    """Every text the browser renders as markdown (not dataframes or charts, which are plain text)."""
    out = []
    for kind in ("title", "header", "subheader", "markdown", "caption", "info", "error", "warning", "success"):
        for el in getattr(at, kind, []):
            out.append(str(el.value))
    for el in getattr(at, "metric", []):
        out.append(str(el.label))
    for el in at.sidebar.markdown:
        out.append(str(el.value))
    return out


@pytest.mark.parametrize(
    "page", ["pages/overview.py", "pages/engagement.py", "pages/customers.py", "pages/linkage.py", "pages/data.py"]
)
def test_hostile_text_is_shown_only_as_plain_text(hostile_db, make_app, page):  # noqa: F811
    at = make_app(hostile_db)
    if (ROOT / page).exists() and page != "pages/overview.py":
        switch(at, page)
    regions = [w for w in at.sidebar.multiselect if w.key == "cx_f_regions"]
    if regions:  # choose the hostile regions: the selection is echoed in the page caption
        regions[0].set_value([r for r in regions[0].options if r in (IMG, LINK)]).run()
    assert not at.exception, [e.value for e in at.exception]
    for text in _rendered_markdown(at):
        for p in PAYLOADS:
            assert p not in text, f"{page}: {p!r} rendered as markdown in {text[:200]!r}"


def test_hostile_file_name_in_upload_preview(tmp_path, make_app):  # noqa: F811
    at = make_app(tmp_path / "up.duckdb")
    switch(at, "pages/upload.py")
    uploaders = at.get("file_uploader")
    if not uploaders:
        pytest.skip("upload widget not reachable in AppTest")
    up = uploaders[0]
    up.set_value((f"{IMG}{LINK}.csv", b"Store,Date,CSAT\nS001,2024-03-05,4\n", "text/csv")).run()
    assert not at.exception
    for text in _rendered_markdown(at):
        for p in PAYLOADS:
            assert p not in text


# ---------------------------------------------------------------- exports neutralise formulas


_INVISIBLE = st.text(
    st.sampled_from(["\ufeff", " ", "\u00a0", "\u200b", "\u200e", "\u2060", "\x00", "\x1f", "\n", "\x0b", "\u3000"]),
    max_size=4,
)


@settings(max_examples=200, deadline=None)
@given(_INVISIBLE, st.text(max_size=30))
def test_neutralise_any_text(lead, text):
    # issue 18: a name starting with a BOM (or spaces, zero-width or control characters) and "=" was
    # exported unquoted; what a spreadsheet may strip in front is looked through
    out = export.neutralise(lead + text)
    assert not (isinstance(out, str) and out.startswith(export.DANGEROUS_START))
    assert out in (lead + text, "'" + lead + text)
    if text.startswith(export.DANGEROUS_START):  # whatever invisible characters come first
        assert out == "'" + lead + text


@pytest.mark.parametrize(
    "value",
    [
        '=HYPERLINK("http://evil","x")',
        "+1+1",
        "-2+3",
        "@SUM(A1)",
        "\t=1",
        "\r=1",
        "=cmd|' /C calc'!A0",
        "\ufeff=cmd|' /C calc'!A0",
        " \u200b=1+1",
    ],
)
def test_csv_and_xlsx_exports_hold_formulas_as_text(value):
    import pandas as pd

    frame = pd.DataFrame({"name": [export.neutralise(value)], "score": [12.5]})
    rows = list(csv.reader(io.StringIO(export._csv_bytes(frame).decode("utf-8-sig"))))
    assert rows[1][0] == "'" + value and rows[1][1] == "12.5"
    ws = openpyxl.load_workbook(io.BytesIO(export._xlsx_bytes(frame))).active
    cell = ws.cell(2, 1)
    # XML turns a carriage return into a line feed; what matters is the leading quote, as text
    assert cell.data_type == "s" and cell.value in ("'" + value, "'" + value.replace("\r", "\n"))
    assert ws.cell(2, 2).value == 12.5  # numbers stay numbers


# ---------------------------------------------------------------- login


def test_user_file_holds_bcrypt_hashes_only():
    data = yaml.safe_load((ROOT / "users.example.yaml").read_text())
    for name, user in data["credentials"]["usernames"].items():
        assert user["password"].startswith(("$2b$", "$2a$", "$2y$")), name
        assert int(user["password"].split("$")[2]) >= 10, f"{name}: bcrypt cost below 10"
    directory = auth.load_users(ROOT / "users.example.yaml")
    assert auth.check_password(directory, "admin", "admin-demo-2026")
    assert not auth.check_password(directory, "admin", "admin-demo-2026 ")
    assert not auth.check_password(directory, "nobody", "admin-demo-2026")


def test_failed_logins_lock_the_name_server_side(tmp_path):
    db = tmp_path / "auth.duckdb"
    directory = auth.load_users(safe_copy_of_example(tmp_path / "users.yaml"))  # the example's users, cheap hashes
    t0 = auth.now_utc()
    for i in range(auth.LOCK_AFTER):
        out = auth.attempt_login(db, directory, "Admin", f"wrong {i}", now=t0 + timedelta(seconds=i))
        assert not out.ok
    # locked: even the right password is refused, and the lock lives in the database (any process)
    out = auth.attempt_login(db, directory, "admin", "admin-demo-2026", now=t0 + timedelta(minutes=1))
    assert not out.ok and "try again" in out.message
    with store.connect(db) as con:
        assert auth.lock_state(con, "admin", t0 + timedelta(minutes=1)).is_locked(t0 + timedelta(minutes=1))
    later = t0 + timedelta(minutes=auth.LOCK_MINUTES + 1)
    assert auth.attempt_login(db, directory, "admin", "admin-demo-2026", now=later).ok


# ---------------------------------------------------------------- roles enforced in the library

MARKETING = Viewer("marketing", (), "mk")
EMPLOYEE_DATA_CALLS = {
    "unit_period_engagement": lambda con, v: metrics.unit_period_engagement(con, viewer=v),
    "item_scores": lambda con, v: metrics.item_scores(con, viewer=v),
    "item_favourable": lambda con, v: metrics.item_favourable(con, viewer=v),
    "item_distribution": lambda con, v: metrics.item_distribution(con, viewer=v),
    "engagement_summary": lambda con, v: metrics.engagement_summary(con, viewer=v),
    "index_alpha": lambda con, v: metrics.index_alpha(con, viewer=v),
    "comments": lambda con, v: metrics.comments(con, viewer=v),
    "suppressed_group_list": lambda con, v: metrics.suppressed_group_list(con, viewer=v),
    "wave_change": lambda con, v: metrics.wave_change(con, "S001", "2024-Q1", "2024-Q2", viewer=v),
    "linkage.analyse": lambda con, v: linkage.analyse(con, viewer=v),
}


@pytest.mark.parametrize("call", list(EMPLOYEE_DATA_CALLS))
def test_marketing_is_refused_employee_data_by_the_library(hostile_db, call):
    with store.connect(hostile_db) as con:
        with pytest.raises(AccessDenied):
            EMPLOYEE_DATA_CALLS[call](con, MARKETING)


def test_marketing_sees_no_engagement_in_headline_or_data_quality(hostile_db):
    with store.connect(hostile_db) as con:
        h = overview.headline(con, viewer=MARKETING)
        tables = {q.table for q in quality.data_quality(con, viewer=MARKETING)}
    assert h.engagement_index is None and h.respondents == 0
    assert "engagement" not in tables


def test_manager_gets_only_his_units(hostile_db):
    mgr = Viewer("manager", ("S002",), "m")
    with store.connect(hostile_db) as con:
        groups = metrics.unit_period_engagement(con, viewer=mgr).groups
        cells = metrics.item_scores(con, viewer=mgr).cells
        cx = metrics.cx_by_unit_period(con, viewer=mgr)
        com = metrics.comments(con, viewer=mgr)
        res = linkage.analyse(con, viewer=mgr)
        opts = quality.filter_options(con, viewer=mgr)
        with pytest.raises(CxStatsError):
            metrics.wave_change(con, "S001", "2024-Q1", "2024-Q2", viewer=mgr)
    for frame in (groups, cells, cx, com, res.units, res.panel):
        assert set(frame["unit_id"]) <= {"S002"}
    assert set(groups["unit_id"]) == {"S002"}
    assert [u.unit_id for u in opts.units] == ["S002"]


@pytest.mark.parametrize(
    "viewer, action",
    [
        (Viewer("manager", ("S001",), "m"), "undo"),
        (Viewer("leader", (), "l"), "undo"),
        (MARKETING, "undo"),
        (Viewer("manager", ("S001",), "m"), "setting"),
        (Viewer("leader", (), "l"), "setting"),
        (Viewer("manager", ("S001",), "m"), "export"),
    ],
)
def test_admin_only_actions_are_refused_by_the_library(tmp_path, viewer, action):
    db = tmp_path / "roles.duckdb"
    res = ingest.import_file(db, "units", b"unit_id\nS001\n", file_name="u.csv", viewer=ADMIN)
    with store.connect(db) as con:
        with pytest.raises(AccessDenied):
            if action == "undo":
                store.undo(con, res.batch_id, viewer=viewer)
            elif action == "setting":
                store.set_setting(con, "min_group", 3, viewer=viewer)
            else:
                export.export_bytes(con, viewer=viewer, result=None)


@pytest.mark.parametrize(
    "viewer, kind, data",
    [
        (Viewer("manager", ("S001",), "m"), "feedback", b"Store,Date,CSAT\nS002,2024-03-05,4\n"),  # not his unit
        (Viewer("manager", ("S001",), "m"), "customers", b"customer_id\nC1\n"),
        (MARKETING, "engagement", b"Unit,Survey date,q1\nS001,2024-03-05,4\n"),
        (Viewer("leader", (), "l"), "feedback", b"Store,Date,CSAT\nS001,2024-03-05,4\n"),
    ],
)
def test_uploads_are_limited_by_role_in_the_library(tmp_path, viewer, kind, data):
    db = tmp_path / "up.duckdb"
    ingest.import_file(db, "units", b"unit_id\nS001\nS002\n", file_name="u.csv", viewer=ADMIN)
    with store.connect(db) as con:
        before = store.table_fingerprint(con)
    with pytest.raises(CxStatsError):
        ingest.import_file(db, kind, data, file_name="x.csv", viewer=viewer)
    with store.connect(db) as con:
        assert store.table_fingerprint(con) == before


def test_admin_viewer_is_the_command_line_only():
    assert ADMIN.role == "admin"
    with pytest.raises(CxStatsError):
        Viewer("root")
