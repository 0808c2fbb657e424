"""Seeded demo data with planted effects, the ``demo`` command, and first-start demo loading.

The demo is a retail chain: ``units`` stores, ``quarters`` calendar quarters of employee pulse
surveys, customer feedback, orders, social mentions, customer consent and a few rewards. These
things are planted so that the analyses have a known right answer:

1. an engagement -> CSAT effect *inside* units (``planted_within_coef`` CSAT % points per
   engagement-index point), hidden behind a different, confounded relation *between* units;
2. a set of true advocates (``true_advocates``) and an influencer decoy (``influencer_decoy``);
3. focus areas (``focus_stores``): in 3 stores the driver item ``FOCUS_DRIVER`` is low and the
   non-driver ``FOCUS_NON_DRIVER`` (an item with no unit-level link to CSAT) lower still;
4. what changed (``planted_changes``): 4 stores move by +-25 latent points (about +-21 on the
   measured index) into the last quarter, while every other store stays where it was (sampling
   noise only);
5. churn: half of the ordinary customers stop buying at a random date (``dropouts``).

Generative model (all draws from ``numpy.random.default_rng(seed)``)
--------------------------------------------------------------------
Quarters: the ``quarters`` calendar quarters ending with the last complete quarter before
``end`` (default today). Engagement waves are labelled like "2025-Q1" and run inside their quarter.

Engagement, unit u and quarter t, on the 0..100 index scale::

    E[u,t] = 62 + a[u] + q[t] + e[u,t]      a ~ N(0, 7)   unit level (between units)
                                            q ~ N(0, 2)   chain-wide quarter shift
                                            e ~ N(0, 6)   shock that varies inside a unit
    respondents n[u,t] ~ U{10..30}; about 5% of groups (at least 2) get 2..4 (below min_group 5)
    respondent latent  r = E[u,t] + N(0, 14)
    item j answer      round(1 + 4 r / 100 + d[j] + N(0, 0.7)) clipped to 1..5   (11 items)
    last quarter       E[u,T] = E[u,T-1] (+-25 in the 4 ``planted_changes`` stores)

The non-driver item uses ``62 + r - E[u,t]`` in place of r (the respondent's own deviation: no unit
or quarter signal). In the 3 ``focus_stores`` (kept groups in every quarter, unit level a in the
middle half) the driver's continuous answer is lowered by ``FOCUS_DROP[0]`` plus the store's excess
over the chain's mean latent of the quarter (so it lags the chain and the store's own items), and
the non-driver's by ``FOCUS_DROP[1]``. These stores and changes come from their own generator
(``default_rng([seed, 13])``), so every other draw is as before.
    about 3% of answers are blank; about 2% of respondents answer only 3 items (left out of
    the index, DESIGN.md); eNPS = round(r / 10 + N(0, 1.5)) clipped to 0..10

The *measured* engagement index I[u,t] is then computed from the answers exactly as DESIGN.md
defines it (mean over respondents of 100 * (respondent mean - 1) / 4).

CSAT, same unit and quarter::

    P(csat in {4,5}) in %  = 78 + c[u] + p[t] + beta * (I[u,t] - mean(I))
    c[u] = confound * a[u] + N(0, 4)   (location and clientele: engaged stores sit where customers
                                        are happier anyway, so comparisons between units overstate beta)
    p[t] ~ N(0, 1.5), with p[T] = p[T-1] (no chain-wide shift into the last quarter)

with ``beta = planted_within_coef`` (default 0.3). CSAT depends on the measured index of the
same (unit, quarter) group, not on the latent E, so a correctly specified two-way fixed-effects
regression ``csat_pct ~ I + C(unit) + C(quarter)`` is unbiased for beta (no errors-in-variables
attenuation) and its 95% CI covers beta in about 95% of seeds; with ``effect=0`` the within-unit
estimate is null while the between-unit correlation stays positive (the confound). Feedback rows
per (unit, quarter) ~ Poisson(90 + 3 * headcount); 85% carry csat (satisfied: 4 or 5, else 1..3),
40% carry nps (satisfied answers lean to 9-10, others to 0-6). Some rows are service contacts
with contacted_at / responded_at; about a quarter name a (non-advocate) customer.

Customers and advocates: ``customers`` customers; 45% plan one order, the rest 2..7 orders of 1..4 lines
on days uniform over the span, each line lognormal(log 18, 0.6) times the customer's spend level
~ Gamma(4, 1/4). Churn (BG/NBD-like): half of the ordinary customers stop buying for good after a
day uniform over 5%..70% of the span; the orders they planned after it (and the returns after it)
are not made, their first order always is (``dropouts`` re-draws who stopped). Spend levels and
dropouts come from their own generators (``[seed, 15]``, ``[seed, 14]``), so every other draw stays.
About 4% of orders get a later return, a few orders net to exactly zero such as
10.10 + 20.20 - 30.30. About a third of customers have a social handle and 0..3 mentions (at most 2
positive; negative and non-English posts too), and 85% gave marketing consent. True advocates (about 1 in 60 customers, at least 5) have
10..20 orders with the last one in the final 30 days, 4..7 positive posts and no negative one,
1..3 promoter NPS answers (9-10) through feedback.customer_id, and 90% marketing consent. The
influencer decoy has 2,500,000 followers but one order and only neutral posts: reach alone must
never make an advocate. A few advocates and ordinary customers have rewards, some inside the
90-day cooldown; orders do not change after a reward (``planted_reward_effect`` is 0, so the
programme estimate should straddle 0).

Example
-------
>>> d = generate(seed=7, units=12, customers=400, end=date(2026, 11, 26))
>>> d.quarters[-1], len(d.quarters), d.units["unit_id"].iloc[0]
('2026-Q3', 8, 'S001')
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import threading
import unicodedata
import zipfile
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd

from . import ADMIN, CxStatsError, periods, store

ITEMS: tuple[str, ...] = (
    "I know what is expected of me at work",
    "I have the tools I need to serve customers well",
    "My manager cares about me as a person",
    "I get recognition when I do good work",
    "I can use my skills every day",
    "My team helps each other out",
    "I understand how my work helps customers",
    "I have chances to learn and grow here",
    "My opinions are listened to",
    "I am proud to work here",
    "I see myself working here in a year",
)
# item difficulty offsets on the 1..5 answer scale (some items are harder to agree with)
_ITEM_OFFSETS = (0.45, 0.0, 0.25, -0.45, 0.15, 0.35, 0.4, -0.3, -0.4, 0.1, -0.2)
# Issue 13's plants (focus areas, what changed), drawn from their own generator so the rest of the
# demo's draws stay as they were. The non-driver item follows only the respondent's own deviation
# from his group's level, so its unit means carry no unit-level (or quarter-level) signal and it does
# not go with CSAT across units; every other item does.
FOCUS_DRIVER = ITEMS[1]  # "I have the tools I need to serve customers well"
FOCUS_NON_DRIVER = ITEMS[7]  # "I have chances to learn and grow here"
FOCUS_DROP = (0.8, 1.4)  # answer-scale points taken off the driver and the non-driver in the focus stores
FOCUS_STORES = 3
CHANGE_STORES = 4
CHANGE_POINTS = 25.0  # latent points of the planted change into the last quarter (about 21 on the measured index)
LIKERT_LABELS = ("Strongly disagree", "Disagree", "Neither agree nor disagree", "Agree", "Strongly agree")

_TOWNS = (
    "Leeds",
    "York",
    "Bristol",
    "Bath",
    "Derby",
    "Exeter",
    "Norwich",
    "Chester",
    "Durham",
    "Lincoln",
    "Oxford",
    "Cambridge",
    "Reading",
    "Brighton",
    "Hull",
    "Preston",
    "Carlisle",
    "Truro",
    "Ipswich",
    "Luton",
    "Stoke",
    "Wigan",
    "Salford",
    "Sheffield",
    "Leicester",
    "Coventry",
    "Plymouth",
    "Swindon",
    "Dover",
    "Kendal",
    "Harrogate",
    "Whitby",
    "Ely",
    "Hereford",
    "Worcester",
    "Gloucester",
    "Taunton",
    "Poole",
    "Crawley",
    "Woking",
)
_REGIONS = ("North", "South", "East", "West", "Central")
_FIRST = (
    "Amelia",
    "Oliver",
    "Isla",
    "George",
    "Ava",
    "Noah",
    "Mia",
    "Leo",
    "Zoë",
    "José",
    "Chloé",
    "Liam",
    "Grace",
    "Arthur",
    "Freya",
    "Oscar",
    "Ivy",
    "Jack",
    "Renée",
    "Omar",
    "Priya",
    "Tomás",
    "Ella",
    "Finn",
)
_LAST = (
    "Smith",
    "Jones",
    "Taylor",
    "Brown",
    "Williams",
    "Wilson",
    "Davies",
    "Evans",
    "Müller",
    "Khan",
    "Patel",
    "García",
    "Murphy",
    "O'Neill",
    "Clarke",
    "Walker",
    "Wright",
    "Hughes",
    "Novák",
    "Hall",
)
_POSITIVE = (
    "Loved my visit to {s} today, the staff were so helpful!",
    "Big thanks to the team at {s}, brilliant service as always.",
    "{s} never disappoints. Friendly people and great advice.",
    "Best shop in town. {s} sorted my order in minutes, really happy.",
    "Highly recommend {s}: kind staff and a lovely atmosphere.",
    "Another great experience at {s}. Thank you!",
    "The new range at {s} is excellent, and the staff know their stuff.",
    "So pleased with the help I got at {s} this week.",
)
_NEGATIVE = (
    "Waited ages at {s} and nobody helped. Disappointed.",
    "Rude staff at {s} today, not going back.",
    "My order from {s} arrived broken and support ignored me.",
    "Terrible queue at {s}, what a waste of time.",
    "Really poor service at {s} this afternoon.",
)
_NEUTRAL = (
    "Picked up an order at {s} today.",
    "Is {s} open on Sunday mornings?",
    "Popped into {s} on the way home.",
    "Does {s} stock the larger sizes?",
    "At {s} with the kids this afternoon.",
)
# not English: stored with sentiment_source 'unscored' (DESIGN.md)
_FOREIGN = (
    "Das Personal bei {s} war sehr freundlich und hilfsbereit.",
    "Le service chez {s} est très rapide et les vendeurs sont sympas.",
)
_FEEDBACK_COMMENTS = (
    "Quick and friendly.",
    "Could not find what I needed.",
    "Great help at the till.",
    "Long queue at lunchtime.",
    "Staff went out of their way.",
    "Shelves were a mess.",
)
_ENGAGEMENT_COMMENTS = (
    "More staff on Saturdays please.",
    "Great team.",
    "Rota changes at short notice.",
    "Training has been useful.",
    "Tills keep breaking.",
)
# Comment themes planted in the demo (issue 17): customer comments about queues (given with low
# CSAT), friendly staff (high CSAT) and parking; employee comments about staffing and tools. Wording
# varies through slot templates (exact repeated phrases would become themes of their own); every
# planted text carries its key word and no other text does. Drawn from their own generator, so the
# rest of the demo is unchanged.
COMMENT_THEMES = {"feedback": ("queue", "friendly", "parking"), "comments": ("staffing", "tools")}
# Each text: one clause with the theme's key word, then 0-2 more clauses of the same theme, joined in
# varied ways; words shared within a theme (not fixed phrases) are what the themes find.
_CLAUSES = {
    "queue": (
        (
            "the queue was far too long",
            "waited ages in the queue",
            "the queue went round the shop",
            "the checkout queue barely moved",
            "there is always a queue at lunchtime",
            "gave up on the queue",
            "the queue for the tills was huge",
            "stood in a queue for twenty minutes",
            "there was another long queue today",
            "the queue at customer services never moves",
        ),
        (
            "only two tills were open",
            "the wait to pay took forever",
            "nobody opened any more tills",
            "the wait was ridiculous",
            "waited over ten minutes to pay",
            "the self checkout tills kept freezing",
            "too few tills at busy times",
            "the wait to pay was half an hour",
            "waited and waited at the tills",
            "please open more tills",
        ),
    ),
    "friendly": (
        (
            "the staff were really friendly",
            "friendly and helpful as always",
            "such a friendly team",
            "a friendly welcome at the door",
            "the lady at the till was so friendly",
            "very friendly service",
            "friendly people on the shop floor",
            "the friendly young man found what I needed",
            "friendly advice in the garden section",
            "always friendly and patient",
        ),
        (
            "nothing was too much trouble",
            "they went out of their way to help",
            "lovely helpful people",
            "kind and patient with my questions",
            "made me feel welcome",
            "really knowledgeable and kind",
            "a smile from everyone",
            "the manager came over to help",
            "so helpful and polite",
            "great customer service",
        ),
    ),
    "parking": (
        (
            "parking was impossible",
            "could not find a parking space",
            "the parking fees are too high",
            "the parking machine was broken",
            "parking costs more than my shopping",
            "no disabled parking left",
            "drove round looking for parking",
            "parking near the store is a nightmare",
            "the parking barrier was stuck",
            "parking spaces are far too narrow",
        ),
        (
            "the car park is tiny",
            "the car park was full again",
            "had to park two streets away",
            "the pay machine only takes coins",
            "spaces are always taken by commuters",
            "got a ticket in the car park",
            "the car park lighting is poor",
            "ended up parking on the road",
            "the exit from the car park is dangerous",
            "cars blocking the entrance",
        ),
    ),
    "feedback_other": (
        (
            "could not find the paint I wanted",
            "prices have gone up a lot",
            "the website said it was in stock",
            "good range of garden furniture",
            "my order arrived late",
            "the shop was clean and tidy",
            "returned a lamp without any fuss",
            "would like a wider choice of bedding",
            "the loyalty points never arrived",
            "the shelves were half empty",
            "the app crashed at payment",
            "delivery was quicker than expected",
        ),
        (
            "the shelves were a mess",
            "the price on the label was wrong",
            "the click and collect desk was closed",
            "the new range looks good",
            "the toilets were out of order",
            "the online chat sorted it quickly",
            "the receipt came by email",
            "the lighting department was well laid out",
        ),
    ),
    "staffing": (
        (
            "staffing is too thin at weekends",
            "we need better staffing on the late shift",
            "poor staffing again",
            "staffing levels make it hard to cover the floor",
            "staffing has been short since the summer",
            "please look at staffing",
            "staffing on Saturdays is a real problem",
            "our staffing never matches the rota",
            "staffing cuts have gone too far",
            "the staffing plan ignores holidays",
        ),
        (
            "breaks get skipped",
            "we are always two people down",
            "nobody can take leave",
            "people are getting burnt out",
            "we cannot cover sickness",
            "new starters are not replaced",
            "the same few people do every late shift",
            "we rush every job",
            "customers wait because we are short",
            "agency cover does not know the store",
        ),
    ),
    "tools": (
        (
            "the tools we use are out of date",
            "we need better tools",
            "our tools keep crashing",
            "old tools slow us down",
            "the scanners and other tools are always breaking",
            "give us the right tools",
            "the tools for stock checks are hard to use",
            "half our tools do not work",
            "the ordering tools freeze",
            "the tools on the tills are ancient",
        ),
        (
            "the handheld scanners lose our work",
            "printing labels takes ages",
            "the stock system is slow",
            "the tablets run out of battery",
            "the software needs an update",
            "price changes are done by hand",
            "we lose time waiting for the system",
            "the label printer jams every day",
            "the old laptops are painful",
            "looking up orders is a struggle",
        ),
    ),
    "comments_other": (
        (
            "my manager is supportive",
            "training was useful",
            "rota changes come at short notice",
            "a great team to work with",
            "pay has not kept up with prices",
            "I would like more chances to learn",
            "communication from head office could be better",
            "I am proud of what we did this year",
            "the new uniforms are comfortable",
            "the staff room needs a clean",
        ),
        (
            "my manager listens to us",
            "the first aid course was good",
            "I enjoy helping customers",
            "head office rarely explains changes",
            "the bonus scheme is unclear",
            "the team pulls together",
        ),
    ),
}
_JOIN = (". ", ", ", " and ", "; ", " - ", ", and ")
_END = (".", ".", ".", "!", "")
# not English: counted and left out by the themes, as by sentiment
_FOREIGN_COMMENTS = (
    "Die Warteschlange war sehr lang und nicht gut.",
    "Le personnel est très sympa et rapide.",
    "El aparcamiento es muy caro para los clientes.",
)


def theme_texts(rng: np.random.Generator, themes) -> list[str]:
    """One comment per entry of ``themes`` (keys of the planted clause pools), worded at random.

    A text is the theme's key-word clause and 0-2 more clauses of the same theme, in varied order.
    Example: ``theme_texts(np.random.default_rng(1), ["queue"])`` gives a text containing "queue".
    """
    out = []
    for th in themes:
        key, more = _CLAUSES[th]
        parts = [key[int(rng.integers(len(key)))]]
        for j in rng.choice(len(more), int(rng.integers(0, 3)), replace=False):
            parts.insert(int(rng.integers(len(parts) + 1)), more[int(j)])
        text = parts[0]
        for part in parts[1:]:
            text += _JOIN[int(rng.integers(len(_JOIN)))] + part
        out.append(text[0].upper() + text[1:] + _END[int(rng.integers(len(_END)))])
    return out


def _plant_comment_themes(seed: int, engagement: pd.DataFrame, feedback: pd.DataFrame) -> None:
    """Reword the demo's comments (the same rows keep a comment) so that they carry planted themes."""
    rng = np.random.default_rng([seed, 17])
    has = feedback["comment"].notna().to_numpy()
    csat = feedback["csat"].to_numpy(dtype="float64", na_value=np.nan)[has]
    low, high = csat <= 3, csat >= 4
    names = np.array(["queue", "friendly", "parking", "feedback_other", "foreign"])
    probs = np.where(
        low[:, None],
        [0.6, 0.0, 0.15, 0.23, 0.02],
        np.where(high[:, None], [0.0, 0.35, 0.15, 0.48, 0.02], [0.3, 0.2, 0.2, 0.28, 0.02]),
    )
    pick = (rng.random(len(csat))[:, None] < probs.cumsum(axis=1)).argmax(axis=1)
    texts = theme_texts(rng, [str(n) if n != "foreign" else "feedback_other" for n in names[pick]])
    texts = [
        _FOREIGN_COMMENTS[i % len(_FOREIGN_COMMENTS)] if names[p] == "foreign" else t
        for i, (p, t) in enumerate(zip(pick, texts))
    ]
    feedback.loc[has, "comment"] = pd.array(texts, dtype="str")
    has_e = engagement["comment"].notna().to_numpy()
    e_pick = rng.choice(["staffing", "tools", "comments_other"], int(has_e.sum()), p=[0.35, 0.3, 0.35])
    engagement.loc[has_e, "comment"] = pd.array(theme_texts(rng, e_pick), dtype="str")


