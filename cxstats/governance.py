"""Erasure, retention and re-organisations (DESIGN.md, section of that name).

- :func:`forget` erases people (the right to be forgotten): every row of a customer (customers,
  purchases, order totals, mentions by customer_id and by the person's handle, feedback, rewards,
  hold-outs and any other table with a customer_id) or of a respondent (engagement and the
  answers), scrubs the rejected-row files the project wrote, records an ``erasures`` row (kind,
  HMAC-SHA256 of the id, handles and e-mails, when, who, rows per table) and rewrites the database
  file so the deleted values leave its bytes (:func:`cxstats.store.finish_rewrite`). Later imports
  skip rows whose id, handle or e-mail matches an erasure.
- :func:`purge` deletes rows older than each kind's ``retain_months`` setting, whole periods only,
  logs it in ``purges`` and rewrites the file the same way.
- Differencing through non-batch changes: an erasure, purge, re-organisation or undo that moves a
  kept (unit, period) group by 1 to min_group-1 respondents suppresses that group from then on
  (``suppressed_groups``; :func:`guard_groups`), since the figures before and after would reveal
  those few people.
- Re-organisations are a kind (``reorgs``) loaded like any batch; the mapping of old units onto their
  successor is applied in one place, ``metrics._respondents_sql`` and ``unit_aggregates.mapped_units``.

Roles (checked here, in the library): erasing customers is for admins and marketing, erasing
respondents for admins only; purge is admin only.

Crash safety: the deletes, the erasure or purge record, the differencing suppressions and a
``rewrite_pending`` flag are one transaction; the file rewrite follows, and should the process die
before it ends, the next :func:`cxstats.store.connect` finishes it. SIGKILL at any moment leaves the
rows as before or as after.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path

import duckdb
import pandas as pd

from . import ADMIN, CxStatsError, Viewer, periods, store

KINDS = ("customer", "respondent")


# ---------------------------------------------------------------- differencing


def _group_counts(con: duckdb.DuckDBPyConnection) -> tuple[dict, dict]:
    """Respondents per (unit, period_start): as shown (after mapping and blocking) and per original unit."""
    from . import metrics

    sc = metrics.scope(con)
    params = metrics._resp_params(sc, ADMIN)
    shown = con.execute(
        f"WITH {metrics._respondents_sql(sc)} SELECT unit_id, period_start, respondents FROM grp", params
    ).fetchall()
    orig = con.execute(
        f"WITH {metrics._respondents_sql(sc)} SELECT orig_unit, period_start, n FROM orig_grp", params
    ).fetchall()
    return {(u, p): int(n) for u, p, n in shown}, {(u, p): int(n) for u, p, n in orig}


def snapshot(con: duckdb.DuckDBPyConnection) -> tuple[dict, dict]:
    """The group sizes before a change, for :func:`guard_groups`."""
    return _group_counts(con)


def guard_groups(con: duckdb.DuckDBPyConnection, before: tuple[dict, dict], reason: str) -> list[tuple]:
    """After a non-batch change (inside its transaction): suppress from then on every (unit, period)
    group that was kept before and moved by 1..min_group-1 respondents, as shown and as an original
    unit's group (a later undo of a re-organisation shows those again). Repeats until nothing new is
    suppressed (a suppression can itself move a successor's group). Returns the groups added."""
    mg = store.settings(con).min_group
    added: list[tuple] = []
    have = {(u, p) for u, p in con.execute("SELECT unit_id, period_start FROM suppressed_groups").fetchall()}
    for _ in range(20):
        after = _group_counts(con)
        new = set()
        for b, a in zip(before, after):
            for g, n in b.items():
                if n >= mg and 1 <= abs(n - a.get(g, 0)) <= mg - 1 and g not in have:
                    new.add(g)
            for g, n in a.items():  # a kept group that grew by a few (e.g. an undone split)
                if g in b and b[g] >= mg and 1 <= abs(n - b[g]) <= mg - 1 and g not in have:
                    new.add(g)
        if not new:
            break
        now = datetime.now().replace(microsecond=0)
        con.executemany(
            "INSERT INTO suppressed_groups VALUES (?, ?, ?, ?)", [[u, p, reason, now] for u, p in sorted(new)]
        )
        have |= new
        added.extend(sorted(new))
    return added


# ---------------------------------------------------------------- erasure


@dataclass(frozen=True)
class Erased:
    """One person erased: rows removed per table (0 everywhere when nothing of them was stored)."""

    kind: str
    identifier: str
    rows: dict[str, int]
    files_rows: int = 0

    @property
    def total(self) -> int:
        return sum(self.rows.values())


@dataclass(frozen=True)
class ErasureResult:
    people: list[Erased]
    suppressed_groups: int = 0
    files_rows: int = 0
    notes: list[str] = field(default_factory=list)

    def summary(self) -> str:
        lines = []
        for p in self.people:
            if p.total:
                per = ", ".join(f"{t} {n:,}" for t, n in p.rows.items() if n)
                lines.append(f"{p.kind} {p.identifier}: {p.total:,} rows removed ({per})")
            else:
                lines.append(f"{p.kind} {p.identifier}: nothing stored; recorded so later imports skip them")
        if self.files_rows:
            lines.append(f"{self.files_rows:,} rows removed from rejected-row files")
        if self.suppressed_groups:
            lines.append(
                f"{self.suppressed_groups:,} engagement groups suppressed from now on (they changed by "
                "fewer than min_group respondents)"
            )
        lines.append("database file rewritten: the erased values are gone from its bytes")
        return "\n".join(lines)


def read_id_file(path) -> list[str]:
    """Ids from a file: one per line, or the first column of a CSV; a header line naming the id is skipped."""
    import csv
    import io

    p = Path(path)
    if not p.is_file():
        raise CxStatsError(f"no such file: {p}")
    text = p.read_bytes().decode("utf-8-sig", errors="replace")
    out = []
    for i, row in enumerate(csv.reader(io.StringIO(text))):
        if not row or not row[0].strip():
            continue
        v = row[0].strip()
        if i == 0 and v.lower().replace(" ", "_") in ("customer_id", "respondent_id", "id", "customer", "respondent"):
            continue
        out.append(v)
    return out


def _check_forget_role(viewer: Viewer, kind: str) -> None:
    if kind not in KINDS:
        raise CxStatsError(f"forget what? use 'customer' or 'respondent', not {kind!r}")
    if kind == "customer":
        viewer.require("admin", "marketing")
    else:
        viewer.require("admin")


def _tables_with(con, column: str) -> list[str]:
    return [
        r[0]
        for r in con.execute(
            "SELECT DISTINCT table_name FROM information_schema.columns WHERE table_schema = 'main' AND column_name = ? "
            "AND table_name NOT IN ('erasures') ORDER BY 1",
            [column],
        ).fetchall()
    ]


def _delete(con, table: str, where: str, params: list) -> int:
    n = con.execute(f"SELECT count(*) FROM {table} WHERE {where}", params).fetchall()[0][0]
    if n:
        con.execute(f"DELETE FROM {table} WHERE {where}", params)
    return int(n)


_HANDLE_SQL = "lower(ltrim(trim(handle), '@'))"


def _erase_customer(con, cid: str) -> tuple[dict[str, int], set[str], set[str], set[str]]:
    handles: set[str] = set()
    emails: set[str] = set()
    names: set[str] = set()
    for name, email, handle in con.execute(
        "SELECT name, email, handle FROM customers WHERE customer_id = ?", [cid]
    ).fetchall():
        if name and str(name).strip():
            names.add(str(name).strip())
        if e := store.normalise_identifier(email, "email"):
            emails.add(e)
        if h := store.normalise_identifier(handle, "handle"):
            handles.add(h)
    for (handle,) in con.execute(
        "SELECT DISTINCT handle FROM mentions WHERE customer_id = ? AND handle IS NOT NULL", [cid]
    ).fetchall():
        if h := store.normalise_identifier(handle, "handle"):
            handles.add(h)
    rows: dict[str, int] = {}
    fresh = store.derived_fresh(con)
    rows["mentions"] = _delete(
        con, "mentions", f"customer_id = ? OR list_contains(?::VARCHAR[], {_HANDLE_SQL})", [cid, sorted(handles)]
    )
    for t in _tables_with(con, "customer_id"):
        if t == "mentions":
            continue
        rows[t] = _delete(con, t, "customer_id = ?", [cid])
    # the customer's rows left purchases, order_totals and day_totals alike: what was fresh still is
    store.mark_derived_fresh(con, [t for t, f in zip(store.DERIVED_TABLES, fresh) if f])
    return rows, handles, emails, names


def _erase_respondent(con, rid: str) -> dict[str, int]:
    rows = {
        "engagement_answers": _delete(
            con,
            "engagement_answers",
            "(batch_id, row_no) IN (SELECT (batch_id, row_no) FROM engagement WHERE respondent_id = ?)",
            [rid],
        )
    }
    for t in _tables_with(con, "respondent_id"):
        rows[t] = _delete(con, t, "respondent_id = ?", [rid])
    return rows


def _scrub_audit(con, values: set[str]) -> None:
    """Export audit rows keep their counts, never an erased id, e-mail, handle or name."""
    for v in sorted(values):
        if len(v) < 3:
            continue
        for col in ("filter", "file_name", "who"):
            con.execute(
                f"UPDATE export_audit SET {col} = replace({col}, ?, '[erased]') WHERE contains({col}, ?)", [v, v]
            )


def _joined_hmacs(key: bytes, values: set[str], what: str) -> str:
    """The erasure record's ';'-joined, sorted HMACs of normalised identifiers (none blank, so each has one)."""
    macs = [store.identifier_hmac(key, v, what) for v in values]
    return ";".join(sorted(m for m in macs if m is not None))


def forget(db, kind: str, ids, *, viewer: Viewer) -> ErasureResult:
    """Erase people: every row of each id from every table, the rejected-row files scrubbed, an
    ``erasures`` record per person, then the database file rewritten. One transaction for the
    rows; the rewrite finishes on the next connect if the process dies first.

    Example: ``forget(db, "customer", ["C00042"], viewer=ADMIN)`` removes C00042's customer rows,
    orders, mentions (also those posted under C00042's handle without a customer_id), feedback and
    rewards; importing the same customers file again then skips C00042 and says so.
    """
    _check_forget_role(viewer, kind)
    ids = [str(i).strip() for i in ids if str(i).strip()]
    if not ids:
        raise CxStatsError("name at least one id to forget (or --file with one id per line)")
    key = store.erasure_key(db, create=True)
    people: list[Erased] = []
    n_sup = 0
    p = store.db_path(db)
    with store.connect(p) as con:
        before = snapshot(con) if kind == "respondent" else None
        con.execute("BEGIN TRANSACTION")
        try:
            next_id = con.execute("SELECT coalesce(max(erasure_id), 0) + 1 FROM erasures").fetchall()[0][0]
            audit_values: set[str] = set()
            for i, pid in enumerate(dict.fromkeys(ids)):
                handles: set[str] = set()
                emails: set[str] = set()
                if kind == "customer":
                    rows, handles, emails, names = _erase_customer(con, pid)
                    audit_values |= handles | emails | names | {pid}
                else:
                    rows = _erase_respondent(con, pid)
                    audit_values.add(pid)
                con.execute(
                    "INSERT INTO erasures VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    [
                        next_id + i,
                        kind,
                        store.identifier_hmac(key, pid, "id"),
                        _joined_hmacs(key, handles, "handle"),
                        _joined_hmacs(key, emails, "email"),
                        datetime.now().replace(microsecond=0),
                        viewer.name,
                        json.dumps({t: n for t, n in sorted(rows.items())}),
                    ],
                )
                people.append(Erased(kind, pid, {t: n for t, n in rows.items() if n} or {}))
            _scrub_audit(con, audit_values)
            if before is not None:
                n_sup = len(guard_groups(con, before, f"erasure of {len(people)} respondent(s)"))
            store.mark_rewrite_pending(con)
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise
        files_before = _rejected_rows(con, p)
    store.finish_rewrite(p)
    with store.connect(p) as con:
        files_after = _rejected_rows(con, p)
    return ErasureResult(people, n_sup, max(0, files_before - files_after))


