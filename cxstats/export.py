"""Marketing exports of the advocate list: CSV and XLSX, consented customers only, formula-safe, audited.

- Only customers whose current customer row has ``marketing_consent`` true are written (a
  withdrawal uploaded later applies at once: the latest batch wins).
- Every text cell that starts with ``=``, ``+``, ``-``, ``@``, tab or carriage return gets a single
  quote in front, so a spreadsheet shows it as text instead of running it as a formula
  (OWASP "CSV injection"); numbers stay numbers. Leading characters a spreadsheet may drop or not
  show (a byte-order mark, spaces, zero-width and other control or format characters) are looked
  through: "\ufeff=cmd|..." is quoted too (issue 18).
- Columns start with ``customer_id`` (the key a rewards file is filled in with and uploaded back),
  then name, email, handle, tier, score, reasons and the figures.
- Each export adds one ``export_audit`` row: who, role, when, filter, rows, format, file name.
- A "to reward" export (pass ``advocates.to_reward``'s customers as the result) may hold out a
  random share of the customers it would list (``holdout_pct`` 0-50, seeded, :func:`draw_holdout`):
  the arms go to ``holdouts`` in the same transaction as the audit row, the held-out customers are
  left out of the file, and out of every export until 90 days after the list date (the effect is
  measured by cxstats.programme).

Marketing, leader and admin may export; a manager gets AccessDenied.
"""

from __future__ import annotations

import csv
import io
import math
import os
import tempfile
import unicodedata
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from . import CxStatsError, Viewer, store

if TYPE_CHECKING:  # a type only: advocates' command line calls this module, so no import cycle
    from .advocates import AdvocateResult

HOLDOUT_ROLES = ("marketing", "admin")
MAX_HOLDOUT_PCT = 50.0

EXPORT_ROLES = ("marketing", "leader", "admin")
FORMATS = ("csv", "xlsx")
DANGEROUS_START = ("=", "+", "-", "@", "\t", "\r")
COLUMNS = (
    "customer_id",
    "name",
    "email",
    "handle",
    "tier",
    "score",
    "reasons",
    "orders",
    "spend",
    "last order",
    "positive posts",
    "P(alive)",
    "expected orders",
    "expected value",
)


@dataclass(frozen=True)
class ExportResult:
    path: str | None
    rows: int
    export_id: int
    format: str = "csv"
    held_out: int = 0  # customers of the list held out (not in the file)
    seed: int | None = None  # the hold-out's seed (stored with it)
    holdout_ids: tuple[str, ...] = ()


def neutralise(value):
    """Text that a spreadsheet would run as a formula gets a leading single quote; numbers pass.

    >>> neutralise("=HYPERLINK(\\"http://x\\")"), neutralise("-1"), neutralise(-1), neutralise("Ann")
    ('\\'=HYPERLINK("http://x")', "'-1", -1, 'Ann')
    """
    if isinstance(value, str) and (
        value.startswith(DANGEROUS_START) or _visible_start(value).startswith(DANGEROUS_START)
    ):
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


def draw_holdout(customer_ids, pct: float, seed: int) -> tuple[list[str], list[str]]:
    """Split the listed customers at random: ``round(n * pct / 100)`` held out (seeded).

    The ids are sorted first, so the same list and seed always give the same hold-out whatever the
    order the list came in. Returns ``(reward, holdout)``, each sorted.

    >>> draw_holdout(["a", "b", "c", "d"], 50, seed=1)[1] == draw_holdout(["d", "c", "b", "a"], 50, seed=1)[1]
    True
    """
    pct = check_pct(pct)
    ids = sorted({str(c) for c in customer_ids})
    k = int(round(len(ids) * pct / 100))
    rng = np.random.default_rng(int(seed))
    held = set(rng.choice(len(ids), size=k, replace=False).tolist()) if k else set()
    return ([c for i, c in enumerate(ids) if i not in held], [c for i, c in enumerate(ids) if i in held])


