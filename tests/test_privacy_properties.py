"""The anonymity rule as properties (issue 7, point 1; DESIGN.md "Anonymity").

For random units, periods and group sizes (some below min_group), hypothesis builds two databases
through the real import path that differ only in the answers (items, eNPS, comments) of one
suppressed (unit, period) group, and checks that nothing a user can see differs: every metrics
function, linkage's ``as_json()`` and frames, focus areas, what changed, action plans' follow-up and
the across-units plan estimate, the Overview headline, the data-quality table, the
Plotly figures' data and the ``linkage --json`` command line output.

Differencing (issue 18, DESIGN.md "Differencing and oracles"): a manager can never pad a group
with invented respondents (survey files are for admins); a batch that would change a kept group by
1..min_group-1 respondents is refused and changes nothing; the answers in a suppressed item cell
(an item answered by fewer than min_group of a kept group) change nothing shown either, the group's
index and alpha included.

Complementary suppression: shown totals are recomputed here from the generated rows (an outside
reference: plain Python over kept groups only) so that no total contains a suppressed group, and a
total minus the shown groups leaves nothing. Comments appear only for groups of >= 10 respondents.

CXSTATS_FUZZ_EXAMPLES (default 8) sets the examples per property (a longer run: e.g. 200).
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import os
from dataclasses import dataclass
from datetime import date, datetime

import pandas as pd
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from cxstats import (
    ADMIN,
    AccessDenied,
    CxStatsError,
    Viewer,
    charts,
    focus,
    ingest,
    linkage,
    metrics,
    overview,
    quality,
    store,
)
from cxstats import __main__ as cxmain

EXAMPLES = max(2, int(os.environ.get("CXSTATS_FUZZ_EXAMPLES", "8")) // 2)
MIN_GROUP = 5  # the default setting
ITEMS = ("I feel valued", "My manager supports me", "I would recommend this team")
QUARTERS = [date(2024, 1, 15), date(2024, 4, 15), date(2024, 7, 15)]
# no shrinking: each example builds two databases; a failure prints its full example anyway
PROPERTY_SETTINGS = settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,
    phases=(Phase.explicit, Phase.generate),
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
)


@dataclass
class Survey:
    units: list[str]
    periods: list[date]
    sizes: dict[tuple[str, date], int]  # (unit, period) -> respondents
    answers: dict[tuple[str, date], list[tuple[tuple[int, ...], int | None, str]]]  # items, enps, comment
    feedback: list[tuple[str, date, int, int]]
    target: tuple[str, date]  # a suppressed group whose answers are varied


ANSWER = st.tuples(
    st.tuples(*[st.integers(1, 5)] * len(ITEMS)),
    st.one_of(st.none(), st.integers(0, 10)),
    st.sampled_from(["", "great team", "my manager shouts", "I am the only night-shift baker", "ok"]),
)


@st.composite
def surveys(draw) -> Survey:
    n_units = draw(st.integers(4, 6))
    units = [f"S{i:03d}" for i in range(1, n_units + 1)]
    periods = QUARTERS[: draw(st.integers(2, 3))]
    sizes = {}
    for u in units:
        for p in periods:
            sizes[(u, p)] = draw(st.sampled_from([0, 1, 2, 3, 4, 5, 6, 8, 10, 12]))
    small = [g for g, n in sizes.items() if 0 < n < MIN_GROUP]
    if not small:
        g = (units[0], periods[0])
        sizes[g] = draw(st.integers(1, MIN_GROUP - 1))
        small = [g]
    target = draw(st.sampled_from(small))
    answers = {g: draw(st.lists(ANSWER, min_size=n, max_size=n)) for g, n in sizes.items()}
    feedback = []
    for u in units:
        for p in periods:
            for _ in range(draw(st.integers(1, 4))):
                feedback.append((u, p, draw(st.integers(1, 5)), draw(st.integers(0, 10))))
    return Survey(units, periods, sizes, answers, feedback, target)


def _engagement_csv(s: Survey) -> bytes:
    lines = ["Unit,Survey date,Respondent,eNPS,Comment," + ",".join(ITEMS)]
    k = 0
    for (u, p), rows in sorted(s.answers.items()):
        for items, enps, comment in rows:
            k += 1
            lines.append(
                f"{u},{p.isoformat()},R{k:05d},{'' if enps is None else enps},{comment},"
                + ",".join("" if x is None else str(x) for x in items)
            )
    return ("\n".join(lines) + "\n").encode()


def _feedback_csv(s: Survey) -> bytes:
    lines = ["Store,Date,CSAT,NPS"] + [f"{u},{p.isoformat()},{c},{n}" for u, p, c, n in s.feedback]
    return ("\n".join(lines) + "\n").encode()


def build(tmp_path, name: str, s: Survey) -> str:
    db = tmp_path / f"{name}.duckdb"
    units = "unit_id,unit_name,region\n" + "".join(
        f"{u},Store {u},{'North' if i % 2 else 'South'}\n" for i, u in enumerate(s.units)
    )
    ingest.import_file(db, "units", units.encode(), file_name="units.csv", viewer=ADMIN)
    # the scale is stated, as the Upload preview asks: a guessed scale would depend on every answer
    ingest.import_file(db, "engagement", _engagement_csv(s), file_name="survey.csv", scale=5, viewer=ADMIN)
    ingest.import_file(db, "feedback", _feedback_csv(s), file_name="feedback.csv", viewer=ADMIN)
    with store.connect(db) as con:  # one action plan per unit, made between the first and the last period
        for u in s.units:
            focus.add_action(
                con, viewer=ADMIN, unit_id=u, item=ITEMS[0], title=f"plan for {u}", now=datetime(2024, 5, 20)
            )
    return str(db)


def _frame(df: pd.DataFrame) -> list:
    return json.loads(df.reset_index(drop=True).to_json(orient="records", date_format="iso", double_precision=10))


def _fig(fig) -> list:
    return json.loads(json.dumps(fig.to_plotly_json()["data"], default=str))


def _round(x):
    """Floats compared to 9 significant digits: summation order may differ, values may not."""
    if isinstance(x, float):
        return None if math.isnan(x) else float(f"{x:.9g}")
    if isinstance(x, dict):
        return {k: _round(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_round(v) for v in x]
    return x


def shown(db: str, viewer: Viewer = ADMIN) -> dict:
    """Everything a user can see about engagement, as plain data."""
    out = {}
    with store.connect(db) as con:
        g = metrics.unit_period_engagement(con, viewer=viewer)
        out["groups"] = (_frame(g.groups), g.suppressed_groups, g.excluded_respondents)
        cells = metrics.item_scores(con, viewer=viewer)
        out["cells"] = (_frame(cells.cells), cells.suppressed_cells)
        out["favourable"] = _frame(metrics.item_favourable(con, viewer=viewer))
        dist = metrics.item_distribution(con, viewer=viewer)
        out["distribution"] = _frame(dist)
        summ = metrics.engagement_summary(con, viewer=viewer)
        out["summary"] = (
            summ.index,
            summ.respondents,
            summ.groups,
            summ.suppressed_groups,
            summ.excluded_respondents,
            summ.enps,
            summ.enps_se,
            summ.alpha,
            _frame(summ.by_period),
        )
        out["comments"] = _frame(metrics.comments(con, viewer=viewer))
        out["suppressed_list"] = _frame(metrics.suppressed_group_list(con, viewer=viewer))
        h = overview.headline(con, viewer=viewer, today=date(2026, 1, 1))
        out["headline"] = (
            h.engagement_index,
            h.respondents,
            h.engagement_groups,
            h.suppressed_groups,
            h.csat_pct,
            h.nps,
            h.units,
            h.periods,
        )
        out["quality"] = [
            (q.table, q.rows, q.batches, str(q.first_date), str(q.last_date), q.units, q.missing)
            for q in quality.data_quality(con, viewer=viewer)
        ]
        res = {}
        for metric in ("csat_pct", "nps"):
            r = linkage.analyse(con, viewer=viewer, metric=metric)
            res[metric] = r
            out[f"linkage_{metric}"] = (r.as_json(), _frame(r.units), _frame(r.panel), r.summary_sentences())
        figs = [
            charts.engagement_heatmap(charts.pool_item_cells(cells.cells)),
            charts.engagement_trend(g.groups),
            charts.engagement_trend(g.groups, by_unit=True),
            charts.answer_distribution(dist),
            charts.linkage_scatter(res["csat_pct"].units),
            charts.lag_chart(res["csat_pct"].lags),
            charts.drivers_chart(res["csat_pct"].drivers),
            charts.quartile_chart(res["csat_pct"].quartiles),
        ]
        out["charts"] = [_fig(f) for f in figs]
        # focus areas of every shown group, what changed, plans' follow-up and the across-units estimate
        out["changes"] = focus.changes(con, viewer=viewer).as_json()
        # one set of drivers (as focus_areas asks them, as admin) and one company view for every group,
        # as focus.focus_counts passes them: the same figures as asking each group on its own
        drivers_of = (
            res["csat_pct"] if viewer.role == "admin" else linkage.analyse(con, viewer=ADMIN, metric="csat_pct")
        )
        drivers = {d.item: d for d in drivers_of.drivers}
        company = focus._company_view(con, g.min_group)
        out["focus"] = {
            f"{u} {p}": focus.focus_areas(con, u, viewer=viewer, period=p, drivers=drivers, company=company).as_json()
            for u, p in g.groups[["unit_id", "period"]].itertuples(index=False)
        }
        out["actions"] = focus.list_actions(con, viewer=viewer).as_json()
        if viewer.role != "manager":
            out["plan_effect"] = [e.__dict__ for e in focus.plan_effect(con, viewer=viewer)]
    return _round(out)


def cli_json(db: str) -> dict:
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        assert cxmain.main(["linkage", "--json", "--db", db]) == 0
    return _round(json.loads(buf.getvalue()))


def _vary(s: Survey, new_answers) -> Survey:
    answers = dict(s.answers)
    answers[s.target] = new_answers
    return Survey(s.units, s.periods, s.sizes, answers, s.feedback, s.target)


# ---------------------------------------------------------------- properties


@PROPERTY_SETTINGS
@given(data=st.data())
def test_suppressed_group_answers_change_nothing_shown(tmp_path_factory, data):
    s = data.draw(surveys())
    n = s.sizes[s.target]
    other = data.draw(st.lists(ANSWER, min_size=n, max_size=n).filter(lambda a: a != s.answers[s.target]))
    t = _vary(s, other)
    tmp = tmp_path_factory.mktemp("privacy")
    db_a, db_b = build(tmp, "a", s), build(tmp, "b", t)
    a, b = shown(db_a), shown(db_b)
    for key in a:
        assert a[key] == b[key], f"{key} changes when a suppressed group's answers change"
    assert cli_json(db_a) == cli_json(db_b)
    # a manager of the suppressed group's unit sees nothing of it either
    mgr = Viewer("manager", (s.target[0], s.units[-1]), "m")
    a, b = shown(db_a, mgr), shown(db_b, mgr)
    for key in a:
        assert a[key] == b[key], f"{key} (manager view) changes when a suppressed group's answers change"


def _reference(s: Survey, units=None) -> dict:
    """Kept-group figures computed here from the generated rows (no cxstats code)."""
    kept = {g: rows for g, rows in s.answers.items() if len(rows) >= MIN_GROUP and (units is None or g[0] in units)}
    scores = [100 * (sum(items) / len(items) - 1) / 4 for rows in kept.values() for items, _, _ in rows]
    counts: dict[tuple[str, int], int] = {}
    for rows in kept.values():
        for items, _, _ in rows:
            for item, score in zip(ITEMS, items):
                counts[(item, score)] = counts.get((item, score), 0) + 1
    per_unit = {}
    for (u, _), rows in kept.items():
        per_unit[u] = per_unit.get(u, 0) + len(rows)
    suppressed = sum(
        1 for g, rows in s.answers.items() if 0 < len(rows) < MIN_GROUP and (units is None or g[0] in units)
    )
    return {
        "respondents": len(scores),
        "index": (sum(scores) / len(scores)) if scores else None,
        "groups": len(kept),
        "counts": counts,
        "per_unit": per_unit,
        "suppressed": suppressed,
    }


@PROPERTY_SETTINGS
@given(s=surveys(), as_manager=st.booleans())
def test_shown_totals_are_sums_of_kept_groups_only(tmp_path_factory, s, as_manager):
    """No subtraction of shown figures can reveal a suppressed group: every total is over kept groups."""
    db = build(tmp_path_factory.mktemp("totals"), "t", s)
    units = tuple(s.units[:2]) if as_manager else None
    viewer = Viewer("manager", units, "m") if as_manager else ADMIN
    ref = _reference(s, units)
    with store.connect(db) as con:
        summ = metrics.engagement_summary(con, viewer=viewer)
        g = metrics.unit_period_engagement(con, viewer=viewer)
        dist = metrics.item_distribution(con, viewer=viewer)
        res = linkage.analyse(con, viewer=viewer)
        h = overview.headline(con, viewer=viewer)
    assert summ.respondents == ref["respondents"] == h.respondents
    assert summ.groups == ref["groups"] and summ.suppressed_groups == ref["suppressed"]
    if ref["index"] is None:
        assert summ.index is None
    else:
        assert summ.index == pytest.approx(ref["index"], rel=1e-9)
        assert h.engagement_index == pytest.approx(ref["index"], rel=1e-9)
    # the per-period table and the per-unit rows add up to the same kept respondents
    assert int(summ.by_period["respondents"].sum()) == ref["respondents"]
    assert {u: int(n) for u, n in g.groups.groupby("unit_id")["respondents"].sum().items()} == ref["per_unit"]
    # every unit total over periods (linkage's between-unit rows) is the sum of its kept groups only
    for row in res.as_json()["units"]:
        assert row["respondents"] == ref["per_unit"][row["unit_id"]]
    # distributions count answers of kept groups only (item cells here always have >= min_group answers)
    counts = dist.groupby(["item", "score"])["answers"].sum() if len(dist) else pd.Series(dtype="int64")
    assert {(i, int(sc)): int(n) for (i, sc), n in counts.items()} == ref["counts"]
    # and per group: only kept groups, each cell with at least min_group answers
    if len(dist):
        kept = set(zip(g.groups["unit_id"].astype(str), g.groups["period"].astype(str)))
        assert set(zip(dist["unit_id"].astype(str), dist["period"].astype(str))) <= kept
        assert dist.groupby(["unit_id", "period", "item"])["answers"].sum().min() >= g.min_group


@PROPERTY_SETTINGS
@given(s=surveys())
def test_comments_only_from_groups_of_ten_or_more(tmp_path_factory, s):
    db = build(tmp_path_factory.mktemp("comments"), "c", s)
    expected = sorted((u, c) for (u, _), rows in s.answers.items() if len(rows) >= 10 for _, _, c in rows if c)
    with store.connect(db) as con:
        got = metrics.comments(con, viewer=ADMIN)
        # even when the viewer raises min_group, comments never come from groups under 10
        raised = metrics.comments(con, viewer=ADMIN, min_group=7)
        res = linkage.analyse(con, viewer=ADMIN)
    assert sorted(zip(got["unit_id"], got["comment"])) == expected
    assert set(zip(raised["unit_id"], raised["comment"])) <= set(expected)
    small_only = {c for (g, rows) in s.answers.items() if len(rows) < 10 for _, _, c in rows if c} - {
        c for _, c in expected
    }
    text = json.dumps(res.as_json()) + json.dumps(cli_json(db))
    for c in small_only:
        assert c not in text


@pytest.mark.parametrize(
    "min_group, period, ok",
    [
        (None, None, True),
        (5, None, True),
        (7, None, True),
        (4, None, False),
        (3, None, False),
        (None, "quarter", True),
        (None, "month", False),
    ],
)
def test_thresholds_and_groupings_can_only_be_raised(tmp_path, min_group, period, ok):
    """Two thresholds or two groupings could be subtracted: a view may raise min_group, never lower
    it, and may not choose another period than the database setting."""
    s = Survey(
        ["S001"], [QUARTERS[0]], {}, {("S001", QUARTERS[0]): [((4, 4, 4), 9, "")] * 6}, [], ("S001", QUARTERS[0])
    )
    db = tmp_path / "x.duckdb"
    ingest.import_file(db, "engagement", _engagement_csv(s), file_name="e.csv", scale=5, viewer=ADMIN)
    with store.connect(db) as con:
        for fn in (
            metrics.unit_period_engagement,
            metrics.item_scores,
            metrics.engagement_summary,
            metrics.suppressed_group_list,
            metrics.item_distribution,
        ):
            if ok:
                fn(con, min_group, period, viewer=ADMIN)
            else:
                with pytest.raises(CxStatsError):
                    fn(con, min_group, period, viewer=ADMIN)
        if ok:
            linkage.analyse(con, viewer=ADMIN, min_group=min_group, period=period)
        else:
            with pytest.raises(CxStatsError):
                linkage.analyse(con, viewer=ADMIN, min_group=min_group, period=period)


def test_cli_refuses_lower_threshold_and_other_period(tmp_path, cli_inprocess):
    db = tmp_path / "x.duckdb"
    with store.connect(db):
        pass
    for args in (("--min-group", "3"), ("--period", "month")):
        out = cli_inprocess("linkage", "--json", *args, db=db)
        assert out.returncode == 2 and "Traceback" not in out.stderr, out.stderr


# ---------------------------------------------------------------- differencing (issue 18, item 5)


def _with_kept_group(data, s: Survey) -> tuple[Survey, tuple[str, date]]:
    """The survey with one (unit, period) group of at least min_group respondents, and that group."""
    g = data.draw(st.sampled_from(sorted(s.answers)))
    answers = dict(s.answers)
    if len(answers[g]) < MIN_GROUP:
        answers[g] = data.draw(st.lists(ANSWER, min_size=MIN_GROUP, max_size=MIN_GROUP + 3))
    sizes = {k: len(v) for k, v in answers.items()}
    return Survey(s.units, s.periods, sizes, answers, s.feedback, s.target), g


def _extra_rows(group: tuple[str, date], answers, first: int = 90000) -> bytes:
    u, p = group
    lines = ["Unit,Survey date,Respondent,eNPS,Comment," + ",".join(ITEMS)]
    for k, (items, enps, comment) in enumerate(answers, start=first):
        lines.append(
            f"{u},{p.replace(day=20).isoformat()},R{k:05d},{'' if enps is None else enps},{comment},"
            + ",".join(str(x) for x in items)
        )
    return ("\n".join(lines) + "\n").encode()


def _fingerprint(db: str):
    with store.connect(db) as con:
        return store.table_fingerprint(con)


@PROPERTY_SETTINGS
@given(data=st.data())
def test_a_manager_can_never_pad_a_group(tmp_path_factory, data):
    """(a) invented respondents for any group of his units, any number: refused before any comparison."""
    s = data.draw(surveys())
    db = build(tmp_path_factory.mktemp("pad"), "p", s)
    group = data.draw(st.sampled_from(sorted(s.answers)))
    pad = _extra_rows(group, data.draw(st.lists(ANSWER, min_size=1, max_size=MIN_GROUP + 2)))
    mgr = Viewer("manager", (group[0],), "m")
    before = _fingerprint(db)
    for call in (
        lambda: ingest.preview(pad, "pad.csv", "engagement", db=db, viewer=mgr, scale=5),
        lambda: ingest.import_file(db, "engagement", pad, file_name="pad.csv", viewer=mgr, scale=5),
    ):
        with pytest.raises(AccessDenied):
            call()
    assert _fingerprint(db) == before  # every table's rows: nothing written, so nothing shown changes


@PROPERTY_SETTINGS
@given(data=st.data())
def test_a_batch_changing_a_kept_group_by_fewer_than_min_group_is_refused(tmp_path_factory, data):
    """(b) 1..min_group-1 new respondents in a kept group: refused with the reason, nothing changes;
    min_group or more load."""
    s, group = _with_kept_group(data, data.draw(surveys()))
    db = build(tmp_path_factory.mktemp("small"), "s", s)
    few = _extra_rows(group, data.draw(st.lists(ANSWER, min_size=1, max_size=MIN_GROUP - 1)))
    before = _fingerprint(db)
    pv = ingest.preview(few, "late.csv", "engagement", db=db, scale=5, viewer=ADMIN)
    assert not pv.ok and any(group[0] in str(p) and "at least 5" in str(p) for p in pv.problems), pv.problems
    with pytest.raises(CxStatsError, match="may only change by at least"):
        ingest.import_file(db, "engagement", few, file_name="late.csv", scale=5, viewer=ADMIN)
    assert _fingerprint(db) == before
    enough = _extra_rows(group, data.draw(st.lists(ANSWER, min_size=MIN_GROUP, max_size=MIN_GROUP + 2)), 95000)
    assert (
        ingest.import_file(db, "engagement", enough, file_name="more.csv", scale=5, viewer=ADMIN).rows_loaded
        >= MIN_GROUP
    )


@PROPERTY_SETTINGS
@given(data=st.data())
def test_a_suppressed_item_cells_answers_change_nothing_shown(tmp_path_factory, data):
    """(c) in a kept group, one item answered by 1..min_group-1 respondents (blank for the others):
    two databases differing only in those answers show the same everything, index and alpha too."""
    s, group = _with_kept_group(data, data.draw(surveys()))
    rows = s.answers[group]
    item = data.draw(st.integers(0, len(ITEMS) - 1))
    k = data.draw(st.integers(1, MIN_GROUP - 1))
    who = data.draw(st.lists(st.integers(0, len(rows) - 1), min_size=k, max_size=k, unique=True))
    values = data.draw(st.lists(st.integers(1, 5), min_size=k, max_size=k))
    others = data.draw(st.lists(st.integers(1, 5), min_size=k, max_size=k).filter(lambda v: v != values))

    def with_cell(vals) -> Survey:
        new = []
        for i, (items, enps, comment) in enumerate(rows):
            items = list(items)
            items[item] = vals[who.index(i)] if i in who else None
            new.append((tuple(items), enps, comment))
        answers = dict(s.answers)
        answers[group] = new
        return Survey(s.units, s.periods, s.sizes, answers, s.feedback, s.target)

    tmp = tmp_path_factory.mktemp("cell")
    db_a, db_b = build(tmp, "a", with_cell(values)), build(tmp, "b", with_cell(others))
    a, b = shown(db_a), shown(db_b)
    assert a["cells"][1] >= 1  # the cell is there, and suppressed
    for key in a:
        assert a[key] == b[key], f"{key} changes when a suppressed item cell's answers change"
    assert cli_json(db_a) == cli_json(db_b)
    # (the manager's view is built by the same SQL over his units; the first property checks it)
