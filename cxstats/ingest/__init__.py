"""Import a spreadsheet or CSV as one batch: read, find the header, map columns, validate, store.

The whole file is validated before anything is written (DESIGN.md, "Batches"): a file with an
invalid row loads nothing and every problem comes back as "row 14, column 'csat': 7 is outside 1-5",
rows numbered as a spreadsheet program shows them.

The package is split along its seams: ``cells`` (cell parsers over distinct values), ``header``
(header row, column mapping), ``rules`` (rules per kind), ``keys`` (repeated keys, content hash,
erased people), ``load`` (the load step: ``_analyse`` as steps that return values), ``worker`` (parsing
in a worker process with a memory cap) and ``results`` (Problem, Preview, ImportResult). The public
names live here.

Example
-------
>>> from cxstats import ADMIN, ingest
>>> p = ingest.preview(b"Store;Date;CSAT\\nS1;05/03/2024;4\\nS2;25/03/2024;5\\n", "march.csv", "feedback", viewer=ADMIN)
>>> p.mapping, p.rows, p.ok
({'Store': 'unit_id', 'Date': 'date', 'CSAT': 'csat'}, 2, True)
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable

import pandas as pd

from cxstats import CxStatsError, Viewer, readers, store

from .header import _kind, _limits
from .keys import UPDATABLE_KINDS
from .load import _analyse, _write_rejected
from .results import PROBLEMS_KEPT, SAMPLE_ROWS, ImportResult, Preview, Problem
from .rules import UPLOAD_KINDS
from .worker import PARSE_MB_DEFAULT, parse_memory_mb, read_grid_isolated

if TYPE_CHECKING:
    import duckdb

__all__ = [
    "PARSE_MB_DEFAULT",
    "PROBLEMS_KEPT",
    "SAMPLE_ROWS",
    "UPDATABLE_KINDS",
    "UPLOAD_KINDS",
    "ImportResult",
    "Preview",
    "Problem",
    "import_file",
    "parse_mapping",
    "parse_memory_mb",
    "preview",
    "read_grid_isolated",
    "template_csv",
]


_EXAMPLES = {
    "units": {
        "unit_id": "S012",
        "unit_name": "Riverside",
        "region": "North",
        "headcount": "24",
        "aliases": "Store 12;Riverside store",
    },
    "engagement": {
        "unit_id": "S012",
        "survey_date": "2024-03-15",
        "respondent_id": "E0001",
        "wave": "2024 Q1",
        "enps": "8",
        "comment": "Good team",
        "I know what is expected of me at work": "5",
        "I would recommend this team": "Agree",
    },
    "feedback": {
        "unit_id": "S012",
        "date": "2024-03-15",
        "csat": "4",
        "nps": "9",
        "response_id": "R000123",
        "customer_id": "C00042",
        "channel": "email",
        "comment": "Friendly staff",
        "contacted_at": "2024-03-14 09:30",
        "responded_at": "2024-03-14 11:05",
    },
    "purchases": {
        "customer_id": "C00042",
        "order_date": "2024-03-15",
        "amount": "49.90",
        "order_id": "O-1001",
        "unit_id": "S012",
    },
    "mentions": {
        "customer_id": "C00042",
        "handle": "@jane",
        "posted_at": "2024-03-16 18:20",
        "platform": "instagram",
        "text": "Loved the new store!",
        "followers": "1200",
        "likes": "35",
        "shares": "2",
        "sentiment": "",
        "replied_at": "2024-03-16 19:00",
    },
    "customers": {
        "customer_id": "C00042",
        "name": "Jane Doe",
        "email": "jane@example.com",
        "handle": "@jane",
        "marketing_consent": "yes",
        "consent_date": "2024-01-10",
    },
    "rewards": {
        "customer_id": "C00042",
        "reward_date": "2024-04-01",
        "reward_type": "voucher",
        "value": "20.00",
        "note": "Thank-you for the reviews",
    },
    "reorgs": {
        "from_unit": "S012",
        "to_unit": "S013",
        "effective_date": "2024-07-01",
        "note": "Riverside merged into Market Square",
    },
}


def template_csv(kind: str) -> bytes:
    """A header row and one example row for a kind (the Upload page's template downloads)."""
    _kind(kind)
    row = _EXAMPLES[kind]
    frame = pd.DataFrame([row], columns=list(row))
    return frame.to_csv(index=False).encode("utf-8")


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
    viewer: Viewer,
    isolated: bool = False,
) -> Preview:
    """Read and validate without writing: what an import would do, and every problem found.

    Unreadable files (empty, binary, damaged, too large) raise CxStatsError; problems with
    columns or rows come back in ``problems`` so the mapping can be corrected. ``isolated``: read
    the file in a worker process with a memory cap (the app and the command line; issue 18).
    """
    # db None: the file is checked on its own, without the stored rows and settings
    with store.connect(db) if db is not None else contextlib.nullcontext() as con:
        a = _analyse(
            data,
            file_name,
            kind,
            sheet=sheet,
            mapping=mapping,
            dayfirst=dayfirst,
            scale=scale,
            reverse=reverse,
            con=con,
            viewer=viewer,
            skip_invalid=False,
            isolated=isolated,
        )
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
    viewer: Viewer,
    loaded_by: str | None = None,
    isolated: bool = False,
) -> ImportResult:
    """Validate a whole file and load it as one batch in one transaction, or refuse and write nothing.

    ``source`` is a path or the file's bytes (then ``file_name`` names it). Refusals raise
    CxStatsError(summary, problems=[...]) with every problem as a string. With ``skip_invalid`` the
    rejected rows and their reasons go to ``<stem>.rejected.csv`` beside the source file, else (bytes, or
    a folder that cannot be written) beside the database; ``rejected_path`` says which.
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
                raise CxStatsError(
                    f"{file_name} is {readers._mb(size)}; the limit is {readers._mb(max_bytes)} "
                    "(setting max_file_mb): split the file or ask an admin to raise the limit"
                )
            data = path.read_bytes()
        a = _analyse(
            data,
            file_name,
            kind,
            sheet=sheet,
            mapping=mapping,
            dayfirst=dayfirst,
            scale=scale,
            reverse=reverse,
            con=con,
            viewer=viewer,
            skip_invalid=skip_invalid,
            isolated=isolated,
        )
        a.raise_if_refused()
        rejected_path = None
        if a.rejected is not None and len(a.rejected):
            rejected_path = _write_rejected(a.rejected, path, file_name, db)
        # run inside the batch's transaction (connection, batch_id); their results are not used
        hooks: list[Callable[[duckdb.DuckDBPyConnection, int], object]] = []
        if rejected_path:
            hooks.append(lambda c, b: store.record_written_file(c, rejected_path, b))
        if kind == "reorgs":  # differencing through re-organisations (DESIGN.md)
            from cxstats import governance

            before = governance.snapshot(con)
            hooks.append(lambda c, b: governance.guard_groups(c, before, f"re-organisation batch {b}"))
        batch_id = store.load_batch(
            con,
            kind,
            a.tables,
            file_name=file_name,
            sha256=a.sha256,
            rows=a.rows_loaded,
            loaded_by=loaded_by or viewer.name,
            skipped_rows=a.duplicates_skipped,
            before_hook=(lambda c, b: [h(c, b) for h in hooks]) if hooks else None,
        )
    return ImportResult(
        batch_id=batch_id,
        kind=kind,
        file_name=file_name,
        rows_loaded=a.rows_loaded,
        duplicates_skipped=a.duplicates_skipped,
        totals_dropped=a.totals_dropped,
        units_created=list(a.units_created),
        warnings=list(a.warnings),
        rejected_path=rejected_path,
        rejected=0 if a.rejected is None else len(a.rejected),
        erased_skipped=a.erased_skipped,
    )


@dataclass(frozen=True)
class UploadResult:
    """An upload's import result and its rejected rows as CSV bytes (None when none were rejected)."""

    result: ImportResult
    rejected_csv: bytes | None


