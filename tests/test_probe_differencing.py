"""Issue 18, items 4 and 5: oracles and differencing an outside probe found in survey uploads.

- 4: a manager's engagement preview said "1 rows already stored (will be skipped)" or "1 problem
  found", which told him a suppressed group's answers. Survey files are now loaded by admins only;
- 5a: a manager padded a 4-person group with one invented respondent and read the real four;
- 5b: a leader compared a kept group before and after a 1-row batch;
- 5c: a suppressed item cell's single answer was solved from the group's engagement index (and the
  complete respondents' answers entered Cronbach's alpha);
- batch row counts shown to a leader counted suppressed respondents.

Each case is the probe's own example, checked against a plain-Python reference where a figure is
asked for. tests/test_privacy_properties.py states the same rules as hypothesis properties.
"""

from __future__ import annotations

import pytest

from cxstats import ADMIN, AccessDenied, CxStatsError, Viewer, ingest, metrics, quality, store

pytest_plugins = ["app_fixtures"]
from app_fixtures import switch  # noqa: E402

MANAGER = Viewer("manager", ("S001", "S002"), "Mia")
LEADER = Viewer("leader", (), "Lee")
HEADER = "Unit,Survey date,Respondent,eNPS,q1,q2,q3\n"


def survey(rows: list[tuple], start: int = 1) -> bytes:
    """rows: (unit, date, enps, q1, q2, q3); None is a blank answer."""
    lines = [HEADER.strip()]
    for i, (u, d, e, *qs) in enumerate(rows, start=start):
        lines.append(
            ",".join([u, d, f"R{i:04d}", "" if e is None else str(e)] + ["" if q is None else str(q) for q in qs])
        )
    return ("\n".join(lines) + "\n").encode()


@pytest.fixture
def base(db):
    """S001 2024-Q1: 4 respondents (suppressed); S002 2024-Q1: 6 (kept)."""
    ingest.import_file(db, "units", b"unit_id\nS001\nS002\nS003\n", file_name="units.csv", viewer=ADMIN)
    rows = [("S001", "2024-02-01", 3, 2, 1, 2)] * 4 + [("S002", "2024-02-01", 9, 4, 5, 4)] * 6
    ingest.import_file(db, "engagement", survey(rows), file_name="wave1.csv", scale=5, viewer=ADMIN)
    return db


def fingerprint(db):
    with store.connect(db) as con:
        return store.table_fingerprint(con)


# ---------------------------------------------------------------- 4: survey files are for admins


@pytest.mark.parametrize("call", ["preview", "import"])
def test_a_manager_cannot_preview_or_load_a_survey_file(base, call):
    before = fingerprint(base)
    stored_again = survey([("S001", "2024-02-01", 3, 2, 1, 2)])  # R0001 as stored: the probe's oracle
    with pytest.raises(AccessDenied) as err:
        if call == "preview":
            ingest.preview(stored_again, "probe.csv", "engagement", db=base, viewer=MANAGER, scale=5)
        else:
            ingest.import_file(base, "engagement", stored_again, file_name="probe.csv", viewer=MANAGER, scale=5)
    assert "already stored" not in str(err.value) and "problem" not in str(err.value)
    assert fingerprint(base) == before


def test_the_managers_upload_page_offers_no_survey_files(make_app, demo_db):
    at = switch(make_app(demo_db, "manager"), "pages/upload.py")
    options = [o.split(":")[0] for o in at.selectbox(key="cx_upload_kind").options]
    assert "engagement" not in options and "feedback" in options


# ---------------------------------------------------------------- 5a: padding a small group


def test_padding_a_suppressed_group_is_refused_to_a_manager(base):
    before = fingerprint(base)
    pad = survey([("S001", "2024-03-01", 10, 5, 5, 5)], start=900)  # one invented respondent: 4 -> 5
    with pytest.raises(AccessDenied):
        ingest.import_file(base, "engagement", pad, file_name="pad.csv", viewer=MANAGER, scale=5)
    assert fingerprint(base) == before
    with store.connect(base) as con:
        shown = metrics.unit_period_engagement(con, viewer=MANAGER).groups
    assert "S001" not in set(shown["unit_id"])


