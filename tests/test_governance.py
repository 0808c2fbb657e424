"""Erasure, retention and differencing through non-batch changes (DESIGN.md, "Erasure, retention and
re-organisations"): after `forget` the person's id, name, e-mail and handle are in no byte of the
database file or of any file the project wrote under the data folder, the advocates and linkage
outputs equal those of a database that never held the person, later imports skip the person, and
roles are enforced in the library."""

from __future__ import annotations

import math
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cxstats import (
    ADMIN,
    AccessDenied,
    CxStatsError,
    Viewer,
    advocates,
    demo,
    governance,
    ingest,
    linkage,
    metrics,
    store,
)

AS_OF = "2025-12-31"
KINDS_ORDER = ("units", "engagement", "feedback", "purchases", "mentions", "customers", "rewards")


def _close(a, b, path="") -> None:
    """Equal JSON, numbers within 1e-9 relative."""
    if isinstance(a, dict):
        assert isinstance(b, dict) and set(a) == set(b), path
        for k in a:
            _close(a[k], b[k], f"{path}.{k}")
    elif isinstance(a, list):
        assert isinstance(b, list) and len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b)):
            _close(x, y, f"{path}[{i}]")
    elif isinstance(a, float) and isinstance(b, float):
        assert (math.isnan(a) and math.isnan(b)) or abs(a - b) <= 1e-9 * max(1, abs(a), abs(b)), path
    else:
        assert a == b, path


@pytest.fixture(scope="module")
def demo_data():
    return demo.generate(seed=11, units=6, customers=160, end=date(2025, 12, 31))


def _frames(data) -> dict[str, pd.DataFrame]:
    out = dict(data.kinds())
    wide = data.engagement_wide()
    for item in data.items:
        wide[item] = wide[item].astype("Int64")  # "4", not "4.0": a Likert answer
    out["engagement"] = wide
    return {k: out[k].drop(columns=[c for c in ("row_no", "line_no") if c in out[k].columns]) for k in KINDS_ORDER}


def _write_and_load(frames: dict[str, pd.DataFrame], src: Path, db: Path) -> None:
    src.mkdir(parents=True, exist_ok=True)
    for kind in KINDS_ORDER:
        f = src / f"{kind}.csv"
        frames[kind].to_csv(f, index=False)
        ingest.import_file(db, kind, f, viewer=ADMIN)


def _person(data) -> tuple[str, str, str, str]:
    """A customer with orders, mentions, feedback, a name, an e-mail and a handle."""
    c = data.customers.dropna(subset=["name", "email", "handle"])
    have = set(data.mentions["customer_id"].dropna()) & set(data.feedback["customer_id"].dropna())
    have &= set(data.purchases["customer_id"])
    row = c[c["customer_id"].isin(have)].iloc[0]
    return str(row.customer_id), str(row["name"]), str(row.email), str(row.handle)


def _without(frames, cid, handle) -> dict[str, pd.DataFrame]:
    h = handle.lower().lstrip("@")
    out = {}
    for k, f in frames.items():
        if "customer_id" in f.columns:
            keep = f["customer_id"].astype(str) != cid
            if "handle" in f.columns:
                keep &= f["handle"].astype(str).str.lower().str.lstrip("@") != h
            f = f[keep]
        out[k] = f.reset_index(drop=True)
    return out


def _outputs(db) -> tuple[dict, dict]:
    with store.connect(db) as con:
        adv = advocates.score(con, viewer=ADMIN, as_of=AS_OF).as_json(top=0)
        link = linkage.analyse(con, viewer=ADMIN).as_json()
    return adv, link


def _files_hold(root: Path, needles: list[str]) -> list[str]:
    found = []
    for f in root.rglob("*"):
        if f.is_file():
            data = f.read_bytes()
            for n in needles:
                for form in {n, n.lower(), n.upper()}:
                    if form.encode() in data:
                        found.append(f"{f.name}: {form}")
    return found


