"""ingest: the Python API the dashboard calls (preview, import_file, template_csv), in process.

Expected values are what a person reading the file would write down (dates, numbers as printed),
not the code's own output.
"""

from __future__ import annotations

import io
from datetime import date, datetime
from decimal import Decimal

import numpy as np
import openpyxl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cxstats import ADMIN, AccessDenied, CxStatsError, Viewer, ingest, store
from cxstats.ingest import Problem


def csv(text: str) -> bytes:
    return text.encode("utf-8")


def xlsx(rows) -> bytes:
    wb = openpyxl.Workbook()
    for r in rows:
        wb.active.append(list(r))
    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue()


def rows(db, sql):
    with store.connect(db) as con:
        return con.execute(sql).fetchall()


UNITS = csv("Unit ID,Name,Aliases\nS001,Riverside,Store 1;Riverside store\nS002,Hilltop,Store 2\n")


@pytest.mark.parametrize(
    "problem, text",
    [
        (Problem(14, "csat", "7 is outside 1-5"), "row 14, column 'csat': 7 is outside 1-5"),
        (Problem(None, "Date", "dates are ambiguous"), "column 'Date': dates are ambiguous"),
        (Problem(3, None, "no csat or nps"), "row 3: no csat or nps"),
        (Problem(None, None, "the file is empty"), "the file is empty"),
    ],
)
def test_problem_reads_like_the_contract(problem, text):
    assert str(problem) == text


# cell text -> the date a person reads in it (the column's other values fix day/month order)
@pytest.mark.parametrize(
    "cells, dayfirst, expected",
    [
        (["2024-03-05", "2024-12-31"], None, [date(2024, 3, 5), date(2024, 12, 31)]),
        (["2024/03/05"], None, [date(2024, 3, 5)]),
        (["05/03/2024", "25/03/2024"], None, [date(2024, 3, 5), date(2024, 3, 25)]),  # 25 can only be a day
        (["03/05/2024", "03/25/2024"], None, [date(2024, 3, 5), date(2024, 3, 25)]),  # 25 can only be a day
        (["05.03.2024", "25.03.24"], None, [date(2024, 3, 5), date(2024, 3, 25)]),
        (["03/04/2024"], True, [date(2024, 4, 3)]),
        (["03/04/2024"], False, [date(2024, 3, 4)]),
        (["45356"], None, [date(2024, 3, 5)]),  # Excel serial: 2024-03-05 is day 45356
        (["5 March 2024"], None, [date(2024, 3, 5)]),
    ],
)
def test_dates_read_as_a_person_reads_them(cells, dayfirst, expected):
    text = "Store,Date,CSAT\n" + "".join(f"S1,{c},4\n" for c in cells)
    p = ingest.preview(csv(text), "f.csv", "feedback", dayfirst=dayfirst, viewer=ADMIN)
    assert p.ok, p.problems
    assert [d.date() for d in p.sample["date"]] == expected


@pytest.mark.parametrize("amount", [1e26, -1e20])
def test_amount_beyond_decimal_range_is_refused_by_row_and_column(amount, db):
    # found by tests/test_fuzz_ingest.py: Decimal rounding raised InvalidOperation on 1e26
    wb = openpyxl.Workbook()
    wb.active.append(["Customer", "Order ID", "Amount", "Order date"])
    wb.active.append(["C1", "O1", amount, "2025-01-02"])
    buf = io.BytesIO()
    wb.save(buf)
    with pytest.raises(CxStatsError) as err:
        ingest.import_file(db, "purchases", buf.getvalue(), file_name="p.xlsx", viewer=ADMIN)
    assert err.value.problems == [f"row 2, column 'Amount': {amount:g} is outside -1e+12 to 1e+12"]


@pytest.mark.parametrize(
    "cell, expected",
    [
        ("12.50", Decimal("12.50")),
        ("1,234.56", Decimal("1234.56")),
        ("€ 9.99", Decimal("9.99")),
        ("(5.00)", Decimal("-5.00")),
        ("-3", Decimal("-3.00")),
        ("0.005", Decimal("0.01")),
    ],
)
def test_money_in_a_comma_file(cell, expected, db):
    text = f'Customer,Order date,Amount\nC1,2024-01-01,"{cell}"\n'
    ingest.import_file(db, "purchases", csv(text), file_name="p.csv", viewer=ADMIN)
    assert rows(db, "SELECT amount FROM purchases") == [(expected,)]


