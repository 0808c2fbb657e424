"""Customer value: who will keep buying (BG/NBD) and what they spend (Gamma-Gamma), backtested.

DESIGN.md, "Customer value (repeat-buying model)". Per customer with a counted order up to
``as_of`` (an order counts when its net amount is > 0, advocates' one definition of an order):

- transaction days = distinct calendar days with a counted order (several orders on one day count
  once); time in weeks (days / 7); ``x`` = transaction days - 1 (repeat days), ``t_x`` = weeks
  from the first to the last transaction day, ``T`` = weeks from the first day to as_of;
  ``m`` = mean net spend of the repeat transaction days (the first day left out), for x >= 1.
- BG/NBD (Fader, Hardie and Lee 2005, "Counting your customers the easy way: an alternative to the
  Pareto/NBD model", Marketing Science 24(2), 275-284): while alive a customer buys at Poisson rate
  lambda ~ Gamma(r, alpha); after each transaction he drops out with probability p ~ Beta(a, b).
  The likelihood of one customer (paper, eq. 6)::

      L = B(a, b+x)/B(a, b) * Gamma(r+x) alpha^r / (Gamma(r) (alpha+T)^(r+x))
        + [x > 0] B(a+1, b+x-1)/B(a, b) * Gamma(r+x) alpha^r / (Gamma(r) (alpha+t_x)^(r+x))

  r, alpha, a, b maximise the sum of log L (:func:`fit_bgnbd`).
- ``p_alive`` (eq. in section 4 of the paper, :func:`p_alive`)::

      P(alive | x, t_x, T) = 1 / (1 + [x > 0] a/(b+x-1) * ((alpha+T)/(alpha+t_x))^(r+x))

- ``expected_orders``: expected transaction days in the next t = horizon weeks (paper, eq. 10,
  :func:`expected_orders`)::

      E[Y(t) | x, t_x, T] = (a+b+x-1)/(a-1)
          * [1 - ((alpha+T)/(alpha+T+t))^(r+x) 2F1(r+x, b+x; a+b+x-1; t/(alpha+T+t))]
          / (1 + [x > 0] a/(b+x-1) * ((alpha+T)/(alpha+t_x))^(r+x))

  evaluated through Euler's transformation ``(1-z)^(r+x) 2F1(r+x, b+x; c; z) =
  (1-z)^(a-1) 2F1(a+b-1-r, a-1; c; z)`` (c = a+b+x-1), whose series stays small for large x.
- Gamma-Gamma (Fader, Hardie and Lee 2005, "RFM and CLV: using iso-value curves for customer base
  analysis", JMR 42(4), 415-430; Fader and Hardie, "The Gamma-Gamma model of monetary value",
  2013): a customer's spend per transaction has mean p/nu with nu ~ Gamma(q, gamma); the mean
  ``m`` of his x repeat transactions has density::

      f(m | p, q, gamma, x) = Gamma(px+q) / (Gamma(px) Gamma(q)) * gamma^q m^(px-1) x^(px)
                              / (gamma + m x)^(px+q)

  and ``E[M | m, x] = p (gamma + m x) / (p x + q - 1)``; a customer with x = 0 gets the population
  mean ``p gamma / (q - 1)``. ``expected_value = expected_orders * E[M]`` (undiscounted).

Reference (tests/test_value.py): the CDNOW 1/10 sample, calibration to 1997-09-30, gives
r = 0.243, alpha = 4.414, a = 0.793, b = 2.426 (log-likelihood -9582.4) and p = 6.25, q = 3.74,
gamma = 15.44 over 946 customers with repeat days.

Example::

    >>> m = BGNBD(r=0.243, alpha=4.414, a=0.793, b=2.426, loglik=float("nan"))
    >>> round(float(p_alive(m, 2, 30.43, 38.86)), 3)
    0.727
    >>> round(float(expected_orders(m, 39, 2, 30.43, 38.86)), 3)
    1.226
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Callable

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from scipy import optimize
from scipy.special import betaln, digamma, expit, gammaln, hyp2f1
from threadpoolctl import threadpool_limits

from . import CxStatsError, Viewer

HORIZON_WEEKS = 52
MIN_REPEATERS = 50  # fewer customers with x >= 1 than this: no model
MIN_BACKTEST_WEEKS = 4
VALUE_ROLES = ("marketing", "admin", "leader")
CUSTOMER_FIELDS = ("p_alive", "expected_orders", "expected_value")  # per customer in the advocates JSON
MAX_HORIZON_WEEKS = 520
_SUBSAMPLE = 5_000  # the several starts run on at most this many customers
FIT_SAMPLE = 50_000  # above this many customers the final fit runs on a fixed random sample of this size
_LOG_BOUND = 9.0  # a parameter outside [0.00012, 8,100]: the maximum lies at an edge (nobody drops out, or no
# heterogeneity), where the likelihood is flat and no estimate is defensible; reported as no convergence


# ---------------------------------------------------------------- results


@dataclass(frozen=True)
class BGNBD:
    """Fitted BG/NBD parameters and the maximised log-likelihood."""

    r: float
    alpha: float
    a: float
    b: float
    loglik: float

    def as_json(self) -> dict:
        return {"r": self.r, "alpha": self.alpha, "a": self.a, "b": self.b, "loglik": self.loglik}


@dataclass(frozen=True)
class GammaGamma:
    """Fitted Gamma-Gamma spend parameters over ``n`` customers with x >= 1."""

    p: float
    q: float
    gamma: float
    loglik: float
    n: int

    @property
    def mean_spend(self) -> float:
        """Population mean spend per transaction day, ``p * gamma / (q - 1)``."""
        return self.p * self.gamma / (self.q - 1)

    def as_json(self) -> dict:
        return {"p": self.p, "q": self.q, "gamma": self.gamma, "loglik": self.loglik, "n": self.n}


@dataclass(frozen=True)
class Backtest:
    """Model fitted on data up to ``cutoff``, predicted against actual repeat days in (cutoff, as_of]."""

    cutoff: date
    weeks: int
    predicted: float
    actual: int
    n_customers: int
    deciles: tuple  # ({decile, customers, predicted, actual}, ...), decile 1 = lowest prediction

    def as_json(self) -> dict:
        return {
            "predicted": self.predicted,
            "actual": self.actual,
            "weeks": self.weeks,
            "deciles": [
                {"decile": d["decile"], "predicted": d["predicted"], "actual": d["actual"]} for d in self.deciles
            ],
        }

    def sentence(self) -> str:
        """ "over the last 26 weeks the model expected 1,650 repeat purchase days; there were 1,880"."""
        return (
            f"over the last {self.weeks} weeks the model expected {self.predicted:,.0f} repeat purchase days; "
            f"there were {self.actual:,}"
        )


@dataclass(frozen=True)
class CustomerValue:
    """Customer value as of ``as_of``. When the model could not be fitted, ``bgnbd`` is None,
    ``reason`` says why and ``customers`` holds no p_alive/expected figures.

    ``customers``: one row per customer with a counted order (customer_id, x, t_x, T, m,
    p_alive, expected_orders, expected_spend, expected_value).
    """

    as_of: date | None
    horizon_weeks: int
    n_customers: int
    bgnbd: BGNBD | None
    gamma_gamma: GammaGamma | None
    backtest: Backtest | None
    reason: str | None
    customers: pd.DataFrame = field(repr=False)
    backtest_reason: str | None = None

    def as_json(self) -> dict | None:
        """DESIGN.md ``clv{bgnbd{...}, gamma_gamma{...}, horizon_weeks, n_customers, backtest{...}}`` or None."""
        if self.bgnbd is None or self.gamma_gamma is None:
            return None
        return {
            "bgnbd": self.bgnbd.as_json(),
            "gamma_gamma": self.gamma_gamma.as_json(),
            "horizon_weeks": self.horizon_weeks,
            "n_customers": self.n_customers,
            "backtest": None if self.backtest is None else self.backtest.as_json(),
        }


# ---------------------------------------------------------------- BG/NBD


def bgnbd_loglik(r: float, alpha: float, a: float, b: float, x, t_x, T) -> np.ndarray:
    """Per-customer BG/NBD log-likelihood (Fader, Hardie and Lee 2005, eq. 6; see the module docstring).

    >>> round(float(bgnbd_loglik(0.243, 4.414, 0.793, 2.426, [0], [0.0], [38.86])[0]), 4)
    -0.5547
    """
    x, t_x, T = (np.asarray(v, dtype=float) for v in (x, t_x, T))
    common = gammaln(r + x) - gammaln(r) + r * np.log(alpha) + betaln(a, b + x) - betaln(a, b)
    a1 = -(r + x) * np.log(alpha + T)
    with np.errstate(divide="ignore", invalid="ignore"):
        a2 = np.log(a) - np.log(np.maximum(b + x - 1, 1e-300)) - (r + x) * np.log(alpha + t_x)
    return common + np.where(x > 0, np.logaddexp(a1, a2), a1)


def _distinct(v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """np.unique(v, return_inverse=True) for whole numbers: by counting when their range is small
    (day counts and repeat days: a few thousand values, O(n) instead of a sort), else np.unique."""
    if len(v) == 0:
        return v[:0], np.zeros(0, dtype=np.int64)
    lo, hi = int(v.min()), int(v.max())
    if lo < 0 or hi > 4 * len(v) + 100_000:
        return np.unique(v, return_inverse=True)
    seen = np.bincount(v, minlength=hi + 1) > 0
    values = np.flatnonzero(seen)
    code = np.cumsum(seen) - 1
    return values.astype(v.dtype), code[v]


class _BGNBDData:
    """The summary arranged for fast evaluation: x-only terms on the distinct x, log(alpha + T) and
    log(alpha + t_x) on the distinct day counts, and customers with x = 0 pooled by T."""

    def __init__(self, x, t_x_days, T_days):
        x = np.asarray(x, dtype=np.int64)
        t_x_days = np.asarray(t_x_days, dtype=np.int64)
        T_days = np.asarray(T_days, dtype=np.int64)
        self.n = len(x)
        self.ux, xi = _distinct(x)
        self.ux_count = np.bincount(xi, minlength=len(self.ux)).astype(float)
        rep = x > 0
        z_T, z_inv = _distinct(T_days[~rep])  # one-day customers, pooled by T
        self.zero_T = z_T / 7.0
        self.zero_cnt = np.bincount(z_inv, minlength=len(z_T)).astype(float)
        days, inv = _distinct(np.concatenate([T_days[rep], t_x_days[rep]]))
        self.days = days / 7.0
        k = int(rep.sum())
        self.iT, self.itx = inv[:k], inv[k:]
        self.x = x[rep].astype(float)
        self.ixr = xi[rep]

    def nll(self, theta: np.ndarray) -> tuple[float, np.ndarray]:
        """Negative log-likelihood per customer and its gradient in log-parameters."""
        if np.any(np.abs(theta) > 50):
            return np.inf, np.zeros(4)
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            return self._nll(theta)

    def _nll(self, theta: np.ndarray) -> tuple[float, np.ndarray]:
        r, alpha, a, b = np.exp(theta)
        ux = self.ux.astype(float)
        cnt = self.ux_count
        # terms of x alone, summed with the number of customers at each x
        ll = float(cnt @ (gammaln(r + ux) + betaln(a, b + ux))) + self.n * (
            -gammaln(r) + r * math.log(alpha) - betaln(a, b)
        )
        psi_rx, psi_bx, psi_abx = digamma(r + ux), digamma(b + ux), digamma(a + b + ux)
        g_r = float(cnt @ psi_rx) + self.n * (-digamma(r) + math.log(alpha))
        g_alpha = self.n * r / alpha
        psi_ab = digamma(a + b)
        g_a = float(cnt @ (psi_ab - psi_abx))  # d/da [betaln(a, b+x) - betaln(a, b)]
        g_b = float(cnt @ (psi_bx - psi_abx)) - self.n * (digamma(b) - psi_ab)
        # one-day customers: -r log(alpha + T)
        lz = np.log(alpha + self.zero_T)
        ll -= r * float(self.zero_cnt @ lz)
        g_r -= float(self.zero_cnt @ lz)
        g_alpha -= r * float(self.zero_cnt @ (1.0 / (alpha + self.zero_T)))
        if len(self.x):
            ld = np.log(alpha + self.days)
            inv_d = 1.0 / (alpha + self.days)
            lT, ltx = ld[self.iT], ld[self.itx]
            rx = r + self.x
            lbx1 = np.log(b + self.ux - 1.0, where=self.ux > 0, out=np.zeros(len(self.ux)))
            a1 = -rx * lT
            a2 = math.log(a) - lbx1[self.ixr] - rx * ltx
            ll += float(np.logaddexp(a1, a2).sum())
            s = expit(a2 - a1)  # weight of the "dropped out after t_x" term
            w1 = 1.0 - s
            g_r += float(-(w1 @ lT) - (s @ ltx))
            g_alpha += float(-(w1 @ (rx * inv_d[self.iT])) - (s @ (rx * inv_d[self.itx])))
            g_a += float(s.sum()) / a
            inv_bx1 = np.divide(1.0, b + self.ux - 1.0, where=self.ux > 0, out=np.zeros(len(self.ux)))
            g_b -= float(s @ inv_bx1[self.ixr])
        grad = np.array([g_r * r, g_alpha * alpha, g_a * a, g_b * b])
        if not np.isfinite(ll) or not np.all(np.isfinite(grad)):
            return np.inf, np.zeros(4)
        return -ll / self.n, -grad / self.n


def _starts(mean_x: float, mean_T: float) -> list[np.ndarray]:
    rate = max(mean_x, 0.05) / max(mean_T, 1.0)
    return [
        np.log([1.0, 1.0 / rate, 1.0, 1.0]),
        np.log([0.5, 5.0, 0.8, 2.5]),
        np.log([2.0, 20.0, 0.3, 1.0]),
        np.log([0.2, 1.0, 3.0, 10.0]),
    ]


def _bfgs_starts(nll, starts) -> optimize.OptimizeResult | None:
    """The best interior optimum of ``nll`` over ``starts``, stopping early: at the first start whose
    BFGS converges inside the bounds (gradient below 1e-6), or when two starts have run off to an
    edge with no interior optimum seen (the maximum lies at a boundary: no convergence, None).
    Nelder-Mead from the same start only where BFGS fails numerically (a non-finite value)."""
    best, edges = None, 0
    for th0 in starts:
        res = optimize.minimize(nll, th0, jac=True, method="BFGS", options={"gtol": 1e-6, "maxiter": 200})
        if not np.isfinite(res.fun):
            res = optimize.minimize(
                lambda th: nll(th)[0],
                th0,
                method="Nelder-Mead",
                options={"xatol": 1e-4, "fatol": 1e-9, "maxiter": 300},
            )
        if not np.isfinite(res.fun):
            continue
        if np.max(np.abs(res.x)) > _LOG_BOUND:
            edges += 1
            if edges >= 2 and best is None:
                return None  # two starts ran to 0 or infinity: the others would too (a flat edge)
            continue
        if best is None or res.fun < best.fun:
            best = res
        if np.max(np.abs(nll(res.x)[1])) < 1e-6:
            break  # converged inside the bounds from this start
    return best


def _hess_inv(res) -> np.ndarray | None:
    """BFGS's inverse-Hessian estimate of a result, to start the next stage with (None otherwise)."""
    h = getattr(res, "hess_inv", None)
    if isinstance(h, np.ndarray) and np.all(np.isfinite(h)) and np.all(np.linalg.eigvalsh((h + h.T) / 2) > 0):
        return (h + h.T) / 2
    return None


