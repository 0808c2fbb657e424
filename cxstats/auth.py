"""Library side of the dashboard login: the YAML user file, user -> Viewer, and login lockout.

The user file is streamlit-authenticator's format (the app hands ``credentials`` to it), with a
role and a unit list per user::

    cookie: {name: cxstats_auth, key: <long random secret>, expiry_days: 1}
    credentials:
      usernames:
        mia:
          name: Mia Manager
          password: $2b$12$...        # bcrypt hash (python -m cxstats.auth hash)
          roles: [manager]
          units: ["U01", "U02"]

Failed logins are counted in the database (table ``login_attempts``, one row per user name), so a
restart or a second browser does not reset them: after ``LOCK_AFTER`` failures within
``LOCK_MINUTES`` the name is locked for ``LOCK_MINUTES``. Unknown names are counted too, so the
answer never tells which names exist. Pure python + duckdb; never imports streamlit.
"""

from __future__ import annotations

import copy
import os
import sys
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path

import bcrypt
import duckdb
import yaml

from . import ROLES, CxStatsError, Viewer

LOCK_AFTER = 5  # failures before a lock
LOCK_MINUTES = 15  # how long a lock lasts, and how long failures are remembered

_DUMMY_HASH = bcrypt.hashpw(b"not a password", bcrypt.gensalt(rounds=4))


def now_utc() -> datetime:
    """Naive UTC timestamp (the database stores TIMESTAMP without zone)."""
    return datetime.now(timezone.utc).replace(tzinfo=None)


def normalise_username(username: str) -> str:
    """streamlit-authenticator lower-cases and strips user names; so do we, so counts agree."""
    return str(username or "").strip().lower()


@dataclass(frozen=True)
class User:
    username: str
    name: str
    role: str
    units: tuple[str, ...] = ()
    email: str | None = None

    @property
    def viewer(self) -> Viewer:
        return Viewer(self.role, self.units if self.role == "manager" else (), self.name)


@dataclass(frozen=True)
class UserDirectory:
    """The parsed user file. ``credentials()`` gives a fresh copy for streamlit-authenticator."""

    path: Path
    users: dict[str, User]
    raw_credentials: dict = field(repr=False)
    cookie_name: str = "cxstats_auth"
    cookie_key: str = field(default="", repr=False)
    cookie_expiry_days: float = 1.0

    def credentials(self) -> dict:
        # a deep copy: the authenticator mutates it (failed-attempt counters, logged_in flags)
        return copy.deepcopy(self.raw_credentials)

    def viewer(self, username: str) -> Viewer:
        user = self.users.get(normalise_username(username))
        if user is None:
            raise CxStatsError(f"unknown user {username!r}; add them to the user file {self.path}")
        return user.viewer


