"""The command line: ``python -m cxstats COMMAND`` (DESIGN.md, "Command line"; keep it stable).

Parsing arguments and printing only: the domain modules return data.

Exit 0 on success; 2 on bad input, with every problem on stderr and nothing written. The command
line acts as the local admin.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING

from . import ADMIN, CxStatsError, periods, store

if TYPE_CHECKING:  # types only: each command imports its module when it runs (a fast start)
    from . import advocates, linkage, themes


def _add_db(p: argparse.ArgumentParser) -> None:
    p.add_argument("--db", default=None, help="database file (default: $CXSTATS_DB or data/cxstats.duckdb)")


def _fmt(x: float | None, spec: str = ".2f") -> str:
    """A number for a table; "n/a" for a missing one."""
    return "n/a" if x is None else format(x, spec)


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m cxstats", description="cxstats command line")
    sub = ap.add_subparsers(dest="command", required=True)

    p = sub.add_parser("demo", help="fill the database with seeded demo data (planted effects)")
    _add_db(p)
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--units", type=int, default=40)
    p.add_argument("--customers", type=int, default=3000)

    p = sub.add_parser("import", help="load one .csv/.xlsx/.xls/.ods file as one batch")
    p.add_argument("kind", help="units, engagement, feedback, purchases, mentions, customers or rewards")
    p.add_argument("file")
    _add_db(p)
    p.add_argument("--sheet", default=None, help="sheet name (default: the first non-empty sheet)")
    p.add_argument(
        "--map",
        nargs="*",
        default=[],
        metavar="SOURCE=FIELD",
        help="map a column header to a field (FIELD 'ignore' drops the column)",
    )
    p.add_argument("--dayfirst", action="store_true", help="read ambiguous dates as day/month/year")
    p.add_argument("--scale", type=int, choices=(5, 7), default=None, help="Likert scale of the items")
    p.add_argument("--reverse", nargs="*", default=[], metavar="ITEM", help="reverse-keyed items (k+1-score)")
    p.add_argument(
        "--skip-invalid",
        action="store_true",
        help="load the good rows; write rejected rows with reasons beside the file",
    )

    p = sub.add_parser("batches", help="list loaded batches")
    _add_db(p)
    p.add_argument("--json", action="store_true")

    p = sub.add_parser("undo", help="remove one batch")
    p.add_argument("batch_id", type=int)
    _add_db(p)

    p = sub.add_parser("linkage", help="engagement x customer satisfaction, per unit")
    _add_db(p)
    p.add_argument("--metric", choices=("csat_pct", "csat_mean", "nps"), default="csat_pct")
    p.add_argument("--period", choices=periods.PERIODS, default=None)
    p.add_argument("--lag", type=int, default=0)
    p.add_argument("--min-group", type=int, default=None)
    p.add_argument("--covariates", default=None, help="comma-separated unit columns, e.g. region,headcount")
    p.add_argument("--json", action="store_true")

    p = sub.add_parser("advocates", help="rank the customers who speak for the brand")
    _add_db(p)
    p.add_argument("--as-of", default=None, help="evidence up to this date (default: latest order date)")
    p.add_argument("--top", type=int, default=100, help="how many (0 = all)")
    p.add_argument("--out", default=None, help="export consented advocates to FILE.csv or FILE.xlsx")
    p.add_argument(
        "--holdout",
        type=float,
        default=None,
        metavar="PCT",
        help="with --out: hold out PCT%% (0-50) of the 'to reward' list at random, recorded",
    )
    p.add_argument("--seed", type=int, default=None, help="seed of the hold-out (default: random, stored)")
    p.add_argument(
        "--horizon-weeks",
        type=int,
        default=None,
        metavar="N",
        help="customer value: expected orders over the next N weeks (default 52)",
    )
    p.add_argument(
        "--min-p-alive",
        type=float,
        default=None,
        metavar="X",
        help="with --out: leave customers whose P(alive) is below X (0-1) out of the 'to reward' list",
    )
    p.add_argument("--json", action="store_true")

    # --- effect ---
    p = sub.add_parser("effect", help="did rewarding work? hold-out and matched estimates")
    _add_db(p)
    p.add_argument("--as-of", default=None, help="evidence up to this date (default: latest order date)")
    p.add_argument("--json", action="store_true")

    # --- focus ---
    p = sub.add_parser("focus", help="a unit's focus areas: items below the other units that go with CX")
    p.add_argument("unit")
    _add_db(p)
    p.add_argument(
        "--in",
        dest="period",
        default=None,
        metavar="PERIOD",
        help="one period, e.g. 2026-Q3 (default: the unit's latest shown period)",
    )
    p.add_argument("--metric", choices=("csat_pct", "csat_mean", "nps"), default="csat_pct")
    p.add_argument("--json", action="store_true")

    # --- actions ---
    p = sub.add_parser("actions", help="action plans with their follow-up")
    _add_db(p)
    p.add_argument("--unit", default=None, help="one unit's plans only")
    p.add_argument("--json", action="store_true")

    # --- changes ---
    p = sub.add_parser("changes", help="what changed since the previous period (BH q < 0.10)")
    _add_db(p)
    p.add_argument(
        "--in",
        dest="period",
        default=None,
        metavar="PERIOD",
        help="the period to compare (default: the latest with survey data)",
    )
    p.add_argument(
        "--previous",
        default=None,
        metavar="PERIOD",
        help="the period to compare with (default: the latest earlier one with survey data)",
    )
    p.add_argument("--json", action="store_true")

    # --- report ---
    p = sub.add_parser("report", help="the leader's board pack as PDF or PowerPoint")
    p.add_argument("--out", required=True, help="FILE.pdf or FILE.pptx")
    _add_db(p)
    p.add_argument("--in", dest="in_period", default=None, help="one period, e.g. 2026-Q3 (default: every period)")
    p.add_argument("--metric", choices=("csat_pct", "csat_mean", "nps"), default="csat_pct")

    # --- themes ---
    p = sub.add_parser("themes", help="comment themes of one source (TF-IDF + NMF, offline)")
    p.add_argument("source", choices=("comments", "feedback", "mentions"))
    _add_db(p)
    p.add_argument(
        "--themes", type=int, default=None, metavar="N", help="number of themes (default: chosen from the texts, 4-12)"
    )
    p.add_argument("--json", action="store_true")

    # --- forget ---
    p = sub.add_parser("forget", help="erase people: every row of each id, then the database file is rewritten")
    p.add_argument("what", choices=("customer", "respondent"))
    p.add_argument("ids", nargs="*", metavar="ID")
    p.add_argument("--file", default=None, help="a file of ids, one per line (or the first column of a CSV)")
    _add_db(p)

    # --- purge ---
    p = sub.add_parser("purge", help="delete rows older than each kind's retain_months setting (whole periods)")
    _add_db(p)

    # --- lake ---
    p = sub.add_parser("lake", help="the Parquet lake of DESIGN.md 'Engines' (CXSTATS_LAKE)")
    lake_sub = p.add_subparsers(dest="lake_command", required=True)
    q = lake_sub.add_parser("export", help="write the database's tables as a Parquet lake (admin)")
    q.add_argument("--to", required=True, metavar="PATH", help="a new (or empty) folder for the lake")
    _add_db(q)
    q.add_argument(
        "--include-engagement",
        action="store_true",
        help="also write the engagement survey tables (left out by default)",
    )

    return ap


def cmd_batches(args) -> int:
    with store.connect(args.db) as con:
        batches = store.list_batches(con)
    if args.json:
        print(json.dumps({"batches": [b.as_json() for b in batches]}))
        return 0
    if not batches:
        print("no batches yet; load one with: python -m cxstats import KIND FILE")
        return 0
    print(f"{'batch':>5}  {'kind':<10}  {'rows':>9}  {'loaded at':<19}  {'status':<6}  file")
    for b in batches:
        status = "undone" if b.undone else "live"
        print(f"{b.batch_id:>5}  {b.kind:<10}  {b.rows:>9,}  {b.loaded_at!s:<19}  {status:<6}  {b.file_name}")
    return 0


def cmd_undo(args) -> int:
    from . import governance

    with store.connect(args.db) as con:
        b = governance.undo_batch(con, args.batch_id, viewer=ADMIN)
    print(f"batch {b.batch_id} ({b.kind}, {b.rows:,} rows from {b.file_name}) undone")
    return 0


def cmd_demo(args) -> int:
    from . import demo

    summary = demo.build_demo(args.db, seed=args.seed, units=args.units, customers=args.customers)
    print(summary)
    return 0


def cmd_import(args) -> int:
    """Exit 0 loaded, 2 refused with every problem (the first 50, then a count) on stderr."""
    from . import ingest

    try:
        res = ingest.import_file(
            args.db,
            args.kind,
            args.file,
            sheet=args.sheet,
            mapping=ingest.parse_mapping(args.map),
            dayfirst=True if args.dayfirst else None,
            scale=args.scale,
            reverse=tuple(args.reverse or ()),
            skip_invalid=args.skip_invalid,
            viewer=ADMIN,
            loaded_by="command line",
            isolated=True,
        )
    except CxStatsError as exc:
        shown = [p for p in exc.problems[:50] if p not in str(exc)]
        more = len(exc.problems) - len(shown)
        total = getattr(exc, "n_problems", len(exc.problems))
        more = max(more, total - len(shown))
        if more > 0:
            shown.append(f"... and {more:,} more problems")
        raise type(exc)(str(exc), problems=shown) from None
    print(res.summary())
    for w in res.warnings:
        print(f"warning: {w}", file=sys.stderr)
    return 0


def cmd_linkage(args) -> int:
    """JSON with --json, else a table and plain sentences."""
    from . import linkage

    covs = tuple(c for c in (args.covariates or "").split(",") if c.strip())
    with store.connect(args.db) as con:
        con.execute("SET enable_progress_bar = false")  # stdout carries JSON only
        res = linkage.analyse(
            con,
            viewer=ADMIN,
            metric=args.metric,
            lag=args.lag,
            min_group=args.min_group,
            covariates=covs,
            period=args.period,
        )
    if args.json:
        print(json.dumps(res.as_json()))
        return 0
    print(linkage_table(res))
    print()
    for s in res.summary_sentences():
        print(s)
    for wmsg in res.warnings:
        print(f"warning: {wmsg}", file=sys.stderr)
    return 0


def linkage_table(res: linkage.LinkageResult) -> str:
    """The linkage result as the text table the command prints (numbers rounded only here)."""
    w = res.within_unit
    rows = [
        ("metric", f"{res.metric} ({res.metric_label}), period {res.period}, lag {res.lag}, min_group {res.min_group}"),
        ("units", f"{res.n_units} (suppressed unit-period groups: {res.suppressed_groups})"),
        (
            "within-unit coef",
            f"{_fmt(w.coef, '.4f')} per index point  95% CI [{_fmt(w.ci_low, '.4f')}, "
            f"{_fmt(w.ci_high, '.4f')}]  p {_fmt(w.p, '.3g')}  n {w.n_obs}, {w.n_clusters} units",
        ),
        ("vcov", f"{w.vcov or 'none'} ({w.n_singletons} single-period units left out)"),
        (
            "within-unit r",
            f"{_fmt(w.r, '.3f')}  dof {w.r_dof if w.r_dof is not None else 'n/a'}  "
            f"p {_fmt(w.r_p, '.3g')} (unit and period effects removed)",
        ),
        (
            "corrected coef",
            "n/a"
            if w.corrected is None
            else f"{_fmt(w.corrected.coef, '.4f')}  95% CI [{_fmt(w.corrected.ci_low, '.4f')}, "
            f"{_fmt(w.corrected.ci_high, '.4f')}]  reliability {_fmt(w.corrected.reliability, '.3f')} "
            f"(corrected for small-group noise)",
        ),
        (
            "between-unit r",
            f"{_fmt(res.pearson.r, '.3f')}  95% CI [{_fmt(res.pearson.ci_low, '.3f')}, "
            f"{_fmt(res.pearson.ci_high, '.3f')}]  p {_fmt(res.pearson.p, '.3g')}",
        ),
        (
            "between r corrected",
            f"{_fmt(res.pearson_corrected.r, '.3f')}  95% CI "
            f"[{_fmt(res.pearson_corrected.ci_low, '.3f')}, {_fmt(res.pearson_corrected.ci_high, '.3f')}]"
            f"  rel_x {_fmt(res.pearson_corrected.rel_x, '.3f')}  "
            f"rel_y {_fmt(res.pearson_corrected.rel_y, '.3f')}",
        ),
        ("Spearman rho", f"{_fmt(res.spearman.rho, '.3f')}  p {_fmt(res.spearman.p, '.3g')}"),
        ("min detectable r", _fmt(res.min_detectable_r, ".3f")),
        (
            "slope per +10",
            f"{_fmt(res.slope_per_10.estimate, '.3f')}  95% CI [{_fmt(res.slope_per_10.ci_low, '.3f')}, "
            f"{_fmt(res.slope_per_10.ci_high, '.3f')}]",
        ),
        (
            "elasticity",
            res.elasticity_reason
            if res.elasticity is None
            else f"{res.elasticity.beta:.3f} (+10% engagement -> {100 * res.elasticity.effect_of_10pct:+.2f}% CX)",
        ),
        (
            "quartiles",
            f"top {_fmt(res.quartiles.top)}  bottom {_fmt(res.quartiles.bottom)}  diff "
            f"{_fmt(res.quartiles.diff)} [{_fmt(res.quartiles.ci_low)}, {_fmt(res.quartiles.ci_high)}]",
        ),
    ]
    if res.partial is not None:
        rows.append(
            (
                f"partial r | {', '.join(res.partial.covariates)}",
                f"{_fmt(res.partial.r, '.3f')}  95% CI [{_fmt(res.partial.ci_low, '.3f')}, "
                f"{_fmt(res.partial.ci_high, '.3f')}]  p {_fmt(res.partial.p, '.3g')}",
            )
        )
    width = max(len(k) for k, _ in rows)
    lines = [f"{k:<{width}}  {v}" for k, v in rows]
    lines.append("")
    lines.append(f"{'lag':>4}  {'coef':>10}  {'r':>7}  {'p':>8}  {'p_holm':>8}  {'n':>6}")
    for x in res.lags:
        lines.append(
            f"{x.lag:>4}  {_fmt(x.coef, '.4f'):>10}  {_fmt(x.r, '.3f'):>7}  {_fmt(x.p, '.3g'):>8}  "
            f"{_fmt(x.p_holm, '.3g'):>8}  {x.n:>6}"
        )
    lines.append("(each lag uses the rows it has, so n differs; p_holm allows for looking at five lags)")
    if res.drivers:
        lines.append("")
        lines.append(f"{'driver item':<24}  {'r':>7}  {'95% CI':>17}  {'q':>7}")
        for d in res.drivers:
            lines.append(
                f"{d.item[:24]:<24}  {_fmt(d.r, '.3f'):>7}  [{_fmt(d.ci_low, '.2f'):>6}, "
                f"{_fmt(d.ci_high, '.2f'):>6}]  {_fmt(d.q, '.3g'):>7}"
            )
        lines.append("(items overlap: their correlations are not separate effects)")
    return "\n".join(lines)


def cmd_advocates(args) -> int:
    """``advocates [--as-of DATE] [--top N] [--out FILE [--holdout PCT [--seed N]]] [--json]``: every
    option is checked before any work."""
    from dataclasses import replace

    from . import advocates, export, value

    if args.top is not None and args.top < 0:
        raise CxStatsError("--top must be 0 (all) or a positive number")
    as_of = advocates._as_date(args.as_of, "--as-of")
    out_path = getattr(args, "out", None)
    holdout, seed = getattr(args, "holdout", None), getattr(args, "seed", None)
    if holdout is not None and not out_path:
        raise CxStatsError("--holdout needs --out FILE.csv|FILE.xlsx: the hold-out is drawn from an exported list")
    if seed is not None and holdout is None:
        raise CxStatsError("--seed only goes with --holdout PCT")
    if out_path:
        export.format_for(out_path, None)  # refuse a bad suffix before any work
    if holdout is not None:
        export.check_pct(holdout)
    horizon = getattr(args, "horizon_weeks", None)
    horizon = value.HORIZON_WEEKS if horizon is None else value.check_horizon(horizon)
    min_p = getattr(args, "min_p_alive", None)
    if min_p is not None:
        value.check_p_alive(min_p)
    with store.connect(args.db) as con:
        keep = None  # only the rows shown or exported come back from the engine (DESIGN.md "Engines")
        if out_path:
            listable = export.listable(con, viewer=ADMIN)
            if holdout is not None or min_p is not None:  # "to reward"

                def keep(df, a):
                    return listable(df, a) & advocates.reward_mask(df, min_p_alive=min_p).to_numpy(dtype=bool)

            else:
                keep = listable
        result = advocates.score(con, viewer=ADMIN, as_of=as_of, horizon_weeks=horizon, top=args.top or None, keep=keep)
        exported = None
        if out_path:
            listed = result
            if holdout is not None or min_p is not None:  # "to reward"
                listed = replace(result, customers=advocates.to_reward(result, min_p_alive=min_p))
            exported = export.write_advocates(
                con,
                viewer=ADMIN,
                result=listed,
                path=out_path,
                filter_text=_advocates_filter_text(args),
                top=args.top,
                holdout_pct=holdout,
                seed=seed,
            )
    if args.json:
        print(json.dumps(result.as_json(args.top)))
    else:
        _print_advocates(result, args.top)
    if exported is not None:
        msg = f"exported {exported.rows} consented customers to {exported.path} (export {exported.export_id})"
        if holdout is not None:
            msg += (
                f"; {exported.held_out} held out at random (seed {exported.seed}): leave them out of "
                "rewards for 90 days, then see: python -m cxstats effect"
            )
        print(msg, file=sys.stderr if args.json else sys.stdout)
    return 0


def _advocates_filter_text(args) -> str:
    """What the audit log records as the filter of a command-line export."""
    parts = [f"as_of={args.as_of}" if args.as_of else "as_of=latest order", f"top={args.top}"]
    if getattr(args, "min_p_alive", None) is not None:
        parts.append(f"min_p_alive={args.min_p_alive:g}")
    return "; ".join(parts)


def _print_advocates(result: advocates.AdvocateResult, top: int | None) -> None:
    if result.as_of is None:
        print("no purchases yet; load some with: python -m cxstats import purchases FILE")
        return
    df = result.top(top)
    print(
        f"advocates as of {result.as_of}: {result.passed:,} pass the gates "
        f"(of {result.ranked:,} customers with an order); showing {len(df):,}"
    )
    if df.empty:
        return
    print(f"{'#':>4}  {'customer':<12} {'score':>6}  {'tier':<9} {'orders':>6} {'spend':>11}  reasons")
    for i, r in enumerate(df.itertuples(index=False), 1):
        print(
            f"{i:>4}  {str(r.customer_id)[:12]:<12} {r.score:>6.1f}  {r.tier:<9} {r.orders:>6} "
            f"{r.spend:>11,.2f}  {'; '.join(r.reasons)}"
        )
    if len(result.unmatched_handles):
        print(f"{len(result.unmatched_handles):,} handles with mentions matched no customer")


# --- effect ---
def cmd_effect(args) -> int:
    """Did rewarding work? Hold-out designs, then the matched comparison."""
    from . import advocates, programme

    as_of = advocates._as_date(args.as_of, "--as-of")
    with store.connect(args.db) as con:
        eff = programme.programme_effect(con, viewer=ADMIN, as_of=as_of)
    if args.json:
        print(json.dumps(eff.as_json()))
        return 0
    print(f"programme effect as of {eff.as_of}: change of orders (and spend) per 90 days, reward minus comparison")
    for d in eff.designs:
        head = "hold-out (randomised)" if d.design == "holdout" else "matched (observational estimate)"
        if d.design == "holdout":
            head += f", export {d.export_id} of {d.list_date}: {d.n_treated} listed, {d.n_control} held out"
        else:
            head += f": {d.n_treated} pairs, {d.n_unmatched} rewarded customers unmatched"
        print(f"\n{head} [{d.status}]")
        for name, iv in (("orders", d.orders), ("spend", d.spend), ("placebo orders", d.pretrend)):
            if iv is None:
                continue
            if iv.estimate is None:
                print(f"  {name:<15} -")
            elif iv.ci_low is None:
                print(f"  {name:<15} {iv.estimate:+.2f} (no interval)")
            else:
                print(f"  {name:<15} {iv.estimate:+.2f} (95% CI {iv.ci_low:+.2f} to {iv.ci_high:+.2f})")
        for w in d.warnings:
            print(f"  warning: {w}")
    return 0


# --- focus ---
def cmd_focus(args) -> int:
    """A unit's focus areas: items below the other units that go with CX."""
    from . import focus

    with store.connect(args.db) as con:
        con.execute("SET enable_progress_bar = false")
        res = focus.focus_areas(con, args.unit, viewer=ADMIN, period=args.period, metric=args.metric)
    if args.json:
        print(json.dumps(res.as_json()))
        return 0
    print(f"{res.unit_id}, {res.period}, metric {res.metric}")
    print(f"{'item':<48}  {'unit':>5}  {'others':>6}  {'gap':>6}  {'95% CI':>15}  {'r':>6}  {'q':>7}  focus")
    for i in res.items:
        print(
            f"{i.item[:48]:<48}  {i.unit_mean:>5.2f}  {_fmt(i.others_mean):>6}  {_fmt(i.gap):>6}  "
            f"[{_fmt(i.gap_ci_low):>5}, {_fmt(i.gap_ci_high):>5}]  {_fmt(i.r):>6}  {_fmt(i.q, '.3g'):>7}  "
            f"{'yes' if i.focus else ''}"
        )
    print()
    for s in res.summary:
        print(s)
    if res.strengths:
        print("Strengths: " + "; ".join(res.strengths))
    for w in res.warnings:
        print(f"note: {w}")
    return 0


