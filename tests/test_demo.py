"""Demo generator, demo loading and the messy upload examples (cxstats/demo.py).

The planted within-unit effect is checked with a plain statsmodels two-way fixed-effects model
written here from DESIGN.md's definitions, independent of cxstats.linkage and cxstats.metrics.
"""

from __future__ import annotations

import io
from datetime import date
from pathlib import Path

import duckdb
import numpy as np
import openpyxl
import pandas as pd
import pytest
import statsmodels.formula.api as smf

from cxstats import CxStatsError, demo, store
from cxstats.schema import KINDS

ROOT = Path(__file__).resolve().parents[1]
DEMO_DIR = ROOT / "data" / "demo"
END = date(2026, 11, 26)  # "today" of the design: 8 quarters up to 2026-Q3


@pytest.fixture(scope="module")
def data() -> demo.DemoData:
    return demo.generate(seed=7, end=END)


@pytest.fixture(scope="module")
def loaded(tmp_path_factory):
    db = tmp_path_factory.mktemp("demo") / "demo.duckdb"
    summary = demo.build_demo(db, seed=7, units=40, customers=3000, end=END)
    return db, summary


def _panel(d: demo.DemoData, min_group: int = 5) -> pd.DataFrame:
    """Unit-quarter engagement index and CSAT %, by DESIGN.md's formulas, kept groups only."""
    wide = d.engagement_wide()
    items = wide[list(d.items)]
    answered = items.notna().sum(axis=1)
    wide["resp_index"] = 100 * (items.mean(axis=1) - 1) / 4
    wide.loc[answered < len(d.items) / 2, "resp_index"] = np.nan
    eng = wide.groupby(["unit_id", "wave"]).agg(n=("row_no", "size"), engagement=("resp_index", "mean"))
    eng = eng[eng["n"] >= min_group].reset_index().rename(columns={"wave": "quarter"})
    fb = d.feedback.dropna(subset=["csat"]).copy()
    fb["quarter"] = fb["date"].dt.year.astype(str) + "-Q" + fb["date"].dt.quarter.astype(str)
    fb["sat"] = fb["csat"].astype(int) >= 4
    cx = fb.groupby(["unit_id", "quarter"]).agg(csat_pct=("sat", "mean")).reset_index()
    cx["csat_pct"] *= 100
    return eng.merge(cx, on=["unit_id", "quarter"])


def _within_fit(panel: pd.DataFrame):
    codes = panel["unit_id"].astype("category").cat.codes
    return smf.ols("csat_pct ~ engagement + C(unit_id) + C(quarter)", panel).fit(
        cov_type="cluster", cov_kwds={"groups": codes}, use_t=True
    )


# ---------------------------------------------------------------- determinism and shapes


def test_docstring_example_runs():
    import doctest

    assert doctest.testmod(demo).failed == 0


def test_same_seed_same_data(data):
    again = demo.generate(seed=7, end=END)
    for kind, frame in data.kinds().items():
        pd.testing.assert_frame_equal(frame, again.kinds()[kind], obj=kind)
    pd.testing.assert_frame_equal(data.engagement_answers, again.engagement_answers)
    assert again.true_advocates == data.true_advocates
    assert again.influencer_decoy == data.influencer_decoy


def test_different_seed_differs(data):
    other = demo.generate(seed=8, end=END)
    assert not other.engagement_answers.equals(data.engagement_answers)
    assert not other.feedback["csat"].equals(data.feedback["csat"])
    assert other.true_advocates != data.true_advocates


@pytest.mark.parametrize(
    "end, first, last",
    [
        (date(2026, 11, 26), "2024-Q4", "2026-Q3"),
        (date(2026, 10, 1), "2024-Q4", "2026-Q3"),  # first day of a quarter: that quarter is not complete
        (date(2026, 9, 30), "2024-Q3", "2026-Q2"),
        (date(2025, 1, 15), "2023-Q1", "2024-Q4"),
    ],
)
def test_quarters_end_with_last_complete_quarter(end, first, last):
    qs = demo.demo_quarters(end, 8)
    assert (qs[0][0], qs[-1][0], len(qs)) == (first, last, 8)
    assert qs[-1][2] < end


