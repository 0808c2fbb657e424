"""Hostile workbooks and names of issue 18, built in memory (tests/test_probe_files.py, the AppTests in
tests/test_app*.py, tests/test_fuzz_ingest.py, benchmarks/bench_hostile.py and bench_hardening.py).

- ``wide_xlsx()``: ~0.7 MB; no cell carries r=; one row of 16,380 empty <c/> before a value, then
  ~100,000 short rows: the reader would allocate ~100,000 x 16,381 cells (~52 GB) and abort.
- ``long_xlsx()``: ~7 MB whose sheet inflates ~150x to ~1.1 GB of rows without r= (~14 million rows):
  within the size and ratio checks.
- ``wide_ods()`` / ``long_ods()``: the same for .ods (table:number-columns-repeated="16380" and ~1.1 GB
  of rows).
- ``minimal_xlsx(sheet_xml)`` / ``minimal_ods(table_xml)``: a one-sheet file written by hand around the
  given rows (tests/test_fuzz_ingest.py's named hostile workbooks, benchmarks/bench_hardening.py too);
- ``EVIL``: a name holding a Markdown link, image, HTML tag and emphasis; ``RAW`` what of it must never
  reach rendered Markdown; ``csv_bytes(rows)``; ``hostile_customers_csv()``: one customer named ``EVIL``.
"""

from __future__ import annotations

import csv
import io
import random
import struct
import zipfile
import zlib

EVIL = "[x](http://evil)![i](/x.png)<b>bold</b>*em*"
RAW = ("](http://evil)", "](/x.png)", "<b>", "*em*")


def csv_bytes(rows: list[dict]) -> bytes:
    out = io.StringIO()
    w = csv.DictWriter(out, fieldnames=list(rows[0]))
    w.writeheader()
    w.writerows(rows)
    return out.getvalue().encode()


def hostile_customers_csv() -> bytes:
    """A customers file of one consenting customer whose name and handle are EVIL."""
    return csv_bytes(
        [
            {
                "customer_id": "C00001",
                "name": EVIL,
                "email": "a@example.com",
                "handle": EVIL,
                "marketing_consent": "yes",
                "consent_date": "2024-01-10",
            }
        ]
    )


_XLSX_PARTS = {
    "[Content_Types].xml": (
        '<?xml version="1.0" encoding="UTF-8"?><Types xmlns="http://schemas.openxmlformats.org/package/2006/'
        'content-types"><Default Extension="rels" ContentType="application/vnd.openxmlformats-package.'
        'relationships+xml"/><Default Extension="xml" ContentType="application/xml"/><Override PartName="/xl/'
        'workbook.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"/>'
        '<Override PartName="/xl/worksheets/sheet1.xml" ContentType="application/vnd.openxmlformats-'
        'officedocument.spreadsheetml.worksheet+xml"/></Types>'
    ),
    "_rels/.rels": (
        '<?xml version="1.0" encoding="UTF-8"?><Relationships xmlns="http://schemas.openxmlformats.org/package/'
        '2006/relationships"><Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/'
        'relationships/officeDocument" Target="xl/workbook.xml"/></Relationships>'
    ),
    "xl/workbook.xml": (
        '<?xml version="1.0" encoding="UTF-8"?><workbook xmlns="http://schemas.openxmlformats.org/spreadsheetml/'
        '2006/main" xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships"><sheets>'
        '<sheet name="Data" sheetId="1" r:id="rId1"/></sheets></workbook>'
    ),
    "xl/_rels/workbook.xml.rels": (
        '<?xml version="1.0" encoding="UTF-8"?><Relationships xmlns="http://schemas.openxmlformats.org/'
        'package/2006/relationships"><Relationship Id="rId1" Type="http://schemas.openxmlformats.org/'
        'officeDocument/2006/relationships/worksheet" Target="worksheets/sheet1.xml"/></Relationships>'
    ),
}
SHEET_HEAD = (
    '<?xml version="1.0" encoding="UTF-8"?><worksheet xmlns="http://schemas.openxmlformats.org/'
    'spreadsheetml/2006/main"><sheetData>'
)
SHEET_TAIL = "</sheetData></worksheet>"
ODS_HEAD = (
    '<?xml version="1.0" encoding="UTF-8"?><office:document-content '
    'xmlns:office="urn:oasis:names:tc:opendocument:xmlns:office:1.0" '
    'xmlns:table="urn:oasis:names:tc:opendocument:xmlns:table:1.0" '
    'xmlns:text="urn:oasis:names:tc:opendocument:xmlns:text:1.0" office:version="1.2">'
    '<office:body><office:spreadsheet><table:table table:name="Data">'
)
ODS_TAIL = "</table:table></office:spreadsheet></office:body></office:document-content>"
ODS_MANIFEST = (
    '<?xml version="1.0" encoding="UTF-8"?><manifest:manifest xmlns:manifest="urn:oasis:names:tc:'
    'opendocument:xmlns:manifest:1.0" manifest:version="1.2"><manifest:file-entry manifest:full-path="/"'
    ' manifest:media-type="application/vnd.oasis.opendocument.spreadsheet"/><manifest:file-entry '
    'manifest:full-path="content.xml" manifest:media-type="text/xml"/></manifest:manifest>'
)


