"""Issue 18 (outside probe): hostile workbooks, Markdown in names, marketing's sidebar, page icons.

Each test here failed on the code before the fix (SECURITY.md, "Failures found by the outside probe").
"""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import hostile_files
import pytest

from cxstats import ADMIN, CxStatsError, Viewer, ingest, quality, store

ROOT = Path(__file__).resolve().parents[1]
MARKETING = Viewer("marketing", (), "marketing")


# ---------------------------------------------------------------- marketing's sidebar (8)


def test_marketing_filters_hold_no_unit_or_period_known_only_from_survey_data(tmp_path):
    db = tmp_path / "m.duckdb"
    with store.connect(db) as con:
        store.migrate(con)
    fb = [{"unit_id": "S001", "date": "2025-02-10", "csat": "4", "nps": "9", "response_id": f"R{i}"} for i in range(3)]
    eng = [
        {"unit_id": "SURVEY9", "survey_date": "2024-08-15", "respondent_id": f"E{i}", "enps": "8", "q1": "4"}
        for i in range(6)
    ]
    buy = [{"customer_id": "C1", "order_date": "2023-05-01", "amount": "10", "order_id": "O1", "unit_id": "S002"}]
    ingest.import_file(db, "feedback", hostile_files.csv_bytes(fb), file_name="fb.csv", viewer=ADMIN)
    ingest.import_file(db, "engagement", hostile_files.csv_bytes(eng), file_name="eng.csv", viewer=ADMIN)
    ingest.import_file(db, "purchases", hostile_files.csv_bytes(buy), file_name="buy.csv", viewer=ADMIN)
    with store.connect(db) as con:
        admin = quality.filter_options(con, viewer=ADMIN)
        mkt = quality.filter_options(con, viewer=MARKETING)
    assert "SURVEY9" in {u.unit_id for u in admin.units} and "2024-Q3" in admin.periods
    assert {u.unit_id for u in mkt.units} == {"S001", "S002"}
    assert mkt.periods == ("2025-Q1",)


# ---------------------------------------------------------------- page icons served locally (8)


def _app_sources() -> list[Path]:
    return [ROOT / "app.py", ROOT / "ui.py", *sorted((ROOT / "pages").glob("*.py"))]


def test_no_page_icon_is_fetched_from_an_outside_host():
    # a ":material/...:" page icon makes the browser fetch the tab icon from fonts.gstatic.com on every
    # page load; an emoji becomes an inline data: URL
    for path in _app_sources():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                assert ":material/" not in node.value, f"{path.name}: {node.value!r}"
            if isinstance(node, ast.Call):
                for kw in node.keywords:
                    if kw.arg in ("icon", "page_icon") and isinstance(kw.value, ast.Constant):
                        v = str(kw.value.value)
                        assert "://" not in v and not v.startswith(("/", ":")), f"{path.name}: {v!r}"
    import ui

    app_icon = next(
        n.value.value
        for n in ast.parse((ROOT / "app.py").read_text()).body
        if isinstance(n, ast.Assign) and getattr(n.targets[0], "id", "") == "APP_ICON"
    )
    for icon in [app_icon] + [v[2] for v in ui.PAGES.values()]:
        assert icon and not icon.isascii(), f"{icon!r} is not an emoji"
    config = (ROOT / ".streamlit" / "config.toml").read_text()
    assert "://" not in config


# ---------------------------------------------------------------- hostile workbooks (1)

HOSTILE = {
    "wide.xlsx": (hostile_files.wide_xlsx, r"spans at least [\d,]+ rows x 16,381 columns"),
    "wide.ods": (hostile_files.wide_ods, r"spans at least [\d,]+ rows x 16,381 columns"),
    "long.xlsx": (hostile_files.long_xlsx, "rows; the limit is 5,000,000"),
    "long.ods": (hostile_files.long_ods, "rows; the limit is 5,000,000"),
}
SLOW = {"long.xlsx", "long.ods"}  # ~1.1 GB of XML streamed: seconds, not minutes


def _params():
    return [pytest.param(n, marks=pytest.mark.slow) if n in SLOW else n for n in HOSTILE]


@pytest.mark.parametrize("name", _params())
def test_hostile_workbook_is_refused_before_any_reader_builds_cells(name):
    # before the fix: wide.* aborted the process (~52 GB asked for), long.* ran ~30 s up to 3.4 GB
    make, message = HOSTILE[name]
    data = make()
    with pytest.raises(CxStatsError, match=message):
        ingest.preview(data, name, "feedback", viewer=ADMIN)


