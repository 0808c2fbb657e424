"""Storage: batches, undo, settings, busy database."""

import subprocess
import sys
import textwrap

import pandas as pd
import pytest

from cxstats import ADMIN, CxStatsError, Viewer, store


def _units(ids):
    return {"units": pd.DataFrame({"unit_id": ids, "row_no": range(2, 2 + len(ids))})}


def test_load_and_undo_one_batch_exactly(db):
    with store.connect(db) as con:
        before = store.table_fingerprint(con)
        b1 = store.load_batch(con, "units", _units(["A", "B"]), file_name="a.csv", sha256="h1", rows=2)
        mid = store.table_fingerprint(con)
        b2 = store.load_batch(con, "units", _units(["C"]), file_name="b.csv", sha256="h2", rows=1)
        store.undo(con, b2, viewer=ADMIN)
        assert store.table_fingerprint(con)["units"] == mid["units"]
        store.undo(con, b1, viewer=ADMIN)
        assert store.table_fingerprint(con)["units"] == before["units"]
        assert [b.undone for b in store.list_batches(con)] == [True, True]


def test_same_hash_refused_but_allowed_after_undo(db):
    with store.connect(db) as con:
        b = store.load_batch(con, "units", _units(["A"]), file_name="a.csv", sha256="h", rows=1)
        with pytest.raises(CxStatsError, match="already loaded"):
            store.load_batch(con, "units", _units(["A"]), file_name="other-name.csv", sha256="h", rows=1)
        assert len(store.list_batches(con)) == 1  # a refused import writes no history row
        store.undo(con, b, viewer=ADMIN)
        store.load_batch(con, "units", _units(["A"]), file_name="a.csv", sha256="h", rows=1)


@pytest.mark.parametrize("value, ok", [(5, True), (3, True), (2, False), (0, False)])
def test_min_group_never_below_three(db, value, ok):
    with store.connect(db) as con:
        if ok:
            store.set_setting(con, "min_group", value, viewer=ADMIN)
            assert store.settings(con).min_group == value
        else:
            with pytest.raises(CxStatsError):
                store.set_setting(con, "min_group", value, viewer=ADMIN)


def test_only_admin_changes_settings_and_undoes(db):
    with store.connect(db) as con:
        with pytest.raises(CxStatsError):
            store.set_setting(con, "min_group", 7, viewer=Viewer("leader"))
        b = store.load_batch(con, "units", _units(["A"]), file_name="a.csv", sha256="h", rows=1)
        with pytest.raises(CxStatsError):
            store.undo(con, b, viewer=Viewer("manager", ("A",)))


def test_second_process_gets_database_busy(db, cli):
    with store.connect(db):
        pass
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            textwrap.dedent(f"""
            import duckdb, sys, time
            con = duckdb.connect({str(db)!r})
            print('held', flush=True)
            time.sleep(20)
        """),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        out = cli("batches", db=db)
        assert out.returncode == 2
        assert "database busy, try again" in out.stderr
        assert "Traceback" not in out.stderr
    finally:
        holder.kill()
        holder.wait()


def test_cli_batches_json_and_undo(db, cli_inprocess):
    with store.connect(db) as con:
        store.load_batch(con, "units", _units(["A"]), file_name="a.csv", sha256="h", rows=1)
    import json

    out = cli_inprocess("batches", "--json", db=db)
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert set(data["batches"][0]) == {"batch_id", "kind", "file_name", "rows", "loaded_at", "sha256", "undone"}
    assert cli_inprocess("undo", "1", db=db).returncode == 0
    out = cli_inprocess("undo", "1", db=db)
    assert out.returncode == 2 and "already undone" in out.stderr
    assert cli_inprocess("undo", "99", db=db).returncode == 2
