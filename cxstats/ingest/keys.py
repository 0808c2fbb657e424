"""Repeated keys and content: the content hash, rows already stored (skipped or refused), erased people."""

from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd

from cxstats import CxStatsError, store
from cxstats.schema import KINDS

from .results import PROBLEMS_KEPT, Problem

# keys whose stored values may change on a later upload (DESIGN.md: a later upload updates a customer)
UPDATABLE_KINDS = ("customers", "units")


def _skip_erased(a, con, out, items):
    """Rows whose customer id, respondent id, handle or e-mail matches an erasure are skipped and
    counted (DESIGN.md: later imports skip rows of erased people and say how many)."""
    if not con.execute("SELECT count(*) FROM erasures").fetchall()[0][0]:
        return out, items
    erased = store.erased_hmacs(con)
    db = con.execute("SELECT path FROM duckdb_databases() WHERE database_name = current_database()").fetchall()[0][0]
    key = store.erasure_key(db)
    if key is None:
        raise CxStatsError(
            f"erasures are recorded but the erasure key is missing: set {store.KEY_ENV} or restore "
            f"{store.erasure_key_path(db)}; nothing loaded"
        )
    hit = np.zeros(len(out), dtype=bool)
    for col, what, sets in (
        ("customer_id", "id", erased["customer"]),
        ("respondent_id", "id", erased["respondent"]),
        ("handle", "handle", erased["handle"]),
        ("email", "email", erased["email"]),
    ):
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
    a.warnings.append(
        f"{a.erased_skipped:,} rows of erased people skipped (their id, handle or e-mail matches an erasure)"
    )
    return out, items


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
            got = con.execute(
                f"SELECT count(*), sum(hash({args}))::HUGEINT::VARCHAR, bit_xor(hash({args})) FROM {name}"
            ).fetchall()[0]
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

    if _ascending_text(keys):
        return False

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


def _ascending_text(keys: pd.DataFrame) -> bool:
    """True when the key is one text column whose values strictly increase row by row (sequential ids,
    as most exports write them): then no two are equal. One comparison per row (~0.01 s for a million
    ids against ~0.1 s CPU for hashing them); False sends the keys to the hash count."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if keys.shape[1] != 1 or not isinstance(keys.dtypes.iloc[0], pd.StringDtype):
        return False
    try:
        col = pa.array(keys.iloc[:, 0].array)
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError, TypeError):
        return False
    if not (pa.types.is_string(col.type) or pa.types.is_large_string(col.type)) or col.null_count:
        return False
    return bool(pc.all(pc.less(col[:-1], col[1:])).as_py())


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
            msgs = [
                f"{'/'.join(key)} {tuple(r) if len(key) > 1 else r[0]!r} also in row "
                f"{first_rows.get(tuple(r) if len(key) > 1 else r[0])} with other values"
                for r in rows[key].itertuples(index=False)
            ]
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
                    a.fatal.append(
                        Problem(
                            int(out.loc[i, "row_no"]),
                            label,
                            f"{key[0]} {kv!r} is already stored (batch {batch}) with other values; "
                            f"fix the row, or undo batch {batch} first",
                        )
                    )
    a.duplicates_skipped = int(skip.sum())
    if skip.any():
        kept_rows = set(out.loc[skip, "row_no"])
        out = out.loc[~skip].reset_index(drop=True)
        if len(items):
            items = items[~items["row_no"].isin(kept_rows)]
        a.warnings.append(f"{a.duplicates_skipped:,} rows already stored with the same values were skipped")
    return out, items
