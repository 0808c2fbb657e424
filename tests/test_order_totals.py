"""order_totals: kept in step with purchases by every load and undo, and never trusted when stale.

Each case loads random purchase batches (orders spread over batches and dates, lines without an
order_id, returns) through store.load_batch, undoes some, and checks after every step that
(a) the incrementally kept tables (order_totals, and day_totals: per customer and order day) equal
a rebuild from the lines, and (b) advocate scores and the value model's summary read through them
equal those computed from the lines alone, for several as_of dates (some of which cut orders whose
lines straddle them).
"""

from __future__ import annotations

import uuid
from datetime import date, timedelta

import numpy as np
import pandas as pd
import pytest

from cxstats import ADMIN, advocates, store

START = date(2024, 1, 1)


def _batch(rng: np.random.Generator, n: int, order_pool: int) -> pd.DataFrame:
    cust = rng.integers(0, 12, n)
    order = rng.integers(0, order_pool, n)
    df = pd.DataFrame(
        {
            # an order_id belongs to one customer (as ingest enforces within a file); across batches it
            # may come back on another date, e.g. a later return
            "customer_id": [f"C{c}" for c in cust],
            "order_id": [None if rng.random() < 0.15 else f"O{c}-{o}" for c, o in zip(cust, order)],
            "order_date": [START + timedelta(days=int(d)) for d in rng.integers(0, 60, n)],
            "amount": np.round(rng.choice([-1, 1, 1, 1], n) * rng.integers(1, 5000, n) / 100, 2),
        }
    )
    df.insert(0, "row_no", range(2, 2 + n))
    df["line_no"] = 1
    return df


def _load(con, df: pd.DataFrame) -> int:
    return store.load_batch(
        con, "purchases", {"purchases": df}, file_name="p.csv", sha256=uuid.uuid4().hex, rows=len(df)
    )


def _totals(con) -> list[tuple]:
    return con.execute("SELECT * FROM order_totals ORDER BY ALL").fetchall()


def _days(con) -> list[tuple]:
    return con.execute("SELECT * FROM day_totals ORDER BY ALL").fetchall()


def _summaries_both_ways(con, as_of: date) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The value model's per-customer summary through day_totals and from the lines alone."""
    from cxstats import ADMIN, value

    cutoff = as_of - timedelta(days=14)
    via_days = value.summary(con, as_of, viewer=ADMIN, cutoff=cutoff, days_sql=advocates._days_sql)
    from_lines = value.summary(
        con, as_of, viewer=ADMIN, cutoff=cutoff, orders_sql=lambda c, a: advocates._ORDERS_FROM_LINES
    )
    return (x.sort_values("customer_id").reset_index(drop=True) for x in (via_days, from_lines))


def _scores_both_ways(con, as_of: date) -> tuple[pd.DataFrame, pd.DataFrame]:
    w = advocates.check_weights(None)
    via_totals, *_ = advocates._compute(con, as_of, w, 90, cutoff=as_of - timedelta(days=14))
    fresh = con.execute("SELECT value FROM meta WHERE key = 'order_totals_source'").fetchall()[0][0]
    con.execute("UPDATE meta SET value = 'stale' WHERE key IN ('order_totals_source', 'day_totals_source')")
    try:
        from_lines, *_ = advocates._compute(con, as_of, w, 90, cutoff=as_of - timedelta(days=14))
    finally:
        con.execute("UPDATE meta SET value = ? WHERE key IN ('order_totals_source', 'day_totals_source')", [fresh])
    return via_totals, from_lines


def _rows_both_ways(con, as_of: date) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The engine's per-customer rows through store.day_totals (when usable) and from the lines."""
    from cxstats import ADMIN
    from cxstats import customer_aggregates as ca

    cutoff = as_of - timedelta(days=14)
    with ca.engine_tables(con, viewer=ADMIN) as t:
        via = t.execute(ca.customer_orders(ca.engine_order_days(t, as_of), as_of, cutoff)).to_pandas()
        lines = t.execute(
            ca.customer_orders(ca.order_days(ca.orders(t.table("purchases"), as_of)), as_of, cutoff)
        ).to_pandas()
    return (x.sort_values("customer_id").reset_index(drop=True) for x in (via, lines))


def _same(a: pd.DataFrame, b: pd.DataFrame) -> None:
    assert len(a) == len(b)
    if not len(a):  # no counted order up to as_of
        return
    cols = [
        "customer_id",
        "orders",
        "spend",
        "first_order",
        "last_order",
        "gross",
        "returned",
        "score",
        "passes",
        "R",
        "F",
        "M",
        "days",
        "repeat_net",
        "cal_days",
        "cal_last",
        "actual",
    ]
    a, b = (x.sort_values("customer_id")[cols].reset_index(drop=True) for x in (a, b))
    pd.testing.assert_frame_equal(a, b)