@pytest.mark.parametrize("name", ["wide.xlsx", "wide.ods"])
def test_hostile_workbook_through_the_command_line_exits_2(tmp_path, name):
    make, message = HOSTILE[name]
    path = tmp_path / name
    path.write_bytes(make())
    out = subprocess.run(
        [sys.executable, "-m", "cxstats", "import", "feedback", str(path), "--db", str(tmp_path / "cli.duckdb")],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=300,
    )
    assert out.returncode == 2, (out.returncode, out.stderr[-2000:])  # was 134 (abort)
    assert re.search(message, out.stderr) and "Traceback" not in out.stderr


def test_ordinary_workbooks_still_read_with_and_without_r_attributes():
    from cxstats import readers

    rows = "".join(
        f'<row><c t="inlineStr"><is><t>S00{i}</t></is></c><c><v>45000</v></c><c><v>4</v></c></row>' for i in range(1, 4)
    )
    for data in (
        hostile_files.minimal_xlsx(hostile_files.XLSX_HEADER + rows),
        hostile_files.minimal_xlsx(
            hostile_files.XLSX_HEADER.replace("<row>", '<row r="1">')
            + rows.replace(
                "<row>", '<x:row xmlns:x="http://schemas.openxmlformats.org/spreadsheetml/2006/main">'
            ).replace("</row>", "</x:row>")
        ),
    ):
        pv = ingest.preview(data, "ok.xlsx", "feedback", viewer=ADMIN)
        assert pv.rows == 3
    # LibreOffice ends every sheet with ~1M repeated empty rows of 1,024 empty cells: not counted
    trailer = (
        '<table:table-row table:number-rows-repeated="1048570"><table:table-cell '
        'table:number-columns-repeated="1024"/></table:table-row>'
    )
    body = "".join(
        f"<table:table-row>{hostile_files._ts('S001')}{hostile_files._tf(45000)}{hostile_files._tf(4)}"
        '<table:table-cell table:number-columns-repeated="1021"/></table:table-row>'
        for _ in range(3)
    )
    pv = ingest.preview(
        hostile_files.minimal_ods(hostile_files.ODS_HEADER + body + trailer), "ok.ods", "feedback", viewer=ADMIN
    )
    assert pv.rows == 3
    assert readers.MAX_CELLS >= 5_000_000 * 12


def test_a_file_that_needs_more_memory_than_the_cap_is_refused_and_the_caller_survives(monkeypatch):
    # the worker dies (the reader aborts when an allocation fails); the calling process (the server)
    # gets a CxStatsError and answers the next request
    rows = "".join(
        f'<row><c t="inlineStr"><is><t>S{i}</t></is></c><c><v>45000</v></c><c><v>4</v></c></row>'
        for i in range(300_000)
    )
    monkeypatch.setenv("CXSTATS_PARSE_MB", "64")
    with pytest.raises(CxStatsError, match="needs more memory than the limit of 64 MB"):
        ingest.preview(
            hostile_files.minimal_xlsx(hostile_files.XLSX_HEADER + rows),
            "big.xlsx",
            "feedback",
            isolated=True,
            viewer=ADMIN,
        )
    monkeypatch.delenv("CXSTATS_PARSE_MB")
    ok = hostile_files.minimal_xlsx(hostile_files.XLSX_HEADER + rows[: rows.index("</row>") + 6])
    assert ingest.preview(ok, "ok.xlsx", "feedback", isolated=True, viewer=ADMIN).rows == 1
    with pytest.raises(CxStatsError, match="16,381 columns"):
        ingest.preview(hostile_files.wide_xlsx(), "wide.xlsx", "feedback", isolated=True, viewer=ADMIN)


@pytest.mark.parametrize(
    ("code", "message"),
    [
        ("import os, signal; os.kill(os.getpid(), signal.SIGKILL)", "needs more memory than the limit"),
        ("import sys; sys.stderr.write('MemoryError\\n'); sys.exit(1)", "needs more memory than the limit"),
        (
            "import sys; sys.stderr.write('Traceback (most recent call last):\\nValueError: boom\\n'); sys.exit(1)",
            r"the file reader stopped unexpectedly \(exit code 1: ValueError: boom\); try again",
        ),
    ],
    ids=["killed", "memory-error", "other-error"],
)
def test_a_worker_that_dies_says_whether_it_was_memory(monkeypatch, code, message):
    """Only a death that looks like memory (a signal, a memory error on stderr) gets the memory
    message; any other says what it was, so that a crash is not taken for the file's size."""
    monkeypatch.setattr(ingest.worker, "_WORKER_CODE", code)
    ok = hostile_files.minimal_xlsx(
        hostile_files.XLSX_HEADER
        + '<row><c t="inlineStr"><is><t>S1</t></is></c><c><v>45000</v></c><c><v>4</v></c></row>'
    )
    with pytest.raises(CxStatsError, match=message):
        ingest.preview(ok, "ok.xlsx", "feedback", isolated=True, viewer=ADMIN)


# elements whose value the browser renders as Markdown; every label and help text does too
