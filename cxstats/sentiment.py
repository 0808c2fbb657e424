"""Sentiment of social mentions with VADER (English only; other languages are flagged, not scored).

VADER's compound score is a normalised sum of lexicon valences, in -1..1:
``compound = s / sqrt(s^2 + 15)`` where s is the rule-adjusted sum of word valences.
DESIGN.md: positive when compound >= 0.05, negative when <= -0.05, otherwise neutral.

Example
-------
>>> compound(["I love this shop, the staff are wonderful!"])[0] > 0.05
True
>>> compound(["Das Personal war sehr freundlich und hilfsbereit."])
[None]
"""

from __future__ import annotations

import re
from functools import lru_cache

POSITIVE = 0.05
NEGATIVE = -0.05

# Common English function words: a text of several words with none of them, and none in VADER's
# lexicon, is taken to be in another language (flagged 'unscored' rather than scored as neutral).
_ENGLISH = frozenset(
    "the a an and or but is are was were be been i you he she it we they me my your our their this that "
    "to of in on at for with from by not no so very too just all any what when where who how why can "
    "will would should could do does did have has had there here than then them us his her its if as".split()
)
# Function words of other common languages (de, fr, es, it, nl, pt): outnumbering English ones
# marks the text as not English even when a word happens to be in VADER's lexicon ("war").
_OTHER = frozenset(
    "und der die das nicht ist sehr mit ein eine ich wir sie es auf für von zu den dem "
    "le la les et est très pas une des du pour avec je nous vous que qui dans sur "
    "el los las es muy y con una por para que del pero como su "
    "il di che non è molto per una sono della "
    "de het een en niet zeer met voor zijn ik wij "
    "o os um uma não muito com para".split()
)
_WORD = re.compile(r"[^\W\d_]+", re.UNICODE)


@lru_cache(maxsize=1)
def _analyzer():
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

    return SentimentIntensityAnalyzer()


def is_english(text: str) -> bool:
    """Heuristic language check: mostly ASCII letters and at least one English or VADER word."""
    words = _WORD.findall(text.lower())
    if not words:
        return True  # emoji-only or punctuation: VADER handles emoji
    letters = "".join(words)
    non_ascii = sum(1 for ch in letters if ord(ch) > 127)
    if non_ascii > 0.3 * len(letters):
        return False
    if len(words) < 3:
        return True
    english = sum(w in _ENGLISH for w in words)
    if sum(w in _OTHER for w in words) > english:
        return False
    lexicon = _analyzer().lexicon
    return any(w in _ENGLISH or w in lexicon for w in words)


def label(score: float | None) -> str:
    """'positive' (>= 0.05), 'negative' (<= -0.05), 'neutral', or 'unscored'."""
    if score is None:
        return "unscored"
    if score >= POSITIVE:
        return "positive"
    if score <= NEGATIVE:
        return "negative"
    return "neutral"


def compound(texts) -> list[float | None]:
    """VADER compound score for each text; None for empty text or text not in English."""
    analyzer = _analyzer()
    out: list[float | None] = []
    for t in texts:
        if t is None or (isinstance(t, float) and t != t) or not str(t).strip():
            out.append(None)
            continue
        t = str(t)
        out.append(analyzer.polarity_scores(t)["compound"] if is_english(t) else None)
    return out