def _rejected_rows(con, db: Path) -> int:
    n = 0
    for f in store._written_file_candidates(con, db):
        try:
            n += max(0, len(f.read_text(encoding="utf-8").splitlines()) - 1)
        except (OSError, UnicodeDecodeError):
            pass
    return n


# ---------------------------------------------------------------- retention


@dataclass(frozen=True)
class Purged:
    kind: str
    retain_months: int
    cutoff: date
    rows: int


@dataclass(frozen=True)
class PurgeResult:
    purged: list[Purged]
    suppressed_groups: int = 0

    def summary(self) -> str:
        if not self.purged:
            return "no retention set (settings retain_months_<kind>): nothing purged"
        lines = [
            f"{p.kind}: {p.rows:,} rows before {p.cutoff.isoformat()} removed (kept {p.retain_months} months, "
            "whole periods)"
            for p in self.purged
        ]
        if self.suppressed_groups:
            lines.append(f"{self.suppressed_groups:,} engagement groups suppressed from now on")
        if any(p.rows for p in self.purged):
            lines.append("database file rewritten: the purged values are gone from its bytes")
        return "\n".join(lines)


def retention_cutoff(today: date, months: int, period: str) -> date:
    """First day of the period that holds ``today - months``: rows of earlier periods go, so only
    whole periods are purged (the period at the boundary is kept whole)."""
    t = (pd.Timestamp(today) - pd.DateOffset(months=int(months))).date()
    return periods.start(t, period)