@pytest.fixture(scope="module")
def erased(tmp_path_factory, demo_data):
    """A database that held the person (with a rejected-row file of theirs under data/), then forgot
    them, and one that never held them."""
    d = tmp_path_factory.mktemp("erase")
    frames = _frames(demo_data)
    cid, name, email, handle = _person(demo_data)
    data_dir = d / "data"
    db = data_dir / "cx.duckdb"
    _write_and_load(frames, d / "src", db)
    # a rejected-row file the app wrote under data/ holding the person
    bad = data_dir / "late_orders.csv"
    late = "customer_id,order_date,amount\nZZ998,2025-11-03,5.00\nZZ999,2025-11-03,also bad\n"
    bad.write_text(late + f"{cid},2025-11-02,oops\n")
    res = ingest.import_file(db, "purchases", bad, viewer=ADMIN, skip_invalid=True, file_name="late_orders.csv")
    assert res.rejected == 2 and Path(res.rejected_path).parent == data_dir
    bad.unlink()  # the user's own input file is not the project's to scrub
    held = _files_hold(data_dir, [cid, name, email, handle.lstrip("@")])
    assert any("rejected" in h for h in held)  # the search can find them before the erasure
    before = _outputs(db)
    out = governance.forget(db, "customer", [cid], viewer=ADMIN)
    never = d / "never" / "cx.duckdb"
    _write_and_load(_without(frames, cid, handle), d / "src_never", never)
    ingest.import_file(never, "purchases", late.encode(), viewer=ADMIN, skip_invalid=True, file_name="late.csv")
    return {
        "dir": d,
        "data": data_dir,
        "db": db,
        "never": never,
        "person": (cid, name, email, handle),
        "result": out,
        "before": before,
        "frames": frames,
    }


def test_forget_leaves_no_byte_of_the_person_under_data(erased):
    cid, name, email, handle = erased["person"]
    assert erased["result"].people[0].total > 0
    assert erased["result"].files_rows == 1
    assert _files_hold(erased["data"], [cid, name, email, handle.lstrip("@")]) == []
    # the other rejected row stays; the key file is private
    assert "ZZ999" in (erased["data"] / "late_orders.rejected.csv").read_text()
    key = store.erasure_key_path(erased["db"])
    assert key.is_file() and (key.stat().st_mode & 0o777) == 0o600
    assert not list(erased["data"].glob("*.rewrite*")) and not list(erased["data"].glob("*.wal"))


def test_forget_outputs_equal_a_database_that_never_held_the_person(erased):
    adv, link = _outputs(erased["db"])
    adv0, link0 = _outputs(erased["never"])
    _close(adv, adv0)
    _close(link, link0)
    assert adv != erased["before"][0]  # the person changed the ranks before: the test compares something
    cid = erased["person"][0]
    with store.connect(erased["db"]) as a, store.connect(erased["never"]) as b:
        for t in ("customers", "purchases", "mentions", "feedback", "rewards", "engagement"):
            q = f"SELECT * EXCLUDE (batch_id, row_no) FROM {t} ORDER BY ALL"
            assert a.execute(q).fetchall() == b.execute(q).fetchall(), t
        assert a.execute("SELECT count(*) FROM order_totals WHERE customer_id = ?", [cid]).fetchall()[0][0] == 0
        assert store.order_totals_fresh(a)
        assert store.derived_fresh(a) == (True, True)
        assert a.execute("SELECT count(*) FROM day_totals WHERE customer_id = ?", [cid]).fetchall()[0][0] == 0
        rec = a.execute(
            "SELECT kind, id_hmac, handle_hmacs, email_hmacs, erased_by, rows_removed FROM erasures"
        ).fetchall()
    assert len(rec) == 1 and rec[0][0] == "customer" and len(rec[0][1]) == 64 and rec[0][2] and rec[0][3]
    assert '"purchases"' in rec[0][5]


