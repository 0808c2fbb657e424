"""Marketing exports of the advocate list: CSV and XLSX, consented customers only, formula-safe, audited.

- Only customers whose current customer row has ``marketing_consent`` true are written (a
  withdrawal uploaded later applies at once: the latest batch wins).
- Every text cell that starts with ``=``, ``+``, ``-``, ``@``, tab or carriage return gets a single
  quote in front, so a spreadsheet shows it as text instead of running it as a formula
  (OWASP "CSV injection"); numbers stay numbers. Leading characters a spreadsheet may drop or not
  show (a byte-order mark, spaces, zero-width and other control or format characters) are looked
  through: "\ufeff=cmd|..." is quoted too (issue 18).
- Each export adds one ``export_audit`` row: who, role, when, filter, rows, format, file name.

Marketing, leader and admin may export; a manager gets AccessDenied.
"""

from __future__ import annotations

import csv
import io
import os
import tempfile
import unicodedata
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from . import CxStatsError, Viewer, store

if TYPE_CHECKING:  # a type only: advocates' command line calls this module, so no import cycle
    from .advocates import AdvocateResult

EXPORT_ROLES = ("marketing", "leader", "admin")
FORMATS = ("csv", "xlsx")
DANGEROUS_START = ("=", "+", "-", "@", "\t", "\r")
COLUMNS = ("name", "email", "handle", "tier", "score", "reasons", "orders", "spend", "last order", "positive posts")


@dataclass(frozen=True)
class ExportResult:
    path: str | None
    rows: int
    export_id: int
    format: str = "csv"


def neutralise(value):
    """Text that a spreadsheet would run as a formula gets a leading single quote; numbers pass.

    >>> neutralise("=HYPERLINK(\\"http://x\\")"), neutralise("-1"), neutralise(-1), neutralise("Ann")
    ('\\'=HYPERLINK("http://x")', "'-1", -1, 'Ann')
    """
    if isinstance(value, str) and (value.startswith(DANGEROUS_START)
                                   or _visible_start(value).startswith(DANGEROUS_START)):
        return "'" + value
    return value


def _invisible(ch: str) -> bool:
    # whitespace, control (Cc), format (Cf: BOM, zero-width, bidi marks) and separators (Z*)
    return ch.isspace() or unicodedata.category(ch)[0] in ("C", "Z")


def _visible_start(value: str) -> str:
    """``value`` without the leading characters a spreadsheet may strip before it looks for ``=``
    (a tab or carriage return among them is dangerous itself and is kept)."""
    i = 0
    while i < len(value) and value[i] not in "\t\r" and _invisible(value[i]):
        i += 1
    return value[i:]


def format_for(path, fmt: str | None) -> str:
    """The export format: ``fmt`` if given, else the file suffix (.csv or .xlsx)."""
    f = (fmt or Path(str(path)).suffix.lstrip(".")).lower()
    if f not in FORMATS:
        raise CxStatsError(f"cannot export to {path!r}: use a file name ending in .csv or .xlsx")
    return f


def _consented(con) -> set[str]:
    rows = con.execute(
        f"SELECT customer_id FROM ({store.current_customers_sql()}) WHERE marketing_consent"
    ).fetchall()
    return {r[0] for r in rows}


def export_frame(con, result: AdvocateResult, top: int | None = None) -> pd.DataFrame:
    """The rows a marketer gets: consented customers of the result, columns as in COLUMNS, neutralised."""
    df = result.customers
    df = df[df["customer_id"].isin(_consented(con))]  # consent read now, not when scored
    if top:
        df = df.head(int(top))
    out = pd.DataFrame({
        "name": df["name"].astype(object).where(df["name"].notna(), ""),
        "email": df["email"].astype(object).where(df["email"].notna(), ""),
        "handle": df["handle"].astype(object).where(df["handle"].notna(), ""),
        "tier": df["tier"].astype(object),
        "score": df["score"].astype(float).round(1),
        "reasons": ["; ".join(r) for r in df["reasons"]],
        "orders": df["orders"].astype(int),
        "spend": df["spend"].astype(float).round(2),
        "last order": pd.to_datetime(df["last_order"]).dt.strftime("%Y-%m-%d").fillna(""),
        "positive posts": df["positive_mentions"].astype(int),
    })
    for c in ("name", "email", "handle", "tier", "reasons"):
        out[c] = [neutralise(str(v)) for v in out[c]]
    return out.reset_index(drop=True)