@pytest.mark.parametrize(
    "cell, expected", [("12,50", Decimal("12.50")), ("1.234,56", Decimal("1234.56")), ("7", Decimal("7.00"))]
)
def test_decimal_comma_in_a_semicolon_file(cell, expected, db):
    ingest.import_file(
        db, "purchases", csv(f"Customer;Order date;Amount\nC1;2024-01-01;{cell}\n"), file_name="p.csv", viewer=ADMIN
    )
    assert rows(db, "SELECT amount FROM purchases") == [(expected,)]


def test_preview_reports_mapping_scale_and_never_writes(db):
    data = xlsx(
        [
            ["Pulse survey Q1"],
            [],
            ["Store", "Survey date", "Tenure", "Q1", "Q2", "Comments"],
            ["S001", date(2024, 1, 5), "2 years", "Agree", "Strongly agree", "fine"],
            ["S001", date(2024, 1, 5), "1 year", "Somewhat agree", "Agree", ""],
        ]
    )
    with store.connect(db) as con:
        before = store.table_fingerprint(con)
    p = ingest.preview(data, "pulse.xlsx", "engagement", db=db, viewer=ADMIN)
    assert p.header_row == 3 and p.sheets == ["Sheet"] and p.sheet == "Sheet"
    assert p.mapping == {
        "Store": "unit_id",
        "Survey date": "survey_date",
        "Tenure": "ignore",
        "Q1": "item",
        "Q2": "item",
        "Comments": "comment",
    }
    assert (p.scale, p.scale_source) == (7, "labels")  # 'Somewhat agree' exists only on 7 points
    assert p.rows == 2 and p.ok and p.units_created == ["S001"]
    assert p.sample[["Q1", "Q2"]].values.tolist() == [[6, 7], [5, 6]]  # on 7 points: Agree 6, Somewhat agree 5
    with store.connect(db) as con:
        assert store.table_fingerprint(con) == before


@pytest.mark.parametrize(
    "answers, scale, expected",
    [
        (["4", "5"], None, (5, "answers")),
        (["4", "6"], None, (7, "answers")),
        (["4", "5"], 7, (7, "--scale")),
        (["Agree", "Strongly agree"], None, (5, "labels")),
    ],
)
def test_scale_and_where_it_came_from(answers, scale, expected):
    text = "Store,Date,Q1\n" + "".join(f"S1,2024-01-01,{a}\n" for a in answers)
    p = ingest.preview(csv(text), "e.csv", "engagement", scale=scale, viewer=ADMIN)
    assert (p.scale, p.scale_source) == expected


def test_engagement_answers_reverse_keyed_and_half_answered_warning(db):
    text = "Store,Date,Respondent,Q1,Q2,Q3,Q4\nS1,2024-01-01,P1,5,1,4,4\nS1,2024-01-01,P2,2,N/A,,\n"
    res = ingest.import_file(db, "engagement", csv(text), file_name="e.csv", reverse=("q2",), viewer=ADMIN)
    assert rows(db, "SELECT row_no, item, score FROM engagement_answers ORDER BY row_no, item") == [
        (2, "Q1", 5),
        (2, "Q2", 5),
        (2, "Q3", 4),
        (2, "Q4", 4),
        (3, "Q1", 2),
    ]  # Q2 reversed: 6 - 1
    assert rows(db, "SELECT item, scale, reverse_keyed FROM engagement_items ORDER BY item") == [
        ("Q1", 5, False),
        ("Q2", 5, True),
        ("Q3", 5, False),
        ("Q4", 5, False),
    ]
    assert any("1 respondents answered fewer than half" in w for w in res.warnings)


