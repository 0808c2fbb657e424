"""cxstats.engine: configuration, the tables of each engine, erasures and customers' current rows in
a lake, and one clear message per bad configuration (DESIGN.md "Engines")."""

from __future__ import annotations

import re
import shutil
from decimal import Decimal

import pyarrow as pa
import pytest
from engine_fixtures import ERASURE_KEY, record_erasure, small_lake, write_part

from cxstats import ADMIN, CxStatsError, Viewer, engine, store


def _rows(t, name, *cols):
    tb = t.execute(t.table(name).order_by(*cols)) if cols else t.execute(t.table(name))
    return tb.to_pylist()


# ---------------------------------------------------------------- configuration


@pytest.mark.parametrize(
    "env, kind, desc",
    [
        ({}, "duckdb", "DuckDB file {db}"),
        ({"CXSTATS_ENGINE": "duckdb"}, "duckdb", "DuckDB file {db}"),
        ({"CXSTATS_LAKE": "{lake}"}, "lake", "Parquet lake {lake} (DuckDB)"),
        ({"CXSTATS_ENGINE": "lake", "CXSTATS_LAKE": "{lake}"}, "lake", "Parquet lake {lake} (DuckDB)"),
        ({"CXSTATS_ENGINE": "Spark", "CXSTATS_LAKE": "{lake}"}, "spark", "Spark local[2] over {lake}"),
        (
            {"CXSTATS_ENGINE": "spark", "CXSTATS_LAKE": "{lake}", "CXSTATS_SPARK": "spark://h:7077"},
            "spark",
            "Spark spark://h:7077 over {lake}",
        ),
        (
            {"CXSTATS_ENGINE": "spark", "CXSTATS_LAKE": "s3://b/lake", "CXSTATS_SPARK": "sc://h:15002"},
            "spark",
            "Spark sc://h:15002 over s3://b/lake",
        ),
    ],
)
def test_config_from_env(tmp_path, env, kind, desc):
    db = tmp_path / "x.duckdb"
    env = {k: v.format(lake=tmp_path) for k, v in env.items()}
    cfg = engine.config_from_env(db, env=env)
    assert cfg.kind == kind
    assert cfg.db == db
    assert cfg.describe() == desc.format(db=db, lake=tmp_path)


@pytest.mark.parametrize(
    "env, fragment",
    [
        ({"CXSTATS_ENGINE": "presto"}, "unknown CXSTATS_ENGINE='presto'"),
        ({"CXSTATS_ENGINE": "spark"}, "CXSTATS_ENGINE=spark needs CXSTATS_LAKE"),
        ({"CXSTATS_ENGINE": "lake"}, "CXSTATS_ENGINE=lake needs CXSTATS_LAKE"),
        ({"CXSTATS_ENGINE": "spark", "CXSTATS_LAKE": "{lake}", "CXSTATS_SPARK": "yarn"}, "CXSTATS_SPARK='yarn' is not"),
        ({"CXSTATS_LAKE": "{lake}/nowhere"}, "nowhere: no such folder"),
        ({"CXSTATS_ENGINE": "spark", "CXSTATS_LAKE": "{lake}/nowhere"}, "nowhere: no such folder"),
    ],
)
def test_bad_config_one_clear_message(tmp_path, env, fragment):
    env = {k: v.format(lake=tmp_path) for k, v in env.items()}
    with pytest.raises(CxStatsError) as e:
        engine.config_from_env(tmp_path / "x.duckdb", env=env)
    assert fragment.format(lake=tmp_path) in str(e.value)
    assert "\n" not in str(e.value)


def test_config_reads_os_environ(monkeypatch, tmp_path):
    monkeypatch.setenv("CXSTATS_LAKE", str(tmp_path))
    monkeypatch.delenv("CXSTATS_ENGINE", raising=False)
    assert engine.config_from_env(tmp_path / "x.duckdb").kind == "lake"


# ---------------------------------------------------------------- the DuckDB file