def test_shapes_in_designed_ranges(data):
    assert len(data.units) == 40 and data.units["unit_id"].is_unique
    assert data.quarters == ("2024-Q4", "2025-Q1", "2025-Q2", "2025-Q3", "2025-Q4", "2026-Q1", "2026-Q2", "2026-Q3")
    assert data.end == date(2026, 9, 30) and data.start == date(2024, 10, 1)
    sizes = data.engagement.groupby(["unit_id", "wave"]).size()
    assert len(sizes) == 40 * 8
    assert ((sizes >= 10) & (sizes <= 30) | (sizes < 5)).all()
    assert 2 <= (sizes < 5).sum() <= 0.1 * len(sizes)
    assert set(data.small_groups) == set(sizes[sizes < 5].index)
    assert 10 <= len(data.items) <= 12
    assert set(data.engagement_answers["item"]) == set(data.items)
    assert data.engagement_answers["score"].between(1, 5).all()
    assert data.engagement["enps"].dropna().between(0, 10).all()
    # a wave stays inside its calendar quarter
    q = (
        data.engagement["survey_date"].dt.year.astype(str)
        + "-Q"
        + data.engagement["survey_date"].dt.quarter.astype(str)
    )
    assert (q == data.engagement["wave"]).all()
    assert 20_000 <= len(data.feedback) <= 99_999
    assert data.feedback["csat"].dropna().between(1, 5).all()
    assert data.feedback["nps"].dropna().between(0, 10).all()
    assert (data.feedback["csat"].notna() | data.feedback["nps"].notna()).all()
    assert data.feedback["response_id"].is_unique
    service = data.feedback.dropna(subset=["contacted_at", "responded_at"])
    assert len(service) > 1000 and (service["responded_at"] >= service["contacted_at"]).all()
    assert len(data.customers) == 3000
    assert 0.7 < data.customers["marketing_consent"].mean() < 0.95
    assert (data.purchases["amount"] < 0).any()  # returns
    assert data.purchases.groupby("order_id")["line_no"].max().max() >= 3  # orders with several lines
    assert data.purchases["order_date"].max() <= pd.Timestamp(data.end)
    assert data.mentions["text"].notna().all() and data.mentions["followers"].ge(0).all()
    assert len(data.rewards) > 0 and set(data.recently_rewarded) <= set(data.rewards["customer_id"])


DEMO_KINDS = [k for k in KINDS if k != "reorgs"]  # the demo has no re-organisations


@pytest.mark.parametrize("kind", DEMO_KINDS)
def test_frames_use_the_store_columns(data, kind):
    """Every demo column is a column of the stored table (the layout in docs/DEVELOPING.md)."""
    allowed = set(KINDS[kind].field_names) | {"row_no"} | ({"line_no"} if kind == "purchases" else set())
    frame = data.kinds()[kind]
    assert set(frame.columns) <= allowed
    assert set(KINDS[kind].required) <= set(frame.columns)


def test_lines_of_one_order_share_customer_and_date(data):
    g = data.purchases.groupby("order_id")
    assert (g["customer_id"].nunique() == 1).all() and (g["order_date"].nunique() == 1).all()
    assert not data.purchases.duplicated(["order_id", "line_no"]).any()


def test_zero_net_orders_sum_to_exactly_zero(data):
    assert data.zero_net_orders
    lines = data.purchases[data.purchases["order_id"].isin(data.zero_net_orders)]
    cents = (lines["amount"] * 100).round().astype(int).groupby(lines["order_id"]).sum()
    assert (cents == 0).all()


@pytest.mark.parametrize("units, customers", [(5, 50), (12, 400), (60, 200)])
def test_other_sizes(units, customers):
    d = demo.generate(seed=3, units=units, customers=customers, end=END)
    assert len(d.units) == units and len(d.customers) == customers
    assert d.engagement.groupby(["unit_id", "wave"]).ngroups == units * 8
    assert len(d.true_advocates) >= 5


@pytest.mark.parametrize("kwargs", [{"units": 1}, {"quarters": 1}, {"customers": 3}])
def test_too_small_is_refused(kwargs):
    with pytest.raises(CxStatsError):
        demo.generate(**kwargs)


