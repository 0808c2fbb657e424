"""Simulated unit-period panels for the linkage statistics (holds no tests itself).

Used by tests/test_linkage_sims.py (fast and slow tiers) and by scripts/simulate_linkage.py, which
writes docs/simulations-linkage.md. Every draw comes from ``numpy.random.default_rng(seed)``.

- :func:`shock_panel`: company-wide period shocks move engagement and CX together in every unit,
  with no within-unit link at all (optionally AR(1) errors inside each unit);
- :func:`noisy_panel`: CX driven by *true* engagement, while the measured index is the mean of 5-25
  fresh respondents per group, so the measured slope is attenuated towards zero.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from cxstats import stats

PLANTED = 0.30


def _ar1(rng, units: int, periods: int, rho: float, sd: float) -> np.ndarray:
    """Stationary AR(1) series per unit (variance sd^2), units x periods."""
    e = np.empty((units, periods))
    e[:, 0] = rng.normal(0, sd, units)
    inno = sd * math.sqrt(1 - rho * rho)
    for t in range(1, periods):
        e[:, t] = rho * e[:, t - 1] + rng.normal(0, inno, units)
    return e


def shock_panel(seed: int, units: int = 40, periods: int = 8, ar: float = 0.0) -> pd.DataFrame:
    """x = 60 + a_u + s_t + e_ut, y = 75 + c_u + 0.8 s_t + f_ut; no within-unit effect.

    a_u ~ N(0, 8), c_u ~ N(0, 6) (unit levels), s_t ~ N(0, 5) (a quarter that is good or bad for
    every store, for both engagement and CX), e and f independent N(0, 3) or AR(1) with coefficient
    ``ar`` inside each unit.
    """
    rng = np.random.default_rng(seed)
    u, t = np.repeat(np.arange(units), periods), np.tile(np.arange(periods), units)
    shock = rng.normal(0, 5, periods)
    e = _ar1(rng, units, periods, ar, 3.0).ravel() if ar else rng.normal(0, 3, u.size)
    f = _ar1(rng, units, periods, ar, 3.0).ravel() if ar else rng.normal(0, 3, u.size)
    x = 60 + rng.normal(0, 8, units)[u] + shock[t] + e
    y = 75 + rng.normal(0, 6, units)[u] + 0.8 * shock[t] + f
    return pd.DataFrame({"unit": u, "period": t, "engagement": x, "cx": y})


def one_way_rm_p(d: pd.DataFrame) -> float:
    """p of the one-way repeated-measures correlation (Bakdash and Marusich 2017), which this round
    replaces: r of unit-centred x and y, t with N - S - 1 dof."""
    xc = d["engagement"] - d.groupby("unit")["engagement"].transform("mean")
    yc = d["cx"] - d.groupby("unit")["cx"].transform("mean")
    r = float(xc @ yc) / math.sqrt(float(xc @ xc) * float(yc @ yc))
    dof = len(d) - d["unit"].nunique() - 1
    from scipy import stats as st

    return float(2 * st.t.sf(abs(r * math.sqrt(dof / (1 - r * r))), dof))


def noisy_panel(
    seed: int,
    units: int = 40,
    periods: int = 8,
    beta: float = PLANTED,
    resp_sd: float = 14.0,
    lo: int = 5,
    hi: int = 25,
) -> pd.DataFrame:
    """True engagement E_ut = 60 + a_u + q_t + e_ut (a ~ N(0, 7), q ~ N(0, 2), e ~ N(0, 6));
    n_ut ~ U{lo..hi} fresh respondents score E_ut + N(0, resp_sd) each; the measured index is
    their mean (``engagement``), with their sd (``index_sd``) and count (``respondents``).
    CX = 75 + c_u + p_t + beta * E_ut + N(0, 2), c ~ N(0, 5), p ~ N(0, 1.5): CX follows true
    engagement, so the measured slope is attenuated by the groups' sampling noise.
    """
    rng = np.random.default_rng(seed)
    u, t = np.repeat(np.arange(units), periods), np.tile(np.arange(periods), units)
    true = 60 + rng.normal(0, 7, units)[u] + rng.normal(0, 2, periods)[t] + rng.normal(0, 6, u.size)
    n = rng.integers(lo, hi + 1, u.size)
    means, sds = np.empty(u.size), np.empty(u.size)
    for i in range(u.size):
        s = true[i] + rng.normal(0, resp_sd, n[i])
        means[i], sds[i] = s.mean(), s.std(ddof=1)
    cx = 75 + rng.normal(0, 5, units)[u] + rng.normal(0, 1.5, periods)[t] + beta * true + rng.normal(0, 2, u.size)
    return pd.DataFrame({"unit": u, "period": t, "engagement": means, "cx": cx, "respondents": n, "index_sd": sds})


def corrected_of(d: pd.DataFrame, b: int = stats.BOOT_B) -> tuple[stats.TwoWayFit, stats.Corrected]:
    """The uncorrected fit and the corrected slope of a :func:`noisy_panel`."""
    n = d["respondents"].to_numpy("float64")
    sd = d["index_sd"].to_numpy("float64")
    tw = stats.TwoWayPanel(
        d["cx"], d["engagement"], d["unit"], d["period"], n_resp=n, noise_ss=(n - 1) * sd * sd, noise_dof=n - 1
    )
    fit = tw.fit()
    return fit, stats.corrected_slope(tw, fit.coef, b=b)
