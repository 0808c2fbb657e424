"""DuckDB storage: open, migrate, load one batch in one transaction, list batches, undo.

Every canonical table is append-only and carries ``batch_id`` and ``row_no`` (the spreadsheet row
the value came from), so undoing a batch is deleting its rows, and "the current customer" is the
row of the latest batch (a later upload updates a customer; DESIGN.md).

One process owns the database file at a time (DuckDB 2.x locks it), so every operation opens a
connection, does its work and closes it: the command line and the app then take turns.
"""

from __future__ import annotations

import os
import time
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Iterator, Literal, Mapping, overload

import duckdb
import numpy as np
import pandas as pd

from . import CxStatsError, Viewer, periods
from .schema import KINDS

DEFAULT_DB = Path("data") / "cxstats.duckdb"
SCHEMA_VERSION = 6  # 2: order_totals; 3: holdouts; 4: actions; 5: erasures, purges, suppressed_groups, written_files, unit_map, reorgs; 6: day_totals

# kinds whose rows have a date, and that date's column (retention purges whole periods by it)
RETENTION_DATES = {
    "engagement": "survey_date",
    "feedback": "date",
    "purchases": "order_date",
    "mentions": "posted_at",
    "rewards": "reward_date",
}

DEFAULT_SETTINGS: dict[str, str] = {
    "min_group": "5",  # anonymity threshold, never below 3 (DESIGN.md)
    "period": "quarter",  # or "month": engagement is only ever grouped by (unit, period)
    "index_items": "",  # ";"-separated subset of items forming the engagement index; empty = all
    "max_file_mb": "200",
    "max_rows": "5000000",
    "reward_cooldown_days": "90",
    "comment_min_group": "10",
    # retention per kind in whole months; empty = keep for ever (python -m cxstats purge)
    **{f"retain_months_{k}": "" for k in RETENTION_DATES},
}
MIN_GROUP_FLOOR = 3


def db_path(path: str | os.PathLike | None = None) -> Path:
    """--db, else CXSTATS_DB, else data/cxstats.duckdb."""
    return Path(path or os.environ.get("CXSTATS_DB") or DEFAULT_DB)


def _is_lock_error(exc: Exception) -> bool:
    text = str(exc).lower()
    return "lock" in text or "conflicting" in text or "resource temporarily unavailable" in text


@contextmanager
def connect(path: str | os.PathLike | None = None, *, wait_s: float = 5.0) -> Iterator[duckdb.DuckDBPyConnection]:
    """Open the database (creating and migrating it), yield the connection, close it.

    A file held by another process is retried for ``wait_s`` seconds, then refused with
    "database busy, try again".
    """
    p = db_path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    deadline = time.monotonic() + wait_s
    delay = 0.05
    while True:
        try:
            con = duckdb.connect(str(p))
            break
        except duckdb.Error as exc:  # IOException on a locked file
            if not _is_lock_error(exc):
                raise CxStatsError(f"cannot open database {p}: {exc}") from exc
            if time.monotonic() >= deadline:
                raise CxStatsError(f"database busy, try again: {p} is in use by another cxstats process") from exc
            time.sleep(delay)
            delay = min(delay * 2, 0.5)
    try:
        migrate(con)
        if _rewrite_pending(con):
            # an erasure or purge committed but did not finish rewriting the file (crash): finish it now
            con.close()
            finish_rewrite(p)
            con = _open(p, wait_s)
        yield con
    finally:
        con.close()


def _open(p: Path, wait_s: float = 5.0) -> duckdb.DuckDBPyConnection:
    deadline = time.monotonic() + wait_s
    delay = 0.05
    while True:
        try:
            return duckdb.connect(str(p))
        except duckdb.Error as exc:
            if not _is_lock_error(exc) or time.monotonic() >= deadline:
                raise CxStatsError(f"database busy, try again: {p} is in use by another cxstats process") from exc
            time.sleep(delay)
            delay = min(delay * 2, 0.5)


def _table_ddl(kind: str) -> str:
    k = KINDS[kind]
    cols = ["batch_id INTEGER NOT NULL", "row_no INTEGER"]
    if kind == "purchases":
        cols.append("line_no INTEGER")
    for f in k.fields:
        cols.append(f"{f.name} {f.sql_type}")
    if kind == "mentions":
        # 'file' when the upload carried sentiment, 'vader' when computed, 'unscored' for other languages
        cols.append("sentiment_source VARCHAR")
    return f"CREATE TABLE IF NOT EXISTS {k.table} ({', '.join(cols)})"


# login state beside login_attempts (cxstats.auth creates them in older databases too, without a
# schema bump): failed logins per client address, and each user's session generation (a log out
# replaces it, so every token issued before no longer matches)
AUTH_DDL = [
    """CREATE TABLE IF NOT EXISTS login_addresses (
        address VARCHAR PRIMARY KEY, failures INTEGER, first_failure TIMESTAMP, locked_until TIMESTAMP)""",
    """CREATE TABLE IF NOT EXISTS login_sessions (username VARCHAR PRIMARY KEY, generation VARCHAR NOT NULL)""",
]

