"""The leader's report: a board pack in PDF (fpdf2) or PowerPoint (python-pptx), built offline.

Every number comes from the same library calls as the dashboard (overview.headline for the
Overview's figures, linkage.analyse for the Linkage page, metrics for the Engagement page, the
advocates scoring for the Advocates page) and every chart is the dashboard's own Plotly figure,
rendered to PNG by kaleido with the system Chromium. Anonymity is inherited: the library drops
groups below ``min_group`` before anything reaches this module, so a report built from a
database in which only suppressed groups' answers differ is identical in every word and number
(tests/test_report.py checks the extracted PDF text and every slide's text). No employee comment is
ever quoted, and document dates are fixed so that two builds of the same data are equal.

Example::

    from cxstats import ADMIN, report, store
    with store.connect("data/cxstats.duckdb") as con:
        rep = report.build_report(con, viewer=ADMIN)
    report.write_report(rep, "board.pdf")      # or "board.pptx"
"""

from __future__ import annotations

import io
import os
import tempfile
import warnings
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import duckdb
import plotly.graph_objects as go

from . import CxStatsError, Viewer, advocates, charts, focus, linkage, metrics, overview, periods, programme, quality

FORMATS = ("pdf", "pptx")
# fixed document dates: the same data gives the same document (no build time leaks into it)
FIXED_DATE = datetime(2000, 1, 1, tzinfo=timezone.utc)
IMAGE_W, IMAGE_H = 1100, 560
FONT_DIRS = ("/usr/share/fonts/truetype/dejavu", "/usr/share/fonts/truetype/liberation")
FONT_FILES = ("DejaVuSans.ttf", "LiberationSans-Regular.ttf")

METHODS = (
    "Engagement index: mean over respondents of 100 x (mean item answer - 1) / (k - 1), 0-100. "
    "CSAT %: share of answers 4 or 5 on 1-5. NPS: % promoters (9-10) minus % detractors (0-6), "
    "with a 95% margin of 1.96 standard errors.",
    "Anonymity: engagement is grouped only by whole unit and whole period; a group with fewer "
    "respondents than the threshold is left out of every figure, chart and total in this report, "
    "and an item answered by fewer people than the threshold is left out of its group. "
    "No employee comment is quoted.",
    "Within units (the headline): a two-way fixed-effects regression of the customer measure on the "
    "engagement index with unit and period effects, errors clustered by unit. It compares each unit "
    "with itself over time, so whatever is fixed about a unit (location, size, clientele) cannot "
    "explain it.",
    "Between units: Pearson r with a Fisher-z 95% interval over units, each pooling its kept periods. "
    "Units differ in many ways, so this comparison is confounded.",
    "What these figures cannot show: correlation is not proof of cause; a pattern across lags does "
    "not prove direction; few units mean wide intervals, and a non-significant result is not "
    "evidence of no link; the advocate programme estimate is an estimate, not a randomised result "
    "unless it comes from a hold-out.",
)


@dataclass(frozen=True)
class Section:
    """One page (PDF) or slide (PPTX): a title, plain sentences, an optional chart and table."""

    title: str
    paragraphs: tuple[str, ...] = ()
    figure: go.Figure | None = field(default=None, compare=False, repr=False)
    table: tuple[tuple[str, ...], ...] = ()  # first row is the header


@dataclass(frozen=True)
class Report:
    title: str
    sections: tuple[Section, ...]

    def text(self) -> str:
        """Every word and number of the report (what a reader can see, charts aside)."""
        out = [self.title]
        for s in self.sections:
            out.append(s.title)
            out.extend(s.paragraphs)
            out.extend(" | ".join(r) for r in s.table)
        return "\n".join(out)


def _f(value: float | None, spec: str = ".1f") -> str:
    return "n/a" if value is None else format(value, spec)