# ---------------------------------------------------------------- planted truth


@pytest.mark.parametrize("seed", [7, 11, 23])
def test_planted_within_effect_is_recoverable(seed):
    d = demo.generate(seed=seed, customers=300, end=END)
    fit = _within_fit(_panel(d))
    low, high = fit.conf_int().loc["engagement"]
    se = fit.bse["engagement"]
    assert low > 0 and fit.pvalues["engagement"] < 0.01
    assert abs(fit.params["engagement"] - d.planted_within_coef) < 3.5 * se


def test_no_effect_means_no_within_effect_but_confounded_between():
    d = demo.generate(seed=5, customers=300, effect=0.0, confound=0.8, end=END)
    panel = _panel(d)
    fit = _within_fit(panel)
    assert abs(fit.params["engagement"]) < 3.5 * fit.bse["engagement"]
    units = panel.groupby("unit_id")[["engagement", "csat_pct"]].mean()
    assert units["engagement"].corr(units["csat_pct"]) > 0.3  # between units the confound shows


@pytest.mark.slow
def test_planted_effect_coverage_and_null_rate_over_seeds():
    """Over fixed seeds the 95% CI covers the planted beta, and beta = 0 is rarely 'significant'.

    With true 95% coverage, fewer than 9 of 12 happens with probability 0.002; with a 5% false
    positive rate, 4 or more of 12 with probability 0.002.
    """
    covered = false_pos = 0
    for seed in range(100, 112):
        d = demo.generate(seed=seed, customers=20, end=END)
        low, high = _within_fit(_panel(d)).conf_int().loc["engagement"]
        covered += low <= d.planted_within_coef <= high
        null = _within_fit(_panel(demo.generate(seed=seed, customers=20, effect=0.0, end=END)))
        false_pos += null.pvalues["engagement"] < 0.05
    assert covered >= 9 and false_pos <= 3, (covered, false_pos)


def test_true_advocates_look_like_advocates(data):
    adv = set(data.true_advocates)
    assert 40 <= len(adv) <= 60 and data.influencer_decoy not in adv
    orders = data.purchases[data.purchases["amount"] > 0].groupby("customer_id")["order_id"].nunique()
    assert orders.reindex(list(adv)).min() >= 10
    assert orders.drop(list(adv), errors="ignore").max() <= 8
    last = data.purchases.groupby("customer_id")["order_date"].max()
    assert (last.reindex(list(adv)) >= pd.Timestamp(data.end) - pd.Timedelta(days=30)).all()
    from cxstats.sentiment import compound

    m = data.mentions[data.mentions["customer_id"].isin(adv)].copy()
    m["s"] = compound(m["text"].tolist())
    pos = (m["s"] >= 0.05).groupby(m["customer_id"]).sum()
    assert pos.reindex(list(adv)).min() >= 4 and (m["s"] > -0.05).all()
    fb = data.feedback[data.feedback["customer_id"].isin(adv)]
    assert set(fb["customer_id"]) == adv and fb["nps"].ge(9).all()
    consent = data.customers.set_index("customer_id")["marketing_consent"].reindex(list(adv))
    assert 0.7 <= consent.mean() < 1.0 or len(adv) < 20


def test_influencer_decoy_has_reach_but_no_advocacy(data):
    dec = data.influencer_decoy
    from cxstats.sentiment import compound

    posts = data.mentions[data.mentions["customer_id"] == dec]
    assert posts["followers"].max() >= 1_000_000
    assert max(compound(posts["text"].tolist())) < 0.05
    assert data.purchases[data.purchases["customer_id"] == dec]["order_id"].nunique() == 1
    assert data.mentions["followers"].drop(posts.index).max() < 1_000_000


# ---------------------------------------------------------------- loading


