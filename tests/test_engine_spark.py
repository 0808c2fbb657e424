"""Spark smoke test (DESIGN.md "Engines"): a lake exported from a small demo reads the same on Spark
local[2] as on DuckDB: every table's count, one grouped aggregate, erasures left out. One
SparkSession for the module (engine.spark_session caches it per process); slow (the JVM takes
10-15 s to start on a quiet machine), run in CI by `make test`."""

from __future__ import annotations

import shutil
from decimal import Decimal

import pytest

from cxstats import ADMIN, CxStatsError, engine, store

pytestmark = pytest.mark.slow

pyspark = pytest.importorskip("pyspark", reason="the Spark extra (requirements-spark.txt) is not installed")
if engine._java() is None:  # pragma: no cover - CI machines have Java 17
    pytest.skip("no Java on this machine (Spark needs Java 17)", allow_module_level=True)

KEY = "spark-smoke-erasure-key-0123456789"


@pytest.fixture(scope="module")
def demo_lake(tmp_path_factory):
    from cxstats import cli, governance

    root = tmp_path_factory.mktemp("spark")
    db, lake = root / "demo.duckdb", root / "lake"
    mp = pytest.MonkeyPatch()
    mp.setenv(store.KEY_ENV, KEY)
    assert cli.main(["demo", "--db", str(db), "--units", "4", "--customers", "150", "--seed", "11"]) == 0
    with store.connect(db) as con:
        victim = con.execute("SELECT customer_id FROM purchases ORDER BY 1 LIMIT 1").fetchall()[0][0]
    governance.forget(db, "customer", [victim], viewer=ADMIN)
    engine.export_lake(db, lake, viewer=ADMIN)
    yield db, lake, victim
    mp.undo()


@pytest.fixture(scope="module")
def spark(demo_lake):
    """The module's one SparkSession (started here so its start-up cost shows in one place)."""
    return engine.spark_session("local[2]")


def _cfg(db, lake, kind):
    return engine.config_from_env(
        db, env={"CXSTATS_ENGINE": kind, "CXSTATS_LAKE": str(lake), "CXSTATS_SPARK": "local[2]"}
    )


def _counts_and_aggregate(t):
    counts = {n: t.execute(t.table(n).count().name("n").as_table())["n"][0].as_py() for n in engine.LAKE_TABLES}
    p, f = t.table("purchases"), t.table("feedback")
    per_unit = t.execute(
        p.group_by("unit_id")
        .aggregate(lines=p.count(), customers=p.customer_id.nunique(), spend=p.amount.sum(), last=p.order_date.max())
        .order_by("unit_id")
    ).to_pylist()
    f = f.filter(f.csat.notnull())
    csat = t.execute(f.group_by("unit_id").aggregate(n=f.count(), mean=f.csat.mean()).order_by("unit_id")).to_pylist()
    customers = t.execute(t.table("customers").order_by("customer_id")).to_pylist()
    return counts, per_unit, csat, customers


def test_spark_equals_lake_on_duckdb(demo_lake, spark, monkeypatch):
    monkeypatch.setenv(store.KEY_ENV, KEY)
    db, lake, victim = demo_lake
    with engine.open_tables(_cfg(db, lake, "lake"), viewer=ADMIN) as t:
        want = _counts_and_aggregate(t)
    with engine.open_tables(_cfg(db, lake, "spark"), viewer=ADMIN) as t:
        assert t.kind == "spark"
        assert all(
            tuple(t.table(n).columns) == tuple(c for c, _, _ in engine.table_columns(n)) for n in engine.LAKE_TABLES
        )
        got = _counts_and_aggregate(t)
    assert got[0] == want[0] and all(v > 0 for v in got[0].values())
    assert [r["unit_id"] for r in got[1]] == [r["unit_id"] for r in want[1]]
    for g, w in zip(got[1], want[1]):
        assert (g["lines"], g["customers"], g["last"]) == (w["lines"], w["customers"], w["last"])
        assert Decimal(g["spend"]) == Decimal(w["spend"])  # money stays DECIMAL on both
    for g, w in zip(got[2], want[2], strict=True):
        assert g["unit_id"] == w["unit_id"] and g["n"] == w["n"]
        assert abs(g["mean"] - w["mean"]) <= 1e-9 * max(1, abs(w["mean"]))
    assert got[3] == want[3]
    assert victim not in {r["customer_id"] for r in got[3]}