def _s(t: str) -> str:
    return f'<c t="inlineStr"><is><t>{t}</t></is></c>'


def _ts(t: str) -> str:
    return f'<table:table-cell office:value-type="string"><text:p>{t}</text:p></table:table-cell>'


def _tf(v) -> str:
    return f'<table:table-cell office:value-type="float" office:value="{v}"><text:p>{v}</text:p></table:table-cell>'


XLSX_HEADER = "<row>" + _s("Store") + _s("Date") + _s("CSAT") + "</row>"
ODS_HEADER = "<table:table-row>" + _ts("Store") + _ts("Date") + _ts("CSAT") + "</table:table-row>"


def minimal_xlsx(sheet_xml: str) -> bytes:
    """A one-sheet workbook (sheet "Data") written by hand around ``sheet_xml`` (the rows inside <sheetData>),
    for shapes openpyxl would not write (stray far cells, rows without r=)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for name, body in _XLSX_PARTS.items():
            z.writestr(name, body)
        z.writestr("xl/worksheets/sheet1.xml", SHEET_HEAD + sheet_xml + SHEET_TAIL)
    return buf.getvalue()


def minimal_ods(table_xml: str) -> bytes:
    """A one-table spreadsheet (table "Data") written by hand around ``table_xml`` (the table's rows)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr(zipfile.ZipInfo("mimetype"), "application/vnd.oasis.opendocument.spreadsheet")
        z.writestr("META-INF/manifest.xml", ODS_MANIFEST)
        z.writestr("content.xml", ODS_HEAD + table_xml + ODS_TAIL)
    return buf.getvalue()


def _xlsx_rows(n: int, rng: random.Random) -> str:
    return "".join(
        f"<row>{_s('S%03d' % rng.randrange(1000))}<c><v>{rng.randrange(45000, 46000)}</v></c>"
        f"<c><v>{rng.randrange(1, 6)}</v></c></row>"
        for _ in range(n)
    )


def wide_xlsx(rows: int = 100_000, seed: int = 18) -> bytes:
    rng = random.Random(seed)
    wide = "<row>" + "<c/>" * 16_380 + "<c><v>1</v></c></row>"
    return minimal_xlsx(XLSX_HEADER + wide + _xlsx_rows(rows, rng))


def wide_ods(rows: int = 100_000, seed: int = 18) -> bytes:
    rng = random.Random(seed)
    wide = '<table:table-row><table:table-cell table:number-columns-repeated="16380"/>' + _tf(1) + "</table:table-row>"
    body = "".join(
        f"<table:table-row>{_ts('S%03d' % rng.randrange(1000))}{_tf(rng.randrange(45000, 46000))}"
        f"{_tf(rng.randrange(1, 6))}</table:table-row>"
        for _ in range(rows)
    )
    return minimal_ods(ODS_HEADER + wide + body)


# ---------------------------------------------------------------- ~1.1 GB of rows in ~7 MB


def _stored_zip(members: list[tuple[str, bytes, int, int, int]]) -> bytes:
    """A zip from members already compressed: (name, data, method 8 deflated or 0 stored, crc, size)."""
    out = io.BytesIO()
    central = []
    for name, deflated, method, crc, size in members:
        offset = out.tell()
        fn = name.encode()
        out.write(
            struct.pack("<IHHHHHIIIHH", 0x04034B50, 20, 0, method, 0, 0x21, crc, len(deflated), size, len(fn), 0) + fn
        )
        out.write(deflated)
        central.append(
            struct.pack(
                "<IHHHHHHIIIHHHHHII",
                0x02014B50,
                20,
                20,
                0,
                method,
                0,
                0x21,
                crc,
                len(deflated),
                size,
                len(fn),
                0,
                0,
                0,
                0,
                0,
                offset,
            )
            + fn
        )
    cd_start = out.tell()
    for c in central:
        out.write(c)
    out.write(
        struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, len(central), len(central), out.tell() - cd_start, cd_start, 0)
    )
    return out.getvalue()


