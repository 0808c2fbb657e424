"""Comment themes (cxstats/themes.py; DESIGN.md "Comment themes", issue 17).

Planted recovery on the demo (queues with low CSAT, friendly staff with high CSAT, parking; staffing
and tools in employee comments), determinism, the CSAT difference against a hand computation and
statsmodels, bad input (too few texts, other languages, very long texts), roles, and the >= 10 rule
as a property: a 9-person group's comments change nothing in any output.
"""

from __future__ import annotations

import collections
import json
import os

import numpy as np
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from cxstats import ADMIN, AccessDenied, CxStatsError, Viewer, demo, ingest, store, themes
from cxstats.cli import main as cli_main
from cxstats.cli import themes_text

pytest_plugins = ["app_fixtures"]  # demo_db: the default demo, built once per session

LEADER = Viewer("leader", (), "l")
MARKETING = Viewer("marketing", (), "mk")


@pytest.fixture(scope="module")
def runs(demo_db):
    """themes._run per source on the demo: (result, modelled texts, theme_id of each)."""
    with store.connect(demo_db) as con:
        return {src: themes._run(con, src, ADMIN, None) for src in themes.SOURCES}


# ---------------------------------------------------------------- formulas


def test_docstring_examples():
    import doctest

    assert doctest.testmod(themes).failed == 0


def test_csat_difference_by_hand_and_against_statsmodels():
    from statsmodels.stats.proportion import confint_proportions_2indep

    with_theme = [5, 4, 4] + [3, 2, 1, 1, 2, 3, 3]  # 3 of 10 satisfied
    without = [4] * 40 + [5] * 20 + [1] * 10 + [3] * 10  # 60 of 80
    cw, co, d, lo, hi = themes.csat_difference(with_theme, without + [np.nan])
    # by hand: p1 = .3, p0 = .75; se = sqrt(.3*.7/10 + .75*.25/80) = sqrt(.021 + .00234375)
    se = (0.021 + 0.00234375) ** 0.5
    assert (cw, co) == pytest.approx((30.0, 75.0))
    assert d == pytest.approx(-45.0)
    assert (lo, hi) == pytest.approx((-45.0 - 100 * 1.959964 * se, -45.0 + 100 * 1.959964 * se))
    ref_lo, ref_hi = confint_proportions_2indep(3, 10, 60, 80, method="wald", compare="diff", alpha=0.05)
    assert lo / 100 == pytest.approx(ref_lo, abs=1e-6) and hi / 100 == pytest.approx(ref_hi, abs=1e-6)
    # a side without answers has no difference
    assert themes.csat_difference([], [4, 5])[2:] == (None, None, None)


def test_choose_k_rule():
    assert themes.choose_k({4: 10, 5: 9, 6: 8.9, 7: 8.85}) == 5
    assert themes.choose_k({4: 10, 5: 9.9}) == 4
    # drops always at least 2% of err(4): the largest k
    errs = {k: 100.0 - 5 * (k - 4) for k in range(4, 14)}
    assert themes.choose_k(errs) == 12


# ---------------------------------------------------------------- planted themes in the demo


@pytest.mark.parametrize("source", ["feedback", "comments"])
def test_planted_themes_are_recovered(runs, source):
    r, texts, assignment = runs[source]
    terms = {t.theme_id: t.terms for t in r.themes}
    for key in demo.COMMENT_THEMES[source]:
        ids = [assignment[i] for i, t in enumerate(texts) if key in t.lower()]
        assert len(ids) >= 50, key
        best, n = collections.Counter(ids).most_common(1)[0]
        assert n / len(ids) >= 0.7, f"{key}: only {n / len(ids):.0%} in one theme"
        assert best != 0 and key in terms[best], f"{key} not among the top terms {terms[best]}"


def test_queue_theme_costs_satisfaction_and_friendly_staff_raise_it(runs):
    r, _, _ = runs["feedback"]
    by_key = {key: next(t for t in r.themes if key in t.terms[:3]) for key in ("queue", "friendly")}
    q, f = by_key["queue"], by_key["friendly"]
    assert q.csat_with < q.csat_without and q.ci_high < 0
    assert f.csat_with > f.csat_without and f.ci_low > 0
    for t in r.themes:
        if t.theme_id:
            assert 1 <= len(t.examples) <= 3 and len(set(t.examples)) == len(t.examples)