DDL = (
    [
        """CREATE TABLE IF NOT EXISTS meta (key VARCHAR PRIMARY KEY, value VARCHAR)""",
        """CREATE TABLE IF NOT EXISTS settings (key VARCHAR PRIMARY KEY, value VARCHAR)""",
        """CREATE TABLE IF NOT EXISTS batches (
        batch_id INTEGER PRIMARY KEY, kind VARCHAR NOT NULL, file_name VARCHAR, rows INTEGER,
        loaded_at TIMESTAMP, sha256 VARCHAR, undone BOOLEAN DEFAULT FALSE, undone_at TIMESTAMP,
        loaded_by VARCHAR, skipped_rows INTEGER DEFAULT 0, note VARCHAR)""",
        # engagement item answers, long format: one row per respondent and item
        """CREATE TABLE IF NOT EXISTS engagement_answers (
        batch_id INTEGER NOT NULL, row_no INTEGER NOT NULL, item VARCHAR NOT NULL, score SMALLINT NOT NULL)""",
        # per-batch item metadata: scale (5 or 7) and whether the item was reverse-keyed on import
        """CREATE TABLE IF NOT EXISTS engagement_items (
        batch_id INTEGER NOT NULL, item VARCHAR NOT NULL, scale SMALLINT NOT NULL, reverse_keyed BOOLEAN)""",
        """CREATE TABLE IF NOT EXISTS export_audit (
        export_id INTEGER, exported_at TIMESTAMP, who VARCHAR, role VARCHAR, format VARCHAR,
        filter VARCHAR, rows INTEGER, file_name VARCHAR)""",
        """CREATE TABLE IF NOT EXISTS login_attempts (
        username VARCHAR PRIMARY KEY, failures INTEGER, last_failure TIMESTAMP, locked_until TIMESTAMP)""",
    ]
    + AUTH_DDL
    + [
        # one row per order (or per line without an order_id), kept in step with purchases: see order totals below
        """CREATE TABLE IF NOT EXISTS order_totals (
        customer_id VARCHAR, order_id VARCHAR, batch_id INTEGER, first_date DATE, last_date DATE,
        net DECIMAL(38,2), gross DECIMAL(38,2), returned DECIMAL(38,2))""",
        # one row per customer and order day (an order's day is its first line's), kept in step with order_totals
        """CREATE TABLE IF NOT EXISTS day_totals (
        customer_id VARCHAR, d DATE, orders BIGINT, counted_net DECIMAL(38,2), net DECIMAL(38,2),
        gross DECIMAL(38,2), returned DECIMAL(38,2), last_date DATE)""",
        # randomised hold-outs of "to reward" exports (written with the export's audit row; seed and share kept)
        """CREATE TABLE IF NOT EXISTS holdouts (
        export_id INTEGER NOT NULL, customer_id VARCHAR NOT NULL, arm VARCHAR NOT NULL, list_date DATE NOT NULL,
        seed BIGINT, pct DOUBLE)""",
        # action plans (DESIGN.md "Focus areas and action plans"); written by cxstats.focus, one statement each
        """CREATE TABLE IF NOT EXISTS actions (
        action_id INTEGER PRIMARY KEY, unit_id VARCHAR NOT NULL, item VARCHAR NOT NULL, title VARCHAR NOT NULL,
        owner VARCHAR, due_date DATE, status VARCHAR NOT NULL, created_by VARCHAR, created_at TIMESTAMP,
        updated_at TIMESTAMP, note VARCHAR)""",
        # erasure (DESIGN.md "Erasure, retention and re-organisations"): one row per person erased; the id,
        # handle and e-mail only as HMAC-SHA256 (key: CXSTATS_ERASURE_KEY or a 0600 key file beside the database)
        """CREATE TABLE IF NOT EXISTS erasures (
        erasure_id INTEGER, kind VARCHAR, id_hmac VARCHAR, handle_hmacs VARCHAR, email_hmacs VARCHAR,
        erased_at TIMESTAMP, erased_by VARCHAR, rows_removed VARCHAR)""",
        """CREATE TABLE IF NOT EXISTS purges (
        purge_id INTEGER, kind VARCHAR, cutoff DATE, retain_months INTEGER, purged_at TIMESTAMP,
        purged_by VARCHAR, rows_removed INTEGER)""",
        # (unit, period) groups suppressed from then on because a non-batch change (erasure, purge,
        # re-organisation or an undo) moved them by 1..min_group-1 respondents (differencing)
        """CREATE TABLE IF NOT EXISTS suppressed_groups (
        unit_id VARCHAR, period_start DATE, reason VARCHAR, since TIMESTAMP)""",
        # files the project wrote that may hold people's rows (rejected-row files): erasure scrubs them
        """CREATE TABLE IF NOT EXISTS written_files (path VARCHAR, batch_id INTEGER, written_at TIMESTAMP)""",
        # derived from the live reorgs rows: old unit -> successor after renames and merges (not splits)
        """CREATE TABLE IF NOT EXISTS unit_map (from_unit VARCHAR, to_unit VARCHAR)""",
    ]
    + [_table_ddl(k) for k in KINDS]
)


