"""Did rewarding work? Hold-outs at export time, the hold-out and matched designs, the effect command.

Outside references: scipy's Welch interval, brute-force window counts in pandas, SMDs by hand.
Simulations (tests/programme_sim.py, fixed seeds): targeted rewards without and with a planted +1;
the 100-seed versions are marked slow, docs/simulations-programme.md has their rates.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
from datetime import date, timedelta

import numpy as np
import pandas as pd
import programme_sim as sim
import pytest
from advocates_fixtures import AS_OF, load, post
from scipy import stats as sps

from cxstats import AccessDenied, CxStatsError, Viewer, advocates, export, programme, store
from cxstats.cli import main

JSON_KEYS = {
    "design",
    "export_id",
    "n_treated",
    "n_control",
    "n_unmatched",
    "orders",
    "spend",
    "pretrend",
    "balance",
    "status",
    "warnings",
}


# ---------------------------------------------------------------- pure formulas against outside references


@pytest.mark.parametrize("seed", range(6))
def test_welch_matches_scipy(seed):
    rng = np.random.default_rng(seed)
    a = rng.normal(1, 2, rng.integers(2, 40))
    b = rng.normal(0, 0.5, rng.integers(2, 40))
    iv = programme.arm_difference(a, b)
    ref = sps.ttest_ind(a, b, equal_var=False).confidence_interval(0.95)
    assert iv.estimate == pytest.approx(a.mean() - b.mean(), abs=1e-12)
    assert (iv.ci_low, iv.ci_high) == pytest.approx((ref.low, ref.high), abs=1e-9)


def test_welch_edge_cases():
    assert programme.arm_difference([1.0], [0.0, 1.0]).ci_low is None
    assert programme.arm_difference([], [1.0]).estimate is None
    assert programme.arm_difference([2.0, 2.0], [1.0, 1.0]) == programme.Interval(1.0, 1.0, 1.0)


def test_smd_by_hand():
    # means 2 and 3, SDs 1 and 1: (2 - 3) / sqrt((1 + 1) / 2) = -1
    assert programme.smd([1, 2, 3], [2, 3, 4]) == pytest.approx(-1.0)
    # fixed denominators (the before-matching SDs): (2 - 3) / sqrt((4 + 0) / 2)
    assert programme.smd([1, 2, 3], [2, 3, 4], 2.0, 0.0) == pytest.approx(-1 / np.sqrt(2))
    assert programme.smd([1, 1], [1, 1]) == 0.0 and programme.smd([1, 1], [2, 2]) is None


def test_draw_holdout_is_seeded_and_sized():
    ids = [f"c{i}" for i in range(37)]
    r1, h1 = programme.draw_holdout(ids, 10, seed=5)
    r2, h2 = programme.draw_holdout(list(reversed(ids)), 10, seed=5)
    assert (r1, h1) == (r2, h2) and len(h1) == 4 and sorted(r1 + h1) == sorted(ids)
    assert programme.draw_holdout(ids, 10, seed=6)[1] != h1
    assert programme.draw_holdout(ids, 0, seed=5)[1] == []
    for bad in (-1, 50.5, "ten", float("nan")):
        with pytest.raises(CxStatsError, match="0 to 50"):
            programme.draw_holdout(ids, bad, seed=1)


def test_order_book_windows_match_brute_force():
    rng = np.random.default_rng(1)
    n = 400
    df = pd.DataFrame(
        {
            "customer_id": rng.choice([f"k{i}" for i in range(30)], n),
            "d": pd.to_datetime("2024-01-01") + pd.to_timedelta(rng.integers(0, 365, n), unit="D"),
            "net": np.round(rng.normal(30, 40, n), 2),
        }
    )
    book = programme.OrderBook.from_frame(df)
    t = pd.Timestamp("2024-08-01")
    tday = programme._day(t)
    cov = book.covariates(book.idx(book.ids), tday)
    for i, c in enumerate(book.ids):
        mine = df[df["customer_id"] == c]
        w = mine[(mine["d"] >= t - pd.Timedelta(days=90)) & (mine["d"] < t)]
        w2 = mine[(mine["d"] >= t - pd.Timedelta(days=180)) & (mine["d"] < t - pd.Timedelta(days=90))]
        counted = mine[(mine["net"] > 0) & (mine["d"] < t)]
        assert cov[i, 0] == (w["net"] > 0).sum()
        assert cov[i, 1] == pytest.approx(w["net"].sum())
        assert cov[i, 2] == (w["net"] > 0).sum() - (w2["net"] > 0).sum()
        if len(counted):
            assert cov[i, 3] == (t - counted["d"].max()).days
            assert cov[i, 4] == (t - mine.loc[mine["net"] > 0, "d"].min()).days
        else:
            assert np.isnan(cov[i, 3])


# ---------------------------------------------------------------- matching rules on a hand-made book


def _book(rows):
    """rows: (customer, list of order day offsets from day 0); each order 10.0."""
    ids, days = [], []
    for c, ds in rows:
        ids += [c] * len(ds)
        days += list(ds)
    return programme.OrderBook(ids, np.array(days) + 20000, np.full(len(ids), 10.0))


def test_matching_caliper_ties_replacement_and_exclusions():
    same = [100, 150, 250, 280, 310]  # the same history for everyone: all distances are 0
    book = _book([("t1", same), ("t2", same), ("a", same), ("b", same), ("z", same), ("far", [100, 120])])
    t = 20000 + 320
    rewards = {"t1": t, "t2": t}
    # "a" was rewarded 100 days after: not a control; "b" free; "z" free
    excluded = {"t1": np.array([t]), "t2": np.array([t]), "a": np.array([t + 100 - 10])}
    m = programme._match(book, sorted((d, c) for c, d in rewards.items()), excluded)
    pairs = {book.ids[i]: book.ids[j] for i, j in zip(m.t_idx, m.c_idx)}
    assert pairs == {"t1": "b", "t2": "z"}  # ties go to the lower customer_id, each control used once
    # only one free look-alike: the second rewarded customer is unmatched, never forced onto "far"
    excluded["z"] = np.array([t - 170])
    m = programme._match(book, sorted((d, c) for c, d in rewards.items()), excluded)
    assert len(m.t_idx) == 1 and m.n_unmatched == 1 and book.ids[m.c_idx[0]] == "b"
    d = programme.matched_design(book, rewards, excluded, t + 60)
    assert d.n_treated == 0 and d.n_too_recent == 2 and any("less than 90 days" in w for w in d.warnings)


# ---------------------------------------------------------------- through the database


def _programme_data(effect_orders: int, seed: int = 3):
    """300 similar customers buying every ~30 days; 60 rewarded on 2024-01-01 and, if planted, buying
    `effect_orders` extra orders in the 90 days after."""
    rng = np.random.default_rng(seed)
    t = date(2024, 1, 1)
    purchases, mentions = [], []
    for c in range(300):
        cid = f"c{c:03d}"
        start = date(2023, 1, 1) + timedelta(days=int(rng.integers(0, 30)))
        d = start
        while d <= AS_OF:
            purchases.append({"customer_id": cid, "order_date": d, "amount": 40.0, "order_id": f"{cid}-{d}"})
            d += timedelta(days=int(rng.integers(20, 40)))
        mentions.append(post(cid, 400, followers=int(rng.integers(0, 1000))))
        if c < 60:
            for k in range(effect_orders):
                dd = t + timedelta(days=5 + 20 * k)
                purchases.append({"customer_id": cid, "order_date": dd, "amount": 40.0, "order_id": f"{cid}-x{k}"})
    return purchases, mentions, [f"c{c:03d}" for c in range(60)], t


@pytest.mark.parametrize("planted", [0, 2])
def test_matched_effect_recovers_planted_orders(db, planted):
    purchases, mentions, rewarded, t = _programme_data(planted)
    with store.connect(db) as con:
        load(con, "purchases", purchases)
        load(con, "mentions", mentions)
        load(con, "rewards", [{"customer_id": c, "reward_date": t, "reward_type": "voucher"} for c in rewarded])
        eff = programme.programme_effect(con, viewer=Viewer("marketing"), as_of=AS_OF, n_boot=500)
        with pytest.raises(AccessDenied):
            programme.programme_effect(con, viewer=Viewer("manager", ("U1",)))
        again = programme.programme_effect(con, viewer=Viewer("leader"), as_of=AS_OF, n_boot=500)
    m = eff.matched
    assert m.n_treated + m.n_unmatched == 60 and m.n_treated >= 30
    assert m.orders.ci_low <= planted <= m.orders.ci_high
    assert abs(m.orders.estimate - planted) < 0.6
    assert m.spend.estimate == pytest.approx(40.0 * m.orders.estimate)
    assert [b.covariate for b in m.balance] == list(programme.COVARIATES)
    assert all(abs(b.smd_after) <= abs(b.smd_before) + 0.1 for b in m.balance)
    assert m.pretrend is not None and m.status == "done"
    assert again.as_json() == eff.as_json()  # seeded
    doc = eff.as_json()
    assert list(doc) == ["designs"] and set(doc["designs"][0]) == JSON_KEYS


def test_effect_without_rewards(db):
    with store.connect(db) as con:
        load(con, "purchases", [{"customer_id": "A", "order_date": AS_OF, "amount": 5.0, "order_id": "1"}])
        eff = programme.programme_effect(con, viewer=Viewer("admin"), as_of=AS_OF)
        empty = programme.programme_effect(con, viewer=Viewer("admin"), as_of=None)
    assert eff.matched.n_treated == 0 and eff.matched.orders.estimate is None
    assert eff.matched.warnings == ("no rewards recorded yet",)
    assert empty.matched.status == "done"


def _listable(con, n=40):
    """n customers who pass the gates, consented."""
    rows, ments, custs = [], [], []
    for i in range(n):
        cid = f"L{i:02d}"
        for k in range(3 + i % 4):
            rows.append(
                {
                    "customer_id": cid,
                    "order_date": AS_OF - timedelta(days=5 + 60 * k),
                    "amount": 30.0 + i,
                    "order_id": f"{cid}-{k}",
                }
            )
        ments.append(post(cid, 20))
        custs.append(
            {
                "customer_id": cid,
                "name": f"N{i}",
                "email": f"{cid}@x.org",
                "handle": f"@{cid}",
                "marketing_consent": True,
            }
        )
    load(con, "purchases", rows)
    load(con, "mentions", ments)
    load(con, "customers", custs)


def _run(capsys, *argv, db):
    """The command line in this process (one subprocess run below proves the real entry point)."""
    capsys.readouterr()
    code = main([*argv, "--db", str(db)])
    out = capsys.readouterr()
    return code, out.out, out.err


def _csv(path):
    return list(csv.reader(io.StringIO(path.read_bytes().decode("utf-8-sig"))))


def test_cli_holdout_export_records_arms_and_later_exports_leave_them_out(db, cli, capsys, tmp_path):
    with store.connect(db) as con:
        _listable(con)
    out = tmp_path / "list.csv"
    code, stdout, err = _run(
        capsys,
        "advocates",
        "--as-of",
        str(AS_OF),
        "--top",
        "0",
        "--out",
        str(out),
        "--holdout",
        "25",
        "--seed",
        "9",
        db=db,
    )
    assert code == 0, err
    assert "10 held out at random (seed 9)" in stdout
    rows = _csv(out)
    assert rows[0][:7] == ["customer_id", "name", "email", "handle", "tier", "score", "reasons"]
    with store.connect(db) as con:
        arms = programme.holdout_lists(con)
        audit = con.execute("SELECT export_id, rows, filter FROM export_audit").fetchall()
    held = set(arms.loc[arms["arm"] == "holdout", "customer_id"])
    listed = {r[0] for r in rows[1:]}
    assert len(held) == 10 and not held & listed
    assert listed == set(arms.loc[arms["arm"] == "reward", "customer_id"])
    assert set(arms["seed"]) == {9} and set(arms["pct"]) == {25.0} and set(arms["list_date"].dt.date) == {AS_OF}
    assert audit[0][1] == 30 and "hold-out 25% (seed 9)" in audit[0][2]
    assert programme.draw_holdout(listed | held, 25, 9)[1] == sorted(held)  # the stored seed redraws it

    # the next export, without a hold-out, leaves the held-out customers out too (90 days)
    out2 = tmp_path / "again.csv"
    assert (
        _run(capsys, "advocates", "--as-of", str(AS_OF + timedelta(days=30)), "--top", "0", "--out", str(out2), db=db)[
            0
        ]
        == 0
    )
    assert not {r[0] for r in _csv(out2)[1:]} & held
    out3 = tmp_path / "later.csv"
    assert (
        _run(capsys, "advocates", "--as-of", str(AS_OF + timedelta(days=90)), "--top", "0", "--out", str(out3), db=db)[
            0
        ]
        == 0
    )
    assert held <= {r[0] for r in _csv(out3)[1:]}

    # the effect command: the hold-out first, in progress until its 90 days have passed
    code, stdout, err = _run(capsys, "effect", "--as-of", str(AS_OF + timedelta(days=30)), "--json", db=db)
    assert code == 0, err
    doc = json.loads(stdout)
    assert [d["design"] for d in doc["designs"]] == ["holdout", "matched"]
    h = doc["designs"][0]
    assert set(h) == JSON_KEYS and h["status"] == "in progress" and h["export_id"] == audit[0][0]
    assert (h["n_treated"], h["n_control"], h["pretrend"]) == (30, 10, None) and h["orders"]["estimate"] is None
    h = json.loads(_run(capsys, "effect", "--as-of", str(AS_OF + timedelta(days=90)), "--json", db=db)[1])["designs"][0]
    assert h["status"] == "done" and h["orders"]["ci_low"] is not None
    r = cli("effect", db=db)
    assert r.returncode == 0 and "hold-out (randomised)" in r.stdout


@pytest.mark.parametrize(
    "args, message",
    [
        (["--holdout", "10"], "--holdout needs --out"),
        (["--out", "x.csv", "--holdout", "60"], "0 to 50"),
        (["--out", "x.csv", "--seed", "3"], "--seed only goes with --holdout"),
    ],
)
def test_cli_holdout_refusals_exit_2(db, capsys, tmp_path, args, message):
    with store.connect(db) as con:
        _listable(con, 5)
    args = [str(tmp_path / a) if a == "x.csv" else a for a in args]
    code, _, err = _run(capsys, "advocates", *args, db=db)
    assert code == 2 and message in err
    assert not (tmp_path / "x.csv").exists()
    with store.connect(db) as con:
        assert con.execute("SELECT count(*) FROM export_audit").fetchall()[0][0] == 0


def test_holdout_and_audit_are_one_transaction(db, monkeypatch):
    with store.connect(db) as con:
        _listable(con, 20)
        res = advocates.score(con, viewer=Viewer("marketing"), as_of=AS_OF)
        res = dataclasses.replace(res, customers=advocates.to_reward(res))

        def boom(*a, **k):
            raise RuntimeError("disk full")

        monkeypatch.setattr(store, "record_holdout", boom)
        with pytest.raises(RuntimeError):
            export.export_bytes(con, viewer=Viewer("marketing"), result=res, fmt="csv", holdout_pct=10, seed=1)
        assert con.execute("SELECT count(*) FROM export_audit").fetchall()[0][0] == 0
        assert con.execute("SELECT count(*) FROM holdouts").fetchall()[0][0] == 0
        monkeypatch.undo()
        with pytest.raises(AccessDenied):
            export.export_bytes(con, viewer=Viewer("leader"), result=res, fmt="csv", holdout_pct=10, seed=1)
        data, info = export.export_bytes(
            con, viewer=Viewer("marketing"), result=res, fmt="xlsx", holdout_pct=10, seed=1
        )
        assert info.held_out == 2 and info.rows == 18 and info.seed == 1
        assert con.execute("SELECT count(*) FROM holdouts").fetchall()[0][0] == 20


# ---------------------------------------------------------------- simulations (fixed seeds)

FAST_SEEDS = range(8)


def test_targeted_rewards_fast_tier():
    """8 seeds of the 100 in docs/simulations-programme.md: null held or warned, planted +1 held,
    hold-out intervals hold 0 and +1."""
    r = sim.rates(FAST_SEEDS, n_boot=500)
    assert r["null_ok"] >= 7 and r["planted_held"] >= 6
    assert r["holdout_null_held"] >= 7 and r["holdout_planted_held"] >= 7
    assert sim.matched_run_raw(0) < -1  # the naive comparison shows the regression to the mean


@pytest.mark.slow
def test_targeted_rewards_100_seeds():
    r = sim.rates(range(100), n_boot=1000)
    assert r["null_ok"] >= 85, r
    assert r["planted_held"] >= 80, r
    assert r["holdout_null_held"] >= 90 and r["holdout_planted_held"] >= 90, r