# ---------------------------------------------------------------- 5b: a small batch into a kept group


@pytest.mark.parametrize("added", [1, 2, 4])
def test_a_batch_changing_a_kept_group_by_fewer_than_min_group_is_refused(base, added):
    before = fingerprint(base)
    rows = [("S002", "2024-03-10", 0, 1, 1, 1)] * added
    data = survey(rows, start=500)
    pv = ingest.preview(data, "late.csv", "engagement", db=base, scale=5, viewer=ADMIN)
    assert not pv.ok and any("S002, 2024-Q1" in str(p) and "at least 5" in str(p) for p in pv.problems), pv.problems
    with pytest.raises(CxStatsError, match="A reported group may only change by at least 5"):
        ingest.import_file(base, "engagement", data, file_name="late.csv", scale=5, viewer=ADMIN)
    assert fingerprint(base) == before


def test_a_batch_of_min_group_or_more_into_a_kept_group_loads(base):
    rows = [("S002", "2024-03-10", 0, 1, 1, 1)] * 5
    res = ingest.import_file(base, "engagement", survey(rows, start=500), file_name="late.csv", scale=5, viewer=ADMIN)
    assert res.rows_loaded == 5


def test_new_groups_and_suppressed_groups_may_grow_by_any_number(base):
    # a new group (S003) and the suppressed S001 (4 -> 5, loaded by an admin) are not reported groups
    rows = [("S003", "2024-02-02", 5, 3, 3, 3)] * 2 + [("S001", "2024-02-03", 5, 3, 3, 3)]
    assert (
        ingest.import_file(
            base, "engagement", survey(rows, start=700), file_name="x.csv", scale=5, viewer=ADMIN
        ).rows_loaded
        == 3
    )


def test_an_earlier_wave_date_moving_respondents_counts_as_a_change(db):
    ingest.import_file(db, "units", b"unit_id\nS002\n", file_name="units.csv", viewer=ADMIN)
    head = "Unit,Survey date,Respondent,Wave,q1,q2\n"
    first = head + "".join(f"S002,2024-04-0{i % 9 + 1},R{i},W2,4,4\n" for i in range(6))
    ingest.import_file(db, "engagement", first.encode(), file_name="w2.csv", scale=5, viewer=ADMIN)
    # one late row of wave W2 dated in Q1: the whole wave (6 kept respondents) would move to Q1
    late = head + "S002,2024-03-30,R99,W2,1,1\n"
    with pytest.raises(CxStatsError, match="move 6 of them"):
        ingest.import_file(db, "engagement", late.encode(), file_name="late.csv", scale=5, viewer=ADMIN)


# ---------------------------------------------------------------- 5c: a suppressed item cell


def _hidden_cell_db(db, hidden: int):
    """S002 2024-Q1 (kept, 6 respondents) answers q1 = q2 = 4, and only R0001 answers q3 (``hidden``):
    the q3 cell has 1 answer (< min_group 5) and is suppressed. S003 is kept with every item answered,
    so that alpha has complete respondents; its q3 is answered by 2 only (suppressed too)."""
    ingest.import_file(db, "units", b"unit_id\nS002\nS003\n", file_name="units.csv", viewer=ADMIN)
    rows = [("S002", "2024-02-01", 8, 4, 4, hidden)] + [("S002", "2024-02-01", 8, 4, 4, None)] * 5
    rows += [("S003", "2024-02-01", 7, q, q % 5 + 1, None) for q in (1, 2, 3, 4, 5)]
    rows += [("S003", "2024-02-01", 7, 5, 3, q3) for q3 in (hidden, 6 - hidden)]
    ingest.import_file(db, "engagement", survey(rows), file_name="wave1.csv", scale=5, viewer=ADMIN)
    return db


def _seen_by_leader(db) -> dict:
    with store.connect(db) as con:
        g = metrics.unit_period_engagement(con, viewer=LEADER).groups
        cells = metrics.item_scores(con, viewer=LEADER)
        summ = metrics.engagement_summary(con, viewer=LEADER)
    return {
        "groups": g.drop(columns=["period_start"]).to_dict("records"),
        "cells": cells.cells.drop(columns=["period_start"]).to_dict("records"),
        "suppressed": (cells.suppressed_cells, sorted(map(tuple, cells.suppressed.values.tolist()))),
        "summary": (summ.index, summ.respondents, summ.alpha, summ.excluded_respondents),
    }