def migrate(con: duckdb.DuckDBPyConnection) -> None:
    """Create missing tables and default settings (idempotent)."""
    have = con.execute("SELECT count(*) FROM information_schema.tables WHERE table_name = 'meta'").fetchall()
    if have[0][0]:
        v = con.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchall()
        if v and int(v[0][0]) >= SCHEMA_VERSION:
            return
    con.execute("BEGIN TRANSACTION")
    try:
        for stmt in DDL:
            con.execute(stmt)
        for key, value in DEFAULT_SETTINGS.items():
            con.execute("INSERT OR IGNORE INTO settings VALUES (?, ?)", [key, value])
        if not all(derived_fresh(con)):
            sync_order_totals(con)
        con.execute("INSERT OR REPLACE INTO meta VALUES ('schema_version', ?)", [str(SCHEMA_VERSION)])
        con.execute("COMMIT")
    except Exception:
        con.execute("ROLLBACK")
        raise


# ---------------------------------------------------------------- settings


@dataclass(frozen=True)
class Settings:
    min_group: int
    period: str
    index_items: tuple[str, ...]
    max_file_mb: float
    max_rows: int
    reward_cooldown_days: int
    comment_min_group: int


def settings(con: duckdb.DuckDBPyConnection) -> Settings:
    raw = dict(DEFAULT_SETTINGS)
    raw.update(dict(con.execute("SELECT key, value FROM settings").fetchall()))
    return Settings(
        min_group=max(MIN_GROUP_FLOOR, int(raw["min_group"])),
        period=raw["period"],
        index_items=tuple(i for i in raw["index_items"].split(";") if i),
        max_file_mb=float(raw["max_file_mb"]),
        max_rows=int(raw["max_rows"]),
        reward_cooldown_days=int(raw["reward_cooldown_days"]),
        comment_min_group=max(10, int(raw["comment_min_group"])),
    )


def retention_months(con: duckdb.DuckDBPyConnection) -> dict[str, int]:
    """Months kept per kind (``retain_months_<kind>`` settings); 0 means keep everything."""
    raw = dict(con.execute("SELECT key, value FROM settings").fetchall())
    return {k: int(raw.get(f"retain_months_{k}") or 0) for k in RETENTION_DATES}


def set_setting(con: duckdb.DuckDBPyConnection, key: str, value: object, *, viewer: Viewer) -> None:
    """Change a database-wide setting (admin only, always checked; min_group never below 3)."""
    set_settings(con, {key: value}, viewer=viewer)


def set_settings(con: duckdb.DuckDBPyConnection, values: Mapping[str, object], *, viewer: Viewer) -> None:
    """Change several settings at once: all are checked first, then written in one transaction (all or none).

    Admin only, always checked. Example: ``set_settings(con, {"min_group": 6, "period": "month"}, viewer=ADMIN)``.
    """
    viewer.require("admin")
    checked = [(key, _checked_setting(con, key, value)) for key, value in values.items()]
    con.execute("BEGIN TRANSACTION")
    try:
        for key, value in checked:
            con.execute("INSERT OR REPLACE INTO settings VALUES (?, ?)", [key, value])
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise


def _checked_setting(con: duckdb.DuckDBPyConnection, key: str, value: object) -> str:
    """The value as stored, or CxStatsError saying what to fix."""
    if key not in DEFAULT_SETTINGS:
        raise CxStatsError(f"unknown setting {key!r}; known: {', '.join(DEFAULT_SETTINGS)}")
    value = str(value)
    if key == "min_group" and int(value) < MIN_GROUP_FLOOR:
        raise CxStatsError(f"min_group may not be below {MIN_GROUP_FLOOR} (anonymity)")
    if key == "period" and value not in periods.PERIODS:
        raise CxStatsError("period must be 'quarter' or 'month'")
    if (
        key == "period"
        and value != settings(con).period
        and con.execute("SELECT count(*) FROM engagement").fetchall()[0][0]
    ):
        # groups under two groupings could be differenced (DESIGN.md, "Differencing through non-batch changes")
        raise CxStatsError(
            "the period setting is fixed once engagement data exists; undo the engagement batches first to change it"
        )
    if key.startswith("retain_months_") and value.strip():
        if not value.strip().isdigit() or int(value) < 1:
            raise CxStatsError(f"{key} must be a whole number of months (1 or more), or empty to keep everything")
        value = str(int(value))
    return value


# ---------------------------------------------------------------- batches