# --- actions ---
def cmd_actions(args) -> int:
    """Action plans with their follow-up."""
    from . import focus

    with store.connect(args.db) as con:
        res = focus.list_actions(con, viewer=ADMIN, unit=args.unit)
    if args.json:
        print(json.dumps(res.as_json()))
        return 0
    if not res.actions:
        print("no action plans yet")
        return 0
    for a in res.actions:
        fu = a.follow_up
        change = (
            "no follow-up yet"
            if fu is None
            else f"item {_fmt(fu.item_change, '+.2f')} [{_fmt(fu.ci_low)}, {_fmt(fu.ci_high)}], "
            f"CSAT % {_fmt(fu.cx_change, '+.1f')} [{_fmt(fu.cx_ci_low, '.1f')}, {_fmt(fu.cx_ci_high, '.1f')}] "
            f"({fu.baseline} -> {fu.outcome})"
        )
        print(f"{a.action_id:>4}  {a.unit_id:<8}  {a.status:<7}  due {a.due_date or '-'}  {a.title}")
        print(f"      {a.item}: {change}")
    return 0


# --- changes ---
def cmd_changes(args) -> int:
    """What changed since the previous period (BH q below focus.Q_CHANGE)."""
    from . import focus

    with store.connect(args.db) as con:
        res = focus.changes(con, viewer=ADMIN, period=args.period, previous=args.previous)
    if args.json:
        print(json.dumps(res.as_json()))
        return 0
    print(
        f"{res.previous} -> {res.period}: {len(res.changes)} change(s) with BH q < {focus.Q_CHANGE} among "
        f"{res.compared} comparisons"
    )
    for c in res.changes:
        print(
            f"{c.unit_id:<8}  {c.measure:<10}  {c.before:8.1f} -> {c.after:8.1f}  {c.diff:+7.1f} "
            f"[{c.ci_low:+.1f}, {c.ci_high:+.1f}]  q {c.q:.3g}"
        )
    return 0


