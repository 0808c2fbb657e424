"""Pure statistical formulas (no database, no viewer): each one function, its formula, a citation.

Used by :mod:`cxstats.linkage` (and by any analysis that needs the same figure: one definition per
concept). Everything returns full-precision floats or None (JSON has no NaN); rounding happens only
when a figure is shown.

- :func:`fisher_ci`, :func:`min_detectable_r`, :func:`pearson`, :func:`spearman` (exact permutation
  p for n <= 9), :func:`bh_q` (Benjamini-Hochberg), :func:`holm`, :func:`welch_diff`;
- :class:`TwoWayPanel`: the two-way (unit + period) fixed-effects slope from per-unit sufficient
  statistics, with CRV1 and CRV3 (jackknife) cluster-robust variances, the two-way within
  correlation, the reliability of the within-unit engagement signal and the unit (cluster) bootstrap
  of the reliability-corrected slope.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import pandas as pd
from scipy import stats as _st

Z_975 = 1.959964  # two-sided 95% (DESIGN.md pins this value)
Z_80 = 0.841621  # 80% power
MIN_N = 4  # fewest units for any between-unit figure
EXACT_SPEARMAN_N = 9  # exact permutation p up to this n (9! = 362,880 orderings)
FEW_CLUSTERS = 30  # below this, the jackknife CRV3 replaces CRV1
MIN_CLUSTERS = 3  # below this, no CI or p at all
MIN_RELIABILITY = 0.2
BOOT_MIN_CLUSTERS = 10
BOOT_B = 999
BOOT_SEED = 20240611


def num(x) -> float | None:
    """A finite float, or None for None, NaN, infinities and what is no number (pd.NA): JSON has no
    NaN and Plotly leaves a gap for None. The one definition (charts, focus, programme use it)."""
    if x is None:
        return None
    try:
        x = float(x)
    except (TypeError, ValueError):
        return None
    return x if math.isfinite(x) else None


# ---------------------------------------------------------------- correlations


def fisher_ci(r: float | None, n: int, k: int = 0) -> tuple[float | None, float | None]:
    """95% CI of a correlation by Fisher z: ``tanh(atanh(r) +- 1.959964 / sqrt(n - 3 - k))``.

    k = number of covariates partialled out (Fisher 1921). Example: r = .5, n = 30 -> [0.170, 0.729].
    """
    if r is None or n - 3 - k < 1 or not math.isfinite(r):
        return None, None
    if abs(r) >= 1:
        return float(r), float(r)
    z, h = math.atanh(r), Z_975 / math.sqrt(n - 3 - k)
    return math.tanh(z - h), math.tanh(z + h)


def min_detectable_r(n: int) -> float | None:
    """Smallest r detectable with 80% power at two-sided alpha .05 with n units (Fisher z).

    ``tanh((1.959964 + 0.841621) / sqrt(n - 3))`` (Cohen 1988). Example: n = 30 -> 0.492; n = 100 -> 0.277.
    """
    if n < MIN_N:
        return None
    return math.tanh((Z_975 + Z_80) / math.sqrt(n - 3))


@dataclass(frozen=True)
class Pearson:
    """Pearson r with Fisher-z 95% CI; p from ``scipy.stats.pearsonr``."""

    r: float | None
    ci_low: float | None
    ci_high: float | None
    p: float | None
    n: int


def pearson(x, y) -> Pearson:
    """Pearson r = cov(x, y) / (sd_x sd_y), CI by :func:`fisher_ci`; all null when n < 4 or a side is constant.

    Example: x = [1, 2, 3, 4, 5], y = [2, 1, 4, 3, 5] -> r = 0.8, p = 0.104.
    """
    x, y = np.asarray(x, dtype="float64"), np.asarray(y, dtype="float64")
    n = int(x.size)
    if n < MIN_N or np.ptp(x) == 0 or np.ptp(y) == 0:
        return Pearson(None, None, None, None, n)
    res = _st.pearsonr(x, y)
    r = float(res.statistic)
    lo, hi = fisher_ci(r, n)
    return Pearson(r, lo, hi, float(res.pvalue), n)


@dataclass(frozen=True)
class Spearman:
    rho: float | None
    p: float | None


@lru_cache(maxsize=8)
def _orderings(n: int) -> np.ndarray:
    """Every ordering of range(n), one per row (n! rows)."""
    return np.array(list(itertools.permutations(range(n))), dtype=np.int8)


def spearman_exact_p(x, y) -> float:
    """Two-sided exact permutation p of Spearman's rho: the share of all n! orderings of y whose
    |rho| is at least the observed |rho| (ties keep their average ranks; equality within 1e-12).

    Under no association every pairing of the ranks is equally likely, so this count is the exact
    null distribution (Hollander, Wolfe and Chicken 2014, ch. 8). Use for n <= 9.
    Example: x = 1..5, y = [2, 1, 4, 3, 5] -> rho = 0.8, p = 16/120 = 0.133.
    """
    rx = _st.rankdata(np.asarray(x, dtype="float64"))
    ry = _st.rankdata(np.asarray(y, dtype="float64"))
    rx, ry = rx - rx.mean(), ry - ry.mean()
    scale = math.sqrt(float(rx @ rx) * float(ry @ ry))
    obs = abs(float(rx @ ry)) / scale
    perm = ry[_orderings(rx.size)] @ rx / scale
    return float(np.mean(np.abs(perm) >= obs - 1e-12))


def spearman(x, y) -> Spearman:
    """Spearman rho (Pearson r of average ranks); p exact by permutation for n <= 9
    (:func:`spearman_exact_p`), else ``scipy.stats.spearmanr``'s t approximation; null when n < 4
    or a side is constant.
    """
    x, y = np.asarray(x, dtype="float64"), np.asarray(y, dtype="float64")
    if x.size < MIN_N or np.ptp(x) == 0 or np.ptp(y) == 0:
        return Spearman(None, None)
    res = _st.spearmanr(x, y)
    p = spearman_exact_p(x, y) if x.size <= EXACT_SPEARMAN_N else float(res.pvalue)
    return Spearman(float(res.statistic), p)


# ---------------------------------------------------------------- multiple testing


def bh_q(p) -> np.ndarray:
    """Benjamini-Hochberg q-values (``scipy.stats.false_discovery_control``; Benjamini and Hochberg 1995).

    q_(i) = min over j >= i of p_(j) * m / j. Example: [.01, .02, .03] -> [.03, .03, .03].
    """
    p = np.asarray(p, dtype="float64")
    return _st.false_discovery_control(p) if p.size else p


def holm(p) -> list[float | None]:
    """Holm's step-down adjusted p-values (Holm 1979); None entries stay None and do not count in m.

    With the m non-null p sorted ascending, ``p_holm_(i) = min(1, max_{j <= i} (m - j + 1) p_(j))``
    (equals ``statsmodels.stats.multitest.multipletests(p, method='holm')[1]``).
    Example: [0.01, 0.04, 0.03, None] -> [0.03, 0.06, 0.06, None].
    """
    vals = [num(v) for v in p]
    given = {i: v for i, v in enumerate(vals) if v is not None}
    m = len(given)
    out: list[float | None] = [None] * len(vals)
    running = 0.0
    for rank, (i, v) in enumerate(sorted(given.items(), key=lambda iv: iv[1])):
        running = max(running, min(1.0, (m - rank) * v))
        out[i] = running
    return out


# ---------------------------------------------------------------- means


def welch_diff(a, b, confidence: float = 0.95) -> tuple[float, float, float, float, float]:
    """Difference of means b - a with a Welch t interval: (diff, ci_low, ci_high, p, dof).

    ``se = sqrt(s_a^2/n_a + s_b^2/n_b)``, Welch-Satterthwaite dof (Welch 1947), t quantile at
    (1+confidence)/2. Example: a = [1, 2, 3], b = [2, 4, 6, 8] -> diff 3.0, dof 4.3.
    """
    a = np.asarray(a, dtype="float64")
    b = np.asarray(b, dtype="float64")
    return welch_from_moments(
        float(a.mean()),
        float(a.var(ddof=1)),
        int(a.size),
        float(b.mean()),
        float(b.var(ddof=1)),
        int(b.size),
        confidence,
    )


def welch_from_moments(
    mean_a: float, var_a: float, n_a: int, mean_b: float, var_b: float, n_b: int, confidence: float = 0.95
) -> tuple[float, float, float, float, float]:
    """:func:`welch_diff` from group moments (mean, sample variance ddof 1, n): b - a with its Welch CI.

    ``se = sqrt(var_a/n_a + var_b/n_b)``, Welch-Satterthwaite dof
    ``(va + vb)^2 / (va^2/(n_a-1) + vb^2/(n_b-1))`` with ``va = var_a/n_a``. Returns (diff, ci_low,
    ci_high, p, dof), as ``scipy.stats.ttest_ind(b, a, equal_var=False)``.
    Example: a = [1, 2, 3] (mean 2, var 1), b = [2, 4, 6] (mean 4, var 4) -> diff 2, dof 2.94, p 0.222.
    """
    va, vb = var_a / n_a, var_b / n_b
    diff = float(mean_b - mean_a)
    se = math.sqrt(va + vb)
    if se == 0:
        return diff, diff, diff, (1.0 if diff == 0 else 0.0), float(n_a + n_b - 2)
    dof = (va + vb) ** 2 / (va**2 / (n_a - 1) + vb**2 / (n_b - 1))
    tq = float(_st.t.ppf((1 + confidence) / 2, dof))
    p = float(2 * _st.t.sf(abs(diff / se), dof))
    return diff, diff - tq * se, diff + tq * se, p, float(dof)


# ---------------------------------------------------------------- two-way fixed effects


@dataclass(frozen=True)
class TwoWayFit:
    """Slope of ``y ~ x + C(unit) + C(period)`` with its cluster-robust inference and the within r.

    ``vcov``: 'CRV1' (30+ clusters), 'CRV3' (3..29) or None (no CI and p). ``reason``: why a figure
    is null (one reason). ``n_obs`` / ``n_clusters`` count the model's rows and units after units
    with a single period (``n_singletons``) are dropped.
    """

    coef: float | None
    se: float | None
    ci_low: float | None
    ci_high: float | None
    p: float | None
    n_obs: int
    n_clusters: int
    n_singletons: int
    vcov: str | None
    r: float | None
    r_dof: int | None
    reason: str | None = None


class TwoWayPanel:
    """A unit-period panel reduced to per-unit sufficient statistics of the two-way within transform.

    With x_d, y_d and D_d the unit-demeaned engagement, CX and period dummies (period 0 the
    reference), the two-way residuals are ``x~ = x_d - D_d (D_d'D_d)^+ D_d'x_d`` (Frisch-Waugh-Lovell:
    exactly the residuals of regressing x on unit and period dummies, balanced or not). Every sum the
    estimators need (x~'x~, x~'y~, y~'y~, the leverages) is a weighted sum over units of per-unit
    pieces ``x_d'x_d, D_d'x_d, D_d'D_d, ...``: so leaving a unit out (CRV3) or drawing units with
    replacement (the bootstrap; a unit drawn twice counts as two units) is a weight vector, and B
    replicates are one matrix product.

    ``n_resp`` (respondents of each row's engagement group) and ``noise_ss`` / ``noise_dof`` (the
    within-group sum of squares of respondents' scores and its degrees of freedom, summed per unit)
    feed :meth:`reliability`. Units with one period are dropped (they carry no within-unit change)
    and counted in ``n_singletons``; rows with a missing value are dropped first.
    """

    def __init__(self, y, x, unit, period, n_resp=None, noise_ss=None, noise_dof=None):
        yv, xv = np.asarray(y, dtype="float64"), np.asarray(x, dtype="float64")
        n0 = yv.size
        uc, units = pd.factorize(np.asarray(unit), sort=True)
        tc, periods = pd.factorize(np.asarray(period), sort=True)
        cols = {
            "n": np.ones(n0) if n_resp is None else np.asarray(n_resp, dtype="float64"),
            "ss": np.zeros(n0) if noise_ss is None else np.asarray(noise_ss, dtype="float64"),
            "dof": np.zeros(n0) if noise_dof is None else np.asarray(noise_dof, dtype="float64"),
        }
        ok = np.isfinite(yv) & np.isfinite(xv) & (uc >= 0) & (tc >= 0)
        # units with one period carry no within-unit change: dropped and counted
        pairs = np.unique(uc[ok].astype("int64") * (len(periods) + 1) + tc[ok])
        per_unit = np.bincount(pairs // (len(periods) + 1), minlength=len(units))
        self.n_singletons = int((per_unit == 1).sum())
        ok &= (uc >= 0) & (per_unit[np.maximum(uc, 0)] >= 2)
        f = pd.DataFrame(
            {
                "y": yv[ok],
                "x": xv[ok],
                "u": np.asarray(units)[uc[ok]],
                "t": np.asarray(periods)[tc[ok]],
                **{k: v[ok] for k, v in cols.items()},
            }
        )
        self.has_noise = noise_ss is not None and n_resp is not None
        ucodes, self.units = pd.factorize(f["u"], sort=True)
        tcodes, self.periods = pd.factorize(f["t"], sort=True)
        self.ucodes, self.tcodes = ucodes, tcodes
        g, t, n = len(self.units), len(self.periods), len(f)
        self.G, self.T, self.N = g, t, n
        x_, y_ = f["x"].to_numpy(), f["y"].to_numpy()
        self.x_scale = float(((x_ - x_.mean()) ** 2).sum()) if n else 0.0
        self.y_scale = float(((y_ - y_.mean()) ** 2).sum()) if n else 0.0
        cnt = np.bincount(ucodes, minlength=g).astype("float64")
        self.xd = x_ - (np.bincount(ucodes, weights=x_, minlength=g) / np.maximum(cnt, 1))[ucodes]
        self.yd = y_ - (np.bincount(ucodes, weights=y_, minlength=g) / np.maximum(cnt, 1))[ucodes]
        k = max(t - 1, 0)
        dum = np.zeros((n, k))
        rows = np.nonzero(tcodes > 0)[0]
        dum[rows, tcodes[rows] - 1] = 1.0
        sums = np.zeros((g, k))
        np.add.at(sums, ucodes, dum)
        self.dd = dum - (sums / np.maximum(cnt, 1)[:, None])[ucodes]
        dd, xd, yd = self.dd, self.xd, self.yd

        def per_unit(v):
            return np.bincount(ucodes, weights=v, minlength=g)

        def per_unit_vec(m):
            out = np.zeros((g,) + m.shape[1:])
            np.add.at(out, ucodes, m)
            return out

        self.sxx_u, self.sxy_u, self.syy_u = per_unit(xd * xd), per_unit(xd * yd), per_unit(yd * yd)
        self.bx_u, self.by_u = per_unit_vec(dd * xd[:, None]), per_unit_vec(dd * yd[:, None])
        outer = dd[:, :, None] * dd[:, None, :]
        self.a_u = per_unit_vec(outer)
        inv_n = 1.0 / f["n"].to_numpy()
        self.c_u = per_unit(inv_n * (1.0 - 1.0 / cnt[ucodes]))
        self.cm_u = per_unit_vec(inv_n[:, None, None] * outer)
        self.ss_u, self.dof_u = per_unit(f["ss"].to_numpy()), per_unit(f["dof"].to_numpy())

    # -- weighted sums over units (w: (G,) or (B, G))
    def _sums(self, w: np.ndarray):
        w = np.atleast_2d(w)
        a = np.einsum("bg,gij->bij", w, self.a_u)
        ap = np.linalg.pinv(a, rcond=1e-10, hermitian=True) if self.T > 1 else a
        bx, by = w @ self.bx_u, w @ self.by_u
        sxx = w @ self.sxx_u - np.einsum("bi,bij,bj->b", bx, ap, bx)
        sxy = w @ self.sxy_u - np.einsum("bi,bij,bj->b", bx, ap, by)
        syy = w @ self.syy_u - np.einsum("bi,bij,bj->b", by, ap, by)
        return sxx, sxy, syy, ap, bx, by

    def _reliability(self, w: np.ndarray, sxx: np.ndarray, ap: np.ndarray) -> np.ndarray:
        w = np.atleast_2d(w)
        dof = w @ self.dof_u
        s2 = np.divide(w @ self.ss_u, dof, out=np.full(dof.shape, np.nan), where=dof > 0)
        noise = s2 * (w @ self.c_u - np.einsum("bij,bji->b", ap, np.einsum("bg,gij->bij", w, self.cm_u)))
        return 1.0 - np.divide(noise, sxx, out=np.full(sxx.shape, np.nan), where=sxx > 0)

    def residuals(self) -> tuple[np.ndarray, np.ndarray]:
        """x~ and y~: engagement and CX with unit and period effects removed (row order of the model)."""
        _, _, _, ap, bx, by = self._sums(np.ones(self.G))
        if self.T <= 1:
            return self.xd.copy(), self.yd.copy()
        return self.xd - self.dd @ (ap[0] @ bx[0]), self.yd - self.dd @ (ap[0] @ by[0])

    def fit(self) -> TwoWayFit:
        """The slope, its inference (CRV1 at 30+ clusters, CRV3 jackknife at 3..29, none below 3) and r.

        beta = x~'y~ / x~'x~. CRV1: ``c * sum_g (sum_{i in g} x~_i e_i)^2 / (x~'x~)^2`` with
        statsmodels' ``c = G/(G-1) * (N-1)/(N-K)``, K = G + T. CRV3 (MacKinnon, Nielsen and Webb
        2023): ``V = (G-1)/G * sum_g (b_(g) - b)^2`` over the leave-one-unit-out slopes. Both use t
        with G-1 dof. Within correlation ``r = x~'y~ / sqrt(x~'x~ y~'y~)``, ``r_dof = N - rank(unit +
        period dummies) - 1``. Degenerate data give nulls with one reason.
        """
        g, n, t = self.G, self.N, self.T
        base = dict(n_obs=n, n_clusters=g, n_singletons=self.n_singletons)

        def null(reason, **kw):
            vals = dict(coef=None, se=None, ci_low=None, ci_high=None, p=None, vcov=None, r=None, r_dof=None)
            vals.update(kw)
            return TwoWayFit(**vals, **base, reason=reason)

        if g < 2:
            return null(
                f"the within-unit model needs at least two units with engagement and feedback in two or "
                f"more periods; {g} unit{'' if g == 1 else 's'} {'has' if g == 1 else 'have'} them"
            )
        k = g + t
        if n <= k:
            return null(
                f"the within-unit model has {n} unit-periods for {k} parameters (units, periods and the "
                f"slope): an exact fit leaves nothing to judge the slope by"
            )
        sxx, sxy, syy, ap, _, _ = self._sums(np.ones(g))
        sxx, sxy, syy = float(sxx[0]), float(sxy[0]), float(syy[0])
        if self.x_scale == 0 or sxx <= 1e-10 * self.x_scale:
            return null(
                "engagement does not change within units once unit and company-wide period effects are "
                "removed, so the within-unit slope cannot be estimated"
            )
        if self.y_scale == 0 or syy <= 1e-10 * self.y_scale:
            return null(
                "customer satisfaction does not change within units once unit and company-wide period effects "
                "are removed, so the within-unit slope cannot be estimated"
            )
        beta = sxy / sxx
        xt, yt = self.residuals()
        e = yt - beta * xt
        r = max(-1.0, min(1.0, sxy / math.sqrt(sxx * syy)))
        rank = g + (int(np.linalg.matrix_rank(ap[0], hermitian=True)) if t > 1 else 0)
        r_dof = n - rank - 1
        if float(e @ e) <= 1e-12 * syy:
            return null(
                "customer satisfaction moves in exact step with engagement once unit and period effects are "
                "removed (a standard error of zero): there is no noise to judge the slope by, so no "
                "coefficient is given"
            )
        if g < MIN_CLUSTERS:
            return null(
                f"only {g} units have two or more periods: with fewer than {MIN_CLUSTERS} the clustered "
                f"variance is exactly zero, so no CI or p-value can be given",
                coef=beta,
                r=r,
                r_dof=r_dof,
            )
        if g < FEW_CLUSTERS:
            w = np.ones((g, g)) - np.eye(g)
            lx, lxy, _, _, _, _ = self._sums(w)
            bad = np.nonzero(lx <= 1e-10 * self.x_scale)[0]
            if bad.size:
                return null(
                    f"leaving out unit {self.units[bad[0]]} leaves no within-unit change in engagement, so the "
                    f"jackknife (CRV3) variance cannot be computed and no CI or p-value is given",
                    coef=beta,
                    r=r,
                    r_dof=r_dof,
                )
            loo = lxy / lx
            se = math.sqrt((g - 1) / g * float(((loo - beta) ** 2).sum()))
            vcov = "CRV3"
        else:
            scores = np.bincount(self.ucodes, weights=xt * e, minlength=g)
            c = g / (g - 1) * (n - 1) / (n - k)
            se = math.sqrt(c * float(scores @ scores)) / sxx
            vcov = "CRV1"
        if not math.isfinite(se) or se <= 1e-10 * abs(beta):
            return null(
                "the standard error of the within-unit slope is (nearly) zero, which would make any p-value "
                "false; no coefficient is given",
                r=r,
                r_dof=r_dof,
            )
        dof = g - 1
        tq = float(_st.t.ppf(0.975, dof))
        p = float(2 * _st.t.sf(abs(beta / se), dof))
        return TwoWayFit(beta, se, beta - tq * se, beta + tq * se, p, vcov=vcov, r=r, r_dof=r_dof, **base)

    def reliability(self) -> float | None:
        """Share of the within-unit engagement variation that is signal, not small-group noise.

        ``reliability = 1 - s^2 sum_g(m_gg / n_g) / sum_g(x~_g^2)``, m_gg the diagonal of the
        two-way residual-maker (1 - leverage of row g in the unit + period dummy regression), n_g
        the group's respondents, s^2 the pooled within-group variance ``sum noise_ss / sum noise_dof``
        (Fuller 1987, ch. 1: the errors-in-variables attenuation of a slope is this ratio).
        """
        if not self.has_noise or self.G < 2:
            return None
        sxx, _, _, ap, _, _ = self._sums(np.ones(self.G))
        rel = self._reliability(np.ones(self.G), sxx, ap)
        return num(rel[0])

    def bootstrap(self, b: int = BOOT_B, seed: int = BOOT_SEED) -> tuple[np.ndarray, np.ndarray]:
        """Slope and reliability over ``b`` unit (cluster) bootstrap replicates (units drawn with
        replacement, a unit drawn twice counting as two units); fixed seed, so reruns agree."""
        rng = np.random.default_rng(seed)
        draws = rng.integers(0, self.G, size=(b, self.G))
        w = np.zeros((b, self.G))
        np.add.at(w, (np.repeat(np.arange(b), self.G), draws.ravel()), 1.0)
        sxx, sxy, _, ap, _, _ = self._sums(w)
        with np.errstate(divide="ignore", invalid="ignore"):
            coef = np.where(sxx > 1e-10 * self.x_scale, sxy / sxx, np.nan)
        return coef, self._reliability(w, sxx, ap)


@dataclass(frozen=True)
class Corrected:
    """The within-unit slope corrected for small-group noise: ``coef / reliability``, with a unit
    bootstrap percentile CI; ``reason`` says why a figure is null."""

    coef: float | None
    ci_low: float | None
    ci_high: float | None
    reliability: float | None
    reason: str | None = None


def corrected_slope(panel: TwoWayPanel, coef: float | None, b: int = BOOT_B, seed: int = BOOT_SEED) -> Corrected:
    """``corrected = coef / reliability`` (:meth:`TwoWayPanel.reliability`), 95% CI by the percentile
    unit bootstrap of both (B = 999, fixed seed; Efron and Tibshirani 1993, ch. 13).

    Null with a reason when reliability < 0.2; CI null below 10 units with two or more periods or
    when more than 5% of the replicates have reliability < 0.2 (the rest give the percentiles).
    """
    if coef is None:
        return Corrected(None, None, None, None, None)
    rel = panel.reliability()
    if rel is None:
        return Corrected(
            None,
            None,
            None,
            None,
            "no respondent-level spread is known for the engagement groups, so "
            "the small-group noise cannot be estimated",
        )
    if rel < MIN_RELIABILITY:
        return Corrected(
            None,
            None,
            None,
            rel,
            f"the within-unit engagement changes are mostly small-group noise "
            f"(reliability {rel:.2f}, below {MIN_RELIABILITY}), so no corrected "
            f"figure is given",
        )
    est = coef / rel
    if panel.G < BOOT_MIN_CLUSTERS:
        return Corrected(
            est,
            None,
            None,
            rel,
            f"the corrected figure has no interval with fewer than "
            f"{BOOT_MIN_CLUSTERS} units (the unit bootstrap needs more)",
        )
    cb, rb = panel.bootstrap(b, seed)
    ok = np.isfinite(cb) & np.isfinite(rb) & (rb >= MIN_RELIABILITY)
    if ok.mean() < 0.95:
        return Corrected(
            est,
            None,
            None,
            rel,
            f"in {100 * (1 - ok.mean()):.0f}% of the bootstrap replicates the "
            f"reliability falls below {MIN_RELIABILITY}, so the corrected figure "
            f"has no interval",
        )
    lo, hi = np.percentile(cb[ok] / rb[ok], [2.5, 97.5])
    return Corrected(est, float(lo), float(hi), rel)


# ---------------------------------------------------------------- reliability of unit means


def pooled_variance(ss, dof) -> float | None:
    """Pooled within-group variance ``sum SS_g / sum dof_g`` (SS_g = (n_g - 1) s_g^2, ddof 1)."""
    d = float(np.nansum(np.asarray(dof, dtype="float64")))
    return None if d <= 0 else float(np.nansum(np.asarray(ss, dtype="float64"))) / d


def mean_reliability(s2: float | None, n, means) -> float | None:
    """Reliability of unit means: ``1 - mean_u(s^2 / n_u) / var(x_u)`` (var ddof 1; Spearman 1904's
    attenuation, as in Harter et al.'s unit-level meta-analyses). None when var is 0 or s^2 unknown.
    """
    x = np.asarray(means, dtype="float64")
    n = np.asarray(n, dtype="float64")
    if s2 is None or x.size < 2 or (n <= 0).any():
        return None
    v = float(x.var(ddof=1))
    return None if v <= 0 else 1.0 - float(np.mean(s2 / n)) / v


def disattenuate(r: float | None, rel_x: float | None, rel_y: float | None) -> float | None:
    """``r / sqrt(rel_x * rel_y)`` (Spearman's correction); None when either reliability < 0.2."""
    if r is None or rel_x is None or rel_y is None or rel_x < MIN_RELIABILITY or rel_y < MIN_RELIABILITY:
        return None
    return r / math.sqrt(rel_x * rel_y)
