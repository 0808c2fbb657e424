"""Issue 18, items 2, 3, 6 and 8 (part): breaks an outside probe found in the login and the tables.

- 2: a cookie signed with the example file's key was an admin session; a token captured before
  log out still worked after it; a cookie login skipped the lockout;
- 3: the Advocates table's own "Download as CSV" exported every listed customer, unaudited;
- 6: unknown user names were never counted or locked, and the attempts-left message told which
  names exist;
- 8: CXSTATS_USERS set but empty ran as local admin; a broken user file showed its server path.

The app's own tests drive app.py with AppTest. The login cookie the browser would send is put in
``st.context.cookies``, and the cookie the app sets or deletes is read from the cookie component's
calls. Both work whichever code sets the cookie. The browser journey (tests/test_browser.py) checks
the real cookie.
"""

from __future__ import annotations

import re
import secrets
import sys
from datetime import datetime, timedelta

import jwt
import pytest
import yaml

from cxstats import auth, store

pytest_plugins = ["app_fixtures"]
from app_fixtures import ROOT, TIMEOUT, safe_copy_of_example, submit_login, texts  # noqa: E402

APP = str(ROOT / "app.py")
EXAMPLE = ROOT / "users.example.yaml"


# ---------------------------------------------------------------- helpers


@pytest.fixture
def cookie_jar(monkeypatch):
    """The browser's side: cookies sent at connect time (``sent``), and what the app set/deleted."""
    import extra_streamlit_components  # noqa: F401  (its CookieManager module, below)
    from streamlit.runtime.context import ContextProxy, StreamlitCookies

    jar = {"sent": {}, "set": [], "deleted": []}
    monkeypatch.setattr(ContextProxy, "cookies", property(lambda self: StreamlitCookies(dict(jar["sent"]))))

    def browser(method, cookie=None, value=None, key=None, default=None, **options):
        # the component's iframe as a browser runs it: it does the change and reports it done
        if method == "set":
            jar["set"].append((cookie, value))
        elif method == "delete":
            jar["deleted"].append(cookie)
        return True

    monkeypatch.setattr(sys.modules["extra_streamlit_components.CookieManager"], "_component_func", browser)
    return jar


def _app(monkeypatch, db, users, *, hook_user: str | None = None):
    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("CXSTATS_DB", str(db))
    monkeypatch.setenv("CXSTATS_DEMO", "0")
    if users is None:
        monkeypatch.delenv("CXSTATS_USERS", raising=False)
    else:
        monkeypatch.setenv("CXSTATS_USERS", str(users))
    if hook_user:
        monkeypatch.setenv("CXSTATS_TESTING", "1")
        monkeypatch.setenv("CXSTATS_TEST_USER", hook_user)
    else:
        monkeypatch.delenv("CXSTATS_TESTING", raising=False)
        monkeypatch.delenv("CXSTATS_TEST_USER", raising=False)
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.run()
    return at


def _logged_in(at) -> bool:
    return bool(at.title) and any(b.label == "Log out" for b in at.sidebar.button)


def _shows_login_form(at) -> bool:
    return [t.label for t in at.text_input] == ["Username", "Password"] and not at.title


def _nothing_but_the_refusal(at) -> str:
    assert not at.exception, [e.value for e in at.exception]
    assert not at.text_input and not at.title and not at.metric and not at.sidebar.button
    assert not at.dataframe and len(at.error) == 1
    return re.sub(r"\\(.)", r"\1", at.error[0].value)  # as the page shows it (Markdown escapes undone)


def _user_file(path, key: str):
    doc = yaml.safe_load(EXAMPLE.read_text(encoding="utf-8"))
    doc["cookie"]["key"] = key
    path.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
    return path


# ---------------------------------------------------------------- 2: known or short cookie keys