def _period_choice(con: duckdb.DuckDBPyConnection, viewer: Viewer, period: str | None) -> tuple[str | None, str | None]:
    options = quality.filter_options(con, viewer=viewer)
    listed = list(options.periods)
    if period is None:
        return (listed[0], listed[-1]) if listed else (None, None)
    period = periods.normalise(period, options.period)  # a malformed --in label says how to write one
    if period not in listed:
        shown = ", ".join(listed[-8:]) if listed else "none yet"
        raise CxStatsError(f"unknown period {period!r}; periods with data: {shown}")
    return period, period


def _selection_text(viewer: Viewer, p_from: str | None, p_to: str | None, period_kind: str) -> str:
    who = ("your units " + ", ".join(viewer.units)) if viewer.role == "manager" else "every unit"
    when = "no periods yet" if p_from is None else (p_from if p_from == p_to else f"{p_from} to {p_to}")
    return f"Selection: {who}; {period_kind}s {when}."


def build_report(
    con: duckdb.DuckDBPyConnection,
    *,
    viewer: Viewer,
    period: str | None = None,
    metric: str = "csat_pct",
    units: tuple[str, ...] | None = None,
    period_from: str | None = None,
    period_to: str | None = None,
) -> Report:
    """The board pack's contents for a viewer (marketing is refused: it holds employee data).

    ``period`` names one period (``--in``); otherwise ``period_from``/``period_to`` (the Overview's
    sidebar selection) or every period. ``units`` narrows like the sidebar (None = every unit the
    viewer may see; a manager always stays within his units).
    """
    viewer.require_employee_data()
    if metric not in linkage.METRICS:
        raise CxStatsError(f"unknown metric {metric!r}; use one of {', '.join(linkage.METRICS)}")
    if period is not None or (period_from is None and period_to is None):
        period_from, period_to = _period_choice(con, viewer, period)
    if viewer.role == "manager":
        units = tuple(u for u in (units or viewer.units) if u in viewer.units)
    sel = (units, period_from, period_to)
    sc = metrics.scope(con)
    title = "Engagement and customer satisfaction: board report"
    h = overview.headline(con, *sel, viewer=viewer)
    cover = Section(
        "cxstats board report",
        (
            _selection_text(viewer, period_from, period_to, sc.period),
            f"Anonymity threshold: groups of fewer than {sc.min_group} respondents are left out of every figure "
            f"({h.suppressed_groups} unit-{sc.period} groups suppressed).",
            f"Customer measure for the linkage: {linkage.METRICS[metric]}.",
        ),
    )
    if not h.units:
        return Report(
            title,
            (
                cover,
                Section(
                    "Nothing to report yet",
                    (
                        "No survey or feedback data in this selection. Load an engagement survey and customer feedback "
                        "(Upload page, or python -m cxstats import engagement FILE and import feedback FILE), then build "
                        "the report again.",
                    ),
                ),
                Section("How the figures are computed", METHODS),
            ),
        )
    sections = [cover, _headline_section(h, sc.period)]
    res = linkage.analyse(con, viewer=viewer, metric=metric)
    sections += _linkage_sections(res)
    sections += _engagement_sections(con, viewer, sel)
    sections.append(_changes_section(con, viewer, period_to))
    sections.append(_focus_section(con, viewer, metric, units))
    if viewer.sees_customers:
        sections.append(_advocate_section(con, viewer))
    sections.append(Section("How the figures are computed, and what they cannot show", METHODS))
    return Report(title, tuple(sections))


def _headline_section(h: overview.Headline, period_kind: str) -> Section:
    nps = "n/a" if h.nps is None else f"{h.nps:+.1f}"
    margin = "" if h.nps_margin is None else f" (95% margin of error ± {h.nps_margin:.1f})"
    rows = (
        ("figure", "value", "based on"),
        (
            "Engagement index (0-100)",
            _f(h.engagement_index),
            f"{h.respondents:,} respondents in {h.engagement_groups:,} unit-{period_kind} groups",
        ),
        ("CSAT %", _f(h.csat_pct), f"{h.csat_n:,} CSAT answers"),
        ("NPS", nps + margin, f"{h.nps_n:,} NPS answers"),
        ("Units", f"{h.units:,}", ""),
    )
    notes = []
    if h.incomplete_period:
        notes.append(f"{h.incomplete_period} has not ended yet: its figures will still move.")
    return Section("Headline figures", tuple(notes), table=rows)


