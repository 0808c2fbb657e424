"""Fixtures and helpers for AppTest runs of the dashboard (imported by tests/test_app*.py: test_app.py
for the app as a whole, test_app_<page>.py for each page of pages/).

    pytest_plugins = ["app_fixtures"]   # in a test module: demo_db, fresh_demo_db, empty_db, users_yaml, make_app

- ``demo_db``: a database with the default demo, built once per test session (do not write to it);
- ``fresh_demo_db``: a private copy of it for tests that upload or undo;
- ``empty_db``: an empty database, with the app's first-start demo loading turned off;
- ``users_yaml``: users.example.yaml's users with a random cookie key (the app refuses the example's),
  their documented passwords hashed at bcrypt cost 4;
- ``apptest_server_work_once`` (session, autouse): every AppTest shares the first component scan and one
  ScriptCache, as a server's sessions do;
- ``make_app(db, user=None)``: an AppTest of app.py as the local admin (no user file) or as a user
  of that user file, logged in through the documented test hook.

Helpers: ``texts(at)``, ``submit_login(at, user, password)`` (the login form), ``switch(at, page)``, ``page_file(name)``, ``existing(pages)``,
``assert_clean(at, where)``, ``open_page(at, page)``, ``charts_of(at)``, ``sidebar_captions(at)``,
``theme_tables(at)``, ``example_tables(at)``, ``markdown_sources(at)`` (what the browser renders as Markdown); the pages each role reaches
(``ROLE_PAGES``), the analysis pages each role sees with their chart counts (``SEES``, ``CHARTS``).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
APP = str(ROOT / "app.py")
EXAMPLE_USERS = ROOT / "users.example.yaml"  # roles: admin, leader, marketing, manager (units S001-S006)
MANAGER_UNITS = ("S001", "S002", "S003", "S004", "S005", "S006")
TIMEOUT = 30

ALL_PAGES = ("overview", "upload", "engagement", "customers", "linkage", "actions", "advocates", "data")
CORE_PAGES = ("overview", "upload", "data")  # walked per role by test_app; the others per role by SEES

# role (None = local admin without a user file) -> pages in its navigation (DESIGN.md + the brief)
ROLE_PAGES = {
    None: ALL_PAGES,
    "admin": ALL_PAGES,
    "leader": ("overview", "engagement", "customers", "linkage", "actions", "advocates", "data"),
    "manager": ("overview", "upload", "engagement", "customers", "linkage", "actions"),
    "marketing": ("customers", "advocates", "upload", "data"),  # data: the customer erasure form only
}

TITLES = {
    "overview": "Overview",
    "upload": "Upload",
    "engagement": "Engagement",
    "customers": "Customers",
    "linkage": "Linkage",
    "actions": "Actions",
    "advocates": "Advocates",
    "data": "Data",
}

# page -> how many Plotly charts it draws with the demo data as an admin (tabs render all their content)
CHARTS = {"engagement": 4, "customers": 4, "linkage": 4, "advocates": 3}
SEES = {  # "admin" through the user file sees what the local admin sees (test_each_role_reaches_exactly_its_pages)
    None: ("engagement", "customers", "linkage", "advocates"),
    "leader": ("engagement", "customers", "linkage", "advocates"),
    "manager": ("engagement", "customers", "linkage"),
    "marketing": ("customers", "advocates"),
}


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


# the documented demo password of each example user (README.md "Logins"; test_auth checks the example's hashes)
DEMO_PASSWORD = "{user}-demo-2026"
# bcrypt cost of the test copies: the same checks (and the unknown names' dummy hash at the file's cost) as
# the example's cost 12, at about 1 ms a check instead of 0.25 s; test_auth and test_security check the
# example file itself
TEST_BCRYPT_ROUNDS = 4
_TEST_HASHES: dict[str, str] = {}


def safe_copy_of_example(path: Path) -> Path:
    """users.example.yaml (its users and documented passwords) with a fresh random cookie key: the
    app refuses to start on the example's published key. Each password is hashed again at bcrypt cost
    ``TEST_BCRYPT_ROUNDS`` (same password, same check, cheaper)."""
    import secrets

    import bcrypt
    import yaml

    doc = yaml.safe_load(EXAMPLE_USERS.read_text(encoding="utf-8"))
    doc["cookie"]["key"] = secrets.token_urlsafe(32)
    for name, user in doc["credentials"]["usernames"].items():
        if name not in _TEST_HASHES:
            password = DEMO_PASSWORD.format(user=name).encode()
            _TEST_HASHES[name] = bcrypt.hashpw(password, bcrypt.gensalt(rounds=TEST_BCRYPT_ROUNDS)).decode()
        user["password"] = _TEST_HASHES[name]
    path.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
    return path


@pytest.fixture(scope="session", autouse=True)
def apptest_server_work_once():
    """What a Streamlit server does once for all its sessions, a new AppTest does again at each run:
    scan every installed distribution's metadata for components (streamlit.components.v2.manifest_scanner,
    ~0.2-0.5 s of CPU at each AppTest's first run) and parse, rewrite ("magic") and compile app.py and the
    page at every run (a fresh ScriptCache, ~15 ms a script). Nothing is installed and no script changes
    during a test session, so each AppTest here takes the first scan's answer and one shared ScriptCache,
    as a server's sessions do. Scripts from AppTest.from_string are named by a hash of their text."""
    import functools

    from streamlit.components.v2 import manifest_scanner
    from streamlit.runtime.scriptrunner.script_cache import ScriptCache
    from streamlit.testing.v1 import app_test, local_script_runner

    shared = ScriptCache()
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(
            manifest_scanner, "scan_component_manifests", functools.cache(manifest_scanner.scan_component_manifests)
        )
        mp.setattr(app_test, "ScriptCache", lambda: shared)
        mp.setattr(local_script_runner, "ScriptCache", lambda: shared)
        yield


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