_PLATFORMS = ("twitter", "facebook", "instagram", "forum")
_CHANNELS = ("in-store", "web", "app", "email", "phone", "chat")
_SERVICE_CHANNELS = ("email", "phone", "chat")
# mean hours to a first reply: some teams meet their response-time target more often than others
_RESPONSE_HOURS = {
    "twitter": 1.2,
    "facebook": 4.0,
    "instagram": 7.0,
    "forum": 10.0,
    "email": 5.0,
    "phone": 3.0,
    "chat": 0.5,
}


@dataclass(frozen=True)
class DemoData:
    """Demo frames in canonical form (DESIGN.md kinds, store table columns) plus the planted truth.

    Frames carry ``row_no`` (the row as in a spreadsheet with its header in row 1); purchases
    carry ``line_no``. ``engagement`` has one row per respondent and ``engagement_answers`` the
    long item answers (row_no, item, score 1..5). ``mentions`` has no sentiment: the loader
    scores it with VADER as an upload without a sentiment column would be.
    """

    seed: int
    quarters: tuple[str, ...]  # "2024-Q4", ... oldest first
    start: date  # first day of the first quarter
    end: date  # last day of the last quarter
    items: tuple[str, ...]
    units: pd.DataFrame
    engagement: pd.DataFrame
    engagement_answers: pd.DataFrame
    feedback: pd.DataFrame
    purchases: pd.DataFrame
    mentions: pd.DataFrame
    customers: pd.DataFrame
    rewards: pd.DataFrame
    planted_within_coef: float  # CSAT % points per engagement-index point, within units
    confound: float  # unit CSAT level per point of unit engagement level (between units only)
    true_advocates: tuple[str, ...]
    influencer_decoy: str
    unit_quarter: pd.DataFrame  # truth per (unit_id, quarter): respondents, engagement_index, csat_prob
    small_groups: tuple[tuple[str, str], ...]  # (unit_id, quarter) groups with fewer than 5 respondents
    zero_net_orders: tuple[str, ...]  # order_ids whose lines net to exactly 0.00
    recently_rewarded: tuple[str, ...] = field(default=())  # rewarded within 90 days of `end`
    planted_reward_effect: float = 0.0  # extra orders per 90 days after a reward (none planted)
    focus_stores: tuple[str, ...] = ()  # FOCUS_DRIVER low, FOCUS_NON_DRIVER lower still, every quarter
    planted_changes: dict = field(default_factory=dict)  # unit_id -> latent index points into the last quarter

    def kinds(self) -> dict[str, pd.DataFrame]:
        """Kind -> its main frame (engagement answers are in ``engagement_answers``)."""
        return {
            "units": self.units,
            "engagement": self.engagement,
            "feedback": self.feedback,
            "purchases": self.purchases,
            "mentions": self.mentions,
            "customers": self.customers,
            "rewards": self.rewards,
        }

    def engagement_wide(self) -> pd.DataFrame:
        """One row per respondent with one column per item (blank answers are NaN)."""
        wide = self.engagement_answers.pivot(index="row_no", columns="item", values="score")
        out = self.engagement.set_index("row_no").join(wide[list(self.items)])
        return out.reset_index()


