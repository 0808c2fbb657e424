"""The load step: read, drop blank and totals rows, map, parse every field, apply the kind's rules,
then repeated keys, into one validated batch (``_Analysis``).
"""

from __future__ import annotations

import io
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from cxstats import AccessDenied, CxStatsError, readers, store
from cxstats.schema import KINDS

from .cells import (
    _add_row_errors,
    _blank_mask,
    _bools,
    _DateColumnProblem,
    _dates,
    _errors_at,
    _factorize,
    _ids,
    _money_cents,
    _numbers,
    _numbers_per_row,
    _range_errors,
    _spread,
    _total_mask,
)
from .header import _header_score, _kind, _limits, _missing_column_message, _resolve_mapping
from .keys import _content_hash, _skip_erased, _skip_stored
from .results import SAMPLE_ROWS, Preview, Problem, _Problems
from .rules import (
    _check_upload_allowed,
    _engagement_items,
    _find_items,
    _mention_sentiment,
    _purchase_lines,
    _refuse_small_changes_to_kept_groups,
    _reorg_rules,
    _resolve_units,
    _unique_in_file,
)
from .worker import read_grid_isolated


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
            kind=self.kind,
            file_name=self.file_name,
            sheets=list(self.grid.sheets),
            sheet=self.grid.sheet,
            header_row=self.grid.header_row,
            columns=list(self.columns),
            mapping=dict(self.mapping),
            scale=self.scale,
            scale_source=self.scale_source,
            rows=self.rows_in_file,
            sample=sample,
            problems=listed,
            n_problems=n,
            warnings=list(self.warnings),
            totals_dropped=self.totals_dropped,
            duplicates_skipped=self.duplicates_skipped,
            units_created=list(self.units_created),
            ok=n == 0,
        )

    def raise_if_refused(self) -> None:
        listed = self.fatal + (self.problems.listed() if self.problems and not self.skip_invalid else [])
        n = len(self.fatal) + (self.problems.n if self.problems and not self.skip_invalid else 0)
        if n:
            what = "problem" if n == 1 else "problems"
            hint = "" if self.fatal else "; fix them, or load the good rows with --skip-invalid"
            summary = str(listed[0]) if n == 1 else f"{n:,} {what}{hint}"
            err = CxStatsError(
                f"{self.file_name} refused, nothing loaded: {summary}", problems=[str(p) for p in listed]
            )
            err.n_problems = n
            raise err
        if self.rows_loaded == 0:
            if self.erased_skipped and not self.duplicates_skipped:
                raise CxStatsError(
                    f"{self.file_name}: every row belongs to erased people "
                    f"({self.erased_skipped:,} rows skipped); nothing to load"
                )
            if self.duplicates_skipped:
                raise CxStatsError(
                    f"{self.file_name}: every row is already stored "
                    f"({self.duplicates_skipped:,} duplicates); nothing to load"
                )
            raise CxStatsError(f"{self.file_name} has no valid rows to load")


def _read(data, file_name, kind, k, *, sheet, mapping, max_bytes, max_rows, isolated) -> readers.Grid:
    """Step 1: the file's bytes -> the grid of cells under its header row (in the capped worker if isolated)."""
    expected = ", ".join(k.required) + (" and " + "/".join(k.one_of[0]) if k.one_of else "")
    if isolated:
        return read_grid_isolated(
            data,
            file_name,
            sheet=sheet,
            max_bytes=max_bytes,
            max_rows=max_rows,
            kind=kind,
            mapping=mapping,
            expected=expected,
        )
    return readers.read_grid(
        data,
        file_name,
        sheet=sheet,
        max_bytes=max_bytes,
        max_rows=max_rows,
        score_row=_header_score(kind, mapping),
        expected=expected,
    )


@dataclass(frozen=True)
class _Rows:
    """The rows and columns kept: blank rows and totals rows dropped, empty unnamed columns left out."""

    frame: pd.DataFrame
    row_no: np.ndarray
    blank: dict
    keep_cols: list
    totals_rows: np.ndarray  # spreadsheet row numbers of the totals rows dropped
    # column -> _factorize(its cells), for the spreadsheet columns the totals check factorised (none when
    # rows were dropped: the codes are for the rows before); the field parsers reuse them
    factorized: dict = field(default_factory=dict)


class _BlankMasks(dict):
    """Column -> its empty-cell mask, computed when first asked for (most unused columns never are)."""

    def __init__(self, frame: pd.DataFrame, known: dict | None = None):
        super().__init__(known or {})
        self._frame = frame

    def __missing__(self, i):
        m = self[i] = _blank_mask(self._frame[i])
        return m


def _all_blank(frame: pd.DataFrame, blank: _BlankMasks, first: list) -> np.ndarray:
    """Rows whose every cell is empty. The columns in ``first`` (mapped, unnamed) get whole masks;
    the other columns are looked at only in the rows still empty so far."""
    n = len(frame)
    if not len(frame.columns):
        return np.zeros(n, bool)
    first = list(dict.fromkeys(first)) or [frame.columns[0]]
    cand = np.flatnonzero(np.logical_and.reduce([blank[i] for i in first]))
    for i in frame.columns:
        if not len(cand):
            break
        if i not in blank:
            cand = cand[_blank_mask(frame[i].iloc[cand])]
    out = np.zeros(n, bool)
    out[cand] = True
    return out