@dataclass(frozen=True)
class Batch:
    batch_id: int
    kind: str
    file_name: str
    rows: int
    loaded_at: datetime
    sha256: str
    undone: bool
    loaded_by: str | None = None
    skipped_rows: int = 0

    def as_json(self) -> dict:
        return {
            "batch_id": self.batch_id,
            "kind": self.kind,
            "file_name": self.file_name,
            "rows": self.rows,
            "loaded_at": self.loaded_at.isoformat(timespec="seconds") if self.loaded_at else None,
            "sha256": self.sha256,
            "undone": bool(self.undone),
        }


def list_batches(con: duckdb.DuckDBPyConnection) -> list[Batch]:
    rows = con.execute(
        "SELECT batch_id, kind, file_name, rows, loaded_at, sha256, undone, loaded_by, skipped_rows "
        "FROM batches ORDER BY batch_id"
    ).fetchall()
    return [Batch(*r) for r in rows]


def find_active_hash(con: duckdb.DuckDBPyConnection, kind: str, sha256: str) -> int | None:
    """batch_id of a live (not undone) batch of this kind with this content hash, if any."""
    r = con.execute(
        "SELECT batch_id FROM batches WHERE kind = ? AND sha256 = ? AND NOT undone LIMIT 1", [kind, sha256]
    ).fetchall()
    return r[0][0] if r else None


def _insert_frame(con: duckdb.DuckDBPyConnection, table: str, frame: pd.DataFrame, batch_id: int) -> None:
    if frame is None or len(frame) == 0:
        return
    cols = [c for c in frame.columns if c != "batch_id"]
    name = f"_load_{table}"
    source = frame
    if not any(isinstance(t, np.dtype) and t.kind == "O" for t in frame.dtypes):
        # typed columns only: DuckDB scans Arrow faster than pandas' own arrays (~0.3 s CPU per 1M rows);
        # object columns (Python values of mixed types) keep DuckDB's pandas scan, as before
        import pyarrow as pa

        try:
            source = pa.Table.from_pandas(frame, preserve_index=False)
        except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
            source = frame
    con.register(name, source)
    try:
        col_list = ", ".join(cols)
        con.execute(f"INSERT INTO {table} (batch_id, {col_list}) SELECT ?, {col_list} FROM {name}", [batch_id])
    finally:
        con.unregister(name)


def load_batch(
    con: duckdb.DuckDBPyConnection,
    kind: str,
    tables: dict[str, pd.DataFrame],
    *,
    file_name: str,
    sha256: str,
    rows: int,
    loaded_by: str | None = None,
    skipped_rows: int = 0,
    note: str | None = None,
    before_hook=None,
) -> int:
    """Write one batch in one transaction; returns its batch_id.

    ``tables`` maps table name -> frame whose columns are a subset of the table's (without
    batch_id). Either every frame is written with the batch row, or nothing is. ``before_hook(con,
    batch_id)`` runs inside the transaction just before COMMIT (e.g. the differencing check of a
    re-organisation, or recording a written file).
    """
    if kind not in KINDS:
        raise CxStatsError(f"unknown kind {kind!r}")
    con.execute("BEGIN TRANSACTION")
    try:
        if find_active_hash(con, kind, sha256) is not None:
            raise CxStatsError("this content is already loaded (same rows as an earlier batch); nothing written")
        batch_id = con.execute("SELECT coalesce(max(batch_id), 0) + 1 FROM batches").fetchall()[0][0]
        con.execute(
            "INSERT INTO batches (batch_id, kind, file_name, rows, loaded_at, sha256, undone, loaded_by, "
            "skipped_rows, note) VALUES (?, ?, ?, ?, ?, ?, FALSE, ?, ?, ?)",
            [
                batch_id,
                kind,
                file_name,
                rows,
                datetime.now().replace(microsecond=0),
                sha256,
                loaded_by,
                skipped_rows,
                note,
            ],
        )
        was_fresh = kind == "purchases" and all(derived_fresh(con))
        for table, frame in tables.items():
            _insert_frame(con, table, frame, batch_id)
        if kind == "purchases":
            _touch_orders(con, batch_id)
            sync_order_totals(con, batch_id if was_fresh else None)
        if kind == "reorgs":
            sync_unit_map(con)
        if before_hook is not None:
            before_hook(con, batch_id)
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
    return batch_id


BATCH_TABLES = tuple(KINDS) + ("engagement_answers", "engagement_items")


def undo(con: duckdb.DuckDBPyConnection, batch_id: int, before_hook=None, *, viewer: Viewer) -> Batch:
    """Remove exactly one batch's rows and mark it undone, in one transaction.

    ``before_hook(con)`` runs inside the transaction just before COMMIT (the differencing check).
    Admin only, always checked.
    """
    viewer.require("admin")
    found = [b for b in list_batches(con) if b.batch_id == int(batch_id)]
    if not found:
        raise CxStatsError(f"no batch {batch_id}; run 'python -m cxstats batches' to list them")
    if found[0].undone:
        raise CxStatsError(f"batch {batch_id} is already undone")
    purchases = found[0].kind == "purchases"
    con.execute("BEGIN TRANSACTION")
    try:
        if purchases:
            was_fresh = all(derived_fresh(con))
            _touch_orders(con, int(batch_id))
        for table in BATCH_TABLES:
            con.execute(f"DELETE FROM {table} WHERE batch_id = ?", [int(batch_id)])
        if purchases:
            sync_order_totals(con, int(batch_id) if was_fresh else None)
        if found[0].kind == "reorgs":
            sync_unit_map(con)
        con.execute(
            "UPDATE batches SET undone = TRUE, undone_at = ? WHERE batch_id = ?",
            [datetime.now().replace(microsecond=0), int(batch_id)],
        )
        if before_hook is not None:
            before_hook(con)
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
    return [b for b in list_batches(con) if b.batch_id == int(batch_id)][0]


