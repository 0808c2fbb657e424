"""Issue 16 (engine-link): linkage, focus areas, what changed and the CX figures give the same JSON on
the DuckDB file, on a Parquet lake read by DuckDB and on Spark local[2] over the same lake.

Two databases: the demo (planted +0.30 CSAT % points per index point within units) and a planted panel
(tests/linkage_data.survey) with suppressed groups, a re-organisation (two merges, so feedback
takes the successor's unit on every engine) and odd channels. The lake is the database's ``lake export``
(purchases and feedback partitioned by year). The bar (DESIGN.md
"Acceptance notes"): same ids in the same order, numbers within ``1e-9 * max(1, |a|, |b|)``, the
same warnings word for word. Spark tests are ``slow`` (CI runs them) and share the process's one
SparkSession (cxstats.engine caches it).
"""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import pandas as pd
import pytest
from engine_fixtures import assert_same, build_dbs, engine_cfg, engine_of
from linkage_data import build, load_feedback, survey

from cxstats import ADMIN, Viewer, engine, focus, ingest, linkage, metrics, overview, quality, store

pytest_plugins = ["engine_fixtures"]  # on_duckdb: results() on the DuckDB file for each of dbs


def _planted(path: Path) -> None:
    with store.connect(path) as con:
        build(con, survey(21, n_units=24, n_periods=5, resp_per_group=7, fb_per_group=30, small_groups=4))
        odd = pd.DataFrame(
            {
                "unit_id": ["U002", "U005", "U005"],
                "date": ["2024-03-31", "2024-04-01", "2024-06-30"],
                "csat": [None, 5, 2],
                "nps": [9, None, 0],
                "channel": ["  ", " email ", None],
            }
        )
        odd[["csat", "nps"]] = odd[["csat", "nps"]].astype("Int64")
        load_feedback(con, odd, tag="odd")
    merges = pd.DataFrame(
        [("U000", "U001", "2024-07-01"), ("U010", "U011", "2025-01-01")],
        columns=["from_unit", "to_unit", "effective_date"],
    )
    ingest.import_file(path, "reorgs", merges.to_csv(index=False).encode(), file_name="reorgs.csv", viewer=ADMIN)


@pytest.fixture(scope="module")
def dbs(tmp_path_factory):
    return build_dbs(tmp_path_factory.mktemp("engine_link"), _planted, demo_customers=300)


def _focus_units(con) -> list[str]:
    g = metrics.unit_period_engagement(con, viewer=ADMIN).groups
    return sorted(set(g["unit_id"]))[:3]


def results(db: Path, cfg: engine.EngineConfig, full: bool = True, with_frames: bool = True) -> dict:
    """The figures of this side of issue 16 on one engine, as JSON-ready values (``full`` False: the
    commands' JSON and, with ``with_frames``, one of each CX frame: for Spark, where every engine call
    reads the lake anew and costs seconds)."""
    with store.connect(db) as con:
        con.execute("SET enable_progress_bar = false")
        out = {}
        for metric, lag in (("csat_pct", 0), ("nps", 1))[: 2 if full else 1]:
            out[f"linkage {metric} {lag}"] = linkage.analyse(
                con, viewer=ADMIN, metric=metric, lag=lag, covariates=("region",) if metric == "nps" else (), engine=cfg
            ).as_json()
        for unit in _focus_units(con)[: 2 if full else 1]:
            out[f"focus {unit}"] = focus.focus_areas(con, unit, viewer=ADMIN, engine=cfg).as_json()
        out["changes"] = focus.changes(con, viewer=ADMIN, engine=cfg).as_json()
        mgr = Viewer("manager", ("U001", "S002"))
        frames = {
            "cx_by_unit_period": lambda: metrics.cx_by_unit_period(con, viewer=ADMIN, by_channel=True, engine=cfg),
            "response_times window": lambda: metrics.response_times(
                con, viewer=ADMIN, units=("S001", "U003"), period_from="2024-Q2", period_to="2025-Q4", engine=cfg
            ),
        }
        if full:
            out["changes manager"] = focus.changes(con, viewer=mgr, engine=cfg).as_json()
            frames.update(
                {
                    "cx_by_unit_period manager": lambda: metrics.cx_by_unit_period(con, viewer=mgr, engine=cfg),
                    "cx_by_channel": lambda: metrics.cx_by_channel(con, viewer=ADMIN, engine=cfg),
                    "response_times": lambda: metrics.response_times(con, viewer=ADMIN, engine=cfg),
                }
            )
        frames = {k: f() for k, f in (frames.items() if full or with_frames else ())}
        for k, f in frames.items():
            f = f.copy()
            for c in f.columns:
                if c == "period_start":
                    f[c] = pd.to_datetime(f[c]).dt.strftime("%Y-%m-%d")
            out[k] = json.loads(f.to_json(orient="split", index=False, double_precision=15))
        if full:
            h = overview.headline(con, viewer=ADMIN, period_from="2024-Q3", engine=cfg)
            out["headline"] = {
                k: getattr(h, k)
                for k in (
                    "engagement_index",
                    "csat_pct",
                    "csat_n",
                    "nps",
                    "nps_se",
                    "nps_n",
                    "units",
                    "periods",
                    "incomplete_period",
                )
            }
            out["headline"]["freshness"] = [
                (f.kind, f.latest and f.latest.isoformat(), f.period, f.incomplete) for f in h.freshness
            ]
    return json.loads(json.dumps(out))