def _linkage_sections(res: linkage.LinkageResult) -> list[Section]:
    sentences = list(res.summary_sentences())
    within = Section(
        "Do engaged teams have happier customers? (within units)",
        tuple(sentences) + tuple(f"Note: {w}" for w in res.warnings),
    )
    p = res.pearson
    between = Section(
        "Between units (confounded)",
        (
            f"Pearson r = {_f(p.r, '.2f')} (95% CI {_f(p.ci_low, '.2f')} to {_f(p.ci_high, '.2f')}, "
            f"p = {_f(p.p, '.3g')}) over {res.n_units} units; the smallest correlation these units can detect "
            f"reliably is {_f(res.min_detectable_r, '.2f')}.",
            "Units differ in location, size and clientele, so this comparison is confounded; the within-unit "
            "result is the better guide.",
        ),
        figure=charts.linkage_scatter(res.units, metric=res.metric),
    )
    lags = Section(
        "Lags: customers measured before and after engagement",
        (
            "Each point is the within-unit model with customers measured k periods after engagement (each lag "
            "uses the rows it has). A stronger link at positive lags fits engagement leading satisfaction, but "
            "does not prove direction.",
        ),
        figure=charts.lag_chart(res.lags, metric=res.metric),
        table=(("lag", "coefficient", "p", "unit-periods"),)
        + tuple((str(x.lag), _f(x.coef, ".4f"), _f(x.p, ".3g"), str(x.n)) for x in res.lags),
    )
    return [within, between, lags]


def _engagement_sections(con, viewer: Viewer, sel: tuple) -> list[Section]:
    eg = metrics.unit_period_engagement(con, viewer=viewer)
    items = metrics.item_scores(con, viewer=viewer, groups=eg)
    suppressed = charts.in_selection(metrics.suppressed_group_list(con, viewer=viewer), *sel)
    units, p_from, p_to = sel
    trend_groups = charts.in_selection(eg.groups, units, None, p_to)
    trend = Section(
        "Engagement trend",
        (
            f"Engagement index by {eg.period}, pooled over every kept respondent of the units shown; a gap is a "
            f"suppressed group or a {eg.period} without a survey.",
        ),
        figure=charts.engagement_trend(trend_groups),
    )
    cells = charts.in_selection(items.cells, *sel)
    kept_units = set(cells["unit_id"].astype(str)) if len(cells) else set()
    only_suppressed = sorted(set(suppressed["unit_id"].astype(str)) - kept_units) if len(suppressed) else []
    all_items = sorted(set(items.cells["item"].astype(str))) if len(items.cells) else None
    heat = Section(
        "Favourable answers by unit and item",
        (
            "Favourable = answer 4-5 on 5 points (6-7 on 7 points), pooled over the selected periods. A blank cell "
            f"is suppressed: its group, or the item within it, had fewer than {eg.min_group} respondents.",
        ),
        figure=charts.engagement_heatmap(cells, suppressed_units=only_suppressed, items=all_items),
    )
    return [trend, heat]


MEASURES = {"engagement": "engagement index", "csat_pct": "CSAT %", "nps": "NPS"}


def _changes_section(con, viewer: Viewer, period: str | None) -> Section:
    """The Overview's "what changed": moves since the previous period that survive BH q < 0.10."""
    try:
        ch = focus.changes(con, viewer=viewer, period=period)
    except CxStatsError:  # the selection ends in a period without a shown survey group
        ch = focus.changes(con, viewer=viewer)
    if ch.period is None or ch.previous is None:
        return Section("What changed", ("There is no earlier period with survey results to compare with yet.",))
    words = (
        f"From {ch.previous} to {ch.period}: {ch.compared:,} comparisons were made (engagement index, CSAT % and NPS "
        f"per unit); {len(ch.changes):,} moved by more than noise explains (95% interval excluding zero after the "
        "Benjamini-Hochberg correction, q < 0.10). Units whose group in either period is suppressed are not compared.",
    )
    rows: tuple[tuple[str, ...], ...] = ()
    if ch.changes:
        rows = (("unit", "measure", "before", "after", "change (95% CI)", "q"),) + tuple(
            (
                c.unit_id,
                MEASURES.get(c.measure, c.measure),
                f"{c.before:.1f}",
                f"{c.after:.1f}",
                f"{c.diff:+.1f} ({c.ci_low:+.1f} to {c.ci_high:+.1f})",
                f"{c.q:.3f}",
            )
            for c in ch.changes
        )
    return Section("What changed", words, table=rows)