def test_shares_sentiment_and_counts(runs):
    for src, (r, texts, _) in runs.items():
        assert r.message is None and r.n_texts == len(texts) >= themes.MIN_TEXTS
        assert sum(t.share for t in r.themes) == pytest.approx(1.0)
        assert sum(t.n for t in r.themes) == r.n_texts
        assert all(t.sentiment is None or -1 <= t.sentiment <= 1 for t in r.themes)
        assert themes.K_MIN <= r.k <= themes.K_MAX and r.k_chosen
    # the demo's feedback has a few comments in other languages: counted, left out
    assert runs["feedback"][0].n_non_english > 0


def test_employee_comments_are_never_quoted(runs, demo_db):
    r, texts, _ = runs["comments"]
    assert all(t.examples == () for t in r.themes)
    assert all(t.csat_with is None for t in r.themes)
    shown = json.dumps(r.as_json()) + themes_text(r)
    for text in set(texts):
        assert text not in shown


def test_two_runs_are_equal(runs, demo_db, capsys):
    with store.connect(demo_db) as con:
        again = themes.themes(con, "feedback", viewer=ADMIN)
    assert again == runs["feedback"][0]
    # and in another process, through the command line
    assert cli_main(["themes", "feedback", "--json", "--db", str(demo_db)]) == 0
    assert json.loads(capsys.readouterr().out) == json.loads(json.dumps(runs["feedback"][0].as_json()))


def test_themes_can_be_set(demo_db, capsys):
    with store.connect(demo_db) as con:
        r = themes.themes(con, "feedback", viewer=ADMIN, n_themes=6)
    assert r.k == 6 and not r.k_chosen and len([t for t in r.themes if t.theme_id]) <= 6
    for bad in ("1", "31"):
        assert cli_main(["themes", "feedback", "--themes", bad, "--db", str(demo_db)]) == 2
        assert "--themes must be between 2 and 30" in capsys.readouterr().err


# ---------------------------------------------------------------- roles


def test_roles(demo_db):
    mgr = Viewer("manager", ("S001", "S002", "S003"), "m")
    with store.connect(demo_db) as con:
        with pytest.raises(AccessDenied):
            themes.themes(con, "comments", viewer=MARKETING)
        assert themes.themes(con, "feedback", viewer=MARKETING).themes
        assert themes.themes(con, "mentions", viewer=MARKETING).themes
        with pytest.raises(AccessDenied):
            themes.themes(con, "mentions", viewer=mgr)
        n_mgr = con.execute(
            "SELECT count(*) FROM feedback WHERE comment IS NOT NULL AND trim(comment) <> '' "
            "AND unit_id IN ('S001', 'S002', 'S003')"
        ).fetchall()[0][0]
        r = themes.themes(con, "feedback", viewer=mgr)
        assert r.n_texts + r.n_non_english == n_mgr
        assert themes.themes(con, "comments", viewer=LEADER).themes
        with pytest.raises(CxStatsError, match="unknown source"):
            themes.themes(con, "tweets", viewer=ADMIN)


def test_viewer_is_required_keyword(demo_db):
    with store.connect(demo_db) as con, pytest.raises(TypeError):
        themes.themes(con, "feedback")  # no default that quietly acts as admin


# ---------------------------------------------------------------- bad input


def _feedback_db(tmp_path, comments, name="f"):
    db = tmp_path / f"{name}.duckdb"
    rows = ["unit_id,date,csat,comment"] + [
        f'S001,2024-02-{1 + i % 28:02d},{1 + i % 5},"{c}"' for i, c in enumerate(comments)
    ]
    ingest.import_file(db, "feedback", ("\n".join(rows) + "\n").encode(), file_name="fb.csv", viewer=ADMIN)
    return db


