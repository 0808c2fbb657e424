"""Import a spreadsheet or CSV as one batch: read, find the header, map columns, validate, store.

The whole file is validated before anything is written (DESIGN.md, "Batches"): a file with an
invalid row loads nothing and every problem comes back as "row 14, column 'csat': 7 is outside 1-5",
rows numbered as a spreadsheet program shows them. Validation is vectorised: each column is
factorised and only its distinct values are parsed (a million csat answers are five values),
then mapped back, so messages are built only for the rows that are wrong.

Example
-------
>>> from cxstats import ingest
>>> p = ingest.preview(b"Store;Date;CSAT\\nS1;05/03/2024;4\\nS2;25/03/2024;5\\n", "march.csv", "feedback")
>>> p.mapping, p.rows, p.ok
({'Store': 'unit_id', 'Date': 'date', 'CSAT': 'csat'}, 2, True)
"""

from __future__ import annotations

import difflib
import hashlib
import io
import math
import re
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import cast

import numpy as np
import pandas as pd

from . import ADMIN, AccessDenied, CxStatsError, Viewer, readers, store
from .schema import KINDS, LIKERT_5, LIKERT_7, MISSING_TOKENS, TOTAL_TOKENS, Field, header_lookup, normalise_header

PROBLEMS_KEPT = 10_000  # problems listed in full; n_problems always counts every one
SAMPLE_ROWS = 20
CENT = Decimal("0.01")
EXCEL_EPOCH = pd.Timestamp("1899-12-30")  # Excel's day 0 (1900 leap-year bug included)
# DESIGN.md: survey (engagement) files are loaded by admins only; a preview of one against the
# stored respondents ("already stored", "other values") would tell a manager which answers exist
UPLOAD_KINDS = {
    "admin": tuple(KINDS),
    "manager": ("feedback", "purchases"),
    "marketing": ("purchases", "mentions", "customers", "rewards"),
    "leader": (),
}
# keys whose stored values may change on a later upload (DESIGN.md: a later upload updates a customer)
UPDATABLE_KINDS = ("customers", "units")
TRUE_TOKENS = {"yes", "y", "true", "t", "1", "x", "ja", "oui", "si", "optedin", "optin", "consent", "consented"}
FALSE_TOKENS = {"no", "n", "false", "f", "0", "nein", "non", "optedout", "optout", "noconsent", "withdrawn"}


# ---------------------------------------------------------------- results


@dataclass(frozen=True)
class Problem:
    """One thing to fix; ``row`` as numbered in the spreadsheet, ``column`` as headed in the file."""

    row: int | None
    column: str | None
    message: str

    def __str__(self) -> str:
        where = []
        if self.row is not None:
            where.append(f"row {self.row}")
        if self.column is not None:
            where.append(f"column {self.column!r}")
        return f"{', '.join(where)}: {self.message}" if where else self.message


@dataclass(frozen=True)
class Preview:
    kind: str
    file_name: str
    sheets: list[str]
    sheet: str | None
    header_row: int
    columns: list[str]
    mapping: dict[str, str]
    scale: int | None
    scale_source: str | None
    rows: int
    sample: pd.DataFrame
    problems: list[Problem]
    n_problems: int
    warnings: list[str]
    totals_dropped: int
    duplicates_skipped: int
    units_created: list[str]
    ok: bool


@dataclass(frozen=True)
class ImportResult:
    batch_id: int
    kind: str
    file_name: str
    rows_loaded: int
    duplicates_skipped: int
    totals_dropped: int
    units_created: list[str]
    warnings: list[str]
    rejected_path: str | None
    rejected: int
    erased_skipped: int = 0

    def summary(self) -> str:
        """"2,314 rows loaded as batch 17; 3 units created" (and whatever else happened)."""
        parts = [f"{self.rows_loaded:,} {'row' if self.rows_loaded == 1 else 'rows'} loaded as batch {self.batch_id}"]
        if self.units_created:
            parts.append(f"{len(self.units_created):,} {'unit' if len(self.units_created) == 1 else 'units'} created")
        if self.duplicates_skipped:
            parts.append(f"{self.duplicates_skipped:,} rows already stored skipped")
        if self.totals_dropped:
            parts.append(f"{self.totals_dropped:,} totals {'row' if self.totals_dropped == 1 else 'rows'} dropped")
        if self.erased_skipped:
            parts.append(f"{self.erased_skipped:,} {'row' if self.erased_skipped == 1 else 'rows'} of erased people "
                         "skipped")
        if self.rejected:
            parts.append(f"{self.rejected:,} invalid rows rejected (see {self.rejected_path})")
        return "; ".join(parts)


# ---------------------------------------------------------------- templates


_EXAMPLES = {
    "units": {"unit_id": "S012", "unit_name": "Riverside", "region": "North", "headcount": "24",
              "aliases": "Store 12;Riverside store"},
    "engagement": {"unit_id": "S012", "survey_date": "2024-03-15", "respondent_id": "E0001", "wave": "2024 Q1",
                   "enps": "8", "comment": "Good team", "I know what is expected of me at work": "5",
                   "I would recommend this team": "Agree"},
    "feedback": {"unit_id": "S012", "date": "2024-03-15", "csat": "4", "nps": "9", "response_id": "R000123",
                 "customer_id": "C00042", "channel": "email", "comment": "Friendly staff",
                 "contacted_at": "2024-03-14 09:30", "responded_at": "2024-03-14 11:05"},
    "purchases": {"customer_id": "C00042", "order_date": "2024-03-15", "amount": "49.90", "order_id": "O-1001",
                  "unit_id": "S012"},
    "mentions": {"customer_id": "C00042", "handle": "@jane", "posted_at": "2024-03-16 18:20", "platform": "instagram",
                 "text": "Loved the new store!", "followers": "1200", "likes": "35", "shares": "2", "sentiment": "",
                 "replied_at": "2024-03-16 19:00"},
    "customers": {"customer_id": "C00042", "name": "Jane Doe", "email": "jane@example.com", "handle": "@jane",
                  "marketing_consent": "yes", "consent_date": "2024-01-10"},
    "rewards": {"customer_id": "C00042", "reward_date": "2024-04-01", "reward_type": "voucher", "value": "20.00",
                "note": "Thank-you for the reviews"},
    "reorgs": {"from_unit": "S012", "to_unit": "S013", "effective_date": "2024-07-01",
               "note": "Riverside merged into Market Square"},
}


def template_csv(kind: str) -> bytes:
    """A header row and one example row for a kind (the Upload page's template downloads)."""
    _kind(kind)
    row = _EXAMPLES[kind]
    frame = pd.DataFrame([row], columns=list(row))
    return frame.to_csv(index=False).encode("utf-8")


# ---------------------------------------------------------------- public entry points


def preview(
    data: bytes,
    file_name: str,
    kind: str,
    *,
    sheet: str | None = None,
    mapping: dict[str, str] | None = None,
    dayfirst: bool | None = None,
    scale: int | None = None,
    reverse=(),
    db=None,
    viewer: Viewer = ADMIN,
    isolated: bool = False,
) -> Preview:
    """Read and validate without writing: what an import would do, and every problem found.

    Unreadable files (empty, binary, damaged, too large) raise CxStatsError; problems with
    columns or rows come back in ``problems`` so the mapping can be corrected. ``isolated``: read
    the file in a worker process with a memory cap (the app and the command line; issue 18).
    """
    if db is None:
        a = _analyse(data, file_name, kind, sheet=sheet, mapping=mapping, dayfirst=dayfirst, scale=scale,
                     reverse=reverse, con=None, viewer=viewer, skip_invalid=False, isolated=isolated)
    else:
        with store.connect(db) as con:
            a = _analyse(data, file_name, kind, sheet=sheet, mapping=mapping, dayfirst=dayfirst, scale=scale,
                         reverse=reverse, con=con, viewer=viewer, skip_invalid=False, isolated=isolated)
    return a.preview()