def _focus_section(con, viewer: Viewer, metric: str, units: tuple[str, ...] | None) -> Section:
    """How many units have each item among their focus areas (each unit's latest shown period)."""
    n_units, counts = focus.focus_counts(con, viewer=viewer, metric=metric, units=units)
    label = linkage.METRICS[metric]
    words = (
        f"A focus area is an item where a unit scores clearly below the other units (95% interval of the gap above "
        f"zero) and that goes with {label} across units (driver r > 0, q < 0.10); each unit gets at most three, "
        f"from its latest shown period. {n_units:,} units were looked at; "
        f"{sum(1 for _ in counts)} items are a focus area somewhere.",
        "Managers see their own units' focus areas, and keep action plans for them, on the Actions page.",
    )
    rows: tuple[tuple[str, ...], ...] = ()
    if counts:
        rows = (("item", "units with it as a focus area"),) + tuple((item, f"{n:,}") for item, n in counts.items())
    return Section("Focus areas across units", words, table=rows)


def _advocate_section(con, viewer: Viewer) -> Section:
    res = advocates.score(con, viewer=viewer)
    counts = res.customers["tier"].value_counts() if len(res.customers) else {}
    tiers = tuple(name for name, _ in advocates.TIERS)
    as_of = res.as_of.isoformat() if res.as_of else "no orders yet"
    words = [
        f"Customers who pass the advocate gates (at least 2 orders, a positive post or promoter answer, nothing "
        f"negative in the last 90 days), evidence up to {as_of}: {len(res.customers):,}.",
        "By tier: " + ", ".join(f"{t} {int(counts.get(t, 0)):,}" for t in tiers) + ".",
        "Names and contact details stay on the Advocates page; exports hold consented customers only.",
    ]
    effect = programme.programme_effect(con, viewer=viewer, as_of=res.as_of)
    rows: tuple[tuple[str, ...], ...] = (("design", "rewarded / compared", "orders per 90 days (95% CI)", "status"),)
    for d in effect.designs:
        label = "hold-out (randomised)" if d.design == "holdout" else "matched (an estimate)"
        o = d.orders
        est = "n/a" if o.estimate is None else f"{o.estimate:+.2f} ({_f(o.ci_low, '+.2f')} to {_f(o.ci_high, '+.2f')})"
        rows += ((label, f"{d.n_treated:,} / {d.n_control:,}", est, d.status),)
        words.extend(f"{label}: {w}" for w in d.warnings)
    words.append(
        "Did rewarding work? A randomised hold-out compares rewarded customers with a random share held back, "
        "so it is the estimate to trust; the matched comparison pairs each rewarded customer with a look-alike "
        "and is an estimate only (rewards go to the best customers, who would buy anyway)."
    )
    return Section("The advocate programme", tuple(words), figure=charts.tier_counts(res.customers), table=rows)


# ---------------------------------------------------------------- rendering


