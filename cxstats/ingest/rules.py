"""Rules per kind: who may upload what, engagement items, units, order lines, re-organisations, mentions."""

from __future__ import annotations

import difflib

import numpy as np
import pandas as pd

from cxstats import AccessDenied, Viewer, store
from cxstats.schema import KINDS, LIKERT_5, LIKERT_7, normalise_header

from .cells import _add_row_errors, _factorize, _is_blank, _likert_value, _show, _spread
from .results import Problem

# DESIGN.md: survey (engagement) files are loaded by admins only; a preview of one against the
# stored respondents ("already stored", "other values") would tell a manager which answers exist
UPLOAD_KINDS = {
    "admin": tuple(KINDS),
    "manager": ("feedback", "purchases"),
    "marketing": ("purchases", "mentions", "customers", "rewards"),
    "leader": (),
}


def _check_upload_allowed(viewer: Viewer, kind: str) -> None:
    if kind not in UPLOAD_KINDS.get(viewer.role, ()):
        allowed = UPLOAD_KINDS.get(viewer.role, ())
        can = f"you may upload {', '.join(allowed)}" if allowed else "your role does not upload files"
        raise AccessDenied(f"role {viewer.role!r} may not upload {kind} files; {can}")


def _refuse_small_changes_to_kept_groups(a, con, out: pd.DataFrame, viewer: Viewer) -> None:
    """DESIGN.md, "Differencing and oracles": a batch may not change an already reported (kept)
    group by fewer than min_group respondents; figures before and after would show those people."""
    from cxstats import metrics

    small = metrics.small_changes_to_kept_groups(con, out, viewer=viewer)
    if small.empty:
        return
    mg = store.settings(con).min_group
    for r in small.itertuples(index=False):
        change = " and ".join(
            part
            for part in (
                f"add {r.added:,} respondent(s)" if r.added else "",
                f"move {r.removed:,} of them to another period" if r.removed else "",
            )
            if part
        )
        a.fatal.append(
            Problem(
                None,
                None,
                (
                    f"unit {r.unit_id}, {r.period} (a group already stored, {r.respondents:,} respondents): this file "
                    f"would {change}. A reported group may only change by at least {mg} respondents (the anonymity "
                    "threshold) at once, and stored respondents never move to another period, or figures before and "
                    f"after would show those few people's answers. Load these responses together with others of "
                    f"{r.unit_id} for {r.period} once there are enough (and give a late wave its own wave name)"
                ),
            )
        )


def _find_items(frame, keep_cols, mapped, blank) -> tuple[list[int], int | None]:
    """Columns whose every non-blank answer is a Likert answer; the scale their labels imply."""
    items, saw7, saw_labels = [], False, False
    for i in keep_cols:
        if i in mapped or blank[i].all():
            continue
        codes, uniq = _factorize(frame[i])
        vals = [v for v in uniq if not _is_blank(v)]
        likert = np.array([_likert_value(v, None) is not None for v in vals], dtype=bool)
        if not vals or not likert.any():
            continue
        if not likert.all():
            # a labelled column with a few typos ('Agre') is still an item (the typos become errors);
            # a number beyond 7 means a count or an age, not an answer
            others = [v for v, ok in zip(vals, likert) if not ok]
            if any(isinstance(v, (int, float)) or str(v).strip().replace(".", "", 1).isdigit() for v in others):
                continue
            counts = np.bincount(codes[codes >= 0], minlength=len(uniq))
            nonblank = [j for j, v in enumerate(uniq) if not _is_blank(v)]
            share = counts[[j for j, ok in zip(nonblank, likert) if ok]].sum() / max(counts[nonblank].sum(), 1)
            labels = list(LIKERT_7) + list(LIKERT_5)
            typos = all(difflib.get_close_matches(normalise_header(v), labels, n=1, cutoff=0.75) for v in others)
            if share < 0.9 and not typos:
                continue
        items.append(i)
        for v in vals:
            if isinstance(v, str) and not v.strip().isdigit():
                key = normalise_header(v)
                saw_labels |= key in LIKERT_7
                saw7 |= key in LIKERT_7 and key not in LIKERT_5
    return items, (7 if saw7 else 5) if saw_labels else None


