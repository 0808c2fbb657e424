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
``LOCK_MINUTES`` the name is locked for ``LOCK_MINUTES``. Unknown names are counted and locked the
same way, with the same messages, so the answer never tells which names exist. Every attempt is
counted *before* the password is looked at; when the counter cannot be written the login is
refused. ``ADDRESS_LOCK_AFTER`` failures from one client address within ``ADDRESS_LOCK_MINUTES``
lock that address (table ``login_addresses``).

Sessions: a login gives a signed token (HS256 with the user file's cookie key) that carries the
user name and the user's *session generation*, a random value kept in the database (table
``login_sessions``). The app checks it against the database on every run; log out replaces the
generation, so every token and session issued before it stops working (on every browser of that
user). A token (the login cookie) logs in only while the name and address are not locked. The app
refuses to start on the example file's cookie key or a key shorter than ``MIN_COOKIE_KEY``
characters (:func:`check_cookie_key`): a known key lets anyone sign an admin token.
Pure python + duckdb; never imports streamlit.
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
import jwt
import yaml

from . import ROLES, CxStatsError, Viewer

LOCK_AFTER = 5  # failures before a lock
LOCK_MINUTES = 15  # how long a lock lasts, and how long failures are remembered
ADDRESS_LOCK_AFTER = 20  # failures from one client address (any names) before the address is locked
ADDRESS_LOCK_MINUTES = 60  # the window those failures are counted in, and how long the lock lasts
MAX_NAME_CHARS = 200  # a typed user name is counted under its first 200 characters
MIN_COOKIE_KEY = 32  # characters
EXAMPLE_USERS = Path(__file__).resolve().parents[1] / "users.example.yaml"
# the cookie key published in users.example.yaml (also read from that file when it is there)
EXAMPLE_COOKIE_KEY = "change-me-to-a-long-random-secret-before-real-use"
TOKEN_ALGORITHM = "HS256"

COUNTER_UNAVAILABLE = (
    "login is not possible right now: the failed-login counter could not be written; try again in a minute"
)

_DUMMY_HASHES: dict[bytes, bytes] = {}


def _dummy_hash(cost: bytes) -> bytes:
    """A hash of the same cost as the real ones, so an unknown name takes as long as a known one."""
    if cost not in _DUMMY_HASHES:
        rounds = int(cost) if cost.isdigit() and 4 <= int(cost) <= 31 else 12
        _DUMMY_HASHES[cost] = bcrypt.hashpw(b"not a password", bcrypt.gensalt(rounds=rounds))
    return _DUMMY_HASHES[cost]


def now_utc() -> datetime:
    """Naive UTC timestamp (the database stores TIMESTAMP without zone)."""
    return datetime.now(timezone.utc).replace(tzinfo=None)


def normalise_username(username: str) -> str:
    """streamlit-authenticator lower-cases and strips user names; so do we, so counts agree."""
    return str(username or "").strip().lower()[:MAX_NAME_CHARS]


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


def _example_keys() -> set[str]:
    keys = {EXAMPLE_COOKIE_KEY}
    try:
        doc = yaml.safe_load(EXAMPLE_USERS.read_text(encoding="utf-8"))
        key = ((doc or {}).get("cookie") or {}).get("key")
        if key:
            keys.add(str(key))
    except (OSError, yaml.YAMLError, AttributeError):
        pass
    return keys