class _Images:
    """Plotly figures to PNG through kaleido, one Chromium for the whole report."""

    def __enter__(self):
        try:
            import kaleido
            import plotly.io as pio  # noqa: F401
        except ImportError as exc:  # pragma: no cover - a broken install
            raise CxStatsError("chart images need kaleido >= 1 (pip install -r requirements.txt)") from exc
        self._kaleido = kaleido
        try:
            kaleido.start_sync_server(silence_warnings=True)
        except Exception:  # an already running server is fine
            pass
        return self

    def png(self, fig: go.Figure) -> bytes:
        import plotly.io as pio

        try:
            try:
                return self._to_image(pio, fig)
            except Exception as exc:
                # kaleido's tab can be asked before its page has loaded its scripts (a JavascriptError,
                # "kaleido_scopes is not defined", seen once under load): one fresh server, one retry
                if type(exc).__name__ != "JavascriptError":
                    raise
                self.__exit__()
                self.__enter__()
                return self._to_image(pio, fig)
        except Exception as exc:
            raise CxStatsError(
                "could not render the charts: kaleido needs Chromium (Debian: apt-get install chromium); "
                f"{type(exc).__name__}"
            ) from exc

    @staticmethod
    def _to_image(pio, fig: go.Figure) -> bytes:
        with warnings.catch_warnings():  # plotly warns that kaleido's options go to the running server
            warnings.simplefilter("ignore", UserWarning)
            return pio.to_image(fig, format="png", width=IMAGE_W, height=IMAGE_H)

    def __exit__(self, *exc):
        try:
            self._kaleido.stop_sync_server(silence_warnings=True)
        except Exception:
            pass
        return False


def _font_path() -> str | None:
    for d in FONT_DIRS:
        for name in FONT_FILES:
            p = Path(d) / name
            if p.exists():
                return str(p)
    return None


def _pdf_bytes(rep: Report, images: _Images) -> bytes:
    from fpdf import FPDF
    from fpdf.fonts import FontFace

    pdf = FPDF(orientation="L", unit="mm", format="A4")
    pdf.set_creation_date(FIXED_DATE)
    pdf.set_title(rep.title)
    pdf.set_author("cxstats")
    pdf.set_creator("cxstats")
    pdf.set_producer("cxstats")
    pdf.set_auto_page_break(auto=True, margin=12)
    font = _font_path()
    if font:
        pdf.add_font("body", "", font)
        family = "body"

        def clean(t: str) -> str:
            return t
    else:  # the core fonts hold latin-1 only
        family = "helvetica"

        def clean(t: str) -> str:
            return t.replace("±", "+/-").encode("latin-1", "replace").decode("latin-1")

    for s in rep.sections:
        pdf.add_page()
        pdf.set_font(family, size=18)
        pdf.multi_cell(0, 9, clean(s.title), new_x="LMARGIN", new_y="NEXT")
        pdf.ln(2)
        pdf.set_font(family, size=10.5)
        for para in s.paragraphs:
            pdf.multi_cell(0, 5.5, clean(para), new_x="LMARGIN", new_y="NEXT")
            pdf.ln(1.5)
        if s.figure is not None:
            png = images.png(s.figure)
            w = 200.0 if not s.table else 170.0
            if pdf.get_y() + w * IMAGE_H / IMAGE_W > pdf.h - 12:
                w = max(60.0, (pdf.h - 12 - pdf.get_y()) * IMAGE_W / IMAGE_H)
            pdf.image(io.BytesIO(png), w=w)
        if s.table:
            pdf.ln(2)
            pdf.set_font(family, size=9.5)
            with pdf.table(
                width=min(pdf.epw, 60 * len(s.table[0])),
                align="LEFT",
                text_align="LEFT",
                first_row_as_headings=True,
                headings_style=FontFace(emphasis=None, fill_color=(230, 230, 230)),
            ) as table:
                for r in s.table:
                    row = table.row()
                    for cell in r:
                        row.cell(clean(cell))
    return bytes(pdf.output())