def test_units_created_before_a_units_file_then_did_you_mean(db):
    r1 = ingest.import_file(
        db, "feedback", csv("Store,Date,CSAT\nS001,2024-01-01,4\nS009,2024-01-01,5\n"), file_name="a.csv", viewer=ADMIN
    )
    assert r1.units_created == ["S001", "S009"]
    assert r1.summary() == "2 rows loaded as batch 1; 2 units created"
    ingest.import_file(db, "units", UNITS, file_name="units.csv", viewer=ADMIN)
    with pytest.raises(CxStatsError) as err:
        ingest.import_file(
            db,
            "feedback",
            csv("Store,Date,CSAT\nRiverside store,2024-01-02,4\nRiverside stor,2024-01-02,5\n"),
            file_name="b.csv",
            viewer=ADMIN,
        )
    assert (
        "row 3, column 'Store': unknown unit 'Riverside stor'; did you mean 'Riverside store' (unit S001)?"
        in err.value.problems[0]
    )
    r3 = ingest.import_file(
        db,
        "feedback",
        csv("Store,Date,CSAT\nRiverside store,2024-01-02,4\nstore 2,2024-01-02,5\n"),
        file_name="c.csv",
        viewer=ADMIN,
    )
    assert r3.units_created == []
    assert rows(
        db, "SELECT unit_id FROM feedback WHERE batch_id = ? ORDER BY row_no".replace("?", str(r3.batch_id))
    ) == [("S001",), ("S002",)]


def test_created_units_go_with_their_batch_on_undo(db):
    r = ingest.import_file(db, "feedback", csv("Store,Date,CSAT\nS001,2024-01-01,4\n"), file_name="a.csv", viewer=ADMIN)
    with store.connect(db) as con:
        store.undo(con, r.batch_id, viewer=ADMIN)
    assert rows(db, "SELECT count(*) FROM units") == [(0,)]


def test_manager_uploads_only_his_units(db):
    manager = Viewer("manager", ("S001",), "Mia")
    ingest.import_file(db, "units", UNITS, file_name="units.csv", viewer=ADMIN)
    r = ingest.import_file(
        db, "feedback", csv("Store,Date,CSAT\nS001,2024-01-01,4\n"), file_name="a.csv", viewer=manager
    )
    assert rows(db, f"SELECT loaded_by FROM batches WHERE batch_id = {r.batch_id}") == [("Mia",)]
    with store.connect(db) as con:
        before = store.table_fingerprint(con)
    with pytest.raises(AccessDenied, match="S002"):
        ingest.import_file(
            db,
            "feedback",
            csv("Store,Date,CSAT\nS001,2024-01-02,4\nStore 2,2024-01-02,5\n"),
            file_name="b.csv",
            viewer=manager,
        )
    with pytest.raises(AccessDenied):
        ingest.import_file(db, "customers", csv("Customer ID\nC1\n"), file_name="c.csv", viewer=manager)
    with store.connect(db) as con:
        assert store.table_fingerprint(con) == before


@pytest.mark.parametrize(
    "kind, allowed",
    [
        ("purchases", True),
        ("mentions", True),
        ("customers", True),
        ("rewards", True),
        ("engagement", False),
        ("feedback", False),
    ],
)
def test_marketing_uploads_customer_data_only(kind, allowed):
    data = ingest.template_csv(kind)
    call = lambda: ingest.preview(data, "t.csv", kind, viewer=Viewer("marketing"))  # noqa: E731
    if allowed:
        assert call().ok
    else:
        with pytest.raises(AccessDenied):
            call()


@pytest.mark.parametrize("kind", ["units", "engagement", "feedback", "purchases", "mentions", "customers", "rewards"])
def test_every_template_previews_clean(kind):
    p = ingest.preview(ingest.template_csv(kind), f"{kind}.csv", kind, viewer=ADMIN)
    assert p.ok, p.problems
    assert p.rows == 1
    assert "ignore" not in p.mapping.values()


def test_skip_invalid_loads_good_rows_and_writes_rejected_beside_the_file(db, tmp_path):
    path = tmp_path / "march.csv"
    path.write_text("Store,Date,CSAT\nS001,2024-01-01,4\nS002,2024-01-01,9\nS003,2024-01-01,x\n")
    res = ingest.import_file(db, "feedback", path, skip_invalid=True, viewer=ADMIN)
    assert (res.rows_loaded, res.rejected) == (1, 2)
    assert res.rejected_path == str(tmp_path / "march.rejected.csv")
    text = (tmp_path / "march.rejected.csv").read_text()
    assert "row,problem,Store,Date,CSAT" in text
    assert "3,CSAT: 9 is outside 1-5,S002" in text
    assert "4,CSAT: 'x' is not a number,S003" in text
    assert "2 invalid rows rejected" in res.summary()


