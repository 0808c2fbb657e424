"""The xlsx extent check's quick path (readers._XlsxExtent._feed_plain) against its full scan.

The quick path counts a chunk of sheet XML from its '=' signs and takes only chunks in which every
cell is written `<c r="A1"` and every row `<row r="1"` (what Excel, LibreOffice and openpyxl write);
any other chunk goes to the full tag scan and its regexes. Both must leave the same counts (rows,
r-less rows and cells, farthest references) for every chunking of every sheet: generated sheets mix
the usual spelling with r-less cells and rows, wide columns, rows past 1,000,000, single quotes,
spaces around '=', prefixed tags, xr= attributes and text that looks like a reference.
"""

from __future__ import annotations

import random

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cxstats import readers

CELLS = [
    '<c r="{col}{row}" t="n"><v>{v}</v></c>',
    '<c r="{col}{row}" s="1" t="inlineStr"><is><t>x{v}</t></is></c>',
    '<c r="{col}{row}"/>',
    "<c><v>{v}</v></c>",  # r-less
    '<c t="n"><v>{v}</v></c>',  # r-less
    '<c s="1" r="{col}{row}"><v>{v}</v></c>',  # r= not first
    "<c r='{col}{row}'><v>{v}</v></c>",  # single quotes
    '<c r = "{col}{row}"><v>{v}</v></c>',  # spaces around =
    '<x:c r="{col}{row}"><x:v>{v}</x:v></x:c>',  # prefixed
    '<c r="{col}{row}" xr="Q{v}"><v>{v}</v></c>',
    '<c r="{col}{row}" t="inlineStr"><is><t>r="AB{v}"</t></is></c>',
    '<c r="{col}{row}" t="inlineStr"><is><t>a = b</t></is></c>',
    '<c\tr="{col}{row}"><v>{v}</v></c>',
]
ROWS = ['<row r="{row}">', '<row r="{row}" spans="1:3">', "<row>", "<row r='{row}'>", '<x:row r="{row}">']
COLS = ["A", "B", "Z", "AA", "XFD", "a"]


def _sheet(rng: random.Random, n_rows: int, odd: float) -> bytes:
    parts = ['<worksheet xmlns="x"><dimension ref="A1:C9"/><sheetData>']
    row = rng.choice([1, 1, 999_990, 1_048_570])
    width = rng.choice([0, 4])  # rows without cells too
    for _ in range(n_rows):
        row += rng.choice([1, 1, 1, 2, 1000])
        r_tpl = ROWS[0] if rng.random() > odd else rng.choice(ROWS)
        parts.append(r_tpl.format(row=row))
        for _ in range(rng.randint(0, width)):
            c_tpl = CELLS[rng.randint(0, 2)] if rng.random() > odd else rng.choice(CELLS)
            col = "A" if rng.random() > odd else rng.choice(COLS)
            parts.append(c_tpl.format(col=col, row=row, v=rng.randint(0, 10 ** rng.randint(1, 8))))
        parts.append("</x:row>" if r_tpl.startswith("<x:") else "</row>")
    parts.append("</sheetData></worksheet>")
    return "".join(parts).encode()


def _state(xml: bytes, cuts: list[int], quick: bool, monkeypatch) -> dict:
    if not quick:
        monkeypatch.setattr(readers._XlsxExtent, "_feed_plain", lambda self, buf, arr: False)
    ext = readers._XlsxExtent()
    for buf in _split_before_lt(xml, cuts):
        ext.feed(buf)
    monkeypatch.undo()
    return {k: v for k, v in vars(ext).items() if k != "misses"}


def _split_before_lt(xml: bytes, cuts: list[int]) -> list[bytes]:
    """Chunks as readers._chunks cuts them: each ends before a '<'."""
    out, start = [], 0
    for c in sorted(set(cuts)):
        cut = xml.rfind(b"<", start + 1, max(c, start + 1))
        if cut > start:
            out.append(xml[start:cut])
            start = cut
    out.append(xml[start:])
    return out


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 10**6), n_rows=st.integers(0, 40), odd=st.sampled_from([0.0, 0.02, 0.2, 1.0]))
def test_quick_path_counts_like_the_full_scan(seed, n_rows, odd):
    rng = random.Random(seed)
    xml = _sheet(rng, n_rows, odd)
    cuts = [rng.randint(0, len(xml)) for _ in range(rng.randint(0, 6))]
    with pytest.MonkeyPatch.context() as mp:
        assert _state(xml, cuts, True, mp) == _state(xml, cuts, False, mp)


