"""Shared scaffolding of the engine tests (issue 16): one database's lake, the engine configuration of
each kind, the databases of a comparison, and the comparison itself (imported by
tests/test_engine*.py and the AppTests that run on a lake).

    from engine_fixtures import assert_same, build_dbs, engine_cfg, engine_of, write_lake
    pytest_plugins = ["engine_fixtures"]   # the fixture on_duckdb (over the module's dbs and results)
    pytest_plugins = ["app_fixtures", "engine_fixtures"]   # AppTests: demo_lake (the demo_db's lake)

- ``write_lake(db, lake)``: the database's ``lake export`` (purchases and feedback partitioned by year);
- ``engine_cfg(kind, db, lake)``: the EngineConfig of 'duckdb' (the file), 'lake' (the lake read by
  DuckDB) or 'spark' (Spark local[2] over the lake), through ``engine.config_from_env``;
- ``build_dbs(root, planted, demo_customers)``: the demo and a planted database under ``root``, each
  with its lake: ``{"demo": (db, lake), "planted": (db, lake)}``;
- ``on_engine(dbs, results, kind)``: ``results(db, cfg)`` for each of those databases on one engine;
- ``engine_of(kind, dbs, name)``: ``(db, cfg)`` of one of them on the engine ``kind`` (checked);
- ``assert_same(a, b)``: the bar of DESIGN.md "Acceptance notes": same structure, ids and order, numbers
  within ``TOL * max(1, |a|, |b|)``, strings (warnings) word for word;
- ``on_duckdb`` (fixture, per module): ``on_engine(dbs, results, "duckdb")`` with the module's ``dbs``
  fixture and ``results`` function;
- ``demo_lake`` (fixture): the lake of app_fixtures' ``demo_db``, exported once per session (read only);
- ``small_lake(lake, ...)``: the small lake written by hand (tests/test_engine.py, test_engine_connect.py),
  one dataset at a time with ``write_part``, money as ``money([...])``; ``record_erasure(db, kind, id, ...)``
  stores an erasures row keyed with ``ERASURE_KEY`` (set it as store.KEY_ENV).
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from cxstats import ADMIN, demo, engine, store

TOL = 1e-9


def write_lake(db: Path, lake: Path) -> Path:
    """The database's lake (``lake export``: purchases and feedback partitioned by year)."""
    engine.export_lake(db, lake, viewer=ADMIN)
    return lake


def engine_cfg(kind: str, db: Path, lake: Path) -> engine.EngineConfig:
    env = {} if kind == "duckdb" else {"CXSTATS_LAKE": str(lake)}
    if kind == "spark":
        env.update(CXSTATS_ENGINE="spark", CXSTATS_SPARK="local[2]")
    return engine.config_from_env(db, env=env)


def build_dbs(root: Path, planted: Callable[[Path], None], demo_customers: int) -> dict[str, tuple[Path, Path]]:
    """The demo (``demo_customers`` customers) and a database ``planted(path)`` builds, each with its lake."""
    out = {}
    d = root / "demo.duckdb"
    demo.build_demo(d, customers=demo_customers)
    p = root / "planted.duckdb"
    planted(p)
    for name, path in (("demo", d), ("planted", p)):
        out[name] = (path, write_lake(path, root / f"{name}_lake"))
    return out


def on_engine(dbs: dict[str, tuple[Path, Path]], results: Callable, kind: str) -> dict:
    """``results(db, cfg)`` for each database of ``build_dbs`` on the engine ``kind``."""
    return {name: results(db, engine_cfg(kind, db, lake)) for name, (db, lake) in dbs.items()}


def engine_of(kind: str, dbs: dict[str, tuple[Path, Path]], name: str) -> tuple[Path, engine.EngineConfig]:
    """The database ``name`` of ``build_dbs`` and its EngineConfig of ``kind``, checked to be that kind."""
    db, lake = dbs[name]
    cfg = engine_cfg(kind, db, lake)
    assert cfg.kind == kind
    return db, cfg


def assert_same(a, b, where="", *, tol: float = TOL) -> None:
    """Same structure, ids and order; numbers within tol * max(1, |a|, |b|) (TOL unless told); strings equal."""
    if isinstance(a, dict):
        assert isinstance(b, dict) and list(a) == list(b), f"{where}: keys {list(a)} != {list(b)}"
        for k in a:
            assert_same(a[k], b[k], f"{where}.{k}", tol=tol)
    elif isinstance(a, list):
        assert isinstance(b, list) and len(a) == len(b), (
            f"{where}: lengths {len(a)} != {len(b) if isinstance(b, list) else b}"
        )
        for i, (x, y) in enumerate(zip(a, b)):
            assert_same(x, y, f"{where}[{i}]", tol=tol)
    elif isinstance(a, bool) or a is None or isinstance(a, str):
        assert a == b, f"{where}: {a!r} != {b!r}"
    elif isinstance(a, (int, float)):
        assert isinstance(b, (int, float)) and not isinstance(b, bool), f"{where}: {a!r} != {b!r}"
        if math.isnan(a) or math.isnan(b):
            assert math.isnan(a) and math.isnan(b), f"{where}: {a!r} != {b!r}"
        else:
            assert abs(a - b) <= tol * max(1.0, abs(a), abs(b)), f"{where}: {a!r} != {b!r}"
    else:
        raise AssertionError(f"{where}: unexpected {type(a)}")