def import_file(
    db,
    kind: str,
    source,
    *,
    file_name: str | None = None,
    sheet: str | None = None,
    mapping: dict[str, str] | None = None,
    dayfirst: bool | None = None,
    scale: int | None = None,
    reverse=(),
    skip_invalid: bool = False,
    viewer: Viewer = ADMIN,
    loaded_by: str | None = None,
    isolated: bool = False,
) -> ImportResult:
    """Validate a whole file and load it as one batch in one transaction, or refuse and write nothing.

    ``source`` is a path or the file's bytes (then ``file_name`` names it). Refusals raise
    CxStatsError(summary, problems=[...]) with every problem as a string.
    """
    path: Path | None = None
    if isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
        file_name = file_name or "upload"
    else:
        path = Path(source)
        if not path.is_file():
            raise CxStatsError(f"no such file: {path}")
        file_name = file_name or path.name
        data = None
    with store.connect(db) as con:
        if data is None and path is not None:
            # the size limit applies before the file is even read into memory
            max_bytes = _limits(con)[0]
            size = path.stat().st_size
            if size > max_bytes:
                raise CxStatsError(f"{file_name} is {readers._mb(size)}; the limit is {readers._mb(max_bytes)} "
                                   "(setting max_file_mb): split the file or ask an admin to raise the limit")
            data = path.read_bytes()
        a = _analyse(data, file_name, kind, sheet=sheet, mapping=mapping, dayfirst=dayfirst, scale=scale,
                     reverse=reverse, con=con, viewer=viewer, skip_invalid=skip_invalid, isolated=isolated)
        a.raise_if_refused()
        rejected_path = None
        if a.rejected is not None and len(a.rejected):
            rejected_path = _write_rejected(a.rejected, path, file_name)
        hooks = []
        if rejected_path:
            hooks.append(lambda c, b: store.record_written_file(c, rejected_path, b))
        if kind == "reorgs":  # differencing through re-organisations (DESIGN.md)
            from . import governance

            before = governance.snapshot(con)
            hooks.append(lambda c, b: governance.guard_groups(c, before, f"re-organisation batch {b}"))
        batch_id = store.load_batch(
            con, kind, a.tables, file_name=file_name, sha256=a.sha256, rows=a.rows_loaded,
            loaded_by=loaded_by or viewer.name, skipped_rows=a.duplicates_skipped,
            before_hook=(lambda c, b: [h(c, b) for h in hooks]) if hooks else None,
        )
    return ImportResult(
        batch_id=batch_id, kind=kind, file_name=file_name, rows_loaded=a.rows_loaded,
        duplicates_skipped=a.duplicates_skipped, totals_dropped=a.totals_dropped,
        units_created=list(a.units_created), warnings=list(a.warnings), rejected_path=rejected_path,
        rejected=0 if a.rejected is None else len(a.rejected), erased_skipped=a.erased_skipped,
    )


def parse_mapping(pairs) -> dict[str, str]:
    """["Store No=unit_id", ...] (the --map arguments) -> {"Store No": "unit_id"}."""
    out: dict[str, str] = {}
    for pair in pairs or ():
        if "=" not in pair:
            raise CxStatsError(f"--map {pair!r}: write SOURCE=FIELD, e.g. --map 'Store No=unit_id'")
        src, dst = pair.rsplit("=", 1)
        out[src.strip()] = dst.strip()
    return out


# ---------------------------------------------------------------- internals


def _kind(kind: str):
    if kind not in KINDS:
        raise CxStatsError(f"unknown kind {kind!r}; use one of {', '.join(KINDS)}")
    return KINDS[kind]


def _check_upload_allowed(viewer: Viewer, kind: str) -> None:
    if kind not in UPLOAD_KINDS.get(viewer.role, ()):
        allowed = UPLOAD_KINDS.get(viewer.role, ())
        can = f"you may upload {', '.join(allowed)}" if allowed else "your role does not upload files"
        raise AccessDenied(f"role {viewer.role!r} may not upload {kind} files; {can}")


def _show(v) -> str:
    """A cell value as the user typed it, for messages."""
    if isinstance(v, float):
        return f"{v:g}"
    if isinstance(v, (datetime, date)):
        return v.isoformat()
    return repr(str(v))


class _Problems:
    """Collects problems as arrays (vectorised) and materialises only what is shown."""

    def __init__(self, row_no: np.ndarray, columns_order: dict[str, int]):
        self.row_no = row_no
        self.order = columns_order
        self.general: list[Problem] = []
        self.parts: list[tuple[np.ndarray, str | None, np.ndarray]] = []
        self.bad = np.zeros(len(row_no), dtype=bool)

    def file(self, column: str | None, message: str) -> None:
        self.general.append(Problem(None, column, message))

    def rows(self, idx: np.ndarray, column: str | None, messages) -> None:
        idx = np.asarray(idx, dtype=np.int64)
        if not len(idx):
            return
        if isinstance(messages, str):
            messages = np.full(len(idx), messages, dtype=object)
        self.parts.append((idx, column, np.asarray(messages, dtype=object)))
        self.bad[idx] = True

    @property
    def n(self) -> int:
        return len(self.general) + sum(len(p[0]) for p in self.parts)

    def listed(self) -> list[Problem]:
        out = list(self.general)
        if not self.parts:
            return out
        idx = np.concatenate([p[0] for p in self.parts])
        col_rank = np.concatenate([np.full(len(p[0]), self.order.get(p[1] or "", -1)) for p in self.parts])
        which = np.concatenate([np.full(len(p[0]), k) for k, p in enumerate(self.parts)])
        pos = np.concatenate([np.arange(len(p[0])) for p in self.parts])
        take = np.lexsort((col_rank, idx))[:PROBLEMS_KEPT]
        for t in take:
            part = self.parts[which[t]]
            out.append(Problem(int(self.row_no[idx[t]]), part[1], str(part[2][pos[t]])))
        return out

    def reasons(self) -> pd.Series:
        """Row index -> every problem of that row (for the rejected-rows file)."""
        frames = [pd.DataFrame({"i": p[0], "msg": [f"{p[1]}: {m}" if p[1] else str(m) for m in p[2]]})
                  for p in self.parts]
        if not frames:
            return pd.Series(dtype=object)
        allp = pd.concat(frames, ignore_index=True)
        return allp.groupby("i", sort=True)["msg"].agg("; ".join)


_TOTAL_HINT = re.compile(r"tot|sum|overall", re.IGNORECASE)


def _total_mask(s: pd.Series) -> np.ndarray:
    """Cells that say "Total", "Grand total", "TOTAL:"... (a totals row of a spreadsheet export)."""
    if s.dtype != object:
        hint = s.str.contains(_TOTAL_HINT.pattern, case=False, regex=True).fillna(False).to_numpy(dtype=bool)
        idx = np.flatnonzero(hint)
        out = np.zeros(len(s), dtype=bool)
        out[idx] = [normalise_header(v) in TOTAL_TOKENS for v in s.iloc[idx]]
        return out
    codes, uniq = _factorize(s)
    is_total = np.array([isinstance(v, str) and len(v) < 30 and _TOTAL_HINT.search(v) is not None
                         and normalise_header(v) in TOTAL_TOKENS for v in uniq] + [False])
    return is_total[codes]


