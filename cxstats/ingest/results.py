"""What an import returns: problems (collected as arrays, materialised only when shown), the preview, the result."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

PROBLEMS_KEPT = 10_000  # problems listed in full; n_problems always counts every one

SAMPLE_ROWS = 20


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

    def facts(self) -> list[str]:
        """What the preview found, one phrase each ("2,314 data rows", "header found on row 3", ...)."""
        out = [f"{self.rows:,} data rows", f"header found on row {self.header_row}"]
        if self.sheet:
            out.append(f"sheet {self.sheet}")
        if self.kind == "engagement" and self.scale:
            out.append(f"answers on a {self.scale}-point scale ({self.scale_source or 'detected'})")
        if self.totals_dropped:
            out.append(f"{self.totals_dropped} totals row(s) dropped")
        if self.duplicates_skipped:
            out.append(f"{self.duplicates_skipped:,} rows already stored (will be skipped)")
        if self.units_created:
            out.append(f"{len(self.units_created)} new unit(s) will be created")
        return out


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
        """ "2,314 rows loaded as batch 17; 3 units created" (and whatever else happened)."""
        parts = [f"{self.rows_loaded:,} {'row' if self.rows_loaded == 1 else 'rows'} loaded as batch {self.batch_id}"]
        if self.units_created:
            parts.append(f"{len(self.units_created):,} {'unit' if len(self.units_created) == 1 else 'units'} created")
        if self.duplicates_skipped:
            parts.append(f"{self.duplicates_skipped:,} rows already stored skipped")
        if self.totals_dropped:
            parts.append(f"{self.totals_dropped:,} totals {'row' if self.totals_dropped == 1 else 'rows'} dropped")
        if self.erased_skipped:
            parts.append(
                f"{self.erased_skipped:,} {'row' if self.erased_skipped == 1 else 'rows'} of erased people skipped"
            )
        if self.rejected:
            parts.append(f"{self.rejected:,} invalid rows rejected (see {self.rejected_path})")
        return "; ".join(parts)


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
        frames = [
            pd.DataFrame({"i": p[0], "msg": [f"{p[1]}: {m}" if p[1] else str(m) for m in p[2]]}) for p in self.parts
        ]
        if not frames:
            return pd.Series(dtype=object)
        allp = pd.concat(frames, ignore_index=True)
        return allp.groupby("i", sort=True)["msg"].agg("; ".join)