# --- report ---
def cmd_report(args) -> int:
    from . import report

    out = report.check_target(args.out)  # a bad --out is refused before any work
    with store.connect(args.db) as con:
        con.execute("SET enable_progress_bar = false")
        rep = report.build_report(con, viewer=ADMIN, period=args.in_period, metric=args.metric)
    report.write_report(rep, out)
    print(f"report written to {out} ({len(rep.sections)} pages)")
    return 0


# --- themes ---
def cmd_themes(args) -> int:
    """Comment themes of one source (TF-IDF + NMF, offline)."""
    from . import themes

    with store.connect(args.db) as con:
        r = themes.themes(con, args.source, viewer=ADMIN, n_themes=args.themes)
    print(json.dumps(r.as_json()) if args.json else themes_text(r))
    return 0


def themes_text(r: themes.ThemeResult) -> str:
    """The themes command's plain-text table of one result."""
    from . import themes

    lines = [
        f"{r.source}: {r.n_texts:,} English texts modelled"
        + (f", {r.n_non_english:,} in other languages left out" if r.n_non_english else "")
        + (f", {r.n_cut:,} long texts cut to {themes.MAX_CHARS} characters" if r.n_cut else "")
    ]
    if r.message:
        lines.append(r.message)
        return "\n".join(lines)
    lines.append(
        f"{r.k} themes ({'chosen on the reconstruction error' if r.k_chosen else 'set with --themes'}); "
        f"a text belongs to its strongest theme when its weight is at least {themes.ASSIGN_MIN}, else 'other'"
    )
    csat = r.source == "feedback"
    head = f"{'id':>3}  {'share':>6}  {'sentiment':>9}"
    if csat:
        head += f"  {'CSAT with':>9}  {'without':>7}  {'diff (95% CI)':<22}"
    lines.append(head + "  label")
    for t in r.themes:
        s = "—" if t.sentiment is None else f"{t.sentiment:+.2f}"
        row = f"{t.theme_id:>3}  {100 * t.share:>5.1f}%  {s:>9}"
        if csat:
            cw = "—" if t.csat_with is None else f"{t.csat_with:.1f}"
            co = "—" if t.csat_without is None else f"{t.csat_without:.1f}"
            d = "—" if t.diff is None else f"{t.diff:+.1f} ({t.ci_low:+.1f} to {t.ci_high:+.1f})"
            row += f"  {cw:>9}  {co:>7}  {d:<22}"
        lines.append(row + "  " + t.label)
        for e in t.examples:
            lines.append(f'       "{e}"')
    if r.source == "comments":
        lines.append("Employee comments are never quoted; only groups of at least 10 respondents count.")
    return "\n".join(lines)