def test_build_demo_loads_every_kind(loaded, data):
    db, summary = loaded
    assert "40 units" in summary and "true advocates" in summary
    with store.connect(db) as con:
        batches = store.list_batches(con)
        assert sorted(b.kind for b in batches) == sorted(DEMO_KINDS)
        assert all(b.file_name == f"demo:{b.kind}" and not b.undone for b in batches)
        counts = {t: con.execute(f"SELECT count(*) FROM {t}").fetchall()[0][0] for t in DEMO_KINDS}
        for kind, frame in data.kinds().items():
            assert counts[kind] == len(frame), kind
        assert con.execute("SELECT count(*) FROM engagement_answers").fetchall()[0][0] == len(data.engagement_answers)
        items = con.execute("SELECT item, scale, reverse_keyed FROM engagement_items").fetchall()
        assert sorted(items) == sorted((i, 5, False) for i in data.items)
        src = dict(con.execute("SELECT sentiment_source, count(*) FROM mentions GROUP BY 1").fetchall())
        assert src["vader"] > 0 and src.get("unscored", 0) > 0
        bad = con.execute("SELECT count(*) FROM mentions WHERE (sentiment IS NULL) <> (sentiment_source = 'unscored')")
        assert bad.fetchall()[0][0] == 0
        # money is DECIMAL: zero-net orders sum to exactly 0
        z = con.execute("SELECT count(*) FROM (SELECT order_id FROM purchases GROUP BY 1 HAVING sum(amount) = 0)")
        assert z.fetchall()[0][0] == len(data.zero_net_orders)
        assert len({b.sha256 for b in batches}) == len(batches)
    assert demo.is_demo(db)


def test_build_demo_refuses_a_database_with_data(loaded):
    db, _ = loaded
    with store.connect(db) as con:
        before = store.table_fingerprint(con)
    with pytest.raises(CxStatsError, match="already has data"):
        demo.build_demo(db, seed=7, end=END)
    with store.connect(db) as con:
        assert store.table_fingerprint(con) == before


def test_ensure_demo_fills_only_an_empty_database(db):
    with store.connect(db):
        pass  # created and migrated, still empty
    assert not demo.is_demo(db)
    assert demo.ensure_demo(db) is True
    assert demo.is_demo(db)
    with store.connect(db) as con:
        n = len(store.list_batches(con))
    assert demo.ensure_demo(db) is False
    with store.connect(db) as con:
        assert len(store.list_batches(con)) == n


def test_failed_demo_load_takes_back_its_batches(db, monkeypatch):
    real = store.load_batch

    def failing(con, kind, *args, **kwargs):
        if kind == "mentions":
            raise CxStatsError("disk full (simulated)")
        return real(con, kind, *args, **kwargs)

    monkeypatch.setattr(store, "load_batch", failing)
    with pytest.raises(CxStatsError, match="simulated"):
        demo.build_demo(db, seed=1, units=4, customers=60, end=END)
    monkeypatch.setattr(store, "load_batch", real)
    with store.connect(db) as con:
        assert all(b.undone for b in store.list_batches(con))
        assert all(con.execute(f"SELECT count(*) FROM {t}").fetchall()[0][0] == 0 for t in KINDS)
    assert demo.ensure_demo(db) is True  # the next start tries again


def test_ensure_demo_leaves_real_data_alone(db):
    with store.connect(db) as con:
        store.load_batch(
            con,
            "units",
            {"units": pd.DataFrame({"unit_id": ["A"], "row_no": [2]})},
            file_name="units.csv",
            sha256="x",
            rows=1,
        )
    assert demo.ensure_demo(db) is False
    assert not demo.is_demo(db)


def test_is_demo_false_once_real_data_joins(tmp_path):
    db = tmp_path / "small.duckdb"
    demo.build_demo(db, seed=1, units=6, customers=100, end=END)
    assert demo.is_demo(db)
    with store.connect(db) as con:
        store.load_batch(
            con,
            "rewards",
            {
                "rewards": pd.DataFrame(
                    {
                        "customer_id": ["C00001"],
                        "reward_date": [date(2026, 10, 1)],
                        "reward_type": ["voucher"],
                        "row_no": [2],
                    }
                )
            },
            file_name="rewards.csv",
            sha256="y",
            rows=1,
        )
    assert not demo.is_demo(db)


