"""Helpers for the browser tests (tests/test_browser.py): the app as a real server, Chromium, logins.

- ``write_users(path)``: a user file with known passwords (bcrypt) for a manager, a leader, a
  marketing user and an admin, in the format of users.example.yaml;
- ``AppServer``: ``streamlit run app.py`` as a subprocess on a free localhost port, with its own
  database and user file; waits (bounded) for ``/_stcore/health``; always stopped on exit;
- ``launch_chromium(playwright)``: Debian's /usr/bin/chromium with the flags STACK_NOTES.md lists;
- ``log_in``, ``open_page``, ``assert_no_traceback``, ``screenshot``: the steps every journey repeats.

No streamlit import here: the app runs in its own process, as a user would meet it.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import bcrypt
import yaml

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = ROOT / "test-artifacts"
LOGIN_FORM_TITLE = "Log in to cxstats"
VIEWPORT = {"width": 1280, "height": 800}
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]
TIMEOUT_MS = 60_000  # every auto-waiting step is bounded by this (the machine is shared: generous)
START_TIMEOUT_S = 90  # the server's first start (imports, first page) on a shared 2-core machine


@dataclass(frozen=True)
class BrowserUser:
    username: str
    password: str
    name: str
    role: str
    units: tuple[str, ...] = ()


# known passwords for the browser only; the manager's units are the ones the messy demo upload uses
USERS = {
    "manager": BrowserUser(
        "mia", "manager-browser-1", "Mia Manager", "manager", ("S001", "S002", "S003", "S004", "S005", "S006")
    ),
    "leader": BrowserUser("lee", "leader-browser-1", "Lee Leader", "leader"),
    "marketing": BrowserUser("max", "marketing-browser-1", "Max Marketing", "marketing"),
    # survey (engagement) files are loaded by admins only (issue 18)
    "admin": BrowserUser("ada", "admin-browser-1", "Ada Admin", "admin"),
}


def write_users(path: Path, users: dict[str, BrowserUser] = USERS) -> Path:
    """A streamlit-authenticator user file with bcrypt hashes of the known passwords."""
    entries = {}
    for u in users.values():
        # a low cost keeps logins quick; the hash format is the one real files use
        hashed = bcrypt.hashpw(u.password.encode(), bcrypt.gensalt(rounds=4)).decode()
        entry = {"name": u.name, "email": f"{u.username}@example.com", "password": hashed, "roles": [u.role]}
        if u.units:
            entry["units"] = list(u.units)
        entries[u.username] = entry
    doc = {
        "cookie": {"name": "cxstats_browser_test", "key": os.urandom(16).hex(), "expiry_days": 1},
        "credentials": {"usernames": entries},
    }
    path.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class AppServer:
    """``streamlit run app.py`` in a subprocess; a context manager that always stops it.

    The server's output goes to ``log_path`` so a failed start can say why.
    """

    def __init__(self, db: Path, users: Path, log_path: Path):
        self.db, self.users, self.log_path = db, users, log_path
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen | None = None

    def __enter__(self) -> AppServer:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def start(self) -> None:
        env = dict(
            os.environ, CXSTATS_DB=str(self.db), CXSTATS_USERS=str(self.users), CXSTATS_DEMO="0", PYTHONPATH=str(ROOT)
        )
        # the documented test hook would log every session in as one user: the journeys use the form
        env.pop("CXSTATS_TEST_USER", None)
        env.pop("CXSTATS_TESTING", None)
        cmd = [
            sys.executable,
            "-m",
            "streamlit",
            "run",
            "app.py",
            "--server.port",
            str(self.port),
            "--server.headless",
            "true",
            "--server.address",
            "127.0.0.1",
            "--browser.gatherUsageStats",
            "false",
            "--server.fileWatcherType",
            "none",
        ]
        self._log = open(self.log_path, "wb")  # noqa: SIM115 (closed in stop())
        self.proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=self._log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the app exited with code {self.proc.returncode}:\n{self.log_tail()}")
            try:
                with urllib.request.urlopen(f"{self.url}/_stcore/health", timeout=2) as r:
                    if r.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.25)
        self.stop()
        raise RuntimeError(f"the app did not answer /_stcore/health within {START_TIMEOUT_S} s:\n{self.log_tail()}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=15)
        if getattr(self, "_log", None) is not None and not self._log.closed:
            self._log.close()

    def log_tail(self, chars: int = 4000) -> str:
        try:
            return self.log_path.read_text(encoding="utf-8", errors="replace")[-chars:]
        except OSError:
            return ""


# what a tab that closes mid-handshake makes Streamlit's own websocket endpoint log (its transport, not the app)
TRANSPORT_NOISE = ("starlette.websockets.WebSocketDisconnected",)


def tracebacks(log: str) -> list[str]:
    """The exception line of every Python traceback in a server log, chained ones included, leaving out the
    transport's disconnects (TRANSPORT_NOISE): what is left is an error of the app or of a library it called."""
    found, lines, i = [], log.splitlines(), 0
    while i < len(lines):
        if "Traceback (most recent call last)" in lines[i]:
            i += 1
            while i < len(lines) and (lines[i].startswith((" ", "\t")) or not lines[i].strip()):
                i += 1  # the frames
            exc = lines[i] if i < len(lines) else "(log ends inside a traceback)"
            if not exc.startswith(TRANSPORT_NOISE):
                found.append(exc)
        i += 1
    return found