def import_upload(db, kind: str, data: bytes, *, file_name: str, viewer: Viewer, **options) -> UploadResult:
    """import_file for an uploaded file's bytes (the Upload page): the file goes into a private temporary
    folder, so that rejected rows are written there, read back as CSV bytes, and never left on the server.
    ``options`` are import_file's (sheet, mapping, dayfirst, scale, reverse, skip_invalid, loaded_by)."""
    import tempfile

    with tempfile.TemporaryDirectory(prefix="cxstats-upload-") as tmp:
        src = Path(tmp) / Path(file_name).name
        src.write_bytes(data)
        res = import_file(db, kind, src, file_name=file_name, viewer=viewer, isolated=True, **options)
        rejected = None
        if res.rejected_path:
            written = Path(res.rejected_path)
            rejected = written.read_bytes() if written.is_file() else None
            if written.parent != Path(tmp):
                written.unlink(missing_ok=True)  # the fallback beside the database: removed too
    return UploadResult(res, rejected)


def parse_mapping(pairs) -> dict[str, str]:
    """["Store No=unit_id", ...] (the --map arguments) -> {"Store No": "unit_id"}."""
    out: dict[str, str] = {}
    for pair in pairs or ():
        if "=" not in pair:
            raise CxStatsError(f"--map {pair!r}: write SOURCE=FIELD, e.g. --map 'Store No=unit_id'")
        src, dst = pair.rsplit("=", 1)
        out[src.strip()] = dst.strip()
    return out