@pytest.mark.parametrize("hook_user", [None, "admin"], ids=["form", "test-hook"])
def test_app_refuses_to_start_on_the_example_cookie_key(monkeypatch, demo_db, hook_user):
    at = _app(monkeypatch, demo_db, EXAMPLE, hook_user=hook_user)
    message = _nothing_but_the_refusal(at)
    assert "cookie key" in message and "users.example.yaml" in message and str(ROOT) not in message


def test_app_refuses_to_start_on_a_short_cookie_key(monkeypatch, demo_db, tmp_path):
    users = _user_file(tmp_path / "users.yaml", "x" * (auth.MIN_COOKIE_KEY - 1))
    message = _nothing_but_the_refusal(_app(monkeypatch, demo_db, users))
    assert "shorter than 32 characters" in message and str(tmp_path) not in message
    # 32 characters are enough
    _user_file(tmp_path / "users.yaml", "x" * auth.MIN_COOKIE_KEY)
    assert _shows_login_form(_app(monkeypatch, demo_db, users))


def test_a_cookie_signed_with_the_example_key_logs_nobody_in(monkeypatch, demo_db, tmp_path, cookie_jar):
    """The probe's forged admin cookie, in both token layouts (streamlit-authenticator's and ours),
    against a server on the example file and against one with its own key."""
    example_key = yaml.safe_load(EXAMPLE.read_text(encoding="utf-8"))["cookie"]["key"]
    exp = (datetime.now() + timedelta(days=1)).timestamp()
    for users in (EXAMPLE, safe_copy_of_example(tmp_path / "users.yaml")):
        for claims in ({"username": "admin", "exp_date": exp}, {"sub": "admin", "gen": "0" * 32, "exp": int(exp)}):
            cookie_jar["sent"] = {"cxstats_auth": jwt.encode(claims, example_key, algorithm="HS256")}
            at = _app(monkeypatch, demo_db, users)
            assert not _logged_in(at) and not at.title and not at.metric, texts(at)


# ---------------------------------------------------------------- 2: log out ends the session


def _captured_token(monkeypatch, db, users, cookie_jar, user="leader", password="leader-demo-2026"):
    at = _app(monkeypatch, db, users)
    submit_login(at, user, password)
    assert _logged_in(at), texts(at)
    assert cookie_jar["set"], "the login set no cookie"
    name, token = cookie_jar["set"][-1]
    assert name == "cxstats_auth"
    return at, token


def test_a_token_captured_before_log_out_no_longer_works_after_it(monkeypatch, fresh_demo_db, tmp_path, cookie_jar):
    users = safe_copy_of_example(tmp_path / "users.yaml")
    at, token = _captured_token(monkeypatch, fresh_demo_db, users, cookie_jar)
    # before log out the cookie logs a new browser session in (the reload the cookie is for)
    cookie_jar["sent"] = {"cxstats_auth": token}
    assert _logged_in(_app(monkeypatch, fresh_demo_db, users))
    # log out in the first session
    at.sidebar.button(key="cx_logout").click().run()
    assert _shows_login_form(at), texts(at)
    assert "cxstats_auth" in cookie_jar["deleted"], "log out left the cookie in the browser"
    # the same token, replayed: the login form, not the app
    replay = _app(monkeypatch, fresh_demo_db, users)
    assert _shows_login_form(replay) and not _logged_in(replay), texts(replay)
    # the generation lives in the database, one per user
    with store.connect(fresh_demo_db) as con:
        assert con.execute("SELECT count(*) FROM login_sessions WHERE username = 'leader'").fetchall()[0][0] == 1


def test_a_session_open_elsewhere_ends_at_its_next_run_after_log_out(monkeypatch, fresh_demo_db, tmp_path, cookie_jar):
    users = safe_copy_of_example(tmp_path / "users.yaml")
    first, token = _captured_token(monkeypatch, fresh_demo_db, users, cookie_jar)
    cookie_jar["sent"] = {"cxstats_auth": token}
    second = _app(monkeypatch, fresh_demo_db, users)
    assert _logged_in(second)
    first.sidebar.button(key="cx_logout").click().run()
    second.run()
    assert _shows_login_form(second), texts(second)


