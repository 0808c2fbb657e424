"""Crash safety: SIGKILL an import at random moments; the database is then exactly as before the
import or exactly as after a complete one, never in between (DESIGN.md, "Acceptance notes").

Half of the kills land anywhere in the run (reading, validating, writing), half inside the write
transaction: the child says when it starts writing, and the kill follows after a random share of
the time a complete write took.
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from cxstats import ADMIN, ingest, store

ROOT = Path(__file__).resolve().parents[1]
ROWS = 200_000
KILLS = 8

DRIVER = textwrap.dedent("""
    import sys, time
    from cxstats import ADMIN, ingest, store

    original = store.load_batch

    def traced(*args, **kwargs):
        print("writing", time.monotonic(), flush=True)
        out = original(*args, **kwargs)
        print("written", time.monotonic(), flush=True)
        return out

    store.load_batch = traced
    print("started", time.monotonic(), flush=True)
    ingest.import_file(sys.argv[1], "feedback", sys.argv[2], viewer=ADMIN)
    print("done", time.monotonic(), flush=True)
""")


def big_feedback_csv(path: Path, n: int) -> None:
    rng = np.random.default_rng(3)
    units = np.array([f"S{u:03d}" for u in range(1, 41)])
    days = np.datetime64("2024-01-01") + rng.integers(0, 700, n)
    lines = ["Response ID,Store,Date,CSAT,NPS,Customer ID,Channel"]
    lines += [
        f"K{i:07d},{u},{d},{c},{p},C{cu:06d},web"
        for i, u, d, c, p, cu in zip(
            range(n),
            units[rng.integers(0, 40, n)],
            days.astype(str),
            rng.integers(1, 6, n),
            rng.integers(0, 11, n),
            rng.integers(0, 50_000, n),
        )
    ]
    path.write_text("\n".join(lines) + "\n")


def state(db: Path) -> dict:
    """Every table's rows (count and checksum); batches compared without their clock time."""
    with store.connect(db) as con:
        fp = store.table_fingerprint(con)
        fp["batches"] = con.execute(
            "SELECT batch_id, kind, file_name, rows, sha256, undone FROM batches ORDER BY batch_id"
        ).fetchall()
    return fp


def start(db: Path, csv_path: Path) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.Popen(
        [sys.executable, "-c", DRIVER, str(db), str(csv_path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=ROOT,
    )


@pytest.mark.slow
def test_sigkill_during_import_leaves_before_or_after(tmp_path):
    csv_path = tmp_path / "big_feedback.csv"
    big_feedback_csv(csv_path, ROWS)
    base = tmp_path / "base.duckdb"
    ingest.import_file(base, "feedback", b"Store,Date,CSAT\nS001,2023-12-01,4\n", file_name="earlier.csv", viewer=ADMIN)
    before = state(base)

    # one complete run: the "after" state, and how long reading and writing take
    ref = tmp_path / "ref.duckdb"
    shutil.copy(base, ref)
    proc = start(ref, csv_path)
    out, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err
    stamps = {ln.split()[0]: float(ln.split()[1]) for ln in out.splitlines()}
    total = stamps["done"] - stamps["started"]
    writing = stamps["written"] - stamps["writing"]
    after = state(ref)
    assert after != before

    rng = random.Random(20240601)
    seen = {"before": 0, "after": 0}
    for k in range(KILLS):
        db = tmp_path / f"kill{k}.duckdb"
        shutil.copy(base, db)
        proc = start(db, csv_path)
        try:
            first = proc.stdout.readline()
            assert first.startswith("started"), proc.stderr.read()
            if k % 2:
                line = proc.stdout.readline()  # blocks until the write transaction begins
                assert line.startswith("writing"), line + proc.stderr.read()
                time.sleep(rng.uniform(0, writing))
            else:
                time.sleep(rng.uniform(0, total))
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            proc.stdout.close()
            proc.stderr.close()
        now = state(db)
        assert now in (before, after), f"kill {k}: the database is neither as before nor as after the import"
        seen["before" if now == before else "after"] += 1
    assert seen["before"] >= 1  # at least one kill really interrupted the import