def test_skip_invalid_of_bytes_writes_rejected_beside_the_database_not_the_current_folder(tmp_path, monkeypatch):
    """Bytes have no folder of their own: their rejected rows go where the project keeps what it writes
    (beside the database, data/ by default), never into whatever folder the process runs in."""
    db = tmp_path / "data" / "cx.duckdb"
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    data = b"Store,Date,CSAT\nS001,2024-01-01,4\nS002,2024-01-01,9\n"
    res = ingest.import_file(db, "feedback", data, file_name="late.csv", skip_invalid=True, viewer=ADMIN)
    assert (res.rows_loaded, res.rejected) == (1, 1)
    assert res.rejected_path == str(db.parent / "late.rejected.csv")
    assert "3,CSAT: 9 is outside 1-5,S002" in (db.parent / "late.rejected.csv").read_text()
    assert list(elsewhere.iterdir()) == []


def test_refusal_lists_every_problem_and_counts_them(db):
    text = "Store,Date,CSAT\n" + "".join(f"S1,2024-01-01,{6 + i % 3}\n" for i in range(120))
    with pytest.raises(CxStatsError) as err:
        ingest.import_file(db, "feedback", csv(text), file_name="many.csv", viewer=ADMIN)
    assert "120 problems" in str(err.value)
    assert len(err.value.problems) == 120
    assert err.value.problems[0] == "row 2, column 'CSAT': 6 is outside 1-5"
    assert rows(db, "SELECT count(*) FROM batches") == [(0,)]


def test_cli_caps_the_list_at_50(db, tmp_path, cli_inprocess):
    path = tmp_path / "many.csv"
    path.write_text("Store,Date,CSAT\n" + "S1,2024-01-01,9\n" * 80)
    out = cli_inprocess("import", "feedback", str(path), db=db)
    assert out.returncode == 2
    lines = [ln for ln in out.stderr.splitlines() if ln.startswith("  ")]
    assert len(lines) == 51 and lines[-1].strip() == "... and 30 more problems"


def test_purchase_lines_numbered_within_their_order(db):
    text = (
        "Order ID,Customer,Order date,Amount\nO1,C1,2024-01-02,10\nO2,C2,2024-01-03,5\n"
        "O1,C1,2024-01-02,-2.5\n,C3,2024-01-04,7\n"
    )
    ingest.import_file(db, "purchases", csv(text), file_name="p.csv", viewer=ADMIN)
    assert rows(db, "SELECT order_id, line_no, amount FROM purchases ORDER BY row_no") == [
        ("O1", 1, Decimal("10.00")),
        ("O2", 1, Decimal("5.00")),
        ("O1", 2, Decimal("-2.50")),
        (None, 1, Decimal("7.00")),
    ]


def test_customers_update_on_a_later_upload(db):
    ingest.import_file(
        db,
        "customers",
        csv("Customer ID,Email,Consent\nC1,a@x.org,yes\nC2,b@x.org,yes\n"),
        file_name="a.csv",
        viewer=ADMIN,
    )
    r = ingest.import_file(
        db,
        "customers",
        csv("Customer ID,Email,Consent\nC1,a@x.org,no\nC2,b@x.org,yes\n"),
        file_name="b.csv",
        viewer=ADMIN,
    )
    assert (r.rows_loaded, r.duplicates_skipped) == (1, 1)
    with store.connect(db) as con:
        cur = con.execute(
            f"SELECT customer_id, marketing_consent FROM ({store.current_customers_sql()}) ORDER BY 1"
        ).fetchall()
    assert cur == [("C1", False), ("C2", True)]


def test_xlsx_number_ids_become_text_with_a_warning():
    p = ingest.preview(
        xlsx([["Customer ID", "Name"], [42.0, "Ann"], ["00043", "Bob"]]), "c.xlsx", "customers", viewer=ADMIN
    )
    assert list(p.sample["customer_id"]) == ["42", "00043"]
    assert any("leading zeros" in w for w in p.warnings)


