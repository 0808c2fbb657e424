"""Read an uploaded file into a grid of cells: limits first, then csv/xlsx/xls/ods, header row.

``ingest`` maps and validates the grid; this module only turns bytes into rows and columns, and
refuses, before parsing, what should never be parsed (oversized files, zip bombs, binaries).

Row numbers are kept as the user sees them in a spreadsheet program: the header's row counts
title rows and blank rows above it, and every data row keeps its own number.
"""

from __future__ import annotations

import csv
import io
import re
import zipfile
import zlib
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from . import CxStatsError
from .schema import MISSING_TOKENS

HEADER_SEARCH_ROWS = 30
# xlsx/ods members that inflate more than this are zip bombs, not spreadsheets (real sheets: 5-30x)
MAX_COMPRESSION_RATIO = 200
SPREADSHEET_EXTENSIONS = (".xlsx", ".xlsm", ".xls", ".ods", ".xlsb")
_ZIP_MAGIC = b"PK\x03\x04"
_OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"  # legacy .xls


def _spellings(token: str) -> set[str]:
    """n/a -> n/a, N/A, N/a, n/A ... (every upper/lower mix for short tokens): one is_in pass, no lower()."""
    if len(token) <= 5:
        out = {""}
        for ch in token:
            out = {p + c for p in out for c in {ch.lower(), ch.upper()}}
        return out
    return {token, token.upper(), token.title(), token.capitalize()}


_MISSING = pa.array(sorted(set().union(*(_spellings(t) for t in MISSING_TOKENS))))


@dataclass(frozen=True)
class Grid:
    """The cells of one sheet under its header row.

    ``data`` has positional columns 0..n-1 holding text (csv: missing cells are NA) or the
    spreadsheet's own cell values (xlsx: floats, dates, text; '' when empty).
    """

    header: list[str]
    data: pd.DataFrame
    row_no: np.ndarray
    header_row: int
    fmt: str
    sheets: list[str] = field(default_factory=list)
    sheet: str | None = None
    delimiter: str | None = None
    encoding: str | None = None

    @property
    def decimal_comma(self) -> bool:
        # in a ';' or tab separated file a comma inside a number is the decimal mark
        return self.fmt == "csv" and self.delimiter != ","


def _mb(n: float) -> str:
    return f"{n / 1e6:,.1f} MB" if n >= 100_000 else f"{n / 1e3:,.1f} kB"


def column_letter(i: int) -> str:
    """0 -> 'A', 26 -> 'AA' (how a spreadsheet names a column without a header)."""
    out = ""
    i += 1
    while i:
        i, r = divmod(i - 1, 26)
        out = chr(65 + r) + out
    return out


def read_grid(
    data: bytes,
    file_name: str,
    *,
    sheet: str | None,
    max_bytes: int,
    max_rows: int,
    score_row: Callable[[list[str]], int],
    expected: str,
) -> Grid:
    """Bytes -> Grid, or CxStatsError saying why the file cannot be read.

    ``score_row`` counts how many cells of a row look like known column names: the header is the
    best-scoring row among the first rows (title rows score 0). ``expected`` names a few columns
    for the message when no header is found.
    """
    if not data:
        raise CxStatsError(f"{file_name} is empty; export the sheet again with a header row and data rows")
    if len(data) > max_bytes:
        raise CxStatsError(
            f"{file_name} is {_mb(len(data))}; the limit is {_mb(max_bytes)} (setting max_file_mb): "
            "split the file or ask an admin to raise the limit"
        )
    ext = ("." + file_name.rsplit(".", 1)[-1].lower()) if "." in file_name else ""
    if data.startswith(_ZIP_MAGIC) or data.startswith(_OLE_MAGIC):
        if data.startswith(_ZIP_MAGIC):
            fmt = _check_zip(data, file_name, max_bytes)
        else:
            fmt = "xls"
        return _read_workbook(data, file_name, fmt, sheet, max_rows, score_row, expected)
    if ext in SPREADSHEET_EXTENSIONS:
        raise CxStatsError(
            f"{file_name} is not a valid {ext} workbook (damaged, or another kind of file renamed); "
            "open it in your spreadsheet program and save it again as .xlsx or .csv"
        )
    return _read_csv(data, file_name, max_rows, score_row, expected)


# ---------------------------------------------------------------- workbooks