def launch_chromium(playwright):
    return playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)


# ---------------------------------------------------------------- journey steps


def _expect():
    from playwright.sync_api import expect

    return expect


def wait_idle(page, timeout_ms: int = TIMEOUT_MS) -> None:
    """Until the script run is over (the app root carries the script's run state for tests)."""
    expect = _expect()
    idle = page.locator('[data-testid="stApp"][data-test-script-state="notRunning"]')
    expect(idle).to_have_count(1, timeout=timeout_ms)
    # placeholders of elements not drawn yet (between two runs, e.g. the login cookie's rerun)
    expect(
        page.locator('[data-testid="stSkeleton"], [data-testid="stSkeletonElement"], [data-testid="stAppSkeleton"]')
    ).to_have_count(0, timeout=timeout_ms)
    expect(idle).to_have_count(1, timeout=timeout_ms)


def log_in(page, base_url: str, user: BrowserUser, attempts: int = 3) -> None:
    """Fill streamlit-authenticator's form and wait for the logged-in sidebar.

    The form's cookie component reports back once its frame has loaded and that reruns the
    script; a form filled just before that rerun comes back empty and its click submits
    nothing. So: fill, check the fields still hold the text, submit, and if the form is still
    there with empty fields, fill it again (a bounded number of times).
    """
    expect = _expect()
    page.goto(base_url)
    form = page.get_by_test_id("stForm").filter(has_text=LOGIN_FORM_TITLE)  # pages have forms too
    name_box = form.get_by_role("textbox", name="Username")
    password_box = form.get_by_role("textbox", name="Password")
    for attempt in range(1, attempts + 1):
        expect(form).to_be_visible(timeout=TIMEOUT_MS)
        wait_idle(page)
        name_box.fill(user.username)
        password_box.fill(user.password)
        try:
            expect(name_box).to_have_value(user.username, timeout=2_000)
            expect(password_box).to_have_value(user.password, timeout=2_000)
        except AssertionError:
            if attempt == attempts:
                raise
            continue  # a rerun emptied the form: type again
        form.get_by_role("button", name="Login").click()
        if _submitted(page, form, name_box, attempt == attempts):
            break
    # the sidebar names the user once the login went through
    expect(page.get_by_test_id("stSidebar").get_by_text(user.name)).to_be_visible(timeout=TIMEOUT_MS)
    wait_idle(page)


def _submitted(page, form, name_box, last: bool) -> bool:
    """After a click on Login: True once the form is gone; False when a rerun emptied it (type
    again); raises when the login was refused or nothing happened within TIMEOUT_MS."""
    idle = page.locator('[data-testid="stApp"][data-test-script-state="notRunning"]')
    refused = page.get_by_text(re.compile(r"user name or password is wrong|too many failed logins"))
    deadline = time.monotonic() + TIMEOUT_MS / 1000
    empty_seen = 0
    while time.monotonic() < deadline:  # bounded polling: two outcomes to tell apart
        if form.count() == 0:
            return True
        if refused.count():
            raise AssertionError(f"login refused: {refused.first.inner_text()}")
        try:
            emptied = idle.count() == 1 and form.count() == 1 and name_box.input_value(timeout=1_000) == ""
        except Exception:  # the form went away while we looked
            emptied = False
        empty_seen = empty_seen + 1 if emptied else 0
        if empty_seen >= 3 and not last:  # idle and empty for a while, not just between click and run
            return False
        page.wait_for_timeout(250)
    raise AssertionError(f"the login form was still shown {TIMEOUT_MS / 1000:.0f} s after submitting it")


# the app's menu: Streamlit's own navigation or the app's page links in the sidebar
_NAV_LINKS = '[data-testid="stSidebarNavLink"], [data-testid="stPageLink-NavLink"]'


def nav_titles(page) -> list[str]:
    """The page titles in the sidebar menu, in order."""
    links = page.get_by_test_id("stSidebar").locator(_NAV_LINKS)
    # a link's text starts with its icon's ligature name ("dashboard"), then the title
    return [t.strip().splitlines()[-1].strip() for t in links.all_inner_texts() if t.strip()]


def open_page(page, title: str) -> None:
    """Click a page in the sidebar menu and wait for its title and the end of the run."""
    expect = _expect()
    link = page.get_by_test_id("stSidebar").locator(_NAV_LINKS).filter(has=page.get_by_text(title, exact=True))
    heading = page.get_by_role("heading", name=title, exact=True)
    if heading.count() == 0:  # the current page's link is inert: there is nothing to click
        link.first.click()
    expect(heading.first).to_be_visible(timeout=TIMEOUT_MS)
    wait_idle(page)


_TRACEBACK = re.compile(r"Traceback \(most recent call last\)|^\s*File \".*\", line \d+", re.M)


def assert_no_traceback(page, where: str) -> None:
    """No exception element and no Python traceback text anywhere on the page."""
    expect = _expect()
    expect(page.get_by_test_id("stException"), f"exception block on {where}").to_have_count(0)
    text = page.locator("body").inner_text()
    assert "Traceback" not in text and not _TRACEBACK.search(text), f"Python traceback shown on {where}"


def screenshot(page, name: str) -> Path:
    """A 1280x800 screenshot of the viewport, saved as test-artifacts/<name>.png."""
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path))
    return path