# ---------------------------------------------------------------- order totals

# Advocate scoring counts an order only when its lines net above zero, so it needs every order's
# total; grouping 10M lines into orders was most of a score's time. Those totals are kept in
# `order_totals`, changed in the same transaction as each purchases load or undo (only the
# orders the batch touches are recomputed). `meta.order_totals_source` records the fingerprint of
# the purchases the table was built from: rows written any other way (by hand, a script) make it
# stale, and scoring then reads the lines instead, so a stale table can cost time, never truth.

_ORDER_TOTALS_SELECT = """
SELECT customer_id, order_id, CASE WHEN order_id IS NULL THEN batch_id END AS batch_id,
       min(order_date) AS first_date, max(order_date) AS last_date, sum(amount) AS net,
       sum(CASE WHEN amount > 0 THEN amount ELSE 0 END) AS gross,
       sum(CASE WHEN amount < 0 THEN -amount ELSE 0 END) AS returned
FROM purchases p WHERE customer_id IS NOT NULL {where}
GROUP BY customer_id, order_id, CASE WHEN order_id IS NULL THEN batch_id END,
         CASE WHEN order_id IS NULL THEN rowid END  -- a line without an order_id is an order of its own
"""


def order_totals_sql(where: str = "") -> str:
    """SELECT of order_totals' columns computed from the purchase lines, limited by ``where``
    (SQL starting with AND, over purchases' columns): the one definition of an order's totals."""
    return _ORDER_TOTALS_SELECT.format(where=where)


def purchases_fingerprint(con: duckdb.DuckDBPyConnection) -> str:
    """Row count and checksum of the purchases table (its key columns, dates and amounts)."""
    n, h = con.execute(
        "SELECT count(*), coalesce(sum(hash(batch_id, row_no, line_no, order_date, amount)), 0) FROM purchases"
    ).fetchall()[0]
    return f"{n}:{h}"


DERIVED_TABLES = ("order_totals", "day_totals")  # kept in step with purchases; meta '<table>_source' = fingerprint


def derived_fresh(con: duckdb.DuckDBPyConnection) -> tuple[bool, bool]:
    """(order_totals fresh, day_totals fresh): each built from exactly the purchases stored now
    (the fingerprint is computed once)."""
    src = dict(
        con.execute("SELECT key, value FROM meta WHERE key IN ('order_totals_source', 'day_totals_source')").fetchall()
    )
    if not src:
        return False, False
    fp = purchases_fingerprint(con)
    return src.get("order_totals_source") == fp, src.get("day_totals_source") == fp


def order_totals_fresh(con: duckdb.DuckDBPyConnection) -> bool:
    """True when order_totals was built from exactly the purchases stored now."""
    r = con.execute("SELECT value FROM meta WHERE key = 'order_totals_source'").fetchall()
    return bool(r) and r[0][0] == purchases_fingerprint(con)


def mark_derived_fresh(con: duckdb.DuckDBPyConnection, tables=DERIVED_TABLES) -> None:
    """Record that ``tables`` match the purchases stored now (after they were brought in step, or
    after rows were removed from purchases and from them alike, as an erasure does)."""
    fp = purchases_fingerprint(con)
    for t in tables:
        con.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", [f"{t}_source", fp])


def _touch_orders(con: duckdb.DuckDBPyConnection, batch_id: int) -> None:
    """Remember the orders and customers a batch's lines belong to (call while the lines are stored)."""
    con.execute(
        "CREATE OR REPLACE TEMP TABLE _touched AS SELECT DISTINCT customer_id, order_id FROM purchases "
        "WHERE batch_id = ? AND customer_id IS NOT NULL AND order_id IS NOT NULL",
        [batch_id],
    )
    con.execute(
        "CREATE OR REPLACE TEMP TABLE _touched_customers AS SELECT DISTINCT customer_id FROM purchases "
        "WHERE batch_id = ? AND customer_id IS NOT NULL",
        [batch_id],
    )