def _factorize(s: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    codes, uniq = pd.factorize(s, use_na_sentinel=True)
    return codes, np.asarray(uniq, dtype=object)


def _is_blank(v) -> bool:
    if v is None:
        return True
    if isinstance(v, float):
        return v != v
    if isinstance(v, str):
        return v.strip().lower() in MISSING_TOKENS
    return False


def _blank_mask(s: pd.Series) -> np.ndarray:
    """Empty cells (for skipping empty rows and columns; 'N/A' is treated as missing when parsed)."""
    if s.dtype == object:  # spreadsheet cells: '' when empty
        arr = s.to_numpy()
        return (arr == "") | pd.isna(arr)
    return s.isna().to_numpy()


_NUM_JUNK = re.compile(r"[\s\u00a0\u202f'’€$£¥₹]")
_THOUSANDS_COMMA = re.compile(r"[+-]?\d{1,3}(,\d{3})+")


def _number_text(t: str, decimal_comma: bool) -> float:
    t = _NUM_JUNK.sub("", t)
    neg = t.startswith("(") and t.endswith(")")
    if neg:
        t = t[1:-1]
    if "," in t and "." in t:
        t = t.replace(".", "").replace(",", ".") if t.rfind(",") > t.rfind(".") else t.replace(",", "")
    elif "," in t:
        t = t.replace(",", "") if (not decimal_comma and _THOUSANDS_COMMA.fullmatch(t)) else t.replace(",", ".")
    v = float(t)
    if v != v or v in (float("inf"), float("-inf")):
        raise ValueError(t)
    return -v if neg else v


def _numbers(uniq: np.ndarray, decimal_comma: bool) -> tuple[np.ndarray, list]:
    """Distinct cell values -> floats (nan for blank) and a message (or None) for each."""
    out = np.full(len(uniq), np.nan)
    err: list = [None] * len(uniq)
    strs = np.array([isinstance(v, str) for v in uniq], dtype=bool)
    if strs.any():
        fast = pd.to_numeric(pd.Series(uniq[strs], dtype=object), errors="coerce").to_numpy(dtype=float)
        out[strs] = fast
    for i, v in enumerate(uniq):
        if strs[i]:
            if out[i] == out[i] and abs(out[i]) != np.inf:
                continue
            out[i] = np.nan
            if _is_blank(v):
                continue
            try:
                out[i] = _number_text(v, decimal_comma)
            except ValueError:
                err[i] = f"{_show(v)} is not a number"
        elif isinstance(v, bool):
            out[i] = float(v)
        elif isinstance(v, (int, float, np.integer, np.floating)):
            out[i] = float(v)
        elif not _is_blank(v):
            err[i] = f"{_show(v)} is not a number"
    return out, err


def _spread(codes: np.ndarray, values: np.ndarray, fill) -> np.ndarray:
    """Values per distinct cell -> values per row (code -1, a missing cell, gets ``fill``)."""
    return np.append(values, np.array([fill], dtype=values.dtype))[codes]


_ISO = re.compile(r"^\d{4}[-/.]\d{1,2}[-/.]\d{1,2}(?:[ T]\d{1,2}:\d{2}(?::\d{2}(?:\.\d+)?)?)?(?:Z|[+-]\d{2}:?\d{2})?$")
_DMY = re.compile(
    r"^(\d{1,2})[./-](\d{1,2})[./-](\d{4}|\d{2})(?:[ T,]+(\d{1,2}):(\d{2})(?::(\d{2}))?\s*([AaPp][Mm])?)?$")
_SERIAL = re.compile(r"^\d{5}(?:\.\d+)?$")


class _DateColumnProblem(Exception):
    pass


def _dates(uniq: np.ndarray, dayfirst: bool | None, keep_time: bool) -> tuple[np.ndarray, list]:
    """Distinct cells -> datetime64 values and per-value messages; raises _DateColumnProblem when the
    column's day/month order is ambiguous or mixed."""
    n = len(uniq)
    out = np.full(n, np.datetime64("NaT"), dtype="datetime64[us]")
    err: list = [None] * n
    todo_iso, todo_dmy, todo_other, serial_i, serial_v = [], [], [], [], []
    for i, v in enumerate(uniq):
        if isinstance(v, str):
            t = v.strip()
            if _is_blank(t):
                continue
            if _ISO.match(t):
                todo_iso.append(i)
            elif _SERIAL.match(t):
                serial_i.append(i)
                serial_v.append(float(t))
            elif _DMY.match(t):
                todo_dmy.append(i)
            else:
                todo_other.append(i)
        elif isinstance(v, bool):
            err[i] = f"{_show(v)} is not a date"
        elif isinstance(v, (datetime, date, pd.Timestamp)):
            out[i] = np.datetime64(pd.Timestamp(v).as_unit("us"))
        elif isinstance(v, (int, float, np.integer, np.floating)):
            if v != v:
                continue
            serial_i.append(i)
            serial_v.append(float(v))
        elif isinstance(v, (time, timedelta)):
            err[i] = f"{_show(v)} is a time of day, not a date"
        elif not _is_blank(v):
            err[i] = f"{_show(v)} is not a date"
    if todo_iso:
        texts = pd.Series([re.sub(r"^(\d{4})[/.](\d{1,2})[/.]", r"\1-\2-", uniq[i].strip()) for i in todo_iso])
        try:
            parsed = pd.to_datetime(texts, format="ISO8601", errors="coerce")
        except (ValueError, TypeError):  # offsets in some cells only: read every one as UTC
            parsed = pd.to_datetime(texts, format="ISO8601", errors="coerce", utc=True)
        if getattr(parsed.dt, "tz", None) is not None:
            parsed = parsed.dt.tz_convert(None)
        vals = parsed.astype("datetime64[us]").to_numpy()
        for j, i in enumerate(todo_iso):
            if np.isnat(vals[j]):
                err[i] = f"{_show(uniq[i])} is not a valid date"
            else:
                out[i] = vals[j]
    if serial_i:
        sv = np.array(serial_v)
        ok = (sv >= 1) & (sv < 2958466)
        days = EXCEL_EPOCH + pd.to_timedelta(np.where(ok, sv, 0), unit="D")
        vals = days.astype("datetime64[us]").to_numpy()
        for j, i in enumerate(serial_i):
            if ok[j]:
                out[i] = vals[j]
            else:
                err[i] = f"{_show(uniq[i])} is not a date"
    if todo_dmy:
        parts = [cast(re.Match, _DMY.match(uniq[i].strip())).groups() for i in todo_dmy]  # todo_dmy rows matched
        a = np.array([int(p[0]) for p in parts])
        b = np.array([int(p[1]) for p in parts])
        day_first_seen = (a > 12).any()
        month_first_seen = (b > 12).any()
        if dayfirst is None:
            if day_first_seen and month_first_seen:
                ex_d = uniq[todo_dmy[int(np.argmax(a > 12))]]
                ex_m = uniq[todo_dmy[int(np.argmax(b > 12))]]
                raise _DateColumnProblem(
                    f"dates mix day/month/year ({ex_d.strip()}) and month/day/year ({ex_m.strip()}); "
                    "make them consistent or use ISO dates (YYYY-MM-DD)")
            if not day_first_seen and not month_first_seen and (a != b).any():
                ex = uniq[todo_dmy[int(np.argmax(a != b))]].strip()
                raise _DateColumnProblem(
                    f"dates such as {ex} could be day/month or month/day; say --dayfirst if they are "
                    "day/month/year, otherwise use ISO dates (YYYY-MM-DD)")
            use_dayfirst = bool(day_first_seen)
        else:
            use_dayfirst = bool(dayfirst)
        day, month = (a, b) if use_dayfirst else (b, a)
        year = np.array([int(p[2]) for p in parts])
        year = np.where(year < 100, np.where(year < 69, 2000 + year, 1900 + year), year)
        hour = np.array([int(p[3]) if p[3] else 0 for p in parts])
        pm = np.array([(p[6] or "").lower() == "pm" for p in parts])
        am = np.array([(p[6] or "").lower() == "am" for p in parts])
        hour = np.where(pm & (hour < 12), hour + 12, np.where(am & (hour == 12), 0, hour))
        minute = np.array([int(p[4]) if p[4] else 0 for p in parts])
        second = np.array([int(p[5]) if p[5] else 0 for p in parts])
        parsed = pd.to_datetime(pd.DataFrame({"year": year, "month": month, "day": day, "hour": hour,
                                              "minute": minute, "second": second}), errors="coerce")
        vals = parsed.astype("datetime64[us]").to_numpy()
        order = "day/month/year" if use_dayfirst else "month/day/year"
        for j, i in enumerate(todo_dmy):
            if np.isnat(vals[j]):
                err[i] = f"{_show(uniq[i])} is not a valid date (read as {order})"
            else:
                out[i] = vals[j]
    for i in todo_other:
        t = uniq[i].strip()
        parsed = pd.NaT
        if re.search(r"[A-Za-z]{3}", t) and re.search(r"\d{4}", t):
            parsed = pd.to_datetime(t, errors="coerce", format="mixed")
        if pd.isna(parsed):
            err[i] = f"{_show(uniq[i])} is not a date (use YYYY-MM-DD)"
        else:
            out[i] = np.datetime64(pd.Timestamp(parsed).tz_localize(None).as_unit("us"))
    years = out.astype("datetime64[Y]").astype("float64") + 1970
    implausible = (~np.isnat(out)) & ((years < 1900) | (years > 2100))
    for k in np.flatnonzero(implausible):
        err[k] = f"{_show(uniq[k])} is not a plausible date (year {int(years[k])})"
        out[k] = np.datetime64("NaT")
    if not keep_time:
        out = out.astype("datetime64[D]").astype("datetime64[us]")
    return out, err


def _ids(s: pd.Series, warn_numbers: bool) -> tuple[pd.Series, bool]:
    """Identifier/text cells -> text ("00042" stays; a number cell 42.0 -> "42"); True when numbers were seen."""
    if s.dtype != object:  # csv: already trimmed text, missing cells are NA
        return s, False
    codes, uniq = _factorize(s)
    out = np.empty(len(uniq) + 1, dtype=object)
    saw_numbers = False
    for i, v in enumerate(uniq):
        if type(v) is str:  # most cells of an id column: _is_blank and the strip below, inlined
            t = v.strip()
            out[i] = None if t.lower() in MISSING_TOKENS else t
        elif _is_blank(v):
            out[i] = None
        elif isinstance(v, str):
            out[i] = v.strip()
        elif isinstance(v, bool):
            out[i] = str(v).lower()
        elif isinstance(v, (float, np.floating)):
            saw_numbers = True
            out[i] = str(int(v)) if float(v).is_integer() else repr(float(v))
        elif isinstance(v, (int, np.integer)):
            saw_numbers = True
            out[i] = str(v)
        elif isinstance(v, datetime):
            out[i] = v.isoformat(sep=" ")
        elif isinstance(v, date):
            out[i] = v.isoformat()
        else:
            out[i] = str(v)
    out[-1] = None
    return pd.Series(pd.array(out, dtype="str").take(codes, allow_fill=True), index=s.index), \
        saw_numbers and warn_numbers


def _likert_value(v, labels: dict[str, int] | None) -> float | None:
    """A cell as a Likert answer (number, numeric text or label); None when it is not one."""
    if isinstance(v, bool):
        return None
    if isinstance(v, (int, float, np.integer, np.floating)):
        return float(v) if float(v).is_integer() and 1 <= v <= 7 else None
    if isinstance(v, str):
        t = v.strip()
        if t.isdigit():
            n = int(t)
            return float(n) if 1 <= n <= 7 else None
        key = normalise_header(t)
        table = labels if labels is not None else LIKERT_7
        if key in table:
            return float(table[key])
    return None


@dataclass
class _Analysis:
    kind: str
    file_name: str
    grid: readers.Grid
    mapping: dict[str, str]
    columns: list[str]
    scale: int | None = None
    scale_source: str | None = None
    problems: _Problems | None = None
    warnings: list[str] = field(default_factory=list)
    totals_dropped: int = 0
    duplicates_skipped: int = 0
    units_created: list[str] = field(default_factory=list)
    out: pd.DataFrame | None = None
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)
    sha256: str = ""
    rows_loaded: int = 0
    rows_in_file: int = 0
    rejected: pd.DataFrame | None = None
    skip_invalid: bool = False
    fatal: list[Problem] = field(default_factory=list)
    item_meta: pd.DataFrame | None = None
    answers: pd.DataFrame | None = None
    erased_skipped: int = 0

    def preview(self) -> Preview:
        listed = self.fatal + (self.problems.listed() if self.problems else [])
        n = len(self.fatal) + (self.problems.n if self.problems else 0)
        sample = self.out.head(SAMPLE_ROWS).reset_index(drop=True) if self.out is not None else pd.DataFrame()
        if self.answers is not None and len(self.answers) and len(sample):
            # engagement: show each item's (reverse-keyed) score beside the respondent's fields
            first = self.answers[self.answers["row_no"].isin(set(sample["row_no"]))]
            wide = first.pivot_table(index="row_no", columns="item", values="score", aggfunc="first")
            meta_items = list(self.item_meta["item"]) if self.item_meta is not None else list(wide.columns)
            order = [n for n in meta_items if n in wide.columns]
            sample = sample.join(wide[order].astype("Int64"), on="row_no")
        return Preview(
            kind=self.kind, file_name=self.file_name, sheets=list(self.grid.sheets), sheet=self.grid.sheet,
            header_row=self.grid.header_row, columns=list(self.columns), mapping=dict(self.mapping),
            scale=self.scale, scale_source=self.scale_source, rows=self.rows_in_file, sample=sample,
            problems=listed, n_problems=n, warnings=list(self.warnings), totals_dropped=self.totals_dropped,
            duplicates_skipped=self.duplicates_skipped, units_created=list(self.units_created), ok=n == 0,
        )

    def raise_if_refused(self) -> None:
        listed = self.fatal + (self.problems.listed() if self.problems and not self.skip_invalid else [])
        n = len(self.fatal) + (self.problems.n if self.problems and not self.skip_invalid else 0)
        if n:
            what = "problem" if n == 1 else "problems"
            hint = "" if self.fatal else "; fix them, or load the good rows with --skip-invalid"
            summary = str(listed[0]) if n == 1 else f"{n:,} {what}{hint}"
            err = CxStatsError(f"{self.file_name} refused, nothing loaded: {summary}",
                               problems=[str(p) for p in listed])
            err.n_problems = n
            raise err
        if self.rows_loaded == 0:
            if self.erased_skipped and not self.duplicates_skipped:
                raise CxStatsError(f"{self.file_name}: every row belongs to erased people "
                                   f"({self.erased_skipped:,} rows skipped); nothing to load")
            if self.duplicates_skipped:
                raise CxStatsError(f"{self.file_name}: every row is already stored "
                                   f"({self.duplicates_skipped:,} duplicates); nothing to load")
            raise CxStatsError(f"{self.file_name} has no valid rows to load")