def test_mentions_sentiment_from_file_vader_or_unscored(db):
    text = (
        "Handle,Posted at,Text,Sentiment\n@a,2024-01-01 10:00,whatever,0.5\n"
        "@b,2024-01-01 11:00,Wonderful staff and great coffee!,\n@c,2024-01-01 12:00,Sehr gut und nicht teuer,\n"
    )
    ingest.import_file(db, "mentions", csv(text), file_name="m.csv", viewer=ADMIN)
    got = rows(db, "SELECT handle, sentiment, sentiment_source, posted_at FROM mentions ORDER BY row_no")
    assert [(g[0], g[2]) for g in got] == [("@a", "file"), ("@b", "vader"), ("@c", "unscored")]
    assert got[0][1] == 0.5 and got[1][1] > 0.5 and got[2][1] is None
    assert got[0][3] == datetime(2024, 1, 1, 10, 0)


def test_same_rows_in_other_layout_are_the_same_content(db):
    ingest.import_file(db, "feedback", csv("Store,Date,CSAT\nS1,2024-01-01,4\n"), file_name="a.csv", viewer=ADMIN)
    with pytest.raises(CxStatsError, match="already loaded as batch 1"):
        ingest.import_file(
            db,
            "feedback",
            xlsx([["Report"], ["Branch", "Date", "Satisfaction"], ["S1", date(2024, 1, 1), 4]]),
            file_name="b.xlsx",
            viewer=ADMIN,
        )


def test_sample_and_problem_count_in_preview():
    text = "Store,Date,CSAT\n" + "".join(f"S1,2024-01-01,{1 + i % 5}\n" for i in range(30)) + "S1,2024-01-01,0\n"
    p = ingest.preview(csv(text), "f.csv", "feedback", viewer=ADMIN)
    assert len(p.sample) == ingest.SAMPLE_ROWS and not p.ok and p.n_problems == 1
    assert str(p.problems[0]) == "row 32, column 'CSAT': 0 is outside 1-5"
    assert np.issubdtype(p.sample["date"].dtype, np.datetime64)


def test_timestamps_with_and_without_offsets_read_as_utc():
    text = (
        "Handle,Posted at,Text\n@a,2024-01-01T10:00:00Z,hi\n@b,2024-01-01 11:00,yo\n"
        "@c,2024-01-01T12:00:00+02:00,x\n@d,25/03/2024 2:30 PM,x\n"
    )
    p = ingest.preview(csv(text), "m.csv", "mentions", viewer=ADMIN)
    assert p.ok, p.problems
    assert list(p.sample["posted_at"]) == [
        datetime(2024, 1, 1, 10),
        datetime(2024, 1, 1, 11),
        datetime(2024, 1, 1, 10),
        datetime(2024, 3, 25, 14, 30),
    ]


@pytest.mark.parametrize(
    "mapping, expected",
    [
        ({"Shop": "unit_id", "Day": "date", "Score": "csat"}, {"Shop": "unit_id", "Day": "date", "Score": "csat"}),
        ({"shop": "unit_id", "DAY": "date", "score": "nps"}, {"Shop": "unit_id", "Day": "date", "Score": "nps"}),
    ],
)
def test_user_mapping_by_header_text(mapping, expected):
    p = ingest.preview(csv("Shop,Day,Score\nS1,2024-01-01,4\n"), "f.csv", "feedback", mapping=mapping, viewer=ADMIN)
    assert p.mapping == expected and p.ok


def test_mapping_a_column_to_ignore_resolves_a_clash():
    data = csv("Store,Branch,Date,CSAT\nS1,B1,2024-01-01,4\n")
    clash = ingest.preview(data, "f.csv", "feedback", viewer=ADMIN)
    assert not clash.ok and "both map to unit_id" in str(clash.problems[0])
    p = ingest.preview(data, "f.csv", "feedback", mapping={"Branch": "ignore"}, viewer=ADMIN)
    assert p.ok and p.mapping["Branch"] == "ignore" and list(p.sample["unit_id"]) == ["S1"]


@pytest.mark.parametrize(
    "pairs, expected",
    [
        (["Store No=unit_id"], {"Store No": "unit_id"}),
        (["a=b=csat", " x = nps "], {"a=b": "csat", "x": "nps"}),
    ],
)
def test_parse_mapping(pairs, expected):
    assert ingest.parse_mapping(pairs) == expected


def test_parse_mapping_refuses_a_pair_without_equals():
    with pytest.raises(CxStatsError, match="SOURCE=FIELD"):
        ingest.parse_mapping(["unit_id"])


def test_docstring_example_runs():
    """The package docstring's example (docs as doctests, issue 12 item 5)."""
    import doctest

    assert doctest.testmod(ingest).failed == 0