def test_a_cookie_login_is_checked_against_the_lockout(monkeypatch, fresh_demo_db, tmp_path, cookie_jar):
    users = safe_copy_of_example(tmp_path / "users.yaml")
    _, token = _captured_token(monkeypatch, fresh_demo_db, users, cookie_jar)
    with store.connect(fresh_demo_db) as con:  # someone guesses the leader's password meanwhile
        for _ in range(auth.LOCK_AFTER):
            auth.record_failure(con, "leader")
    cookie_jar["sent"] = {"cxstats_auth": token}
    at = _app(monkeypatch, fresh_demo_db, users)
    assert _shows_login_form(at) and not _logged_in(at), texts(at)


def test_tokens_are_signed_current_and_expiring(db, tmp_path):
    directory = auth.load_users(safe_copy_of_example(tmp_path / "users.yaml"))
    with store.connect(db) as con:
        gen = auth.session_generation(con, "admin")
    token = auth.issue_token(directory, "admin", gen)
    assert auth.token_login(db, directory, token).ok
    other_key = auth.load_users(safe_copy_of_example(tmp_path / "other.yaml"))
    assert not auth.token_login(db, other_key, token).ok  # another key: not ours
    old = auth.issue_token(directory, "admin", gen, now=auth.now_utc() - timedelta(days=2))
    assert not auth.token_login(db, directory, old).ok  # expired
    tampered = jwt.encode({"sub": "admin", "gen": gen, "exp": 9_999_999_999}, "y" * 40, algorithm="HS256")
    assert not auth.token_login(db, directory, tampered).ok
    assert not auth.token_login(db, directory, token + "x").ok
    with store.connect(db) as con:
        auth.end_sessions(con, "admin")
    assert not auth.token_login(db, directory, token).ok  # logged out


# ---------------------------------------------------------------- 6: every name counted alike


def test_unknown_names_get_the_same_answers_and_lock_as_known_ones(monkeypatch, fresh_demo_db, tmp_path):
    users = safe_copy_of_example(tmp_path / "users.yaml")
    answers = {}
    for name in ("manager", "nobody-by-this-name"):
        at = _app(monkeypatch, fresh_demo_db, users)
        seen = []
        for _ in range(auth.LOCK_AFTER + 1):
            submit_login(at, name, "not-the-password")
            seen.append([re.sub(r"\\(.)", r"\1", e.value) for e in at.error])  # Markdown escapes undone
        answers[name] = seen
    assert answers["manager"] == answers["nobody-by-this-name"], answers
    assert "4 attempt(s) left" in answers["manager"][0][0]
    assert "try again in 15 minute(s)" in answers["manager"][-1][0]
    with store.connect(fresh_demo_db) as con:
        assert auth.lock_state(con, "nobody-by-this-name").is_locked()


def test_twenty_failures_from_one_address_lock_it_for_every_name(db, tmp_path):
    directory = auth.load_users(safe_copy_of_example(tmp_path / "users.yaml"))
    t0 = auth.now_utc()
    for i in range(auth.ADDRESS_LOCK_AFTER):  # a different name each time: no name lock helps
        out = auth.attempt_login(db, directory, f"guess{i}", "x", t0 + timedelta(seconds=i), address="203.0.113.9")
        assert not out.ok and "network address" not in out.message
    out = auth.attempt_login(
        db, directory, "admin", "admin-demo-2026", t0 + timedelta(minutes=1), address="203.0.113.9"
    )
    assert not out.ok and "network address" in out.message
    assert auth.attempt_login(
        db, directory, "admin", "admin-demo-2026", t0 + timedelta(minutes=1), address="198.51.100.7"
    ).ok  # other addresses are not locked
    later = t0 + timedelta(minutes=auth.ADDRESS_LOCK_MINUTES + 2)
    assert auth.attempt_login(db, directory, "admin", "admin-demo-2026", later, address="203.0.113.9").ok