def _limits(con) -> tuple[int, int, tuple[str, ...]]:
    items: tuple[str, ...] = ()
    if con is None:
        mb, rows = float(store.DEFAULT_SETTINGS["max_file_mb"]), int(store.DEFAULT_SETTINGS["max_rows"])
    else:
        st = store.settings(con)
        mb, rows, items = st.max_file_mb, st.max_rows, st.index_items
    return int(mb * 1_000_000), rows, items


def _resolve_mapping(kind: str, header: list[str], user: dict[str, str] | None) -> tuple[list[str], dict[int, str]]:
    """Column labels as the user sees them, and position -> field/'item'/'ignore' for the mapped ones."""
    k = KINDS[kind]
    lookup = header_lookup(kind)
    labels = [h if h else f"column {readers.column_letter(i)}" for i, h in enumerate(header)]
    seen: dict[str, int] = {}
    for i, lab in enumerate(labels):  # two columns with one header: tell them apart
        if lab in seen:
            labels[i] = f"{lab} ({readers.column_letter(i)})"
        seen.setdefault(lab, i)
    valid = set(k.field_names) | {"ignore"} | ({"item"} if kind == "engagement" else set())
    user = dict(user or {})
    by_norm = {normalise_header(lab): i for i, lab in enumerate(labels)}
    forced: dict[int, str] = {}
    for src, dst in user.items():
        if dst not in valid:
            raise CxStatsError(f"--map {src}={dst}: {kind} has no field {dst!r}; fields are "
                               f"{', '.join(sorted(valid))}")
        pos = labels.index(src) if src in labels else by_norm.get(normalise_header(src))
        if pos is None:
            raise CxStatsError(f"--map {src}={dst}: the file has no column {src!r}; its columns are "
                               f"{', '.join(repr(lab) for lab in labels)}")
        forced[pos] = dst
    mapped: dict[int, str] = {}
    for i, h in enumerate(header):
        if i in forced:
            mapped[i] = forced[i]
        elif h and normalise_header(h) in lookup:
            mapped[i] = lookup[normalise_header(h)]
    return labels, mapped


def _header_score(kind: str, user: dict[str, str] | None):
    lookup = header_lookup(kind)
    user_keys = {normalise_header(s) for s in (user or {})}

    def score(cells: list[str]) -> int:
        found = {lookup[n] for n in (normalise_header(c) for c in cells if c) if n in lookup}
        found |= {n for n in (normalise_header(c) for c in cells if c) if n in user_keys}
        return len(found)

    return score