# ---------------------------------------------------------------- dates


def demo_quarters(end: date | None = None, quarters: int = 8) -> list[tuple[str, date, date]]:
    """(label, first day, last day) of the ``quarters`` complete quarters before ``end`` (default today)."""
    end = end or date.today()
    current = periods.start(end, "quarter")
    out = []
    for k in range(quarters, 0, -1):
        q0 = periods.shift(current, -k, "quarter")
        out.append((periods.label(q0, "quarter"), q0, periods.end(q0, "quarter")))
    return out


def _ascii(text: str) -> str:
    return unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode().replace("'", "").lower()


# ---------------------------------------------------------------- generation


def generate(
    seed: int = 7,
    units: int = 40,
    customers: int = 3000,
    quarters: int = 8,
    *,
    effect: float = 0.3,
    confound: float = 0.4,
    end: date | None = None,
) -> DemoData:
    """Generate the demo (see the module docstring for the model); same arguments, same data.

    ``effect`` is the planted within-unit coefficient (CSAT % points per engagement-index point);
    ``end`` defaults to today, and the data ends with the last complete quarter before it.
    """
    if units < 2 or quarters < 2:
        raise CxStatsError("the demo needs at least 2 units and 2 quarters")
    if customers < 10:
        raise CxStatsError("the demo needs at least 10 customers")
    rng = np.random.default_rng(seed)
    qs = demo_quarters(end, quarters)
    labels = tuple(q[0] for q in qs)
    start, last = qs[0][1], qs[-1][2]

    # units
    a = rng.normal(0, 7, units)
    unit_ids = [f"S{i + 1:03d}" for i in range(units)]
    towns = [_TOWNS[i % len(_TOWNS)] + ("" if i < len(_TOWNS) else f" {i // len(_TOWNS) + 1}") for i in range(units)]
    headcount = np.clip(np.round(35 - a + rng.normal(0, 8, units)), 8, 80).astype(int)
    units_df = pd.DataFrame(
        {
            "row_no": np.arange(2, units + 2),
            "unit_id": unit_ids,
            "unit_name": towns,
            "region": [_REGIONS[i] for i in rng.integers(0, len(_REGIONS), units)],
            "headcount": headcount,
            "aliases": [f"Store {i + 1}" for i in range(units)],
        }
    )

    engagement, answers, uq, plants = _engagement(rng, unit_ids, a, qs, np.random.default_rng([seed, 13]))

    # CSAT probability per (unit, quarter) from the measured index (module docstring)
    c = confound * a + rng.normal(0, 4, units)
    p_t = rng.normal(0, 1.5, quarters)
    p_t[-1] = p_t[-2]  # no chain-wide CSAT shift into the last quarter (issue 13's plant: see _engagement)
    idx = uq["engagement_index"].to_numpy()
    centre = float(np.nanmean(idx))
    prob = 78 + c[uq["u"].to_numpy()] + p_t[uq["t"].to_numpy()] + effect * (np.nan_to_num(idx, nan=centre) - centre)
    uq["csat_prob"] = np.clip(prob, 1, 99) / 100

    cust = _customers(rng, customers, units, start, last)
    feedback = _feedback(rng, uq, qs, unit_ids, headcount, cust)
    _plant_comment_themes(seed, engagement, feedback)
    purchases, zero_net = _purchases(rng, cust, unit_ids, start, last, seed)
    mentions = _mentions(rng, cust, towns, start, last)
    customers_df = cust["frame"]
    rewards, recent = _rewards(rng, cust, start, last)

    uq_out = uq.assign(unit_id=[unit_ids[u] for u in uq["u"]], quarter=[labels[t] for t in uq["t"]])
    uq_out = uq_out[["unit_id", "quarter", "respondents", "engagement_index", "csat_prob"]]
    small = tuple((r.unit_id, r.quarter) for r in uq_out.itertuples() if r.respondents < 5)
    return DemoData(
        seed=seed,
        quarters=labels,
        start=start,
        end=last,
        items=ITEMS,
        units=units_df,
        engagement=engagement,
        engagement_answers=answers,
        feedback=feedback,
        purchases=purchases,
        mentions=mentions,
        customers=customers_df,
        rewards=rewards,
        planted_within_coef=float(effect),
        confound=float(confound),
        true_advocates=tuple(cust["advocates"]),
        influencer_decoy=cust["decoy"],
        unit_quarter=uq_out.reset_index(drop=True),
        small_groups=small,
        zero_net_orders=tuple(zero_net),
        recently_rewarded=tuple(recent),
        focus_stores=tuple(unit_ids[k] for k in plants["focus"]),
        planted_changes={unit_ids[k]: d for k, d in plants["changes"].items()},
    )