# Per (customer, order day) totals of the orders in order_totals (an order's day is its first line's):
# counted orders (net > 0) and their net, every order's net, gross and returned, and the latest line
# date of the day's orders (readers use a day only for an as_of at or after it: an order whose lines
# straddle as_of must be summed from its lines).
_DAY_TOTALS_SELECT = """
SELECT customer_id, first_date AS d, count(*) FILTER (WHERE net > 0) AS orders,
       coalesce(sum(net) FILTER (WHERE net > 0), 0) AS counted_net, sum(net) AS net, sum(gross) AS gross,
       sum(returned) AS returned, max(last_date) AS last_date
FROM order_totals {where} GROUP BY customer_id, first_date
"""


def sync_order_totals(con: duckdb.DuckDBPyConnection, batch_id: int | None = None) -> None:
    """Bring order_totals and day_totals in step with purchases, inside the caller's transaction.

    With ``batch_id`` (after that batch was loaded or undone, `_touch_orders` having run while its
    lines were stored) only the orders it touched are recomputed, and the day totals of the
    customers it touched; without, both tables are rebuilt.
    """
    if batch_id is None:
        con.execute("DELETE FROM order_totals")
        con.execute("INSERT INTO order_totals " + order_totals_sql())
        con.execute("DELETE FROM day_totals")
        con.execute("INSERT INTO day_totals " + _DAY_TOTALS_SELECT.format(where=""))
    else:
        con.execute("DELETE FROM order_totals WHERE batch_id = ?", [batch_id])
        con.execute(
            "DELETE FROM order_totals WHERE (customer_id, order_id) IN (SELECT (customer_id, order_id) FROM _touched)"
        )
        # two inserts, not one with OR: each then runs as a plain filter or semi-join over the lines
        con.execute(
            "INSERT INTO order_totals " + order_totals_sql("AND p.batch_id = ? AND order_id IS NULL"), [batch_id]
        )
        con.execute(
            "INSERT INTO order_totals "
            + order_totals_sql("AND (customer_id, order_id) IN (SELECT (customer_id, order_id) FROM _touched)")
        )
        con.execute("DELETE FROM day_totals WHERE customer_id IN (SELECT customer_id FROM _touched_customers)")
        con.execute(
            "INSERT INTO day_totals "
            + _DAY_TOTALS_SELECT.format(where="WHERE customer_id IN (SELECT customer_id FROM _touched_customers)")
        )
    con.execute("DROP TABLE IF EXISTS _touched")
    con.execute("DROP TABLE IF EXISTS _touched_customers")
    mark_derived_fresh(con)


def known_units(con: duckdb.DuckDBPyConnection) -> dict[str, str]:
    """Every spelling that names a unit -> unit_id (unit_id itself, then aliases), from `units`."""
    rows = con.execute(f"SELECT unit_id, aliases FROM ({current_units_sql()})").fetchall()
    out: dict[str, str] = {}
    for unit_id, _ in rows:
        out[str(unit_id)] = str(unit_id)
    for unit_id, aliases in rows:
        for a in str(aliases or "").split(";"):
            a = a.strip()
            if a:
                out.setdefault(a, str(unit_id))
    return out


def table_fingerprint(con: duckdb.DuckDBPyConnection) -> dict[str, tuple[int, str]]:
    """Row count and an order-independent checksum of every table: tests compare before/after."""
    out = {}
    names = [
        r[0]
        for r in con.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'main' ORDER BY 1"
        ).fetchall()
    ]
    for t in names:
        n, h = con.execute(f"SELECT count(*), coalesce(sum(hash(t))::HUGEINT, 0)::VARCHAR FROM {t} AS t").fetchall()[0]
        out[t] = (n, h)
    return out


def current_rows_sql(source: str, key: str) -> str:
    """SQL for the current row of each ``key`` in ``source``: the latest batch wins, then its latest row.

    The one definition of "the current version" of a unit, a customer or any keyed row (a later upload
    updates it). ``source`` is a canonical table name or a parenthesised subquery, ``key`` one column or
    a comma-separated list of columns: code, never user input.
    """
    return (
        f"SELECT * FROM {source} QUALIFY row_number() OVER (PARTITION BY {key} ORDER BY batch_id DESC, row_no DESC) = 1"
    )


def current_units_sql() -> str:
    """SQL for the current version of each unit (latest batch wins, then its latest row)."""
    return current_rows_sql("units", "unit_id")


def current_customers_sql() -> str:
    """SQL for the current version of each customer (latest batch wins, then its latest row)."""
    return current_rows_sql("customers", "customer_id")


VIEWER_UNITS_SQL = "(? OR list_contains(?::VARCHAR[], unit_id))"
"""The one viewer-unit filter in SQL: a manager's rows are his units' only. Bind :func:`viewer_units`."""


def viewer_units(viewer) -> tuple[bool, list[str]]:
    """The parameters of :data:`VIEWER_UNITS_SQL`: (every unit?, the manager's units)."""
    units = viewer.unit_filter()
    return (units is None), list(units or [])


# ---------------------------------------------------------------- hold-outs (written with an export's audit row)

HOLDOUT_DAYS = 90  # a held-out customer stays out of every export this long after the list date