def _engagement_old(con, cutoff: date, period: str) -> None:
    con.execute(
        f"""CREATE OR REPLACE TEMP TABLE _purge_rows AS
        WITH waves AS ({periods.waves_sql()})
        SELECT e.batch_id, e.row_no FROM engagement e LEFT JOIN waves w ON e.wave = w.wave
        WHERE {periods.survey_start_sql(period)} < ?""",
        [cutoff],
    )


def purge(db, *, viewer: Viewer, today: date | None = None) -> PurgeResult:
    """Delete rows older than each kind's ``retain_months`` (whole periods of the database's period
    setting; an engagement wave's period is its first survey date's), log each kind in ``purges``,
    then rewrite the database file. Kinds with no retention set keep everything."""
    viewer.require("admin")
    today = today or date.today()
    p = store.db_path(db)
    done: list[Purged] = []
    with store.connect(p) as con:
        raw = dict(con.execute("SELECT key, value FROM settings").fetchall())
        period = store.settings(con).period
        plan = [
            (k, int(raw[f"retain_months_{k}"]))
            for k in store.RETENTION_DATES
            if str(raw.get(f"retain_months_{k}") or "").strip()
        ]
        if not plan:
            return PurgeResult([])
        before = snapshot(con)
        con.execute("BEGIN TRANSACTION")
        try:
            next_id = con.execute("SELECT coalesce(max(purge_id), 0) + 1 FROM purges").fetchall()[0][0]
            for i, (kind, months) in enumerate(plan):
                cutoff = retention_cutoff(today, months, period)
                col = store.RETENTION_DATES[kind]
                if kind == "engagement":
                    _engagement_old(con, cutoff, period)
                    con.execute(
                        "DELETE FROM engagement_answers WHERE (batch_id, row_no) IN "
                        "(SELECT (batch_id, row_no) FROM _purge_rows)"
                    )
                    n = _delete(
                        con, "engagement", "(batch_id, row_no) IN (SELECT (batch_id, row_no) FROM _purge_rows)", []
                    )
                    con.execute("DROP TABLE _purge_rows")
                else:
                    n = _delete(con, kind, f"CAST({col} AS DATE) < ?", [cutoff])
                    if kind == "purchases" and n:
                        store.sync_order_totals(con)
                con.execute(
                    "INSERT INTO purges VALUES (?, ?, ?, ?, ?, ?, ?)",
                    [next_id + i, kind, cutoff, months, datetime.now().replace(microsecond=0), viewer.name, n],
                )
                done.append(Purged(kind, months, cutoff, n))
            n_sup = len(guard_groups(con, before, "retention purge"))
            if any(d.rows for d in done):
                store.mark_rewrite_pending(con)
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise
    if any(d.rows for d in done):
        store.finish_rewrite(p)
    return PurgeResult(done, n_sup)


