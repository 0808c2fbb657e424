"""Cost of the xlsx extent check added for issue 7 (SECURITY.md, fix 1), beside a pandas peer.

Times, on one generated workbook (ROWS x 12 columns):
- the extent check alone (readers._check_extent: stream the sheet XML, find the farthest cell);
- cxstats reading the workbook (ingest.preview, extent check included) vs a pandas peer reading the
  same file (pandas.read_excel, engine="calamine");
each in its own subprocess, with peak memory (ru_maxrss). Run by hand: python benchmarks/bench_hardening.py
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ROWS = 200_000

CHILD = r"""
import io, json, resource, sys, time, zipfile
sys.path.insert(0, sys.argv[3])
data = open(sys.argv[2], "rb").read()
t = time.perf_counter()
if sys.argv[1] == "extent":
    from cxstats import readers
    zf = zipfile.ZipFile(io.BytesIO(data))
    readers._check_extent(zf, zf.infolist(), "bench.xlsx")
elif sys.argv[1] == "cxstats":
    from cxstats import ADMIN, ingest
    ingest.preview(data, "bench.xlsx", "feedback", viewer=ADMIN)
else:
    import pandas as pd
    pd.read_excel(io.BytesIO(data), engine="calamine")
s = time.perf_counter() - t
print(json.dumps({"seconds": s, "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def workbook(rows: int) -> bytes:
    head = ["Store", "Date", "CSAT", "NPS", "Response ID", "Customer", "Channel", "Comment", "a", "b", "c", "d"]
    cols = "ABCDEFGHIJKL"

    def cell(ref, v):
        if isinstance(v, (int, float)):
            return f'<c r="{ref}"><v>{v}</v></c>'
        return f'<c r="{ref}" t="inlineStr"><is><t>{v}</t></is></c>'

    parts = ['<row r="1">' + "".join(cell(f"{c}1", h) for c, h in zip(cols, head)) + "</row>"]
    for r in range(2, rows + 2):
        vals = [
            f"S{r % 40:03d}",
            f"2024-03-{1 + r % 28:02d}",
            1 + r % 5,
            r % 11,
            f"R{r}",
            f"C{r % 5000}",
            "email",
            "fine",
            1,
            2,
            3,
            4,
        ]
        parts.append(f'<row r="{r}">' + "".join(cell(f"{c}{r}", v) for c, v in zip(cols, vals)) + "</row>")
    sheet = (
        '<?xml version="1.0" encoding="UTF-8"?><worksheet xmlns="http://schemas.openxmlformats.org/'
        'spreadsheetml/2006/main"><sheetData>' + "".join(parts) + "</sheetData></worksheet>"
    )
    sys.path[:0] = [str(ROOT), str(ROOT / "tests")]
    from hostile_files import minimal_xlsx  # the same hand-written workbook shell as the fuzz tests

    base = minimal_xlsx("")
    zin = zipfile.ZipFile(io.BytesIO(base))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:
        for info in zin.infolist():
            body = sheet if info.filename == "xl/worksheets/sheet1.xml" else zin.read(info)
            z.writestr(info.filename, body)
    return out.getvalue()


def main() -> None:
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "bench.xlsx"
        path.write_bytes(workbook(ROWS))
        print(f"workbook: {ROWS:,} rows x 12 columns, {path.stat().st_size / 1e6:.1f} MB")
        for what in ("extent", "cxstats", "pandas"):
            res = subprocess.run(
                [sys.executable, "-c", CHILD, what, str(path), str(ROOT)], capture_output=True, text=True, check=True
            )
            r = json.loads(res.stdout)
            print(f"{what:>8}: {r['seconds']:.2f} s, peak {r['peak_mb']:.0f} MB")


if __name__ == "__main__":
    main()