def test_successful_logins_do_not_count_against_the_address(db, tmp_path):
    directory = auth.load_users(safe_copy_of_example(tmp_path / "users.yaml"))
    for _ in range(auth.ADDRESS_LOCK_AFTER + 5):
        assert auth.attempt_login(db, directory, "admin", "admin-demo-2026", address="203.0.113.9").ok


@pytest.mark.parametrize(
    "remote, headers, expected",
    [
        ("203.0.113.9", {}, "203.0.113.9"),
        ("203.0.113.9", {"X-Forwarded-For": "10.0.0.1"}, "203.0.113.9"),  # a direct client cannot choose
        (None, {"X-Forwarded-For": "10.9.9.9, 203.0.113.9"}, "203.0.113.9"),  # the local proxy's entry
        ("127.0.0.1", {"X-Real-Ip": "203.0.113.9"}, "203.0.113.9"),
        (None, {}, None),
    ],
)
def test_client_address_where_streamlit_knows_it(remote, headers, expected):
    assert auth.client_address(remote, headers) == expected


def test_a_login_is_refused_when_the_counter_cannot_be_written(db, tmp_path, monkeypatch):
    directory = auth.load_users(safe_copy_of_example(tmp_path / "users.yaml"))

    def busy(*args, **kwargs):
        raise auth.CxStatsError("database busy, try again")

    monkeypatch.setattr(auth, "record_failure", busy)
    out = auth.attempt_login(db, directory, "admin", "admin-demo-2026")
    assert not out.ok and out.viewer is None and "counter could not be written" in out.message


def test_unknown_names_cost_the_same_bcrypt_work(tmp_path):
    directory = auth.load_users(safe_copy_of_example(tmp_path / "users.yaml"))
    cost = directory.raw_credentials["usernames"]["admin"]["password"].split("$")[2]
    auth.check_password(directory, "nobody", "x")
    assert auth._dummy_hash(cost.encode()).split(b"$")[2] == cost.encode()


# ---------------------------------------------------------------- 8: user file set but empty, broken


@pytest.mark.parametrize("value", ["", "  "])
def test_users_variable_set_but_empty_is_an_error_not_local_admin(monkeypatch, demo_db, value):
    at = _app(monkeypatch, demo_db, value)
    message = _nothing_but_the_refusal(at)
    assert "CXSTATS_USERS is set but empty" in message
    assert "single local admin (no user file)" not in texts(at)


@pytest.mark.parametrize(
    "text",
    ["credentials:\n  usernames:\n    x: {password: plain, roles: [admin]}\n", "credentials: [unclosed", None],
    ids=["bad-entry", "bad-yaml", "missing"],
)
def test_a_broken_user_file_shows_no_server_path(monkeypatch, demo_db, tmp_path, caplog, text):
    secret_dir = tmp_path / f"srv-{secrets.token_hex(4)}"
    secret_dir.mkdir()
    bad = secret_dir / "users.yaml"
    if text is not None:
        bad.write_text(text, encoding="utf-8")
    with caplog.at_level("ERROR", logger="cxstats.app"):
        at = _app(monkeypatch, demo_db, bad)
    message = _nothing_but_the_refusal(at)
    assert "user file cannot be used" in message
    shown = texts(at)
    assert secret_dir.name not in shown and "users.yaml" not in shown
    assert str(bad) in caplog.text  # the administrator finds the path in the server log


# ---------------------------------------------------------------- 3: no built-in table download


def test_tables_offer_no_built_in_download(make_app, demo_db):
    """Streamlit's dataframe toolbar download is off for every table (the browser suite checks the
    button is gone from the Advocates table)."""
    import tomllib

    from streamlit import config

    at = make_app(demo_db, "marketing")
    at.switch_page("pages/advocates.py")
    at.run()
    assert at.dataframe, "the Advocates page shows no table"
    assert config.get_option("client.disableDataExport") is True
    shipped = tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text(encoding="utf-8"))
    assert shipped["client"]["disableDataExport"] is True