# ---------------------------------------------------------------- a small lake written by hand (test_engine*.py)

ERASURE_KEY = "test-erasure-key-0123456789abcdef"  # store.KEY_ENV's value wherever erasures are recorded


def write_part(lake: Path, name: str, table: pa.Table, part: str | None = None) -> None:
    """One more Parquet file of the dataset ``name`` (under ``part``, a hive partition such as year=2025)."""
    d = lake / name / part if part else lake / name
    d.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, d / f"part-{len(list(d.glob('*.parquet')))}.parquet")


def money(values):
    """Decimal strings (or None) as the lake's decimal(18, 2) money column."""
    return pa.array([None if v is None else Decimal(v) for v in values], pa.decimal128(18, 2))


def small_lake(lake: Path, purchases_amount=None, customer_id_type=pa.string(), drop=None) -> Path:
    """Two purchases partitions, one each of the rest; customers with three rows of C1 (a later
    withdrawal tied with a consent), C2 and an erased-to-be C9; mentions by id and by handle only."""
    d = dt.date
    amount = purchases_amount if purchases_amount is not None else money(["10.00", "-2.50", "7.25"])
    ids = pa.array(["C1", "C2", "C9"]) if customer_id_type == pa.string() else pa.array([1, 2, 9], customer_id_type)
    tables = {
        "purchases": pa.table(
            {
                "customer_id": ids,
                "order_date": [d(2025, 3, 1), d(2025, 4, 1), d(2025, 5, 1)],
                "amount": amount,
                "order_id": ["O1", "O2", "O3"],
                "unit_id": ["U1", "U1", "U2"],
            }
        ),
        "feedback": pa.table(
            {
                "unit_id": ["U1", "U2", "U2"],
                "date": [d(2025, 1, 2)] * 3,
                "csat": pa.array([5, 4, 1], pa.int64()),
                "customer_id": ["C1", None, "C9"],
            }
        ),
        "mentions": pa.table(
            {
                "customer_id": ["C1", None, None],
                "handle": ["@one", " @Nine ", "@two"],
                "posted_at": [dt.datetime(2025, 2, 1, 12)] * 3,
                "sentiment": [0.5, 0.9, -0.2],
            }
        ),
        "customers": pa.table(
            {
                "customer_id": ["C1", "C1", "C1", "C2", "C9"],
                "email": ["a@x.org", "a@x.org", "a@x.org", "b@x.org", "Nine@X.org"],
                "handle": ["one", "one", "one", "two", "nine"],
                "marketing_consent": [True, True, False, True, True],
                "updated_at": [
                    dt.datetime(2025, 1, 1),
                    dt.datetime(2025, 6, 1),
                    dt.datetime(2025, 6, 1),
                    dt.datetime(2025, 1, 1),
                    dt.datetime(2025, 1, 1),
                ],
            }
        ),
        "units": pa.table({"unit_id": ["U1", "U2"], "unit_name": ["One", "Two"]}),
    }
    for name, t in tables.items():
        if name == drop:
            continue
        if name == "purchases":
            write_part(lake, name, t.slice(0, 2), "year=2025")
            write_part(lake, name, t.slice(2), "year=2026")
        else:
            write_part(lake, name, t)
    return lake


def record_erasure(db: Path, kind: str, ident: str, handles=(), emails=()):
    """An erasure row for ``ident`` (and its handles and e-mails), keyed with ERASURE_KEY, as `cxstats forget` records it."""
    key = ERASURE_KEY.encode()
    with store.connect(db) as con:
        con.execute(
            "INSERT INTO erasures (erasure_id, kind, id_hmac, handle_hmacs, email_hmacs) VALUES (1, ?, ?, ?, ?)",
            [
                kind,
                store.identifier_hmac(key, ident, "id"),
                ";".join(store.identifier_hmac(key, h, "handle") for h in handles),
                ";".join(store.identifier_hmac(key, e, "email") for e in emails),
            ],
        )


@pytest.fixture(scope="module")
def on_duckdb(request, dbs) -> dict:
    """The requesting module's ``results(db, cfg)`` on the DuckDB file for each of its ``dbs`` (a module
    fixture of ``build_dbs``): what the lake and Spark are compared with."""
    return on_engine(dbs, request.module.results, "duckdb")


@pytest.fixture(scope="session")
def demo_lake(demo_db, tmp_path_factory) -> Path:
    """The lake of app_fixtures' demo_db (needs that plugin too); tests read it, never write it."""
    return write_lake(demo_db, tmp_path_factory.mktemp("demo_lake") / "lake")