def _engagement_plants(prng, n, a) -> dict:
    """Issue 13's stores, from the plants' own generator: ``focus`` (unit indexes with a kept group in
    every quarter and a unit level ``a`` in the middle half, so the planted drop, not the store's general
    level, makes the gaps; a low store would also tie the non-driver to low CSAT across units) and ``changes`` {unit index: latent points into the last quarter} (15 or more
    respondents in each of the last two quarters, so a change is measured to within about +-11 index
    points; half up, half down; none of them a focus store)."""
    n_units = n.shape[0]
    lo, hi = np.quantile(a, [0.25, 0.75])
    kept_all = np.flatnonzero((n >= 5).all(axis=1) & (a >= lo) & (a <= hi))
    k_focus = min(FOCUS_STORES, max(1, len(kept_all) // 4)) if len(kept_all) else 0
    focus = np.sort(prng.choice(kept_all, k_focus, replace=False)) if k_focus else np.array([], int)
    kept_last = np.setdiff1d(np.flatnonzero((n[:, -2:] >= 15).all(axis=1)), focus)
    k_change = min(CHANGE_STORES, n_units // 4, len(kept_last))
    picked = np.sort(prng.choice(kept_last, k_change, replace=False)) if k_change else np.array([], int)
    signs = prng.permutation(np.resize([1.0, -1.0], k_change))
    return {"focus": focus, "changes": {int(k): float(sg * CHANGE_POINTS) for k, sg in zip(picked, signs)}}


def _engagement(rng, unit_ids, a, qs, plant_rng):
    n_units, n_q, n_items = len(unit_ids), len(qs), len(ITEMS)
    q_shift = rng.normal(0, 2, n_q)
    shock = rng.normal(0, 6, (n_units, n_q))
    latent = 62 + a[:, None] + q_shift[None, :] + shock
    n = rng.integers(10, 31, (n_units, n_q))
    n_small = max(2, round(0.05 * n_units * n_q))
    small = rng.choice(n_units * n_q, n_small, replace=False)
    n.flat[small] = rng.integers(2, 5, n_small)
    plants = _engagement_plants(plant_rng, n, a)
    # into the last quarter nothing changes but in the planted stores (the rest is sampling noise only)
    latent[:, -1] = latent[:, -2]
    for k, d in plants["changes"].items():
        latent[k, -1] += d

    u = np.repeat(np.arange(n_units), n.sum(axis=1))
    t = np.concatenate([np.repeat(np.arange(n_q), n[i]) for i in range(n_units)])
    m = len(u)
    r = latent[u, t] + rng.normal(0, 14, m)
    cont = 1 + 4 * r[:, None] / 100 + np.asarray(_ITEM_OFFSETS)[None, :] + rng.normal(0, 0.7, (m, n_items))
    j_drv, j_non = ITEMS.index(FOCUS_DRIVER), ITEMS.index(FOCUS_NON_DRIVER)
    cont[:, j_non] -= 4 * (latent[u, t] - 62) / 100  # the non-driver: the respondent's own deviation only
    # the focus stores, every quarter: the driver sits FOCUS_DROP[0] below the chain's answer of that
    # quarter, or below the store's own level when that is lower (so it lags the store's other items
    # too); the non-driver FOCUS_DROP[1] below the chain, lower still
    in_focus = np.isin(u, plants["focus"])
    above = np.maximum(latent - latent.mean(axis=0, keepdims=True), 0)[u[in_focus], t[in_focus]]
    cont[in_focus, j_drv] -= 4 * above / 100 + FOCUS_DROP[0]
    cont[in_focus, j_non] -= FOCUS_DROP[1]
    scores = np.clip(np.round(cont), 1, 5)
    blank = rng.random((m, n_items)) < 0.03
    partial = rng.random(m) < 0.02  # answered only 3 items: stored, left out of the index
    for i in np.flatnonzero(partial):
        keep = rng.choice(n_items, 3, replace=False)
        blank[i] = True
        blank[i, keep] = False
    scores[blank] = np.nan

    answered = (~blank).sum(axis=1)
    resp_mean = np.nanmean(scores, axis=1)
    in_index = answered >= n_items / 2
    resp_index = np.where(in_index, 100 * (resp_mean - 1) / 4, np.nan)
    uq = (
        pd.DataFrame({"u": u, "t": t, "ri": resp_index})
        .groupby(["u", "t"], as_index=False)
        .agg(respondents=("ri", "size"), engagement_index=("ri", "mean"))
    )

    # survey dates: each unit's wave opens 5..6 weeks into the quarter and runs for two weeks
    opens = rng.integers(35, 42, (n_units, n_q))
    q_start = np.array([np.datetime64(q[1]) for q in qs])
    survey = q_start[t] + (opens[u, t] + rng.integers(0, 14, m)).astype("timedelta64[D]")
    enps = np.clip(np.round(r / 10 + rng.normal(0, 1.5, m)), 0, 10)
    enps_missing = rng.random(m) < 0.05
    comment = _take(
        _ENGAGEMENT_COMMENTS, np.where(rng.random(m) < 0.08, rng.integers(0, len(_ENGAGEMENT_COMMENTS), m), -1)
    )
    row_no = np.arange(2, m + 2)
    engagement = pd.DataFrame(
        {
            "row_no": row_no,
            "unit_id": _take(unit_ids, u),
            "survey_date": survey.astype("datetime64[s]"),
            "respondent_id": _numbered("R", np.arange(1, m + 1), 6),
            "wave": _take([q[0] for q in qs], t),
            "enps": pd.array(np.where(enps_missing, np.nan, enps), dtype="Int64"),
            "comment": comment,
        }
    )
    rows, cols = np.nonzero(~blank)
    answers = pd.DataFrame(
        {
            "row_no": row_no[rows],
            "item": _take(ITEMS, cols),
            "score": scores[rows, cols].astype(np.int16),
        }
    )
    return engagement, answers, uq, plants


def _customers(rng, n, n_units, start: date, last: date):
    ids = [f"C{i:05d}" for i in range(1, n + 1)]
    first = rng.choice(_FIRST, n)
    surname = rng.choice(_LAST, n)
    names = [f"{f} {s}" for f, s in zip(first, surname)]
    emails = [f"{_ascii(f)}.{_ascii(s)}{i}@example.com" for i, (f, s) in enumerate(zip(first, surname), 1)]
    home = rng.integers(0, n_units, n)
    n_adv = max(5, round(n / 60))
    order = rng.permutation(n)
    adv_idx = np.sort(order[:n_adv])
    decoy_idx = int(order[n_adv])
    is_adv = np.zeros(n, bool)
    is_adv[adv_idx] = True
    social = rng.random(n) < 0.35
    social[adv_idx] = True
    social[decoy_idx] = True
    handles = [
        f"@{_ascii(f)}_{_ascii(s)}{i}" if social[i - 1] else None for i, (f, s) in enumerate(zip(first, surname), 1)
    ]
    handles[decoy_idx] = "@the_big_voice"
    consent = rng.random(n) < 0.85
    consent[adv_idx] = rng.random(n_adv) < 0.9
    consent[decoy_idx] = True
    frame = pd.DataFrame(
        {
            "row_no": np.arange(2, n + 2),
            "customer_id": ids,
            "name": names,
            "email": emails,
            "handle": handles,
            "marketing_consent": consent,
            "consent_date": pd.Series(
                np.where(consent, _random_dates(rng, start - timedelta(days=365), last, n), np.datetime64("NaT")),
                dtype="datetime64[s]",
            ),
        }
    )
    return {
        "frame": frame,
        "ids": ids,
        "home": home,
        "is_adv": is_adv,
        "adv_idx": adv_idx,
        "decoy_idx": decoy_idx,
        "advocates": [ids[i] for i in adv_idx],
        "decoy": ids[decoy_idx],
        "social": social,
        "handles": handles,
    }


def _take(values, codes) -> pd.api.extensions.ExtensionArray:
    """values[codes] as a string array (code -1 is missing), without a slow object-array detour."""
    return pd.array(list(values), dtype="str").take(np.asarray(codes), allow_fill=True)


def _numbered(prefix: str, numbers, width: int) -> pd.api.extensions.ExtensionArray:
    """prefix + zero-padded number, e.g. F0000042."""
    return (prefix + pd.Series(numbers).astype("str").str.zfill(width)).array


def _random_dates(rng, lo: date, hi: date, size) -> np.ndarray:
    days = (hi - lo).days
    return np.datetime64(lo) + rng.integers(0, days + 1, size).astype("timedelta64[D]")


def _feedback(rng, uq, qs, unit_ids, headcount, cust):
    lam = 90 + 3 * headcount[uq["u"].to_numpy()]
    counts = rng.poisson(lam)
    u = np.repeat(uq["u"].to_numpy(), counts)
    t = np.repeat(uq["t"].to_numpy(), counts)
    p = np.repeat(uq["csat_prob"].to_numpy(), counts)
    m = len(u)
    q_start = np.array([np.datetime64(q[1]) for q in qs])
    q_len = np.array([(q[2] - q[1]).days + 1 for q in qs])
    day = q_start[t] + (rng.random(m) * q_len[t]).astype(int).astype("timedelta64[D]")
    satisfied = rng.random(m) < p
    csat = np.where(satisfied, rng.choice([4, 5], m, p=[0.55, 0.45]), rng.choice([1, 2, 3], m, p=[0.15, 0.3, 0.55]))
    nps_sat = rng.choice(11, m, p=_nps_probs(0.05, 0.35, 0.60))
    nps_unsat = rng.choice(11, m, p=_nps_probs(0.60, 0.30, 0.10))
    nps = np.where(satisfied, nps_sat, nps_unsat)
    has_csat = rng.random(m) < 0.85
    has_nps = (rng.random(m) < 0.40) | ~has_csat
    channel = _take(_CHANNELS, rng.choice(len(_CHANNELS), m, p=[0.4, 0.2, 0.15, 0.12, 0.08, 0.05]))
    # a quarter of answers name a customer of that store (never an advocate or the decoy)
    ordinary = ~cust["is_adv"]
    ordinary[cust["decoy_idx"]] = False
    by_unit = [np.flatnonzero(ordinary & (cust["home"] == k)) for k in range(len(unit_ids))]
    cidx = np.full(m, -1)
    named = np.flatnonzero(rng.random(m) < 0.25)
    for k in range(len(unit_ids)):
        rows = named[u[named] == k]
        if len(rows) and len(by_unit[k]):
            cidx[rows] = rng.choice(by_unit[k], len(rows))
    frame = pd.DataFrame(
        {
            "unit_id": _take(unit_ids, u),
            "date": day,
            "csat": pd.array(np.where(has_csat, csat, np.nan), dtype="Int64"),
            "nps": pd.array(np.where(has_nps, nps, np.nan), dtype="Int64"),
            "customer_id": _take(cust["ids"], cidx),
            "channel": channel,
        }
    )
    # true advocates: 1..3 promoter answers (nps only, so the planted CSAT effect stays clean)
    last = qs[-1][2]
    adv_rows = []
    for i in cust["adv_idx"]:
        k = int(rng.integers(1, 4))
        dates = _random_dates(rng, qs[0][1], last - timedelta(days=120), k - 1).tolist()
        dates.append(np.datetime64(last) - np.timedelta64(int(rng.integers(5, 110)), "D"))
        for d in dates:
            adv_rows.append(
                {
                    "unit_id": unit_ids[cust["home"][i]],
                    "date": np.datetime64(d, "D"),
                    "csat": pd.NA,
                    "nps": int(rng.integers(9, 11)),
                    "customer_id": cust["ids"][i],
                    "channel": "email",
                }
            )
    frame = pd.concat([frame, pd.DataFrame(adv_rows).astype(frame.dtypes.to_dict())], ignore_index=True)
    frame = frame.sort_values(["date", "unit_id"], kind="stable").reset_index(drop=True)
    m = len(frame)
    frame["date"] = frame["date"].astype("datetime64[s]")
    comment = _take(_FEEDBACK_COMMENTS, np.where(rng.random(m) < 0.06, rng.integers(0, len(_FEEDBACK_COMMENTS), m), -1))
    service = frame["channel"].isin(_SERVICE_CHANNELS).to_numpy()
    contacted = frame["date"].to_numpy() + (rng.integers(8 * 60, 20 * 60, m).astype("timedelta64[m]"))
    # typical first-response hours per channel (targets in DESIGN.md: 6 h email, 12 h elsewhere)
    mean_h = frame["channel"].map(_RESPONSE_HOURS).fillna(8.0).to_numpy(dtype=float)
    wait_h = rng.exponential(1.0, m) * mean_h
    responded = contacted + (wait_h * 3600).astype("timedelta64[s]")
    never = rng.random(m) < 0.05
    frame.insert(0, "row_no", np.arange(2, m + 2))
    frame.insert(5, "response_id", _numbered("F", np.arange(1, m + 1), 7))
    frame["comment"] = comment
    frame["contacted_at"] = pd.Series(np.where(service, contacted, np.datetime64("NaT")), dtype="datetime64[s]")
    frame["responded_at"] = pd.Series(
        np.where(service & ~never, responded, np.datetime64("NaT")), dtype="datetime64[s]"
    )
    return frame


def _nps_probs(detractor: float, passive: float, promoter: float) -> list[float]:
    return [detractor / 7] * 7 + [passive / 2] * 2 + [promoter / 2] * 2


SPEND_SHAPE = 4.0  # a customer's spend level ~ Gamma(4, 1/4): mean 1, CV 0.5, multiplying his lines' amounts
DROPOUT_SHARE = 0.5  # ordinary customers who stop buying at some point (issue 14: the demo has churn)
DROPOUT_WINDOW = (0.05, 0.7)  # ... after a day uniform over this part of the demo's span


def _dropout_days(seed: int, n: int, span: int) -> np.ndarray:
    """Day (from the first day of the demo) after which each customer buys nothing, -1 for those who
    never stop; from its own generator, so the other draws stay as they were. Advocates and the
    influencer decoy are left out by the caller (they buy to the end). As in the BG/NBD model, a
    customer buys at his own rate while alive and then never again; his orders before that day are
    the ones he would have made anyway (the same draws)."""
    prng = np.random.default_rng([seed, 14])
    drop = prng.random(n) < DROPOUT_SHARE
    day = np.round(span * prng.uniform(*DROPOUT_WINDOW, n)).astype(np.int64)
    return np.where(drop, day, -1)


def dropouts(data: DemoData) -> tuple[str, ...]:
    """The customers of ``data`` who stopped buying (the churn's truth, for tests: re-drawn from the
    seed, not stored with the data)."""
    stop = _dropout_days(data.seed, len(data.customers), (data.end - data.start).days)
    keep = ~data.customers["customer_id"].isin(set(data.true_advocates) | {data.influencer_decoy}).to_numpy()
    return tuple(data.customers["customer_id"][(stop >= 0) & keep])


def _purchases(rng, cust, unit_ids, start: date, last: date, seed: int):
    n = len(cust["ids"])
    adv = cust["adv_idx"]
    orders = np.where(rng.random(n) < 0.45, 1, 2 + np.minimum(rng.geometric(0.4, n) - 1, 5))
    orders[adv] = rng.integers(10, 21, len(adv))
    orders[cust["decoy_idx"]] = 1
    span = (last - start).days
    who = np.repeat(np.arange(n), orders)
    day = rng.integers(0, span + 1, len(who))
    first = np.concatenate([[0], np.cumsum(orders)[:-1]])  # each customer's first order
    day[first[adv]] = span - rng.integers(0, 30, len(adv))  # advocates bought in the last month
    n_lines = 1 + rng.binomial(3, 0.35, len(who))
    # a few multi-order customers have an exchange netting to exactly zero: x + y - (x + y)
    eligible = np.flatnonzero((orders[who] >= 2) & ~cust["is_adv"][who])
    zero = rng.choice(eligible, min(len(eligible), max(3, len(who) // 150)), replace=False)
    n_lines[zero] = 3
    is_zero = np.zeros(len(who), bool)
    is_zero[zero] = True
    line_order = np.repeat(np.arange(len(who)), n_lines)
    line_no = np.arange(len(line_order)) - np.repeat(np.cumsum(n_lines) - n_lines, n_lines) + 1
    # customers differ in what they spend (Gamma-Gamma's premise; its own generator: the draws stay)
    level = np.random.default_rng([seed, 15]).gamma(SPEND_SHAPE, 1 / SPEND_SHAPE, n)
    cents = np.round(rng.lognormal(np.log(18), 0.6, len(line_order)) * level[who[line_order]] * 100).astype(np.int64)
    z3 = np.flatnonzero(is_zero[line_order] & (line_no == 3))
    cents[z3] = -(cents[z3 - 1] + cents[z3 - 2])
    # about 4% of orders get a later return of their first line (a separate order, negative amount)
    ret = np.flatnonzero((rng.random(len(who)) < 0.04) & ~is_zero)
    first_line = np.cumsum(n_lines) - n_lines
    ret_day = np.minimum(day[ret] + rng.integers(1, 22, len(ret)), span)
    # churn (after the last draw, so every draw stays as it was): a dropout buys nothing, and returns
    # nothing, after the day he stops; his first order is kept (he was a customer)
    stop = _dropout_days(seed, n, span)
    stop[adv] = -1
    stop[cust["decoy_idx"]] = -1
    until = np.where(stop >= 0, np.maximum(stop, np.minimum.reduceat(day, first)), span)
    keep_o = day <= until[who]
    keep_r = keep_o[ret] & (ret_day <= until[who[ret]])

    # number orders and returns together, in date order
    all_who = np.concatenate([who, who[ret]])
    all_day = np.concatenate([day, ret_day])
    seq = np.lexsort((all_who, all_day))
    number = np.empty(len(seq), np.int64)
    number[seq] = np.arange(1, len(seq) + 1)
    lines = pd.DataFrame(
        {
            "o": np.concatenate([number[line_order], number[len(who) :]]),
            "line_no": np.concatenate([line_no, np.ones(len(ret), np.int64)]),
            "c": np.concatenate([who[line_order], who[ret]]),
            "day": np.concatenate([day[line_order], ret_day]),
            "cents": np.concatenate([cents, -cents[first_line[ret]]]),
            "keep": np.concatenate([keep_o[line_order], keep_r]),
        }
    )
    lines = lines[lines["keep"]].sort_values(["o", "line_no"]).reset_index(drop=True)
    kept_numbers, lines["o"] = np.unique(lines["o"].to_numpy(), return_inverse=True)
    lines["o"] += 1  # numbered 1.. in date order again, without the gaps of the orders not made
    frame = pd.DataFrame(
        {
            "row_no": np.arange(2, len(lines) + 2),
            "line_no": lines["line_no"].to_numpy(),
            "customer_id": _take(cust["ids"], lines["c"].to_numpy()),
            "order_date": (np.datetime64(start) + lines["day"].to_numpy().astype("timedelta64[D]")).astype(
                "datetime64[s]"
            ),
            # stored as DECIMAL(18,2): whole cents / 100 cast exactly
            "amount": lines["cents"].to_numpy() / 100,
            "order_id": _numbered("O", lines["o"].to_numpy(), 6),
            "unit_id": _take(unit_ids, cust["home"][lines["c"].to_numpy()]),
        }
    )
    zero_net = sorted(f"O{k:06d}" for k in np.searchsorted(kept_numbers, number[zero[keep_o[zero]]]) + 1)
    return frame, zero_net


_POS, _NEU, _NEG, _FOR = 0, 1, 2, 3  # mention kinds, indexing _POOLS
_POOLS = (_POSITIVE, _NEUTRAL, _NEGATIVE, _FOREIGN)


def _mentions(rng, cust, towns, start: date, last: date):
    span_s = int((last - start).days * 86400 + 86399)
    recent_s = span_s - 120 * 86400
    social = np.flatnonzero(cust["social"])
    followers = np.round(rng.lognormal(np.log(180), 1.3, len(social))).astype(np.int64)
    is_adv = cust["is_adv"][social]
    is_decoy = social == cust["decoy_idx"]
    ordinary = ~is_adv & ~is_decoy
    # ordinary: 0..3 posts of mixed kinds, at most 2 positive
    k_ord = np.minimum(rng.poisson(1.5, len(social)), 3) * ordinary
    # advocates: 4..7 positive posts (the last within 120 days), half of them one neutral post too
    k_pos = rng.integers(4, 8, len(social)) * is_adv
    k_neu = (rng.random(len(social)) < 0.5) * is_adv + 2 * is_decoy

    who_o = np.repeat(np.arange(len(social)), k_ord)
    kind_o = rng.choice(4, len(who_o), p=[0.45, 0.35, 0.15, 0.05])
    first = np.repeat(np.cumsum(k_ord) - k_ord, k_ord)
    is_pos = (kind_o == _POS).astype(np.int64)
    before = np.cumsum(is_pos) - is_pos  # positives earlier in the whole array
    pos_before = before - before[first]  # ... earlier for the same customer
    kind_o[(kind_o == _POS) & (pos_before >= 2)] = _NEU
    t_o = rng.integers(0, span_s, len(who_o))

    who_p = np.repeat(np.arange(len(social)), k_pos)
    t_p = rng.integers(0, span_s, len(who_p))
    last_p = np.cumsum(k_pos)[is_adv] - 1
    t_p[last_p] = rng.integers(recent_s, span_s, len(last_p))
    who_n = np.repeat(np.arange(len(social)), k_neu)
    t_n = rng.integers(0, span_s, len(who_n))

    who = np.concatenate([who_o, who_p, who_n])
    kind = np.concatenate([kind_o, np.full(len(who_p), _POS), np.full(len(who_n), _NEU)])
    when = np.concatenate([t_o, t_p, t_n])
    template = rng.integers(0, 1 << 30, len(who))
    c = social[who]
    home = cust["home"][c]
    texts = [_POOLS[k][t % len(_POOLS[k])].format(s=towns[h]) for k, t, h in zip(kind, template, home)]
    fol = np.where(is_decoy[who], 2_500_000, followers[who])
    frame = pd.DataFrame(
        {
            "customer_id": _take(cust["ids"], c),
            "handle": _take(cust["handles"], c),
            "posted_at": np.datetime64(start, "s") + when.astype("timedelta64[s]"),
            "platform": _take(_PLATFORMS, rng.integers(0, len(_PLATFORMS), len(who))),
            "text": pd.array(texts, dtype="str"),
            "followers": fol,
        }
    )
    # a few posts by people who are not (yet) customers: handle only
    n_out = max(3, len(frame) // 30)
    out = pd.DataFrame(
        {
            "customer_id": pd.array([None] * n_out, dtype="str"),
            "handle": pd.array([f"@passer_by{j}" for j in range(n_out)], dtype="str"),
            "posted_at": np.datetime64(start, "s") + rng.integers(0, span_s, n_out).astype("timedelta64[s]"),
            "platform": _take(_PLATFORMS, np.arange(n_out) % len(_PLATFORMS)),
            "text": pd.array(
                [(_NEUTRAL if j % 2 else _POSITIVE)[j % 5].format(s=towns[j % len(towns)]) for j in range(n_out)],
                dtype="str",
            ),
            "followers": np.round(rng.lognormal(np.log(120), 1.0, n_out)).astype(np.int64),
        }
    )
    frame = pd.concat([frame, out], ignore_index=True)
    m = len(frame)
    f = frame["followers"].to_numpy()
    frame["likes"] = rng.poisson(0.02 * np.minimum(f, 1e5) + 1)
    frame["shares"] = rng.poisson(0.004 * np.minimum(f, 1e5) + 0.2)
    replied = rng.random(m) < 0.5
    mean_h = frame["platform"].map(_RESPONSE_HOURS).to_numpy(dtype=float)  # DESIGN.md: 1 h on twitter ...
    reply = frame["posted_at"] + pd.to_timedelta(np.round(rng.exponential(1.0, m) * mean_h * 3600), unit="s")
    frame["replied_at"] = reply.where(replied).astype("datetime64[s]")
    frame = frame.sort_values(["posted_at", "handle"], kind="stable").reset_index(drop=True)
    frame.insert(0, "row_no", np.arange(2, m + 2))
    return frame


def _rewards(rng, cust, start: date, last: date):
    adv = list(cust["adv_idx"])
    rng.shuffle(adv)
    n_adv = len(adv)
    old = adv[: max(1, n_adv * 3 // 10)]
    recent = adv[len(old) : len(old) + max(1, n_adv // 12)]
    ordinary = np.flatnonzero(~cust["is_adv"])
    others = rng.choice(ordinary, min(8, len(ordinary)), replace=False)
    rows = []
    for i in old + list(others):
        d = start + timedelta(days=int(rng.integers(180, max(181, (last - start).days - 100))))
        rows.append((cust["ids"][i], d, "voucher", 20.0, "thank you for your support"))
    for i in recent:
        d = last - timedelta(days=int(rng.integers(10, 60)))
        rows.append((cust["ids"][i], d, "gift box", 35.0, "champion of the quarter"))
    frame = pd.DataFrame(rows, columns=["customer_id", "reward_date", "reward_type", "value", "note"])
    frame["reward_date"] = pd.to_datetime(frame["reward_date"]).astype("datetime64[s]")
    frame = frame.sort_values("reward_date", kind="stable").reset_index(drop=True)
    frame.insert(0, "row_no", np.arange(2, len(frame) + 2))
    return frame, [cust["ids"][i] for i in recent]


# ---------------------------------------------------------------- loading


def _sha256(*frames: pd.DataFrame) -> str:
    """Content hash of the frames (columns and row values; pandas' row hash is fixed-keyed, so stable)."""
    h = hashlib.sha256()
    for f in frames:
        h.update("\x1f".join(map(str, f.columns)).encode())
        h.update(pd.util.hash_pandas_object(f, index=False).to_numpy().tobytes())
    return h.hexdigest()


def _live_batches(con) -> list[str]:
    return [r[0] or "" for r in con.execute("SELECT file_name FROM batches WHERE NOT undone").fetchall()]


def _load(con, data: DemoData) -> dict[str, int]:
    from .sentiment import compound

    mentions = data.mentions.copy()
    # templates repeat: score each distinct text once
    uniq = mentions["text"].dropna().unique().tolist()
    scores = dict(zip(uniq, compound(uniq)))
    mentions["sentiment"] = mentions["text"].map(scores).astype("float64")
    mentions["sentiment_source"] = np.where(mentions["sentiment"].isna(), "unscored", "vader")
    items = pd.DataFrame({"item": list(data.items), "scale": 5, "reverse_keyed": False})
    plan = [
        ("units", {"units": data.units}),
        (
            "engagement",
            {"engagement": data.engagement, "engagement_answers": data.engagement_answers, "engagement_items": items},
        ),
        ("feedback", {"feedback": data.feedback}),
        ("purchases", {"purchases": data.purchases}),
        ("mentions", {"mentions": mentions}),
        ("customers", {"customers": data.customers}),
        ("rewards", {"rewards": data.rewards}),
    ]
    rows: dict[str, int] = {}
    done: list[int] = []
    try:
        for kind, tables in plan:
            main = tables[kind]
            done.append(
                store.load_batch(
                    con,
                    kind,
                    tables,
                    file_name=f"demo:{kind}",
                    sha256=_sha256(*tables.values()),
                    rows=len(main),
                    loaded_by="demo",
                    note=f"demo seed {data.seed}",
                )
            )
            rows[kind] = len(main)
    except Exception:
        # one batch per kind cannot share a transaction: take back the kinds already loaded,
        # so a failed demo never leaves half a demo that ensure_demo would then keep
        for batch_id in reversed(done):
            store.undo(con, batch_id, viewer=ADMIN)
        raise
    return rows


def build_demo(db=None, seed: int = 7, units: int = 40, customers: int = 3000, *, end: date | None = None) -> str:
    """Generate the demo and load every kind as one batch each; returns a one-paragraph summary.

    Refuses a database that already has live batches (the demo never mixes with real data).
    """
    data = generate(seed=seed, units=units, customers=customers, end=end)
    path = store.db_path(db)
    with store.connect(db) as con:
        if _live_batches(con):
            raise CxStatsError(f"database {path} already has data; use a new --db (or undo its batches first)")
        rows = _load(con, data)
    return (
        f"Demo data (seed {seed}) loaded into {path}: {rows['units']:,} units, {len(data.quarters)} quarters "
        f"({data.quarters[0]} to {data.quarters[-1]}), {rows['engagement']:,} engagement respondents "
        f"({len(data.engagement_answers):,} item answers on {len(data.items)} items; {len(data.small_groups)} "
        f"unit-quarter groups below 5 respondents), {rows['feedback']:,} feedback rows, {rows['purchases']:,} "
        f"purchase lines, {rows['mentions']:,} mentions, {rows['customers']:,} customers and "
        f"{rows['rewards']:,} rewards. Planted: {data.planted_within_coef:+.2f} CSAT % points per "
        f"engagement-index point within units, {len(data.true_advocates)} true advocates, a low "
        f"'{FOCUS_DRIVER}' (a CSAT driver) in {', '.join(data.focus_stores) or 'no store'}, changes into "
        f"{data.quarters[-1]} in {', '.join(data.planted_changes) or 'no store'}, and customers who stop buying."
    )


_ENSURE_LOCK = threading.Lock()


def ensure_demo(db=None) -> bool:
    """Fill a database that has no live batches with the default demo; True when it did.

    The app calls this on first start and then labels its pages "demo data" (see ``is_demo``).
    """
    with _ENSURE_LOCK:  # two first sessions of one app process must not both load
        with store.connect(db) as con:
            if _live_batches(con):
                return False
        build_demo(db)
        return True


def is_demo(db=None) -> bool:
    """True when the database holds live batches and every one of them is demo data."""
    with store.connect(db) as con:
        names = _live_batches(con)
    return bool(names) and all(n.startswith("demo:") for n in names)


# ---------------------------------------------------------------- messy files for the upload

MESSY_ERROR = {"file": "engagement_messy_error.xlsx", "row": 9, "column": ITEMS[2], "value": "Agre"}
"""Where engagement_messy_error.xlsx has its deliberate error (row as Excel numbers it)."""

MESSY_UNITS = ("S001", "S002", "S003", "S004", "S005", "S006")


def _messy_engagement_rows(rng, wave_start: date):
    rows = []
    tenure = ("under 1 year", "1-2 years", "3-5 years", "5+ years")
    k = 0
    for u in MESSY_UNITS:
        for _ in range(int(rng.integers(7, 10))):
            k += 1
            level = rng.normal(3.6, 0.7)
            answers: list[str | None] = []
            for off in _ITEM_OFFSETS:
                x = int(np.clip(np.round(level + off + rng.normal(0, 0.7)), 1, 5))
                answers.append(LIKERT_LABELS[x - 1])
            if rng.random() < 0.1:
                answers[int(rng.integers(0, len(answers)))] = "N/A"
            if rng.random() < 0.1:
                answers[int(rng.integers(0, len(answers)))] = None
            when = datetime.combine(wave_start + timedelta(days=int(rng.integers(0, 14))), datetime.min.time())
            enps = int(np.clip(np.round(level * 2 + rng.normal(0, 1.5)), 0, 10))
            comment = str(rng.choice(_ENGAGEMENT_COMMENTS)) if rng.random() < 0.2 else None
            rows.append([u, when, f"P-{4000 + k}", str(rng.choice(tenure)), *answers, enps, comment])
    return rows


def _write_engagement_xlsx(path: Path, rows, title: str, error: dict | None = None) -> None:
    from openpyxl import Workbook
    from openpyxl.styles import Font

    wb = Workbook()
    ws = wb.active
    ws.title = "Pulse survey"
    ws.append([title])
    ws["A1"].font = Font(bold=True, size=14)
    ws.append([])
    header = ["Store", "Survey Date", "Respondent", "Tenure", *ITEMS, "eNPS", "Comments"]
    ws.append(header)
    for c in ws[3]:
        c.font = Font(bold=True)
    for r in rows:
        ws.append(r)
    for row in ws.iter_rows(min_row=4, min_col=2, max_col=2):
        row[0].number_format = "dd/mm/yyyy"
    ws.append(["Total", None, len(rows)])
    ws.cell(ws.max_row, 1).font = Font(bold=True)
    if error:
        ws.cell(error["row"], header.index(error["column"]) + 1, error["value"])
    ws.column_dimensions["B"].width = 12
    wb.properties.creator = "cxstats demo"
    wb.properties.created = datetime(2026, 1, 1)
    buf = io.BytesIO()
    wb.save(buf)
    path.write_bytes(_stable_zip(buf.getvalue()))


def _stable_zip(xlsx: bytes) -> bytes:
    """Same workbook, same bytes: fixed zip entry times and 'modified' stamp (openpyxl writes now)."""
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(xlsx)) as src, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            data = src.read(info.filename)
            if info.filename == "docProps/core.xml":
                data = re.sub(rb"(<dcterms:modified[^>]*>)[^<]*", rb"\g<1>2026-01-01T00:00:00Z", data)
            dst.writestr(
                zipfile.ZipInfo(info.filename, date_time=(2026, 1, 1, 0, 0, 0)),
                data,
                compress_type=zipfile.ZIP_DEFLATED,
            )
    return out.getvalue()


MESSY_FILES_END = date(2026, 11, 26)
"""The committed example files are dated from this day, so regenerating them gives the same bytes."""


def write_messy_files(out_dir="data/demo", seed: int = 7, end: date = MESSY_FILES_END) -> list[Path]:
    """Write the kinds of files managers send, for trying the upload (returns the paths written).

    Dates fall in the quarter after the demo's last one as of ``end`` (a new wave, new feedback);
    unit and customer ids exist in the default demo.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed + 1000)
    data = generate(seed=seed, units=40, customers=3000, end=end)
    new_q = data.end + timedelta(days=1)
    wave_start = new_q + timedelta(days=9)
    written = []

    rows = _messy_engagement_rows(rng, wave_start)
    title = f"Employee pulse survey {periods.label(new_q, 'quarter')} - all stores (export)"
    p = out / "engagement_messy.xlsx"
    _write_engagement_xlsx(p, rows, title)
    written.append(p)
    p = out / "engagement_messy_error.xlsx"
    _write_engagement_xlsx(p, rows, title, MESSY_ERROR)
    written.append(p)

    # feedback: semicolons, cp1252, decimal commas, day-first dates with days above 12
    ordinary = [c for c in data.customers["customer_id"] if c not in set(data.true_advocates)]
    comments = [
        "Zoë at the till was lovely",
        "Served by José, très rapide",
        "Queue was too long",
        "Café corner was closed",
        "",
        "Great help from Renée",
        "",
        "Could not find my size",
    ]
    lines = ["Feedback ID;Branch;Date;Satisfaction;Likelihood to recommend;Customer;Channel;Comments;Basket value"]
    for i in range(30):
        d = new_q + timedelta(days=int(rng.integers(0, 50)))
        if i == 0:
            d = new_q + timedelta(days=20)  # a day above 12 makes the column unambiguous
        csat = "" if i % 7 == 3 else str(int(rng.integers(1, 6)))
        nps = "" if i % 3 == 1 else str(int(rng.integers(0, 11)))
        cust = ordinary[int(rng.integers(0, len(ordinary)))] if i % 2 == 0 else ""
        basket = f"{rng.integers(300, 12000) / 100:.2f}".replace(".", ",")
        lines.append(
            ";".join(
                [
                    f"W-{7001 + i}",
                    MESSY_UNITS[i % len(MESSY_UNITS)],
                    d.strftime("%d/%m/%Y"),
                    csat,
                    nps,
                    cust,
                    ["in-store", "email", "web"][i % 3],
                    comments[i % len(comments)],
                    basket,
                ]
            )
        )
    p = out / "feedback_messy.csv"
    p.write_bytes(("\r\n".join(lines) + "\r\n").encode("cp1252"))
    written.append(p)

    # small clean examples, one per kind, canonical headers
    clean = {
        "units.csv": data.units.drop(columns="row_no"),
        "purchases.csv": _clean_purchases(rng, ordinary, new_q),
        "mentions.csv": _clean_mentions(data, new_q),
        "customers.csv": _clean_customers(data, new_q),
        "rewards.csv": pd.DataFrame(
            {
                "customer_id": list(data.true_advocates[:3]),
                "reward_date": [(new_q + timedelta(days=d)).isoformat() for d in (12, 19, 26)],
                "reward_type": ["voucher", "voucher", "gift box"],
                "value": ["20.00", "20.00", "35.00"],
                "note": ["thanks for the lovely posts", "", "champion of the quarter"],
            }
        ),
    }
    for name, frame in clean.items():
        p = out / name
        frame.to_csv(p, index=False, lineterminator="\n")
        written.append(p)
    return written


def _clean_purchases(rng, ordinary, new_q: date) -> pd.DataFrame:
    rows = []
    for k in range(8):
        cid = ordinary[k * 37 % len(ordinary)]
        d = (new_q + timedelta(days=3 + 5 * k)).isoformat()
        for _ in range(1 + k % 3):
            rows.append((f"W{1001 + k}", cid, d, f"{rng.integers(300, 6000) / 100:.2f}", MESSY_UNITS[k % 6]))
    rows.append(("W1009", rows[0][1], (new_q + timedelta(days=10)).isoformat(), f"-{rows[0][3]}", MESSY_UNITS[0]))
    return pd.DataFrame(rows, columns=["order_id", "customer_id", "order_date", "amount", "unit_id"])


def _clean_mentions(data: DemoData, new_q: date) -> pd.DataFrame:
    with_handle = data.customers.dropna(subset=["handle"])
    texts = [_POSITIVE[0], _NEUTRAL[1], _NEGATIVE[3], _POSITIVE[4], _NEUTRAL[0], _POSITIVE[6]]
    rows = []
    for k, t in enumerate(texts):
        c = with_handle.iloc[k * 11 % len(with_handle)]
        rows.append(
            (
                c["customer_id"],
                c["handle"],
                f"{(new_q + timedelta(days=4 + 6 * k)).isoformat()} 1{k}:15:00",
                _PLATFORMS[k % 4],
                t.format(s=data.units["unit_name"].iloc[k]),
                100 + 37 * k,
            )
        )
    return pd.DataFrame(rows, columns=["customer_id", "handle", "posted_at", "platform", "text", "followers"])


def _clean_customers(data: DemoData, new_q: date) -> pd.DataFrame:
    n = len(data.customers)
    rows = [
        (
            f"C{n + k + 1:05d}",
            name,
            f"{_ascii(name).replace(' ', '.')}@example.com",
            "yes" if k % 3 else "no",
            (new_q + timedelta(days=k)).isoformat() if k % 3 else "",
        )
        for k, name in enumerate(("Ada Lovelace", "Renée Dubois", "Tomás Ortega", "Grace Hopper", "Omar Haddad"))
    ]
    # an existing customer withdrawing consent: applies at once (DESIGN.md)
    c = data.customers[
        data.customers["marketing_consent"] & ~data.customers["customer_id"].isin(data.true_advocates)
    ].iloc[0]
    rows.append((c["customer_id"], c["name"], c["email"], "no", ""))
    return pd.DataFrame(rows, columns=["customer_id", "name", "email", "marketing_consent", "consent_date"])


if __name__ == "__main__":  # python -m cxstats.demo: regenerate data/demo/
    for written in write_messy_files(os.environ.get("CXSTATS_DEMO_DIR", "data/demo")):
        print(written)
