"""Shared fixtures: a fresh database path per test, and a CLI runner."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import settings

# CI replays a fixed set of generated examples (derandomized) so a run is reproducible; local runs
# explore new random examples each time, which is where fuzzing finds new failures.
settings.register_profile("ci", derandomize=True)
if os.environ.get("CI"):
    settings.load_profile("ci")

ROOT = Path(__file__).resolve().parents[1]

# as cxstats/__init__.py does, before any test module imports openpyxl: openpyxl's own XML writer, not
# lxml's (which python-pptx installs), so workbooks keep their bytes and a cell's CR stays a CR
os.environ.setdefault("OPENPYXL_LXML", "False")

# modules that run only in `make test` (the full tier), not in `make check` (the fast tier)
FULL_ONLY = {"test_faults", "test_kill_import", "test_fuzz_ingest", "test_browser"}


def pytest_collection_modifyitems(config, items):
    for item in items:
        if item.module is not None and item.module.__name__.rsplit(".", 1)[-1] in FULL_ONLY:
            item.add_marker(pytest.mark.full)


@pytest.fixture
def db(tmp_path) -> Path:
    """A fresh database file path (created on first connect)."""
    return tmp_path / "test.duckdb"


def run_cli(*args: str, db: Path | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    """Run `python -m cxstats ...` in a subprocess, as a user would."""
    cmd = [sys.executable, "-m", "cxstats", *args]
    if db is not None:
        cmd += ["--db", str(db)]
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=ROOT, env=env)


@pytest.fixture
def cli():
    return run_cli


def run_cli_inprocess(*args: str, db: Path | None = None) -> subprocess.CompletedProcess:
    """`cxstats.cli.main([...])` in this process, stdout/stderr captured: the subprocess run's result, without
    starting an interpreter per command (parsing still happens in cxstats' own worker process)."""
    import contextlib
    import io

    from cxstats import cli as cxcli

    argv = [*args, *(["--db", str(db)] if db is not None else [])]
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = cxcli.main(argv)
        except SystemExit as exc:  # argparse refusing the arguments
            code = exc.code if isinstance(exc.code, int) else 2
    return subprocess.CompletedProcess(["python", "-m", "cxstats", *argv], code, out.getvalue(), err.getvalue())


@pytest.fixture
def cli_inprocess():
    return run_cli_inprocess