def _analyse(data, file_name, kind, *, sheet, mapping, dayfirst, scale, reverse, con, viewer, skip_invalid,
             isolated=False):
    k = _kind(kind)
    _check_upload_allowed(viewer, kind)
    if scale is not None and int(scale) not in (5, 7):
        raise CxStatsError("--scale must be 5 or 7")
    max_bytes, max_rows, index_items = _limits(con)
    expected = ", ".join(k.required) + (" and " + "/".join(k.one_of[0]) if k.one_of else "")
    if isolated:
        grid = read_grid_isolated(data, file_name, sheet=sheet, max_bytes=max_bytes, max_rows=max_rows, kind=kind,
                                  mapping=mapping, expected=expected)
    else:
        grid = readers.read_grid(data, file_name, sheet=sheet, max_bytes=max_bytes, max_rows=max_rows,
                                 score_row=_header_score(kind, mapping), expected=expected)
    labels, mapped = _resolve_mapping(kind, grid.header, mapping)
    frame = grid.data
    row_no = grid.row_no

    # empty rows and columns are skipped
    blank = {i: _blank_mask(frame[i]) for i in frame.columns}
    all_blank = np.logical_and.reduce(list(blank.values())) if blank else np.zeros(len(frame), bool)
    empty_cols = [i for i in frame.columns if not grid.header[i] and blank[i].all() and i not in mapped]
    keep_cols = [i for i in frame.columns if i not in empty_cols]
    labels_kept = [labels[i] for i in keep_cols]

    # totals rows: "Total" / "Grand total" in the first column or the unit column
    totals = np.zeros(len(frame), dtype=bool)
    check_cols = {keep_cols[0]} if keep_cols else set()
    check_cols |= {i for i, f in mapped.items() if f == "unit_id"}
    for i in check_cols:
        totals |= _total_mask(frame[i])
    totals &= ~all_blank
    keep_rows = ~(all_blank | totals)
    a = _Analysis(kind=kind, file_name=file_name, grid=grid, mapping={}, columns=labels_kept, skip_invalid=skip_invalid)
    a.totals_dropped = int(totals.sum())
    if a.totals_dropped:
        rows = ", ".join(str(r) for r in row_no[totals][:5])
        a.warnings.append(f"dropped {a.totals_dropped} totals {'row' if a.totals_dropped == 1 else 'rows'} (row {rows})")
    if not keep_rows.all():
        frame = frame.loc[keep_rows].reset_index(drop=True)
        row_no = row_no[keep_rows]
        blank = {i: b[keep_rows] for i, b in blank.items()}
    n = len(frame)
    a.rows_in_file = n
    if n > max_rows:
        raise CxStatsError(f"{file_name} has {n:,} rows; the limit is {max_rows:,} (setting max_rows): "
                           "split the file or ask an admin to raise the limit")
    if n == 0:
        raise CxStatsError(f"{file_name} has a header (row {grid.header_row}) but no data rows; nothing to load")

    order = {lab: j for j, lab in enumerate(labels_kept)}
    probs = _Problems(row_no, order)
    a.problems = probs

    # engagement: unmapped columns whose every answer is a Likert answer are items
    label_scale = None
    if kind == "engagement":
        item_cols, label_scale = _find_items(frame, keep_cols, mapped, blank)
        for i in item_cols:
            mapped[i] = "item"
    for i in keep_cols:
        a.mapping[labels[i]] = mapped.get(i, "ignore")
    unknown = [labels[i] for i in keep_cols if i not in mapped]
    if unknown:
        shown = ", ".join(repr(u) for u in unknown[:8]) + (" ..." if len(unknown) > 8 else "")
        a.warnings.append(f"columns not used (not recognised as {kind} fields): {shown}; "
                          "if one should be loaded, map it to a field in the column mapping "
                          "(command line: --map 'SOURCE=FIELD')")

    # a field may come from one column only
    by_field: dict[str, list[int]] = {}
    for i, f in mapped.items():
        if f not in ("ignore", "item"):
            by_field.setdefault(f, []).append(i)
    for f, cols in by_field.items():
        if len(cols) > 1:
            names = " and ".join(repr(labels[i]) for i in cols)
            a.fatal.append(Problem(None, None, f"columns {names} both map to {f}; map all but one to ignore, "
                                               f"e.g. --map '{labels[cols[-1]]}=ignore'"))
    for f in k.required:
        if f not in by_field:
            a.fatal.append(Problem(None, None, _missing_column_message(kind, f)))
    for group in k.one_of:
        if not any(g in by_field for g in group):
            a.fatal.append(Problem(None, None, f"{kind} files need a column for {' or '.join(group)} "
                                               f"(none found); map a column to {group[0]} in the column mapping "
                                               f"(command line: --map 'SOURCE={group[0]}')"))
    if a.fatal:
        return a

    col_of = {f: cols[0] for f, cols in by_field.items()}
    out = pd.DataFrame({"row_no": row_no.astype(np.int32)})
    leading_zero_warned = False
    for f in k.fields:
        if f.name not in col_of:
            continue
        i = col_of[f.name]
        s = frame[i]
        lab = labels[i]
        if f.type in ("id", "text"):
            vals, saw_numbers = _ids(s, warn_numbers=f.type == "id")
            if saw_numbers and not leading_zero_warned:
                a.warnings.append(f"column {lab!r} holds numbers (42.0 is read as '42'); leading zeros "
                                  "such as 00042 cannot be recovered from number cells: format the column as text")
                leading_zero_warned = True
            out[f.name] = vals
            missing = vals.isna().to_numpy()
        elif f.type in ("int", "bigint", "float", "money"):
            codes, uniq = _factorize(s)
            nums, err = _numbers(uniq, grid.decimal_comma)
            err = _range_errors(f, uniq, nums, err)
            if f.type == "money":
                nums = _money_cents(nums)
            out[f.name] = _finish_numbers(f, _spread(codes, nums, np.nan))
            _add_row_errors(probs, codes, err, lab)
            missing = np.isnan(_spread(codes, nums, np.nan))
        elif f.type in ("date", "timestamp"):
            codes, uniq = _factorize(s)
            try:
                vals, err = _dates(uniq, dayfirst, keep_time=f.type == "timestamp")
            except _DateColumnProblem as exc:
                a.fatal.append(Problem(None, lab, str(exc)))
                continue
            out[f.name] = _spread(codes, vals, np.datetime64("NaT"))
            _add_row_errors(probs, codes, err, lab)
            missing = np.isnat(out[f.name].to_numpy())
        elif f.type == "bool":
            codes, uniq = _factorize(s)
            vals, err = _bools(uniq)
            spread = _spread(codes, vals, None)
            out[f.name] = pd.array(spread, dtype="boolean")
            _add_row_errors(probs, codes, err, lab)
            missing = pd.isna(spread)
        else:  # pragma: no cover - schema types are closed
            raise AssertionError(f.type)
        if f.required:
            idx = np.flatnonzero(missing & ~_errors_at(probs, lab, len(out)))
            probs.rows(idx, lab, f"is empty; {f.name} is required")
    if a.fatal:
        return a

    for group in k.one_of if kind == "mentions" else ():  # feedback: a service contact may carry no score
        present = [g for g in group if g in out.columns]
        none = np.logical_and.reduce([out[g].isna().to_numpy() for g in present])
        cols = ", ".join(labels[col_of[g]] for g in present)
        probs.rows(np.flatnonzero(none & ~probs.bad), None,
                   f"no {' or '.join(group)} given (columns {cols}); a row needs at least one")

    items = pd.DataFrame()
    if kind == "engagement":
        items = _engagement_items(a, frame, mapped, labels, blank, scale, label_scale, reverse, probs, index_items)
    if kind == "units":
        _unique_in_file(probs, out, "unit_id", labels[col_of["unit_id"]], "unit")
    if kind == "purchases":
        _purchase_lines(out, probs, labels, col_of)
    if kind == "reorgs":
        _reorg_rules(a, con, out, probs, labels, col_of, viewer)
    elif "unit_id" in out.columns and kind != "units":
        _resolve_units(a, con, out, probs, labels[col_of["unit_id"]], viewer)
    elif viewer.role == "manager":
        raise AccessDenied("managers upload files with a unit column for their own units only")
    if kind == "mentions":
        _mention_sentiment(out)
    if a.fatal:
        return a

    # skip-invalid: keep good rows, remember the rejected ones with their reasons
    bad = probs.bad
    if skip_invalid and bad.any():
        reasons = probs.reasons()
        rej = frame.loc[bad, keep_cols].copy()
        rej.columns = labels_kept
        rej.insert(0, "problem", reasons.reindex(np.flatnonzero(bad)).to_numpy())
        rej.insert(0, "row", row_no[bad])
        a.rejected = rej
        good = ~bad
        out = out.loc[good].reset_index(drop=True)
        if len(items):
            items = items[items["row_no"].isin(set(out["row_no"]))]
    elif bad.any():
        a.out, a.answers = out, items
        return a
    if con is not None:
        out, items = _skip_erased(a, con, out, items)
    a.out, a.answers = out, items
    if len(out) == 0:
        if not a.erased_skipped:
            a.fatal.append(Problem(None, None, "no valid rows to load"))
        return a

    a.sha256 = _content_hash(kind, out, items)
    if con is not None:
        prior = store.find_active_hash(con, kind, a.sha256)
        if prior is not None:
            a.fatal.append(Problem(None, None, f"this content is already loaded as batch {prior} (the same rows, "
                                               "whatever the file name); undo that batch first to load it again"))
            return a
        out, items = _skip_stored(a, con, out, items, labels, col_of)
        if a.fatal:
            return a
        if kind == "engagement" and len(out):
            _refuse_small_changes_to_kept_groups(a, con, out, viewer)
            if a.fatal:
                return a
    a.rows_loaded = len(out)
    a.tables = _tables(a, kind, out, items)
    return a


def _refuse_small_changes_to_kept_groups(a, con, out: pd.DataFrame, viewer: Viewer) -> None:
    """DESIGN.md, "Differencing and oracles": a batch may not change an already reported (kept)
    group by fewer than min_group respondents; figures before and after would show those people."""
    from . import metrics

    small = metrics.small_changes_to_kept_groups(con, out, viewer=viewer)
    if small.empty:
        return
    mg = store.settings(con).min_group
    for r in small.itertuples(index=False):
        change = " and ".join(part for part in (
            f"add {r.added:,} respondent(s)" if r.added else "",
            f"move {r.removed:,} of them to another period" if r.removed else "") if part)
        a.fatal.append(Problem(None, None, (
            f"unit {r.unit_id}, {r.period} (a group already stored, {r.respondents:,} respondents): this file "
            f"would {change}. A reported group may only change by at least {mg} respondents (the anonymity "
            "threshold) at once, and stored respondents never move to another period, or figures before and "
            f"after would show those few people's answers. Load these responses together with others of "
            f"{r.unit_id} for {r.period} once there are enough (and give a late wave its own wave name)"
            )))