def _check_zip(data: bytes, file_name: str, max_bytes: int) -> str:
    """Inspect sizes in the zip directory before any XML is inflated (zip bombs)."""
    try:
        zf = zipfile.ZipFile(io.BytesIO(data))
        infos = zf.infolist()
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise CxStatsError(
            f"{file_name} is damaged or truncated (not a readable .xlsx): save it again from your spreadsheet program"
        ) from exc
    names = {i.filename for i in infos}
    if "xl/workbook.xml" in names or "xl/workbook.bin" in names:
        fmt = "xlsx"
    elif "content.xml" in names:
        fmt = "ods"
    else:
        raise CxStatsError(f"{file_name} is a zip archive, not a spreadsheet; upload the .xlsx or .csv itself")
    total = sum(i.file_size for i in infos)
    # a sheet's XML is several times larger than its cells; 10x the upload limit is plenty
    if total > 10 * max_bytes:
        raise CxStatsError(
            f"{file_name} would inflate to {_mb(total)} when opened (limit {_mb(10 * max_bytes)}); "
            "it is too large or not a genuine spreadsheet"
        )
    for i in infos:
        if i.file_size > 1_000_000 and i.file_size > MAX_COMPRESSION_RATIO * max(i.compress_size, 1):
            raise CxStatsError(
                f"{file_name} looks like a zip bomb: {i.filename} inflates {i.file_size / max(i.compress_size, 1):,.0f}x "
                f"(limit {MAX_COMPRESSION_RATIO}x); refused without opening it"
            )
    if fmt == "xlsx":
        _check_extent(zf, infos, file_name)
    return fmt


# The reader allocates every cell from A1 to the farthest one: a 2 KB sheet with one cell at
# XFD1048576 asks for ~500 GB and aborts the whole process (SECURITY.md), so the extent is read
# from the sheet XML before the reader sees it.
MAX_CELLS = 60_000_000
_CELL_COL = re.compile(rb'<(?:\w+:)?c\s[^>]*?\br="([A-Z]{1,3})[0-9]')
_ROW_NO = re.compile(rb'<(?:\w+:)?(?:row|c)\s[^>]*?\br="[A-Z]{0,3}([0-9]{1,9})"')


def _column_number(letters: bytes) -> int:
    n = 0
    for ch in letters:
        n = n * 26 + ch - 64
    return n


# Cheap upper bound first (one literal-prefix scan that matches only multi-letter columns and
# seven-digit rows, so an ordinary sheet yields almost no matches); the exact scan runs only when
# the bound is over the limit. Over-matching (e.g. a ref="..." attribute) only raises the bound.
_WIDE_COL = re.compile(rb'r="([A-Z]{2,3})[0-9]')
_FAR_ROW = re.compile(rb'r="[A-Z]{0,3}([0-9]{7,})"')


def _extent_bound(zf: zipfile.ZipFile, info) -> int:
    max_col, max_row, tail = 26, 999_999, b""
    with zf.open(info) as f:
        while chunk := f.read(1 << 22):
            buf = tail + chunk
            wide = _WIDE_COL.findall(buf)
            if wide:
                max_col = max(max_col, max(_column_number(c) for c in set(wide)))
            far = _FAR_ROW.findall(buf)
            if far:
                max_row = max(max_row, max(map(int, far)))
            tail = buf[-64:]
    return max_col * max_row


def _check_extent(zf: zipfile.ZipFile, infos, file_name: str) -> None:
    for info in infos:
        if not (info.filename.startswith("xl/worksheets/") and info.filename.endswith(".xml")):
            continue
        try:
            if _extent_bound(zf, info) <= MAX_CELLS:
                continue
        except (zipfile.BadZipFile, OSError, ValueError, EOFError, NotImplementedError, zlib.error) as exc:
            raise CxStatsError(
                f"{file_name} is damaged or truncated (not a readable .xlsx): save it again from your spreadsheet program"
            ) from exc
        cols: set[bytes] = set()
        max_row = 0
        tail = b""
        try:
            with zf.open(info) as f:
                while chunk := f.read(1 << 22):
                    buf = tail + chunk
                    cols.update(_CELL_COL.findall(buf))
                    rows = _ROW_NO.findall(buf)
                    if rows:
                        max_row = max(max_row, max(map(int, rows)))
                    tail = buf[-4096:]  # a tag cut by the chunk boundary is matched in the next round
        except (zipfile.BadZipFile, OSError, ValueError, EOFError, NotImplementedError, zlib.error) as exc:
            raise CxStatsError(
                f"{file_name} is damaged or truncated (not a readable .xlsx): save it again from your spreadsheet program"
            ) from exc
        max_col = max((_column_number(c) for c in cols), default=0)
        if max_row * max_col > MAX_CELLS:
            sheet = info.filename.rsplit("/", 1)[-1]
            raise CxStatsError(
                f"{file_name}: {sheet} spans {max_row:,} rows x {max_col:,} columns "
                f"(up to cell {_cell_name(max_col, max_row)}); the limit is {MAX_CELLS:,} cells: delete the "
                "stray cells far below or right of the data (or split the file) and save it again"
            )


