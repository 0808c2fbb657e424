"""Time and peak memory of refusing the hostile workbooks of issue 18 through the command line.

`python benchmarks/bench_hostile.py`: writes each file of tests/hostile_files.py, runs
`python -m cxstats import feedback FILE` in a subprocess (which reads it in the capped worker) and reports
wall seconds, CPU seconds (user + system of the command and its worker: on the shared machine the
wall time is mostly waiting for a core), exit code and the peak RSS of the largest process
(ru_maxrss of the children, like /usr/bin/time -v). Then the app's path: `ingest.preview(..., isolated=True)` as the Upload page calls it,
in a fresh process (the file's bytes in memory, as Streamlit holds an upload), timed around the call
only. Not run unguarded: the wide files would ask for ~52 GB and abort (see README.md).
"""

from __future__ import annotations

import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

import hostile_files  # noqa: E402

APP_CALL = """
import sys, time
from pathlib import Path
from cxstats import ADMIN, CxStatsError, ingest
data = Path(sys.argv[1]).read_bytes()
t = time.perf_counter()
try:
    ingest.preview(data, sys.argv[2], "feedback", isolated=True, viewer=ADMIN)
    refused = "no"
except CxStatsError:
    refused = "yes"
print(refused, f"{time.perf_counter() - t:.1f}")
"""


def main() -> None:
    print("| file | size MB | largest member inflated MB | exit | seconds | CPU seconds | peak RSS MB |")
    print("|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        rows = []
        for name, make in (
            ("wide.xlsx", hostile_files.wide_xlsx),
            ("long.xlsx", hostile_files.long_xlsx),
            ("wide.ods", hostile_files.wide_ods),
            ("long.ods", hostile_files.long_ods),
        ):
            import io
            import zipfile

            data = make()
            inflated = max(i.file_size for i in zipfile.ZipFile(io.BytesIO(data)).infolist())
            path = Path(tmp) / name
            path.write_bytes(data)
            t = time.perf_counter()
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            out = subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "cxstats",
                    "import",
                    "feedback",
                    str(path),
                    "--db",
                    str(Path(tmp) / f"{name}.duckdb"),
                ],
                capture_output=True,
                text=True,
                cwd=ROOT,
            )
            secs = time.perf_counter() - t
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
            peak = after.ru_maxrss / 1024  # largest process so far
            print(
                f"| {name} | {len(data) / 1e6:.2f} | {inflated / 1e6:,.0f} | {out.returncode} | {secs:.1f} | "
                f"{cpu:.1f} | {peak:.0f} |",
                flush=True,
            )
            rows.append((name, path))
        print()
        print("| file (app: Upload page's preview) | refused | seconds in the call | CPU seconds | peak RSS MB |")
        print("|---|---|---|---|---|")
        for name, path in rows:
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            out = subprocess.run(
                [sys.executable, "-c", APP_CALL, str(path), name], capture_output=True, text=True, cwd=ROOT
            )
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
            refused, secs = (out.stdout.split() + ["?", "?"])[:2]
            print(f"| {name} | {refused} | {secs} | {cpu:.1f} | {after.ru_maxrss / 1024:.0f} |", flush=True)


if __name__ == "__main__":
    main()
