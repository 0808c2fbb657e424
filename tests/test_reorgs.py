"""Re-organisations (DESIGN.md, "Erasure, retention and re-organisations"): renames and merges map
the old units' history onto the successor for every view and the linkage panel; each original
(unit, period) group is suppressed before mapping; splits keep the old history; cycles and a unit
merged into itself are refused by row; loading is an undoable batch; units show former names."""

from __future__ import annotations

import pandas as pd
import pytest
from engine_fixtures import assert_same
from linkage_data import load_engagement, load_feedback, survey

from cxstats import ADMIN, CxStatsError, governance, ingest, linkage, metrics, quality, store


def _reorgs(db, rows, name="reorgs.csv"):
    frame = pd.DataFrame(rows, columns=["from_unit", "to_unit", "effective_date"])
    return ingest.import_file(db, "reorgs", frame.to_csv(index=False).encode(), file_name=name, viewer=ADMIN)


def _load(db, sv, relabel=None):
    e, f = sv.engagement.copy(), sv.feedback.copy()
    for a, b in (relabel or {}).items():
        e.loc[e["unit_id"] == a, "unit_id"] = b
        f.loc[f["unit_id"] == a, "unit_id"] = b
    with store.connect(db) as con:
        load_engagement(con, e, sv.items)
        load_feedback(con, f)


def test_reorgs_file_gives_the_linkage_of_data_relabelled_by_hand(tmp_path):
    sv = survey(5, n_units=10, n_periods=4, resp_per_group=7)
    merge = {"U000": "U001", "U002": "U003", "U004": "U005"}  # two merges into one successor each... and a rename
    hand, loaded = tmp_path / "hand.duckdb", tmp_path / "reorg.duckdb"
    _load(hand, sv, relabel=merge)
    _load(loaded, sv)
    res = _reorgs(loaded, [(a, b, "2024-07-01") for a, b in merge.items()])
    assert res.rows_loaded == 3
    with store.connect(hand) as a, store.connect(loaded) as b:
        ja, jb = linkage.analyse(a, viewer=ADMIN).as_json(), linkage.analyse(b, viewer=ADMIN).as_json()
        assert_same(ja, jb)
        assert {u["unit_id"] for u in jb["units"]} == {f"U{u:03d}" for u in (1, 3, 5, 6, 7, 8, 9)}
        ga = metrics.unit_period_engagement(a, viewer=ADMIN).groups.drop(columns=["incomplete"])
        gb = metrics.unit_period_engagement(b, viewer=ADMIN).groups.drop(columns=["incomplete"])
        pd.testing.assert_frame_equal(ga, gb)
        pd.testing.assert_frame_equal(
            metrics.cx_by_unit_period(a, viewer=ADMIN), metrics.cx_by_unit_period(b, viewer=ADMIN)
        )
        # the filter lists the successor with its former names, not the old unit
        units = {u.unit_id: u for u in quality.filter_options(b, viewer=ADMIN).units}
        assert "U000" not in units and units["U001"].former == ("U000",)
        assert "formerly U000" in units["U001"].label
        # undo brings the old units back
        governance.undo_batch(b, res.batch_id, viewer=ADMIN)
        assert "U000" in set(metrics.unit_period_engagement(b, viewer=ADMIN).groups["unit_id"])
        assert store.unit_mapping(b) == {}


def test_a_suppressed_predecessor_never_joins_the_successor(tmp_path):
    db = tmp_path / "s.duckdb"
    sv = survey(2, n_units=2, n_periods=1, resp_per_group=6)
    e = sv.engagement
    small = e[e["unit_id"] == "U000"].head(3)  # 3 respondents: suppressed on their own
    e = pd.concat([small, e[e["unit_id"] == "U001"]])
    with store.connect(db) as con:
        load_engagement(con, e, sv.items)
        before = metrics.unit_period_engagement(con, viewer=ADMIN).groups.set_index("unit_id")
    _reorgs(db, [("U000", "U001", "2024-01-01")])
    with store.connect(db) as con:
        g = metrics.unit_period_engagement(con, viewer=ADMIN)
        after = g.groups.set_index("unit_id")
        assert list(after.index) == ["U001"]
        assert after.loc["U001", "respondents"] == 6
        assert after.loc["U001", "index"] == pytest.approx(before.loc["U001", "index"])
        assert after.loc["U001", "enps_n"] == before.loc["U001", "enps_n"]
        assert g.suppressed_groups == 1  # U000's group, counted, never merged


