"""Fuzzing the ingest path (issue 7, point 2): whatever a manager uploads ends in a clean load or a
refusal with a message, never a traceback, a hang or a changed database.

Inputs: the shipped demo files mutated at random (bytes flipped, cut, repeated), xlsx workbooks
whose inner XML is mutated and re-zipped (so the damage reaches the XML reader, not only the zip
CRC), truncated zips, the same CSV in wrong encodings, hypothesis-generated CSV text and xlsx
grids, and named hostile cases (10,000 columns, 1,000,000 empty rows, a cell at XFD1048576,
formulas, merged cells, hidden sheets, Excel serial dates, Unicode lookalike headers). Heavy
cases run through the real command line in a subprocess with a timeout.

Every refused input must leave every table as it was (``store.table_fingerprint``). The number
of inputs tried is written to test-artifacts/fuzz_counts.json (and quoted in SECURITY.md).

Budget: CXSTATS_FUZZ_EXAMPLES (default 8) cases per generator; set it to e.g. 500 for a long run.
"""

from __future__ import annotations

import io
import os
import random
import signal
import time
import zipfile
from collections import Counter
from contextlib import contextmanager
from datetime import date, datetime, timedelta
from pathlib import Path

import openpyxl
import pytest
from artifacts import stamp, update_counts
from hostile_files import minimal_xlsx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cxstats import ADMIN, CxStatsError, ingest, readers, store

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "data" / "demo"
EXAMPLES = int(os.environ.get("CXSTATS_FUZZ_EXAMPLES", "8"))
HANG_S = 60  # per in-process case: far above any honest file of this size (a hang, not a slow run)
CLI_TIMEOUT_S = 300  # per heavy case through the command line
COUNTS: Counter = Counter()
OUTCOMES: Counter = Counter()

SEED_FILES = {  # kind -> a real file shipped in the repo
    "units": "units.csv",
    "feedback": "feedback_messy.csv",
    "engagement": "engagement_messy.xlsx",
    "purchases": "purchases.csv",
    "mentions": "mentions.csv",
    "customers": "customers.csv",
    "rewards": "rewards.csv",
}


class Hang(Exception):
    pass


@contextmanager
def time_limit(seconds: float):
    """Raise Hang when the block runs longer than ``seconds`` (restores any outer alarm)."""

    def _raise(signum, frame):
        raise Hang(f"no answer within {seconds} s")

    started = time.monotonic()
    old_handler = signal.signal(signal.SIGALRM, _raise)
    old_timer = signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old_handler)
        if old_timer[0]:
            signal.setitimer(signal.ITIMER_REAL, max(old_timer[0] - (time.monotonic() - started), 0.01))


def fingerprint(db) -> dict:
    with store.connect(db) as con:
        return store.table_fingerprint(con)


def attempt(db: Path, kind: str, data: bytes, name: str, category: str) -> str:
    """Import one input; 'loaded' (then undone) or 'refused' with a message and nothing written."""
    COUNTS[category] += 1
    before = fingerprint(db)
    try:
        with time_limit(HANG_S):
            res = ingest.import_file(db, kind, data, file_name=name, viewer=ADMIN)
    except CxStatsError as exc:
        assert str(exc).strip(), f"{category}: refusal without a message"
        assert fingerprint(db) == before, f"{category}: a refused input changed the database ({exc})"
        OUTCOMES["refused"] += 1
        return "refused"
    # any other exception (or Hang) fails the test with its traceback: that is the finding
    with store.connect(db) as con:
        store.undo(con, res.batch_id, viewer=ADMIN)  # the next input starts from the same content
    OUTCOMES["loaded"] += 1
    return "loaded"


@pytest.fixture(scope="module", autouse=True)
def _write_counts():
    yield
    update_counts(
        "ingest",
        {
            "inputs": sum(COUNTS.values()),
            "by_generator": dict(sorted(COUNTS.items())),
            "outcomes": dict(OUTCOMES),
            "examples_setting": EXAMPLES,
            "written_at": stamp(),
        },
    )
    print(f"\ningest fuzzing: {sum(COUNTS.values())} inputs tried ({dict(OUTCOMES)})")


@pytest.fixture(scope="module")
def fuzz_db(tmp_path_factory) -> Path:
    """A database holding units and feedback, so duplicate and unit checks are exercised too."""
    db = tmp_path_factory.mktemp("fuzz") / "fuzz.duckdb"
    ingest.import_file(db, "units", DEMO / "units.csv", viewer=ADMIN)
    ingest.import_file(db, "feedback", DEMO / "feedback_messy.csv", viewer=ADMIN)
    return db


