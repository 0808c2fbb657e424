"""The leader's report (DESIGN.md "Leader's report"): contents equal the dashboard's library calls,
suppressed groups change nothing in it, bad --out is refused with nothing left behind, roles hold.

PDF text is read back with pypdf and slide text with python-pptx, so the checks are on what a board
member would read, not on the code's own intermediate values.
"""

from __future__ import annotations

import io
import json
import random
from datetime import date

import pytest
from pptx import Presentation
from pypdf import PdfReader

from cxstats import ADMIN, AccessDenied, CxStatsError, Viewer, ingest, linkage, overview, report, store

pytest_plugins = ["app_fixtures"]

ITEMS = ("I feel valued", "I have the tools", "I would recommend this team")
QUARTERS = (date(2025, 1, 15), date(2025, 4, 15), date(2025, 7, 15))


def pdf_text(data: bytes) -> str:
    return "\n".join(page.extract_text() or "" for page in PdfReader(io.BytesIO(data)).pages)


def pptx_text(data: bytes) -> str:
    out = []
    for slide in Presentation(io.BytesIO(data)).slides:
        for shape in slide.shapes:
            if shape.has_text_frame:
                out.append(shape.text_frame.text)
            if shape.has_table:
                out.extend(" | ".join(c.text for c in row.cells) for row in shape.table.rows)
    return "\n".join(out)


def _small_db(tmp_path, name: str, hidden_answers: int) -> str:
    """6 units x 3 quarters of 6-9 respondents; unit S006 has 3 respondents in 2025-Q1 (suppressed).

    ``hidden_answers`` is the one answer every suppressed respondent gives: two databases that
    differ only there must give the same report.
    """
    rng = random.Random(11)
    units = [f"S{i:03d}" for i in range(1, 7)]
    lines = ["Unit,Survey date,Respondent,eNPS,Comment," + ",".join(ITEMS)]
    fb = ["Store,Date,CSAT,NPS"]
    k = 0
    for u in units:
        for q in QUARTERS:
            n = 3 if (u, q) == ("S006", QUARTERS[0]) else rng.randint(6, 9)
            for _ in range(n):
                k += 1
                if n == 3:
                    answers = [hidden_answers] * len(ITEMS)
                    comment = "I am the only one on nights"
                else:
                    answers = [rng.randint(1, 5) for _ in ITEMS]
                    comment = ""
                lines.append(
                    f"{u},{q.isoformat()},R{k:04d},{rng.randint(0, 10)},{comment}," + ",".join(map(str, answers))
                )
            for _ in range(12):
                fb.append(f"{u},{q.isoformat()},{rng.randint(1, 5)},{rng.randint(0, 10)}")
    db = tmp_path / f"{name}.duckdb"
    ingest.import_file(
        db, "engagement", ("\n".join(lines) + "\n").encode(), file_name="survey.csv", scale=5, viewer=ADMIN
    )
    ingest.import_file(db, "feedback", ("\n".join(fb) + "\n").encode(), file_name="feedback.csv", viewer=ADMIN)
    return str(db)


def _build(db: str, viewer: Viewer = ADMIN, **kw) -> report.Report:
    with store.connect(db) as con:
        return report.build_report(con, viewer=viewer, **kw)


@pytest.fixture(scope="module")
def demo_reports(demo_db):
    rep = _build(str(demo_db))
    return rep, report.render(rep, "pdf"), report.render(rep, "pptx")


def test_pdf_and_slides_carry_the_dashboards_headline_numbers(demo_db, demo_reports):
    rep, pdf, pptx = demo_reports
    assert pdf.startswith(b"%PDF")
    assert len(PdfReader(io.BytesIO(pdf)).pages) == len(rep.sections)
    assert len(Presentation(io.BytesIO(pptx)).slides) == len(rep.sections)
    with store.connect(demo_db) as con:
        h = overview.headline(con, None, *report._period_choice(con, ADMIN, None), viewer=ADMIN)
        res = linkage.analyse(con, viewer=ADMIN, metric="csat_pct")
    expected = [
        f"{h.engagement_index:.1f}",
        f"{h.csat_pct:.1f}",
        f"{h.nps:+.1f}",
        f"{h.nps_margin:.1f}",
        f"{h.respondents:,} respondents",
        f"{10 * res.within_unit.coef:+.2f}",
        f"r = {res.pearson.r:.2f}",
        f"{res.pearson.ci_low:.2f} to {res.pearson.ci_high:.2f}",
        f"fewer than {h.min_group} respondents",
    ]
    for text in (pdf_text(pdf), pptx_text(pptx)):
        flat = " ".join(text.split())
        for want in expected:
            assert want in flat, want
        # the order of the contents, as DESIGN.md pins it
        order = [
            "Headline figures",
            "within units",
            "Between units",
            "Lags",
            "Engagement trend",
            "by unit and item",
            "What changed",
            "Focus areas across units",
            "advocate programme",
            "what they cannot show",
        ]
        positions = [flat.find(t) for t in order]
        assert -1 not in positions and positions == sorted(positions), positions


def test_pdf_text_is_the_reports_own_words(demo_reports):
    rep, pdf, pptx = demo_reports
    flat_pdf = " ".join(pdf_text(pdf).split())
    flat_pptx = " ".join(pptx_text(pptx).split())
    for s in rep.sections:
        for para in s.paragraphs:
            first = " ".join(para.split())[:60]
            assert first in flat_pdf and first in flat_pptx, first