def test_the_quick_path_takes_the_usual_sheet_and_counts_its_rows():
    xml = _sheet(random.Random(1), 200, 0.0)
    ext = readers._XlsxExtent()
    arr = np.frombuffer(b"\0" * 8 + xml + b"\0" * 16, np.uint8)
    assert ext._feed_plain(xml, arr)
    assert ext.rows == 200 and ext.any_ref and ext.rless_rows == 0


@pytest.mark.parametrize(
    "cell",
    ['<c r="AA5"/>', '<c r="A1000000"/>', "<c/>", "<c r='A5'/>", '<c r ="A5"/>', '<c s="1" r="A5"/>', '<col r="A5"/>'],
)
def test_the_quick_path_leaves_other_spellings_to_the_full_scan(cell):
    xml = f'<sheetData><row r="5">{cell}</row></sheetData>'.encode()
    arr = np.frombuffer(b"\0" * 8 + xml + b"\0" * 16, np.uint8)
    ext = readers._XlsxExtent()
    assert not ext._feed_plain(xml, arr)
    assert {**vars(ext), "misses": 0} == vars(readers._XlsxExtent())  # nothing counted


def _zip(xml: bytes):
    import io
    import zipfile

    raw = io.BytesIO()
    with zipfile.ZipFile(raw, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("xl/worksheets/sheet1.xml", xml)
    zf = zipfile.ZipFile(io.BytesIO(raw.getvalue()))
    return zf, zf.getinfo("xl/worksheets/sheet1.xml")


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 10**6), n_rows=st.integers(0, 30), chunk=st.integers(1, 300))
def test_pieces_are_cut_before_a_tag_and_copied_whole(seed, n_rows, chunk):
    """_chunks and _padded_chunks (the extent check's reads, in its background thread) give the same
    pieces: together the whole member, each but the first starting with '<', each padded with NULs."""
    xml = _sheet(random.Random(seed), n_rows, 0.2)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(readers, "_CHUNK", chunk)
        zf, info = _zip(xml)
        pieces = list(readers._chunks(zf, info, "t.xlsx"))
        padded = list(readers._padded_chunks(zf, info, "t.xlsx"))
    assert b"".join(pieces) == xml
    assert all(p.startswith(b"<") for p in pieces[1:])
    assert [arr[8 : 8 + n].tobytes() for arr, n, _ in padded] == pieces
    assert all(not arr[:8].any() and not arr[8 + n :].any() and len(arr) == n + 24 for arr, n, _ in padded)
    assert [colon for _, _, colon in padded] == [b":" in p for p in pieces]


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 10**6), n_rows=st.integers(0, 40), odd=st.sampled_from([0.0, 0.2, 1.0]))
def test_the_threaded_check_counts_like_feeding_the_pieces_in_turn(seed, n_rows, odd):
    xml = _sheet(random.Random(seed), n_rows, odd)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(readers, "_CHUNK", 97)
        zf, info = _zip(xml)
        one_by_one, threaded = readers._XlsxExtent(), readers._XlsxExtent()
        for buf in readers._chunks(zf, info, "t.xlsx"):
            one_by_one.feed(buf)
        for piece in readers._prefetched(readers._padded_chunks(zf, info, "t.xlsx")):
            threaded.feed_padded(*piece)
    assert vars(threaded) == vars(one_by_one)


def test_a_single_tag_longer_than_16_mb_is_refused(monkeypatch):
    monkeypatch.setattr(readers, "_CHUNK", 64)
    monkeypatch.setattr(readers, "_MAX_TAG", 1000)
    zf, info = _zip(b'<sheetData><row r="1"><c r="A1" t="inlineStr"><is><t>' + b"x" * 5000 + b"</t></is></c>")
    with pytest.raises(readers.CxStatsError, match="single XML tag or text of more than 16 MB"):
        list(readers._prefetched(readers._padded_chunks(zf, info, "t.xlsx")))


def _inflating_threads() -> list:
    import threading

    return [t for t in threading.enumerate() if t.name == "cxstats-inflate"]


def test_prefetched_hands_errors_to_the_caller_and_stops_with_it():
    def items():
        yield 1
        yield 2
        raise ValueError("inflating failed")

    got = []
    with pytest.raises(ValueError, match="inflating failed"):
        for x in readers._prefetched(items()):
            got.append(x)
    assert got == [1, 2] and not _inflating_threads()
    # a caller that stops early (a refusal while counting) stops the thread before it goes on
    endless = readers._prefetched(iter(range(10**9)), depth=1)
    assert next(endless) == 0
    endless.close()
    assert not _inflating_threads()


def test_prefetched_makes_the_items_itself_when_no_thread_can_start(monkeypatch):
    import threading

    def refuse(self):
        raise RuntimeError("can't start new thread")

    monkeypatch.setattr(threading.Thread, "start", refuse)
    assert list(readers._prefetched(iter(range(5)))) == [0, 1, 2, 3, 4]