def _missing_column_message(kind: str, f: str) -> str:
    syn = [s for s in KINDS[kind].field(f).synonyms][:4]
    also = f" (or a column named {', '.join(syn)})" if syn else ""
    return (f"missing column {f!r}{also}: a {kind} file needs it; rename the column or map it with "
            f"--map 'SOURCE={f}' (is this a {kind} file?)")


def _errors_at(probs: _Problems, column: str, n: int) -> np.ndarray:
    m = np.zeros(n, dtype=bool)
    for idx, col, _ in probs.parts:
        if col == column:
            m[idx] = True
    return m


def _add_row_errors(probs: _Problems, codes: np.ndarray, err: list, column: str) -> None:
    err_arr = np.array(list(err) + [None], dtype=object)
    has = np.array([e is not None for e in err] + [False], dtype=bool)
    if not has.any():
        return
    row_has = has[codes]
    idx = np.flatnonzero(row_has)
    probs.rows(idx, column, err_arr[codes[idx]])


def _range_errors(f: Field, uniq: np.ndarray, nums: np.ndarray, err: list) -> list:
    err = list(err)
    for j, v in enumerate(nums):
        if err[j] is not None or v != v:
            continue
        if f.type in ("int", "bigint") and not float(v).is_integer():
            err[j] = f"{_show(uniq[j]) if isinstance(uniq[j], str) else f'{v:g}'} is not a whole number"
        elif (f.lo is not None and v < f.lo) or (f.hi is not None and v > f.hi):
            err[j] = f"{v:g} is outside {f.range_text}"
    return err


def _finish_numbers(f: Field, values: np.ndarray):
    if f.type in ("int", "bigint"):
        clean = np.where(np.isfinite(values) & (values == np.round(values)), values, np.nan)
        return pd.array(clean, dtype="Float64").astype("Int64")
    if f.type == "money":
        return values  # already rounded half-up to cents by _money_cents
    return values


def _money_cents(nums: np.ndarray) -> np.ndarray:
    """Round to cents half away from zero, as on a receipt (binary floats would round 0.005 down)."""
    out = nums.copy()
    for j, v in enumerate(nums):
        # beyond DECIMAL(18,2) (or inf) the range check has already reported the cell; Decimal's
        # 28-digit context cannot quantize such values, so leave them as they are
        if math.isfinite(v) and abs(v) < 1e15:
            out[j] = float(Decimal(repr(float(v))).quantize(CENT, rounding=ROUND_HALF_UP))
    return out


def _bools(uniq: np.ndarray) -> tuple[np.ndarray, list]:
    out = np.empty(len(uniq), dtype=object)
    err: list = [None] * len(uniq)
    for i, v in enumerate(uniq):
        if isinstance(v, bool):
            out[i] = v
        elif isinstance(v, (int, float)) and v in (0, 1):
            out[i] = bool(v)
        elif _is_blank(v):
            out[i] = None
        elif isinstance(v, str) and normalise_header(v) in TRUE_TOKENS:
            out[i] = True
        elif isinstance(v, str) and normalise_header(v) in FALSE_TOKENS:
            out[i] = False
        else:
            out[i] = None
            err[i] = f"{_show(v)} is not yes/no"
    return out, err


def _find_items(frame, keep_cols, mapped, blank) -> tuple[list[int], int | None]:
    """Columns whose every non-blank answer is a Likert answer; the scale their labels imply."""
    items, saw7, saw_labels = [], False, False
    for i in keep_cols:
        if i in mapped or blank[i].all():
            continue
        codes, uniq = _factorize(frame[i])
        vals = [v for v in uniq if not _is_blank(v)]
        likert = np.array([_likert_value(v, None) is not None for v in vals], dtype=bool)
        if not vals or not likert.any():
            continue
        if not likert.all():
            # a labelled column with a few typos ('Agre') is still an item (the typos become errors);
            # a number beyond 7 means a count or an age, not an answer
            others = [v for v, ok in zip(vals, likert) if not ok]
            if any(isinstance(v, (int, float)) or str(v).strip().replace(".", "", 1).isdigit() for v in others):
                continue
            counts = np.bincount(codes[codes >= 0], minlength=len(uniq))
            nonblank = [j for j, v in enumerate(uniq) if not _is_blank(v)]
            share = counts[[j for j, ok in zip(nonblank, likert) if ok]].sum() / max(counts[nonblank].sum(), 1)
            labels = list(LIKERT_7) + list(LIKERT_5)
            typos = all(difflib.get_close_matches(normalise_header(v), labels, n=1, cutoff=0.75) for v in others)
            if share < 0.9 and not typos:
                continue
        items.append(i)
        for v in vals:
            if isinstance(v, str) and not v.strip().isdigit():
                key = normalise_header(v)
                saw_labels |= key in LIKERT_7
                saw7 |= key in LIKERT_7 and key not in LIKERT_5
    return items, (7 if saw7 else 5) if saw_labels else None


def _engagement_items(a, frame, mapped, labels, blank, scale, label_scale, reverse, probs, index_items):
    item_cols = [i for i, f in mapped.items() if f == "item"]
    if not item_cols:
        a.fatal.append(Problem(None, None, "no item columns found: engagement files need one column per "
                                           "question with answers 1..5, 1..7 or labels such as 'Agree'"))
        return pd.DataFrame()
    names = {labels[i]: i for i in item_cols}
    rev = set()
    for r in reverse or ():
        hit = r if r in names else next((n for n in names if normalise_header(n) == normalise_header(r)), None)
        if hit is None:
            a.fatal.append(Problem(None, None, f"--reverse {r!r}: no item column of that name; items are "
                                               f"{', '.join(repr(n) for n in names)}"))
        else:
            rev.add(hit)
    if scale is not None:
        k, source = int(scale), "--scale"
    elif label_scale is not None:
        k, source = label_scale, "labels"
    else:
        k, source = 5, "answers"
    parsed = {}
    for name, i in names.items():
        codes, uniq = _factorize(frame[i])
        table = LIKERT_7 if k == 7 else LIKERT_5
        vals = np.full(len(uniq), np.nan)
        err: list = [None] * len(uniq)
        for j, v in enumerate(uniq):
            if _is_blank(v):
                continue
            x = _likert_value(v, table)
            if x is None:
                err[j] = f"{_show(v)} is not an answer on the 1-{k} scale"
            else:
                vals[j] = x
        parsed[name] = (codes, uniq, vals, err)
        if source == "answers" and np.nanmax(np.append(vals, 0)) > 5:
            k = 7
    if source == "answers":
        a.scale, a.scale_source = k, "answers"
    else:
        a.scale, a.scale_source = k, source
    long = []
    answered = np.zeros(len(frame), dtype=np.int64)
    index_names = [n for n in names if not index_items or n in index_items]
    for name, (codes, _uniq, vals, err) in parsed.items():
        err = [e if e is not None or vals[j] != vals[j] or vals[j] <= k
               else f"{vals[j]:g} is outside 1-{k}" for j, e in enumerate(err)]
        _add_row_errors(probs, codes, err, name)
        scores = _spread(codes, vals, np.nan)
        if name in rev:
            scores = k + 1 - scores
        ok = ~np.isnan(scores) & (scores >= 1) & (scores <= k)
        if name in index_names:
            answered += ok
        long.append(pd.DataFrame({"row_no": a.problems.row_no[ok].astype(np.int32), "item": name,
                                  "score": scores[ok].astype(np.int16)}))
    few = int((answered < len(index_names) / 2).sum())
    if few:
        a.warnings.append(f"{few:,} respondents answered fewer than half of the {len(index_names)} index items: "
                          "stored, but left out of the engagement index")
    a.item_meta = pd.DataFrame({"item": list(names), "scale": k, "reverse_keyed": [n in rev for n in names]})
    return pd.concat(long, ignore_index=True) if long else pd.DataFrame(columns=["row_no", "item", "score"])


def _unique_in_file(probs, out, fname, label, what) -> None:
    s = out[fname]
    dup = s.duplicated(keep="first").to_numpy() & s.notna().to_numpy()
    if dup.any():
        first = out.loc[~out[fname].duplicated(keep="first")].set_index(fname)["row_no"]
        msgs = [f"{what} {v!r} appears again (first in row {first.get(v)})" for v in s[dup]]
        probs.rows(np.flatnonzero(dup), label, msgs)


