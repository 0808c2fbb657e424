"""The ingest corpus: good and bad files through the real command line (issue 3, acceptance).

Files are generated here (no binaries in the repo). Every case runs through ``cxstats.cli.main([...])``
in this process (stdout, stderr and the exit code captured; files are still parsed in the worker
process with its memory cap); a few smoke runs go through ``python -m cxstats`` as a user would. Every bad file must exit 2, name the row and
column where there is one, and leave every table exactly as it was (store.table_fingerprint).
Every good file must exit 0 and store what a person reading the file would expect.
"""

from __future__ import annotations

import io
import shutil
import zipfile
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal

import openpyxl
import pytest

from cxstats import ADMIN, ingest, store

# ---------------------------------------------------------------- builders


def csv_bytes(text: str, encoding: str = "utf-8") -> bytes:
    return text.encode(encoding)


def xlsx_bytes(rows, title: str | None = None, sheet: str = "Data", extra_sheets=()) -> bytes:
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.title = sheet
    if title:
        ws.append([title])
        ws.append([])
    for r in rows:
        ws.append(list(r))
    for name in extra_sheets:
        wb.create_sheet(name)
    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue()


def ods_bytes(rows) -> bytes:
    """A minimal OpenDocument spreadsheet (LibreOffice's format), written by hand: odfpy is not a dependency."""

    def cell(v):
        if isinstance(v, (int, float)):
            return f'<table:table-cell office:value-type="float" office:value="{v}"><text:p>{v}</text:p></table:table-cell>'
        return f'<table:table-cell office:value-type="string"><text:p>{v}</text:p></table:table-cell>'

    body = "".join("<table:table-row>" + "".join(cell(v) for v in r) + "</table:table-row>" for r in rows)
    ns = (
        'xmlns:office="urn:oasis:names:tc:opendocument:xmlns:office:1.0" '
        'xmlns:table="urn:oasis:names:tc:opendocument:xmlns:table:1.0" '
        'xmlns:text="urn:oasis:names:tc:opendocument:xmlns:text:1.0"'
    )
    content = (
        f'<?xml version="1.0" encoding="UTF-8"?><office:document-content {ns} office:version="1.2">'
        f'<office:body><office:spreadsheet><table:table table:name="Feedback">{body}</table:table>'
        "</office:spreadsheet></office:body></office:document-content>"
    )
    manifest = (
        '<?xml version="1.0" encoding="UTF-8"?><manifest:manifest '
        'xmlns:manifest="urn:oasis:names:tc:opendocument:xmlns:manifest:1.0" manifest:version="1.2">'
        '<manifest:file-entry manifest:full-path="/" '
        'manifest:media-type="application/vnd.oasis.opendocument.spreadsheet"/>'
        '<manifest:file-entry manifest:full-path="content.xml" manifest:media-type="text/xml"/>'
        "</manifest:manifest>"
    )
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("mimetype", "application/vnd.oasis.opendocument.spreadsheet", compress_type=zipfile.ZIP_STORED)
        z.writestr("content.xml", content)
        z.writestr("META-INF/manifest.xml", manifest)
    return buf.getvalue()