def submit_login(at, user: str, password: str):
    """Fill the login form (user name, password) and press its button, as a person would; then run."""
    at.text_input[0].input(user)
    at.text_input[1].input(password)
    at.button[0].click().run()
    return at


def page_file(name: str) -> str:
    return f"pages/{name}.py"


def existing(pages) -> list[str]:
    return [p for p in pages if (ROOT / page_file(p)).exists()]


def assert_clean(at, where: str = "") -> None:
    assert not at.exception, f"{where}: {[e.value for e in at.exception]}"
    assert "Traceback" not in texts(at), where


def charts_of(at) -> list[dict]:
    return [json.loads(el.proto.spec) for el in at.get("plotly_chart")]


def sidebar_captions(at) -> str:
    return "\n".join(str(c.value) for c in at.sidebar.caption)


def open_page(at, page: str):
    """switch(), then no exception element."""
    at.switch_page(page)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def theme_tables(at):
    """The comment-theme tables of a run (a label and a share column)."""
    return [d.value for d in at.dataframe if "label" in d.value.columns and "share" in d.value.columns]


def example_tables(at):
    """The tables of quoted examples of a run."""
    return [d.value for d in at.dataframe if "example" in d.value.columns]


# elements whose value the browser renders as Markdown; every label and help text does too
MARKDOWN_VALUES = {
    "title",
    "header",
    "subheader",
    "markdown",
    "caption",
    "latex",
    "error",
    "warning",
    "info",
    "success",
    "toast",
    "exception",
}


def markdown_sources(at) -> list[str]:
    """Every text of the run that the browser renders as Markdown: text elements and alerts, and
    the label and help of every element (widgets, metrics, expanders, tabs, page links), radio
    options too (they take Markdown), in the main area and the sidebar. Tables, charts, st.text
    and select options are shown as plain text."""
    out = []

    def walk(node):
        kind = getattr(node, "type", None)
        if kind in MARKDOWN_VALUES:
            out.append(str(getattr(node, "value", "")))
        for attr in ("label", "help"):
            v = getattr(node, attr, None)
            if isinstance(v, str):
                out.append(v)
        if kind == "radio":
            out.extend(str(o) for o in node.options)
        for child in getattr(node, "children", {}).values():
            walk(child)

    walk(at._tree)
    return out