def test_reimport_skips_the_erased_person_and_says_so(erased, tmp_path):
    db = tmp_path / "copy.duckdb"
    import shutil

    shutil.copyfile(erased["db"], db)
    shutil.copyfile(store.erasure_key_path(erased["db"]), store.erasure_key_path(db))
    cid = erased["person"][0]
    with store.connect(db) as con:
        batch = next(b.batch_id for b in store.list_batches(con) if b.kind == "customers")
        governance.undo_batch(con, batch, viewer=ADMIN)
        # undoing an older batch never brings erased rows back
        assert con.execute("SELECT count(*) FROM purchases WHERE customer_id = ?", [cid]).fetchall()[0][0] == 0
    src = erased["dir"] / "src" / "customers.csv"
    n_file = len(pd.read_csv(src))
    res = ingest.import_file(db, "customers", src, viewer=ADMIN)
    assert res.erased_skipped == 1 and res.rows_loaded == n_file - 1
    assert "1 row of erased people skipped" in res.summary()
    # mentions by the person's handle alone are skipped too
    m = erased["frames"]["mentions"]
    one = m[m["customer_id"].astype(str) == cid].head(1).assign(customer_id=None)
    f = tmp_path / "m.csv"
    pd.concat([one, m[m["customer_id"].astype(str) != cid].head(2)]).to_csv(f, index=False)
    pv = ingest.preview(f.read_bytes(), "m.csv", "mentions", db=db, viewer=ADMIN)
    assert any("1 rows of erased people skipped" in w for w in pv.warnings)
    got = ingest.import_file(db, "mentions", f, viewer=ADMIN)
    assert (got.erased_skipped, got.rows_loaded) == (1, 2)
    with store.connect(db) as con:
        assert con.execute("SELECT count(*) FROM customers WHERE customer_id = ?", [cid]).fetchall()[0][0] == 0


def test_import_refuses_when_the_erasure_key_is_lost(erased, tmp_path):
    import shutil

    db = tmp_path / "nokey.duckdb"
    shutil.copyfile(erased["db"], db)
    with pytest.raises(CxStatsError, match="erasure key is missing"):
        ingest.import_file(db, "customers", b"customer_id\nC77\n", file_name="c.csv", viewer=ADMIN)


def test_forget_cli_with_a_file_of_ids(tmp_path, cli_inprocess):
    db = tmp_path / "data" / "cli.duckdb"
    ingest.import_file(
        db, "customers", b"customer_id,name\nQX1001,Ann Quirk\nQX1002,Ben\nQX1003,Cy\n", file_name="c.csv", viewer=ADMIN
    )
    ids = tmp_path / "ids.csv"
    ids.write_text("customer_id\nQX1001\nQX1003\n")
    res = cli_inprocess("forget", "customer", "QX1002", "--file", str(ids), db=db)
    assert res.returncode == 0, res.stderr
    assert "customer QX1001: 1 rows removed" in res.stdout and "rewritten" in res.stdout
    with store.connect(db) as con:
        assert con.execute("SELECT count(*) FROM customers").fetchall()[0][0] == 0
        assert con.execute("SELECT count(*) FROM erasures").fetchall()[0][0] == 3
    assert b"Ann Quirk" not in db.read_bytes()
    bad = cli_inprocess("forget", "customer", db=db)
    assert bad.returncode == 2 and "at least one id" in bad.stderr


@pytest.mark.parametrize(
    "role, kind, allowed",
    [
        ("admin", "customer", True),
        ("marketing", "customer", True),
        ("marketing", "respondent", False),
        ("manager", "customer", False),
        ("leader", "customer", False),
        ("leader", "respondent", False),
        ("manager", "respondent", False),
    ],
)
def test_forget_roles_in_the_library(tmp_path, role, kind, allowed):
    db = tmp_path / "r.duckdb"
    ingest.import_file(db, "customers", b"customer_id\nC1\n", file_name="c.csv", viewer=ADMIN)
    viewer = Viewer(role, ("S001",) if role == "manager" else ())
    if allowed:
        governance.forget(db, kind, ["C1"], viewer=viewer)
    else:
        with pytest.raises(AccessDenied):
            governance.forget(db, kind, ["C1"], viewer=viewer)


@pytest.mark.parametrize("role", ["leader", "manager", "marketing"])
def test_purge_is_admin_only(tmp_path, role):
    with pytest.raises(AccessDenied):
        governance.purge(tmp_path / "p.duckdb", viewer=Viewer(role, ("S001",) if role == "manager" else ()))


# ---------------------------------------------------------------- respondents and differencing


def _survey(units: dict[str, int], day: str = "2024-02-10", prefix: str = "R") -> pd.DataFrame:
    rng = np.random.default_rng(4)
    rows = []
    for u, n in units.items():
        for i in range(n):
            rows.append(
                {
                    "unit_id": u,
                    "survey_date": day,
                    "respondent_id": f"{prefix}{u}{i:03d}",
                    "enps": int(rng.integers(0, 11)),
                    "q1": int(rng.integers(1, 6)),
                    "q2": int(rng.integers(1, 6)),
                }
            )
    return pd.DataFrame(rows)


