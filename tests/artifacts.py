"""test-artifacts/fuzz_counts.json: how many inputs were fuzzed and faults injected (SECURITY.md)."""

from __future__ import annotations

import fcntl
import json
import os
from datetime import datetime
from pathlib import Path

ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"


def update_counts(section: str, counts: dict) -> dict:
    """Merge ``counts`` (stamped with the time) into one section of fuzz_counts.json; return the section."""
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / "fuzz_counts.json"
    # the test workers (pytest -n) write it at the same time: one at a time, and never a half-written file
    with open(ARTIFACTS / ".fuzz_counts.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError):
            data = {}
        part = data.setdefault(section, {})
        part.update(counts)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(data, indent=2))
        os.replace(tmp, path)
    return part


def stamp() -> str:
    return datetime.now().isoformat(timespec="seconds")