# ---------------------------------------------------------------- builders


def xlsx_bytes(rows, *, sheet="Data", setup=None) -> bytes:
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.title = sheet
    for r in rows:
        ws.append(list(r))
    if setup:
        setup(wb)
    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue()


def mutate_bytes(data: bytes, rng: random.Random) -> bytes:
    d = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        if not d:
            break
        p = rng.randrange(len(d))
        op = rng.choice(("flip", "cut", "insert", "delete", "repeat"))
        if op == "flip":
            d[p] = rng.randrange(256)
        elif op == "cut":
            del d[p:]
        elif op == "insert":
            d[p:p] = rng.choice((b",", b";", b"\t", b"\n", b"\r", b'"', b"\x00", b"\xff\xfe", b"=1+1", b"\xc3"))
        elif op == "delete":
            del d[p : p + rng.randint(1, 64)]
        else:
            q = rng.randrange(len(d))
            d[p:p] = d[q : q + rng.randint(1, 256)] * rng.randint(1, 3)
    return bytes(d)


def mutate_xlsx_member(data: bytes, rng: random.Random) -> bytes:
    """Re-zip a workbook with one XML member damaged: the damage reaches the XML reader."""
    zin = zipfile.ZipFile(io.BytesIO(data))
    members = [(i.filename, zin.read(i)) for i in zin.infolist()]
    target = rng.choice([n for n, _ in members if n.endswith((".xml", ".rels"))])
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:
        for name, body in members:
            if name == target:
                d = bytearray(body)
                for _ in range(rng.randint(1, 6)):
                    p = rng.randrange(max(len(d), 1))
                    op = rng.choice(("char", "delete", "repeat", "number"))
                    if op == "char":
                        d[p : p + 1] = bytes([rng.choice(b'<>"/=&;0123456789AZrstv ')])
                    elif op == "delete":
                        del d[p : p + rng.randint(1, 40)]
                    elif op == "repeat":
                        q = rng.randrange(max(len(d), 1))
                        d[p:p] = d[q : q + rng.randint(1, 300)]
                    else:
                        d[p:p] = str(rng.choice((-1, 0, 10**9, 2**40, 16384, 1048577))).encode()
                body = bytes(d)
            z.writestr(name, body)
    return out.getvalue()


def _c(ref: str, value) -> str:
    if isinstance(value, (int, float)):
        return f'<c r="{ref}"><v>{value}</v></c>'
    return f'<c r="{ref}" t="inlineStr"><is><t>{value}</t></is></c>'


FEEDBACK_ROWS_XML = (
    '<row r="1">' + _c("A1", "Store") + _c("B1", "Date") + _c("C1", "CSAT") + "</row>"
    '<row r="2">' + _c("A2", "S001") + _c("B2", "2024-03-05") + _c("C2", 4) + "</row>"
)


# ---------------------------------------------------------------- mutated real files


@pytest.mark.parametrize("kind", sorted(SEED_FILES))
def test_mutated_demo_files_load_or_refuse_cleanly(fuzz_db, kind):
    data = (DEMO / SEED_FILES[kind]).read_bytes()
    rng = random.Random(f"bytes-{kind}")
    name = SEED_FILES[kind]
    for _ in range(EXAMPLES):
        attempt(fuzz_db, kind, mutate_bytes(data, rng), name, "mutated demo files (bytes)")


def test_mutated_xlsx_xml_members_load_or_refuse_cleanly(fuzz_db):
    data = (DEMO / "engagement_messy.xlsx").read_bytes()
    rng = random.Random("xml")
    for _ in range(3 * EXAMPLES):
        attempt(fuzz_db, "engagement", mutate_xlsx_member(data, rng), "survey.xlsx", "xlsx with damaged XML members")


def test_truncated_workbooks_are_refused(fuzz_db):
    data = (DEMO / "engagement_messy.xlsx").read_bytes()
    rng = random.Random("cut")
    cuts = sorted({rng.randrange(1, len(data)) for _ in range(2 * EXAMPLES)} | {4, 22, len(data) - 1})
    for cut in cuts:
        assert attempt(fuzz_db, "engagement", data[:cut], "survey.xlsx", "truncated zips") == "refused"


