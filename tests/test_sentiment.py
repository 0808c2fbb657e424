"""Sentiment: VADER compound scores against the values published in vaderSentiment's README, and
DESIGN.md's thresholds (positive >= 0.05, negative <= -0.05) on hand-picked, sarcasm-free sentences."""

from __future__ import annotations

import pytest

from cxstats import sentiment


# Reference compound scores from the vaderSentiment README (github.com/cjhutto/vaderSentiment).
@pytest.mark.parametrize(
    "text, expected",
    [
        ("VADER is smart, handsome, and funny.", 0.8316),
        ("VADER is not smart, handsome, nor funny.", -0.7424),
        ("The book was kind of good.", 0.3832),
        ("At least it isn't a horrible book.", 0.431),
        ("Today SUX!", -0.5461),
        ("The plot was good, but the characters are uncompelling and the dialog is not great.", -0.7042),
        ("A really bad, horrible book.", -0.8211),
        ("Make sure you :) or :D today!", 0.8633),
    ],
)
def test_compound_matches_published_values(text, expected):
    assert sentiment.compound([text])[0] == pytest.approx(expected, abs=1e-4)


@pytest.mark.parametrize(
    "text, expected",
    [
        ("I love this shop, the staff are wonderful!", "positive"),
        ("Great coffee and friendly people", "positive"),
        ("Thank you for the quick and helpful service.", "positive"),
        ("Terrible service, I will never come back.", "negative"),
        ("The delivery was late and the box was damaged.", "negative"),
        ("Rude staff and a dirty store.", "negative"),
        ("The store opens at nine.", "neutral"),
        ("I bought a chair on Tuesday.", "neutral"),
        ("Das Personal war sehr freundlich und hilfsbereit.", "unscored"),  # not English: flagged, not scored
        ("", "unscored"),
    ],
)
def test_hand_picked_sentences(text, expected):
    assert sentiment.label(sentiment.compound([text])[0]) == expected


@pytest.mark.parametrize(
    "score, expected",
    [
        (0.05, "positive"),
        (0.0501, "positive"),
        (0.0499, "neutral"),
        (0.0, "neutral"),
        (-0.0499, "neutral"),
        (-0.05, "negative"),
        (-1.0, "negative"),
        (1.0, "positive"),
        (None, "unscored"),
    ],
)
def test_thresholds_inclusive(score, expected):
    assert sentiment.label(score) == expected


def test_advocates_use_the_same_thresholds():
    from cxstats import advocates

    assert advocates.POSITIVE == 0.05 and advocates.NEGATIVE == -0.05
