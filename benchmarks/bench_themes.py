"""Comment themes at scale: cxstats.themes beside a plain CountVectorizer + LDA script on the same texts.

    python benchmarks/bench_themes.py [--texts 100000] [--repeat 3] [--seed 1]

Builds (once, cached in $TMPDIR) a database with --texts feedback rows, each with a CSAT answer and
a comment worded by the demo's generator (cxstats.demo.theme_texts: queues with low CSAT, friendly
staff with high CSAT, parking, and assorted other comments), then runs each side --repeat times,
each run in a fresh subprocess (peak = ru_maxrss of that run):

- cxstats: ``themes.themes(con, "feedback", viewer=ADMIN)`` from the database file: read, language
  check and VADER per distinct text, TF-IDF (words and pairs, English stop words, min_df 3), the
  number of themes chosen on a 10,000-text sample (NMF fits k = 4, 5, ... until the 2% rule stops),
  the final NMF, assignments with "other", and per theme share, sentiment and CSAT with/without.
- peer: a plain script on the same texts read from the same file: VADER (``polarity_scores`` per
  distinct text, no language check), CountVectorizer (words and pairs, English stop words, min_df 3),
  LatentDirichletAllocation with as many topics as cxstats chose (scikit-learn defaults: batch
  variational Bayes, 10 iterations, random_state 0), each text to its most likely topic, and per
  topic share, mean sentiment and CSAT %. The peer chooses no number of topics: it is given one.

The peer is slow (batch LDA over 100,000 texts): ``--peer-repeat 1`` runs it once.
Both sides report how well they recover the planted themes (share of each planted theme's texts in
its most common theme). Wall and CPU seconds (process_time) are reported as medians over runs.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
PLANTED = ("queue", "friendly", "parking")


def build(path: Path, n: int, seed: int) -> None:
    import numpy as np
    import pandas as pd

    from cxstats import demo, store

    rng = np.random.default_rng(seed)
    kind = rng.choice(["queue", "friendly", "parking", "feedback_other"], n, p=[0.25, 0.25, 0.2, 0.3])
    satisfied = rng.random(n) < np.select([kind == "queue", kind == "friendly"], [0.35, 0.9], 0.72)
    csat = np.where(satisfied, rng.choice([4, 5], n), rng.choice([1, 2, 3], n))
    frame = pd.DataFrame(
        {
            "row_no": np.arange(2, n + 2),
            "unit_id": [f"S{1 + i % 50:03d}" for i in range(n)],
            "date": pd.Timestamp("2025-01-01") + pd.to_timedelta(rng.integers(0, 365, n), unit="D"),
            "csat": csat,
            "response_id": [f"F{i:07d}" for i in range(n)],
            "comment": demo.theme_texts(rng, kind),
        }
    )
    with store.connect(path) as con:
        con.register("frame", frame)
        con.execute("""INSERT INTO feedback (batch_id, row_no, unit_id, date, csat, response_id, comment)
                       SELECT 1, row_no, unit_id, CAST(date AS DATE), csat, response_id, comment FROM frame""")
        con.unregister("frame")


def recovery(texts, assignment) -> dict:
    import collections

    out = {}
    for key in PLANTED:
        ids = [a for t, a in zip(texts, assignment) if key in t.lower()]
        out[key] = collections.Counter(ids).most_common(1)[0][1] / len(ids) if ids else None
    return out


def run_cxstats(db: str) -> dict:
    from cxstats import ADMIN, store, themes

    with store.connect(db) as con:
        r, texts, assignment = themes._run(con, "feedback", ADMIN, None)
    return {
        "k": r.k,
        "n_texts": r.n_texts,
        "labels": [t.label for t in r.themes],
        "recovery": recovery(texts, assignment),
    }


def run_peer(db: str, k: int) -> dict:
    import duckdb
    import numpy as np
    from sklearn.decomposition import LatentDirichletAllocation
    from sklearn.feature_extraction.text import CountVectorizer
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

    con = duckdb.connect(db, read_only=True)
    rows = con.execute("""SELECT comment, csat FROM feedback WHERE comment IS NOT NULL AND trim(comment) <> ''
                          ORDER BY date, response_id, batch_id, row_no""").fetchall()
    con.close()
    texts = [t[:1000] for t, _ in rows]
    csat = np.array([np.nan if c is None else c for _, c in rows], dtype="float64")
    analyzer = SentimentIntensityAnalyzer()
    score = {t: analyzer.polarity_scores(t)["compound"] for t in dict.fromkeys(texts)}
    sent = np.array([score[t] for t in texts])
    vec = CountVectorizer(ngram_range=(1, 2), stop_words="english", min_df=3)
    x = vec.fit_transform(texts)
    lda = LatentDirichletAllocation(n_components=k, random_state=0)
    topic = lda.fit_transform(x).argmax(axis=1)
    names = vec.get_feature_names_out()
    labels, table = [], []
    for j in range(k):
        mask = topic == j
        labels.append(", ".join(names[i] for i in np.argsort(-lda.components_[j])[:3]))
        c = csat[mask]
        table.append(
            (
                float(mask.mean()),
                float(sent[mask].mean()) if mask.any() else None,
                float(100 * (c[~np.isnan(c)] >= 4).mean()) if mask.any() else None,
            )
        )
    return {"k": k, "n_texts": len(texts), "labels": labels, "recovery": recovery(texts, topic)}


def child(side: str, db: str, k: int) -> None:
    t0, c0 = time.perf_counter(), time.process_time()
    out = run_cxstats(db) if side == "cxstats" else run_peer(db, k)
    out.update(
        wall=time.perf_counter() - t0,
        cpu=time.process_time() - c0,
        peak_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    )
    print(json.dumps(out))


def spawn(side: str, db: Path, k: int) -> dict:
    out = subprocess.run(
        [sys.executable, __file__, "--child", side, "--db", str(db), "--k", str(k)],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--texts", type=int, default=100_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--peer-repeat", type=int, default=None, help="runs of the peer (default: --repeat)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--child", default=None)
    ap.add_argument("--db", default=None)
    ap.add_argument("--k", type=int, default=4)
    args = ap.parse_args()
    if args.child:
        child(args.child, args.db, args.k)
        return
    db = Path(tempfile.gettempdir()) / f"cxstats_bench_themes_{args.texts}_{args.seed}.duckdb"
    if not db.exists():
        t = time.perf_counter()
        build(db, args.texts, args.seed)
        print(f"built {db} in {time.perf_counter() - t:.1f} s")
    print(f"load average {os.getloadavg()[0]:.1f}")
    runs: dict[str, list[dict]] = {"cxstats": [], "peer": []}  # cxstats first: the peer gets its k
    k = 4
    peer_repeat = args.repeat if args.peer_repeat is None else args.peer_repeat
    for i in range(max(args.repeat, peer_repeat)):
        if i < args.repeat:
            runs["cxstats"].append(spawn("cxstats", db, k))
            k = runs["cxstats"][-1]["k"]
            print(f"  cxstats {runs['cxstats'][-1]['wall']:.2f} s (load {os.getloadavg()[0]:.1f})", flush=True)
        if i < peer_repeat:
            runs["peer"].append(spawn("peer", db, k))
            print(f"  peer {runs['peer'][-1]['wall']:.2f} s (load {os.getloadavg()[0]:.1f})", flush=True)
    print(f"load average {os.getloadavg()[0]:.1f}")
    med = {}
    for side, rs in runs.items():
        med[side] = {m: statistics.median(r[m] for r in rs) for m in ("wall", "cpu", "peak_mb")}
        last = rs[-1]
        rec = ", ".join(f"{key} {v:.0%}" for key, v in last["recovery"].items())
        walls = ", ".join(f"{r['wall']:.2f}" for r in rs)
        print(
            f"{side:8s} k={last['k']} texts={last['n_texts']:,} median wall {med[side]['wall']:.2f} s "
            f"(runs {walls}), CPU {med[side]['cpu']:.2f} s, "
            f"peak {med[side]['peak_mb']:.0f} MB; planted in one theme: {rec}"
        )
        print(f"         labels: {' | '.join(last['labels'])}")
    print(
        f"peer/cxstats wall {med['peer']['wall'] / med['cxstats']['wall']:.2f}x, "
        f"CPU {med['peer']['cpu'] / med['cxstats']['cpu']:.2f}x"
    )


if __name__ == "__main__":
    main()