def test_random_bytes_with_a_zip_or_ole_header_are_refused(fuzz_db):
    rng = random.Random("noise")
    for i in range(EXAMPLES):
        head = (b"PK\x03\x04", b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", b"", b"\x89PNG\r\n\x1a\n")[i % 4]
        noise = head + rng.randbytes(rng.randint(1, 4096))
        name = ("x.xlsx", "x.xls", "x.csv", "x.csv")[i % 4]
        assert attempt(fuzz_db, "feedback", noise, name, "random bytes") == "refused"


# ---------------------------------------------------------------- encodings


FEEDBACK_TEXT = "Store;Date;CSAT;Comment\nS001;05/03/2024;4;Zoë was très helpful\nS002;25/03/2024;5;Café ok\n"


@pytest.mark.parametrize(
    "encoding, must_load",
    [
        ("utf-8", True),
        ("utf-8-sig", True),
        ("cp1252", True),
        ("latin-1", True),
        ("utf-16", True),  # has a BOM: decoded as UTF-16
        ("utf-16-le", False),
        ("utf-16-be", False),
        ("utf-32", False),
        ("cp500", False),  # EBCDIC
        ("shift_jis", None),
        ("gb18030", None),
        ("mac_roman", None),
        ("cp437", None),
    ],
)
def test_wrong_encodings_load_or_refuse_cleanly(fuzz_db, encoding, must_load):
    """UTF-8 (+BOM) and cp1252 load with the accents intact (DESIGN.md); others load or are refused."""
    data = FEEDBACK_TEXT.encode(encoding, errors="replace")
    outcome = attempt(fuzz_db, "feedback", data, f"feedback-{encoding}.csv", "wrong encodings")
    if must_load is True:
        assert outcome == "loaded"
        pv = ingest.preview(data, "f.csv", "feedback", viewer=ADMIN)
        assert "Zoë was très helpful" in set(pv.sample["comment"])
    elif must_load is False:
        assert outcome == "refused"


# ---------------------------------------------------------------- hypothesis: csv text and xlsx grids

HEADERS = {
    "feedback": ["Store", "Date", "CSAT", "NPS", "Response ID", "Customer", "Channel", "Comment", "Total"],
    "engagement": ["Unit", "Survey date", "Respondent", "eNPS", "Comment", "I feel valued", "My manager helps"],
    "purchases": ["Customer", "Order date", "Amount", "Order ID", "Store"],
    "customers": ["Customer ID", "Name", "Email", "Handle", "Consent", "Consent date"],
}
CELL_TEXT = st.one_of(
    st.sampled_from(
        [
            "S001",
            "S002",
            "S999",
            "2024-03-05",
            "05/03/2024",
            "03/05/2024",
            "45000",
            "4",
            "5",
            "11",
            "-3",
            "4,5",
            "1e308",
            "nan",
            "N/A",
            "-",
            "Total",
            "=1+1",
            "@SUM(A1)",
            "+1",
            "Strongly agree",
            "yes",
            "no",
            "",
            " ",
            '"',
            "C00042",
            "00042",
            "2024-02-30",
            "9999-12-31",
            "0001-01-01",
        ]
    ),
    st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=12),
)


@st.composite
def csv_files(draw):
    kind = draw(st.sampled_from(sorted(HEADERS)))
    header = draw(
        st.lists(st.sampled_from(HEADERS[kind] + ["", "Stоre", "ＣＳＡＴ", "Date\u200b"]), min_size=1, max_size=8)
    )
    rows = draw(st.lists(st.lists(CELL_TEXT, min_size=0, max_size=len(header) + 2), max_size=12))
    delim = draw(st.sampled_from([",", ";", "\t", "|"]))
    quote = draw(st.booleans())

    def cell(v: str) -> str:
        if quote or any(ch in v for ch in (delim, '"', "\n", "\r")):
            return '"' + v.replace('"', '""') + '"'
        return v

    text = "\n".join(delim.join(cell(v) for v in r) for r in [header, *rows])
    return kind, text.encode(draw(st.sampled_from(["utf-8", "utf-8-sig", "cp1252"])), errors="replace")