# --- forget ---
def cmd_forget(args) -> int:
    from . import governance

    ids = list(args.ids or [])
    if args.file:
        ids += governance.read_id_file(args.file)
    res = governance.forget(args.db, args.what, ids, viewer=ADMIN)
    print(res.summary())
    return 0


# --- purge ---
def cmd_purge(args) -> int:
    from . import governance

    print(governance.purge(args.db, viewer=ADMIN).summary())
    return 0


# --- lake ---
def cmd_lake(args) -> int:
    from . import engine

    res = engine.export_lake(args.db, args.to, viewer=ADMIN, include_engagement=args.include_engagement)
    print(res.summary())
    return 0


COMMANDS = {
    "demo": cmd_demo,
    "import": cmd_import,
    "batches": cmd_batches,
    "undo": cmd_undo,
    "linkage": cmd_linkage,
    "advocates": cmd_advocates,
    # --- effect ---
    "effect": cmd_effect,
    # --- focus ---
    "focus": cmd_focus,
    # --- actions ---
    "actions": cmd_actions,
    # --- changes ---
    "changes": cmd_changes,
    # --- report ---
    "report": cmd_report,
    # --- themes ---
    "themes": cmd_themes,
    # --- forget ---
    "forget": cmd_forget,
    # --- purge ---
    "purge": cmd_purge,
    # --- lake ---
    "lake": cmd_lake,
}


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except CxStatsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        for problem in exc.problems:
            print(f"  {problem}", file=sys.stderr)
        return 2