def _engagement_items(a, frame, mapped, labels, blank, scale, label_scale, reverse, probs, index_items):
    item_cols = [i for i, f in mapped.items() if f == "item"]
    if not item_cols:
        a.fatal.append(
            Problem(
                None,
                None,
                "no item columns found: engagement files need one column per "
                "question with answers 1..5, 1..7 or labels such as 'Agree'",
            )
        )
        return pd.DataFrame()
    names = {labels[i]: i for i in item_cols}
    rev = set()
    for r in reverse or ():
        hit = r if r in names else next((n for n in names if normalise_header(n) == normalise_header(r)), None)
        if hit is None:
            a.fatal.append(
                Problem(
                    None,
                    None,
                    f"--reverse {r!r}: no item column of that name; items are {', '.join(repr(n) for n in names)}",
                )
            )
        else:
            rev.add(hit)
    if scale is not None:
        k, source = int(scale), "--scale"
    elif label_scale is not None:
        k, source = label_scale, "labels"
    else:
        k, source = 5, "answers"
    parsed = {}
    for name, i in names.items():
        codes, uniq = _factorize(frame[i])
        table = LIKERT_7 if k == 7 else LIKERT_5
        vals = np.full(len(uniq), np.nan)
        err: list = [None] * len(uniq)
        for j, v in enumerate(uniq):
            if _is_blank(v):
                continue
            x = _likert_value(v, table)
            if x is None:
                err[j] = f"{_show(v)} is not an answer on the 1-{k} scale"
            else:
                vals[j] = x
        parsed[name] = (codes, uniq, vals, err)
        if source == "answers" and np.nanmax(np.append(vals, 0)) > 5:
            k = 7
    if source == "answers":
        a.scale, a.scale_source = k, "answers"
    else:
        a.scale, a.scale_source = k, source
    long = []
    answered = np.zeros(len(frame), dtype=np.int64)
    index_names = [n for n in names if not index_items or n in index_items]
    for name, (codes, _uniq, vals, err) in parsed.items():
        err = [
            e if e is not None or vals[j] != vals[j] or vals[j] <= k else f"{vals[j]:g} is outside 1-{k}"
            for j, e in enumerate(err)
        ]
        _add_row_errors(probs, codes, err, name)
        scores = _spread(codes, vals, np.nan)
        if name in rev:
            scores = k + 1 - scores
        ok = ~np.isnan(scores) & (scores >= 1) & (scores <= k)
        if name in index_names:
            answered += ok
        long.append(
            pd.DataFrame(
                {"row_no": a.problems.row_no[ok].astype(np.int32), "item": name, "score": scores[ok].astype(np.int16)}
            )
        )
    few = int((answered < len(index_names) / 2).sum())
    if few:
        a.warnings.append(
            f"{few:,} respondents answered fewer than half of the {len(index_names)} index items: "
            "stored, but left out of the engagement index"
        )
    a.item_meta = pd.DataFrame({"item": list(names), "scale": k, "reverse_keyed": [n in rev for n in names]})
    return pd.concat(long, ignore_index=True) if long else pd.DataFrame(columns=["row_no", "item", "score"])


def _unique_in_file(probs, out, fname, label, what) -> None:
    s = out[fname]
    dup = s.duplicated(keep="first").to_numpy() & s.notna().to_numpy()
    if dup.any():
        first = out.loc[~out[fname].duplicated(keep="first")].set_index(fname)["row_no"]
        msgs = [f"{what} {v!r} appears again (first in row {first.get(v)})" for v in s[dup]]
        probs.rows(np.flatnonzero(dup), label, msgs)


def _purchase_lines(out, probs, labels, col_of) -> None:
    """line_no = position within its order; an order's lines share customer and date."""
    has = out["order_id"].notna() if "order_id" in out.columns else pd.Series(False, index=out.index)
    out["line_no"] = np.int32(1)
    if not has.any():
        return
    o = out.loc[has, ["order_id", "customer_id", "order_date", "row_no"]]
    by_order = o.groupby("order_id", sort=False)  # one grouping of the order ids for both
    out.loc[has, "line_no"] = (by_order.cumcount() + 1).astype(np.int32)
    first = by_order.transform("first")
    for fname in ("customer_id", "order_date"):
        diff = o[fname].ne(first[fname]).fillna(False).astype(bool) & o[fname].notna() & first[fname].notna()
        if diff.any():
            rows = o.loc[diff]
            firsts = first.loc[diff]
            # the row named is that of the order's first line with a value ("first" skips missing ones)
            where = o.loc[o[fname].notna()].groupby("order_id", sort=False)["row_no"].first()
            shown = [(_show(v) if not isinstance(v, pd.Timestamp) else v.date().isoformat()) for v in rows[fname]]
            was = [(_show(v) if not isinstance(v, pd.Timestamp) else v.date().isoformat()) for v in firsts[fname]]
            msgs = [
                f"order {oid!r} has {fname} {s} here but {w} in row {r}; lines of one order share it"
                for oid, s, w, r in zip(rows["order_id"], shown, was, where.loc[rows["order_id"]])
            ]
            # positions among all rows (o holds only the lines with an order id)
            probs.rows(np.flatnonzero(has.to_numpy())[np.flatnonzero(diff.to_numpy())], labels[col_of[fname]], msgs)