def test_duckdb_tables_match_the_file(tmp_path):
    from cxstats import cli

    db = tmp_path / "d.duckdb"
    assert cli.main(["demo", "--db", str(db), "--units", "6", "--customers", "200", "--seed", "3"]) == 0
    cfg = engine.config_from_env(db, env={})
    with engine.open_tables(cfg, viewer=ADMIN) as t:
        assert t.kind == "duckdb"
        for name in engine.LAKE_TABLES:
            tb = t.table(name)
            assert tuple(tb.columns) == tuple(c for c, _, _ in engine.table_columns(name))
        n = {name: t.execute(t.table(name).count().name("n").as_table())["n"][0].as_py() for name in engine.LAKE_TABLES}
        con = t.con
        for name in ("purchases", "feedback", "mentions", "units"):
            assert n[name] == con.execute(f"SELECT count(*) FROM {name}").fetchall()[0][0]
        assert n["customers"] == con.execute("SELECT count(DISTINCT customer_id) FROM customers").fetchall()[0][0]
        p = t.table("purchases")
        got = t.execute(p.group_by("customer_id").aggregate(spend=p.amount.sum()).order_by("customer_id"))
        want = t.local("SELECT customer_id, sum(amount) AS spend FROM purchases GROUP BY 1 ORDER BY 1")
        assert got["customer_id"].to_pylist() == list(want["customer_id"])
        assert [float(x) for x in got["spend"].to_pylist()] == [float(x) for x in want["spend"]]
        # a small local frame joins the engine's tables
        m = t.small({"customer_id": list(want["customer_id"][:3])})
        assert t.execute(p.join(m, "customer_id").customer_id.nunique().name("n").as_table())["n"][0].as_py() == 3
        assert t.local("SELECT count(*) AS n FROM settings WHERE key = ?", ["min_group"])["n"][0] == 1
        with pytest.raises(CxStatsError, match="no engine table 'engagement'"):
            t.table("engagement")


# ---------------------------------------------------------------- a lake read by DuckDB


def _lake_cfg(tmp_path, lake):
    return engine.config_from_env(tmp_path / "d.duckdb", env={"CXSTATS_LAKE": str(lake)})


def test_lake_tables_types_and_current_customers(tmp_path):
    lake = small_lake(tmp_path / "lake")
    with engine.open_tables(_lake_cfg(tmp_path, lake), viewer=ADMIN) as t:
        assert t.kind == "lake"
        for name in engine.LAKE_TABLES:
            assert tuple(t.table(name).columns) == tuple(c for c, _, _ in engine.table_columns(name))
        assert str(t.table("purchases").schema()["amount"]) == "decimal(18, 2)"
        assert str(t.table("feedback").schema()["csat"]) == "int32"
        pur = _rows(t, "purchases", "order_id")
        assert [r["order_id"] for r in pur] == ["O1", "O2", "O3"]
        assert [r["amount"] for r in pur] == [Decimal("10.00"), Decimal("-2.50"), Decimal("7.25")]
        assert pur[0]["line_no"] is None  # an optional column the lake lacks reads as null
        cust = _rows(t, "customers", "customer_id")
        assert [r["customer_id"] for r in cust] == ["C1", "C2", "C9"]
        assert cust[0]["marketing_consent"] is False  # the withdrawal wins the 2025-06-01 tie
        assert t.local("SELECT count(*) AS n FROM batches")["n"][0] == 0  # the rest: the DuckDB file


def test_lake_leaves_out_erased_ids_handles_and_emails(tmp_path, monkeypatch):
    monkeypatch.setenv(store.KEY_ENV, ERASURE_KEY)
    lake = small_lake(tmp_path / "lake")
    db = tmp_path / "d.duckdb"
    record_erasure(db, "customer", "C9", handles=["nine"], emails=["nine@x.org"])
    with engine.open_tables(_lake_cfg(tmp_path, lake), viewer=ADMIN) as t:
        assert [r["customer_id"] for r in _rows(t, "purchases", "order_id")] == ["C1", "C2"]
        assert [r["customer_id"] for r in _rows(t, "feedback", "csat")] == [None, "C1"]  # null ids stay
        # the mention by ' @Nine ' only (no customer id) goes with the erased handle
        assert sorted(r["handle"] for r in _rows(t, "mentions")) == ["@one", "@two"]
        assert [r["customer_id"] for r in _rows(t, "customers", "customer_id")] == ["C1", "C2"]


def test_lake_erased_email_alone_drops_the_row(tmp_path, monkeypatch):
    monkeypatch.setenv(store.KEY_ENV, ERASURE_KEY)
    lake = small_lake(tmp_path / "lake")
    record_erasure(tmp_path / "d.duckdb", "customer", "someone-else", emails=["B@x.org "])
    with engine.open_tables(_lake_cfg(tmp_path, lake), viewer=ADMIN) as t:
        assert [r["customer_id"] for r in _rows(t, "customers", "customer_id")] == ["C1", "C9"]
        assert len(_rows(t, "purchases")) == 3