@pytest.mark.parametrize("hidden", [1, 5])
def test_a_suppressed_item_cells_answer_cannot_be_solved_from_the_group_index(tmp_path, hidden):
    """The probe's solve: q1 and q2 of S002 are shown as mean 4.0 with variance 0 over 6 answers, so
    every respondent answered 4 and 4; if the index counted q3, the one q3 answer would be
    x = 3 * (1 + 4 * (6 * index - 5 * 75) / 100) - 8. With the cell left out, every score is 75."""
    db = _hidden_cell_db(tmp_path / "a.duckdb", hidden)
    seen = _seen_by_leader(db)
    s002 = next(r for r in seen["groups"] if r["unit_id"] == "S002")
    shown = {(c["unit_id"], c["item"]): c for c in seen["cells"]}
    assert ("S002", "q3") not in shown and ("S003", "q3") not in shown
    assert shown[("S002", "q1")]["mean_score"] == 4 and shown[("S002", "q1")]["var_score"] == 0
    assert s002["respondents"] == 6
    assert s002["index"] == pytest.approx(75.0)  # plain reference: 100 * (4 - 1) / 4 for all six
    solved = 3 * (1 + 4 * (6 * s002["index"] - 5 * 75) / 100) - 8
    assert solved == pytest.approx(4.0)  # what anyone solves, whatever the hidden answer was
    # the whole leader's view is the same for another hidden answer (index, item cells, alpha)
    other = _seen_by_leader(_hidden_cell_db(tmp_path / "b.duckdb", 6 - hidden))
    assert other == seen


def test_suppressed_item_cells_leave_alpha(tmp_path):
    """Alpha over kept respondents with every index item in a shown cell: here only q1 and q2 are
    shown anywhere, so alpha is that of the two-item scale over all 13 respondents (checked against
    pingouin on the same answers)."""
    db = _hidden_cell_db(tmp_path / "a.duckdb", 1)
    with store.connect(db) as con:
        alpha = metrics.engagement_summary(con, viewer=LEADER).alpha
    import pandas as pd
    import pingouin

    q = pd.DataFrame({"q1": [4] * 6 + [1, 2, 3, 4, 5, 5, 5], "q2": [4] * 6 + [2, 3, 4, 5, 1, 3, 3]})
    assert alpha == pytest.approx(pingouin.cronbach_alpha(q)[0])


# ---------------------------------------------------------------- batch counts shown to non-admins


def test_batch_and_table_counts_leave_out_suppressed_respondents_for_a_leader(base):
    with store.connect(base) as con:
        admin = {b.kind: b.rows for b in quality.batches(con, viewer=ADMIN)}
        leader = {b.kind: b.rows for b in quality.batches(con, viewer=LEADER)}
        tables_admin = {q.table: q.rows for q in quality.data_quality(con, viewer=ADMIN)}
        tables_leader = {q.table: q.rows for q in quality.data_quality(con, viewer=LEADER)}
        with pytest.raises(AccessDenied):
            quality.batches(con, viewer=MANAGER)
    assert admin["engagement"] == 10 and tables_admin["engagement"] == 10  # the admin checks uploads
    assert leader["engagement"] == 6 and tables_leader["engagement"] == 6  # S001's 4 are not counted


def test_the_data_page_shows_a_leader_kept_counts(make_app, fresh_demo_db):
    with store.connect(fresh_demo_db) as con:
        listed = {b.batch_id: b for b in store.list_batches(con) if b.kind == "engagement"}
        kept = {b.batch_id: b.rows for b in quality.batches(con, viewer=LEADER) if b.kind == "engagement"}
    assert any(kept[i] < listed[i].rows for i in kept), "the demo has suppressed groups"
    at = switch(make_app(fresh_demo_db, "leader"), "pages/data.py")
    table = at.dataframe[0].value
    shown = dict(zip(table["batch"], table["rows"]))
    assert all(shown[i] == kept[i] for i in kept), (shown, kept)