def _resolve_units(a, con, out, probs, label, viewer) -> None:
    spellings = store.known_units(con) if con is not None else {}
    folded = {normalise_header(s): u for s, u in spellings.items()}
    units_exist = bool(
        con is not None
        and con.execute("SELECT count(*) FROM batches WHERE kind = 'units' AND NOT undone").fetchall()[0][0]
    )
    codes, uniq = _factorize(out["unit_id"])
    resolved = np.empty(len(uniq) + 1, dtype=object)
    unknown = []
    for j, u in enumerate(uniq):
        r = spellings.get(u) or folded.get(normalise_header(u))
        resolved[j] = r if r is not None else u
        if r is None:
            unknown.append(j)
    resolved[-1] = None
    if unknown and con is not None:
        if units_exist:
            err: list = [None] * len(uniq)
            choices = list(spellings)
            for j in unknown:
                hint = difflib.get_close_matches(str(uniq[j]), choices, n=1, cutoff=0.6)
                also = f" (unit {spellings[hint[0]]})" if hint and spellings[hint[0]] != hint[0] else ""
                err[j] = (
                    f"unknown unit {uniq[j]!r}"
                    + (f"; did you mean {hint[0]!r}{also}?" if hint else "")
                    + " (units come from the units table; add it there or fix the spelling)"
                )
            _add_row_errors(probs, codes, err, label)
        else:
            a.units_created = sorted(str(uniq[j]) for j in unknown)
    out["unit_id"] = pd.array(resolved[:-1], dtype="str").take(codes, allow_fill=True)
    if viewer.role == "manager":
        allowed = set(viewer.units)
        present = set(resolved[:-1]) | ({None} if (codes == -1).any() else set())
        foreign = sorted(str(u) for u in present - allowed if u is not None)
        if foreign or None in present:
            named = ", ".join(foreign) if foreign else "rows without a unit"
            raise AccessDenied(
                f"you may upload rows only for your units ({', '.join(sorted(allowed)) or 'none'}); "
                f"this file has rows for {named}; remove those rows or ask an admin"
            )


def _reorg_rules(a, con, out, probs, labels, col_of, viewer) -> None:
    """Re-organisations: both units resolved like any unit column; a unit merged into itself, or a
    row that closes a cycle with the stored re-organisations (A -> B, B -> A), refused by row."""
    from cxstats import governance

    created: list[str] = []
    for col in ("from_unit", "to_unit"):
        tmp = pd.DataFrame({"unit_id": out[col]})
        _resolve_units(a, con, tmp, probs, labels[col_of[col]], viewer)
        out[col] = tmp["unit_id"].to_numpy()
        created += a.units_created
        a.units_created = []
    a.units_created = sorted(set(created))
    stored = (
        []
        if con is None
        else [(str(x), str(y)) for x, y in con.execute("SELECT DISTINCT from_unit, to_unit FROM reorgs").fetchall()]
    )
    incoming = [
        (i, None if pd.isna(x) else str(x), None if pd.isna(y) else str(y))
        for i, (x, y) in enumerate(zip(out["from_unit"], out["to_unit"]))
    ]
    bad = governance.reorg_cycle_rows(stored, incoming)
    for i, msg in sorted(bad.items()):
        probs.rows(np.array([i]), labels[col_of["to_unit"]], msg)


def _mention_sentiment(out) -> None:
    from cxstats import sentiment

    if "sentiment" in out.columns:
        have = ~np.isnan(out["sentiment"].to_numpy(dtype=float))
    else:
        out["sentiment"] = np.nan
        have = np.zeros(len(out), dtype=bool)
    source = np.where(have, "file", "unscored").astype(object)
    if "text" in out.columns:
        need = ~have & out["text"].notna().to_numpy()
        if need.any():
            texts = out.loc[need, "text"]
            codes, uniq = pd.factorize(texts)
            scores = np.array([np.nan if s is None else s for s in sentiment.compound(list(uniq))], dtype=float)
            vals = scores[codes]
            sent = out["sentiment"].to_numpy(dtype=float).copy()
            sent[need] = vals
            out["sentiment"] = sent
            source[np.flatnonzero(need)[~np.isnan(vals)]] = "vader"
    out["sentiment_source"] = source