def _purchase_lines(out, probs, labels, col_of) -> None:
    """line_no = position within its order; an order's lines share customer and date."""
    has = out["order_id"].notna() if "order_id" in out.columns else pd.Series(False, index=out.index)
    out["line_no"] = np.int32(1)
    if not has.any():
        return
    o = out.loc[has, ["order_id", "customer_id", "order_date", "row_no"]]
    out.loc[has, "line_no"] = (o.groupby("order_id", sort=False).cumcount() + 1).astype(np.int32)
    first = o.groupby("order_id", sort=False).transform("first")
    for fname in ("customer_id", "order_date"):
        diff = o[fname].ne(first[fname]).fillna(False).astype(bool) & o[fname].notna() & first[fname].notna()
        if diff.any():
            rows = o.loc[diff]
            firsts = first.loc[diff]
            shown = [(_show(v) if not isinstance(v, pd.Timestamp) else v.date().isoformat()) for v in rows[fname]]
            was = [(_show(v) if not isinstance(v, pd.Timestamp) else v.date().isoformat()) for v in firsts[fname]]
            msgs = [f"order {oid!r} has {fname} {s} here but {w} in row {r}; lines of one order share it"
                    for oid, s, w, r in zip(rows["order_id"], shown, was, firsts["row_no"])]
            probs.rows(np.flatnonzero(diff.to_numpy()), labels[col_of[fname]], msgs)


def _resolve_units(a, con, out, probs, label, viewer) -> None:
    spellings = store.known_units(con) if con is not None else {}
    folded = {normalise_header(s): u for s, u in spellings.items()}
    units_exist = bool(con is not None and con.execute(
        "SELECT count(*) FROM batches WHERE kind = 'units' AND NOT undone").fetchall()[0][0])
    codes, uniq = _factorize(out["unit_id"])
    resolved = np.empty(len(uniq) + 1, dtype=object)
    unknown = []
    for j, u in enumerate(uniq):
        r = spellings.get(u) or folded.get(normalise_header(u))
        resolved[j] = r if r is not None else u
        if r is None:
            unknown.append(j)
    resolved[-1] = None
    if unknown and con is not None:
        if units_exist:
            err: list = [None] * len(uniq)
            choices = list(spellings)
            for j in unknown:
                hint = difflib.get_close_matches(str(uniq[j]), choices, n=1, cutoff=0.6)
                also = f" (unit {spellings[hint[0]]})" if hint and spellings[hint[0]] != hint[0] else ""
                err[j] = (f"unknown unit {uniq[j]!r}" + (f"; did you mean {hint[0]!r}{also}?" if hint else "")
                          + " (units come from the units table; add it there or fix the spelling)")
            _add_row_errors(probs, codes, err, label)
        else:
            a.units_created = sorted(str(uniq[j]) for j in unknown)
    out["unit_id"] = pd.array(resolved[:-1], dtype="str").take(codes, allow_fill=True)
    if viewer.role == "manager":
        allowed = set(viewer.units)
        present = set(resolved[:-1]) | ({None} if (codes == -1).any() else set())
        foreign = sorted(str(u) for u in present - allowed if u is not None)
        if foreign or None in present:
            named = ", ".join(foreign) if foreign else "rows without a unit"
            raise AccessDenied(f"you may upload rows only for your units ({', '.join(sorted(allowed)) or 'none'}); "
                               f"this file has rows for {named}; remove those rows or ask an admin")


def _reorg_rules(a, con, out, probs, labels, col_of, viewer) -> None:
    """Re-organisations: both units resolved like any unit column; a unit merged into itself, or a
    row that closes a cycle with the stored re-organisations (A -> B, B -> A), refused by row."""
    from . import governance

    created: list[str] = []
    for col in ("from_unit", "to_unit"):
        tmp = pd.DataFrame({"unit_id": out[col]})
        _resolve_units(a, con, tmp, probs, labels[col_of[col]], viewer)
        out[col] = tmp["unit_id"].to_numpy()
        created += a.units_created
        a.units_created = []
    a.units_created = sorted(set(created))
    stored = [] if con is None else [(str(x), str(y)) for x, y in con.execute(
        "SELECT DISTINCT from_unit, to_unit FROM reorgs").fetchall()]
    incoming = [(i, None if pd.isna(x) else str(x), None if pd.isna(y) else str(y))
                for i, (x, y) in enumerate(zip(out["from_unit"], out["to_unit"]))]
    bad = governance.reorg_cycle_rows(stored, incoming)
    for i, msg in sorted(bad.items()):
        probs.rows(np.array([i]), labels[col_of["to_unit"]], msg)


def _skip_erased(a, con, out, items):
    """Rows whose customer id, respondent id, handle or e-mail matches an erasure are skipped and
    counted (DESIGN.md: later imports skip rows of erased people and say how many)."""
    if not con.execute("SELECT count(*) FROM erasures").fetchall()[0][0]:
        return out, items
    erased = store.erased_hmacs(con)
    db = con.execute("SELECT path FROM duckdb_databases() WHERE database_name = current_database()").fetchall()[0][0]
    key = store.erasure_key(db)
    if key is None:
        raise CxStatsError(f"erasures are recorded but the erasure key is missing: set {store.KEY_ENV} or restore "
                           f"{store.erasure_key_path(db)}; nothing loaded")
    hit = np.zeros(len(out), dtype=bool)
    for col, what, sets in (("customer_id", "id", erased["customer"]), ("respondent_id", "id", erased["respondent"]),
                            ("handle", "handle", erased["handle"]), ("email", "email", erased["email"])):
        if col not in out.columns or not sets:
            continue
        codes, uniq = pd.factorize(out[col])
        flags = np.array([store.identifier_hmac(key, u, what) in sets for u in uniq] + [False], dtype=bool)
        hit |= flags[codes]
    if a.rejected is not None and len(a.rejected):
        every = erased["customer"] | erased["respondent"]
        drop = [store.cells_erased(key, erased, every, row) for row in a.rejected.astype(str).itertuples(index=False)]
        a.rejected = a.rejected.loc[~np.array(drop, dtype=bool)].reset_index(drop=True)
    a.erased_skipped = int(hit.sum())
    if not hit.any():
        return out, items
    gone = set(out.loc[hit, "row_no"])
    out = out.loc[~hit].reset_index(drop=True)
    if len(items):
        items = items[~items["row_no"].isin(gone)]
    a.warnings.append(f"{a.erased_skipped:,} rows of erased people skipped (their id, handle or e-mail matches "
                      "an erasure)")
    return out, items


def _mention_sentiment(out) -> None:
    from . import sentiment

    if "sentiment" in out.columns:
        have = ~np.isnan(out["sentiment"].to_numpy(dtype=float))
    else:
        out["sentiment"] = np.nan
        have = np.zeros(len(out), dtype=bool)
    source = np.where(have, "file", "unscored").astype(object)
    if "text" in out.columns:
        need = ~have & out["text"].notna().to_numpy()
        if need.any():
            texts = out.loc[need, "text"]
            codes, uniq = pd.factorize(texts)
            scores = np.array([np.nan if s is None else s for s in sentiment.compound(list(uniq))], dtype=float)
            vals = scores[codes]
            sent = out["sentiment"].to_numpy(dtype=float).copy()
            sent[need] = vals
            out["sentiment"] = sent
            source[np.flatnonzero(need)[~np.isnan(vals)]] = "vader"
    out["sentiment_source"] = source


def _content_hash(kind: str, out: pd.DataFrame, items: pd.DataFrame) -> str:
    """Hash of the normalised rows (not the file's bytes or name): the same content in another file,
    with other title rows, another encoding or another row order, is the same batch."""
    import duckdb

    h = hashlib.sha256(kind.encode())
    cols = [c for c in out.columns if c not in ("row_no", "sentiment_source")]
    h.update(",".join(cols).encode())
    con = duckdb.connect()  # in memory: multi-threaded hashing, the user's database is not touched
    try:
        for name, frame, use in (("_rows", out, cols), ("_answers", items, ["item", "score"])):
            if not len(frame):
                continue
            con.register(name, frame)
            args = ", ".join(use)
            # sum and xor of row hashes: order-independent, and a repeated row still counts
            got = con.execute(f"SELECT count(*), sum(hash({args}))::HUGEINT::VARCHAR, bit_xor(hash({args})) "
                              f"FROM {name}").fetchall()[0]
            h.update(repr(got).encode())
    finally:
        con.close()
    return h.hexdigest()