def check_pct(pct) -> float:
    try:
        p = float(pct)
    except (TypeError, ValueError):
        raise CxStatsError(f"--holdout must be a percentage from 0 to 50, got {pct!r}") from None
    if not math.isfinite(p) or p < 0 or p > MAX_HOLDOUT_PCT:
        raise CxStatsError(f"--holdout must be a percentage from 0 to 50, got {pct!r}")
    return p


def format_for(path, fmt: str | None) -> str:
    """The export format: ``fmt`` if given, else the file suffix (.csv or .xlsx)."""
    f = (fmt or Path(str(path)).suffix.lstrip(".")).lower()
    if f not in FORMATS:
        raise CxStatsError(f"cannot export to {path!r}: use a file name ending in .csv or .xlsx")
    return f


def _consented(con) -> set[str]:
    rows = con.execute(f"SELECT customer_id FROM ({store.current_customers_sql()}) WHERE marketing_consent").fetchall()
    return {r[0] for r in rows}


def listable(con, *, viewer: Viewer):
    """``keep(frame, as_of)``: which rows of a scored list an export may write (consented now, not
    held out of a list whose 90 days are still running). As ``advocates.score(..., keep=...)`` it
    makes the engine bring back just enough of the list for an export's top N."""
    viewer.require(*EXPORT_ROLES)
    return _keep(con)


def _keep(con):
    consented = _consented(con)  # consent read now, not when scored

    def keep(df: pd.DataFrame, as_of) -> np.ndarray:
        mask = df["customer_id"].isin(consented).to_numpy(dtype=bool)
        if as_of is not None:
            held = store.held_out(con, as_of)
            if held:
                mask = mask & ~df["customer_id"].astype(str).isin(held).to_numpy(dtype=bool)
        return mask

    return keep


def _listed(con, result: AdvocateResult, top: int | None) -> pd.DataFrame:
    """Consented customers of the result, minus customers held out of a list whose 90 days are
    still running, top N."""
    df = result.customers
    df = df[_keep(con)(df, result.as_of)]
    if top:
        df = df.head(int(top))
    return df


def export_frame(
    con, result: AdvocateResult, top: int | None = None, *, leave_out: frozenset[str] | set[str] = frozenset()
) -> pd.DataFrame:
    """The rows a marketer gets: consented customers of the result, columns as in COLUMNS, neutralised.

    Customers held out of a running hold-out never appear; ``leave_out`` removes more (this export's
    own hold-out).
    """
    df = _listed(con, result, top)
    if leave_out:
        df = df[~df["customer_id"].astype(str).isin(leave_out)]
    out = pd.DataFrame(
        {
            "customer_id": df["customer_id"].astype(str),
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
            # the repeat-buying model (cxstats.value); empty cells when it could not be fitted
            "P(alive)": _optional(df, "p_alive", 3),
            "expected orders": _optional(df, "expected_orders", 2),
            "expected value": _optional(df, "expected_value", 2),
        }
    )
    for c in ("customer_id", "name", "email", "handle", "tier", "reasons"):
        out[c] = [neutralise(str(v)) for v in out[c]]
    return out.reset_index(drop=True)


def _optional(df: pd.DataFrame, col: str, digits: int) -> list:
    if col not in df:
        return [None] * len(df)
    return [None if v != v else round(float(v), digits) for v in df[col].astype(float).tolist()]


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


def _audit(con, viewer: Viewer, fmt: str, filter_text: str, rows: int, file_name: str, plan=None) -> int:
    """The audit row and, for a hold-out, its arms: one transaction (all or nothing)."""
    con.execute("BEGIN TRANSACTION")
    try:
        export_id = con.execute("SELECT coalesce(max(export_id), 0) + 1 FROM export_audit").fetchall()[0][0]
        if plan is not None:
            filter_text = (filter_text + "; " if filter_text else "") + (
                f"hold-out {plan.pct:g}% (seed {plan.seed}): {len(plan.holdout)} of "
                f"{len(plan.reward) + len(plan.holdout)} held out"
            )
        con.execute(
            "INSERT INTO export_audit (export_id, exported_at, who, role, format, filter, rows, file_name) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            [
                export_id,
                datetime.now().replace(microsecond=0),
                viewer.name,
                viewer.role,
                fmt,
                filter_text,
                rows,
                file_name,
            ],
        )
        if plan is not None:
            store.record_holdout(con, int(export_id), plan.reward, plan.holdout, plan.list_date, plan.seed, plan.pct)
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
    return int(export_id)