def test_lake_erasures_without_the_key_refuse(tmp_path, monkeypatch):
    monkeypatch.setenv(store.KEY_ENV, ERASURE_KEY)
    lake = small_lake(tmp_path / "lake")
    record_erasure(tmp_path / "d.duckdb", "customer", "C9")
    monkeypatch.delenv(store.KEY_ENV)
    with pytest.raises(CxStatsError, match="erasure key is missing"):
        with engine.open_tables(_lake_cfg(tmp_path, lake), viewer=ADMIN):
            pass


def _float_money():
    return pa.array([10.0, -2.5, 7.25], pa.float64())


@pytest.mark.parametrize(
    "make, bad, fragment",
    [
        (lambda lake: small_lake(lake, drop="mentions"), "mentions", "missing dataset mentions/"),
        (
            lambda lake: (small_lake(lake, drop="units"), (lake / "units").mkdir()),
            "units",
            "dataset units/ holds no Parquet files",
        ),
        (
            lambda lake: small_lake(lake, purchases_amount=_float_money()),
            "purchases",
            "purchases/ column amount: expected decimal(18, 2), found float64",
        ),
        (
            lambda lake: small_lake(lake, customer_id_type=pa.int64()),
            "purchases",
            "purchases/ column customer_id: expected string, found int64 (ids are text)",
        ),
    ],
)
def test_bad_lake_one_clear_message(tmp_path, make, bad, fragment):
    """A bad dataset is found when an analysis first asks for it (tables open lazily); the other
    datasets still read."""
    lake = tmp_path / "lake"
    make(lake)
    with engine.open_tables(_lake_cfg(tmp_path, lake), viewer=ADMIN) as t:
        with pytest.raises(CxStatsError) as e:
            t.table(bad)
        good = "feedback"
        assert len(_rows(t, good)) == 3
    assert fragment in str(e.value)
    assert str(lake) in str(e.value)


def test_lake_missing_required_column(tmp_path):
    lake = small_lake(tmp_path / "lake")
    for f in (lake / "customers").glob("*.parquet"):
        f.unlink()
    write_part(lake, "customers", pa.table({"customer_id": ["C1"]}))
    with pytest.raises(CxStatsError, match=r"customers/ has no column updated_at \(expected timestamp\)"):
        with engine.open_tables(_lake_cfg(tmp_path, lake), viewer=ADMIN) as t:
            t.table("customers")


def test_tables_open_lazily_once_each(tmp_path, monkeypatch):
    """A dataset is opened, checked and erasure-filtered the first time t.table asks for it, at most
    once per open_tables; the others are never read."""
    monkeypatch.setenv(store.KEY_ENV, ERASURE_KEY)
    lake = small_lake(tmp_path / "lake")
    record_erasure(tmp_path / "d.duckdb", "customer", "C9", handles=["nine"])
    calls: list[str] = []
    real = engine._conform

    def counting(name, raw, where):
        calls.append(name)
        return real(name, raw, where)

    monkeypatch.setattr(engine, "_conform", counting)
    with engine.open_tables(_lake_cfg(tmp_path, lake), viewer=ADMIN) as t:
        assert t.opened == () and calls == []
        p1, p2 = t.table("purchases"), t.table("purchases")
        assert p1 is p2 and t.opened == ("purchases",)
        n = len(calls)
        assert set(calls) == {"purchases"}
        assert [r["customer_id"] for r in _rows(t, "purchases", "order_id")] == ["C1", "C2"]  # erasure applied
        assert len(calls) == n
    with engine.open_tables(_lake_cfg(tmp_path, lake), viewer=ADMIN) as t:  # a new operation opens again
        t.table("purchases")
    assert len(calls) == 2 * n
    cfg = engine.config_from_env(tmp_path / "d.duckdb", env={})
    with engine.open_tables(cfg, viewer=ADMIN) as t:
        assert t.opened == ()
        assert t.table("units") is t.table("units") and t.opened == ("units",)


