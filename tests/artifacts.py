"""test-artifacts/fuzz_counts.json: how many inputs were fuzzed and faults injected (SECURITY.md)."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"


def update_counts(section: str, counts: dict) -> dict:
    """Merge ``counts`` (stamped with the time) into one section of fuzz_counts.json; return the section."""
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / "fuzz_counts.json"
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        data = {}
    part = data.setdefault(section, {})
    part.update(counts)
    path.write_text(json.dumps(data, indent=2))
    return part


def stamp() -> str:
    return datetime.now().isoformat(timespec="seconds")