# ---------------------------------------------------------------- undo and re-organisations


def undo_batch(con: duckdb.DuckDBPyConnection, batch_id: int, *, viewer: Viewer) -> store.Batch:
    """Undo a batch (admin), with the differencing guard: an undo (of a re-organisation, say) that
    moves a kept group by 1..min_group-1 respondents suppresses that group from then on."""
    viewer.require("admin")
    kinds = {b.batch_id: b.kind for b in store.list_batches(con)}
    if kinds.get(int(batch_id)) in ("engagement", "reorgs"):
        before = snapshot(con)
        return store.undo(
            con,
            batch_id,
            viewer=viewer,
            before_hook=lambda c: guard_groups(c, before, f"undo of batch {int(batch_id)}"),
        )
    return store.undo(con, batch_id, viewer=viewer)


@dataclass(frozen=True)
class UnitHistory:
    unit_id: str
    former: tuple[str, ...]  # units whose history is shown under this one (renames and merges)
    split_into: tuple[str, ...]  # a split unit keeps its history; its successors start at the effective date


def unit_histories(con: duckdb.DuckDBPyConnection) -> dict[str, UnitHistory]:
    """Former names per unit, for the units list (``units`` shows former names)."""
    mapping = store.unit_mapping(con)
    splits: dict[str, set[str]] = {}
    for a, b in con.execute("SELECT DISTINCT from_unit, to_unit FROM reorgs").fetchall():
        splits.setdefault(str(a), set()).add(str(b))
    out: dict[str, UnitHistory] = {}
    former: dict[str, list[str]] = {}
    for a, b in mapping.items():
        former.setdefault(b, []).append(a)
    for u in set(former) | {a for a, t in splits.items() if len(t) > 1}:
        out[u] = UnitHistory(
            u, tuple(sorted(former.get(u, []))), tuple(sorted(splits[u])) if len(splits.get(u, ())) > 1 else ()
        )
    return out