def _kept_rows(grid: readers.Grid, mapped: dict[int, str]) -> _Rows:
    """Step 2: skip empty rows and columns, and totals rows ("Total" / "Grand total" in the first column
    or the unit column)."""
    frame, row_no = grid.data, grid.row_no
    blank = _BlankMasks(frame)
    all_blank = _all_blank(frame, blank, [*mapped, *(i for i in frame.columns if not grid.header[i])])
    empty_cols = [i for i in frame.columns if not grid.header[i] and blank[i].all() and i not in mapped]
    keep_cols = [i for i in frame.columns if i not in empty_cols]
    totals = np.zeros(len(frame), dtype=bool)
    check_cols = {keep_cols[0]} if keep_cols else set()
    check_cols |= {i for i, f in mapped.items() if f == "unit_id"}
    factorized = {i: _factorize(frame[i]) for i in check_cols if frame[i].dtype == object}
    for i in check_cols:
        totals |= _total_mask(frame[i], factorized.get(i))
    totals &= ~all_blank
    keep_rows = ~(all_blank | totals)
    totals_rows = row_no[totals]
    if not keep_rows.all():
        frame = frame.loc[keep_rows].reset_index(drop=True)
        row_no = row_no[keep_rows]
        blank = _BlankMasks(frame, {i: b[keep_rows] for i, b in blank.items()})
        factorized = {}
    return _Rows(
        frame=frame, row_no=row_no, blank=blank, keep_cols=keep_cols, totals_rows=totals_rows, factorized=factorized
    )


def _field_columns(kind: str, mapped: dict[int, str], labels: list[str]) -> tuple[dict[str, int], list[Problem]]:
    """Step 3: field -> its column, and the file-level problems: a field from two columns, a required
    column missing, none of a group of columns present."""
    k = KINDS[kind]
    problems: list[Problem] = []
    by_field: dict[str, list[int]] = {}
    for i, f in mapped.items():
        if f not in ("ignore", "item"):
            by_field.setdefault(f, []).append(i)
    for f, cols in by_field.items():
        if len(cols) > 1:
            names = " and ".join(repr(labels[i]) for i in cols)
            problems.append(
                Problem(
                    None,
                    None,
                    f"columns {names} both map to {f}; map all but one to ignore, "
                    f"e.g. --map '{labels[cols[-1]]}=ignore'",
                )
            )
    for f in k.required:
        if f not in by_field:
            problems.append(Problem(None, None, _missing_column_message(kind, f)))
    for group in k.one_of:
        if not any(g in by_field for g in group):
            problems.append(
                Problem(
                    None,
                    None,
                    f"{kind} files need a column for {' or '.join(group)} "
                    f"(none found); map a column to {group[0]} in the column mapping "
                    f"(command line: --map 'SOURCE={group[0]}')",
                )
            )
    return {f: cols[0] for f, cols in by_field.items()}, problems


def _parse_fields(
    k,
    frame: pd.DataFrame,
    row_no: np.ndarray,
    labels: list[str],
    col_of: dict[str, int],
    probs: _Problems,
    *,
    decimal_comma: bool,
    dayfirst: bool | None,
    factorized: dict | None = None,
) -> tuple[pd.DataFrame, list[str], list[Problem]]:
    """Step 4: every mapped column through its cell parser -> the typed rows, warnings, and column-level
    problems (a date column whose order is ambiguous); cell problems go to ``probs``. ``factorized``:
    columns already factorised (_Rows.factorized)."""
    factorized = factorized or {}
    warnings: list[str] = []
    fatal: list[Problem] = []
    out = pd.DataFrame({"row_no": row_no.astype(np.int32)})
    leading_zero_warned = False
    for f in k.fields:
        if f.name not in col_of:
            continue
        i = col_of[f.name]
        s = frame[i]
        lab = labels[i]
        if f.type in ("id", "text"):
            vals, saw_numbers = _ids(s, warn_numbers=f.type == "id", factorized=factorized.get(i))
            if saw_numbers and not leading_zero_warned:
                warnings.append(
                    f"column {lab!r} holds numbers (42.0 is read as '42'); leading zeros "
                    "such as 00042 cannot be recovered from number cells: format the column as text"
                )
                leading_zero_warned = True
            out[f.name] = vals
            missing = vals.isna().to_numpy()
        elif f.type in ("int", "bigint", "float", "money"):
            codes, uniq = factorized.get(i) or _factorize(s)
            nums, err = _numbers(uniq, decimal_comma)
            err = _range_errors(f, uniq, nums, err)
            if f.type == "money":
                nums = _money_cents(nums)
            out[f.name], missing = _numbers_per_row(f, codes, nums)
            _add_row_errors(probs, codes, err, lab)
        elif f.type in ("date", "timestamp"):
            codes, uniq = factorized.get(i) or _factorize(s)
            try:
                vals, err = _dates(uniq, dayfirst, keep_time=f.type == "timestamp")
            except _DateColumnProblem as exc:
                fatal.append(Problem(None, lab, str(exc)))
                continue
            out[f.name] = _spread(codes, vals, np.datetime64("NaT"))
            _add_row_errors(probs, codes, err, lab)
            missing = np.isnat(out[f.name].to_numpy())
        elif f.type == "bool":
            codes, uniq = factorized.get(i) or _factorize(s)
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
    return out, warnings, fatal