def fit_bgnbd(x, t_x, T, *, days: bool = False, start: BGNBD | None = None, loglik: bool = True) -> BGNBD | None:
    """Maximum-likelihood r, alpha, a, b of the BG/NBD model (eq. 6 of the paper).

    ``x`` repeat transaction days; ``t_x``, ``T`` in weeks (or in whole days with ``days=True``,
    the form the database gives, so that equal day counts are evaluated once). Optimised over log
    parameters with the analytic gradient (see :class:`_BGNBDData`) in two stages:

    1. the basin, on a fixed random subsample of at most 5,000 customers: BFGS from ``start`` (when
       given: the backtest refit starts from the main fit's estimate) and then from up to four
       fixed starts (the first from the mean purchase rate: r = 1, alpha = mean T / mean x), taken
       in turn until one converges inside the bounds (Nelder-Mead where BFGS fails numerically);
       two starts running off to an edge end the search (no convergence);
    2. BFGS on every customer from there, starting with the first stage's inverse-Hessian estimate
       (a few steps instead of rebuilding the curvature from scratch); above 50,000 customers on a fixed random sample of 50,000
       (the advocates command must stay fast at 500k customers; at 50,000 the parameters'
       standard errors are a fraction of a percent) and ``loglik`` is still that of every customer
       (NaN with ``loglik=False``: the backtest's refit reports none, so skips that evaluation).

    Returns None when the fit does not converge (gradient not near zero, or a parameter running
    off to 0 or infinity, as b does on data where nobody ever stops buying).

    Example: 4,000 customers simulated from the model (r 0.5, alpha 8, a 0.8, b 3), then a base
    where nobody ever stops buying::

    >>> rng = np.random.default_rng(7)
    >>> T = rng.integers(100, 700, 4000)  # days since the first purchase
    >>> N = rng.poisson(rng.gamma(0.5, 1 / 8, 4000) * T / 7)  # purchases at a weekly rate, if alive
    >>> x = np.minimum(N, rng.geometric(rng.beta(0.8, 3, 4000)))  # out after each with probability p
    >>> t_x = np.where(x > 0, T * rng.beta(np.maximum(x, 1), np.maximum(N - x + 1, 1)), 0).astype(int)
    >>> m = fit_bgnbd(x, t_x, T, days=True)
    >>> [round(v, 2) for v in (m.r, m.alpha, m.a, m.b)]
    [0.5, 7.69, 0.95, 3.38]
    >>> fit_bgnbd(rng.poisson(20, 500), np.full(500, 360), np.full(500, 364), days=True) is None
    True
    """
    x = np.asarray(x)
    if days:
        t_days, T_days = np.asarray(t_x, dtype=np.int64), np.asarray(T, dtype=np.int64)
    else:
        t_days = np.rint(np.asarray(t_x, float) * 7).astype(np.int64)
        T_days = np.rint(np.asarray(T, float) * 7).astype(np.int64)
        if not (np.allclose(t_days / 7, t_x) and np.allclose(T_days / 7, T)):
            return _fit_weeks(x, np.asarray(t_x, float), np.asarray(T, float))
    n = len(x)
    if n == 0:
        return None
    if n > _SUBSAMPLE:
        idx = np.random.default_rng(20050101).choice(n, _SUBSAMPLE, replace=False)
        sub = _BGNBDData(x[idx], t_days[idx], T_days[idx])
    else:
        sub = _BGNBDData(x, t_days, T_days)
    starts = _starts(float(np.mean(x)), float(np.mean(T_days)) / 7)
    if start is not None:
        starts = [np.log([start.r, start.alpha, start.a, start.b])] + starts
    best = _bfgs_starts(sub.nll, starts)
    if best is None:
        return None
    theta = best.x
    final = sub
    if n > _SUBSAMPLE:
        if n > FIT_SAMPLE:
            idx = np.random.default_rng(20050102).choice(n, FIT_SAMPLE, replace=False)
            final = _BGNBDData(x[idx], t_days[idx], T_days[idx])
        else:
            final = _BGNBDData(x, t_days, T_days)
        theta = optimize.minimize(
            final.nll,
            theta,
            jac=True,
            method="BFGS",  # from the basin, with its curvature (both are mean log-likelihoods): a few steps
            options={"gtol": 1e-6, "maxiter": 30, "hess_inv0": _hess_inv(best)},
        ).x
    f, g = final.nll(theta)
    if not np.isfinite(f) or np.max(np.abs(g)) > 1e-4 or np.max(np.abs(theta)) > _LOG_BOUND:
        return None
    if final.n != n:  # the log-likelihood of every customer at the estimate
        f = _BGNBDData(x, t_days, T_days).nll(theta)[0] if loglik else float("nan")
    r, alpha, a, b = (float(v) for v in np.exp(theta))
    return BGNBD(r, alpha, a, b, float(-f * n))