def reorg_cycle_rows(
    stored: list[tuple[str, str]], incoming: list[tuple[int, str | None, str | None]]
) -> dict[int, str]:
    """Rows of a reorgs file that are refused: a unit merged into itself, or an edge that closes a
    cycle with the stored re-organisations and the file's other rows (A -> B, B -> A); an incoming
    row (row index, from_unit, to_unit) with a unit missing is left to the missing-value rules."""
    edges: dict[str, set[str]] = {}
    for a, b in stored:
        edges.setdefault(a, set()).add(b)
    for _, src, dst in incoming:
        if src and dst and src != dst:
            edges.setdefault(src, set()).add(dst)
    out: dict[int, str] = {}

    def reaches(src: str, dst: str) -> bool:
        seen, stack = set(), [src]
        while stack:
            u = stack.pop()
            if u == dst:
                return True
            if u in seen:
                continue
            seen.add(u)
            stack.extend(edges.get(u, ()))
        return False

    for i, src, dst in incoming:
        if not src or not dst:
            continue
        if src == dst:
            out[i] = f"unit {src!r} cannot be merged into itself"
        elif reaches(dst, src):
            out[i] = (
                f"{src!r} -> {dst!r} makes a cycle ({dst!r} already leads back to {src!r}); a unit's successor "
                "cannot be its predecessor"
            )
    return out


def environment_key_note() -> str:
    return f"key from ${store.KEY_ENV}" if os.environ.get(store.KEY_ENV) else "key file beside the database (mode 0600)"