def check_cookie_key(directory: UserDirectory) -> None:
    """Refuse a cookie key anyone could know: the example file's, or one under MIN_COOKIE_KEY characters.

    The key signs the login token; whoever knows it can sign a token for any user, admin included.
    The message names no path (it is shown to whoever opens the page).
    """
    key = directory.cookie_key
    fix = (
        f"set cookie.key in the user file to a random secret of at least {MIN_COOKIE_KEY} characters, e.g. "
        'the output of: python -c "import secrets; print(secrets.token_urlsafe(32))"'
    )
    if key in _example_keys():
        raise CxStatsError(
            f"cxstats will not start: the user file's cookie key is the one published in "
            f"users.example.yaml, so anyone could forge a login; {fix}"
        )
    if len(key) < MIN_COOKIE_KEY:
        raise CxStatsError(
            f"cxstats will not start: the user file's cookie key is shorter than {MIN_COOKIE_KEY} "
            f"characters, too easy to guess; {fix}"
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
    if creds:
        hashed = creds["password"].encode("ascii")
    else:  # the same work as for a real user of this file
        some = next(iter(directory.raw_credentials["usernames"].values()), None)
        cost = some["password"].split("$")[2].encode("ascii") if some and some["password"].count("$") >= 3 else b"12"
        hashed = _dummy_hash(cost)
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


def _forget_old_failures(con: duckdb.DuckDBPyConnection, now: datetime) -> None:
    """Rows of names and addresses whose failures and locks are over (guessed names pile up otherwise)."""
    con.execute(
        "DELETE FROM login_attempts WHERE (locked_until IS NULL OR locked_until <= ?) AND last_failure < ?",
        [now, now - timedelta(minutes=LOCK_MINUTES)],
    )
    con.execute(
        "DELETE FROM login_addresses WHERE (locked_until IS NULL OR locked_until <= ?) AND first_failure < ?",
        [now, now - timedelta(minutes=ADDRESS_LOCK_MINUTES)],
    )


def _ensure_tables(con: duckdb.DuckDBPyConnection) -> None:
    from . import store

    for stmt in store.AUTH_DDL:
        con.execute(stmt)


# ---------------------------------------------------------------- client addresses


def client_address(remote_ip: str | None, headers=None) -> str | None:
    """The address failed logins are counted under, where it is known.

    The connection's own address when it is not the machine itself; for a connection from the
    machine itself (a reverse proxy on localhost, as README sets it up), the last address of
    ``X-Forwarded-For`` (the one that proxy appended), else ``X-Real-IP``; else None (not known).
    """
    if remote_ip and remote_ip not in ("127.0.0.1", "::1"):
        return str(remote_ip)[:64]
    headers = headers or {}
    try:
        forwarded = headers.get("X-Forwarded-For") or headers.get("x-forwarded-for") or ""
        real = headers.get("X-Real-Ip") or headers.get("x-real-ip") or ""
    except AttributeError:
        return None
    last = [p.strip() for p in str(forwarded).split(",") if p.strip()]
    if last:
        return last[-1][:64]
    return str(real).strip()[:64] or None


@dataclass(frozen=True)
class AddressState:
    address: str | None
    failures: int
    locked_until: datetime | None

    def is_locked(self, now: datetime | None = None) -> bool:
        return self.locked_until is not None and (now or now_utc()) < self.locked_until

    def message(self, now: datetime | None = None) -> str:
        left = (self.locked_until - (now or now_utc())).total_seconds() if self.locked_until else 0.0
        minutes = max(1, int((left + 59) // 60))
        return f"too many failed logins from your network address; try again in {minutes} minute(s)"


def address_state(con: duckdb.DuckDBPyConnection, address: str | None, now: datetime | None = None) -> AddressState:
    """Failures from one client address in the current window, and its lock."""
    now = now or now_utc()
    if not address:
        return AddressState(None, 0, None)
    rows = con.execute(
        "SELECT failures, first_failure, locked_until FROM login_addresses WHERE address = ?", [address]
    ).fetchall()
    if not rows:
        return AddressState(address, 0, None)
    failures, first, locked_until = rows[0]
    if locked_until is not None and now >= locked_until:
        return AddressState(address, 0, None)
    if locked_until is None and first is not None and now - first > timedelta(minutes=ADDRESS_LOCK_MINUTES):
        return AddressState(address, 0, None)
    return AddressState(address, int(failures or 0), locked_until)


def record_address_failure(
    con: duckdb.DuckDBPyConnection, address: str | None, now: datetime | None = None
) -> AddressState:
    """Count one failed login from an address; the ADDRESS_LOCK_AFTER-th in the window locks it."""
    now = now or now_utc()
    state = address_state(con, address, now)
    if not address or state.is_locked(now):
        return state
    first = now
    if state.failures:
        first = con.execute("SELECT first_failure FROM login_addresses WHERE address = ?", [address]).fetchall()[0][0]
    failures = state.failures + 1
    locked_until = now + timedelta(minutes=ADDRESS_LOCK_MINUTES) if failures >= ADDRESS_LOCK_AFTER else None
    con.execute(
        "INSERT OR REPLACE INTO login_addresses (address, failures, first_failure, locked_until) VALUES (?, ?, ?, ?)",
        [address, failures, first, locked_until],
    )
    return AddressState(address, failures, locked_until)


def _unrecord_address_failure(con: duckdb.DuckDBPyConnection, address: str | None) -> None:
    """A login that succeeded was counted in advance: take it back from the address count."""
    if address:
        con.execute(
            "UPDATE login_addresses SET failures = failures - 1 WHERE address = ? AND locked_until IS NULL "
            "AND failures > 0",
            [address],
        )


# ---------------------------------------------------------------- logging in


@dataclass(frozen=True)
class LoginOutcome:
    ok: bool
    viewer: Viewer | None
    message: str
    lock: LockState
    username: str = ""
    generation: str | None = field(default=None, repr=False)  # the session generation to put in the token


def _refused(uname: str, message: str, lock: LockState | None = None) -> LoginOutcome:
    return LoginOutcome(False, None, message, lock or LockState(uname, 0, None), uname)


def attempt_login(
    db,
    directory: UserDirectory,
    username: str,
    password: str,
    now: datetime | None = None,
    *,
    address: str | None = None,
) -> LoginOutcome:
    """Check a login against the user file and the lockouts, and record it.

    Every name is treated alike, known or not: the attempt is counted as a failure (for the name
    and the client address) *before* the password is checked, and taken back when the password is
    right. A locked name or address is refused without looking at the password; when the
    counters cannot be written the login is refused.
    """
    from . import store

    now = now or now_utc()
    uname = normalise_username(username)
    if not uname:
        return _refused(uname, "enter your user name and password")
    try:
        with store.connect(db) as con:
            _ensure_tables(con)
            con.execute("BEGIN TRANSACTION")
            try:
                name_state = lock_state(con, uname, now)
                addr = address_state(con, address, now)
                if name_state.is_locked(now) or addr.is_locked(now):
                    con.execute("COMMIT")
                    message = name_state.message(now) if name_state.is_locked(now) else addr.message(now)
                    return _refused(uname, message, name_state)
                _forget_old_failures(con, now)
                state = record_failure(con, uname, now)
                record_address_failure(con, address, now)
                con.execute("COMMIT")
            except Exception:
                con.execute("ROLLBACK")
                raise
    except (CxStatsError, duckdb.Error):
        return _refused(uname, COUNTER_UNAVAILABLE)
    if not check_password(directory, uname, password):
        return _refused(uname, state.message(now), state)
    try:
        with store.connect(db) as con:
            record_success(con, uname)
            _unrecord_address_failure(con, address)
            generation = session_generation(con, uname)
    except (CxStatsError, duckdb.Error):
        return _refused(uname, COUNTER_UNAVAILABLE)
    return LoginOutcome(True, directory.viewer(uname), "logged in", LockState(uname, 0, None), uname, generation)


# ---------------------------------------------------------------- sessions


def session_generation(con: duckdb.DuckDBPyConnection, username: str) -> str:
    """The user's current session generation (created on first use)."""
    _ensure_tables(con)
    uname = normalise_username(username)
    rows = con.execute("SELECT generation FROM login_sessions WHERE username = ?", [uname]).fetchall()
    if rows:
        return rows[0][0]
    generation = os.urandom(16).hex()
    con.execute("INSERT OR IGNORE INTO login_sessions (username, generation) VALUES (?, ?)", [uname, generation])
    return con.execute("SELECT generation FROM login_sessions WHERE username = ?", [uname]).fetchall()[0][0]


def session_is_current(con: duckdb.DuckDBPyConnection, username: str, generation: str | None) -> bool:
    """True while no log out has happened since the session (or token) got this generation."""
    _ensure_tables(con)
    rows = con.execute(
        "SELECT generation FROM login_sessions WHERE username = ?", [normalise_username(username)]
    ).fetchall()
    return bool(rows and generation and rows[0][0] == generation)


def end_sessions(con: duckdb.DuckDBPyConnection, username: str) -> None:
    """Log out: a new generation, so every session and token the user had stops working."""
    _ensure_tables(con)
    con.execute(
        "INSERT OR REPLACE INTO login_sessions (username, generation) VALUES (?, ?)",
        [normalise_username(username), os.urandom(16).hex()],
    )


def issue_token(directory: UserDirectory, username: str, generation: str, now: datetime | None = None) -> str:
    """The login cookie's value: user name, session generation and expiry, signed with the cookie key."""
    now = now or now_utc()
    exp = now + timedelta(days=directory.cookie_expiry_days)
    claims = {
        "sub": normalise_username(username),
        "gen": generation,
        "exp": int(exp.replace(tzinfo=timezone.utc).timestamp()),
    }
    return jwt.encode(claims, directory.cookie_key, algorithm=TOKEN_ALGORITHM)


def read_token(directory: UserDirectory, token: str | None, now: datetime | None = None) -> tuple[str, str] | None:
    """(user name, generation) of a token this server signed and that has not expired; else None."""
    if not token:
        return None
    now = now or now_utc()
    try:
        claims = jwt.decode(
            str(token),
            directory.cookie_key,
            algorithms=[TOKEN_ALGORITHM],
            options={"require": ["exp", "sub", "gen"], "verify_exp": False},
        )
    except jwt.PyJWTError:
        return None
    exp = claims.get("exp")
    if not isinstance(exp, (int, float)) or exp <= now.replace(tzinfo=timezone.utc).timestamp():
        return None
    uname, generation = claims.get("sub"), claims.get("gen")
    if not isinstance(uname, str) or not isinstance(generation, str) or uname not in directory.users:
        return None
    return uname, generation


def token_login(
    db, directory: UserDirectory, token: str | None, now: datetime | None = None, *, address: str | None = None
) -> LoginOutcome:
    """Log in from a token (the login cookie): valid signature, not expired, the current session
    generation, and neither the name nor the address locked."""
    from . import store

    now = now or now_utc()
    claims = read_token(directory, token, now)
    if claims is None:
        return _refused("", "please log in")
    uname, generation = claims
    try:
        with store.connect(db) as con:
            name_state = lock_state(con, uname, now)
            _ensure_tables(con)
            addr = address_state(con, address, now)
            if name_state.is_locked(now):
                return _refused(uname, name_state.message(now), name_state)
            if addr.is_locked(now):
                return _refused(uname, addr.message(now), name_state)
            if not session_is_current(con, uname, generation):
                return _refused(uname, "your session has ended; please log in again")
    except (CxStatsError, duckdb.Error):
        return _refused(uname, COUNTER_UNAVAILABLE)
    return LoginOutcome(True, directory.viewer(uname), "logged in", name_state, uname, generation)


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