@settings(
    max_examples=4 * EXAMPLES,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(case=csv_files())
def test_hypothesis_csv_loads_or_refuses_cleanly(fuzz_db, case):
    kind, data = case
    attempt(fuzz_db, kind, data, "upload.csv", "hypothesis csv")


XLSX_CELL = st.one_of(
    st.none(),
    st.integers(-(10**12), 10**12),
    st.floats(allow_nan=True, allow_infinity=False),
    st.datetimes(min_value=datetime(1900, 3, 1), max_value=datetime(2100, 1, 1)),
    st.dates(min_value=date(1900, 3, 1), max_value=date(2100, 1, 1)),
    st.booleans(),
    st.sampled_from(
        [
            "=1/0",
            "=NOW()",
            '=HYPERLINK("http://x","y")',
            "S001",
            "Agree",
            "Strongly disagree",
            "Grand total",
            "N/A",
            "",
            "00042",
        ]
    ),
    st.text(st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")), max_size=10),
)


@settings(
    max_examples=3 * EXAMPLES,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(kind=st.sampled_from(sorted(HEADERS)), data=st.data())
def test_hypothesis_xlsx_grids_load_or_refuse_cleanly(fuzz_db, kind, data):
    header = data.draw(st.lists(st.sampled_from(HEADERS[kind]), min_size=1, max_size=7, unique=True))
    rows = data.draw(st.lists(st.lists(XLSX_CELL, max_size=len(header) + 1), max_size=10))
    title = data.draw(st.sampled_from([[], [["Export of " + kind], []]]))
    try:
        body = xlsx_bytes([*title, header, *rows])
    except (ValueError, TypeError):  # openpyxl refuses some values (illegal XML characters): not an upload
        return
    attempt(fuzz_db, kind, body, "upload.xlsx", "hypothesis xlsx")


# ---------------------------------------------------------------- named hostile workbooks


def _merged(wb):
    wb.active.merge_cells("A2:A3")


def _hidden_first(wb):
    ws = wb.active
    ws.sheet_state = "hidden"
    other = wb.create_sheet("Visible")
    for r in [["Store", "Date", "CSAT"], ["S003", "2024-04-02", 2]]:
        other.append(r)


FEEDBACK_GRID = [["Store", "Date", "CSAT"], ["S001", "2024-03-05", 4], ["S002", "2024-03-06", 5]]
SERIAL = 45356  # Excel's day number for 2024-03-05 (day 0 = 1899-12-30)


@pytest.mark.parametrize(
    "label, rows, setup, expect",
    [
        (
            "formula cells without cached values",
            [["Store", "Date", "CSAT"], ["S001", "2024-03-05", "=2+2"]],
            None,
            None,
        ),
        (
            "formula in a text column",
            [["Store", "Date", "CSAT", "Comment"], ["S001", "2024-03-05", 4, '=HYPERLINK("x")']],
            None,
            None,
        ),
        ("merged cells", FEEDBACK_GRID, _merged, None),
        ("hidden first sheet", FEEDBACK_GRID, _hidden_first, None),
        (
            "Excel serial dates as numbers",
            [["Store", "Date", "CSAT"], ["S001", SERIAL, 4], ["S002", SERIAL + 1, 5]],
            None,
            "loaded",
        ),
        ("Cyrillic lookalike S in Store", [["Ѕtore", "Date", "CSAT"], ["S001", "2024-03-05", 4]], None, None),
        ("fullwidth CSAT header", [["Store", "Date", "ＣＳＡＴ"], ["S001", "2024-03-05", 4]], None, None),
        ("zero-width space in header", [["Store\u200b", "Date", "CSAT"], ["S001", "2024-03-05", 4]], None, None),
        ("header only", [["Store", "Date", "CSAT"]], None, "refused"),
    ],
)
def test_named_hostile_workbooks(fuzz_db, label, rows, setup, expect):
    outcome = attempt(fuzz_db, "feedback", xlsx_bytes(rows, setup=setup), f"{label}.xlsx", "named workbooks")
    if expect:
        assert outcome == expect, label


def test_excel_serial_dates_are_read_as_dates(fuzz_db):
    """A number in a date column of a workbook is Excel's day count (outside reference: day 0 = 1899-12-30)."""
    rows = [["Store", "Date", "CSAT"], ["S001", SERIAL, 4]]
    pv = ingest.preview(xlsx_bytes(rows), "serial.xlsx", "feedback", viewer=ADMIN)
    assert pv.ok, pv.problems
    assert pd_date(pv.sample["date"].iloc[0]) == date(1899, 12, 30) + timedelta(days=SERIAL) == date(2024, 3, 5)


def pd_date(v) -> date:
    return v.date() if hasattr(v, "date") else v


def test_far_away_cell_is_refused_before_parsing(fuzz_db):
    """Found by this fuzzing: a 2 KB workbook with one cell at XFD1048576 made the reader allocate
    ~550 GB and abort the process (a dead dashboard for everyone). Now refused with a message."""
    data = minimal_xlsx(FEEDBACK_ROWS_XML + '<row r="1048576">' + _c("XFD1048576", "x") + "</row>")
    assert len(data) < 4000
    assert attempt(fuzz_db, "feedback", data, "stray.xlsx", "named workbooks") == "refused"
    with pytest.raises(CxStatsError, match="XFD1048576"):
        ingest.preview(data, "stray.xlsx", "feedback", viewer=ADMIN)
    # the limit is about cells, not about one legitimately wide or long sheet
    assert readers.MAX_CELLS >= 5_000_000 * 12


# ---------------------------------------------------------------- heavy cases through the command line


def _wide_csv(cols: int) -> bytes:
    header = ["Store", "Date", "CSAT"] + [f"extra {i}" for i in range(cols - 3)]
    row = ["S001", "2024-03-05", "4"] + [""] * (cols - 3)
    return (",".join(header) + "\n" + ",".join(row) + "\n").encode()


HEAVY = {
    "10,000 columns (csv)": ("feedback", "wide.csv", lambda: _wide_csv(10_000)),
    "10,000 columns (xlsx)": (
        "feedback",
        "wide.xlsx",
        lambda: minimal_xlsx(
            FEEDBACK_ROWS_XML
            + '<row r="3">'
            + _c("A3", "S002")
            + _c("B3", "2024-03-06")
            + _c("C3", 5)
            + _c(f"{readers.column_letter(9_999)}3", "z")
            + "</row>"
        ),
    ),
    "1,000,000 empty rows (csv)": (
        "feedback",
        "empty-rows.csv",
        lambda: b"Store,Date,CSAT\nS001,2024-03-05,4\n" + b",,\n" * 1_000_000,
    ),
    "1,000,000 blank lines (csv)": (
        "feedback",
        "blank-lines.csv",
        lambda: b"Store,Date,CSAT\nS001,2024-03-05,4\n" + b"\n" * 1_000_000,
    ),
    "1,000,000 empty rows (xlsx)": (
        "feedback",
        "empty-rows.xlsx",
        lambda: minimal_xlsx(FEEDBACK_ROWS_XML + '<row r="1000000">' + _c("A1000000", "") + "</row>"),
    ),
    "cell at XFD1048576 (xlsx)": (
        "feedback",
        "stray.xlsx",
        lambda: minimal_xlsx(FEEDBACK_ROWS_XML + '<row r="1048576">' + _c("XFD1048576", "x") + "</row>"),
    ),
    "1,000,000 rows of one column (csv)": ("feedback", "long.csv", lambda: b"Store\n" + b"S001\n" * 1_000_000),
}


@pytest.mark.slow
@pytest.mark.parametrize("label", list(HEAVY))
def test_heavy_inputs_through_the_command_line(tmp_path, cli, fuzz_db, label):
    kind, name, make = HEAVY[label]
    path = tmp_path / name
    path.write_bytes(make())
    db = tmp_path / "heavy.duckdb"
    ingest.import_file(db, "units", DEMO / "units.csv", viewer=ADMIN)
    before = fingerprint(db)
    COUNTS["heavy inputs (command line)"] += 1
    out = cli("import", kind, str(path), db=db, timeout=CLI_TIMEOUT_S)  # TimeoutExpired = a hang: fails
    assert out.returncode in (0, 2), out.stderr[-2000:]
    assert "Traceback" not in out.stderr, out.stderr[-2000:]
    if out.returncode == 2:
        assert out.stderr.startswith("error: ") and len(out.stderr.strip()) > 10
        assert fingerprint(db) == before
        OUTCOMES["refused"] += 1
    else:
        OUTCOMES["loaded"] += 1


def test_mutated_files_through_the_command_line(tmp_path, cli):
    """A few mutated files through `python -m cxstats import`: exit 0 or 2 with a message, no traceback."""
    db = tmp_path / "cli.duckdb"
    ingest.import_file(db, "units", DEMO / "units.csv", viewer=ADMIN)
    rng = random.Random("cli")
    seed = (DEMO / "engagement_messy.xlsx").read_bytes()
    for i in range(3):
        path = tmp_path / f"m{i}.xlsx"
        path.write_bytes(mutate_xlsx_member(seed, rng) if i % 2 else mutate_bytes(seed, rng))
        before = fingerprint(db)
        COUNTS["mutated files (command line)"] += 1
        out = cli("import", "engagement", str(path), db=db, timeout=CLI_TIMEOUT_S)
        assert out.returncode in (0, 2) and "Traceback" not in out.stderr, out.stderr[-2000:]
        if out.returncode == 2:
            assert out.stderr.startswith("error: ")
            assert fingerprint(db) == before