def test_cli_exits_2_when_a_dataset_is_missing(small_demo, tmp_path, monkeypatch, capsys):
    """A dataset checked at first use still reaches the user as one line on stderr and exit 2."""
    from cxstats import cli

    monkeypatch.setenv(store.KEY_ENV, ERASURE_KEY)
    db, _ = small_demo
    lake = tmp_path / "lake"
    engine.export_lake(db, lake, viewer=ADMIN)
    shutil.rmtree(lake / "feedback")
    monkeypatch.setenv("CXSTATS_LAKE", str(lake))
    capsys.readouterr()
    assert cli.main(["linkage", "--db", str(db)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert f"lake {lake}: missing dataset feedback/" in err[0]


def test_open_tables_needs_a_viewer(tmp_path):
    with pytest.raises(TypeError):
        with engine.open_tables(engine.config_from_env(tmp_path / "d.duckdb", env={})):  # type: ignore[call-arg]
            pass
    with pytest.raises(CxStatsError):
        with engine.open_tables(engine.config_from_env(tmp_path / "d.duckdb", env={}), viewer="admin"):
            pass
    with engine.open_tables(engine.config_from_env(tmp_path / "d.duckdb", env={}), viewer=Viewer("leader")) as t:
        assert t.viewer.role == "leader"


# ---------------------------------------------------------------- lake export


@pytest.fixture(scope="module")
def small_demo(tmp_path_factory):
    """A small demo with one customer erased (rows gone from the file, the erasure recorded)."""
    import os

    from cxstats import cli, governance

    db = tmp_path_factory.mktemp("demo") / "demo.duckdb"
    old = os.environ.get(store.KEY_ENV)
    os.environ[store.KEY_ENV] = ERASURE_KEY
    try:
        assert cli.main(["demo", "--db", str(db), "--units", "6", "--customers", "300", "--seed", "5"]) == 0
        with store.connect(db) as con:
            victim = con.execute(
                "SELECT customer_id FROM mentions WHERE customer_id IS NOT NULL ORDER BY 1 LIMIT 1"
            ).fetchall()[0][0]
        governance.forget(db, "customer", [victim], viewer=ADMIN)
    finally:
        if old is None:
            os.environ.pop(store.KEY_ENV, None)
        else:
            os.environ[store.KEY_ENV] = old
    return db, victim


def _sorted_rows(t, name):
    tb = t.table(name)
    return t.execute(tb.order_by(*tb.columns)).to_pylist()


def test_lake_export_reads_back_equal_to_the_file(small_demo, tmp_path, monkeypatch):
    from cxstats import cli

    monkeypatch.setenv(store.KEY_ENV, ERASURE_KEY)
    db, victim = small_demo
    lake = tmp_path / "lake"
    assert cli.main(["lake", "export", "--to", str(lake), "--db", str(db)]) == 0
    assert sorted(p.name for p in lake.iterdir()) == sorted(engine.LAKE_TABLES)  # no engagement by default
    for name in ("purchases", "feedback"):
        parts = [p.name for p in (lake / name).iterdir()]
        assert parts and all(re.fullmatch(r"year=\d{4}", p) for p in parts), parts
    assert not list(tmp_path.glob(".lake.partial-*"))
    with (
        engine.open_tables(engine.config_from_env(db, env={}), viewer=ADMIN) as f,
        engine.open_tables(engine.config_from_env(db, env={"CXSTATS_LAKE": str(lake)}), viewer=ADMIN) as lk,
    ):
        assert lk.kind == "lake"
        for name in engine.LAKE_TABLES:
            want, got = _sorted_rows(f, name), _sorted_rows(lk, name)
            assert len(got) == len(want) > 0, name
            assert got == want, name
        assert victim not in {r["customer_id"] for r in _sorted_rows(lk, "purchases")}


def test_lake_export_with_engagement_and_refusals(small_demo, tmp_path, monkeypatch, capsys):
    from cxstats import cli

    monkeypatch.setenv(store.KEY_ENV, ERASURE_KEY)
    db, _ = small_demo
    lake = tmp_path / "lake"
    lake.mkdir()  # an empty folder is fine
    assert cli.main(["lake", "export", "--to", str(lake), "--db", str(db), "--include-engagement"]) == 0
    assert {"engagement", "engagement_answers", "engagement_items"} <= {p.name for p in lake.iterdir()}
    with store.connect(db) as con:
        n = con.execute("SELECT count(*) FROM engagement").fetchall()[0][0]
    import duckdb

    assert (
        duckdb.sql("SELECT count(*) FROM read_parquet(?)", params=[str(lake / "engagement" / "*.parquet")]).fetchall()[
            0
        ][0]
        == n
    )
    capsys.readouterr()
    assert cli.main(["lake", "export", "--to", str(lake), "--db", str(db)]) == 2
    err = capsys.readouterr().err
    assert "folder is not empty" in err and str(lake) in err
    with pytest.raises(CxStatsError, match="may not"):
        engine.export_lake(db, tmp_path / "other", viewer=Viewer("marketing"))
    assert not (tmp_path / "other").exists()


def test_lake_export_failure_leaves_nothing(small_demo, tmp_path, monkeypatch):
    monkeypatch.setenv(store.KEY_ENV, ERASURE_KEY)
    db, _ = small_demo
    calls = {"n": 0}
    real = engine._export_select

    def failing(name):
        calls["n"] += 1
        if calls["n"] == 3:
            raise OSError("disk full")
        return real(name)

    monkeypatch.setattr(engine, "_export_select", failing)
    with pytest.raises(OSError):
        engine.export_lake(db, tmp_path / "lake", viewer=ADMIN)
    assert list(tmp_path.iterdir()) == []


def test_lake_export_leaves_out_people_erased_but_still_in_the_file(small_demo, tmp_path, monkeypatch):
    monkeypatch.setenv(store.KEY_ENV, ERASURE_KEY)
    db = tmp_path / "copy.duckdb"
    shutil.copy(small_demo[0], db)
    with store.connect(db) as con:
        cid, email = con.execute(
            "SELECT customer_id, email FROM customers WHERE email IS NOT NULL ORDER BY 1 LIMIT 1"
        ).fetchall()[0]
        other = con.execute(
            "SELECT customer_id FROM customers WHERE customer_id <> ? ORDER BY 1 LIMIT 1", [cid]
        ).fetchall()[0][0]
    record_erasure(db, "customer", "nobody", emails=[email.upper()])  # the e-mail alone names cid
    record_erasure(db, "customer", other)
    res = engine.export_lake(db, tmp_path / "lake", viewer=ADMIN)
    assert res.rows["customers"] > 0
    import duckdb

    got = {
        r[0]
        for r in duckdb.sql(
            "SELECT customer_id FROM read_parquet(?)", params=[str(tmp_path / "lake" / "customers" / "*.parquet")]
        ).fetchall()
    }
    assert cid not in got and other not in got
    pur = {
        r[0]
        for r in duckdb.sql(
            "SELECT DISTINCT customer_id FROM read_parquet(?)",
            params=[str(tmp_path / "lake" / "purchases" / "**" / "*.parquet")],
        ).fetchall()
    }
    assert other not in pur


# ---------------------------------------------------------------- Spark configuration errors (no JVM started)


def _closed_port() -> int:
    import socket

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def _no_extra(monkeypatch):
    import sys

    for mod in ("pyspark", "ibis.backends.pyspark"):
        monkeypatch.setitem(sys.modules, mod, None)  # import then raises ImportError


def _no_java(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))
    monkeypatch.delenv("JAVA_HOME", raising=False)


@pytest.mark.parametrize(
    "master, breakage, fragment",
    [
        ("local[2]", _no_extra, "install the spark extra: pip install -r requirements-spark.txt"),
        ("sc://127.0.0.1:15002", _no_extra, "install the spark extra: pip install -r requirements-spark.txt"),
        ("local[2]", _no_java, "needs Java 17: install it"),
        ("spark://127.0.0.1:{port}", _no_java, "needs Java 17"),
        ("spark://127.0.0.1:{port}", None, "Spark master 127.0.0.1:{port} unreachable within"),
        ("sc://127.0.0.1:{port}", None, "Spark Connect server 127.0.0.1:{port} unreachable within"),
    ],
)
def test_spark_bad_setup_one_clear_message(tmp_path, monkeypatch, master, breakage, fragment):
    port = _closed_port()
    master, fragment = master.format(port=port), fragment.format(port=port)
    if breakage is _no_java:
        _no_java(monkeypatch, tmp_path)
    elif breakage is _no_extra:
        _no_extra(monkeypatch)
    monkeypatch.setattr(engine, "SPARK_CONNECT_TIMEOUT_S", 2.0)
    lake = small_lake(tmp_path / "lake")
    cfg = engine.config_from_env(
        tmp_path / "d.duckdb", env={"CXSTATS_ENGINE": "spark", "CXSTATS_LAKE": str(lake), "CXSTATS_SPARK": master}
    )
    with pytest.raises(CxStatsError) as e:
        with engine.open_tables(cfg, viewer=ADMIN):
            pass
    assert fragment in str(e.value)
    assert master not in engine._SPARK_SESSIONS


def test_java_home_counts(tmp_path, monkeypatch):
    java = tmp_path / "jdk" / "bin" / "java"
    java.parent.mkdir(parents=True)
    java.write_text("#!/bin/sh\n")
    java.chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))
    monkeypatch.setenv("JAVA_HOME", str(tmp_path / "jdk"))
    assert engine._java() == str(java)


