"""Comment themes read the customer texts where the engine is (DESIGN.md "Engines", issue 16): the
feedback and mention themes of the demo are the same on the DuckDB file, on its lake read by DuckDB
and on Spark local[2] over that lake, for every role that may see them (a manager: his units'
feedback only, no mentions). Only distinct texts with their counts come back from the engine
(cxstats.unit_aggregates.feedback_comments / mention_texts). Employee comments stay in the DuckDB
file (metrics.comments) on every engine. The Spark test is slow (CI runs it) and shares the
process's one SparkSession (cxstats.engine caches it).
"""

from __future__ import annotations

import pytest
from engine_fixtures import assert_same, engine_cfg

from cxstats import ADMIN, AccessDenied, Viewer, engine, store, themes

# demo_db: the default demo, built once per session; demo_lake: its lake export, shared
pytest_plugins = ["app_fixtures", "engine_fixtures"]

MANAGER = Viewer("manager", ("S001", "S002", "S003"), "m")
MARKETING = Viewer("marketing", (), "mk")


def _runs(db, cfg, cases):
    out = {}
    with store.connect(db) as con:
        for source, viewer in cases:
            r, texts, ids = themes._run(con, source, viewer, None, cfg)
            out[(source, viewer.role)] = (r.as_json(), texts, list(ids))
    return out


CASES = [("feedback", ADMIN), ("mentions", ADMIN), ("feedback", MANAGER), ("feedback", MARKETING)]


def _check(db, lake, kind, cases):
    base = _runs(db, engine_cfg("duckdb", db, lake), cases)
    got = _runs(db, engine_cfg(kind, db, lake), cases)
    for key in base:
        (rj, rt, ri), (gj, gt, gi) = base[key], got[key]
        assert gt == rt, key  # the same texts in the same order
        assert gi == ri, key  # each assigned to the same theme
        assert_same(rj, gj, str(key))
        assert rj["themes"] and rj["n_texts"] >= themes.MIN_TEXTS, key


def test_lake_read_by_duckdb_gives_the_same_themes(demo_db, demo_lake):
    _check(demo_db, demo_lake, "lake", CASES)


def test_manager_sees_his_units_feedback_and_no_mentions_on_the_lake(demo_db, demo_lake):
    cfg = engine_cfg("lake", demo_db, demo_lake)
    with store.connect(demo_db) as con:
        mine, _ = themes._texts(con, "feedback", MANAGER, cfg)
        every, _ = themes._texts(con, "feedback", ADMIN, cfg)
        n_mgr = con.execute(
            """SELECT count(*) FROM feedback f LEFT JOIN unit_map um ON um.from_unit = f.unit_id
               WHERE coalesce(um.to_unit, f.unit_id) IN ('S001', 'S002', 'S003')
                 AND comment IS NOT NULL AND trim(comment) <> ''"""
        ).fetchall()[0][0]
        with pytest.raises(AccessDenied):
            themes.themes(con, "mentions", viewer=MANAGER, engine=cfg)
    assert len(mine) == n_mgr and 0 < len(mine) < len(every)


def test_only_distinct_texts_come_back(demo_db, demo_lake):
    """The engine returns each (comment, csat) pair once with its count (the demo repeats some texts)."""
    from cxstats import metrics
    from cxstats import unit_aggregates as ua

    with store.connect(demo_db) as con:
        frame = metrics.cx_aggregate(
            con,
            ("feedback_comments", False),
            {},
            lambda t, um: ua.feedback_comments(t.table("feedback"), um),
            viewer=ADMIN,
            engine=engine_cfg("lake", demo_db, demo_lake),
        )
        n = con.execute("SELECT count(*) FROM feedback WHERE comment IS NOT NULL AND trim(comment) <> ''").fetchall()[
            0
        ][0]
    assert list(frame.columns) == ["comment", "csat", "n"]
    assert not frame.duplicated(["comment", "csat"]).any() and frame["n"].sum() == n > len(frame)


@pytest.mark.slow
def test_spark_over_the_lake_gives_the_same_themes(demo_db, demo_lake):
    pytest.importorskip("pyspark", reason="the Spark extra (requirements-spark.txt) is not installed")
    if engine._java() is None:  # pragma: no cover - CI machines have Java 17
        pytest.skip("no Java on this machine (Spark needs Java 17)")
    engine.spark_session("local[2]")  # the module's one session (cached per process)
    _check(demo_db, demo_lake, "spark", [("feedback", ADMIN), ("mentions", ADMIN), ("feedback", MANAGER)])
