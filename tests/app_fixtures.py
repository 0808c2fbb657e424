"""Fixtures for AppTest runs of the dashboard (imported by tests/test_app_*.py).

    pytest_plugins = ["app_fixtures"]   # in a test module: demo_db, fresh_demo_db, empty_db, users_yaml, make_app

- ``demo_db``: a database with the default demo, built once per test session (do not write to it);
- ``fresh_demo_db``: a private copy of it for tests that upload or undo;
- ``empty_db``: an empty database, with the app's first-start demo loading turned off;
- ``users_yaml``: users.example.yaml's users with a random cookie key (the app refuses the example's);
- ``make_app(db, user=None)``: an AppTest of app.py as the local admin (no user file) or as a user
  of that user file, logged in through the documented test hook.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
APP = str(ROOT / "app.py")
EXAMPLE_USERS = ROOT / "users.example.yaml"  # roles: admin, leader, marketing, manager (units S001-S006)
MANAGER_UNITS = ("S001", "S002", "S003", "S004", "S005", "S006")
TIMEOUT = 30


@pytest.fixture(scope="session")
def demo_db(tmp_path_factory) -> Path:
    from cxstats import demo

    path = tmp_path_factory.mktemp("appdemo") / "demo.duckdb"
    demo.build_demo(path)
    return path


@pytest.fixture
def fresh_demo_db(demo_db, tmp_path) -> Path:
    path = tmp_path / "demo_copy.duckdb"
    shutil.copyfile(demo_db, path)
    return path


@pytest.fixture
def empty_db(tmp_path) -> Path:
    return tmp_path / "empty.duckdb"


def safe_copy_of_example(path: Path) -> Path:
    """users.example.yaml (its users and documented passwords) with a fresh random cookie key: the
    app refuses to start on the example's published key."""
    import secrets

    import yaml

    doc = yaml.safe_load(EXAMPLE_USERS.read_text(encoding="utf-8"))
    doc["cookie"]["key"] = secrets.token_urlsafe(32)
    path.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
    return path


@pytest.fixture(scope="session")
def users_yaml(tmp_path_factory) -> Path:
    return safe_copy_of_example(tmp_path_factory.mktemp("users") / "users.yaml")


@pytest.fixture
def make_app(monkeypatch, users_yaml):
    """make_app(db, user=None, demo=False) -> a fresh AppTest, already run once."""
    from streamlit.testing.v1 import AppTest

    def _make(db: Path, user: str | None = None, demo: bool = False, run: bool = True):
        monkeypatch.setenv("CXSTATS_DB", str(db))
        monkeypatch.setenv("CXSTATS_DEMO", "1" if demo else "0")
        if user is None:
            monkeypatch.delenv("CXSTATS_USERS", raising=False)
            monkeypatch.delenv("CXSTATS_TEST_USER", raising=False)
            monkeypatch.delenv("CXSTATS_TESTING", raising=False)
        else:
            monkeypatch.setenv("CXSTATS_USERS", str(users_yaml))
            monkeypatch.setenv("CXSTATS_TESTING", "1")
            monkeypatch.setenv("CXSTATS_TEST_USER", user)
        at = AppTest.from_file(APP, default_timeout=TIMEOUT)
        if run:
            at.run()
        return at

    return _make


def texts(at) -> str:
    """Every visible text of a run, for 'does not show' checks."""
    parts = []
    for kind in (
        "title",
        "header",
        "subheader",
        "markdown",
        "caption",
        "text",
        "info",
        "error",
        "warning",
        "success",
        "metric",
    ):
        for el in getattr(at, kind, []):
            parts.append(str(getattr(el, "label", "")) + " " + str(getattr(el, "value", "")))
    for el in at.sidebar.markdown:
        parts.append(str(el.value))
    return "\n".join(parts)


def switch(at, page: str):
    """Switch to a page file and run; raises ValueError when the page is not in the navigation."""
    at.switch_page(page)
    at.run()
    return at
