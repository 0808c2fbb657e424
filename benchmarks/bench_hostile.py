"""Time and peak memory of refusing the hostile workbooks of issue 18 through the command line.

`python benchmarks/bench_hostile.py`: writes each file of tests/hostile_files.py, runs
`python -m cxstats import feedback FILE` in a subprocess (which reads it in the capped worker) and reports
wall seconds, exit code and the peak RSS of the largest process (ru_maxrss of the children, like
/usr/bin/time -v). Not run unguarded: the wide files would ask for ~52 GB and abort (see README.md).
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


def main() -> None:
    print("| file | size MB | largest member inflated MB | exit | seconds | peak RSS MB |")
    print("|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for name, make in (("wide.xlsx", hostile_files.wide_xlsx), ("long.xlsx", hostile_files.long_xlsx),
                           ("wide.ods", hostile_files.wide_ods), ("long.ods", hostile_files.long_ods)):
            import io
            import zipfile

            data = make()
            inflated = max(i.file_size for i in zipfile.ZipFile(io.BytesIO(data)).infolist())
            path = Path(tmp) / name
            path.write_bytes(data)
            t = time.perf_counter()
            out = subprocess.run([sys.executable, "-m", "cxstats", "import", "feedback", str(path), "--db",
                                  str(Path(tmp) / f"{name}.duckdb")], capture_output=True, text=True, cwd=ROOT)
            secs = time.perf_counter() - t
            peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024  # largest process so far
            print(f"| {name} | {len(data) / 1e6:.2f} | {inflated / 1e6:,.0f} | {out.returncode} | {secs:.1f} | "
                  f"{peak:.0f} |", flush=True)


if __name__ == "__main__":
    main()
