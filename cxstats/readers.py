"""Read an uploaded file into a grid of cells: limits first, then csv/xlsx/xls/ods, header row.

``ingest`` maps and validates the grid; this module only turns bytes into rows and columns, and
refuses, before parsing, what should never be parsed (oversized files, zip bombs, binaries).

Row numbers are kept as the user sees them in a spreadsheet program: the header's row counts
title rows and blank rows above it, and every data row keeps its own number.
"""

from __future__ import annotations

import csv
import gc
import io
import queue
import re
import threading
import zipfile
import zlib
from contextlib import contextmanager
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
            fmt = _check_zip(data, file_name, max_bytes, max_rows)
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


def _check_zip(data: bytes, file_name: str, max_bytes: int, max_rows: int | None = None) -> str:
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
        _check_extent(zf, infos, file_name, max_rows)
    else:
        _check_ods_extent(zf, file_name, max_rows)
    return fmt


# The reader allocates every cell from A1 to the farthest one: a 2 KB sheet with one cell at
# XFD1048576 asks for ~500 GB and aborts the whole process (SECURITY.md, issue 7), and so does a sheet
# whose cells carry no r= attribute at all (one row of 16,380 empty <c/> before a value: ~52 GB, issue
# 18). So before any reader builds cells, every sheet's XML is streamed (zipfile, 1 MB pieces) and its
# extent counted the way the reader places cells: a cell with r= sits there; a cell without takes the
# next column of its row (a row ends at </row>); a row without r= follows the one before. The count
# is a C-speed byte scan (bytes.count / split per chunk, regexes only for r= values); it is an upper
# bound that is exact for sheets written all with r= or all without (the usual chunk, every cell
# `<c r="A1"` and every row `<row r="1"`, takes a quicker count of the same: _XlsxExtent._feed_plain).
# The sheet is refused, while
# streaming, as soon as it passes the row limit, and at the end when it spans more than MAX_CELLS.
# .ods content is counted the same way (table:table-row / table:table-cell with their
# number-rows-repeated / number-columns-repeated; trailing empty repeats do not count, as in the reader).
MAX_CELLS = 60_000_000
# 1 MB pieces: the quick count's passes over a piece then stay in a core's cache (4 MB pieces: 0.56 s
# of CPU for the benchmark's 121 MB sheet, 1 MB: 0.41 s)
_CHUNK = 1 << 20
_MAX_TAG = 16 << 20  # one XML tag or text longer than this: no spreadsheet program writes that
_MAX_ODS_ROW = 32 << 20
_ZIP_ERRORS = (zipfile.BadZipFile, OSError, ValueError, EOFError, NotImplementedError, zlib.error)
_R_ATTR = rb"""r\s*=\s*["']"""  # also matches xr="..." and the like: that only raises the bound
_ANY_REF = re.compile(_R_ATTR)
_CELL_REF = re.compile(_R_ATTR + rb"([A-Za-z]{1,3})([0-9]{1,10})")
_ROW_REF = re.compile(_R_ATTR + rb"([0-9]{1,10})")
# cheap upper bound first: only multi-letter columns and seven-digit rows match (an ordinary sheet
# yields almost none); the exact scan of every r= runs only when the bound is over the limit
_WIDE_COL = re.compile(_R_ATTR + rb"([A-Za-z]{2,3})[0-9]")
_FAR_ROW = re.compile(_R_ATTR + rb"[A-Za-z]{0,3}([0-9]{7,})")
# tags written with a namespace prefix (<x:c>, which the reader reads as <c>) or a tab or line break
# after the name are rewritten to the plain spelling before counting
_ODD_SPACE = re.compile(rb"<(/?)(?:[A-Za-z_][\w.\-]*:)?(c|row)[\t\r\n ]")
_ODD_END = re.compile(rb"<(/?)[A-Za-z_][\w.\-]*:(c|row)(?=[/>])")


