"""Comment themes: what employees and customers write about, found offline (DESIGN.md "Comment themes").

Three sources, each modelled on its own: ``comments`` (employee survey comments, only from kept
(unit, period) groups of at least ``comment_min_group`` = 10 respondents, through
:func:`cxstats.metrics.comments`), ``feedback`` (customer feedback comments) and ``mentions``
(social post texts).

Method
------
1. Texts are cut to :data:`MAX_CHARS` characters for modelling; texts that are not English
   (:func:`cxstats.sentiment.compound` returns None, the same language check as mention sentiment)
   are counted and left out. With fewer than :data:`MIN_TEXTS` English texts no theme is invented:
   the result carries a message instead.
2. TF-IDF over words and word pairs (scikit-learn's built-in English stop words, terms in at least
   3 texts): ``tfidf(t, d) = tf(t, d) * (ln((1 + n) / (1 + df(t))) + 1)``, rows L2-normalised.
3. Non-negative matrix factorisation ``X ~ W H`` (Frobenius loss, ``init='nndsvda'``,
   ``random_state=0``): row j of H weighs the terms of theme j, row i of W the themes of text i.
4. Number of themes k: given (``--themes N``), or chosen on a fixed-seed sample of up to
   :data:`SAMPLE_SIZE` texts as the smallest k in 4..12 whose drop in reconstruction error to k + 1
   is under 2% of the error at k = 4: ``err(k) - err(k + 1) < 0.02 * err(4)`` (12 when none is).
5. A text belongs to its strongest theme when that theme's normalised weight
   ``w_ij / sum_j w_ij`` is at least :data:`ASSIGN_MIN` (0.3), else to "other" (theme_id 0).
6. Per theme: share of the modelled texts, mean VADER compound sentiment, and for feedback the
   CSAT % of the answers with the theme against the other modelled answers with a CSAT
   (:func:`csat_difference`, Wald interval); three example texts, customer sources only (employee
   comments are never quoted). Each theme is labelled by its three top terms.

References: Lee, D. D. & Seung, H. S. (1999), Learning the parts of objects by non-negative matrix
factorization, Nature 401, 788-791; Hutto, C. J. & Gilbert, E. (2014), VADER, ICWSM; Agresti, A.
(2013), Categorical Data Analysis, 3rd ed., section 1.4 (the Wald interval for p1 - p2).

Example
-------
>>> texts = [f"the queue was long {i}" for i in range(30)] + [f"free parking is great {i}" for i in range(30)]
>>> r = fit_themes(texts, n_themes=2)
>>> sorted(("queue" in t.terms, "parking" in t.terms, t.n) for t in r.themes if t.theme_id)
[(False, True, 30), (True, False, 30)]
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field

import duckdb
import numpy as np

from . import AccessDenied, CxStatsError, Viewer, metrics, sentiment, store
from .stats import Z_975

SOURCES = ("comments", "feedback", "mentions")
MIN_TEXTS = 50  # fewer English texts than this: say so, invent nothing
MAX_CHARS = 1000  # texts are cut to this many characters for modelling
EXAMPLE_CHARS = 280  # example texts are shown cut to this length
SAMPLE_SIZE = 10_000  # texts the number of themes is chosen on
K_MIN, K_MAX = 4, 12
K_DROP = 0.02  # a further theme must cut the reconstruction error by 2% of err(4)
ASSIGN_MIN = 0.3  # normalised weight a text needs to belong to its strongest theme
MIN_DF = 3
TOP_TERMS = 8
LABEL_TERMS = 3
N_EXAMPLES = 3
SEED = 0
MAX_THEMES = 30


# ---------------------------------------------------------------- results


@dataclass(frozen=True)
class Theme:
    """One theme (theme_id 0 is "other": texts with no theme strong enough)."""

    theme_id: int
    label: str
    terms: tuple[str, ...]
    n: int
    share: float
    sentiment: float | None
    csat_with: float | None = None
    csat_without: float | None = None
    diff: float | None = None
    ci_low: float | None = None
    ci_high: float | None = None
    examples: tuple[str, ...] = ()

    def as_json(self) -> dict:
        return {
            "theme_id": self.theme_id,
            "label": self.label,
            "terms": list(self.terms),
            "n": self.n,
            "share": self.share,
            "sentiment": self.sentiment,
            "csat_with": self.csat_with,
            "csat_without": self.csat_without,
            "diff": self.diff,
            "ci_low": self.ci_low,
            "ci_high": self.ci_high,
            "examples": list(self.examples),
        }


@dataclass(frozen=True)
class ThemeModel:
    """The fitted model of :func:`fit_themes`: themes (no CSAT, no examples yet) and assignments.

    ``assignment[i]`` is the theme_id of text i (0 = other); ``errors`` maps k to the
    reconstruction error on the sample, for k = 4 up to the chosen k + 1 (empty when k was given).
    """

    themes: tuple[Theme, ...]
    assignment: np.ndarray = field(compare=False, repr=False)
    weight: np.ndarray = field(compare=False, repr=False)  # normalised weight of the assigned theme
    k: int
    k_chosen: bool
    errors: dict[int, float]


@dataclass(frozen=True)
class ThemeResult:
    """Themes of one source (DESIGN.md JSON: source, n_texts, themes[...])."""

    source: str
    n_texts: int  # English texts modelled
    n_non_english: int  # left out (counted)
    n_cut: int  # texts longer than MAX_CHARS, cut for modelling
    k: int | None
    k_chosen: bool  # True: chosen on the sample; False: set with --themes
    themes: tuple[Theme, ...]
    message: str | None  # why there are no themes (too few texts), else None
    errors: dict[int, float] = field(default_factory=dict)

    def as_json(self) -> dict:
        return {
            "source": self.source,
            "n_texts": self.n_texts,
            "n_non_english": self.n_non_english,
            "n_cut": self.n_cut,
            "k": self.k,
            "k_chosen": self.k_chosen,
            "themes": [t.as_json() for t in self.themes],
            "message": self.message,
            "errors": {str(k): v for k, v in self.errors.items()},
        }


# ---------------------------------------------------------------- formulas


def choose_k(errors: dict[int, float], k_min: int = K_MIN, k_max: int = K_MAX, drop: float = K_DROP) -> int:
    """Smallest k in k_min..k_max with ``err(k) - err(k + 1) < drop * err(k_min)``; k_max when none.

    ``errors`` maps k to the NMF reconstruction error (Frobenius norm of X - WH) for k_min..k_max+1
    (or fewer, when the texts support fewer themes: the largest k given then bounds the answer).

    Example: errors {4: 10, 5: 9, 6: 8.9, 7: 8.85} -> drops 1.0, 0.1, 0.05; 2% of 10 is 0.2 -> k = 5.
    """
    ks = sorted(k for k in errors if k >= k_min)
    if not ks:
        raise CxStatsError("no reconstruction errors to choose the number of themes from")
    base = errors[ks[0]]
    for k in ks:
        if k > k_max:
            break
        if k + 1 in errors and errors[k] - errors[k + 1] < drop * base:
            return k
    return min(k_max, ks[-1])


def csat_difference(
    with_theme, without_theme
) -> tuple[float | None, float | None, float | None, float | None, float | None]:
    """CSAT % with a theme and without it, their difference and its Wald 95% interval (% points).

    ``p1 = share of answers in {4, 5} among answers with the theme``, ``p0`` the same among the
    answers without it; ``diff = 100 (p1 - p0)``,
    ``CI = diff +- 100 * 1.959964 * sqrt(p1 (1 - p1) / n1 + p0 (1 - p0) / n0)``
    (Agresti 2013, 1.4; statsmodels ``confint_proportions_2indep(method='wald')`` gives the same).
    None where a side has no answer (difference and CI need both sides).

    Example: 3 of 10 satisfied with the theme, 60 of 80 without -> 30.0, 75.0, diff -45.0,
    CI -45 +- 196 * sqrt(.021 + .00234375) = [-75.0, -15.0].
    """
    a = np.asarray(with_theme, dtype="float64")
    b = np.asarray(without_theme, dtype="float64")
    a, b = a[~np.isnan(a)], b[~np.isnan(b)]
    p1 = float((a >= 4).mean()) if a.size else None
    p0 = float((b >= 4).mean()) if b.size else None
    pct1 = None if p1 is None else 100.0 * p1
    pct0 = None if p0 is None else 100.0 * p0
    if p1 is None or p0 is None:
        return pct1, pct0, None, None, None
    diff = 100.0 * (p1 - p0)
    se = 100.0 * math.sqrt(p1 * (1 - p1) / a.size + p0 * (1 - p0) / b.size)
    return pct1, pct0, diff, diff - Z_975 * se, diff + Z_975 * se


def _cut(text: str, n: int) -> str:
    return text if len(text) <= n else text[: n - 1].rstrip() + "…"


def fit_themes(texts, n_themes: int | None = None) -> ThemeModel:
    """TF-IDF (words and pairs, English stop words, min_df 3) + NMF over texts (already cut, English).

    Returns themes ordered by size (theme_id 1 the largest; 0 "other" last), each labelled by its
    top terms, with n and share filled in (sentiment, CSAT and examples are added by :func:`themes`).
    Deterministic: the same texts in the same order give the same themes.
    """
    from sklearn.decomposition import NMF
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.feature_extraction.text import TfidfVectorizer

    texts = [str(t) for t in texts]
    n = len(texts)
    if n_themes is not None and not 2 <= int(n_themes) <= MAX_THEMES:
        raise CxStatsError(f"--themes must be between 2 and {MAX_THEMES} (got {n_themes})")
    vec = TfidfVectorizer(ngram_range=(1, 2), stop_words="english", min_df=MIN_DF)
    try:
        x = vec.fit_transform(texts)
    except ValueError:
        raise CxStatsError(
            f"these texts have too few words in common to find themes (no word appears in {MIN_DF} or more texts)"
        ) from None
    names = vec.get_feature_names_out()
    n_terms = len(names)
    limit = min(n_terms, n) - 1  # NMF with k >= terms or texts fits nothing meaningful
    errors: dict[int, float] = {}
    if n_themes is not None:
        k = int(n_themes)
        if k > limit:
            raise CxStatsError(
                f"these texts support at most {max(limit, 0)} themes ({n_terms} terms in "
                f"{MIN_DF}+ texts); ask for fewer with --themes"
            )
        chosen = False
    else:
        if limit < K_MIN:
            raise CxStatsError(
                f"these texts have only {n_terms} terms in {MIN_DF} or more texts: too few for {K_MIN} themes"
            )
        rng = np.random.default_rng(SEED)
        sample = np.sort(rng.choice(n, size=SAMPLE_SIZE, replace=False)) if n > SAMPLE_SIZE else np.arange(n)
        xs = x[sample]
        for kk in range(K_MIN, min(K_MAX + 1, limit) + 1):
            m = NMF(n_components=kk, init="nndsvda", random_state=SEED, max_iter=300, tol=1e-4)
            with warnings.catch_warnings():
                # an exact fit (repeated texts) rounds the squared error below 0: sklearn's sqrt warns
                warnings.simplefilter("ignore", RuntimeWarning)
                warnings.simplefilter("ignore", ConvergenceWarning)
                m.fit(xs)
            err = float(m.reconstruction_err_)
            errors[kk] = err if math.isfinite(err) else 0.0
            # the rule asks for the smallest such k: once err(k) - err(k + 1) is small, stop fitting
            if kk - 1 in errors and errors[kk - 1] - errors[kk] < K_DROP * errors[K_MIN]:
                break
        k = choose_k(errors, K_MIN, min(K_MAX, limit))
        chosen = True
    model = NMF(n_components=k, init="nndsvda", random_state=SEED, max_iter=400, tol=1e-4)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        warnings.simplefilter("ignore", ConvergenceWarning)  # the fit is still deterministic
        w = model.fit_transform(x)
    h = model.components_
    total = w.sum(axis=1)
    norm = np.divide(w, total[:, None], out=np.zeros_like(w), where=total[:, None] > 0)
    best = norm.argmax(axis=1)
    best_w = norm[np.arange(n), best]
    raw = np.where(best_w >= ASSIGN_MIN, best + 1, 0)
    sizes = np.bincount(raw, minlength=k + 1)
    # theme ids by size (largest first; ties by component order): deterministic and readable
    order = sorted(range(1, k + 1), key=lambda j: (-sizes[j], j))
    new_id = np.zeros(k + 1, dtype=np.int64)
    for i, j in enumerate(order, 1):
        new_id[j] = i
    assignment = new_id[raw]
    themes = []
    for j in order:
        if sizes[j] == 0:
            continue  # no text belongs to it: not a theme of these texts
        top = np.argsort(-h[j - 1], kind="stable")[:TOP_TERMS]
        terms = tuple(str(names[t]) for t in top if h[j - 1, t] > 0)
        themes.append(
            Theme(
                int(new_id[j]),
                ", ".join(terms[:LABEL_TERMS]) or f"theme {new_id[j]}",
                terms,
                int(sizes[j]),
                float(sizes[j] / n) if n else 0.0,
                None,
            )
        )
    themes.append(Theme(0, "other", (), int(sizes[0]), float(sizes[0] / n) if n else 0.0, None))
    return ThemeModel(tuple(themes), assignment, best_w.astype("float64"), k, chosen, errors)


# ---------------------------------------------------------------- reading the texts


def _expand(frame, text: str, with_csat: bool) -> tuple[list[str], np.ndarray | None]:
    """Distinct texts with their counts (``text``, [csat,] n) -> one text per occurrence, in a fixed
    order (by text, then CSAT with no answer last) that does not depend on the engine."""
    texts = [str(t) for t in frame[text]]
    counts = [int(n) for n in frame["n"]]
    if not with_csat:
        order = sorted(range(len(texts)), key=lambda i: texts[i])
        return [texts[i] for i in order for _ in range(counts[i])], None
    import pandas as pd

    sat = [None if pd.isna(c) else float(c) for c in frame["csat"]]
    order = sorted(range(len(texts)), key=lambda i: (texts[i], sat[i] is None, sat[i] or 0.0))
    out = [texts[i] for i in order for _ in range(counts[i])]
    csat = np.array([np.nan if sat[i] is None else sat[i] for i in order for _ in range(counts[i])], dtype="float64")
    return out, csat


def _texts(
    con: duckdb.DuckDBPyConnection, source: str, viewer: Viewer, engine=None
) -> tuple[list[str], np.ndarray | None]:
    """(texts, csat or None) of one source that this viewer may see, in a fixed order.

    Employee comments come from the DuckDB file (:func:`cxstats.metrics.comments`). Customer texts
    are read where the engine is (``engine``; None: from the environment; the DuckDB file, a lake or
    Spark): what comes back is each distinct text once with its count (and, for feedback, per CSAT
    answer: :func:`cxstats.unit_aggregates.feedback_comments` / ``mention_texts``), never ids, dates
    or units; the texts are needed to model them and to quote examples of customer themes.
    """
    if source == "comments":
        # one definition of the >= 10 rule: metrics.comments (kept groups, comment_min_group)
        frame = metrics.comments(con, viewer=viewer)
        return [str(t) for t in frame["comment"]], None
    if source == "feedback":
        all_units, units = store.viewer_units(viewer)
        only = None if all_units else units

        def build(t, um):
            from . import unit_aggregates as ua

            return ua.feedback_comments(t.table("feedback"), um, units=only)

        frame = metrics.cx_aggregate(
            con,
            ("feedback_comments", only is not None),
            {} if only is None else {"units": only},
            build,
            viewer=viewer,
            engine=engine,
        )
        return _expand(frame, "comment", with_csat=True)
    if viewer.role == "manager":
        raise AccessDenied("social mentions carry no unit, so they are not shown to managers")

    def build_mentions(t, um):
        from . import unit_aggregates as ua

        return ua.mention_texts(t.table("mentions"))

    frame = metrics.cx_aggregate(con, ("mention_texts",), {}, build_mentions, viewer=viewer, engine=engine)
    return _expand(frame, "text", with_csat=False)


def themes(
    con: duckdb.DuckDBPyConnection, source: str, *, viewer: Viewer, n_themes: int | None = None, engine=None
) -> ThemeResult:
    """Themes of one source for this viewer (DESIGN.md "Comment themes"; method in the module docstring).

    Roles: marketing may not see employee comments (AccessDenied) but sees customer themes; a
    manager sees employee comments and feedback of his units only (comments from groups of at
    least 10 respondents) and no mentions (they carry no unit). Employee comments are never quoted.
    Themes no text belongs to are left out (``k`` counts every fitted component). ``engine`` (an
    :class:`cxstats.engine.EngineConfig`; None: from the environment) says where customer texts are
    read (the DuckDB file, a lake, Spark); the result is the same on every engine.

    Example::

        with store.connect(db) as con:
            r = themes(con, "feedback", viewer=ADMIN)
        [(t.label, t.share, t.diff) for t in r.themes]
    """
    return _run(con, source, viewer, n_themes, engine)[0]


def _run(
    con, source: str, viewer: Viewer, n_themes: int | None, engine=None
) -> tuple[ThemeResult, list[str], np.ndarray]:
    """themes() plus the modelled texts and each one's theme_id (for tests of planted recovery)."""
    if source not in SOURCES:
        raise CxStatsError(f"unknown source {source!r}; use one of {', '.join(SOURCES)}")
    if n_themes is not None and not 2 <= int(n_themes) <= MAX_THEMES:
        raise CxStatsError(f"--themes must be between 2 and {MAX_THEMES} (got {n_themes})")
    raw, csat = _texts(con, source, viewer, engine)
    n_cut = sum(len(t) > MAX_CHARS for t in raw)
    cut = [t[:MAX_CHARS] for t in raw]
    # sentiment once per distinct text (feedback and posts repeat); None = not English
    uniq = list(dict.fromkeys(cut))
    score = dict(zip(uniq, sentiment.compound(uniq)))
    keep = [i for i, t in enumerate(cut) if score[t] is not None]
    n_other_lang = len(cut) - len(keep)
    texts = [cut[i] for i in keep]
    if len(texts) < MIN_TEXTS:
        return (
            ThemeResult(
                source,
                len(texts),
                n_other_lang,
                n_cut,
                None,
                n_themes is None,
                (),
                f"only {len(texts)} English texts in {source} (at least {MIN_TEXTS} are needed "
                "to find themes); no themes are shown",
            ),
            texts,
            np.zeros(len(texts), dtype=np.int64),
        )
    model = fit_themes(texts, n_themes)
    sent = np.array([score[t] for t in texts], dtype="float64")
    sat = csat[keep] if csat is not None else None
    out = []
    for th in model.themes:
        mask = model.assignment == th.theme_id
        mean_sent = float(sent[mask].mean()) if mask.any() else None
        extra: dict = {}
        if sat is not None:
            cw, co, d, lo, hi = csat_difference(sat[mask], sat[~mask])
            extra = dict(csat_with=cw, csat_without=co, diff=d, ci_low=lo, ci_high=hi)
        examples: tuple[str, ...] = ()
        if source != "comments" and th.theme_id != 0 and mask.any():
            idx = np.flatnonzero(mask)
            # the texts most clearly about the theme, each once; ties by text for determinism
            ranked = sorted(idx, key=lambda i: (-model.weight[i], raw[keep[i]]))
            seen: list[str] = []
            for i in ranked:
                t = _cut(raw[keep[i]].strip(), EXAMPLE_CHARS)
                if t not in seen:
                    seen.append(t)
                if len(seen) == N_EXAMPLES:
                    break
            examples = tuple(seen)
        out.append(Theme(th.theme_id, th.label, th.terms, th.n, th.share, mean_sent, examples=examples, **extra))
    return (
        ThemeResult(source, len(texts), n_other_lang, n_cut, model.k, model.k_chosen, tuple(out), None, model.errors),
        texts,
        model.assignment,
    )