def test_split_keeps_the_old_history_and_chains_follow(tmp_path):
    db = tmp_path / "c.duckdb"
    sv = survey(3, n_units=4, n_periods=2, resp_per_group=6)
    _load(db, sv)
    _reorgs(
        db,
        [
            ("U000", "U010", "2024-07-01"),
            ("U000", "U011", "2024-07-01"),  # split
            ("U001", "U002", "2024-07-01"),
        ],
    )
    _reorgs(db, [("U002", "U003", "2025-01-01")], name="later.csv")  # U001 -> U002 -> U003
    with store.connect(db) as con:
        assert store.unit_mapping(con) == {"U001": "U003", "U002": "U003"}
        units = set(metrics.unit_period_engagement(con, viewer=ADMIN).groups["unit_id"])
        assert units == {"U000", "U003"}
        hist = governance.unit_histories(con)
        assert hist["U003"].former == ("U001", "U002") and hist["U000"].split_into == ("U010", "U011")


def test_cycles_and_self_merges_are_refused_by_row(tmp_path):
    db = tmp_path / "x.duckdb"
    _load(db, survey(1, n_units=3, n_periods=1, resp_per_group=5))
    _reorgs(db, [("U000", "U001", "2024-01-01")])
    with pytest.raises(CxStatsError) as err:
        _reorgs(db, [("U002", "U002", "2024-02-01"), ("U001", "U000", "2024-02-01")], name="bad.csv")
    text = "\n".join(err.value.problems)
    assert "row 2" in text and "merged into itself" in text
    assert "row 3" in text and "cycle" in text
    with store.connect(db) as con:
        assert con.execute("SELECT count(*) FROM reorgs").fetchall()[0][0] == 1


def test_erasure_under_a_merge_suppresses_the_successor_and_the_original_group(tmp_path):
    """U000 (7) merged into U001 (6) shows 13; erasing one of U000's respondents moves the merged group
    and U000's own group by 1, so both stay suppressed, also after the merge is undone (else U000's 7
    before against 6 after, or 13 against 12, would reveal the erased person's answers)."""
    db = tmp_path / "u.duckdb"
    sv = survey(4, n_units=2, n_periods=1, resp_per_group=7)
    e = sv.engagement.copy()
    e = pd.concat([e[e["unit_id"] == "U000"], e[e["unit_id"] == "U001"].head(6)]).reset_index(drop=True)
    e["respondent_id"] = [f"RX{i:03d}" for i in range(len(e))]
    with store.connect(db) as con:
        load_engagement(con, e, sv.items)
    res = _reorgs(db, [("U000", "U001", "2024-01-01")])
    with store.connect(db) as con:
        assert list(metrics.unit_period_engagement(con, viewer=ADMIN).groups["respondents"]) == [13]
    out = governance.forget(db, "respondent", ["RX000"], viewer=ADMIN)
    assert out.suppressed_groups == 2
    with store.connect(db) as con:
        assert sorted(r[0] for r in con.execute("SELECT unit_id FROM suppressed_groups").fetchall()) == ["U000", "U001"]
        assert metrics.unit_period_engagement(con, viewer=ADMIN).groups.empty
        governance.undo_batch(con, res.batch_id, viewer=ADMIN)
        g = metrics.unit_period_engagement(con, viewer=ADMIN)
        assert g.groups.empty and g.suppressed_groups == 2