def _member(name: str, head: bytes, block: bytes, repeats: int, tail: bytes):
    """head + block * repeats + tail, deflated: the block is compressed once and its bytes repeated."""
    comp = zlib.compressobj(6, zlib.DEFLATED, -15)
    first = comp.compress(head) + comp.flush(zlib.Z_FULL_FLUSH)
    one = comp.compress(block) + comp.flush(zlib.Z_FULL_FLUSH)
    last = comp.compress(tail) + comp.flush(zlib.Z_FINISH)
    crc = zlib.crc32(head)
    for _ in range(repeats):
        crc = zlib.crc32(block, crc)
    crc = zlib.crc32(tail, crc)
    size = len(head) + len(block) * repeats + len(tail)
    return name, first + one * repeats + last, 8, crc & 0xFFFFFFFF, size


def _plain(name: str, body: str):
    data = body.encode()
    comp = zlib.compressobj(6, zlib.DEFLATED, -15)
    return name, comp.compress(data) + comp.flush(), 8, zlib.crc32(data) & 0xFFFFFFFF, len(data)


def _block(make_row, target: int, rng: random.Random) -> bytes:
    rows, size = [], 0
    while size < target:
        r = make_row(rng)
        rows.append(r)
        size += len(r)
    return "".join(rows).encode()


def long_xlsx(inflated: int = 1_100_000_000, seed: int = 18) -> bytes:
    rng = random.Random(seed)

    def row(rng):
        # mostly the same row, a random value now and then: ~150x compression
        v = rng.randrange(1, 6) if rng.random() < 0.22 else 4
        return f"<row>{_s('S001')}<c><v>45000</v></c><c><v>{v}</v></c></row>"

    block = _block(row, 1 << 22, rng)
    head = (SHEET_HEAD + XLSX_HEADER).encode()
    members = [_plain(n, b) for n, b in _XLSX_PARTS.items()]
    members.append(
        _member("xl/worksheets/sheet1.xml", head, block, max(1, inflated // len(block)), SHEET_TAIL.encode())
    )
    return _stored_zip(members)


def long_ods(inflated: int = 1_100_000_000, seed: int = 18) -> bytes:
    rng = random.Random(seed)

    def row(rng):
        v = rng.randrange(1, 6) if rng.random() < 0.3 else 4
        return f'<table:table-row><table:table-cell office:value-type="float" office:value="{v}"/></table:table-row>'

    block = _block(row, 1 << 22, rng)
    head = (ODS_HEAD + ODS_HEADER).encode()
    mt = b"application/vnd.oasis.opendocument.spreadsheet"
    members = [("mimetype", mt, 0, zlib.crc32(mt) & 0xFFFFFFFF, len(mt)), _plain("META-INF/manifest.xml", ODS_MANIFEST)]
    members.append(_member("content.xml", head, block, max(1, inflated // len(block)), ODS_TAIL.encode()))
    return _stored_zip(members)