def _fit_weeks(x, t_x, T) -> BGNBD | None:
    """The same estimator for summaries whose times are not whole days (plain evaluation)."""

    def nll(th):
        if np.any(np.abs(th) > 50):
            return np.inf
        v = -bgnbd_loglik(*np.exp(th), x, t_x, T).sum()
        return v if np.isfinite(v) else np.inf

    best = None
    for th0 in _starts(float(np.mean(x)), float(np.mean(T))):
        res = optimize.minimize(nll, th0, method="Nelder-Mead", options={"xatol": 1e-6, "fatol": 1e-9, "maxiter": 4000})
        if best is None or res.fun < best.fun:
            best = res
    assert best is not None  # _starts gives four starting points
    res = optimize.minimize(nll, best.x, method="BFGS")
    th = res.x if res.fun <= best.fun else best.x
    if not np.isfinite(nll(th)) or np.max(np.abs(th)) > _LOG_BOUND:
        return None
    r, alpha, a, b = (float(v) for v in np.exp(th))
    return BGNBD(r, alpha, a, b, float(-nll(th)))


def _log_odds_dead(m: BGNBD, x, t_x, T) -> np.ndarray:
    """log of [x > 0] a/(b+x-1) ((alpha+T)/(alpha+t_x))^(r+x); -inf when x = 0."""
    x = np.asarray(x, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        v = (
            math.log(m.a)
            - np.log(np.where(x > 0, m.b + x - 1, 1.0))
            + (m.r + x) * (np.log(m.alpha + np.asarray(T, float)) - np.log(m.alpha + np.asarray(t_x, float)))
        )
    return np.where(x > 0, v, -np.inf)


def p_alive(m: BGNBD, x, t_x, T) -> np.ndarray:
    """P(alive | x, t_x, T) = 1 / (1 + [x > 0] a/(b+x-1) ((alpha+T)/(alpha+t_x))^(r+x)).

    1.0 for every customer with x = 0 (the model cannot tell a one-day buyer has gone).

    >>> m = BGNBD(0.243, 4.414, 0.793, 2.426, float("nan"))
    >>> [round(float(v), 3) for v in p_alive(m, [0, 2, 2], [0, 30.43, 5], [38.86, 38.86, 38.86])]
    [1.0, 0.727, 0.124]
    """
    return expit(-_log_odds_dead(m, x, t_x, T))


def _hyp2f1(A: float, B: float, c: np.ndarray, z: np.ndarray) -> np.ndarray:
    """scipy's 2F1, with the plain series where scipy returns inf or nan (it does for some z > 0.9
    with large c, e.g. 2F1(-1.5, -0.5; 99; 0.95)); the series converges for |z| < 1."""
    c, z = np.broadcast_arrays(np.asarray(c, dtype=float), np.asarray(z, dtype=float))
    out = np.array(hyp2f1(A, B, c, z), dtype=float)
    bad = ~np.isfinite(out)
    if bad.any():
        cb, zb = c[bad], z[bad]
        term = np.ones(len(cb))
        total = np.ones(len(cb))
        for k in range(200_000):
            term = term * (A + k) * (B + k) / ((cb + k) * (k + 1)) * zb
            total += term
            if np.all(np.abs(term) <= 1e-16 * np.abs(total)):
                break
        out[bad] = total
    return out


def _alive_factor(m: BGNBD, x: np.ndarray, z: np.ndarray) -> np.ndarray:
    """(a+b+x-1)/(a-1) * [1 - (1-z)^(a-1) 2F1(a+b-1-r, a-1; a+b+x-1; z)]: expected transaction days
    of a customer alive now (before the P(alive) factor). Where c = a+b+x-1 is 0 (x = 0 and
    a + b = 1) the limit c 2F1(A, B; c; z) -> A B z 2F1(A+1, B+1; 2; z) is used."""
    c = m.a + m.b + x - 1
    am1 = m.a - 1
    if abs(am1) < 1e-6:  # the removable singularity at a = 1
        am1 = 1e-6 if am1 >= 0 else -1e-6
    A = m.a + m.b - 1 - m.r
    w = (1.0 - z) ** am1
    near0 = np.abs(c) < 1e-9
    cs = np.where(near0, 1.0, c)
    out = cs / am1 * (1.0 - w * _hyp2f1(A, am1, cs, z))
    if near0.any():
        out = np.where(near0, -w * A * z * _hyp2f1(A + 1, m.a, np.full_like(z, 2.0), z), out)
    return out


def expected_orders(m: BGNBD, t, x, t_x, T) -> np.ndarray:
    """Expected transaction days in the next ``t`` weeks given (x, t_x, T) (paper, eq. 10).

    Computed as ``(a+b+x-1)/(a-1) * [1 - (1-z)^(a-1) 2F1(a+b-1-r, a-1; a+b+x-1; z)] * P(alive)``
    with ``z = t/(alpha+T+t)`` (Euler's transformation of the paper's 2F1 term, whose series stays
    tame for large x).
    """
    x = np.asarray(x, dtype=float)
    T = np.asarray(T, dtype=float)
    t = np.asarray(t, dtype=float)
    z = t / (m.alpha + T + t)
    return np.maximum(_alive_factor(m, x, z) * p_alive(m, x, t_x, T), 0.0)


def _expected_orders_pooled(m: BGNBD, t: float, x, t_x, T_days, p_al) -> np.ndarray:
    """expected_orders with the hypergeometric term evaluated once per distinct (x, T in days)."""
    x = np.asarray(x, dtype=np.int64)
    T_days = np.asarray(T_days, dtype=np.int64)
    key = x * 1_000_003 + T_days
    inv, uk = pd.factorize(key)  # a hash, not a sort: the same distinct pairs as np.unique, in another order
    ux = (uk // 1_000_003).astype(float)
    uT = (uk % 1_000_003) / 7.0
    z = t / (m.alpha + uT + t)
    return np.maximum(_alive_factor(m, ux, z)[inv] * p_al, 0.0)


# ---------------------------------------------------------------- Gamma-Gamma


def gamma_gamma_loglik(p: float, q: float, gamma: float, x, m) -> np.ndarray:
    """Per-customer Gamma-Gamma log-density of the mean spend m of x >= 1 repeat transactions.

    >>> round(float(gamma_gamma_loglik(6.25, 3.74, 15.44, [2], [30.0])[0]), 4)
    -3.847
    """
    x = np.asarray(x, dtype=float)
    m = np.asarray(m, dtype=float)
    px = p * x
    return (
        gammaln(px + q)
        - gammaln(px)
        - gammaln(q)
        + q * np.log(gamma)
        + (px - 1) * np.log(m)
        + px * np.log(x)
        - (px + q) * np.log(gamma + m * x)
    )


def _gg_nll(x: np.ndarray, m: np.ndarray):
    """Mean negative Gamma-Gamma log-likelihood of (x, m) and its gradient in log parameters."""
    n = len(x)
    lm, lx = np.log(m), np.log(x)
    ux, xi = np.unique(x, return_inverse=True)

    def nll(th):
        if np.any(np.abs(th) > 50):
            return np.inf, np.zeros(3)
        p, q, g = np.exp(th)
        px = p * ux
        lg = np.log(g + m * x)
        pxi = px[xi]
        ll = (
            float(np.bincount(xi, minlength=len(ux)) @ (gammaln(px + q) - gammaln(px)))
            - n * gammaln(q)
            + n * q * math.log(g)
            + float((pxi - 1) @ lm)
            + float(pxi @ lx)
            - float((pxi + q) @ lg)
        )
        cnt = np.bincount(xi, minlength=len(ux))
        dp = float(cnt @ (ux * (digamma(px + q) - digamma(px)))) + float(x @ lm) + float(x @ lx) - float(x @ lg)
        dq = float(cnt @ digamma(px + q)) - n * digamma(q) + n * math.log(g) - float(lg.sum())
        dg = n * q / g - float((pxi + q) @ (1.0 / (g + m * x)))
        grad = np.array([dp * p, dq * q, dg * g])
        if not np.isfinite(ll) or not np.all(np.isfinite(grad)):
            return np.inf, np.zeros(3)
        return -ll / n, -grad / n

    return nll


def fit_gamma_gamma(x, m) -> GammaGamma | None:
    """Maximum-likelihood p, q, gamma over customers with x >= 1 and m > 0 (log parameters,
    BFGS with the analytic gradient from up to three starts, Nelder-Mead where BFGS fails; above
    50,000 customers on a fixed random sample of 50,000, loglik over all). None without convergence or when q <= 1 (the mean
    spend p*gamma/(q-1) would not exist)."""
    x = np.asarray(x, dtype=float)
    m = np.asarray(m, dtype=float)
    keep = (x >= 1) & np.isfinite(m) & (m > 0)
    x, m = x[keep], m[keep]
    n_all = len(x)
    if n_all == 0:
        return None
    x_all, m_all = x, m
    idx = np.random.default_rng(20050103).permutation(n_all)  # random order: the starts use the first 5,000
    x, m = x[idx], m[idx]
    if n_all > FIT_SAMPLE:  # a fixed random sample: standard errors stay far below 1% (see fit_bgnbd)
        x, m = x[:FIT_SAMPLE], m[:FIT_SAMPLE]
    n = len(x)
    nll = _gg_nll(x, m)
    start_nll = _gg_nll(x[:_SUBSAMPLE], m[:_SUBSAMPLE]) if n > _SUBSAMPLE else nll  # x, m are in random order
    mean_m = float(np.mean(m))
    best = None
    for th0 in (np.log([1.0, 2.0, mean_m]), np.log([5.0, 4.0, mean_m * 2]), np.log([0.5, 10.0, mean_m * 5])):
        res = optimize.minimize(start_nll, th0, jac=True, method="BFGS", options={"gtol": 1e-6, "maxiter": 300})
        if not np.isfinite(res.fun) or np.max(np.abs(res.x)) > _LOG_BOUND:
            res = optimize.minimize(
                lambda th: start_nll(th)[0],
                th0,
                method="Nelder-Mead",
                options={"xatol": 1e-5, "fatol": 1e-10, "maxiter": 1500},
            )
        if np.isfinite(res.fun) and np.max(np.abs(res.x)) <= _LOG_BOUND and (best is None or res.fun < best.fun):
            best = res
        if best is not None and np.max(np.abs(start_nll(best.x)[1])) < 1e-5:
            break  # converged from this start: the log-likelihood is well behaved
    if best is None:
        return None
    th = best.x
    if start_nll is not nll:  # from the basin, with its curvature
        th = optimize.minimize(
            nll, th, jac=True, method="BFGS", options={"gtol": 1e-6, "maxiter": 300, "hess_inv0": _hess_inv(best)}
        ).x
    f, g = nll(th)
    if not np.isfinite(f) or np.max(np.abs(g)) > 1e-4 or np.max(np.abs(th)) > _LOG_BOUND:
        return None
    p, q, gam = (float(v) for v in np.exp(th))
    if q <= 1:
        return None
    ll = float(-f * n) if n == n_all else float(gamma_gamma_loglik(p, q, gam, x_all, m_all).sum())
    return GammaGamma(p, q, gam, ll, n_all)


def expected_spend(gg: GammaGamma, x, m) -> np.ndarray:
    """E[mean spend | x, m] = p (gamma + m x) / (p x + q - 1); p gamma / (q - 1) when x = 0.

    >>> gg = GammaGamma(6.25, 3.74, 15.44, float("nan"), 0)
    >>> [round(float(v), 2) for v in expected_spend(gg, [0, 2], [float("nan"), 30.0])]
    [35.22, 30.94]
    """
    x = np.asarray(x, dtype=float)
    m = np.nan_to_num(np.asarray(m, dtype=float), nan=0.0)
    return np.where(x > 0, gg.p * (gg.gamma + m * x) / (gg.p * x + gg.q - 1), gg.mean_spend)


# ---------------------------------------------------------------- summary from the database

# Transaction days from an orders source (columns customer_id, d, net; advocates' one definition of
# an order up to $as_of): the shape of store.day_totals (orders = counted orders, counted_net their net).
DAYS_FROM_ORDERS_SQL = """
    SELECT customer_id, d, count(*) FILTER (WHERE net > 0) AS orders,
           coalesce(sum(net) FILTER (WHERE net > 0), 0) AS counted_net, sum(net) AS net
    FROM (__ORDERS__) GROUP BY customer_id, d
"""

# The value model's per-customer columns over a days source ``dy`` (one row per customer and day:
# orders, counted_net), as aggregate expressions: advocates computes them in its own per-customer
# pass (one pass over the days for both), summary() on its own. Day spend is summed as DECIMAL.
SUMMARY_COLUMNS_SQL = """
       CAST(count(*) FILTER (WHERE orders > 0) - 1 AS BIGINT) AS x,
       date_diff('day', min(d) FILTER (WHERE orders > 0), max(d) FILTER (WHERE orders > 0)) AS t_x_days,
       date_diff('day', min(d) FILTER (WHERE orders > 0), CAST($as_of AS DATE)) AS T_days,
       CAST(sum(counted_net) - arg_min(counted_net, d) FILTER (WHERE orders > 0) AS DOUBLE)
           / nullif(count(*) FILTER (WHERE orders > 0) - 1, 0) AS m,
       -- the backtest's calibration up to $cutoff and its actual repeat days after, from the same pass
       count(*) FILTER (WHERE orders > 0 AND d <= CAST($cutoff AS DATE)) AS cal_days,
       date_diff('day', min(d) FILTER (WHERE orders > 0),
                 max(d) FILTER (WHERE orders > 0 AND d <= CAST($cutoff AS DATE))) AS cal_t_x_days,
       date_diff('day', min(d) FILTER (WHERE orders > 0), CAST($cutoff AS DATE)) AS cal_T_days,
       count(*) FILTER (WHERE orders > 0 AND d > CAST($cutoff AS DATE)) AS actual"""
SUMMARY_FIELDS = ("customer_id", "x", "t_x_days", "T_days", "m", "cal_days", "cal_t_x_days", "cal_T_days", "actual")

_SUMMARY_SQL = (
    "WITH dy AS (__DAYS__) SELECT customer_id,"
    + SUMMARY_COLUMNS_SQL
    + """
FROM dy GROUP BY customer_id HAVING count(*) FILTER (WHERE orders > 0) > 0
"""
)


def summary(
    con,
    as_of: date,
    orders_sql: Callable[[object, date], str] | None = None,
    *,
    viewer: Viewer,
    cutoff: date | None = None,
    days_sql: Callable[[object, date], str] | None = None,
) -> pd.DataFrame:
    """Per-customer x, t_x_days, T_days, m (NaN for x = 0) computed in DuckDB from the counted
    orders up to as_of: ``days_sql(con, as_of)`` gives per (customer, day) totals (advocates'
    ``_days_sql``, store.day_totals when fresh), else ``orders_sql(con, as_of)`` gives the orders.

    In the same pass, for the backtest: cal_days, cal_t_x_days, cal_T_days (the summary as it was at
    ``cutoff``; cal_days 0 for customers whose first counted day is later) and actual (transaction
    days in (cutoff, as_of]). An order counts in both by its net as known at as_of (a return booked
    after the cutoff against an earlier order is known to the backtest's refit: one pass over the
    orders instead of three keeps the model within its time budget at 500k customers).
    """
    viewer.require(*VALUE_ROLES)
    if days_sql is not None:
        days = days_sql(con, as_of)
    elif orders_sql is not None:
        days = DAYS_FROM_ORDERS_SQL.replace("__ORDERS__", orders_sql(con, as_of))
    else:
        raise TypeError("summary() needs days_sql or orders_sql")
    sql = _SUMMARY_SQL.replace("__DAYS__", days)
    return con.execute(sql, {"as_of": as_of, "cutoff": cutoff or as_of}).df()


def backtest_window(con, as_of: date, horizon_weeks: int, *, t=None) -> tuple[date, int, int]:
    """(cutoff, weeks, history_days): the backtest holds out the last ``weeks`` = horizon_weeks, or
    half the history (first order date up to as_of) when that is shorter. ``t``: the engine tables
    whose purchases to read (default the DuckDB file of ``con``)."""
    if t is not None:
        from .customer_aggregates import scalar

        p = t.table("purchases")
        first = scalar(t, p.filter(p.order_date <= as_of).order_date.min())
    else:
        first = con.execute("SELECT min(order_date) FROM purchases WHERE order_date <= ?", [as_of]).fetchall()[0][0]
    history_days = (as_of - first).days if first is not None else 0
    weeks = min(int(horizon_weeks), history_days // 14)
    return as_of - timedelta(days=7 * weeks), weeks, history_days


def summary_from_rows(rows: pd.DataFrame | None) -> pd.DataFrame:
    """The summary (SUMMARY_FIELDS) from the engine's per-customer rows
    (:func:`cxstats.customer_aggregates.value_inputs`: whole days counted on the engine):
    ``m = repeat_net / x`` for customers with repeat days, NaN otherwise."""
    if rows is None or not len(rows):
        return pd.DataFrame({c: pd.Series(dtype=object if c == "customer_id" else "float64") for c in SUMMARY_FIELDS})
    x = rows["x"].to_numpy(dtype=np.int64)
    with np.errstate(invalid="ignore", divide="ignore"):
        m = np.where(x > 0, rows["repeat_net"].to_numpy(dtype=float) / np.where(x > 0, x, 1), np.nan)
    return pd.DataFrame(
        {
            "customer_id": rows["customer_id"].array,  # as it came (no copy through numpy objects)
            "x": x,
            "t_x_days": rows["t_x_days"].to_numpy(dtype=np.int64),
            "T_days": rows["T_days"].to_numpy(dtype=np.int64),
            "m": m,
            "cal_days": rows["cal_days"].to_numpy(dtype=np.int64),
            "cal_t_x_days": rows["cal_t_x_days"].to_numpy(dtype=float),  # NaN: no day up to the cutoff
            "cal_T_days": rows["cal_T_days"].to_numpy(dtype=np.int64),
            "actual": rows["actual"].to_numpy(dtype=np.int64),
        },
        copy=False,  # the engine's columns as they came: no second 500k-row copy
    )


def _model_on(df: pd.DataFrame, horizon_weeks: float) -> tuple[BGNBD | None, GammaGamma | None, str | None]:
    x = df["x"].to_numpy(dtype=np.int64)
    repeaters = int((x >= 1).sum())
    if repeaters < MIN_REPEATERS:
        return (
            None,
            None,
            (f"only {repeaters} customers bought on more than one day (the model needs at least {MIN_REPEATERS})"),
        )
    bg = fit_bgnbd(x, df["t_x_days"].to_numpy(), df["T_days"].to_numpy(), days=True)
    if bg is None:
        return None, None, "the repeat-buying model (BG/NBD) did not converge on these customers"
    gg = fit_gamma_gamma(x, df["m"].to_numpy(dtype=float))
    if gg is None:
        return bg, None, "the spend model (Gamma-Gamma) did not converge on these customers"
    return bg, gg, None


def _predict(bg: BGNBD, df: pd.DataFrame, weeks: float) -> tuple[np.ndarray, np.ndarray]:
    x = df["x"].to_numpy(dtype=np.int64)
    t_x = df["t_x_days"].to_numpy(dtype=float) / 7
    T = df["T_days"].to_numpy(dtype=float) / 7
    pa = p_alive(bg, x, t_x, T)
    return pa, _expected_orders_pooled(bg, weeks, x, t_x, df["T_days"].to_numpy(), pa)


def _empty(as_of, horizon_weeks, n, reason, customers=None) -> CustomerValue:
    if customers is None:
        customers = pd.DataFrame({"customer_id": pd.Series(dtype=object)})
    return CustomerValue(as_of, horizon_weeks, n, None, None, None, reason, customers)


def customer_value(
    con,
    *,
    viewer: Viewer,
    as_of: date | None,
    orders_sql: Callable[[object, date], str] | None = None,
    horizon_weeks: int = HORIZON_WEEKS,
    backtest: bool = True,
    days_sql: Callable[[object, date], str] | None = None,
    summary_frame: pd.DataFrame | None = None,
    window: tuple | None = None,
    engine=None,
) -> CustomerValue:
    """BG/NBD + Gamma-Gamma as of ``as_of``, with a backtest on the same data.

    Backtest: the model is refitted on the counted orders up to ``cutoff = as_of - weeks`` (weeks =
    horizon_weeks, or half the history when that is shorter) and its expected transaction days in
    (cutoff, as_of] are compared with the actual ones, in total and by decile of prediction (decile
    1 = the tenth of customers with the lowest prediction). Fewer than 50 customers with x >= 1, or
    no convergence: every figure None and ``reason`` says why.

    ``summary_frame``: the per-customer summary (SUMMARY_FIELDS, for ``backtest_window``'s cutoff)
    when the caller computed it already (advocates does, in its own per-customer pass); else it is
    computed here from ``days_sql`` or ``orders_sql`` (see :func:`summary`).
    """
    viewer.require(*VALUE_ROLES)
    horizon_weeks = int(horizon_weeks)
    if as_of is None:
        return _empty(None, horizon_weeks, 0, "no purchases yet")
    if summary_frame is not None or days_sql is not None or orders_sql is not None:
        cutoff, weeks, history_days = window or backtest_window(con, as_of, horizon_weeks)
        df = (
            summary_frame
            if summary_frame is not None
            else summary(con, as_of, orders_sql, viewer=viewer, cutoff=cutoff, days_sql=days_sql)
        )
    else:  # on the engine: the per-customer pass of cxstats.customer_aggregates
        from . import customer_aggregates as ca

        with ca.engine_tables(con, viewer=viewer, engine=engine) as t:
            cutoff, weeks, history_days = window or backtest_window(con, as_of, horizon_weeks, t=t)
            rows = ca.value_rows(t, ca.customer_orders(ca.engine_order_days(t, as_of), as_of, cutoff), as_of, cutoff)
        df = summary_from_rows(rows)
    # One BLAS thread: the fits' dot products over 50,000 customers are too short to share, and
    # OpenBLAS's extra threads spin waiting for work (half the model's CPU time on 2 cores).
    with threadpool_limits(limits=1, user_api="blas"):
        return _customer_value(df, as_of, horizon_weeks, backtest, cutoff, weeks, history_days)


def _customer_value(
    df: pd.DataFrame, as_of: date, horizon_weeks: int, backtest: bool, cutoff: date, weeks: int, history_days: int
) -> CustomerValue:
    n = len(df)
    bg, gg, reason = _model_on(df, horizon_weeks)
    if reason is not None or bg is None or gg is None:
        return _empty(as_of, horizon_weeks, n, reason, df)
    pa, eo = _predict(bg, df, horizon_weeks)
    x = df["x"].to_numpy(dtype=np.int64)
    es = expected_spend(gg, x, df["m"].to_numpy(dtype=float))
    df = df.assign(p_alive=pa, expected_orders=eo, expected_spend=es, expected_value=eo * es)
    bt: Backtest | None = None
    bt_reason: str | None = "not asked for"
    if backtest:
        bt, bt_reason = _backtest(df, cutoff, weeks, history_days, start=bg)
    return CustomerValue(as_of, horizon_weeks, n, bg, gg, bt, None, df, bt_reason)


def _backtest(
    df: pd.DataFrame, cutoff: date, weeks: int, history_days: int, start: BGNBD | None = None
) -> tuple[Backtest | None, str | None]:
    if weeks < MIN_BACKTEST_WEEKS:
        return None, f"the data cover {history_days} days: too short to hold out {MIN_BACKTEST_WEEKS} weeks and refit"
    cal = df[df["cal_days"] > 0]
    cal = pd.DataFrame(
        {
            "customer_id": cal["customer_id"].array,  # as it came (Arrow strings sort faster than numpy objects)
            "x": cal["cal_days"].to_numpy() - 1,
            "t_x_days": cal["cal_t_x_days"].to_numpy(),
            "T_days": cal["cal_T_days"].to_numpy(),
            "actual": cal["actual"].to_numpy(),
        }
    )
    bg = None
    x = cal["x"].to_numpy(dtype=np.int64)
    if int((x >= 1).sum()) >= MIN_REPEATERS:
        # from the main fit's estimate: the calibration data are most of the same days
        bg = fit_bgnbd(x, cal["t_x_days"].to_numpy(), cal["T_days"].to_numpy(), days=True, start=start, loglik=False)
    if bg is None:
        return None, f"the model could not be fitted on the data up to {cutoff} (before the last {weeks} weeks)"
    _, pred = _predict(bg, cal, weeks)
    actual = cal["actual"].to_numpy(dtype=np.int64)
    by_id = pd.Index(cal["customer_id"]).argsort()  # = np.lexsort((ids, pred)), without numpy strings
    order = by_id[np.argsort(pred[by_id], kind="stable")]
    dec = np.empty(len(pred), dtype=np.int64)
    dec[order] = np.arange(len(pred)) * 10 // max(len(pred), 1) + 1
    deciles = tuple(
        {
            "decile": int(d),
            "customers": int((dec == d).sum()),
            "predicted": float(pred[dec == d].sum()),
            "actual": int(actual[dec == d].sum()),
        }
        for d in range(1, 11)
        if (dec == d).any()
    )
    return Backtest(cutoff, weeks, float(pred.sum()), int(actual.sum()), len(cal), deciles), None


# ---------------------------------------------------------------- plain-language reasons


def horizon_text(weeks: int) -> str:
    """52 -> "12 months", 26 -> "6 months", 13 -> "3 months", 10 -> "10 weeks"."""
    months = weeks * 12 / 52
    if weeks % 13 == 0:
        return f"{int(round(months))} months"
    return f"{weeks} weeks"


def reason_text(p: float, expected: float, x: int, horizon_weeks: int) -> str | None:
    """The P(alive) reason; None for x = 0 (the model gives 1.0 to every one-day buyer).

    >>> reason_text(0.92, 4.2, 5, 52)
    'likely to buy again (P(alive) 0.92, about 4 orders expected in 12 months)'
    >>> reason_text(0.12, 0.1, 3, 52)
    'probably lapsed (P(alive) 0.12)'
    """
    if x <= 0 or p != p:
        return None
    if p < 0.5:
        return f"probably lapsed (P(alive) {p:.2f})"
    if expected >= 1.5:
        how = f"about {expected:,.0f} orders"
    elif expected >= 0.95:
        how = "about 1 order"
    else:
        how = f"{expected:.1f} orders"
    return f"likely to buy again (P(alive) {p:.2f}, {how} expected in {horizon_text(horizon_weeks)})"


def check_horizon(weeks) -> int:
    """A horizon in whole weeks, 1-520; anything else raises CxStatsError."""
    try:
        w = int(weeks)
    except (TypeError, ValueError):
        raise CxStatsError(f"--horizon-weeks must be a whole number of weeks, got {weeks!r}") from None
    if w != weeks or not 1 <= w <= MAX_HORIZON_WEEKS:
        raise CxStatsError(f"--horizon-weeks must be a whole number from 1 to {MAX_HORIZON_WEEKS}, got {weeks!r}")
    return w


def check_p_alive(x) -> float:
    """A P(alive) threshold in [0, 1]; anything else raises CxStatsError."""
    try:
        v = float(x)
    except (TypeError, ValueError):
        raise CxStatsError(f"--min-p-alive must be a number from 0 to 1, got {x!r}") from None
    if not (0.0 <= v <= 1.0):
        raise CxStatsError(f"--min-p-alive must be a number from 0 to 1, got {x!r}")
    return v


def _reason_column(cv: CustomerValue, pos: np.ndarray) -> np.ndarray:
    """The P(alive) reason of each row (None for x = 0 or no model), formatted once per distinct text."""
    c = cv.customers
    ok = pos >= 0
    safe = np.where(ok, pos, 0)
    x = c["x"].to_numpy(dtype=np.int64)[safe]
    p = c["p_alive"].to_numpy(dtype=float)[safe]
    e = c["expected_orders"].to_numpy(dtype=float)[safe]
    want = ok & (x > 0)
    p2 = np.round(p, 2)
    # what the text shows of e: a rounded count, "about 1", or one decimal
    e_key = np.where(e >= 1.5, np.round(e), np.where(e >= 0.95, 1.0, np.round(e, 1) - 100))
    key = np.where(p2 < 0.5, -1.0, e_key)
    out = np.full(len(pos), None, dtype=object)
    if not want.any():
        return out
    # distinct (p, key) pairs: each column's codes combined into one integer (no MultiIndex)
    cp, up = pd.factorize(p2[want], use_na_sentinel=False)
    ck, uk = pd.factorize(key[want], use_na_sentinel=False)
    codes, uniq = pd.factorize(cp.astype(np.int64) * len(uk) + ck)
    texts = np.array(
        [
            reason_text(up[i // len(uk)], (kk + 100 if (kk := uk[i % len(uk)]) < -50 else kk), 1, cv.horizon_weeks)
            for i in uniq
        ],
        dtype=object,
    )
    out[want] = texts[codes]
    return out


def _insert_before_flags(reasons: pa.ChunkedArray | pa.Array, flags, texts: np.ndarray) -> pa.Array:
    """Each row's list of reasons with ``texts[i]`` (when not None) put before its flag texts."""
    lists = reasons.combine_chunks() if isinstance(reasons, pa.ChunkedArray) else reasons
    n = len(lists)
    offs = lists.offsets.to_numpy().astype(np.int64)
    vals = lists.flatten()
    offs = offs - offs[0]
    lens = np.diff(offs)
    k = pc.fill_null(pc.list_value_length(flags), 0).to_numpy(zero_copy_only=False).astype(np.int64)
    has = pd.notna(texts)
    at = np.maximum(lens - k, 0)  # position of the new text within its row
    new_offs = np.concatenate([[0], np.cumsum(lens + has)])
    ri = np.repeat(np.arange(n), lens)
    q = np.arange(len(vals)) - offs[ri]
    old_pos = new_offs[ri] + q + (has[ri] & (q >= at[ri]))
    new_pos = new_offs[:-1][has] + at[has]
    allv = pa.concat_arrays([vals.cast(pa.string()), pa.array(texts[has], type=pa.string())])
    # old_pos and new_pos together are a permutation of the new values' slots: scatter, no sort
    order = np.empty(len(allv), dtype=np.int64)
    order[old_pos] = np.arange(len(vals))
    order[new_pos] = np.arange(len(vals), len(allv))
    return pa.ListArray.from_arrays(pa.array(new_offs, type=pa.int32()), allv.take(pa.array(order)))


def _ids(ids: pd.Series) -> pa.Array:
    """A column of ids as one Arrow large_string array (no copy when it is Arrow-backed already)."""
    if isinstance(ids.array, pd.arrays.ArrowStringArray):
        arr = pa.array(ids.array)
    else:
        arr = pa.array(ids.to_numpy(dtype=object), from_pandas=True)
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    return arr.cast(pa.large_string())


def attach(customers: pd.DataFrame, cv: CustomerValue) -> pd.DataFrame:
    """The scored advocates with p_alive, expected_orders, expected_value (NaN without a model) and
    the P(alive) reason put before any flag text; the score and the order are unchanged."""
    out = customers.copy(deep=False)  # copy-on-write (pandas 3): the new columns do not touch the caller's frame
    if cv.bgnbd is None or cv.gamma_gamma is None or len(out) == 0:
        for col in CUSTOMER_FIELDS:
            out[col] = np.nan
        return out
    # the model's row of each customer (one hash join in Arrow; ids are unique in cv.customers)
    pos = (
        pc.fill_null(pc.index_in(_ids(out["customer_id"]), value_set=_ids(cv.customers["customer_id"])), -1)
        .to_numpy(zero_copy_only=False)
        .astype(np.intp)
    )
    for col in CUSTOMER_FIELDS:
        v = cv.customers[col].to_numpy(dtype=float)
        out[col] = np.where(pos >= 0, v[np.where(pos >= 0, pos, 0)], np.nan)
    texts = _reason_column(cv, pos)
    if any(t is not None for t in texts):
        reasons = (
            pa.array(out["reasons"].array)
            if not isinstance(out["reasons"].dtype, pd.ArrowDtype)
            else out["reasons"].array._pa_array
        )
        flags = (
            pa.array(out["flag_text"].array)
            if not isinstance(out["flag_text"].dtype, pd.ArrowDtype)
            else out["flag_text"].array._pa_array
        )
        if isinstance(flags, pa.ChunkedArray):
            flags = flags.combine_chunks()
        new = _insert_before_flags(reasons, flags, texts)
        out["reasons"] = pd.Series(pd.arrays.ArrowExtensionArray(new), index=out.index)
    return out


__all__ = [
    "BGNBD",
    "GammaGamma",
    "Backtest",
    "CustomerValue",
    "bgnbd_loglik",
    "fit_bgnbd",
    "p_alive",
    "expected_orders",
    "gamma_gamma_loglik",
    "fit_gamma_gamma",
    "expected_spend",
    "summary",
    "customer_value",
    "reason_text",
    "horizon_text",
    "attach",
    "check_horizon",
    "check_p_alive",
    "HORIZON_WEEKS",
    "MIN_REPEATERS",
    "CUSTOMER_FIELDS",
]