def test_demo_command(cli_inprocess, tmp_path):
    db = tmp_path / "cli.duckdb"
    r = cli_inprocess("demo", "--seed", "2", "--units", "8", "--customers", "200", db=db)
    assert r.returncode == 0, r.stderr
    assert "8 units" in r.stdout
    r = cli_inprocess("demo", db=db)
    assert r.returncode == 2 and "already has data" in r.stderr
    con = duckdb.connect(str(db), read_only=True)
    try:
        assert con.execute("SELECT count(*) FROM units").fetchall()[0][0] == 8
    finally:
        con.close()


# ---------------------------------------------------------------- messy files


def test_messy_files_are_committed_and_small():
    names = {p.name for p in DEMO_DIR.iterdir()}
    assert {
        "engagement_messy.xlsx",
        "engagement_messy_error.xlsx",
        "feedback_messy.csv",
        "units.csv",
        "purchases.csv",
        "mentions.csv",
        "customers.csv",
    } <= names
    assert sum(p.stat().st_size for p in DEMO_DIR.iterdir()) < 1_000_000


def _sheet_rows(name):
    ws = openpyxl.load_workbook(DEMO_DIR / name, read_only=True).active
    return [list(r) for r in ws.iter_rows(values_only=True)]


def test_messy_engagement_xlsx_is_messy_as_designed(data):
    rows = _sheet_rows("engagement_messy.xlsx")
    assert rows[0][0] and all(v is None for v in rows[0][1:])  # a title row
    assert all(v is None for v in rows[1])  # then a blank row
    header = rows[2]
    assert header[:3] == ["Store", "Survey Date", "Respondent"] and set(data.items) <= set(header)
    body, total = rows[3:-1], rows[-1]
    assert total[0] == "Total"
    units = {r[0] for r in body}
    assert len(units) == 6 and units <= set(data.units["unit_id"])
    assert 40 <= len(body) <= 60
    labels = {v for r in body for v in r[4 : 4 + len(data.items)]}
    assert set(demo.LIKERT_LABELS) <= labels and labels <= set(demo.LIKERT_LABELS) | {None, "N/A"}


def test_messy_engagement_error_file_has_exactly_one_error():
    good, bad = _sheet_rows("engagement_messy.xlsx"), _sheet_rows("engagement_messy_error.xlsx")
    diffs = [
        (i + 1, good[2][j], b)
        for i, (g_row, b_row) in enumerate(zip(good, bad))
        for j, (g, b) in enumerate(zip(g_row, b_row))
        if g != b
    ]
    err = demo.MESSY_ERROR
    assert diffs == [(err["row"], err["column"], err["value"])]


def test_messy_feedback_csv_is_semicolon_cp1252_with_decimal_commas():
    raw = (DEMO_DIR / "feedback_messy.csv").read_bytes()
    with pytest.raises(UnicodeDecodeError):
        raw.decode("utf-8")
    text = raw.decode("cp1252")
    assert "Zoë" in text
    df = pd.read_csv(io.StringIO(text), sep=";", decimal=",", dtype={"Customer": str})
    assert {"Branch", "Satisfaction", "Date", "Basket value"} <= set(df.columns)
    assert df["Basket value"].dtype == float
    days = df["Date"].str.slice(0, 2).astype(int)
    assert (days > 12).any()
    dates = pd.to_datetime(df["Date"], format="%d/%m/%Y")
    assert dates.notna().all()
    assert df["Satisfaction"].dropna().between(1, 5).all()


@pytest.mark.parametrize(
    "name, kind",
    [
        ("units.csv", "units"),
        ("purchases.csv", "purchases"),
        ("mentions.csv", "mentions"),
        ("customers.csv", "customers"),
        ("rewards.csv", "rewards"),
    ],
)
def test_clean_examples_have_canonical_headers(name, kind):
    df = pd.read_csv(DEMO_DIR / name, dtype=str)
    assert len(df) > 0
    assert set(KINDS[kind].required) <= set(df.columns) <= set(KINDS[kind].field_names)


def test_messy_files_regenerate_identically(tmp_path):
    demo.write_messy_files(tmp_path)
    for p in tmp_path.iterdir():
        assert p.read_bytes() == (DEMO_DIR / p.name).read_bytes(), f"{p.name}: run python -m cxstats.demo"