@dataclass(frozen=True)
class _HoldoutPlan:
    reward: list[str]
    holdout: list[str]
    list_date: object
    seed: int
    pct: float


def _plan(con, viewer: Viewer, result: AdvocateResult, top, holdout_pct, seed) -> _HoldoutPlan | None:
    if holdout_pct is None:
        if seed is not None:
            raise CxStatsError("--seed only goes with --holdout PCT")
        return None
    viewer.require(*HOLDOUT_ROLES)
    pct = check_pct(holdout_pct)
    if result.as_of is None:
        raise CxStatsError("no purchases yet: a hold-out needs a scored list")
    if seed is None:
        import secrets

        seed = secrets.randbelow(2**31)
    listed = _listed(con, result, top)["customer_id"].astype(str)
    reward, holdout = draw_holdout(listed, pct, int(seed))
    return _HoldoutPlan(reward, holdout, result.as_of, int(seed), pct)


def _export(con, viewer, result, fmt, top, holdout_pct, seed):
    viewer.require(*EXPORT_ROLES)
    plan = _plan(con, viewer, result, top, holdout_pct, seed)
    frame = export_frame(con, result, top, leave_out=set(plan.holdout) if plan else frozenset())
    data = _csv_bytes(frame) if fmt == "csv" else _xlsx_bytes(frame)
    return plan, frame, data


def _result(path, frame, export_id, fmt, plan) -> ExportResult:
    if plan is None:
        return ExportResult(path, len(frame), export_id, fmt)
    return ExportResult(path, len(frame), export_id, fmt, len(plan.holdout), plan.seed, tuple(plan.holdout))


def export_bytes(
    con,
    result: AdvocateResult,
    fmt: str = "csv",
    filter_text: str = "",
    top: int | None = None,
    file_name: str | None = None,
    *,
    viewer: Viewer,
    holdout_pct: float | None = None,
    seed: int | None = None,
) -> tuple[bytes, ExportResult]:
    """The export as bytes (for a download button); audited like a written file.

    ``holdout_pct`` (0-50): the customers of the result (the caller passes the "to reward" list),
    with that share held out at random (``seed``, random when None; stored with the hold-out) and left out of the bytes.
    """
    viewer.require(*EXPORT_ROLES)
    fmt = format_for(file_name or f"advocates.{fmt}", fmt)
    plan, frame, data = _export(con, viewer, result, fmt, top, holdout_pct, seed)
    name = file_name or f"advocates.{fmt}"
    export_id = _audit(con, viewer, fmt, filter_text, len(frame), name, plan)
    return data, _result(None, frame, export_id, fmt, plan)


def write_advocates(
    con,
    result: AdvocateResult,
    path,
    fmt: str | None = None,
    filter_text: str = "",
    top: int | None = None,
    *,
    viewer: Viewer,
    holdout_pct: float | None = None,
    seed: int | None = None,
) -> ExportResult:
    """Write the consented advocate list to ``path`` (.csv or .xlsx) and audit it.

    The file appears whole or not at all (written beside it, then renamed); the audit row (and a
    hold-out's arms, in the same transaction) is written after the file is in place.
    """
    viewer.require(*EXPORT_ROLES)
    path = Path(path)
    fmt = format_for(path, fmt)
    plan, frame, data = _export(con, viewer, result, fmt, top, holdout_pct, seed)
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
    export_id = _audit(con, viewer, fmt, filter_text, len(frame), path.name, plan)
    return _result(str(path), frame, export_id, fmt, plan)


def audit_log(con, *, viewer: Viewer) -> pd.DataFrame:
    """Every export so far, newest first (admin and leader)."""
    viewer.require("admin", "leader")
    return con.execute("SELECT * FROM export_audit ORDER BY export_id DESC").df()