def test_spark_leaves_out_erasures_recorded_after_the_export(demo_lake, spark, tmp_path, monkeypatch):
    """An erasure made after the lake was written still hides that person on Spark (by HMAC)."""
    monkeypatch.setenv(store.KEY_ENV, KEY)
    db0, lake, _ = demo_lake
    db = tmp_path / "copy.duckdb"
    shutil.copy(db0, db)
    with store.connect(db) as con:
        cid, handle = con.execute(
            "SELECT customer_id, handle FROM customers WHERE handle IS NOT NULL ORDER BY 1 LIMIT 1"
        ).fetchall()[0]
        con.execute(
            "INSERT INTO erasures (erasure_id, kind, id_hmac, handle_hmacs) VALUES (99, 'customer', ?, ?)",
            [store.identifier_hmac(KEY.encode(), cid, "id"), store.identifier_hmac(KEY.encode(), handle, "handle")],
        )
    seen = {}
    for kind in ("lake", "spark"):
        with engine.open_tables(_cfg(db, lake, kind), viewer=ADMIN) as t:
            m = t.table("mentions")
            seen[kind] = (
                t.execute(t.table("customers").filter(lambda c: c.customer_id == cid).count().name("n").as_table())[
                    "n"
                ][0].as_py(),
                t.execute(t.table("purchases").filter(lambda p: p.customer_id == cid).count().name("n").as_table())[
                    "n"
                ][0].as_py(),
                t.execute(m.count().name("n").as_table())["n"][0].as_py(),
            )
    assert seen["spark"] == seen["lake"]
    assert seen["spark"][:2] == (0, 0)


def test_spark_opens_only_what_is_asked_and_drops_its_views(demo_lake, spark, monkeypatch):
    """Tables open lazily on Spark too: only the datasets asked for become temp views (once each),
    and every view of the operation is dropped when it ends."""
    monkeypatch.setenv(store.KEY_ENV, KEY)
    db, lake, victim = demo_lake

    def ours():
        return {t.name for t in spark.catalog.listTables() if t.name.startswith("cx_")}

    before = ours()
    with engine.open_tables(_cfg(db, lake, "spark"), viewer=ADMIN) as t:
        assert ours() == before and t.opened == ()
        p = t.table("purchases")
        assert t.table("purchases") is p and t.opened == ("purchases",)
        made = ours() - before
        assert made and all("purchases" in v for v in made)  # raw and erasure-filtered views only
        n = t.execute(p.filter(p.customer_id == victim).count().name("n").as_table())["n"][0].as_py()
        assert n == 0
    assert ours() == before


@pytest.mark.parametrize("uri", ["s3://no-such-bucket/cx", "s3a://no-such-bucket/cx"])
def test_spark_passes_a_lake_uri_through(demo_lake, spark, monkeypatch, uri):
    """Spark reads whatever URI its cluster reads (no local check); without hadoop-aws on the
    classpath (this machine) the first table read stops with one message naming the jars to add."""
    monkeypatch.setenv(store.KEY_ENV, KEY)
    db, _, _ = demo_lake
    cfg = engine.config_from_env(db, env={"CXSTATS_ENGINE": "spark", "CXSTATS_LAKE": uri})
    assert cfg.lake == uri
    with engine.open_tables(cfg, viewer=ADMIN) as t:
        with pytest.raises(CxStatsError) as e:
            t.table("purchases")
    msg = str(e.value)
    assert msg.startswith(f"lake {uri}: cannot read dataset purchases/: "), msg
    assert "hadoop-aws 3.4.1" in msg and "README" in msg, msg