def test_cli_exits_2_on_a_bad_lake(tmp_path, monkeypatch, capsys):
    """A bad configuration reaches the user as one line on stderr and exit 2."""
    from cxstats import cli

    monkeypatch.setenv("CXSTATS_ENGINE", "nosuch")
    monkeypatch.setattr(cli, "COMMANDS", dict(cli.COMMANDS, batches=lambda args: engine.config_from_env(args.db) and 0))
    assert cli.main(["batches", "--db", str(tmp_path / "d.duckdb")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "unknown CXSTATS_ENGINE='nosuch'" in err[0]


# ---------------------------------------------------------------- lake URIs (no network)


@pytest.mark.parametrize("uri", ["s3://no-such-bucket/cx", "gs://no-such-bucket/cx", "S3A://b/cx"])
def test_remote_lake_without_the_extension_one_clear_message(tmp_path, monkeypatch, uri):
    """A remote lake read by DuckDB needs httpfs; not installed (an empty home: DuckDB looks for
    extensions under ~/.duckdb), it stops with one message saying how to install it, and never tries
    to download it."""
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    cfg = engine.config_from_env(tmp_path / "d.duckdb", env={"CXSTATS_LAKE": uri})
    assert cfg.kind == "lake" and cfg.lake == uri and cfg.describe() == f"Parquet lake {uri} (DuckDB)"
    with pytest.raises(CxStatsError) as e:
        with engine.open_tables(cfg, viewer=ADMIN):
            pass
    msg = str(e.value)
    assert msg.startswith(f"CXSTATS_LAKE={uri}: DuckDB reads ")
    assert "httpfs extension, which is not installed here: run INSTALL httpfs" in msg
    assert "copy the lake to a local folder" in msg and not e.value.problems


@pytest.mark.parametrize(
    "uri, fragment",
    [
        ("https://example.org/cx", "DuckDB cannot list the files of an https:// folder"),
        ("hdfs://namenode/cx", "DuckDB cannot read hdfs:// lakes"),
    ],
)
def test_lake_uri_duckdb_cannot_read(tmp_path, uri, fragment):
    with pytest.raises(CxStatsError) as e:
        engine.config_from_env(tmp_path / "d.duckdb", env={"CXSTATS_LAKE": uri})
    assert fragment in str(e.value) and "CXSTATS_ENGINE=spark" in str(e.value)
    # Spark reads whatever its cluster reads: the URI is passed through
    cfg = engine.config_from_env(tmp_path / "d.duckdb", env={"CXSTATS_ENGINE": "spark", "CXSTATS_LAKE": uri})
    assert cfg.kind == "spark" and cfg.lake == uri


def test_cli_exits_2_on_a_remote_lake_without_httpfs(tmp_path, monkeypatch, capsys):
    from cxstats import cli

    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("CXSTATS_LAKE", "s3://no-such-bucket/cx")
    db = tmp_path / "d.duckdb"
    with store.connect(db):
        pass
    capsys.readouterr()
    assert cli.main(["linkage", "--db", str(db)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "run INSTALL httpfs" in err[0], err


def test_spark_filesystem_hint():
    h = engine.spark_filesystem_hint("s3://b/cx", 'java.lang.RuntimeException: No FileSystem for scheme "s3"')
    assert "hadoop-aws 3.4.1" in h and "fs.s3.impl=org.apache.hadoop.fs.s3a.S3AFileSystem" in h
    h = engine.spark_filesystem_hint("s3a://b/cx", "ClassNotFoundException: org.apache.hadoop.fs.s3a.S3AFileSystem")
    assert "hadoop-aws 3.4.1" in h and "fs.s3.impl" not in h
    assert "GoogleHadoopFileSystem" in engine.spark_filesystem_hint("gs://b/cx")
    assert "a Hadoop FileSystem for hdfs2://" in engine.spark_filesystem_hint("hdfs2://b/cx")
    assert engine.spark_filesystem_hint("s3a://b/cx", "Path does not exist: s3a://b/cx/units") == (
        "check the URI and the cluster's credentials for it"
    )