def load_users(path: str | os.PathLike) -> UserDirectory:
    """Read and check the YAML user file; every problem is reported at once.

    Each user needs a bcrypt ``password`` hash and exactly one role among leader, marketing,
    manager, admin; a manager needs a non-empty ``units`` list.
    """
    p = Path(path)
    try:
        doc = yaml.safe_load(p.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise CxStatsError(f"user file {p} not found; set CXSTATS_USERS to an existing file") from exc
    except yaml.YAMLError as exc:
        raise CxStatsError(f"user file {p} is not valid YAML: {exc}") from exc
    if not isinstance(doc, dict) or not isinstance((doc.get("credentials") or {}).get("usernames"), dict):
        raise CxStatsError(f"user file {p} needs a 'credentials: usernames:' section (see users.example.yaml)")
    problems: list[str] = []
    users: dict[str, User] = {}
    creds: dict[str, dict] = {"usernames": {}}
    for raw_name, entry in doc["credentials"]["usernames"].items():
        uname = normalise_username(raw_name)
        if not isinstance(entry, dict):
            problems.append(f"user {raw_name!r}: expected name, password, roles")
            continue
        pw = str(entry.get("password") or "")
        if not pw.startswith(("$2a$", "$2b$", "$2y$")):
            problems.append(f"user {raw_name!r}: password must be a bcrypt hash (python -m cxstats.auth hash)")
        roles = entry.get("roles") or []
        roles = [roles] if isinstance(roles, str) else list(roles)
        known = [r for r in roles if r in ROLES]
        if len(known) != 1 or len(roles) != 1:
            problems.append(f"user {raw_name!r}: give exactly one role among {', '.join(ROLES)} (got {roles})")
            continue
        units = entry.get("units") or []
        units = [units] if isinstance(units, str) else list(units)
        units = tuple(str(u).strip() for u in units if str(u).strip())
        if known[0] == "manager" and not units:
            problems.append(f"user {raw_name!r}: a manager needs a 'units' list")
        users[uname] = User(uname, str(entry.get("name") or uname), known[0], units, entry.get("email"))
        creds["usernames"][uname] = {
            "name": users[uname].name,
            "email": entry.get("email"),
            "password": pw,
            "roles": [known[0]],
        }
    if not users and not problems:
        problems.append("no users defined")
    if problems:
        raise CxStatsError(f"user file {p} has {len(problems)} problem(s)", problems)
    cookie = doc.get("cookie") or {}
    return UserDirectory(
        path=p,
        users=users,
        raw_credentials=creds,
        cookie_name=str(cookie.get("name") or "cxstats_auth"),
        # without a configured secret the cookie is signed with a per-process random key
        cookie_key=str(cookie.get("key") or os.urandom(32).hex()),
        cookie_expiry_days=float(cookie.get("expiry_days", 1)),
    )


def hash_password(password: str) -> str:
    """bcrypt hash for the user file."""
    if len(password) < 8:
        raise CxStatsError("choose a password of at least 8 characters")
    return bcrypt.hashpw(password.encode("utf-8"), bcrypt.gensalt()).decode("ascii")


def check_password(directory: UserDirectory, username: str, password: str) -> bool:
    """True when the password matches the user's hash (constant work for unknown names)."""
    uname = normalise_username(username)
    creds = directory.raw_credentials["usernames"].get(uname)
    hashed = creds["password"].encode("ascii") if creds else _DUMMY_HASH
    try:
        ok = bcrypt.checkpw(str(password or "").encode("utf-8"), hashed)
    except ValueError:
        return False
    return ok and creds is not None


# ---------------------------------------------------------------- lockout


@dataclass(frozen=True)
class LockState:
    username: str
    failures: int
    locked_until: datetime | None

    def is_locked(self, now: datetime | None = None) -> bool:
        return self.locked_until is not None and (now or now_utc()) < self.locked_until

    def message(self, now: datetime | None = None) -> str:
        until = self.locked_until
        if until is not None and self.is_locked(now):
            minutes = max(1, int(((until - (now or now_utc())).total_seconds() + 59) // 60))
            return f"too many failed logins for this user name; try again in {minutes} minute(s)"
        left = max(0, LOCK_AFTER - self.failures)
        return f"user name or password is wrong ({left} attempt(s) left before a {LOCK_MINUTES}-minute lock)"


def lock_state(con: duckdb.DuckDBPyConnection, username: str, now: datetime | None = None) -> LockState:
    """Current failures and lock of a user name (failures older than the window are forgotten)."""
    uname = normalise_username(username)
    now = now or now_utc()
    rows = con.execute(
        "SELECT failures, last_failure, locked_until FROM login_attempts WHERE username = ?", [uname]
    ).fetchall()
    if not rows:
        return LockState(uname, 0, None)
    failures, last_failure, locked_until = rows[0]
    if locked_until is not None and now >= locked_until:
        return LockState(uname, 0, None)
    if locked_until is None and last_failure is not None and now - last_failure > timedelta(minutes=LOCK_MINUTES):
        failures = 0
    return LockState(uname, int(failures or 0), locked_until)


def record_failure(con: duckdb.DuckDBPyConnection, username: str, now: datetime | None = None) -> LockState:
    """Count one failed login; the LOCK_AFTER-th failure locks the name for LOCK_MINUTES."""
    uname = normalise_username(username)
    now = now or now_utc()
    state = lock_state(con, uname, now)
    if state.is_locked(now):
        return state
    failures = state.failures + 1
    locked_until = now + timedelta(minutes=LOCK_MINUTES) if failures >= LOCK_AFTER else None
    con.execute(
        "INSERT OR REPLACE INTO login_attempts (username, failures, last_failure, locked_until) VALUES (?, ?, ?, ?)",
        [uname, failures, now, locked_until],
    )
    return LockState(uname, failures, locked_until)


def record_success(con: duckdb.DuckDBPyConnection, username: str) -> None:
    """A successful login clears the name's failure count."""
    con.execute("DELETE FROM login_attempts WHERE username = ?", [normalise_username(username)])


@dataclass(frozen=True)
class LoginOutcome:
    ok: bool
    viewer: Viewer | None
    message: str
    lock: LockState


def attempt_login(
    db, directory: UserDirectory, username: str, password: str, now: datetime | None = None
) -> LoginOutcome:
    """Check a login against the user file and the lockout table, and record the result.

    A locked name is refused without looking at the password.
    """
    from . import store

    now = now or now_utc()
    with store.connect(db) as con:
        state = lock_state(con, username, now)
        if state.is_locked(now):
            return LoginOutcome(False, None, state.message(now), state)
        if check_password(directory, username, password):
            record_success(con, username)
            return LoginOutcome(True, directory.viewer(username), "logged in", LockState(state.username, 0, None))
        state = record_failure(con, username, now)
        return LoginOutcome(False, None, state.message(now), state)


def main(argv: list[str] | None = None) -> int:
    """``python -m cxstats.auth hash`` prints a bcrypt hash for the user file."""
    import getpass

    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] != ["hash"]:
        print("usage: python -m cxstats.auth hash   (asks for a password, prints its bcrypt hash)", file=sys.stderr)
        return 2
    pw = getpass.getpass("password: ") if sys.stdin.isatty() else sys.stdin.readline().rstrip("\n")
    try:
        print(hash_password(pw))
    except CxStatsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