def _cell_name(col: int, row: int) -> str:
    return f"{column_letter(col - 1)}{row}"


def _cell_text(v) -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        return f"{v:g}" if v == v else ""
    return str(v).strip()


def _read_workbook(data, file_name, fmt, sheet, max_rows, score_row, expected) -> Grid:
    import defusedxml

    defusedxml.defuse_stdlib()  # before any XML parser in this process sees the file
    import python_calamine as calamine

    try:
        wb = calamine.CalamineWorkbook.from_filelike(io.BytesIO(data))
        names = list(wb.sheet_names)
    except Exception as exc:  # CalamineError, ZipError, XmlError, PasswordError...
        raise CxStatsError(
            f"{file_name} cannot be read as a workbook ({type(exc).__name__}): it may be damaged, truncated or "
            "password-protected; save it again as .xlsx or .csv"
        ) from exc
    if sheet is not None and sheet not in names:
        raise CxStatsError(f"{file_name} has no sheet {sheet!r}; its sheets are: {', '.join(names)}")
    candidates = [sheet] if sheet is not None else names
    chosen = None
    rows: list[list] = []
    try:
        for name in candidates:
            ws = wb.get_sheet_by_name(name)
            if ws.height == 0:
                continue
            if ws.height > max_rows + HEADER_SEARCH_ROWS:
                raise CxStatsError(
                    f"sheet {name!r} has {ws.height:,} rows; the limit is {max_rows:,} (setting max_rows): "
                    "split the file or ask an admin to raise the limit"
                )
            rows = ws.to_python(skip_empty_area=False)
            if any(c != "" for r in rows for c in r):
                chosen = name
                break
    except CxStatsError:
        raise
    except Exception as exc:
        raise CxStatsError(
            f"{file_name} cannot be read as a workbook ({type(exc).__name__}): it may be damaged or truncated"
        ) from exc
    if chosen is None:
        which = f"sheet {sheet!r}" if sheet is not None else "every sheet"
        raise CxStatsError(f"{file_name}: {which} is empty; nothing to load")
    h = _find_header([[_cell_text(c) for c in r] for r in rows[:HEADER_SEARCH_ROWS]], score_row, file_name, expected)
    header = [_cell_text(c) for c in rows[h]]
    body = rows[h + 1:]
    width = len(header)
    frame = pd.DataFrame(body, columns=range(width), dtype=object) if body else pd.DataFrame(
        {i: pd.Series([], dtype=object) for i in range(width)})
    return Grid(header=header, data=frame, row_no=np.arange(h + 2, h + 2 + len(body)), header_row=h + 1,
                fmt=fmt, sheets=names, sheet=chosen)


def _find_header(first_rows: list[list[str]], score_row, file_name: str, expected: str) -> int:
    best, best_score = None, 0
    for i, cells in enumerate(first_rows):
        s = score_row(cells)
        if s > best_score:
            best, best_score = i, s
    if best is None:
        raise CxStatsError(
            f"{file_name}: no header row found in the first {HEADER_SEARCH_ROWS} rows (expected column names such as "
            f"{expected}); is this the right kind of file? Otherwise map columns with --map SOURCE=FIELD"
        )
    return best


# ---------------------------------------------------------------- csv


def _decode(data: bytes, file_name: str) -> tuple[str, str]:
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        return data.decode("utf-16"), "utf-16"
    if b"\x00" in data[:65536]:
        raise CxStatsError(
            f"{file_name} looks like a binary file, not a CSV or spreadsheet; upload a .csv, .xlsx, .xls or .ods"
        )
    try:
        return data.decode("utf-8-sig"), "utf-8"
    except UnicodeDecodeError:
        pass
    try:
        return data.decode("cp1252"), "cp1252"
    except UnicodeDecodeError:
        return data.decode("latin-1"), "latin-1"


def _sniff_delimiter(lines: list[str]) -> str:
    """The delimiter giving the most columns consistently over the sample's data lines."""
    tail = [ln for ln in lines if ln.strip()][-40:]
    best, best_width = ",", 0
    for d in ("\t", ";", ","):
        widths = [len(r) for r in csv.reader(tail, delimiter=d)]
        if not widths:
            continue
        mode = max(set(widths), key=widths.count)
        if mode >= 2 and widths.count(mode) >= 0.8 * len(widths) and mode > best_width:
            best, best_width = d, mode
    return best


