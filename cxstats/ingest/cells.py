"""Cell parsers: distinct cell values -> numbers, dates, ids, yes/no, Likert answers, with a message for each bad one.

Each column is factorised and only its distinct values are parsed (a million csat answers are five
values), then spread back to the rows, so messages are built only for the rows that are wrong.
"""

from __future__ import annotations

import math
import operator
import re
from datetime import date, datetime, time, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import cast

import numpy as np
import pandas as pd

from cxstats.schema import LIKERT_7, MISSING_TOKENS, TOTAL_TOKENS, Field, normalise_header

from .results import _Problems

CENT = Decimal("0.01")

EXCEL_EPOCH = pd.Timestamp("1899-12-30")  # Excel's day 0 (1900 leap-year bug included)

TRUE_TOKENS = {"yes", "y", "true", "t", "1", "x", "ja", "oui", "si", "optedin", "optin", "consent", "consented"}

FALSE_TOKENS = {"no", "n", "false", "f", "0", "nein", "non", "optedout", "optout", "noconsent", "withdrawn"}


def _show(v) -> str:
    """A cell value as the user typed it, for messages."""
    if isinstance(v, float):
        return f"{v:g}"
    if isinstance(v, (datetime, date)):
        return v.isoformat()
    return repr(str(v))


_TOTAL_HINT = re.compile(r"tot|sum|overall", re.IGNORECASE)


def _may_hint_total(text: bytes) -> bool:
    """False when no part of ``text`` can match _TOTAL_HINT: it is ASCII and holds none of its words in
    any case. C-speed scans instead of the regex over every cell: one letter of each word first (a
    column of ids or unit codes has no 't', 'u' or 'v' at all), the word itself only where the letter
    is; non-ASCII text always says True (case folding could make a match there)."""
    if not text.isascii():
        return True
    low = None
    for letter, word in ((b"t", b"tot"), (b"u", b"sum"), (b"v", b"overall")):
        if letter in text or letter.upper() in text:
            low = text.lower() if low is None else low
            if word in low:
                return True
    return False


def _text_chunks(s: pd.Series) -> list[bytes] | None:
    """The UTF-8 bytes of an Arrow-backed text column's cells, end to end, one piece per Arrow chunk
    (None when it is not such a column)."""
    import pyarrow as pa

    if not isinstance(s.dtype, pd.StringDtype) or s.dtype.storage != "pyarrow":
        return None
    col = pa.array(s.array)
    pieces = []
    for ch in col.chunks if isinstance(col, pa.ChunkedArray) else [col]:
        if not (pa.types.is_large_string(ch.type) or pa.types.is_string(ch.type)):
            return None
        if len(ch) == 0 or ch.buffers()[2] is None:
            continue
        _, off_buf, data_buf = ch.buffers()
        width = np.int64 if pa.types.is_large_string(ch.type) else np.int32
        off = np.frombuffer(off_buf, dtype=width)[ch.offset : ch.offset + len(ch) + 1]
        pieces.append(bytes(memoryview(data_buf)[int(off[0]) : int(off[-1])]))
    return pieces


def _total_mask(s: pd.Series, factorized: tuple[np.ndarray, np.ndarray] | None = None) -> np.ndarray:
    """Cells that say "Total", "Grand total", "TOTAL:"... (a totals row of a spreadsheet export).
    ``factorized``: _factorize(s) when the caller has it already (spreadsheet cells)."""
    if s.dtype != object:
        pieces = _text_chunks(s)
        if pieces is not None and not any(_may_hint_total(p) for p in pieces):
            return np.zeros(len(s), dtype=bool)
        hint = s.str.contains(_TOTAL_HINT.pattern, case=False, regex=True).fillna(False).to_numpy(dtype=bool)
        idx = np.flatnonzero(hint)
        out = np.zeros(len(s), dtype=bool)
        out[idx] = [normalise_header(v) in TOTAL_TOKENS for v in s.iloc[idx]]
        return out
    codes, uniq = factorized or _factorize(s)
    try:  # every distinct value a text (the usual id column): one join at C speed
        texts = "\x00".join(uniq)
    except TypeError:
        texts = "\x00".join(v for v in uniq if isinstance(v, str))
    if not _may_hint_total(texts.encode("utf-8", "surrogatepass")):
        return np.zeros(len(s), dtype=bool)
    is_total = np.array(
        [
            isinstance(v, str)
            and len(v) < 30
            and _TOTAL_HINT.search(v) is not None
            and normalise_header(v) in TOTAL_TOKENS
            for v in uniq
        ]
        + [False]
    )
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
    r"^(\d{1,2})[./-](\d{1,2})[./-](\d{4}|\d{2})(?:[ T,]+(\d{1,2}):(\d{2})(?::(\d{2}))?\s*([AaPp][Mm])?)?$"
)

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
                    "make them consistent or use ISO dates (YYYY-MM-DD)"
                )
            if not day_first_seen and not month_first_seen and (a != b).any():
                ex = uniq[todo_dmy[int(np.argmax(a != b))]].strip()
                raise _DateColumnProblem(
                    f"dates such as {ex} could be day/month or month/day; say --dayfirst if they are "
                    "day/month/year, otherwise use ISO dates (YYYY-MM-DD)"
                )
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
        parsed = pd.to_datetime(
            pd.DataFrame({"year": year, "month": month, "day": day, "hour": hour, "minute": minute, "second": second}),
            errors="coerce",
        )
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


_ANY_SPACE = re.compile(r"\s")  # what str.strip() strips (both test str.isspace)


def _plain_texts(uniq: np.ndarray) -> bool:
    """True when every distinct value is a str that neither strip() nor the missing tokens would
    change: C-level passes (the types, one lower() each, the first and last characters) instead of
    the loop in _ids."""
    if set(map(type, uniq)) != {str} or not MISSING_TOKENS.isdisjoint(map(str.lower, uniq)):
        return False  # ('' is a missing token, so every value below has a first and last character)
    firsts = "".join(map(operator.itemgetter(0), uniq))
    lasts = "".join(map(operator.itemgetter(-1), uniq))
    return not _ANY_SPACE.search(firsts) and not _ANY_SPACE.search(lasts)


def _ids(
    s: pd.Series, warn_numbers: bool, factorized: tuple[np.ndarray, np.ndarray] | None = None
) -> tuple[pd.Series, bool]:
    """Identifier/text cells -> text ("00042" stays; a number cell 42.0 -> "42"); True when numbers were seen.
    ``factorized``: _factorize(s) when the caller has it already."""
    if s.dtype != object:  # csv: already trimmed text, missing cells are NA
        return s, False
    codes, uniq = factorized or _factorize(s)
    out = np.empty(len(uniq) + 1, dtype=object)
    saw_numbers = False
    if _plain_texts(uniq):  # every value stays as it is: no loop over them
        out[:-1] = uniq
        uniq = uniq[:0]
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
    return pd.Series(
        pd.array(out, dtype="str").take(codes, allow_fill=True), index=s.index
    ), saw_numbers and warn_numbers


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


def _numbers_per_row(f: Field, codes: np.ndarray, nums: np.ndarray):
    """(the column's values per row, its missing cells) from the values per distinct cell: whole-number
    columns are finished on the distinct values and then taken per row (one Int64 gather instead of a
    float spread and two conversions of a million cells)."""
    missing = np.append(np.isnan(nums), True)[codes]
    if f.type in ("int", "bigint"):
        return _finish_numbers(f, nums).take(codes, allow_fill=True), missing
    return _finish_numbers(f, _spread(codes, nums, np.nan)), missing


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