def test_a_suppressed_groups_answers_change_nothing_in_the_report(tmp_path):
    a, b = _small_db(tmp_path, "a", 1), _small_db(tmp_path, "b", 5)
    ra, rb = _build(a), _build(b)
    assert ra == rb  # every section's title, sentences and tables
    for sa, sb in zip(ra.sections, rb.sections):  # and every chart, trace by trace
        fa = None if sa.figure is None else json.dumps(sa.figure.to_plotly_json(), sort_keys=True, default=str)
        fb = None if sb.figure is None else json.dumps(sb.figure.to_plotly_json(), sort_keys=True, default=str)
        assert fa == fb, sa.title


def test_a_suppressed_groups_pdf_and_slides_are_the_same(tmp_path):
    """The rendered files of the two databases above (full tier: four renders)."""
    ra, rb = _build(_small_db(tmp_path, "a", 1)), _build(_small_db(tmp_path, "b", 5))
    for fmt, extract in (("pdf", pdf_text), ("pptx", pptx_text)):
        ta, tb = extract(report.render(ra, fmt)), extract(report.render(rb, fmt))
        assert ta == tb
        assert "nights" not in ta  # no employee comment is ever quoted
        assert "1 unit-quarter groups suppressed" in " ".join(ta.split())


def test_the_pdf_is_the_same_file_for_the_same_data(tmp_path):
    db = _small_db(tmp_path, "a", 3)
    assert report.render(_build(db), "pdf") == report.render(_build(db), "pdf")  # fixed dates, same charts


def test_marketing_gets_no_report_and_a_manager_only_his_units(tmp_path):
    db = _small_db(tmp_path, "a", 2)
    with pytest.raises(AccessDenied):
        _build(db, Viewer("marketing", (), "m"))
    rep = _build(db, Viewer("manager", ("S001", "S002"), "m"))
    assert "your units S001, S002" in rep.text()
    heat = next(s for s in rep.sections if "by unit and item" in s.title).figure
    assert set(heat.data[0].y) == {"S001", "S002"}
    scatter = next(s for s in rep.sections if s.title.startswith("Between")).figure
    shown = {str(t) for tr in scatter.data for t in (tr.text or ()) if t}
    assert shown <= {"S001", "S002"}


def test_an_empty_database_gives_a_short_report_that_says_what_to_load(tmp_path):
    rep = _build(str(tmp_path / "empty.duckdb"))
    assert len(rep.sections) == 3
    assert "Load an engagement survey" in rep.text()
    assert pdf_text(report.render(rep, "pdf"))


@pytest.mark.parametrize(
    "out, message",
    [
        ("board.docx", "must end in .pdf or .pptx"),
        ("missing/board.pdf", "does not exist"),
    ],
)
def test_bad_out_is_refused_with_nothing_written(tmp_path, cli_inprocess, out, message):
    db = _small_db(tmp_path, "a", 2)
    before = sorted(p.name for p in tmp_path.iterdir())
    r = cli_inprocess("report", "--out", str(tmp_path / out), db=db)
    assert r.returncode == 2 and message in r.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == before


def test_unknown_period_is_refused_and_a_good_one_writes_the_file(tmp_path, cli):
    db = _small_db(tmp_path, "a", 2)
    r = cli("report", "--out", str(tmp_path / "x.pdf"), "--in", "1999-Q1", db=db)
    assert r.returncode == 2 and "unknown period '1999-Q1'" in r.stderr and "2025-Q3" in r.stderr
    assert not (tmp_path / "x.pdf").exists()
    r = cli("report", "--out", str(tmp_path / "q.pptx"), "--in", "2025-Q3", "--metric", "nps", db=db)
    assert r.returncode == 0, r.stderr
    text = pptx_text((tmp_path / "q.pptx").read_bytes())
    assert "quarters 2025-Q3" in text and "Customer measure for the linkage: NPS" in text


def test_a_failed_render_leaves_no_partial_file(tmp_path, monkeypatch):
    db = _small_db(tmp_path, "a", 2)
    rep = _build(db)

    def broken(*a, **k):
        raise CxStatsError("could not render the charts")

    monkeypatch.setattr(report, "render", broken)
    with pytest.raises(CxStatsError):
        report.write_report(rep, tmp_path / "out.pdf")
    assert not [p for p in tmp_path.iterdir() if p.suffix == ".pdf"]


def test_a_tab_not_ready_is_retried_once_and_other_failures_say_what_to_fix(monkeypatch):
    """kaleido can ask its tab before the page's scripts load (JavascriptError): one fresh server, one retry."""
    from cxstats import report as rep

    class JavascriptError(Exception):
        pass

    calls = []

    def flaky(pio, fig):
        calls.append(1)
        if len(calls) == 1:
            raise JavascriptError("kaleido_scopes is not defined")
        return b"png"

    monkeypatch.setattr(rep._Images, "_to_image", staticmethod(flaky))
    monkeypatch.setattr(rep._Images, "__enter__", lambda self: self)
    monkeypatch.setattr(rep._Images, "__exit__", lambda self, *exc: False)
    images = rep._Images()
    assert images.png(None) == b"png" and len(calls) == 2

    def broken(pio, fig):
        raise RuntimeError("no chromium")

    monkeypatch.setattr(rep._Images, "_to_image", staticmethod(broken))
    with pytest.raises(rep.CxStatsError, match="apt-get install chromium"):
        images.png(None)
