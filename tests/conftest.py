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

# the fast tier (`make check` sets CXSTATS_FAST=1): the heavy properties (each example builds two databases
# through the real import path) run CXSTATS_FUZZ_EXAMPLES=4, i.e. 2 examples each instead of 4 (their modules
# read it); `make test` runs the default 8. An explicit CXSTATS_FUZZ_EXAMPLES always wins.
FAST = os.environ.get("CXSTATS_FAST") == "1"
if FAST:
    os.environ.setdefault("CXSTATS_FUZZ_EXAMPLES", "4")

ROOT = Path(__file__).resolve().parents[1]

# the shared helper modules (imported by test modules, and loaded as plugins by pytest_plugins): pytest
# rewrites their asserts whichever way they are first imported
pytest.register_assert_rewrite("app_fixtures", "engine_fixtures")

# as cxstats/__init__.py does, before any test module imports openpyxl: openpyxl's own XML writer, not
# lxml's (which python-pptx installs), so workbooks keep their bytes and a cell's CR stays a CR
os.environ.setdefault("OPENPYXL_LXML", "False")

# modules that run only in `make test` (the full tier), not in `make check` (the fast tier)
FULL_ONLY = {"test_faults", "test_kill_import", "test_fuzz_ingest", "test_browser"}

# single heavy tests that run only in the full tier: "module::test" (every parameter), "module::test[id]"
# (one case) or "module::test[prefix*" (the cases whose id starts so). What stays in the fast tier still
# covers every module and every page: the reason names what does.
FULL_ONLY_TESTS = {
    "test_privacy_properties::test_suppressed_group_answers_change_nothing_shown": "two databases x every shown figure x two viewers per example; the item-cell property runs shown() too",
    "test_report::test_the_pdf_is_the_same_file_for_the_same_data": "two PDF renders (charts through Chromium); the demo report is rendered once in the fast tier",
    "test_report::test_a_suppressed_groups_pdf_and_slides_are_the_same": "four renders; the report's sections and figures are compared without rendering in the fast tier",
    "test_report::test_unknown_period_is_refused_and_a_good_one_writes_the_file": "a subprocess and a slides render; the CLI's refusals stay in test_bad_out_is_refused_with_nothing_written",
    "test_app_overview::test_leader_builds_and_downloads_the_report_on_the_overview": "an AppTest that renders the whole report; the Overview page keeps its other AppTests in test_app_overview",
    "test_app_upload::test_a_bad_upload_writes_nothing_and_every_page_still_works[broken.xlsx*": "the bad.csv case walks every page; ingest's own tests refuse a broken workbook",
    "test_app_upload::test_a_bad_upload_writes_nothing_and_every_page_still_works[empty.csv*": "the bad.csv case walks every page; ingest's own tests refuse an empty file",
    "test_app_upload::test_a_bad_upload_writes_nothing_and_every_page_still_works[header_only.csv*": "the bad.csv case walks every page; ingest's own tests refuse a file without rows",
    "test_app::test_five_wrong_passwords_lock_the_name_even_for_the_right_one": "eight bcrypt checks through AppTest; test_auth's lockout tests and test_login_form_gates_every_page stay",
    "test_app::test_pages_render_their_charts_for_each_role[leader]": "the local admin's case draws every chart page; test_each_role_reaches_exactly_its_pages walks each role",
    "test_app::test_pages_render_their_charts_for_each_role[manager]": "as [leader]; test_manager_sees_only_his_units_in_the_charts checks the manager's pages",
    "test_app::test_pages_render_their_charts_for_each_role[marketing]": "as [leader]; test_customers_page_shows_marketing_no_employee_figures checks marketing's pages",
    "test_order_totals::test_kept_table_equals_rebuild_and_scores_match_lines[2]": "seeds 0 and 1 of the kept-table property stay in the fast tier; 2-5 add random histories, not code paths",
    "test_order_totals::test_kept_table_equals_rebuild_and_scores_match_lines[3]": "as [2]",
    "test_order_totals::test_kept_table_equals_rebuild_and_scores_match_lines[4]": "as [2]",
    "test_order_totals::test_kept_table_equals_rebuild_and_scores_match_lines[5]": "as [2]",
    "test_app::test_every_page_shows_hostile_file_unit_and_customer_names_escaped[leader]": "the admin's walk renders every page with the hostile names; the other roles' walks see subsets of it",
    "test_app::test_every_page_shows_hostile_file_unit_and_customer_names_escaped[manager]": "as [leader]",
    "test_probe_auth::test_successful_logins_do_not_count_against_the_address": "25 bcrypt checks; the address lock itself stays in test_twenty_failures_from_one_address_lock_it_for_every_name",
}


def _full_only(module: str, name: str, originalname: str) -> bool:
    if module in FULL_ONLY:
        return True
    for key in FULL_ONLY_TESTS:
        mod, _, test = key.partition("::")
        if mod != module:
            continue
        if test == originalname or test == name or (test.endswith("*") and name.startswith(test[:-1])):
            return True
    return False


def pytest_collection_modifyitems(config, items):
    for item in items:
        if item.module is None:
            continue
        module = item.module.__name__.rsplit(".", 1)[-1]
        if _full_only(module, item.name, getattr(item, "originalname", item.name)):
            item.add_marker(pytest.mark.full)


# ---------------------------------------------------------------- a run leaves nothing in the repository root
# A test that writes into the process's current folder (the checkout's root, where pytest runs) leaves a
# file someone later commits by accident (late.rejected.csv, 040b379). The controller (not the xdist
# workers) lists the files git does not track and does not ignore (`git status --porcelain
# --untracked-files=all`'s "??" entries) at the start and at the end of the session; a new one in the
# root, or under a top-level folder the run created, fails the run. Skipped where git cannot answer for
# this checkout (no git, not a checkout, a clone owned by another user).
_ROOT_BEFORE = pytest.StashKey[tuple]()  # (untracked files, names in the root) at the start
_ROOT_LEFT = pytest.StashKey[list]()  # what the run left


def _untracked() -> set[str] | None:
    """Untracked, not ignored files of this checkout (paths relative to ROOT), or None without git."""
    try:
        top = subprocess.run(
            ["git", "-C", str(ROOT), "rev-parse", "--show-toplevel"], capture_output=True, text=True, timeout=60
        )
        if top.returncode != 0 or Path(top.stdout.strip()).resolve() != ROOT:
            return None
        out = subprocess.run(
            ["git", "-C", str(ROOT), "ls-files", "--others", "--exclude-standard", "-z"],
            capture_output=True,
            text=True,
            timeout=60,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    if out.returncode != 0:
        return None
    return {p for p in out.stdout.split("\0") if p}


def pytest_sessionstart(session):
    if hasattr(session.config, "workerinput"):  # an xdist worker: the controller checks the whole run
        return
    session.config.stash[_ROOT_BEFORE] = (_untracked(), {p.name for p in ROOT.iterdir()})


def pytest_sessionfinish(session, exitstatus):
    before = session.config.stash.get(_ROOT_BEFORE, None)
    if before is None or before[0] is None:
        return
    untracked, names = before
    after = _untracked()
    if after is None:
        return
    left = sorted(p for p in after - untracked if "/" not in p or p.split("/", 1)[0] not in names)
    if not left:
        return
    session.config.stash[_ROOT_LEFT] = left
    if session.exitstatus == pytest.ExitCode.OK:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    left = config.stash.get(_ROOT_LEFT, None)
    if left:
        terminalreporter.section("files left in the repository root", sep="=", red=True)
        for p in left:
            terminalreporter.write_line(f"{p}: written by this run; write under tmp_path (or chdir there) instead")


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
