"""Builders for the advocate and programme tests (tests/test_advocates.py, tests/test_programme.py; holds no tests).

`load` stores rows as one batch of a kind through store.load_batch, as an import would; `buy`, `post` and
`answer` make purchase, mention and feedback rows dated in days before `AS_OF`.
"""

from __future__ import annotations

import uuid
from datetime import date, timedelta

import pandas as pd

from cxstats import store

AS_OF = date(2024, 6, 30)


def load(con, kind: str, rows: list[dict]) -> int:
    """Store rows as one batch of `kind`, as an import would."""
    df = pd.DataFrame(rows)
    df.insert(0, "row_no", range(2, 2 + len(df)))
    if kind == "purchases" and "line_no" not in df:
        df["line_no"] = 1
    if kind == "mentions" and "sentiment_source" not in df:
        df["sentiment_source"] = "file"
    return store.load_batch(con, kind, {kind: df}, file_name=f"{kind}.csv", sha256=uuid.uuid4().hex, rows=len(df))


def buy(cid, *days_before, amount=50.0, order_id=None):
    """Purchase rows: one order per entry of days_before (days before AS_OF)."""
    return [
        {
            "customer_id": cid,
            "order_date": AS_OF - timedelta(days=d),
            "amount": amount,
            "order_id": order_id or f"{cid}-o{i}-{d}",
        }
        for i, d in enumerate(days_before)
    ]


def post(cid=None, days_before=10, sentiment=0.8, handle=None, followers=100, text="love it"):
    return {
        "customer_id": cid,
        "handle": handle,
        "posted_at": pd.Timestamp(AS_OF - timedelta(days=days_before)),
        "platform": "x",
        "text": text,
        "followers": followers,
        "sentiment": sentiment,
    }


def answer(cid, days_before=10, nps=None, csat=None):
    return {"unit_id": "U1", "date": AS_OF - timedelta(days=days_before), "customer_id": cid, "nps": nps, "csat": csat}
