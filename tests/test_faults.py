"""Fault injection (issue 7, point 3; DESIGN.md acceptance note "Crash safety").

SIGKILL hits `python -m cxstats import`, `undo` and `advocates --out` at random moments, many
times each; afterwards the database must equal either the state before or the complete state
after the command (every table's rows compared, timestamps of the moment aside), never anything
in between. The command runs in a child process that has already imported cxstats and waits for
a "go", so the random moment falls inside the command's own work rather than in Python's start-up.

A second process trying to write while another holds the database gets "database busy, try
again" and exit 2, not a crash.

CXSTATS_FAULTS (default 20) sets the kills per command; the count is added to
test-artifacts/fuzz_counts.json.
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

import pytest
from artifacts import stamp, update_counts

from cxstats import ADMIN, demo, ingest, store

ROOT = Path(__file__).resolve().parents[1]
FAULTS = int(os.environ.get("CXSTATS_FAULTS", "20"))
# columns holding the wall-clock moment of the command: they differ between two complete runs
VOLATILE = {
    "batches": ("loaded_at", "undone_at"),
    "export_audit": ("exported_at",),
    "erasures": ("erased_at",),
    "purges": ("purged_at",),
    "suppressed_groups": ("since",),
    "written_files": ("written_at",),
}
# one erasure key for every copy, so the HMACs of a killed run and of the complete run are comparable;
# given to the commands only (set in os.environ at import, it leaked into every other test module)
ERASURE_KEY = os.environ.get("CXSTATS_ERASURE_KEY", "fault-injection-test-key")

DRIVER = textwrap.dedent("""
    import sys
    from cxstats import __main__ as cli, advocates, export, ingest, linkage, metrics  # warm imports
    print("ready", flush=True)
    sys.stdin.readline()
    sys.exit(cli.main(sys.argv[1:]))