def _pptx_bytes(rep: Report, images: _Images) -> bytes:
    from pptx import Presentation
    from pptx.util import Inches, Pt

    prs = Presentation()
    prs.slide_width, prs.slide_height = Inches(13.333), Inches(7.5)
    cp = prs.core_properties
    cp.title, cp.author, cp.last_modified_by = rep.title, "cxstats", "cxstats"
    cp.created = cp.modified = FIXED_DATE.replace(tzinfo=None)
    cp.revision = 1
    blank = prs.slide_layouts[6]
    for s in rep.sections:
        slide = prs.slides.add_slide(blank)
        box = slide.shapes.add_textbox(Inches(0.5), Inches(0.3), Inches(12.3), Inches(0.8))
        box.text_frame.text = s.title
        box.text_frame.paragraphs[0].runs[0].font.size = Pt(26)
        top = 1.1
        if s.paragraphs:
            n_chars = sum(len(p) for p in s.paragraphs)
            height = min(2.4 if s.figure is not None else 5.8, 0.35 + 0.0042 * n_chars)
            body = slide.shapes.add_textbox(Inches(0.5), Inches(top), Inches(12.3), Inches(height))
            tf = body.text_frame
            tf.word_wrap = True
            size = Pt(12 if s.figure is not None or n_chars > 900 else 14)
            for i, para in enumerate(s.paragraphs):
                p = tf.paragraphs[0] if i == 0 else tf.add_paragraph()
                p.text = para
                p.runs[0].font.size = size
            top += height + 0.1
        left = 0.5
        if s.figure is not None:
            png = images.png(s.figure)
            avail_h = 7.3 - top
            w = min(8.3 if s.table else 12.3, avail_h * IMAGE_W / IMAGE_H)
            slide.shapes.add_picture(io.BytesIO(png), Inches(left), Inches(top), width=Inches(w))
            left += w + 0.2
        if s.table:
            rows, cols = len(s.table), len(s.table[0])
            width = 13.0 - left if s.figure is not None else 12.3
            shape = slide.shapes.add_table(rows, cols, Inches(left), Inches(top), Inches(width), Inches(0.3 * rows))
            for i, r in enumerate(s.table):
                for j, cell in enumerate(r):
                    c = shape.table.cell(i, j)
                    c.text = cell
                    for para in c.text_frame.paragraphs:
                        for run in para.runs:
                            run.font.size = Pt(11)
    buf = io.BytesIO()
    prs.save(buf)
    return buf.getvalue()


def render(rep: Report, fmt: str) -> bytes:
    """The report as PDF or PPTX bytes (the Overview's download and the command line share this)."""
    if fmt not in FORMATS:
        raise CxStatsError(f"unknown report format {fmt!r}; use .pdf or .pptx")
    with _Images() as images:
        return _pdf_bytes(rep, images) if fmt == "pdf" else _pptx_bytes(rep, images)


def format_for(path: str | os.PathLike) -> str:
    """'pdf' or 'pptx' from a file name, or a CxStatsError that says what to use."""
    ext = Path(path).suffix.lower().lstrip(".")
    if ext not in FORMATS:
        raise CxStatsError(f"the report file must end in .pdf or .pptx, not {Path(path).name!r}")
    return ext


def check_target(path: str | os.PathLike) -> Path:
    """The output path, refused before any work when its folder is missing or not writable."""
    out = Path(path)
    format_for(out)
    folder = out.parent if str(out.parent) else Path(".")
    if not folder.is_dir():
        raise CxStatsError(f"folder {str(folder)!r} does not exist; create it or choose another --out")
    if not os.access(folder, os.W_OK):
        raise CxStatsError(f"folder {str(folder)!r} is not writable; choose another --out")
    if out.is_dir():
        raise CxStatsError(f"{str(out)!r} is a folder; give a file name ending in .pdf or .pptx")
    return out


def write_report(rep: Report, path: str | os.PathLike) -> Path:
    """Render and write atomically: a temporary file beside the target, then a rename.

    A failure (or a kill) leaves no partial file under the target's name.
    """
    out = check_target(path)
    data = render(rep, format_for(out))
    fd, tmp = tempfile.mkstemp(prefix=".cxstats-report-", suffix=out.suffix, dir=out.parent or ".")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, out)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return out


def report_bytes(
    con: duckdb.DuckDBPyConnection,
    *,
    viewer: Viewer,
    fmt: str = "pdf",
    metric: str = "csat_pct",
    units: tuple[str, ...] | None = None,
    period_from: str | None = None,
    period_to: str | None = None,
) -> bytes:
    """Build and render in one call: the Overview's download (for the sidebar's selection)."""
    rep = build_report(con, viewer=viewer, metric=metric, units=units, period_from=period_from, period_to=period_to)
    return render(rep, fmt)