def _load_csv(db, kind, frame, name):
    return ingest.import_file(db, kind, frame.to_csv(index=False).encode(), file_name=name, viewer=ADMIN)


def test_forget_respondent_removes_answers_and_suppresses_the_group_from_then_on(tmp_path):
    db = tmp_path / "data" / "e.duckdb"
    _load_csv(db, "engagement", _survey({"S001": 8, "S002": 12}), "q1.csv")
    with store.connect(db) as con:
        g = metrics.unit_period_engagement(con, viewer=ADMIN).groups
        assert set(g["unit_id"]) == {"S001", "S002"}
    res = governance.forget(db, "respondent", ["RS001003"], viewer=ADMIN)
    assert res.people[0].rows == {"engagement_answers": 2, "engagement": 1}
    assert res.suppressed_groups == 1
    with store.connect(db) as con:
        g = metrics.unit_period_engagement(con, viewer=ADMIN)
        assert list(g.groups["unit_id"]) == ["S002"] and g.suppressed_groups == 1
        assert con.execute("SELECT count(*) FROM suppressed_groups").fetchall()[0][0] == 1
    # a later batch that brings the group back over any size does not show it again
    _load_csv(db, "engagement", _survey({"S001": 6}, "2024-03-01", prefix="N"), "q1b.csv")
    with store.connect(db) as con:
        assert list(metrics.unit_period_engagement(con, viewer=ADMIN).groups["unit_id"]) == ["S002"]
        assert "S001" in set(metrics.suppressed_group_list(con, viewer=ADMIN)["unit_id"])
    assert b"RS001003" not in db.read_bytes()


def test_purge_whole_periods_logged_and_gone_from_the_bytes(tmp_path):
    db = tmp_path / "data" / "p.duckdb"
    fb = pd.DataFrame(
        {
            "unit_id": ["S001"] * 4,
            "date": ["2023-01-05", "2023-03-30", "2023-04-02", "2024-06-01"],
            "csat": [5, 4, 3, 2],
            "response_id": ["PQOLD1", "PQOLD2", "PQKEEP3", "PQKEEP4"],
            "comment": ["purgeable-remark-1", "purgeable-remark-2", "kept-remark", "kept-remark-2"],
        }
    )
    _load_csv(db, "feedback", fb, "fb.csv")
    _load_csv(db, "engagement", _survey({"S001": 6}, "2023-02-01", "OLD"), "old.csv")
    _load_csv(db, "engagement", _survey({"S001": 6}, "2024-02-01", "NEW"), "new.csv")
    assert governance.purge(db, viewer=ADMIN).purged == []  # no retention set: nothing
    with store.connect(db) as con:
        store.set_setting(con, "retain_months_feedback", "14", viewer=ADMIN)
        store.set_setting(con, "retain_months_engagement", "12", viewer=ADMIN)
        with pytest.raises(CxStatsError, match="whole number"):
            store.set_setting(con, "retain_months_feedback", "-1", viewer=ADMIN)
    # today 2024-06-15: feedback keeps from the quarter holding 2023-04-15 (2023-Q2), engagement from 2023-Q2
    res = governance.purge(db, viewer=ADMIN, today=date(2024, 6, 15))
    by = {p.kind: p for p in res.purged}
    assert by["feedback"].cutoff == date(2023, 4, 1) and by["feedback"].rows == 2
    assert by["engagement"].cutoff == date(2023, 4, 1) and by["engagement"].rows == 6
    with store.connect(db) as con:
        assert sorted(r[0] for r in con.execute("SELECT response_id FROM feedback").fetchall()) == [
            "PQKEEP3",
            "PQKEEP4",
        ]
        assert con.execute("SELECT count(*) FROM engagement_answers").fetchall()[0][0] == 12
        assert con.execute("SELECT kind, rows_removed FROM purges ORDER BY kind").fetchall() == [
            ("engagement", 6),
            ("feedback", 2),
        ]
    raw = db.read_bytes()
    assert b"PQOLD1" not in raw and b"purgeable-remark" not in raw and b"OLDS001" not in raw