def _read_csv(data, file_name, max_rows, score_row, expected) -> Grid:
    text, encoding = _decode(data, file_name)
    same_bytes = encoding == "utf-8" and "\r" not in text
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    if text.count("\n") > max_rows + HEADER_SEARCH_ROWS + 1:
        raise CxStatsError(
            f"{file_name} has about {text.count(chr(10)):,} rows; the limit is {max_rows:,} (setting max_rows): "
            "split the file or ask an admin to raise the limit"
        )
    sample = text[:262144]
    sample_lines = sample.split("\n")
    if len(sample) < len(text):
        sample_lines = sample_lines[:-1]  # the last one may be cut
    if not any(ln.strip() for ln in sample_lines):
        raise CxStatsError(f"{file_name} is empty; export the sheet again with a header row and data rows")
    delim = _sniff_delimiter(sample_lines[:400])
    # records of the first lines, blank lines included, so row numbers match a spreadsheet view
    reader = csv.reader(iter(ln + "\n" for ln in sample_lines[:HEADER_SEARCH_ROWS * 4]), delimiter=delim)
    first: list[list[str]] = []
    starts: list[int] = []
    for _ in range(HEADER_SEARCH_ROWS):
        line_before = reader.line_num
        try:
            rec = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            raise CxStatsError(f"{file_name}: cannot read row {len(first) + 1} as CSV ({exc})") from exc
        starts.append(line_before)
        first.append([c.strip() for c in rec])
    h = _find_header(first, score_row, file_name, expected)
    header = first[h]
    while header and not header[-1]:
        header.pop()  # trailing empty cells of a header row written by a spreadsheet
    offset = sum(len(ln) + 1 for ln in sample_lines[: starts[h]])
    rest = text[offset:]
    frame = None
    if not re.search(r"\n[ \t]*\n", rest.rstrip("\n \t")):
        if same_bytes:  # skip re-encoding: the header's byte offset is that of its text prefix
            start = (3 if data.startswith(b"\xef\xbb\xbf") else 0) + len(text[:offset].encode("utf-8"))
            frame = _arrow_frame(memoryview(data)[start:], delim, len(header))
        else:
            frame = _arrow_frame(rest.encode("utf-8"), delim, len(header))
    if frame is None:
        frame = _python_frame(rest, delim, len(header), file_name, h + 1)
    header = header + [""] * (frame.shape[1] - len(header))
    body = frame.iloc[1:].reset_index(drop=True)
    body.columns = range(body.shape[1])
    return Grid(header=header, data=body, row_no=np.arange(h + 2, h + 2 + len(body)), header_row=h + 1,
                fmt="csv", delimiter=delim, encoding=encoding)


def _clean_text_column(col: pa.Array | pa.ChunkedArray) -> pa.ChunkedArray:
    """Trim cells; blank cells and missing tokens (N/A, -, null...) become missing."""
    col = pc.utf8_trim_whitespace(col)
    return pc.if_else(pc.is_in(col, value_set=_MISSING), pa.scalar(None, pa.string()), col)


def _arrow_frame(rest, delim: str, width: int) -> pd.DataFrame | None:
    """Fast path (multi-threaded Arrow reader); None when rows are ragged (then the Python path reports)."""
    names = [f"c{i}" for i in range(width)]
    try:
        table = pacsv.read_csv(
            pa.BufferReader(pa.py_buffer(rest)),
            read_options=pacsv.ReadOptions(column_names=names, block_size=8 << 20),
            parse_options=pacsv.ParseOptions(delimiter=delim, newlines_in_values=True),
            convert_options=pacsv.ConvertOptions(column_types={n: pa.string() for n in names},
                                                 strings_can_be_null=False, quoted_strings_can_be_null=False),
        )
    except (pa.ArrowInvalid, pa.ArrowException):
        return None
    return _to_frame(table)


def _to_frame(table: pa.Table) -> pd.DataFrame:
    cleaned = pa.table({str(i): _clean_text_column(table.column(i)) for i in range(table.num_columns)})
    frame = cleaned.to_pandas()
    frame.columns = range(frame.shape[1])
    return frame


def _python_frame(rest: str, delim: str, width: int, file_name: str, header_row: int) -> pd.DataFrame:
    """Slow path: keeps blank rows (row numbers) and names the row whose cells do not fit."""
    records: list = []
    reader = csv.reader(io.StringIO(rest), delimiter=delim)
    try:
        for rec in reader:
            if len(rec) > width:
                extra = rec[width:]
                if any(c.strip() for c in extra):
                    raise CxStatsError(
                        f"{file_name}: row {header_row + len(records)} has {len(rec)} cells but the header has "
                        f"{width}; check the delimiter and the quoting of that row"
                    )
                rec = rec[:width]
            elif len(rec) < width:
                rec = rec + [""] * (width - len(rec))
            records.append(rec)
    except csv.Error as exc:
        raise CxStatsError(f"{file_name}: cannot read row {header_row + len(records)} as CSV ({exc})") from exc
    if not records:
        records = [[""] * width]
    return _to_frame(pa.table({f"c{i}": pa.array([r[i] for r in records], pa.string()) for i in range(width)}))