def _analyse(
    data, file_name, kind, *, sheet, mapping, dayfirst, scale, reverse, con, viewer, skip_invalid, isolated=False
):
    k = _kind(kind)
    _check_upload_allowed(viewer, kind)
    if scale is not None and int(scale) not in (5, 7):
        raise CxStatsError("--scale must be 5 or 7")
    max_bytes, max_rows, index_items = _limits(con)
    grid = _read(
        data,
        file_name,
        kind,
        k,
        sheet=sheet,
        mapping=mapping,
        max_bytes=max_bytes,
        max_rows=max_rows,
        isolated=isolated,
    )
    labels, mapped = _resolve_mapping(kind, grid.header, mapping)
    rows = _kept_rows(grid, mapped)
    frame, row_no, blank, keep_cols = rows.frame, rows.row_no, rows.blank, rows.keep_cols
    labels_kept = [labels[i] for i in keep_cols]
    a = _Analysis(kind=kind, file_name=file_name, grid=grid, mapping={}, columns=labels_kept, skip_invalid=skip_invalid)
    a.totals_dropped = len(rows.totals_rows)
    if a.totals_dropped:
        shown = ", ".join(str(r) for r in rows.totals_rows[:5])
        a.warnings.append(
            f"dropped {a.totals_dropped} totals {'row' if a.totals_dropped == 1 else 'rows'} (row {shown})"
        )
    n = len(frame)
    a.rows_in_file = n
    if n > max_rows:
        raise CxStatsError(
            f"{file_name} has {n:,} rows; the limit is {max_rows:,} (setting max_rows): "
            "split the file or ask an admin to raise the limit"
        )
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
        a.warnings.append(
            f"columns not used (not recognised as {kind} fields): {shown}; "
            "if one should be loaded, map it to a field in the column mapping "
            "(command line: --map 'SOURCE=FIELD')"
        )

    col_of, column_problems = _field_columns(kind, mapped, labels)
    a.fatal.extend(column_problems)
    if a.fatal:
        return a

    out, warnings, fatal = _parse_fields(
        k,
        frame,
        row_no,
        labels,
        col_of,
        probs,
        decimal_comma=grid.decimal_comma,
        dayfirst=dayfirst,
        factorized=rows.factorized,
    )
    a.warnings.extend(warnings)
    a.fatal.extend(fatal)
    if a.fatal:
        return a

    for group in k.one_of if kind == "mentions" else ():  # feedback: a service contact may carry no score
        present = [g for g in group if g in out.columns]
        none = np.logical_and.reduce([out[g].isna().to_numpy() for g in present])
        cols = ", ".join(labels[col_of[g]] for g in present)
        probs.rows(
            np.flatnonzero(none & ~probs.bad),
            None,
            f"no {' or '.join(group)} given (columns {cols}); a row needs at least one",
        )

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
            a.fatal.append(
                Problem(
                    None,
                    None,
                    f"this content is already loaded as batch {prior} (the same rows, "
                    "whatever the file name); undo that batch first to load it again",
                )
            )
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


def _tables(a, kind: str, out: pd.DataFrame, items: pd.DataFrame) -> dict[str, pd.DataFrame]:
    tables = {kind: out}
    if kind == "engagement":
        tables["engagement_answers"] = items
        tables["engagement_items"] = a.item_meta
    if a.units_created:
        created = pd.DataFrame({"unit_id": a.units_created})
        tables["units"] = created
    return tables


def _write_rejected(rejected: pd.DataFrame, path: Path | None, file_name: str, db: str | os.PathLike | None) -> str:
    """Write the rejected rows with their reasons beside the source file, else (the file's bytes alone, or
    a folder that cannot be written) beside the database, where the project keeps what it writes
    (DESIGN.md: erasure checks every file the project wrote under data/). Never the process's current
    folder: rows of people would land wherever the caller happened to run."""
    targets = []
    if path is not None:
        targets.append(path.with_name(f"{path.stem}.rejected.csv"))
    beside_db = store.db_path(db).parent
    targets.append(beside_db / f"{Path(file_name).stem}.rejected.csv")
    for t in targets:
        try:
            buf = io.StringIO()
            rejected.to_csv(buf, index=False)
            t.write_text(buf.getvalue(), encoding="utf-8")
            return str(t)
        except OSError:
            continue
    where = f"next to {file_name} or " if path is not None else ""
    raise CxStatsError(
        f"cannot write the rejected rows {where}beside the database in {beside_db}: make that folder writable"
    )
