"""Spark Connect (CXSTATS_SPARK=sc://HOST:PORT): a local Connect server in a subprocess (one per
module; tests/spark_connect_server.py), the small hand-written lake read through it equals the lake
read by DuckDB, erasures left out. Slow (a JVM starts), run in CI by `make test`."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from engine_fixtures import ERASURE_KEY, record_erasure, small_lake

from cxstats import ADMIN, engine, store

pytestmark = pytest.mark.slow

pytest.importorskip("pyspark.sql.connect.session", reason="the Spark extra (requirements-spark.txt) is not installed")
if engine._java() is None:  # pragma: no cover - CI machines have Java 17
    pytest.skip("no Java on this machine (the local Connect server needs Java 17)", allow_module_level=True)

HERE = Path(__file__).resolve().parent


@pytest.fixture(scope="module")
def connect_url():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    mp = pytest.MonkeyPatch()
    mp.setenv("SPARK_CONNECT_AUTHENTICATE_TOKEN", uuid.uuid4().hex)  # the server's and the client's token
    srv = subprocess.Popen(
        [sys.executable, str(HERE / "spark_connect_server.py"), str(port)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=dict(os.environ),
    )
    try:
        line = srv.stdout.readline().strip()
        assert line == "ready", "the local Spark Connect server did not start"
        yield f"sc://localhost:{port}"
    finally:
        srv.stdin.close()
        try:
            srv.wait(60)
        except subprocess.TimeoutExpired:
            srv.kill()
        mp.undo()


def test_spark_connect_equals_lake_on_duckdb(connect_url, tmp_path, monkeypatch):
    monkeypatch.setenv(store.KEY_ENV, ERASURE_KEY)
    lake = small_lake(tmp_path / "lake")
    db = tmp_path / "d.duckdb"
    record_erasure(db, "customer", "C9", handles=["nine"], emails=["nine@x.org"])
    seen = {}
    for kind, master in (("lake", None), ("spark", connect_url)):
        env = {"CXSTATS_LAKE": str(lake), "CXSTATS_ENGINE": kind, **({"CXSTATS_SPARK": master} if master else {})}
        cfg = engine.config_from_env(db, env=env)
        with engine.open_tables(cfg, viewer=ADMIN) as t:
            rows = {}
            for name in engine.LAKE_TABLES:
                tb = t.table(name)
                rows[name] = t.execute(tb.order_by(*tb.columns)).to_pylist()
            p = t.table("purchases")
            rows["agg"] = t.execute(
                p.group_by("unit_id").aggregate(s=p.amount.sum(), n=p.count()).order_by("unit_id")
            ).to_pylist()
            seen[kind] = rows
    assert cfg.describe() == f"Spark {connect_url} over {lake}"
    assert seen["spark"] == seen["lake"]
    assert [r["customer_id"] for r in seen["spark"]["customers"]] == ["C1", "C2"]
    assert seen["spark"]["customers"][0]["marketing_consent"] is False