def held_out(con, list_date: date) -> set[str]:
    """Customers held out of a list whose 90 days have not ended at ``list_date``: no export lists them."""
    rows = con.execute(
        "SELECT DISTINCT customer_id FROM holdouts WHERE arm = 'holdout' AND ? < list_date + ?",
        [list_date, HOLDOUT_DAYS],
    ).fetchall()
    return {r[0] for r in rows}


def record_holdout(con, export_id: int, reward_ids, holdout_ids, list_date: date, seed: int, pct: float) -> None:
    """Insert the arms of one export (inside the caller's transaction, beside the audit row)."""
    rows = [(export_id, c, "reward", list_date, int(seed), float(pct)) for c in reward_ids]
    rows += [(export_id, c, "holdout", list_date, int(seed), float(pct)) for c in holdout_ids]
    if rows:
        con.executemany(
            "INSERT INTO holdouts (export_id, customer_id, arm, list_date, seed, pct) VALUES (?, ?, ?, ?, ?, ?)", rows
        )


# ---------------------------------------------------------------- re-organisations


def sync_unit_map(con: duckdb.DuckDBPyConnection) -> None:
    """Rebuild ``unit_map`` (old unit -> successor) from the live reorgs rows, inside the caller's
    transaction. A from_unit with one to_unit (a rename, or one side of a merge) maps its whole
    history onto the successor, followed through chains (A -> B, later B -> C: A -> C); a from_unit
    with several to_units is a split and keeps its history under its own id."""
    rows = con.execute(
        "SELECT DISTINCT from_unit, to_unit FROM reorgs WHERE from_unit IS NOT NULL AND to_unit IS NOT NULL"
    ).fetchall()
    targets: dict[str, set[str]] = {}
    for a, b in rows:
        targets.setdefault(str(a), set()).add(str(b))
    direct = {a: next(iter(t)) for a, t in targets.items() if len(t) == 1 and a not in t}
    final: dict[str, str] = {}
    for a in direct:
        seen, cur = {a}, direct[a]
        while cur in direct and cur not in seen:  # cycles are refused at import; stop on one anyway
            seen.add(cur)
            cur = direct[cur]
        final[a] = cur
    con.execute("DELETE FROM unit_map")
    if final:
        con.executemany("INSERT INTO unit_map VALUES (?, ?)", [[a, b] for a, b in sorted(final.items())])


def unit_mapping(con: duckdb.DuckDBPyConnection) -> dict[str, str]:
    """old unit -> successor (renames and merges; see sync_unit_map)."""
    return dict(con.execute("SELECT from_unit, to_unit FROM unit_map").fetchall())


# ---------------------------------------------------------------- erasure: key, HMAC, file rewrite

KEY_ENV = "CXSTATS_ERASURE_KEY"


def erasure_key_path(path: str | os.PathLike | None = None) -> Path:
    p = db_path(path)
    return p.with_name(p.name + ".erasure-key")