def _plain_tags(buf: bytes, arr: np.ndarray) -> tuple[bytes, np.ndarray]:
    """(buf, its bytes as an array padded with 8 NULs), prefixes taken off row and cell tags."""
    colon = np.flatnonzero(arr[:-8] == 58)
    if len(colon):
        b1, b2, b3, b4 = (arr[colon + i] for i in range(1, 5))
        if (((b1 == 99) & _delimiter(b2)) | ((b1 == 114) & (b2 == 111) & (b3 == 119) & _delimiter(b4))).any():
            buf = _ODD_END.sub(rb"<\1\2", _ODD_SPACE.sub(rb"<\1\2 ", buf))
            arr = np.frombuffer(buf + b"\0" * 8, np.uint8)
    return buf, arr


def _column_number(letters: bytes) -> int:
    n = 0
    for ch in letters.upper():
        n = n * 26 + ch - 64
    return n


def _refuse_rows(file_name: str, sheet: str, rows: int, max_rows: int) -> CxStatsError:
    return CxStatsError(
        f"{file_name}: {sheet} has more than {rows:,} rows; the limit is {max_rows:,} (setting max_rows): "
        "split the file or ask an admin to raise the limit"
    )


def _refuse_cells(file_name: str, sheet: str, max_row: int, max_col: int, so_far: bool = False) -> CxStatsError:
    """``so_far``: refused while streaming, so the extent is what was counted up to there (at least)."""
    return CxStatsError(
        f"{file_name}: {sheet} spans {'at least ' if so_far else ''}{max_row:,} rows x {max_col:,} columns "
        f"(up to cell {_cell_name(max_col, max_row)}{' or farther' if so_far else ''}); the limit is {MAX_CELLS:,} cells: delete the "
        "stray cells far below or right of the data (or split the file) and save it again"
    )


def _damaged(file_name: str, exc: Exception) -> CxStatsError:
    err = CxStatsError(
        f"{file_name} is damaged or truncated (not a readable spreadsheet): save it again from your spreadsheet program"
    )
    err.__cause__ = exc
    return err


def _pieces(zf: zipfile.ZipFile, info, file_name: str):
    """The member's bytes in pieces, each cut before its last '<', so that no tag is ever split:
    (head, chunk, end) for the piece head + chunk[:end], kept apart so that it is copied only once."""
    tail = b""
    with zf.open(info) as f:
        while chunk := f.read(_CHUNK):
            end = chunk.rfind(b"<")
            head = tail
            if end <= 0:  # no tag starts inside this read: cut the tail and the read together
                chunk = tail + chunk
                end, head = chunk.rfind(b"<"), b""
                if end <= 0:
                    if len(chunk) > _MAX_TAG:
                        raise CxStatsError(
                            f"{file_name}: {info.filename} holds a single XML tag or text of more "
                            "than 16 MB; it is not a genuine spreadsheet"
                        )
                    tail = chunk
                    continue
            yield head, chunk, end
            tail = chunk[end:]
    if tail:
        yield b"", tail, len(tail)


def _chunks(zf: zipfile.ZipFile, info, file_name: str):
    """_pieces as bytes."""
    for head, chunk, end in _pieces(zf, info, file_name):
        yield head + chunk[:end]


def _padded_chunks(zf: zipfile.ZipFile, info, file_name: str):
    """_pieces as (array, n, colon): the piece's n bytes at array[8 : 8 + n] with 8 NUL bytes before
    and 16 after, and whether it holds a ':'. Copied once, by numpy, which lets go of the GIL: this
    runs in _prefetched's thread while the caller counts the piece before."""
    for head, chunk, end in _pieces(zf, info, file_name):
        yield _padded(chunk, head, end), len(head) + end, b":" in head or chunk.find(b":", 0, end) >= 0


def _prefetched(items, depth: int = 2):
    """The items of an iterator, made in a background thread up to ``depth`` ahead. For the extent
    check: zlib's inflating and the chunk copies (both release the GIL) run there while the caller
    counts the chunk before, so a sheet is checked in about the time of the slower half instead of
    both halves' sum. An exception raised while making an item is raised here, in the caller; a caller
    that stops early (a refusal) stops the thread before it returns."""
    q: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(entry) -> bool:
        while not stop.is_set():
            try:
                q.put(entry, timeout=0.05)
                return True
            except queue.Full:
                continue
        return False

    def make() -> None:
        try:
            for item in items:
                if not put((True, item)):
                    return
            put((False, None))
        except BaseException as exc:  # handed to the caller, who raises it
            put((False, exc))

    worker = threading.Thread(target=make, name="cxstats-inflate", daemon=True)
    try:
        worker.start()
    except RuntimeError:  # no thread to be had (a worker under a tight memory cap): make them here
        yield from items
        return
    try:
        while True:
            more, item = q.get()
            if not more:
                if item is not None:
                    raise item
                return
            yield item
    finally:
        stop.set()
        worker.join()