def test_all_blank_rows_match_every_column_mask():
    """The empty-row check that looks at unused columns only in rows still empty agrees with masks
    over every column: a row empty in the mapped columns but with a cell elsewhere is kept."""
    import pandas as pd

    from cxstats.ingest.cells import _blank_mask
    from cxstats.ingest.load import _all_blank, _BlankMasks

    frame = pd.DataFrame(
        [["a", "", None, "x"], ["", "", float("nan"), ""], ["", None, "", "note"], ["", "", "", ""]],
        columns=range(4),
        dtype=object,
    )
    full = np.logical_and.reduce([_blank_mask(frame[i]) for i in frame.columns])
    for first in ([0, 1], [2], [], [3, 0]):
        blank = _BlankMasks(frame)
        assert (_all_blank(frame, blank, first) == full).all()
        assert all((blank[i] == _blank_mask(frame[i])).all() for i in frame.columns)
    assert full.tolist() == [False, True, False, True]


def test_order_lines_that_disagree_are_reported_on_their_own_rows():
    """Lines of one order share customer and date; a line that differs from the order's first value is
    reported on its own spreadsheet row, also when lines without an order id come before it."""
    data = csv(
        "Order ID,Customer ID,Order date,Amount\n"
        ",C9,2024-01-01,5\n"
        "O1,C1,2024-01-02,10\n"
        "O1,C2,2024-01-02,12\n"
        "O2,,2024-01-03,1\n"
        "O2,C3,2024-01-03,1\n"
        "O2,C4,2024-01-05,1\n"
    )
    p = ingest.preview(data, "orders.csv", "purchases", viewer=ADMIN)
    assert [(x.row, x.column, x.message) for x in p.problems] == [
        (4, "Customer ID", "order 'O1' has customer_id 'C2' here but 'C1' in row 3; lines of one order share it"),
        (5, "Customer ID", "is empty; customer_id is required"),
        # the row named is the first line that has a customer (row 5 has none)
        (7, "Customer ID", "order 'O2' has customer_id 'C4' here but 'C3' in row 6; lines of one order share it"),
        (
            7,
            "Order date",
            "order 'O2' has order_date 2024-01-05 here but 2024-01-03 in row 5; lines of one order share it",
        ),
    ]


@settings(max_examples=60, deadline=None)
@given(
    lines=st.lists(
        st.tuples(
            st.sampled_from([None, "O1", "O2", "O3", "O4"]),
            st.sampled_from([None, "C1", "C2"]),
            st.sampled_from([None, "2024-01-01", "2024-01-02"]),
        ),
        min_size=1,
        max_size=30,
    )
)
def test_order_line_numbers_and_problems_match_pandas_groupby(lines):
    """rules._purchase_lines against the plain pandas definition: line_no = groupby cumcount + 1, and a
    line whose value differs from groupby's first (present) value of its order is a problem."""
    import pandas as pd

    from cxstats.ingest import results, rules

    frame = pd.DataFrame(lines, columns=["order_id", "customer_id", "order_date"]).astype(
        {"order_id": "str", "customer_id": "str"}
    )
    frame["order_date"] = pd.to_datetime(frame["order_date"])
    frame.insert(0, "row_no", np.arange(2, len(frame) + 2, dtype=np.int32))
    probs = results._Problems(frame["row_no"].to_numpy(), {"o": 0, "c": 1, "d": 2})
    out = frame.copy()
    rules._purchase_lines(out, probs, ["o", "c", "d"], {"order_id": 0, "customer_id": 1, "order_date": 2})

    has = frame["order_id"].notna()
    o = frame.loc[has]
    by_order = o.groupby("order_id", sort=False)
    expected_line = pd.Series(1, index=frame.index)
    expected_line[has] = by_order.cumcount() + 1
    assert out["line_no"].tolist() == expected_line.tolist()
    first = by_order.transform("first")
    expected = set()
    for f, label in (("customer_id", "c"), ("order_date", "d")):
        differs = o[f].ne(first[f]).fillna(False).astype(bool) & o[f].notna() & first[f].notna()
        expected |= {(int(frame["row_no"][i]), label) for i in o.index[differs]}
    got = {(int(frame["row_no"][i]), col) for idx, col, _ in probs.parts for i in idx}
    assert got == expected
