"""cxstats.auth: the user file, user -> Viewer, and the login lockout kept in the database.

Password checks use published bcrypt test vectors (OpenBSD's, also in John the Ripper's suite)
and the demo passwords documented in README.md, never hashes made by the code under test.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import pytest

from cxstats import CxStatsError, Viewer, auth, store

ROOT = Path(__file__).resolve().parents[1]
T0 = datetime(2026, 3, 2, 9, 0, 0)

# OpenBSD bcrypt vectors: ("U*U", cost 5) and ("", cost 5)
VECTOR_UU = "$2a$05$CCCCCCCCCCCCCCCCCCCCC.E5YPO9kmyuRGyh0XouQYb4YMJKvyOeW"
VECTOR_EMPTY = "$2a$05$CCCCCCCCCCCCCCCCCCCCC.7uG0VCzI2bS7j6ymqJi9CdcdxiRTWNy"

USERS_YAML = f"""
cookie: {{name: test_cookie, key: test-key-0123456789, expiry_days: 1}}
credentials:
  usernames:
    Mia:
      name: Mia Manager
      password: "{VECTOR_UU}"
      roles: [manager]
      units: ["00042", "U7"]
    lee:
      name: Lee Leader
      password: "{VECTOR_EMPTY}"
      roles: leader
"""


@pytest.fixture
def users(tmp_path) -> auth.UserDirectory:
    p = tmp_path / "users.yaml"
    p.write_text(USERS_YAML, encoding="utf-8")
    return auth.load_users(p)


# ---------------------------------------------------------------- user file


def test_user_file_maps_users_to_viewers(users):
    assert users.viewer("mia") == Viewer("manager", ("00042", "U7"), "Mia Manager")
    assert users.viewer(" MIA ") == Viewer("manager", ("00042", "U7"), "Mia Manager")
    assert users.viewer("lee") == Viewer("leader", (), "Lee Leader")
    assert users.cookie_name == "test_cookie"


def test_credentials_for_the_authenticator_are_a_fresh_copy(users):
    a = users.credentials()
    a["usernames"]["mia"]["failed_login_attempts"] = 3
    assert "failed_login_attempts" not in users.credentials()["usernames"]["mia"]
    assert a["usernames"]["lee"]["roles"] == ["leader"]


def test_unknown_user_is_refused(users):
    with pytest.raises(CxStatsError, match="unknown user"):
        users.viewer("nobody")


@pytest.mark.parametrize(
    "entry, problem",
    [
        ('{name: X, password: "secret", roles: [admin]}', "bcrypt hash"),
        (f'{{name: X, password: "{VECTOR_UU}", roles: [admin, leader]}}', "exactly one role"),
        (f'{{name: X, password: "{VECTOR_UU}", roles: [boss]}}', "exactly one role"),
        (f'{{name: X, password: "{VECTOR_UU}"}}', "exactly one role"),
        (f'{{name: X, password: "{VECTOR_UU}", roles: [manager]}}', "needs a 'units' list"),
        ('"just text"', "expected name, password, roles"),
    ],
)
def test_bad_user_entries_say_what_to_fix(tmp_path, entry, problem):
    p = tmp_path / "u.yaml"
    p.write_text(f"credentials:\n  usernames:\n    x: {entry}\n", encoding="utf-8")
    with pytest.raises(CxStatsError) as err:
        auth.load_users(p)
    assert any(problem in q for q in err.value.problems), err.value.problems


@pytest.mark.parametrize(
    "text, message",
    [
        (None, "not found"),
        ("credentials: [unclosed", "not valid YAML"),
        ("cookie: {name: x}\n", "credentials: usernames:"),
        ("credentials:\n  usernames: {}\n", "no users defined"),
    ],
)
def test_bad_user_files_say_what_to_fix(tmp_path, text, message):
    p = tmp_path / "u.yaml"
    if text is not None:
        p.write_text(text, encoding="utf-8")
    with pytest.raises(CxStatsError) as err:
        auth.load_users(p)
    assert message in str(err.value) + " ".join(err.value.problems)


def test_example_user_file_holds_the_documented_demo_passwords():
    users = auth.load_users(ROOT / "users.example.yaml")
    roles = {u: users.viewer(u).role for u in users.users}
    assert roles == {"admin": "admin", "leader": "leader", "marketing": "marketing", "manager": "manager"}
    assert users.viewer("manager").units  # a manager always has units
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for user in roles:
        password = f"{user}-demo-2026"
        assert password in readme  # the README documents what the example hashes are
        assert auth.check_password(users, user, password)
        assert not auth.check_password(users, user, password + "x")


# ---------------------------------------------------------------- passwords


@pytest.mark.parametrize(
    "user, password, ok",
    [
        ("mia", "U*U", True),
        ("MIA", "U*U", True),  # user names are case-insensitive, passwords are not
        ("mia", "u*u", False),
        ("mia", "", False),
        ("lee", "", True),
        ("lee", "U*U", False),
        ("nobody", "U*U", False),
        ("", "", False),
    ],
)
def test_check_password_against_published_bcrypt_vectors(users, user, password, ok):
    assert auth.check_password(users, user, password) is ok


def test_hash_password_makes_a_bcrypt_hash_that_checks(tmp_path):
    h = auth.hash_password("correct horse battery")
    assert h.startswith("$2b$")
    p = tmp_path / "u.yaml"
    p.write_text(f'credentials:\n  usernames:\n    a: {{password: "{h}", roles: [admin]}}\n', encoding="utf-8")
    users = auth.load_users(p)
    assert auth.check_password(users, "a", "correct horse battery")
    with pytest.raises(CxStatsError, match="at least 8"):
        auth.hash_password("short")


# ---------------------------------------------------------------- lockout


def minutes(m: float) -> datetime:
    return T0 + timedelta(minutes=m)


# (minutes after T0 of each wrong password, minute asked, expected locked?)
LOCK_CASES = [
    ([0, 1, 2, 3], 4, False),  # four failures: not yet
    ([0, 1, 2, 3, 4], 4, True),  # the fifth locks
    ([0, 1, 2, 3, 4], 18.9, True),  # still locked 14.9 minutes later
    ([0, 1, 2, 3, 4], 19, False),  # 15 minutes after the fifth: open again
    ([0, 20, 40, 60, 80], 80, False),  # failures further apart than the window do not add up
    ([0, 1, 2, 3, 20], 20, False),  # an old run of failures is forgotten after the window
]


@pytest.mark.parametrize("fail_at, ask_at, locked", LOCK_CASES)
def test_lockout_after_five_failures_for_fifteen_minutes(db, fail_at, ask_at, locked):
    with store.connect(db) as con:
        for m in fail_at:
            auth.record_failure(con, "mia", minutes(m))
        assert auth.lock_state(con, "mia", minutes(ask_at)).is_locked(minutes(ask_at)) is locked


def test_after_a_lock_expires_the_count_starts_again(db):
    with store.connect(db) as con:
        for m in range(5):
            auth.record_failure(con, "mia", minutes(m))
        state = auth.record_failure(con, "mia", minutes(20))
    assert state.failures == 1 and not state.is_locked(minutes(20))


def test_lockout_is_per_user_name_and_case_insensitive(db):
    with store.connect(db) as con:
        for m, name in enumerate(["Mia", "MIA", " mia", "mia", "mIa"]):
            auth.record_failure(con, name, minutes(m))
        assert auth.lock_state(con, "mia", minutes(5)).is_locked(minutes(5))
        assert not auth.lock_state(con, "lee", minutes(5)).is_locked(minutes(5))


def test_lockout_survives_reopening_the_database(db):
    with store.connect(db) as con:
        for m in range(5):
            auth.record_failure(con, "mia", minutes(m))
    with store.connect(db) as con:  # a restart of the app: the count is server-side
        assert auth.lock_state(con, "mia", minutes(6)).is_locked(minutes(6))


def test_locked_user_is_refused_even_with_the_right_password(db, users):
    for m in range(5):
        out = auth.attempt_login(db, users, "mia", "wrong", minutes(m))
        assert not out.ok
    assert "4 attempt(s) left" not in out.message and "try again in 15 minute(s)" in out.message
    out = auth.attempt_login(db, users, "mia", "U*U", minutes(10))
    assert not out.ok and out.viewer is None and "try again in 9 minute(s)" in out.message
    out = auth.attempt_login(db, users, "mia", "U*U", minutes(19))
    assert out.ok and out.viewer == Viewer("manager", ("00042", "U7"), "Mia Manager")


def test_success_clears_the_failure_count(db, users):
    for m in range(4):
        out = auth.attempt_login(db, users, "mia", "wrong", minutes(m))
    assert "1 attempt(s) left" in out.message
    assert auth.attempt_login(db, users, "mia", "U*U", minutes(4)).ok
    out = auth.attempt_login(db, users, "mia", "wrong", minutes(5))
    assert out.lock.failures == 1 and "4 attempt(s) left" in out.message


def test_unknown_names_are_counted_like_known_ones(db, users):
    # the same answers for a name that does not exist, so guessing names reveals nothing
    for m in range(5):
        out = auth.attempt_login(db, users, "ghost", "x", minutes(m))
    assert not out.ok and out.lock.is_locked(minutes(5))
