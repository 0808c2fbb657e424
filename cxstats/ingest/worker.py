"""Parsing in a worker process with a memory cap (issue 18): no file can take the server down."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from cxstats import CxStatsError, readers

from .header import _header_score

PARSE_MB_DEFAULT = 2048

# the worker's answer: the grid, a refusal (message, problems), or out of memory
_Reply = tuple[Literal["ok"], readers.Grid] | tuple[Literal["error"], str, list[str]] | tuple[Literal["memory"]]


def parse_memory_mb() -> int:
    """The worker's memory cap: CXSTATS_PARSE_MB (MB of address space beyond its start), default 2048."""
    import os

    raw = os.environ.get("CXSTATS_PARSE_MB", "")
    try:
        return max(64, int(raw)) if raw else PARSE_MB_DEFAULT
    except ValueError:
        raise CxStatsError(f"CXSTATS_PARSE_MB={raw!r} is not a number of megabytes") from None


def _worker_main() -> None:
    """The child: cap the address space, read the grid from the pickled request on stdin, pickle it back."""
    import pickle
    import resource
    import sys

    req = pickle.load(sys.stdin.buffer)
    try:
        with open("/proc/self/status") as f:
            vm = next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmSize:"))
    except (OSError, StopIteration):
        vm = 0
    limit = vm + req.pop("cap_bytes")
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    kind, mapping = req.pop("kind"), req.pop("mapping")
    out: _Reply
    try:
        grid = readers.read_grid(score_row=_header_score(kind, mapping), **req)
        out = ("ok", grid)
    except CxStatsError as exc:
        out = ("error", str(exc), list(getattr(exc, "problems", []) or []))
    except MemoryError:
        out = ("memory",)
    sys.stdout.buffer.write(pickle.dumps(out, protocol=5))
    sys.stdout.buffer.flush()


_WORKER_CODE = "from cxstats.ingest.worker import _worker_main; _worker_main()"

# what a worker that ran out of its address space leaves on stderr: Python's MemoryError, Rust's
# (calamine's) "memory allocation of N bytes failed" before its abort, C++'s bad_alloc, a failed mmap
# or a thread that could not get its stack
_MEMORY_SIGNS = ("MemoryError", "memory allocation", "bad_alloc", "Cannot allocate memory", "can't start new thread")


def _died_of_memory(returncode: int, stderr: bytes) -> bool:
    """Whether a worker that gave no answer ran out of memory: killed by a signal (the reader's abort
    on a failed allocation is SIGABRT; the kernel's out-of-memory killer sends SIGKILL) or a memory
    error on its stderr."""
    if returncode < 0:
        return True
    err = stderr.decode("utf-8", "replace")
    return any(sign in err for sign in _MEMORY_SIGNS)


def _memory_error(file_name: str, mb: int) -> CxStatsError:
    return CxStatsError(
        f"{file_name}: this file needs more memory than the limit of {mb:,} MB to read; split it into smaller "
        "files, save it as .csv, or ask an admin to raise CXSTATS_PARSE_MB"
    )


def read_grid_isolated(data, file_name, *, sheet, max_bytes, max_rows, kind, mapping, expected):
    """readers.read_grid in a worker process capped at parse_memory_mb(): no file can take the server down.

    A worker killed by the cap (the reader aborts when an allocation fails) becomes a CxStatsError.
    """
    import pickle
    import subprocess
    import sys

    mb = parse_memory_mb()
    req = {
        "data": data,
        "file_name": file_name,
        "sheet": sheet,
        "max_bytes": max_bytes,
        "max_rows": max_rows,
        "expected": expected,
        "kind": kind,
        "mapping": mapping,
        "cap_bytes": mb << 20,
    }
    root = str(Path(__file__).resolve().parents[2])
    proc = subprocess.run(
        [sys.executable, "-c", _WORKER_CODE],
        input=pickle.dumps(req, protocol=5),
        capture_output=True,
        cwd=root,
    )
    try:
        msg = pickle.loads(proc.stdout) if proc.returncode == 0 and proc.stdout else None
    except Exception:  # a truncated answer from a worker that died writing it
        msg = None
    if (msg is None and _died_of_memory(proc.returncode, proc.stderr)) or (msg is not None and msg[0] == "memory"):
        raise _memory_error(file_name, mb)
    if msg is None:  # any other death says what it was, so that it is not taken for the file's size
        last = next((ln for ln in reversed(proc.stderr.decode("utf-8", "replace").splitlines()) if ln.strip()), "")
        raise CxStatsError(
            f"{file_name}: the file reader stopped unexpectedly (exit code {proc.returncode}"
            + (f": {last.strip()[:200]}" if last else "")
            + "); try again, and if it happens again report it with the file"
        )
    if msg[0] == "error":
        raise CxStatsError(msg[1], problems=msg[2])
    return msg[1]