def _padded(buf: bytes, head: bytes = b"", end: int | None = None) -> np.ndarray:
    """The bytes head + buf[:end] as an array with 8 NUL bytes before and 16 after (what _XlsxExtent
    reads), copied once, by numpy."""
    end = len(buf) if end is None else end
    n = len(head) + end
    arr = np.empty(n + 24, np.uint8)
    arr[:8] = 0
    arr[8 : 8 + len(head)] = np.frombuffer(head, np.uint8)
    arr[8 + len(head) : 8 + n] = np.frombuffer(buf, np.uint8, count=end)
    arr[8 + n :] = 0
    return arr


def _bytes_table(values: bytes) -> np.ndarray:
    t = np.zeros(256, dtype=bool)
    t[list(values)] = True
    return t


_SPACE = _bytes_table(b" \t\n\x0b\x0c\r")  # what \\s matches in a bytes regex
_LETTER = _bytes_table(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")
_C_QUOTED, _ROW_QUOTED = (int.from_bytes(t, "little") for t in (b'<c r="', b'<row r="'))


def _words(arr: np.ndarray) -> np.ndarray:
    """words[i] = bytes i..i+7 of arr as one little-endian integer (a view, no copy)."""
    return np.ndarray((len(arr) - 7,), dtype="<u8", buffer=arr, strides=(1,))


def _pairs(arr: np.ndarray, n: int, pair: bytes) -> int:
    """How often the two bytes ``pair`` occur in arr[8 : 8 + n] (arr padded as _padded makes it): the
    bytes read as 16-bit words at even and at odd offsets, two contiguous passes instead of three
    byte-wise ones."""
    m = (n + 1) // 2 * 2
    word = int.from_bytes(pair, "little")
    return sum(int(np.count_nonzero(arr[s : s + m].view("<u2") == word)) for s in (8, 9))


def _quote_in_7(v: np.ndarray) -> np.ndarray:
    """For each integer: one of its 7 low bytes is '"' (the has-a-zero-byte test on v ^ '""...')."""
    x = (v ^ np.uint64(0x2222222222222222)) | np.uint64(0xFF << 56)
    return ((x - np.uint64(0x0101010101010101)) & ~x & np.uint64(0x8080808080808080)) != 0


def _delimiter(x: np.ndarray) -> np.ndarray:
    """After a tag name: space, tab, CR, LF, '>' or '/'."""
    return (x == 32) | (x == 62) | (x == 47) | (x == 9) | (x == 10) | (x == 13)


class _XlsxExtent:
    """Streaming count of one worksheet: explicit r= maxima, r-less rows, r-less cells per row."""

    def __init__(self):
        self.rows = 0  # row start tags
        self.rless_rows = 0
        self.open_cells = 0  # r-less cells since the last </row>
        self.max_rless_cells = 0
        self.max_col, self.max_row = 0, 0  # cheap bounds of explicit references (exact when large)
        self.any_ref = False  # an r= attribute seen anywhere (else the r-less count is exact)
        self.misses = 0  # chunks in a row that the quick path left to the full scan

    def feed(self, buf: bytes) -> None:
        """Count one chunk (as _chunks cuts them)."""
        self.feed_padded(_padded(buf), len(buf), b":" in buf)

    def feed_padded(self, padded: np.ndarray, n: int, colon: bool) -> None:
        """Count one chunk given as _padded_chunks makes it."""
        buf: bytes | None = None
        if colon:
            buf, arr = _plain_tags(padded[8 : 8 + n].tobytes(), padded[8:])
            if arr.base is not padded:  # rewritten
                padded, n = _padded(buf), len(buf)
        if self.open_cells == 0 and self.misses < 2:  # two chunks in a row missed: the sheet is not plain
            if self._feed_plain(padded[8 : 8 + n], padded):
                self.misses = 0
                return
            self.misses += 1
        if buf is None:
            buf = padded[8 : 8 + n].tobytes()
        arr = padded[8:]
        lt = np.flatnonzero(arr[: len(buf)] == 60)  # every '<'
        a1, a2, a3, a4, a5 = (arr[lt + i] for i in range(1, 6))
        is_c = (a1 == 99) & _delimiter(a2)  # <c
        is_row = (a1 == 114) & (a2 == 111) & (a3 == 119) & _delimiter(a4)  # <row
        is_end = (a1 == 47) & (a2 == 114) & (a3 == 111) & (a4 == 119) & _delimiter(a5)  # </row
        c_ref = is_c & (a2 == 32) & (a3 == 114) & (a4 == 61)  # <c r=  (other spellings count as r-less)
        row_ref = is_row & (a4 == 32) & (a5 == 114) & (arr[lt + 6] == 61)  # <row r=
        rows = int(is_row.sum())
        self.rows += rows
        self.rless_rows += rows - int(row_ref.sum())
        cells = lt[is_c & ~c_ref]
        ends = lt[is_end]
        if len(ends):
            k = np.searchsorted(cells, ends)
            per_row = np.diff(k, prepend=0)
            self.max_rless_cells = max(self.max_rless_cells, int(per_row[0]) + self.open_cells, int(per_row.max()))
            self.open_cells = len(cells) - int(k[-1])
        else:
            self.open_cells += len(cells)
        if not self.any_ref and (c_ref.any() or row_ref.any() or _ANY_REF.search(buf)):
            self.any_ref = True
        if self.any_ref:
            wide = _WIDE_COL.findall(buf)
            if wide:
                self.max_col = max(self.max_col, max(_column_number(c) for c in set(wide)))
            far = _FAR_ROW.findall(buf)
            if far:
                self.max_row = max(self.max_row, max(map(int, far)))

    def _feed_plain(self, buf, arr: np.ndarray) -> bool:
        """The usual chunk, counted from its '=' signs (a few passes at C speed instead of the tag
        scan below): every cell written `<c r="`, every row `<row r="`, no other r= and no space
        around any '=', columns of one letter and rows of at most 6 digits. Then the chunk adds its
        rows and nothing else: no r-less row or cell, and _WIDE_COL / _FAR_ROW would find nothing
        (each of their matches starts at an r= followed by a quote). False (nothing counted) for any
        other chunk: the full scan takes it. ``arr`` is buf with 8 NUL bytes before and 16 after."""
        n = len(buf)
        eq = np.flatnonzero(arr[8 : n + 8] == 61) + 8  # every '=' (positions in arr)
        before, after = arr[eq - 1], arr[eq + 1]
        if (_SPACE[before] | _SPACE[after]).any():  # r = "..." and the like
            return False
        r_eq = int(np.count_nonzero((before == 114) & ((after == 34) | (after == 39))))  # what _ANY_REF matches
        around = _words(arr)[eq - 6]  # the 6 bytes before each '=', the '=' and the byte after it
        cell_at = eq[(around >> 16) == _C_QUOTED] + 2  # the first byte of each reference
        row_at = eq[around == _ROW_QUOTED] + 2
        if (
            r_eq != len(cell_at) + len(row_at)
            or _pairs(arr, n, b"<c") != len(cell_at)
            or _pairs(arr, n, b"<r") != len(row_at)
        ):
            return False  # an r-less or otherwise written cell or row, <col, <r>, r= elsewhere (xr=, text)
        # cell references of one letter (AA1 and wider go to the full scan), rows of digits, and no 7
        # bytes after the letter without the closing quote (7 digits: row 1,000,000 or later)
        if not _LETTER[arr[cell_at]].all() or _LETTER[arr[cell_at + 1]].any() or _LETTER[arr[row_at]].any():
            return False
        words = _words(arr)
        if not (_quote_in_7(words[cell_at + 1]).all() and _quote_in_7(words[row_at]).all()):
            return False
        self.rows += len(row_at)
        if len(cell_at) or len(row_at):
            self.any_ref = True
        return True

    def bound(self, max_col: int, max_row: int) -> tuple[int, int]:
        """(rows, columns) the reader may allocate, given the explicit maxima."""
        cells = max(self.max_rless_cells, self.open_cells)
        rows = max_row + self.rless_rows + (1 if self.rless_rows and max_row else 0)
        return rows, max_col + cells


def _exact_refs(zf: zipfile.ZipFile, info, file_name: str) -> tuple[int, int]:
    cols: set[bytes] = set()
    max_row = 0
    for buf in _chunks(zf, info, file_name):
        buf, _ = _plain_tags(buf, np.frombuffer(buf + b"\0" * 8, np.uint8))
        for letters, digits in _CELL_REF.findall(buf):
            cols.add(letters)
            max_row = max(max_row, int(digits))
        rows = _ROW_REF.findall(buf)
        if rows:
            max_row = max(max_row, max(map(int, rows)))
    return max((_column_number(c) for c in cols), default=0), max_row


def _check_extent(zf: zipfile.ZipFile, infos, file_name: str, max_rows: int | None = None) -> None:
    """Refuse an xlsx whose sheets the reader would build too large (see the comment above)."""
    limit = max_rows or 0  # 0: no row limit
    row_limit = (limit + HEADER_SEARCH_ROWS) if limit else None
    for info in infos:
        if not (info.filename.startswith("xl/worksheets/") and info.filename.endswith(".xml")):
            continue
        sheet = info.filename.rsplit("/", 1)[-1]
        ext = _XlsxExtent()
        try:
            for chunk in _prefetched(_padded_chunks(zf, info, file_name)):
                ext.feed_padded(*chunk)
                if row_limit and ext.rows > row_limit:
                    raise _refuse_rows(file_name, sheet, row_limit, limit)
                if not ext.any_ref:  # no r= anywhere so far: the count is exact, refuse at once
                    rows, cols = ext.bound(0, 0)
                    if rows * cols > MAX_CELLS:
                        raise _refuse_cells(file_name, sheet, rows, cols, so_far=True)
            if not ext.any_ref:
                rows, cols = ext.bound(0, 0)
            else:
                rows, cols = ext.bound(max(ext.max_col, 26), max(ext.max_row, 999_999))
                if rows * cols > MAX_CELLS or (row_limit and rows > row_limit):
                    rows, cols = ext.bound(*_exact_refs(zf, info, file_name))
        except CxStatsError:
            raise
        except _ZIP_ERRORS as exc:
            raise _damaged(file_name, exc) from exc
        if row_limit and rows > row_limit:
            raise _refuse_rows(file_name, sheet, row_limit, limit)
        if rows * cols > MAX_CELLS:
            raise _refuse_cells(file_name, sheet, rows, cols)


# .ods: the reader (calamine) matches the literal prefix "table:"; it expands repeated rows and cells
# that hold a value and drops trailing empty ones (LibreOffice ends every sheet with ~1M repeated empty
# rows of 1,024 empty cells)
_ODS_ROW = b"<table:table-row"
_ODS_REPEAT = re.compile(rb"""number-(rows|columns)-repeated\s*=\s*["']\s*([0-9]{1,12})""")
_ODS_CELL = re.compile(rb"<table:(?:covered-)?table-cell(?=[\s/>])([^>]*?)(/?)>")


class _OdsExtent:
    def __init__(self, file_name: str):
        self.file_name = file_name
        self.row_tags = 0
        self.rows = 0  # rows so far in this table, repeats expanded
        self.used_rows = 0  # up to the last row holding a value
        self.used_cols = 0
        self.worst_rows = 0  # over the tables finished so far
        self.worst = (0, 0)  # (rows, cols) of the finished table with the most cells
        self.open = b""  # the current row's start tag and cells, until the next row starts

    def _row(self, seg: bytes) -> None:
        """One row: its start tag's attributes, then its cells (and whatever follows them)."""
        end = seg.find(b">")
        rep = 1
        for what, n in _ODS_REPEAT.findall(seg[: end + 1]):
            if what == b"rows":
                rep = max(1, int(n))
        body = seg[end + 1 :]
        if b"value-type" in body:
            if b"repeated" in body:
                cols = used = 0
                for attrs, _closed in _ODS_CELL.findall(body):
                    n = 1
                    for what, k in _ODS_REPEAT.findall(attrs):
                        if what == b"columns":
                            n = max(1, int(k))
                    cols += n
                    if b"value-type" in attrs:
                        used = cols
            else:  # every cell tag counts (trailing empty ones too: only raises the bound)
                used = body.count(b"<table:table-cell") + body.count(b"<table:covered-table-cell")
            self.used_cols = max(self.used_cols, used)
            self.used_rows = self.rows + rep
        self.rows += rep
        if b"<table:table " in body or b"<table:table>" in body:  # the next sheet starts here
            self._end_table()

    def _end_table(self) -> None:
        self.worst_rows = max(self.worst_rows, self.used_rows)
        if self.used_rows * self.used_cols > self.worst[0] * self.worst[1]:
            self.worst = (self.used_rows, self.used_cols)
        self.rows = self.used_rows = self.used_cols = 0

    def feed(self, buf: bytes) -> None:
        if b"repeated" in buf or b"<table:table " in buf or b"<table:table>" in buf or b"repeated" in self.open:
            self._feed_rows(buf)
        else:
            self._feed_plain(buf)
        if len(self.open) > _MAX_ODS_ROW:
            raise CxStatsError(
                f"{self.file_name}: one row of content.xml holds more than 32 MB of XML; "
                "it is not a genuine spreadsheet"
            )

    def _feed_rows(self, buf: bytes) -> None:
        """Row by row (chunks with repeats or a new sheet)."""
        segs = buf.split(_ODS_ROW)
        segs[0] = self.open + segs[0]
        self.open = segs.pop()
        for g in segs:
            if g[:1] in _TAG_END:  # a row, not <table:table-rows>, -row-group or what precedes the first row
                self.row_tags += 1
                self._row(g)

    def _feed_plain(self, buf: bytes) -> None:
        """No repeats: one row per row tag, cells counted per row with numpy (C speed)."""
        data = self.open + buf
        arr = np.frombuffer(data + b"\0" * 32, np.uint8)
        lt = np.flatnonzero(arr[:-32] == 60)

        def at(i):
            return arr[lt + i]

        table = (at(1) == 116) & (at(6) == 58)  # <t....:
        row = table & (at(12) == 45) & (at(13) == 114) & (at(15) == 119) & _delimiter(at(16))  # <table:table-row
        cell = (table & (at(12) == 45) & (at(13) == 99) & (at(16) == 108) & _delimiter(at(17))) | (
            table & (at(7) == 99) & (at(14) == 45) & (at(20) == 99) & (at(24) == 108) & _delimiter(at(25))
        )
        starts = lt[row]
        if not len(starts):
            self.open = data
            return
        k = np.searchsorted(lt[cell], starts)
        per_row = np.diff(k)  # cells of each complete row that starts in this chunk
        first_is_row = data[:1] in _TAG_END
        n = len(per_row) + (1 if first_is_row else 0)
        self.row_tags += len(starts)
        if n and b"value-type" in data[: int(starts[-1])]:  # a value somewhere: count every row as used
            widest = max(int(per_row.max()) if len(per_row) else 0, int(k[0]) if first_is_row else 0)
            self.used_rows = self.rows + n
            self.used_cols = max(self.used_cols, widest)
        self.rows += n
        self.open = data[int(starts[-1]) + len(_ODS_ROW) :]

    def finish(self) -> None:
        if self.open[:1] in _TAG_END:
            self._row(self.open)
        self.open = b""
        self._end_table()

    def shape(self) -> tuple[int, int, int]:
        """(most rows of a table, and rows x cols of the table with the most cells), the open table included."""
        rows, cols = self.worst
        if self.used_rows * self.used_cols > rows * cols:
            rows, cols = self.used_rows, self.used_cols
        return max(self.worst_rows, self.used_rows), rows, cols


_TAG_END = (b" ", b">", b"/", b"\t", b"\n", b"\r")


def _check_ods_extent(zf: zipfile.ZipFile, file_name: str, max_rows: int | None = None) -> None:
    limit = max_rows or 0  # 0: no row limit
    row_limit = (limit + HEADER_SEARCH_ROWS) if limit else None

    def check(ext: _OdsExtent, final: bool) -> None:
        most_rows, rows, cols = ext.shape()
        if row_limit and (ext.row_tags > row_limit or most_rows > row_limit):
            raise _refuse_rows(file_name, "content.xml", row_limit, limit)
        if rows * cols > MAX_CELLS:
            raise _refuse_cells(file_name, "content.xml", rows, cols, so_far=not final)

    try:
        info = zf.getinfo("content.xml")
        ext = _OdsExtent(file_name)
        for buf in _prefetched(_chunks(zf, info, file_name)):
            ext.feed(buf)
            check(ext, False)
        ext.finish()
    except CxStatsError:
        raise
    except (KeyError, *_ZIP_ERRORS) as exc:
        raise _damaged(file_name, exc) from exc
    check(ext, True)


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
    with _cyclic_gc_paused():
        return _sheet_grid(wb, names, candidates, file_name, fmt, sheet, max_rows, score_row, expected)


@contextmanager
def _cyclic_gc_paused():
    """The cyclic garbage collector paused while a sheet becomes rows and a frame: those are a few
    hundred thousand lists holding millions of cells, no cycles, and the collector would otherwise walk
    them all again and again while they are built (~0.2 s CPU for 200,000 rows x 12 columns)."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


def _sheet_grid(wb, names, candidates, file_name, fmt, sheet, max_rows, score_row, expected) -> Grid:
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
    body = rows[h + 1 :]
    width = len(header)
    frame = (
        pd.DataFrame(body, columns=range(width), dtype=object)
        if body
        else pd.DataFrame({i: pd.Series([], dtype=object) for i in range(width)})
    )
    return Grid(
        header=header,
        data=frame,
        row_no=np.arange(h + 2, h + 2 + len(body)),
        header_row=h + 1,
        fmt=fmt,
        sheets=names,
        sheet=chosen,
    )


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


_BLANK_LINE = re.compile(r"\n[ \t]*\n")


def _end_before_blank_tail(text: str, start: int) -> int:
    """len(text[start:].rstrip("\n \t")) + start, without copying the text when its last 4 kB are not all blank."""
    base = max(start, len(text) - 4096)
    kept = text[base:].rstrip("\n \t")
    if kept or base == start:
        return base + len(kept)
    return start + len(text[start:].rstrip("\n \t"))


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
    reader = csv.reader(iter(ln + "\n" for ln in sample_lines[: HEADER_SEARCH_ROWS * 4]), delimiter=delim)
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
    frame = None
    # a blank line between data rows (trailing ones do not count) keeps the Python path's row numbers;
    # searched in place (pos, endpos): no copy of the text after the header
    if not _BLANK_LINE.search(text, offset, _end_before_blank_tail(text, offset)):
        if same_bytes:  # skip re-encoding: the header's byte offset is that of its text prefix
            start = (3 if data.startswith(b"\xef\xbb\xbf") else 0) + len(text[:offset].encode("utf-8"))
            frame = _arrow_frame(memoryview(data)[start:], delim, len(header))
        else:
            frame = _arrow_frame(text[offset:].encode("utf-8"), delim, len(header))
    if frame is None:
        frame = _python_frame(text[offset:], delim, len(header), file_name, h + 1)
    header = header + [""] * (frame.shape[1] - len(header))
    body = frame.iloc[1:].reset_index(drop=True)
    body.columns = range(body.shape[1])
    return Grid(
        header=header,
        data=body,
        row_no=np.arange(h + 2, h + 2 + len(body)),
        header_row=h + 1,
        fmt="csv",
        delimiter=delim,
        encoding=encoding,
    )


# bytes that may start or end a cell that trimming would change: ASCII whitespace, and (conservatively)
# any non-ASCII byte at the end or a lead byte of the multi-byte Unicode spaces at the start
_TRIM_FIRST = np.zeros(256, dtype=bool)
_TRIM_FIRST[[9, 10, 11, 12, 13, 28, 29, 30, 31, 32, 0xC2, 0xE1, 0xE2, 0xE3]] = True
_TRIM_LAST = np.zeros(256, dtype=bool)
_TRIM_LAST[[9, 10, 11, 12, 13, 28, 29, 30, 31, 32]] = True
_TRIM_LAST[0x80:] = True


# first bytes of the missing tokens: a cell that starts with none of them (and is not empty) is no token
_TOKEN_FIRST = np.zeros(256, dtype=bool)
_TOKEN_FIRST[[t.encode("utf-8")[0] for t in _MISSING.to_pylist() if t]] = True


def _edges(col: pa.Array | pa.ChunkedArray) -> tuple[bool, bool]:
    """(needs trimming, may hold a missing token), from a scan of two bytes per cell. Trimming (a copy
    of the whole column) is needed only when some cell starts or ends with a byte that trimming could
    remove; a token can only be a cell that is empty or starts with a token's first byte (else the
    token lookup over every cell is skipped). Both True for anything but plain text chunks."""
    trim = token = False
    chunks = col.chunks if isinstance(col, pa.ChunkedArray) else [col]
    for ch in chunks:
        if not pa.types.is_large_string(ch.type) and not pa.types.is_string(ch.type):
            return True, True
        if len(ch) == 0:
            continue
        _, off_buf, data_buf = ch.buffers()
        if data_buf is None:  # every cell empty
            token = True
            continue
        # one call per width: numpy's stubs type each dtype's result, not a union of dtypes
        offsets = (
            np.frombuffer(off_buf, dtype=np.int64)
            if pa.types.is_large_string(ch.type)
            else np.frombuffer(off_buf, dtype=np.int32)
        )
        off = offsets[ch.offset : ch.offset + len(ch) + 1]
        data = np.frombuffer(data_buf, dtype=np.uint8)
        start, end = off[:-1], off[1:]
        full = end > start
        first = data[start[full]]
        trim = trim or bool(_TRIM_FIRST[first].any() or _TRIM_LAST[data[end[full] - 1]].any())
        token = token or len(first) < len(ch) or bool(_TOKEN_FIRST[first].any())
        if trim and token:
            break
    return trim, token


def _clean_text_column(col: pa.Array | pa.ChunkedArray) -> pa.ChunkedArray:
    """Trim cells; blank cells and missing tokens (N/A, -, null...) become missing."""
    trim, token = _edges(col)
    if trim:
        col = pc.utf8_trim_whitespace(col)
        token = True  # the trimmed cells were not scanned
    if token:
        missing = pc.is_in(col, value_set=_MISSING)
        if pc.any(missing).as_py():
            return pc.if_else(missing, pa.scalar(None, col.type), col)
    return col if isinstance(col, pa.ChunkedArray) else pa.chunked_array([col])  # no token in the column: no copy


def _arrow_frame(rest, delim: str, width: int) -> pd.DataFrame | None:
    """Fast path (multi-threaded Arrow reader); None when rows are ragged (then the Python path reports)."""
    names = [f"c{i}" for i in range(width)]
    try:
        table = pacsv.read_csv(
            pa.BufferReader(pa.py_buffer(rest)),
            read_options=pacsv.ReadOptions(column_names=names, block_size=8 << 20),
            parse_options=pacsv.ParseOptions(delimiter=delim, newlines_in_values=True),
            convert_options=pacsv.ConvertOptions(
                column_types={n: pa.large_string() for n in names},
                strings_can_be_null=False,
                quoted_strings_can_be_null=False,
            ),
        )
    except (pa.ArrowInvalid, pa.ArrowException):
        return None
    return _to_frame(table)


def _to_frame(table: pa.Table) -> pd.DataFrame:
    # large_string columns: pandas' str dtype holds large_string, so to_pandas does not cast (copy) them
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
    return _to_frame(pa.table({f"c{i}": pa.array([r[i] for r in records], pa.large_string()) for i in range(width)}))