@pytest.mark.parametrize("name", ["demo", "planted"])
def test_the_figures_are_real(on_duckdb, name):
    r = on_duckdb[name]
    link = r["linkage csat_pct 0"]
    assert link["n_units"] >= 20 and link["within_unit"]["coef"] is not None and link["suppressed_groups"] >= 1
    assert r["changes"]["compared"] > 0 and len(r["cx_by_channel"]["data"]) >= 3
    assert len(r["response_times"]["data"]) >= (3 if name == "demo" else 0)
    if name == "planted":  # the merged units' feedback is under their successors
        units = {row[0] for row in r["cx_by_unit_period"]["data"]}
        assert "U000" not in units and "U010" not in units and "U001" in units


@pytest.mark.parametrize("name", ["demo", "planted"])
def test_lake_read_by_duckdb_gives_the_same_json(dbs, on_duckdb, name):
    db, cfg = engine_of("lake", dbs, name)
    assert_same(on_duckdb[name], results(db, cfg), name)


def test_commands_read_the_engine_from_the_environment(dbs, cli_inprocess, monkeypatch):
    """The commands in this process (cli.main reads the environment at each call; the corpus's
    subprocess smoke runs prove the real entry point)."""
    cli = cli_inprocess
    db, lake = dbs["planted"]
    unit = "U003"
    plain = [cli(*args, "--json", db=db) for args in (("linkage",), ("focus", unit), ("changes",))]
    monkeypatch.setenv("CXSTATS_LAKE", str(lake))
    on_lake = [cli(*args, "--json", db=db) for args in (("linkage",), ("focus", unit), ("changes",))]
    for a, b in zip(plain, on_lake):
        assert a.returncode == 0 and b.returncode == 0, (a.stderr, b.stderr)
        assert_same(json.loads(a.stdout), json.loads(b.stdout))
    monkeypatch.setenv("CXSTATS_LAKE", str(lake / "missing"))
    bad = cli("linkage", "--json", db=db)
    assert bad.returncode == 2 and "CXSTATS_LAKE" in bad.stderr and bad.stdout == ""


def test_lake_feedback_changed_moves_the_figures(dbs, tmp_path):
    """The lake is really what is read: a lake without one unit's feedback drops that unit."""
    db, lake = dbs["planted"]
    thin = tmp_path / "thin"
    thin.mkdir()
    con = duckdb.connect()
    try:
        for name in engine.LAKE_TABLES:
            if name == "feedback":
                (thin / name).mkdir()
                con.execute(
                    f"COPY (SELECT * FROM read_parquet('{lake / name}/**/*.parquet', hive_partitioning=true) "
                    f"WHERE unit_id <> 'U003') TO '{thin / name / 'part-0.parquet'}' (FORMAT parquet)"
                )
            else:
                (thin / name).symlink_to(lake / name)
    finally:
        con.close()
    mgr = Viewer("manager", ("U003",))
    with store.connect(db) as con:
        frame = metrics.cx_counts(con, viewer=ADMIN, engine=engine_cfg("lake", db, thin))
        full = metrics.cx_counts(con, viewer=ADMIN)
        fresh = {f.kind: f.latest for f in quality.freshness(con, viewer=mgr, engine=engine_cfg("lake", db, thin))}
        fresh_full = {f.kind: f.latest for f in quality.freshness(con, viewer=mgr, engine=engine_cfg("lake", db, lake))}
    assert "U003" in set(full["unit_id"]) and "U003" not in set(frame["unit_id"])
    assert fresh["feedback"] is None and fresh_full["feedback"] is not None  # the Overview's dates follow the lake


@pytest.mark.slow
@pytest.mark.parametrize("name", ["demo", "planted"])
def test_spark_over_the_lake_gives_the_same_json(dbs, on_duckdb, name):
    pytest.importorskip("pyspark")
    db, cfg = engine_of("spark", dbs, name)
    got = results(db, cfg, full=False, with_frames=name == "demo")
    assert_same({k: on_duckdb[name][k] for k in got}, got, name)