def zip_bomb() -> bytes:
    """Looks like an xlsx; its sheet inflates 1000x (50 MB of the same byte)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("[Content_Types].xml", "<Types/>")
        z.writestr("xl/workbook.xml", "<workbook/>")
        z.writestr("xl/worksheets/sheet1.xml", b"0" * 50_000_000)
    return buf.getvalue()


PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x10\x00\x00\x00\x10\x08\x06\x00\x00\x00" + bytes(range(256)) * 4

FEEDBACK_OK = "Store,Date,CSAT,NPS,Response ID\nS001,2024-03-05,4,9,R1\nS002,2024-03-06,5,10,R2\n"
ITEMS5 = ["I know what is expected of me", "My manager cares about me", "I would recommend this team"]
LABELS5 = ["Strongly agree", "Agree", "Neither agree nor disagree", "Disagree", "Strongly disagree"]
LABELS7 = ["Strongly agree", "Agree", "Somewhat agree", "Neutral", "Somewhat disagree", "Disagree", "Strongly disagree"]


def engagement_rows(labels, n=6, typo_at=None, start=date(2024, 3, 4)):
    rows = [["Store", "Survey date", "Respondent", "Tenure", *ITEMS5, "eNPS", "Comments"]]
    for i in range(n):
        answers = [labels[(i + j) % len(labels)] for j in range(len(ITEMS5))]
        if typo_at == i:
            answers[1] = "Agre"
        rows.append(["S001", start, f"P{i:03d}", "1-2 years", *answers, 8, ""])
    return rows


# ---------------------------------------------------------------- cases


@dataclass
class Case:
    name: str
    kind: str
    data: object  # bytes, or a callable returning bytes
    ext: str = "csv"
    args: tuple = ()
    units: bool = False  # start from a database with a units batch (S001-S005, aliases "Store 1"...)
    settings: dict = field(default_factory=dict)
    preload: tuple = ()  # (kind, bytes, ext) loaded before the case
    expect: tuple = ()  # substrings of stderr (bad) or stdout (good)

    def bytes(self) -> bytes:
        return self.data() if callable(self.data) else self.data


BAD = [
    Case(
        "wrong_kind",
        "feedback",
        csv_bytes("Customer ID,Order date,Amount\nC1,2024-01-02,10.00\n"),
        expect=("missing column 'unit_id'", "is this a feedback file"),
    ),
    Case("missing_column", "feedback", csv_bytes("Store,CSAT\nS001,4\n"), expect=("missing column 'date'",)),
    Case(
        "csat_out_of_range",
        "feedback",
        csv_bytes(FEEDBACK_OK + "S003,2024-03-07,7,8,R3\n"),
        expect=("row 4, column 'CSAT': 7 is outside 1-5",),
    ),
    Case(
        "nps_11",
        "feedback",
        csv_bytes("Branch;Date;NPS\nS001;2024-03-05;9\nS002;2024-03-05;11\n"),
        expect=("row 3, column 'NPS': 11 is outside 0-10",),
    ),
    Case(
        "text_in_number",
        "feedback",
        csv_bytes(FEEDBACK_OK + "S003,2024-03-07,good,8,R3\n"),
        expect=("row 4, column 'CSAT': 'good' is not a number",),
    ),
    Case(
        "not_whole_number",
        "feedback",
        csv_bytes(FEEDBACK_OK + "S003,2024-03-07,4.5,8,R3\n"),
        expect=("row 4, column 'CSAT': '4.5' is not a whole number",),
    ),
    Case(
        "ambiguous_dates",
        "feedback",
        csv_bytes("Store,Date,CSAT\nS001,03/04/2024,4\nS002,05/06/2024,5\n"),
        expect=("column 'Date'", "--dayfirst"),
    ),
    Case(
        "mixed_date_orders",
        "feedback",
        csv_bytes("Store,Date,CSAT\nS001,25/04/2024,4\nS002,04/25/2024,5\n"),
        expect=("column 'Date'", "mix"),
    ),
    Case(
        "impossible_date",
        "feedback",
        csv_bytes("Store,Date,CSAT\nS001,25/04/2024,4\nS002,31/02/2024,5\n"),
        expect=("row 3, column 'Date': '31/02/2024' is not a valid date",),
    ),
    Case(
        "date_not_a_date",
        "feedback",
        csv_bytes("Store,Date,CSAT\nS001,2024-01-05,4\nS002,soon,5\n"),
        expect=("row 3, column 'Date': 'soon' is not a date",),
    ),
    Case(
        "duplicate_key_in_file",
        "feedback",
        csv_bytes(FEEDBACK_OK + "S003,2024-03-07,2,3,R1\n"),
        expect=("row 4, column 'Response ID'", "also in row 2"),
    ),
    Case(
        "same_content_again",
        "feedback",
        csv_bytes("\ufeff" + FEEDBACK_OK),
        preload=(("feedback", csv_bytes(FEEDBACK_OK), "csv"),),
        expect=("already loaded as batch",),
    ),
    Case(
        "stored_key_other_values",
        "feedback",
        csv_bytes("Store,Date,CSAT,NPS,Response ID\nS001,2024-03-05,1,0,R1\n"),
        preload=(("feedback", csv_bytes(FEEDBACK_OK), "csv"),),
        expect=("row 2, column 'Response ID'", "already stored (batch 1) with other values"),
    ),
    Case("empty_file", "feedback", b"", expect=("is empty",)),
    Case("blank_lines_only", "feedback", csv_bytes("\n\n  \n"), expect=("is empty",)),
    Case("header_only", "feedback", csv_bytes("Store,Date,CSAT\n"), expect=("no data rows",)),
    Case(
        "header_only_xlsx",
        "feedback",
        lambda: xlsx_bytes([["Store", "Date", "CSAT"]]),
        ext="xlsx",
        expect=("no data rows",),
    ),
    Case(
        "truncated_xlsx",
        "feedback",
        lambda: xlsx_bytes([["Store", "Date", "CSAT"], ["S001", "2024-01-01", 4]])[:1500],
        ext="xlsx",
        expect=("damaged or truncated",),
    ),
    Case("renamed_binary_csv", "feedback", PNG, expect=("binary",)),
    Case("renamed_binary_xlsx", "feedback", b"%PDF-1.4 not a workbook" * 20, ext="xlsx", expect=("not a valid .xlsx",)),
    Case("zip_bomb", "feedback", zip_bomb, ext="xlsx", expect=("zip bomb",)),
    Case(
        "too_many_rows",
        "feedback",
        lambda: csv_bytes("Store,Date,CSAT\n" + "S001,2024-01-01,4\n" * 500),
        settings={"max_rows": 100},
        expect=("limit is 100", "max_rows"),
    ),
    Case(
        "too_many_rows_xlsx",
        "feedback",
        lambda: xlsx_bytes([["Store", "Date", "CSAT"]] + [["S001", "2024-01-01", 4]] * 300),
        ext="xlsx",
        settings={"max_rows": 100},
        expect=("limit is 100", "max_rows"),
    ),
    Case(
        "file_too_large",
        "feedback",
        csv_bytes(FEEDBACK_OK * 40),
        settings={"max_file_mb": 0.001},
        expect=("limit is", "max_file_mb"),
    ),
    Case(
        "unknown_unit_did_you_mean",
        "feedback",
        csv_bytes("Store,Date,CSAT\nS001,2024-01-01,4\nS0O2,2024-01-02,5\n"),
        units=True,
        expect=("row 3, column 'Store': unknown unit 'S0O2'; did you mean 'S002'?",),
    ),
    Case(
        "order_lines_disagree",
        "purchases",
        csv_bytes("Order ID,Customer,Order date,Amount\nO1,C1,2024-01-02,10.00\nO1,C2,2024-01-02,5.00\n"),
        expect=("row 3, column 'Customer'", "order 'O1'"),
    ),
    Case(
        "likert_typo",
        "engagement",
        lambda: xlsx_bytes(engagement_rows(LABELS5, typo_at=3), title="Pulse survey"),
        ext="xlsx",
        expect=(f"row 7, column '{ITEMS5[1]}': 'Agre' is not an answer on the 1-5 scale",),
    ),
    Case(
        "answer_beyond_scale",
        "engagement",
        csv_bytes("Store,Date,Q1,Q2\nS001,2024-01-01,4,5\nS001,2024-01-01,6,3\n"),
        args=("--scale", "5"),
        expect=("row 3, column 'Q1': 6 is outside 1-5",),
    ),
    Case(
        "two_columns_one_field",
        "feedback",
        csv_bytes("Store,Branch,Date,CSAT\nS001,S001,2024-01-01,4\n"),
        expect=("'Store' and 'Branch' both map to unit_id",),
    ),
    Case(
        "not_tabular",
        "feedback",
        csv_bytes("Dear team,\nplease find the numbers below.\nThanks!\n"),
        expect=("no header row found",),
    ),
    Case(
        "required_cell_empty",
        "feedback",
        csv_bytes("Store,Date,CSAT\nS001,2024-01-01,4\n,2024-01-02,5\n"),
        expect=("row 3, column 'Store': is empty; unit_id is required",),
    ),
    Case(
        "consent_not_yes_no",
        "customers",
        csv_bytes("Customer ID,Consent\nC1,yes\nC2,maybe\n"),
        expect=("row 3, column 'Consent': 'maybe' is not yes/no",),
    ),
    Case(
        "row_wider_than_header",
        "feedback",
        csv_bytes("Store,Date,CSAT\nS001,2024-01-01,4\nS002,2024-01-01,5,oops,x\n"),
        expect=("row 3 has 5 cells",),
    ),
    Case(
        "no_such_sheet",
        "feedback",
        lambda: xlsx_bytes([["Store", "Date", "CSAT"], ["S001", "2024-01-01", 4]]),
        ext="xlsx",
        args=("--sheet", "March"),
        expect=("no sheet 'March'", "Data"),
    ),
    Case(
        "map_to_unknown_field",
        "feedback",
        csv_bytes("Shop,Day,Score\nS001,2024-01-01,4\n"),
        args=("--map", "Score=satisfaction"),
        expect=("has no field 'satisfaction'",),
    ),
    Case(
        "zip_not_a_spreadsheet",
        "feedback",
        lambda: _plain_zip(),
        ext="xlsx",
        expect=("zip archive, not a spreadsheet",),
    ),
    Case(
        "units_id_twice",
        "units",
        csv_bytes("Unit ID,Name\nS001,North\nS002,South\nS001,East\n"),
        expect=("row 4, column 'Unit ID': unit 'S001' appears again (first in row 2)",),
    ),
    Case(
        "sentiment_out_of_range",
        "mentions",
        csv_bytes("Handle,Posted at,Text,Sentiment\n@a,2024-01-01 10:00,ok,2\n"),
        expect=("row 2, column 'Sentiment': 2 is outside -1 to 1",),
    ),
]


GOOD = [
    Case(
        "title_rows_and_totals",
        "feedback",
        csv_bytes("Feedback export March\n\nStore,Date,CSAT\nS001,2024-03-05,4\nS002,2024-03-06,5\nTotal,,9\n"),
        expect=("2 rows loaded", "1 totals row dropped"),
    ),
    Case(
        "cp1252_semicolon_decimal_comma",
        "purchases",
        csv_bytes(
            "Customer No;Order date;Amount;Order ID;Note Café\nC1;05/03/2024;12,50;O1;é\nC2;25/03/2024;1.234,56;O2;\n",
            "cp1252",
        ),
        expect=("2 rows loaded",),
    ),
    Case(
        "likert_labels_5",
        "engagement",
        lambda: xlsx_bytes(engagement_rows(LABELS5), title="Pulse Q1"),
        ext="xlsx",
        expect=("6 rows loaded",),
    ),
    Case(
        "likert_labels_7",
        "engagement",
        lambda: xlsx_bytes(engagement_rows(LABELS7)),
        ext="xlsx",
        expect=("6 rows loaded",),
    ),
    Case("utf8_bom", "feedback", csv_bytes("\ufeff" + FEEDBACK_OK), expect=("2 rows loaded",)),
    Case(
        "excel_serial_dates",
        "feedback",
        lambda: xlsx_bytes([["Store", "Date", "CSAT"], ["S001", 45356, 4], ["S002", datetime(2024, 3, 6, 10, 0), 5]]),
        ext="xlsx",
        expect=("2 rows loaded",),
    ),
    Case(
        "alias_units",
        "feedback",
        csv_bytes("Store,Date,CSAT\nStore 1,2024-01-01,4\nstore 2,2024-01-02,5\n"),
        units=True,
        expect=("2 rows loaded",),
    ),
    Case(
        "tab_delimited",
        "feedback",
        csv_bytes("Store\tDate\tNPS\nS001\t2024-01-01\t9\nS002\t2024-01-02\t6\n"),
        expect=("2 rows loaded",),
    ),
    Case(
        "dayfirst_flag",
        "feedback",
        csv_bytes("Store,Date,CSAT\nS001,03/04/2024,4\nS002,05/06/2024,5\n"),
        args=("--dayfirst",),
        expect=("2 rows loaded",),
    ),
    Case(
        "ids_stay_text",
        "customers",
        csv_bytes("Customer ID,Name,Opt-in\n00042,Ann,yes\n00043,Bob,no\n"),
        expect=("2 rows loaded",),
    ),
    Case(
        "empty_rows_and_columns",
        "feedback",
        csv_bytes("Store,,Date,CSAT\nS001,,2024-01-01,4\n,,,\n\nS002,,2024-01-02,5\n"),
        expect=("2 rows loaded",),
    ),
    Case(
        "mentions_scored",
        "mentions",
        csv_bytes(
            "Customer,Posted,Text,Followers\nC1,2024-01-01 10:00,I love this shop!,120\n"
            "C2,2024-01-02 11:00,Das Personal war sehr freundlich und hilfsbereit.,10\n"
        ),
        expect=("2 rows loaded",),
    ),
    Case(
        "overlapping_export",
        "feedback",
        csv_bytes(FEEDBACK_OK + "S003,2024-03-07,3,7,R3\n"),
        preload=(("feedback", csv_bytes(FEEDBACK_OK), "csv"),),
        expect=("1 row loaded", "2 rows already stored skipped"),
    ),
    Case(
        "opendocument_ods",
        "feedback",
        lambda: ods_bytes([["Store", "Date", "CSAT"], ["S001", "2024-03-05", 4], ["S002", "2024-03-06", 5]]),
        ext="ods",
        expect=("2 rows loaded",),
    ),
    Case(
        "second_sheet_chosen",
        "feedback",
        lambda: _two_sheets(),
        ext="xlsx",
        args=("--sheet", "March"),
        expect=("1 row loaded",),
    ),
]


def _plain_zip() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("report.txt", "Store,Date,CSAT\nS001,2024-01-01,4\n")
    return buf.getvalue()


def _two_sheets() -> bytes:
    wb = openpyxl.Workbook()
    wb.active.title = "Notes"
    wb.active.append(["read me"])
    ws = wb.create_sheet("March")
    ws.append(["Store", "Date", "CSAT"])
    ws.append(["S001", date(2024, 3, 1), 5])
    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue()


UNITS_CSV = csv_bytes("Unit ID,Name,Aliases\n" + "".join(f"S00{i},Shop {i},Store {i}\n" for i in range(1, 6)))


@pytest.fixture(scope="module")
def base_dbs(tmp_path_factory):
    """Two starting databases, built once: empty, and with a units batch."""
    root = tmp_path_factory.mktemp("corpus")
    empty, with_units = root / "empty.duckdb", root / "units.duckdb"
    with store.connect(empty):
        pass
    ingest.import_file(with_units, "units", UNITS_CSV, file_name="units.csv", viewer=ADMIN)
    return {False: empty, True: with_units}


def _prepare(case: Case, base_dbs, tmp_path):
    db = tmp_path / "case.duckdb"
    shutil.copy(base_dbs[case.units], db)
    with store.connect(db) as con:
        for key, value in case.settings.items():
            store.set_setting(con, key, value, viewer=ADMIN)
    for kind, data, ext in case.preload:
        ingest.import_file(db, kind, data, file_name=f"preload.{ext}", viewer=ADMIN)
    path = tmp_path / f"{case.name}.{case.ext}"
    path.write_bytes(case.bytes())
    with store.connect(db) as con:
        before = store.table_fingerprint(con)
    return db, path, before


def test_corpus_has_at_least_25_files():
    assert len(BAD) + len(GOOD) >= 25
    assert len({c.name for c in BAD + GOOD}) == len(BAD + GOOD)


@pytest.mark.parametrize("case", BAD, ids=[c.name for c in BAD])
def test_bad_file_exits_2_names_the_problem_and_writes_nothing(case, base_dbs, tmp_path, cli_inprocess):
    db, path, before = _prepare(case, base_dbs, tmp_path)
    out = cli_inprocess("import", case.kind, str(path), *case.args, db=db)
    assert out.returncode == 2, out.stdout + out.stderr
    assert "Traceback" not in out.stderr
    for text in case.expect:
        assert text in out.stderr, out.stderr
    with store.connect(db) as con:
        assert store.table_fingerprint(con) == before


@pytest.mark.parametrize("case", GOOD, ids=[c.name for c in GOOD])
def test_good_file_loads(case, base_dbs, tmp_path, cli_inprocess):
    db, path, before = _prepare(case, base_dbs, tmp_path)
    out = cli_inprocess("import", case.kind, str(path), *case.args, db=db)
    assert out.returncode == 0, out.stderr
    for text in case.expect:
        assert text in out.stdout, out.stdout
    with store.connect(db) as con:
        assert store.table_fingerprint(con) != before
        CHECKS.get(case.name, lambda con: None)(con)


# a few real subprocess runs: the installed entry point, its exit codes and streams, as a user sees them
SMOKE = ["csat_out_of_range", "zip_bomb", "likert_labels_5"]


@pytest.mark.parametrize("name", SMOKE)
def test_smoke_through_python_m_cxstats(name, base_dbs, tmp_path, cli):
    case = next(c for c in BAD + GOOD if c.name == name)
    db, path, before = _prepare(case, base_dbs, tmp_path)
    out = cli("import", case.kind, str(path), *case.args, db=db)
    good = case in GOOD
    assert out.returncode == (0 if good else 2), out.stdout + out.stderr
    assert "Traceback" not in out.stderr
    for text in case.expect:
        assert text in (out.stdout if good else out.stderr)
    with store.connect(db) as con:
        assert (store.table_fingerprint(con) != before) == good


# what a person reading each good file expects to find stored
def _rows(con, sql):
    return con.execute(sql).fetchall()


def _check_cp1252(con):
    assert _rows(con, "SELECT customer_id, order_date, amount FROM purchases ORDER BY row_no") == [
        ("C1", date(2024, 3, 5), Decimal("12.50")),
        ("C2", date(2024, 3, 25), Decimal("1234.56")),
    ]


def _check_likert(k):
    def check(con):
        assert _rows(con, "SELECT DISTINCT scale FROM engagement_items") == [(k,)]
        # the first respondent answered labels 0, 1, 2: k, k-1, k-2 on either scale
        scores = dict(
            _rows(
                con,
                "SELECT item, score FROM engagement_answers WHERE row_no = "
                "(SELECT min(row_no) FROM engagement_answers)",
            )
        )
        assert scores == {ITEMS5[0]: k, ITEMS5[1]: k - 1, ITEMS5[2]: k - 2}
        assert _rows(con, "SELECT count(*), min(enps) FROM engagement") == [(6, 8)]

    return check


CHECKS = {
    "title_rows_and_totals": lambda con: (
        _rows(con, "SELECT row_no, unit_id, csat FROM feedback ORDER BY row_no") == [(4, "S001", 4), (5, "S002", 5)]
        or pytest.fail(str(_rows(con, "SELECT row_no, unit_id, csat FROM feedback")))
    ),
    "cp1252_semicolon_decimal_comma": _check_cp1252,
    "likert_labels_5": _check_likert(5),
    "likert_labels_7": _check_likert(7),
    "excel_serial_dates": lambda con: (
        _rows(con, "SELECT date FROM feedback ORDER BY row_no") == [(date(2024, 3, 5),), (date(2024, 3, 6),)]
        or pytest.fail("dates")
    ),
    "alias_units": lambda con: (
        _rows(con, "SELECT unit_id FROM feedback ORDER BY row_no") == [("S001",), ("S002",)] or pytest.fail("aliases")
    ),
    "dayfirst_flag": lambda con: (
        _rows(con, "SELECT date FROM feedback ORDER BY row_no") == [(date(2024, 4, 3),), (date(2024, 6, 5),)]
        or pytest.fail("dayfirst")
    ),
    "ids_stay_text": lambda con: (
        _rows(con, "SELECT customer_id, marketing_consent FROM customers ORDER BY row_no")
        == [("00042", True), ("00043", False)]
        or pytest.fail("ids")
    ),
    "empty_rows_and_columns": lambda con: (
        _rows(con, "SELECT row_no FROM feedback ORDER BY row_no") == [(2,), (5,)] or pytest.fail("row numbers")
    ),
    "mentions_scored": lambda con: (
        [r[0] for r in _rows(con, "SELECT sentiment_source FROM mentions ORDER BY row_no")] == ["vader", "unscored"]
        or pytest.fail("sentiment")
    ),
    "opendocument_ods": lambda con: (
        _rows(con, "SELECT unit_id, date, csat FROM feedback ORDER BY row_no")
        == [("S001", date(2024, 3, 5), 4), ("S002", date(2024, 3, 6), 5)]
        or pytest.fail("ods")
    ),
    "overlapping_export": lambda con: _rows(con, "SELECT count(*) FROM feedback") == [(3,)] or pytest.fail("dups"),
}


def test_fingerprint_sees_a_change(tmp_path):
    """Guard for the corpus: the fingerprint does notice one changed value."""
    db = tmp_path / "x.duckdb"
    ingest.import_file(db, "feedback", csv_bytes(FEEDBACK_OK), file_name="a.csv", viewer=ADMIN)
    with store.connect(db) as con:
        before = store.table_fingerprint(con)
        con.execute("UPDATE feedback SET csat = 3 WHERE response_id = 'R1'")
        assert store.table_fingerprint(con) != before