def _keys_may_repeat(con, keys: pd.DataFrame) -> bool:
    """False only when every key (one row of ``keys``) is distinct: DuckDB counts distinct key hashes
    (multi-threaded, ~0.2 s CPU for a million ids). Two keys with one hash look repeated, and the exact
    pandas check then runs, so a collision costs time, never a missed repeat."""
    if len(keys) < 2:
        return False
    if any(isinstance(t, np.dtype) and t.kind == "O" for t in keys.dtypes):
        return True
    import pyarrow as pa

    try:
        table = pa.Table.from_pandas(keys, preserve_index=False)
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
        return True
    args = ", ".join(f'"{c}"' for c in keys.columns)
    con.register("_incoming_keys", table)
    try:
        distinct = con.execute(f"SELECT count(DISTINCT hash({args})) FROM _incoming_keys").fetchall()[0][0]
    finally:
        con.unregister("_incoming_keys")
    return distinct < len(keys)


def _skip_stored(a, con, out, items, labels, col_of):
    """Rows whose key is already stored: same values -> skipped and counted; other values -> error
    (customers and units: a later upload updates them)."""
    k = KINDS[a.kind]
    if not k.key:
        return out, items
    key = list(k.key)
    if any(c not in out.columns for c in key):
        return out, items
    fields = [f.name for f in k.fields if f.name not in key and f.name in out.columns]
    has_key = np.logical_and.reduce([out[c].notna().to_numpy() for c in key])
    skip = np.zeros(len(out), dtype=bool)

    # repeated keys inside the file: identical rows are skipped, different ones are an error
    repeated = _keys_may_repeat(con, out.loc[has_key, key] if not has_key.all() else out[key])
    # the keyed rows are copied only when some key repeats (a million unique ids need no copy)
    keyed = out.loc[has_key, key + fields] if repeated else None
    dup_key = keyed.duplicated(subset=key, keep="first") if keyed is not None else pd.Series(dtype=bool)
    if keyed is not None and dup_key.any():
        exact = keyed.astype(object).duplicated(keep="first")
        conflict = dup_key & ~exact
        idx_keyed = np.flatnonzero(has_key)
        skip[idx_keyed[exact.to_numpy()]] = True
        if conflict.any() and a.kind not in UPDATABLE_KINDS:
            first_rows = out.loc[has_key].drop_duplicates(subset=key, keep="first").set_index(key)["row_no"]
            rows = out.loc[has_key].loc[conflict.to_numpy()]
            msgs = [f"{'/'.join(key)} {tuple(r) if len(key) > 1 else r[0]!r} also in row "
                    f"{first_rows.get(tuple(r) if len(key) > 1 else r[0])} with other values"
                    for r in rows[key].itertuples(index=False)]
            label = labels[col_of[key[0]]] if key[0] in col_of else key[0]
            a.fatal.extend(Problem(int(rn), label, m) for rn, m in zip(rows["row_no"], msgs[:PROBLEMS_KEPT]))
    n_stored = con.execute(f"SELECT count(*) FROM {k.table}").fetchall()[0][0]
    if n_stored:
        cols = key + fields
        inc = out.loc[has_key & ~skip, cols].copy()
        inc["_idx"] = np.flatnonzero(has_key & ~skip)
        types = {f.name: f.sql_type for f in k.fields}
        types["line_no"] = "INTEGER"
        casted = ", ".join(f"CAST({c} AS {types[c]}) AS {c}" for c in cols)
        on = " AND ".join(f"i.{c} = s.{c}" for c in key)
        same = " AND ".join(f"i.{c} IS NOT DISTINCT FROM s.{c}" for c in fields) or "TRUE"
        part = ", ".join(key)
        con.register("_incoming_rows", inc)
        try:
            rows = con.execute(
                f"WITH s AS ({store.current_rows_sql(k.table, part)}), i AS (SELECT _idx, {casted} FROM _incoming_rows) "
                f"SELECT i._idx, s.batch_id, {same} AS same FROM i JOIN s ON {on}"
            ).fetchall()
        finally:
            con.unregister("_incoming_rows")
        if rows:
            idx = np.array([r[0] for r in rows], dtype=np.int64)
            same_arr = np.array([bool(r[2]) for r in rows])
            skip[idx[same_arr]] = True
            if a.kind not in UPDATABLE_KINDS and (~same_arr).any():
                label = labels[col_of[key[0]]] if key[0] in col_of else key[0]
                for j in np.flatnonzero(~same_arr)[:PROBLEMS_KEPT]:
                    i, batch = int(idx[j]), rows[j][1]
                    kv = out.loc[i, key[0]]
                    a.fatal.append(Problem(int(out.loc[i, "row_no"]), label,
                                           f"{key[0]} {kv!r} is already stored (batch {batch}) with other values; "
                                           f"fix the row, or undo batch {batch} first"))
    a.duplicates_skipped = int(skip.sum())
    if skip.any():
        kept_rows = set(out.loc[skip, "row_no"])
        out = out.loc[~skip].reset_index(drop=True)
        if len(items):
            items = items[~items["row_no"].isin(kept_rows)]
        a.warnings.append(f"{a.duplicates_skipped:,} rows already stored with the same values were skipped")
    return out, items


def _tables(a, kind: str, out: pd.DataFrame, items: pd.DataFrame) -> dict[str, pd.DataFrame]:
    tables = {kind: out}
    if kind == "engagement":
        tables["engagement_answers"] = items
        tables["engagement_items"] = a.item_meta
    if a.units_created:
        created = pd.DataFrame({"unit_id": a.units_created})
        tables["units"] = created
    return tables


def _write_rejected(rejected: pd.DataFrame, path: Path | None, file_name: str) -> str:
    stem = Path(file_name).stem
    targets = []
    if path is not None:
        targets.append(path.with_name(f"{path.stem}.rejected.csv"))
    targets.append(Path.cwd() / f"{stem}.rejected.csv")
    for t in targets:
        try:
            buf = io.StringIO()
            rejected.to_csv(buf, index=False)
            t.write_text(buf.getvalue(), encoding="utf-8")
            return str(t)
        except OSError:
            continue
    raise CxStatsError(f"cannot write the rejected rows next to {file_name} or in the current folder")


# ---------------------------------------------------------------- parsing in a worker with a memory cap

PARSE_MB_DEFAULT = 2048


def parse_memory_mb() -> int:
    """The worker's memory cap: CXSTATS_PARSE_MB (MB of address space beyond its start), default 2048."""
    import os

    raw = os.environ.get("CXSTATS_PARSE_MB", "")
    try:
        return max(64, int(raw)) if raw else PARSE_MB_DEFAULT
    except ValueError:
        raise CxStatsError(f"CXSTATS_PARSE_MB={raw!r} is not a number of megabytes") from None


def _worker_main() -> None:
    """The child: cap the address space, read the grid from the pickled request on stdin, pickle it back."""
    import pickle
    import resource
    import sys

    req = pickle.load(sys.stdin.buffer)
    try:
        with open("/proc/self/status") as f:
            vm = next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmSize:"))
    except (OSError, StopIteration):
        vm = 0
    limit = vm + req.pop("cap_bytes")
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    kind, mapping = req.pop("kind"), req.pop("mapping")
    try:
        grid = readers.read_grid(score_row=_header_score(kind, mapping), **req)
        out = ("ok", grid)
    except CxStatsError as exc:
        out = ("error", str(exc), list(getattr(exc, "problems", []) or []))
    except MemoryError:
        out = ("memory",)
    sys.stdout.buffer.write(pickle.dumps(out, protocol=5))
    sys.stdout.buffer.flush()


def _memory_error(file_name: str, mb: int) -> CxStatsError:
    return CxStatsError(
        f"{file_name}: this file needs more memory than the limit of {mb:,} MB to read; split it into smaller "
        "files, save it as .csv, or ask an admin to raise CXSTATS_PARSE_MB"
    )


def read_grid_isolated(data, file_name, *, sheet, max_bytes, max_rows, kind, mapping, expected):
    """readers.read_grid in a worker process capped at parse_memory_mb(): no file can take the server down.

    A worker killed by the cap (the reader aborts when an allocation fails) becomes a CxStatsError.
    """
    import pickle
    import subprocess
    import sys

    mb = parse_memory_mb()
    req = {"data": data, "file_name": file_name, "sheet": sheet, "max_bytes": max_bytes, "max_rows": max_rows,
           "expected": expected, "kind": kind, "mapping": mapping, "cap_bytes": mb << 20}
    root = str(Path(__file__).resolve().parents[1])
    proc = subprocess.run([sys.executable, "-c", "from cxstats.ingest import _worker_main; _worker_main()"],
                          input=pickle.dumps(req, protocol=5), capture_output=True, cwd=root)
    try:
        msg = pickle.loads(proc.stdout) if proc.returncode == 0 and proc.stdout else None
    except Exception:  # a truncated answer from a worker that died writing it
        msg = None
    if msg is None or msg[0] == "memory":
        raise _memory_error(file_name, mb)
    if msg[0] == "error":
        raise CxStatsError(msg[1], problems=msg[2])
    return msg[1]