def _csv_bytes(frame: pd.DataFrame) -> bytes:
    buf = io.StringIO()
    w = csv.writer(buf, quoting=csv.QUOTE_MINIMAL, lineterminator="\r\n")
    w.writerow(frame.columns)
    for row in frame.itertuples(index=False):
        w.writerow(row)
    return buf.getvalue().encode("utf-8-sig")  # BOM so Excel reads UTF-8 names correctly


def _xlsx_bytes(frame: pd.DataFrame) -> bytes:
    from openpyxl import Workbook
    from openpyxl.cell import WriteOnlyCell

    wb = Workbook(write_only=True)
    ws = wb.create_sheet("Advocates")
    ws.append(list(frame.columns))
    for row in frame.itertuples(index=False):
        cells = []
        for v in row:
            if isinstance(v, str):
                # openpyxl stores a string starting with "=" as a formula; neutralise() already
                # quoted those, and data_type 's' makes sure nothing else is read as one
                c = WriteOnlyCell(ws, value=v)
                c.data_type = "s"
                cells.append(c)
            else:
                cells.append(v.item() if hasattr(v, "item") else v)
        ws.append(cells)
    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue()


def _audit(con, viewer: Viewer, fmt: str, filter_text: str, rows: int, file_name: str) -> int:
    con.execute("BEGIN TRANSACTION")
    try:
        export_id = con.execute("SELECT coalesce(max(export_id), 0) + 1 FROM export_audit").fetchall()[0][0]
        con.execute(
            "INSERT INTO export_audit (export_id, exported_at, who, role, format, filter, rows, file_name) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            [export_id, datetime.now().replace(microsecond=0), viewer.name, viewer.role, fmt, filter_text, rows,
             file_name],
        )
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
    return int(export_id)


def export_bytes(con, viewer: Viewer, result: AdvocateResult, fmt: str = "csv", filter_text: str = "",
                 top: int | None = None, file_name: str | None = None) -> tuple[bytes, ExportResult]:
    """The export as bytes (for a download button); audited like a written file."""
    viewer.require(*EXPORT_ROLES)
    fmt = format_for(file_name or f"advocates.{fmt}", fmt)
    frame = export_frame(con, result, top)
    data = _csv_bytes(frame) if fmt == "csv" else _xlsx_bytes(frame)
    name = file_name or f"advocates.{fmt}"
    export_id = _audit(con, viewer, fmt, filter_text, len(frame), name)
    return data, ExportResult(None, len(frame), export_id, fmt)


def write_advocates(con, viewer: Viewer, result: AdvocateResult, path, fmt: str | None = None,
                    filter_text: str = "", top: int | None = None) -> ExportResult:
    """Write the consented advocate list to ``path`` (.csv or .xlsx) and audit it.

    The file appears whole or not at all (written beside it, then renamed); the audit row is
    written after the file is in place.
    """
    viewer.require(*EXPORT_ROLES)
    path = Path(path)
    fmt = format_for(path, fmt)
    frame = export_frame(con, result, top)
    data = _csv_bytes(frame) if fmt == "csv" else _xlsx_bytes(frame)
    if not path.parent.exists():
        raise CxStatsError(f"folder {path.parent} does not exist; create it or choose another --out path")
    fd, tmp = tempfile.mkstemp(prefix=".export-", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    export_id = _audit(con, viewer, fmt, filter_text, len(frame), path.name)
    return ExportResult(str(path), len(frame), export_id, fmt)


def audit_log(con, viewer: Viewer) -> pd.DataFrame:
    """Every export so far, newest first (admin and leader)."""
    viewer.require("admin", "leader")
    return con.execute("SELECT * FROM export_audit ORDER BY export_id DESC").df()
