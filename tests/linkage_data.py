"""Test data builders for tests/test_metrics.py and tests/test_linkage*.py (holds no tests itself).

`load` writes frames straight into the canonical tables through store.load_batch, so metric tests
do not depend on the ingest module. `panel` draws unit-period panels with a planted within-unit
effect and a between-unit confounder.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from cxstats import store


def load_engagement(con, resp: pd.DataFrame, items: list[str], scale: int = 5, tag: str = "e") -> int:
    """resp: one row per respondent with unit_id, survey_date, optional wave/enps/comment and item columns."""
    resp = resp.reset_index(drop=True).copy()
    resp["row_no"] = np.arange(2, len(resp) + 2)
    base_cols = [
        c for c in ("row_no", "unit_id", "survey_date", "respondent_id", "wave", "enps", "comment") if c in resp.columns
    ]
    eng = resp[base_cols].copy()
    eng["survey_date"] = pd.to_datetime(eng["survey_date"]).dt.date
    long = resp.melt(id_vars=["row_no"], value_vars=items, var_name="item", value_name="score").dropna()
    long["score"] = long["score"].astype("int64")
    meta = pd.DataFrame({"item": items, "scale": scale, "reverse_keyed": False})
    return store.load_batch(
        con,
        "engagement",
        {"engagement": eng, "engagement_answers": long, "engagement_items": meta},
        file_name=f"{tag}.csv",
        sha256=f"{tag}-{np.random.default_rng().random()}",
        rows=len(eng),
    )


def load_feedback(con, fb: pd.DataFrame, tag: str = "f") -> int:
    fb = fb.reset_index(drop=True).copy()
    fb["row_no"] = np.arange(2, len(fb) + 2)
    fb["date"] = pd.to_datetime(fb["date"]).dt.date
    return store.load_batch(
        con,
        "feedback",
        {"feedback": fb},
        file_name=f"{tag}.csv",
        sha256=f"{tag}-{np.random.default_rng().random()}",
        rows=len(fb),
    )


def load_units(con, units: pd.DataFrame) -> int:
    units = units.reset_index(drop=True).copy()
    units["row_no"] = np.arange(2, len(units) + 2)
    return store.load_batch(
        con,
        "units",
        {"units": units},
        file_name="units.csv",
        sha256=f"u-{np.random.default_rng().random()}",
        rows=len(units),
    )


QUARTER_START = ["2024-01-15", "2024-04-15", "2024-07-15", "2024-10-15", "2025-01-15", "2025-04-15"]


@dataclass
class Survey:
    engagement: pd.DataFrame
    feedback: pd.DataFrame
    units: pd.DataFrame
    items: list[str]
    coef: float


def survey(
    seed: int,
    n_units: int = 12,
    n_periods: int = 4,
    resp_per_group: int = 8,
    fb_per_group: int = 40,
    coef: float = 0.5,
    items: int = 4,
    small_groups: int = 0,
) -> Survey:
    """Respondent-level survey + feedback with CSAT probability rising `coef` points per index point.

    `small_groups` (unit, period) groups get only 3 respondents (suppressed at min_group 5).
    """
    rng = np.random.default_rng(seed)
    names = [f"q{i + 1}" for i in range(items)]
    rows, fb = [], []
    small = {(u, p) for u, p in zip(rng.integers(0, n_units, small_groups), rng.integers(0, n_periods, small_groups))}
    for u in range(n_units):
        level = rng.normal(0, 0.5)
        for p in range(n_periods):
            shift = level + rng.normal(0, 0.5)
            n = 3 if (u, p) in small else resp_per_group
            lat = shift + rng.normal(0, 0.7, size=n)
            for i in range(n):
                rec = {"unit_id": f"U{u:03d}", "survey_date": QUARTER_START[p], "enps": int(rng.integers(0, 11))}
                for it in names:
                    rec[it] = int(np.clip(np.rint(3 + lat[i] + rng.normal(0, 0.6)), 1, 5))
                rows.append(rec)
            prob = np.clip(0.6 + coef * shift * 0.1, 0.05, 0.95)
            csat = np.where(
                rng.random(fb_per_group) < prob, rng.integers(4, 6, fb_per_group), rng.integers(1, 4, fb_per_group)
            )
            for c in csat:
                fb.append(
                    {
                        "unit_id": f"U{u:03d}",
                        "date": QUARTER_START[p],
                        "csat": int(c),
                        "nps": int(rng.integers(0, 11)),
                        "channel": rng.choice(["email", "phone", "twitter"]),
                    }
                )
    units = pd.DataFrame(
        {
            "unit_id": [f"U{u:03d}" for u in range(n_units)],
            "region": [["North", "South", "East"][u % 3] for u in range(n_units)],
            "headcount": [10 + 3 * u for u in range(n_units)],
        }
    )
    return Survey(pd.DataFrame(rows), pd.DataFrame(fb), units, names, coef)


def build(con, sv: Survey) -> None:
    load_units(con, sv.units)
    load_engagement(con, sv.engagement, sv.items)
    load_feedback(con, sv.feedback)


def panel(seed: int, n_units: int = 40, n_periods: int = 8, beta: float = 0.3, confounded: bool = True) -> pd.DataFrame:
    """A unit-period panel: cx = unit level + period shock + beta * engagement + noise.

    With `confounded`, units with higher engagement levels also have higher CX levels (a between-unit
    link of about 1 point per engagement point) whatever beta is.
    """
    rng = np.random.default_rng(seed)
    unit_level = rng.normal(60, 8, n_units)
    period_shock = rng.normal(0, 2, n_periods)
    u = np.repeat(np.arange(n_units), n_periods)
    t = np.tile(np.arange(n_periods), n_units)
    eng = unit_level[u] + rng.normal(0, 4, u.size)
    cx_level = (unit_level[u] - 60) * (1.0 if confounded else 0.0) + 70
    cx = cx_level + period_shock[t] + beta * (eng - unit_level[u]) + rng.normal(0, 3, u.size)
    return pd.DataFrame({"unit": u, "period": t, "engagement": eng, "cx": cx})