def test_too_few_texts_says_so(tmp_path, capsys):
    rng = np.random.default_rng(3)
    texts = demo.theme_texts(rng, ["queue", "parking"] * 24) + ["Das Personal war sehr freundlich und nett."] * 5
    db = _feedback_db(tmp_path, texts)
    with store.connect(db) as con:
        r = themes.themes(con, "feedback", viewer=ADMIN)
    assert r.themes == () and r.n_texts == 48 and r.n_non_english == 5
    assert "only 48 English texts" in r.message and "at least 50" in r.message
    assert cli_main(["themes", "feedback", "--db", str(db)]) == 0
    assert "no themes are shown" in capsys.readouterr().out
    # an empty source, too
    with store.connect(tmp_path / "empty.duckdb") as con:
        assert themes.themes(con, "mentions", viewer=ADMIN).message.startswith("only 0 English texts")


def test_very_long_texts_are_cut_and_other_languages_left_out(tmp_path):
    rng = np.random.default_rng(4)
    texts = demo.theme_texts(rng, ["queue", "friendly", "parking", "feedback_other"] * 20)
    texts[0] = "The queue was long. " + "waited " * 200_000  # 1.4 MB in one cell
    texts += ["Le personnel est très sympa et rapide avec les clients."] * 7
    db = _feedback_db(tmp_path, texts)
    with store.connect(db) as con:
        r = themes.themes(con, "feedback", viewer=ADMIN)
    assert r.n_cut == 1 and r.n_non_english == 7 and r.n_texts == 80
    assert all(len(e) <= themes.EXAMPLE_CHARS for t in r.themes for e in t.examples)


# ---------------------------------------------------------------- the >= 10 rule as a property

ITEMS = ("I feel valued", "My manager supports me")
EXAMPLES = max(2, int(os.environ.get("CXSTATS_FUZZ_EXAMPLES", "8")) // 2)
SECRET = st.sampled_from(
    [
        "the night baker zebra quokka",
        "zebra quokka rota again",
        "",
        "staffing tools staffing tools",
        "quokka zebra manager",
    ]
)


def _survey_db(path, groups) -> str:
    """groups: {(unit, date): [comment, ...]}, one respondent per comment, all items answered 4."""
    lines = ["unit_id,survey_date,respondent_id,comment," + ",".join(ITEMS)]
    k = 0
    for (u, d), comments in sorted(groups.items()):
        for c in comments:
            k += 1
            lines.append(f'{u},{d},R{k:05d},"{c}",' + ",".join("4" for _ in ITEMS))
    ingest.import_file(path, "engagement", ("\n".join(lines) + "\n").encode(), file_name="s.csv", scale=5, viewer=ADMIN)
    return str(path)


def _all_outputs(db) -> str:
    out = []
    for viewer in (ADMIN, LEADER, Viewer("manager", ("S005", "S006"), "m")):
        with store.connect(db) as con:
            for n in (None, 3):
                r = themes.themes(con, "comments", viewer=viewer, n_themes=n)
                out.append(json.dumps(r.as_json(), sort_keys=True))
                out.append(themes_text(r))
    return "\n".join(out)


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,
    phases=(Phase.explicit, Phase.generate),
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    seed=st.integers(0, 10_000),
    kept_size=st.integers(10, 14),
    secret_a=st.lists(SECRET, min_size=9, max_size=9),
    secret_b=st.lists(SECRET, min_size=9, max_size=9),
)
def test_a_nine_person_groups_comments_never_appear(tmp_path_factory, seed, kept_size, secret_a, secret_b):
    rng = np.random.default_rng(seed)
    kept = {
        (f"S00{u}", "2024-02-10"): demo.theme_texts(rng, rng.choice(["staffing", "tools", "comments_other"], kept_size))
        for u in range(1, 6)
    }
    tmp = tmp_path_factory.mktemp("ten")
    a = _survey_db(tmp / "a.duckdb", {**kept, ("S006", "2024-02-10"): secret_a})
    b = _survey_db(tmp / "b.duckdb", {**kept, ("S006", "2024-02-10"): secret_b})
    out_a, out_b = _all_outputs(a), _all_outputs(b)
    assert out_a == out_b
    assert "zebra" not in out_a and "quokka" not in out_a
    with store.connect(a) as con:
        r = themes.themes(con, "comments", viewer=ADMIN)
    assert r.n_texts + r.n_non_english == 5 * kept_size and r.themes