""")


def state(db: Path) -> dict:
    """Rows and an order-independent checksum per table, leaving out the moment-of-run columns."""
    with store.connect(db) as con:
        tables = [
            r[0]
            for r in con.execute(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = 'main' ORDER BY 1"
            ).fetchall()
        ]
        out = {}
        for t in tables:
            cols = [
                r[0]
                for r in con.execute(
                    "SELECT column_name FROM information_schema.columns WHERE table_name = ? ORDER BY ordinal_position",
                    [t],
                ).fetchall()
                if r[0] not in VOLATILE.get(t, ())
            ]
            expr = ", ".join(f'"{c}"' for c in cols)
            out[t] = con.execute(
                f"SELECT count(*), coalesce(sum(hash({expr}))::HUGEINT, 0)::VARCHAR FROM {t}"
            ).fetchall()[0]
        return out


def start(args: list[str]) -> subprocess.Popen:
    """The child process, started: it imports cxstats and then says "ready" (see :func:`ready`)."""
    return subprocess.Popen(
        [sys.executable, "-c", DRIVER, *args],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        env=dict(os.environ, PYTHONPATH=str(ROOT), CXSTATS_ERASURE_KEY=ERASURE_KEY),
    )


def ready(p: subprocess.Popen) -> subprocess.Popen:
    assert p.stdout.readline().strip() == "ready", p.stderr.read()
    return p


def spawn(args: list[str]) -> subprocess.Popen:
    return ready(start(args))


def go(p: subprocess.Popen) -> None:
    p.stdin.write("go\n")
    p.stdin.flush()


def record_faults(op: str, kills: int, landed: dict) -> None:
    faults = update_counts("faults", {op: {"sigkills": kills, **landed, "written_at": stamp()}})
    update_counts("faults", {"total_sigkills": sum(v["sigkills"] for v in faults.values() if isinstance(v, dict))})


@pytest.fixture(scope="module")
def base(tmp_path_factory) -> dict:
    """A demo database, a large feedback file to import, and the batch id that import would get."""
    d = tmp_path_factory.mktemp("faults")
    db = d / "base.duckdb"
    demo.build_demo(db, seed=3, units=10, customers=400)
    big = d / "feedback_big.csv"
    rng = random.Random(5)
    lines = ["Store,Date,CSAT,NPS,Response ID"]
    lines += [
        f"S{rng.randint(1, 10):03d},2024-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d},"
        f"{rng.randint(1, 5)},{rng.randint(0, 10)},FZ{i}"
        for i in range(40_000)
    ]
    big.write_text("\n".join(lines) + "\n")
    # purchases touching existing customers' orders and days: order_totals and day_totals change with them
    buys = d / "purchases_big.csv"
    plines = ["customer_id,order_date,amount,order_id"]
    for i in range(15_000):  # two lines per order, one customer and date each
        cust, day = f"C{rng.randint(1, 400):05d}", f"2024-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"
        plines += [f"{cust},{day},{rng.randint(-500, 5000) / 100:.2f},FO{i}" for _ in range(2)]
    buys.write_text("\n".join(plines) + "\n")
    # a large batch to undo, so that kills land inside the DELETEs rather than after them
    ingest.import_file(
        db, "feedback", "\n".join(lines).replace(",FZ", ",UZ").encode() + b"\n", file_name="to_undo.csv", viewer=ADMIN
    )
    with store.connect(db) as con:
        last = max(b.batch_id for b in store.list_batches(con))
        # forget: the customers with the most rows; purge: retention that removes the 2024 feedback
        forget = [
            r[0]
            for r in con.execute(
                "SELECT customer_id FROM purchases GROUP BY 1 ORDER BY count(*) DESC, 1 LIMIT 40"
            ).fetchall()
        ]
        store.set_setting(con, "retain_months_feedback", "12", viewer=ADMIN)
        store.set_setting(con, "retain_months_mentions", "12", viewer=ADMIN)
    return {"dir": d, "db": db, "big": big, "buys": buys, "undo_batch": last, "forget": forget}


def _copy(base: dict, name: str) -> Path:
    p = base["dir"] / name
    _reset(base, p)
    return p


def _reset(base: dict, target: Path) -> None:
    """A fresh copy of the base database (a killed run's WAL file must not replay onto it)."""
    Path(str(target) + ".wal").unlink(missing_ok=True)
    shutil.copyfile(base["db"], target)


OPS = {
    # op -> CLI arguments (db and out paths filled in)
    "import": lambda b, db, out: ["import", "feedback", str(b["big"]), "--db", str(db)],
    "undo": lambda b, db, out: ["undo", str(b["undo_batch"]), "--db", str(db)],
    # purchases: the lines, order_totals and day_totals in one transaction
    "import_purchases": lambda b, db, out: ["import", "purchases", str(b["buys"]), "--db", str(db)],
    "export": lambda b, db, out: ["advocates", "--out", str(out), "--top", "0", "--db", str(db)],
    # the hold-out's arms and the audit row: one transaction (issue 11)
    "export_holdout": lambda b, db, out: [
        "advocates",
        "--out",
        str(out),
        "--top",
        "0",
        "--holdout",
        "20",
        "--seed",
        "4",
        "--db",
        str(db),
    ],
    "forget": lambda b, db, out: ["forget", "customer", *b["forget"], "--db", str(db)],
    "purge": lambda b, db, out: ["purge", "--db", str(db)],
}


@pytest.mark.slow
@pytest.mark.parametrize("op", list(OPS))
def test_sigkill_leaves_the_database_before_or_after(base, op):
    out = base["dir"] / f"{op}-export.csv"
    # the complete run: the "after" state, and how long the command's own work takes
    after_db = _copy(base, f"{op}-after.duckdb")
    before = state(after_db)
    p = spawn(OPS[op](base, after_db, out))
    t0 = time.monotonic()
    go(p)
    _, err = p.communicate(timeout=300)
    work_s = time.monotonic() - t0
    assert p.returncode == 0, err
    after = state(after_db)
    assert after != before, f"{op} changed nothing; the test would prove nothing"
    complete_export = out.read_bytes() if op.startswith("export") else None

    rng = random.Random(f"kill-{op}")
    landed = {"before": 0, "after": 0}
    # two targets used in turn: the next child starts (imports cxstats, the slow part of a trial) while
    # the current one works and is checked, so a kill costs the command's work, not a Python start-up
    targets = [_copy(base, f"{op}-target-{k}.duckdb") for k in (0, 1)]
    # (one export path for both: the waiting child writes nothing before its "go")
    nxt = spawn(OPS[op](base, targets[0], out))
    for i in range(FAULTS):
        p, target = nxt, targets[i % 2]
        if out.exists():
            out.unlink()
        go(p)
        moment = rng.uniform(0, 0.8 * work_s)  # the run's tail is closing and exiting: aim most kills at the work
        t_go = time.monotonic()
        if i + 1 < FAULTS:
            _reset(base, targets[(i + 1) % 2])  # a fresh "before" for the next kill
            nxt = start(OPS[op](base, targets[(i + 1) % 2], out))
        time.sleep(max(0.0, moment - (time.monotonic() - t_go)))
        p.send_signal(signal.SIGKILL)
        p.wait(timeout=60)
        p.stdout.close()
        p.stderr.close()
        p.stdin.close()
        got = state(target)
        if got not in (before, after):
            shutil.copyfile(target, base["dir"] / f"{op}-broken-{i}.duckdb")
            diff = {
                t: (before.get(t), after.get(t), got.get(t)) for t in got if got[t] not in (before.get(t), after.get(t))
            }
            print("BROKEN", base["dir"] / f"{op}-broken-{i}.duckdb", diff)
        assert got in (before, after), f"{op}: kill {i + 1} left the database half-written"
        landed["before" if got == before else "after"] += 1
        if op.startswith("export") and out.exists():
            assert out.read_bytes() == complete_export, "a killed export left a partial file in place"
        if i + 1 < FAULTS:
            ready(nxt)
    record_faults(op, FAULTS, landed)
    print(f"\n{op}: {FAULTS} SIGKILLs, database left as before {landed['before']}x, complete {landed['after']}x")


# ---------------------------------------------------------------- a second process while one holds the file


HOLDER = textwrap.dedent("""
    import sys, time
    import duckdb
    con = duckdb.connect(sys.argv[1])
    con.execute("BEGIN TRANSACTION")
    con.execute("INSERT INTO settings VALUES ('held', 'yes')")
    print("held", flush=True)
    time.sleep(60)
""")


@pytest.mark.parametrize(
    "command",
    [
        lambda b, out: ["import", "feedback", str(b["dir"] / "small.csv")],
        lambda b, out: ["undo", str(b["undo_batch"])],
        lambda b, out: ["advocates", "--out", str(out)],
        lambda b, out: ["batches", "--json"],
    ],
    ids=["import", "undo", "export", "batches"],
)
def test_second_process_gets_database_busy(base, cli, command):
    db = _copy(base, "busy.duckdb")
    (base["dir"] / "small.csv").write_text("Store,Date,CSAT\nS001,2024-03-05,4\n")
    out = base["dir"] / "busy-export.csv"
    before = state(db)
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(db)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        res = cli(*command(base, out), db=db, timeout=120)
        assert res.returncode == 2, res.stderr
        assert "database busy, try again" in res.stderr
        assert "Traceback" not in res.stderr
        assert not out.exists()
    finally:
        holder.kill()
        holder.wait()
        holder.stdout.close()
    assert state(db) == before  # the holder's open transaction died with it; the command wrote nothing


def test_busy_database_in_process_is_a_cxstats_error(base):
    """The app's path: ingest.import_file on a held file raises CxStatsError, not a DuckDB exception."""
    from cxstats import CxStatsError

    db = _copy(base, "busy2.duckdb")
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(db)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(CxStatsError, match="database busy, try again"):
            ingest.import_file(db, "feedback", b"Store,Date,CSAT\nS001,2024-03-05,4\n", file_name="x.csv", viewer=ADMIN)
    finally:
        holder.kill()
        holder.wait()
        holder.stdout.close()