@overload
def erasure_key(path: str | os.PathLike | None = None, *, create: Literal[True]) -> bytes: ...
@overload
def erasure_key(path: str | os.PathLike | None = None, *, create: bool = False) -> bytes | None: ...
def erasure_key(path: str | os.PathLike | None = None, *, create: bool = False) -> bytes | None:
    """The HMAC key for erased ids: $CXSTATS_ERASURE_KEY, else the key file beside the database
    (32 random bytes, created on first use with mode 0600). None when neither exists and not ``create``."""
    env = os.environ.get(KEY_ENV)
    if env:
        return env.encode("utf-8")
    kp = erasure_key_path(path)
    if kp.is_file():
        return kp.read_bytes()
    if not create:
        return None
    import secrets

    kp.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(kp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return kp.read_bytes()
    with os.fdopen(fd, "wb") as f:
        f.write(secrets.token_hex(32).encode())
        f.flush()
        os.fsync(f.fileno())
    return kp.read_bytes()


def normalise_identifier(value: object, what: str) -> str | None:
    """The form an identifier is compared in: ids as stored (trimmed), e-mails lower-case, handles
    lower-case without a leading '@'."""
    if value is None:
        return None
    t = str(value).strip()
    if what == "email":
        t = t.lower()
    elif what == "handle":
        t = t.lower().lstrip("@")
    return t or None


def identifier_hmac(key: bytes, value: object, what: str) -> str | None:
    """HMAC-SHA256 (hex) of a normalised identifier; ``what`` is 'id', 'email' or 'handle'."""
    import hashlib
    import hmac

    t = normalise_identifier(value, what)
    if t is None:
        return None
    return hmac.new(key, f"{what}:{t}".encode("utf-8"), hashlib.sha256).hexdigest()


def erased_hmacs(con: duckdb.DuckDBPyConnection) -> dict[str, set[str]]:
    """Every erased HMAC by what it names: customer ids, respondent ids, e-mails, handles."""
    out: dict[str, set[str]] = {"customer": set(), "respondent": set(), "email": set(), "handle": set()}
    for kind, idh, handles, emails in con.execute(
        "SELECT kind, id_hmac, handle_hmacs, email_hmacs FROM erasures"
    ).fetchall():
        if idh:
            out[kind].add(idh)
        out["handle"].update(h for h in str(handles or "").split(";") if h)
        out["email"].update(h for h in str(emails or "").split(";") if h)
    return out


def _rewrite_pending(con: duckdb.DuckDBPyConnection) -> bool:
    r = con.execute("SELECT value FROM meta WHERE key = 'rewrite_pending'").fetchall()
    return bool(r) and r[0][0] == "1"


def mark_rewrite_pending(con: duckdb.DuckDBPyConnection) -> None:
    """Call inside the transaction that deletes people's rows: the file is rewritten after COMMIT
    (or by the next connect, should the process die first)."""
    con.execute("INSERT OR REPLACE INTO meta VALUES ('rewrite_pending', '1')")


def _fsync_dir(d: Path) -> None:
    try:
        fd = os.open(d, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def finish_rewrite(path: str | os.PathLike | None = None) -> None:
    """Scrub the files the project wrote of erased people's rows, then rewrite the database file so
    that deleted values leave its bytes: CHECKPOINT, ATTACH a fresh file, COPY FROM DATABASE, swap
    with os.replace (a DuckDB DELETE, even with VACUUM, leaves old values in the file). A crash at
    any point leaves the old file with its deletes committed and ``rewrite_pending`` set, so the next
    connect finishes the job; a half-written fresh file is discarded."""
    p = db_path(path)
    fresh = p.with_name(p.name + ".rewrite")
    for leftover in (fresh, Path(str(fresh) + ".wal")):
        leftover.unlink(missing_ok=True)
    con = _open(p)
    try:
        scrub_written_files(con, p)
        con.execute("CHECKPOINT")
        src = con.execute("SELECT current_database()").fetchall()[0][0]
        con.execute("ATTACH ? AS cx_fresh", [str(fresh)])
        try:
            con.execute(f'COPY FROM DATABASE "{src}" TO cx_fresh')
            con.execute("DELETE FROM cx_fresh.meta WHERE key = 'rewrite_pending'")
            con.execute("CHECKPOINT cx_fresh")
        finally:
            con.execute("DETACH cx_fresh")
    finally:
        con.close()
    with open(fresh, "rb+") as f:
        os.fsync(f.fileno())
    Path(str(p) + ".wal").unlink(missing_ok=True)  # closed cleanly: nothing to replay
    os.replace(fresh, p)
    _fsync_dir(p.parent)


def _written_file_candidates(con: duckdb.DuckDBPyConnection, db: Path) -> list[Path]:
    files = {Path(r[0]) for r in con.execute("SELECT DISTINCT path FROM written_files").fetchall()}
    try:
        files |= set(db.resolve().parent.rglob("*.rejected.csv"))
    except OSError:
        pass
    return sorted(f for f in files if f.is_file())


def scrub_written_files(con: duckdb.DuckDBPyConnection, db: Path) -> int:
    """Drop, from the rejected-row files the project wrote (tracked in ``written_files``, and any
    ``*.rejected.csv`` under the database's folder), every row with a cell whose HMAC (as an id,
    e-mail or handle) is an erased one. Each file is rewritten atomically. Returns rows dropped."""
    import csv
    import io

    erased = erased_hmacs(con)
    if not any(erased.values()):
        return 0
    key = erasure_key(db)
    if key is None:  # imports refuse without the key; the file rewrite must still go ahead
        return 0
    ids = erased["customer"] | erased["respondent"]
    dropped = 0
    for f in _written_file_candidates(con, db):
        try:
            text = f.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            continue
        rows = list(csv.reader(io.StringIO(text)))
        keep = []
        for i, row in enumerate(rows):
            hit = i > 0 and cells_erased(key, erased, ids, row)
            if hit:
                dropped += 1
            else:
                keep.append(row)
        if len(keep) == len(rows):
            continue
        buf = io.StringIO()
        csv.writer(buf, lineterminator="\n").writerows(keep)
        tmp = f.with_name(f.name + ".tmp")
        with open(tmp, "w", encoding="utf-8") as out:
            out.write(buf.getvalue())
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, f)
    return dropped


def cells_erased(key: bytes, erased: dict[str, set[str]], ids: set[str], cells) -> bool:
    """True when any cell, read as an id, e-mail or handle, matches an erasure."""
    for c in cells:
        if c is None or not str(c).strip() or str(c) == "nan":
            continue
        if (
            identifier_hmac(key, c, "id") in ids
            or identifier_hmac(key, c, "email") in erased["email"]
            or identifier_hmac(key, c, "handle") in erased["handle"]
        ):
            return True
    return False


def record_written_file(con: duckdb.DuckDBPyConnection, path: str | os.PathLike, batch_id: int | None) -> None:
    con.execute(
        "INSERT INTO written_files VALUES (?, ?, ?)",
        [str(Path(path).resolve()), batch_id, datetime.now().replace(microsecond=0)],
    )