@pytest.mark.parametrize("seed", range(6))
def test_kept_table_equals_rebuild_and_scores_match_lines(tmp_path, seed):
    rng = np.random.default_rng(seed)
    with store.connect(tmp_path / "t.duckdb") as con:
        loaded = []
        for step in range(5):
            if loaded and rng.random() < 0.35:
                store.undo(con, loaded.pop(int(rng.integers(0, len(loaded)))), viewer=ADMIN)
            else:
                loaded.append(_load(con, _batch(rng, int(rng.integers(5, 60)), order_pool=8)))
            assert store.order_totals_fresh(con), f"step {step}"
            assert store.derived_fresh(con) == (True, True), f"step {step}"
            kept, kept_days = _totals(con), _days(con)
            con.execute("BEGIN TRANSACTION")
            store.sync_order_totals(con)
            rebuilt, rebuilt_days = _totals(con), _days(con)
            con.execute("ROLLBACK")
            assert kept == rebuilt, f"step {step}"
            assert kept_days == rebuilt_days, f"step {step}"
            for as_of in (START + timedelta(days=20), START + timedelta(days=45), START + timedelta(days=90)):
                pd.testing.assert_frame_equal(*_rows_both_ways(con, as_of))
                pd.testing.assert_frame_equal(*_summaries_both_ways(con, as_of))
            # the whole scoring both ways once per step (as_of cuts some orders' lines)
            _same(*_scores_both_ways(con, START + timedelta(days=45)))


def test_straddling_order_counts_only_lines_up_to_as_of(tmp_path):
    base = {"line_no": 1}
    with store.connect(tmp_path / "t.duckdb") as con:
        _load(
            con,
            pd.DataFrame(
                [
                    {
                        "row_no": 2,
                        "customer_id": "A",
                        "order_id": "X",
                        "order_date": date(2024, 1, 10),
                        "amount": 30.0,
                        **base,
                    }
                ]
            ),
        )
        # the same order later loses more than it cost: from Feb 1 it no longer counts
        _load(
            con,
            pd.DataFrame(
                [
                    {
                        "row_no": 2,
                        "customer_id": "A",
                        "order_id": "X",
                        "order_date": date(2024, 2, 1),
                        "amount": -40.0,
                        **base,
                    }
                ]
            ),
        )
        _load(
            con,
            pd.DataFrame(
                [
                    {
                        "row_no": 2,
                        "customer_id": "A",
                        "order_id": "Y",
                        "order_date": date(2024, 1, 5),
                        "amount": 10.0,
                        **base,
                    }
                ]
            ),
        )
        assert store.order_totals_fresh(con)
        w = advocates.check_weights(None)
        jan, *_ = advocates._compute(con, date(2024, 1, 20), w, 90)
        feb, *_ = advocates._compute(con, date(2024, 2, 20), w, 90)
        assert (jan.loc[0, "orders"], jan.loc[0, "spend"]) == (2, 40.0)
        assert (feb.loc[0, "orders"], feb.loc[0, "spend"]) == (1, 0.0)


def test_rows_written_around_load_batch_make_the_table_stale(tmp_path):
    with store.connect(tmp_path / "t.duckdb") as con:
        _load(con, _batch(np.random.default_rng(1), 30, order_pool=5))
        assert store.order_totals_fresh(con)
        con.execute(
            "INSERT INTO purchases (batch_id, row_no, line_no, customer_id, order_date, amount, order_id) "
            "VALUES (99, 2, 1, 'C1', DATE '2024-01-03', 999.00, 'hand')"
        )
        assert not store.order_totals_fresh(con)
        assert store.derived_fresh(con) == (False, False)
        # scoring still sees the hand-written row (read from the lines)
        df, *_ = advocates._compute(con, date(2024, 3, 31), advocates.check_weights(None), 90)
        assert df.loc[df["customer_id"] == "C1", "spend"].iloc[0] == pytest.approx(
            con.execute("SELECT sum(amount) FROM purchases WHERE customer_id = 'C1'").fetchall()[0][0]
        )
        # the next load rebuilds the table in full
        _load(con, _batch(np.random.default_rng(2), 10, order_pool=5))
        assert store.order_totals_fresh(con)


def test_database_from_before_order_totals_is_migrated(tmp_path):
    db = tmp_path / "old.duckdb"
    with store.connect(db) as con:
        _load(con, _batch(np.random.default_rng(3), 40, order_pool=6))
        expected = _totals(con)
        # make it look like schema 1: no order_totals table, no source fingerprint
        expected_days = _days(con)
        con.execute("DROP TABLE order_totals")
        con.execute("DROP TABLE day_totals")
        con.execute("DELETE FROM meta WHERE key IN ('order_totals_source', 'day_totals_source')")
        con.execute("UPDATE meta SET value = '1' WHERE key = 'schema_version'")
    with store.connect(db) as con:
        assert store.derived_fresh(con) == (True, True)
        assert _totals(con) == expected
        assert _days(con) == expected_days and expected_days
