"""Headline figures for the Overview page, for whole units and whole periods the viewer picked.

Built on cxstats.metrics (which applies anonymity before anything leaves it): the engagement index
of a selection is the mean over every kept respondent in it (``sum of respondent scores /
respondents`` over kept (unit, period) groups, as metrics.engagement_summary defines it), CSAT % and
NPS are recomputed from the selection's answer counts, so a selection's figure equals the figure of
the same answers computed directly.

Example: two kept groups with 10 respondents averaging 60 and 30 averaging 80 -> index
(600 + 2400) / 40 = 75; CSAT counts 90 of 120 answers in {4, 5} -> CSAT % 75.0.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import duckdb

from . import Viewer, metrics, quality
from .stats import Z_975

Z95 = Z_975  # one definition of the 1.959964 constant (cxstats.stats)


@dataclass(frozen=True)
class Headline:
    engagement_index: float | None  # 0..100, kept groups only; None for marketing or no data
    respondents: int
    engagement_groups: int
    suppressed_groups: int  # (unit, period) groups below min_group, in all the viewer's data
    min_group: int | None
    csat_pct: float | None
    csat_n: int
    nps: float | None
    nps_se: float | None
    nps_n: int
    units: int  # units with any kept engagement group or feedback in the selection
    periods: tuple[str, ...]
    incomplete_period: str | None  # the selection's latest period when it has not ended
    freshness: tuple[quality.Freshness, ...]

    @property
    def nps_margin(self) -> float | None:
        """Half-width of the 95% interval of NPS (1.96 x its standard error)."""
        return None if self.nps_se is None else Z95 * self.nps_se


def headline(
    con: duckdb.DuckDBPyConnection,
    units: tuple[str, ...] | None = None,
    period_from: str | None = None,
    period_to: str | None = None,
    today: date | None = None,
    *,
    viewer: Viewer,
    engine=None,
) -> Headline:
    """Engagement index, CSAT %, NPS with its standard error, counts and freshness of a selection.

    ``engine`` (None: from the environment): where the feedback counts are formed (metrics.cx_counts).
    """
    idx = None
    respondents = groups_n = suppressed = 0
    min_group = None
    eng_units: set[str] = set()
    periods: set[str] = set()
    incomplete: set[str] = set()
    if viewer.sees_employee_data:
        g = metrics.unit_period_engagement(con, viewer=viewer)
        sel = metrics.in_selection(g.groups, units, period_from, period_to)
        respondents = int(sel["respondents"].sum()) if len(sel) else 0
        idx = float(sel["score_sum"].sum() / respondents) if respondents else None
        groups_n, suppressed, min_group = len(sel), g.suppressed_groups, g.min_group
        eng_units = set(sel["unit_id"].astype(str))
        periods |= set(sel["period"])
        incomplete |= set(sel.loc[sel["incomplete"].astype(bool), "period"])
    cx = metrics.in_selection(
        metrics.cx_by_unit_period(con, viewer=viewer, engine=engine), units, period_from, period_to
    )
    csat_n = int(cx["csat_n"].sum()) if len(cx) else 0
    csat = 100.0 * float(cx["csat_top2"].sum()) / csat_n if csat_n else None
    n = metrics.nps_from_counts(
        int(cx["promoters"].sum()) if len(cx) else 0,
        int(cx["detractors"].sum()) if len(cx) else 0,
        int(cx["nps_n"].sum()) if len(cx) else 0,
    )
    if len(cx):
        periods |= set(cx["period"])
        incomplete |= set(cx.loc[cx["incomplete"].astype(bool), "period"])
    all_units = eng_units | set(cx["unit_id"].astype(str)) if len(cx) else eng_units
    latest = max(periods) if periods else None
    return Headline(
        engagement_index=idx,
        respondents=respondents,
        engagement_groups=groups_n,
        suppressed_groups=suppressed,
        min_group=min_group,
        csat_pct=csat,
        csat_n=csat_n,
        nps=n.nps,
        nps_se=n.se,
        nps_n=n.n,
        units=len(all_units),
        periods=tuple(sorted(periods)),
        incomplete_period=latest if latest in incomplete else None,
        freshness=tuple(quality.freshness(con, viewer=viewer, today=today, engine=engine)),
    )
