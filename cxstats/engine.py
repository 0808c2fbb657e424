"""Where the heavy aggregations run: the DuckDB file, a Parquet lake read by DuckDB, or Apache Spark
over that lake (DESIGN.md, "Engines").

The heavy aggregations are Ibis expressions over :func:`open_tables`' tables; only aggregates come
back. Everything else (engagement, settings, rewards, hold-outs, actions, re-organisations,
erasures) always comes from the DuckDB file (``t.local``)::

    cfg = engine.config_from_env(db)                 # CXSTATS_ENGINE, CXSTATS_LAKE, CXSTATS_SPARK
    with engine.open_tables(cfg, viewer=viewer) as t:
        p = t.table("purchases")                     # ibis.Table, same columns on every engine
        out = t.execute(p.group_by("customer_id").aggregate(spend=p.amount.sum()))  # pyarrow.Table

Configuration (environment):

- nothing set: the DuckDB file (``--db``, ``CXSTATS_DB``, ``data/cxstats.duckdb``);
- ``CXSTATS_LAKE=PATH`` (a folder or a URI DuckDB reads): Parquet datasets ``purchases/``,
  ``feedback/``, ``mentions/``, ``customers/``, ``units/`` (hive-partitioned folders such as
  ``year=2026/`` allowed), read by DuckDB (a URI through its httpfs or azure extension, which is
  never downloaded at run time: :data:`DUCKDB_LAKE_SCHEMES`);
- ``CXSTATS_ENGINE=spark`` with ``CXSTATS_LAKE`` and ``CXSTATS_SPARK=local[2] | spark://HOST:7077 |
  sc://HOST:15002`` (Spark Connect; default ``local[2]``): the same expressions on Spark, one
  cached SparkSession per process; the lake URI is passed to Spark as it is
  (:func:`spark_filesystem_hint` names the Hadoop jars a cluster needs for it).

Each dataset is opened, checked and erasure-filtered the first time ``t.table(name)`` asks for it,
at most once per :func:`open_tables`.

Every lake read leaves out rows whose customer id, handle or e-mail matches an erasure recorded in
the DuckDB file: the erasure record holds HMAC-SHA256 values (:func:`cxstats.store.identifier_hmac`),
so the engine computes the same HMAC of each row's identifiers natively (SHA-256 twice over the
padded key, RFC 2104) and drops the matches; nothing is filtered when nothing was erased.
``customers/`` carries ``updated_at``; the engine keeps each customer's latest row, a consent
withdrawal (``marketing_consent`` false) winning ties. Columns are checked against
:data:`cxstats.schema.KINDS` and cast to its types, so every engine sees the same schema; a missing
optional column reads as null.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import socket
import threading
import uuid
from collections.abc import Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any, Iterator

from . import CxStatsError, Viewer, store
from .schema import KINDS

ENGINES = ("duckdb", "lake", "spark")
LAKE_TABLES = ("purchases", "feedback", "mentions", "customers", "units")
ENV_ENGINE, ENV_LAKE, ENV_SPARK = "CXSTATS_ENGINE", "CXSTATS_LAKE", "CXSTATS_SPARK"
DEFAULT_SPARK = "local[2]"
SPARK_EXTRA = "install the spark extra: pip install -r requirements-spark.txt"
SPARK_CONNECT_TIMEOUT_S = 5.0  # how long a Spark master / Connect server may take to accept a connection
SPARK_SHUFFLE_PARTITIONS = 4

# columns beyond the kind's fields that the engine's tables carry
EXTRA_COLUMNS: dict[str, tuple[tuple[str, str, bool], ...]] = {
    # (name, schema type, required in a lake)
    "purchases": (("line_no", "int", False),),
    "mentions": (("sentiment_source", "text", False),),
    "customers": (("updated_at", "timestamp", True),),
}
# identifiers checked against erasures, per table: (column, what) as store.identifier_hmac names them
ERASURE_COLUMNS: dict[str, tuple[tuple[str, str], ...]] = {
    "purchases": (("customer_id", "id"),),
    "feedback": (("customer_id", "id"),),
    "mentions": (("customer_id", "id"), ("handle", "handle")),
    "customers": (("customer_id", "id"), ("email", "email"), ("handle", "handle")),
    "units": (),
    "engagement": (("respondent_id", "respondent"),),
}
_URI = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*://")
# URI schemes a lake read by DuckDB may use, and the DuckDB extension that reads each (never
# downloaded at run time: an extension not installed stops with a message saying how to install it)
DUCKDB_LAKE_SCHEMES = {
    "s3": "httpfs",
    "s3a": "httpfs",
    "s3n": "httpfs",
    "r2": "httpfs",
    "gs": "httpfs",
    "gcs": "httpfs",
    "hf": "httpfs",
    "az": "azure",
    "azure": "azure",
    "abfss": "azure",
}
_SPARK_MASTER = re.compile(r"^(local(\[(\d+|\*)(,\d+)?\])?|(spark|sc)://[^\s/:]+(:\d+)?/?(;.*)?)$")


# ---------------------------------------------------------------- configuration


@dataclass(frozen=True)
class EngineConfig:
    """Which engine runs the heavy aggregations, and over what."""

    kind: str  # "duckdb" | "lake" | "spark"
    db: Path
    lake: str | None = None
    spark: str | None = None

    def describe(self) -> str:
        """One line for the sidebar and the logs."""
        if self.kind == "spark":
            return f"Spark {self.spark} over {self.lake}"
        if self.kind == "lake":
            return f"Parquet lake {self.lake} (DuckDB)"
        return f"DuckDB file {self.db}"

    def upload_note(self) -> str | None:
        """What the Upload page says when a lake is in use (uploads stay local; None without a lake)."""
        if not self.lake:
            return None
        return (
            f"A lake is read-only to cxstats: uploads go to the DuckDB file {self.db.name}, not to the "
            f"lake {self.lake} that {self.describe()} reads for the heavy figures."
        )

    def lake_location(self) -> str:
        """The lake a lake or Spark engine reads (config_from_env refuses either without one)."""
        if self.lake is None:
            raise CxStatsError(f"the {self.kind} engine has no lake: set {ENV_LAKE}")
        return self.lake

    def spark_master(self) -> str:
        """The Spark master of a Spark engine (config_from_env sets the default local[2])."""
        if self.spark is None:
            raise CxStatsError(f"the {self.kind} engine has no Spark master: set {ENV_ENGINE}=spark")
        return self.spark


def _lake_is_local(lake: str) -> bool:
    return not _URI.match(lake) or lake.lower().startswith("file://")


def _local_path(lake: str) -> Path:
    return Path(lake[len("file://") :] if lake.lower().startswith("file://") else lake)


def config_from_env(db: str | os.PathLike | None = None, env: Mapping[str, str] | None = None) -> EngineConfig:
    """The engine named by CXSTATS_ENGINE / CXSTATS_LAKE / CXSTATS_SPARK (``env`` defaults to
    os.environ). CxStatsError, naming the variable to fix, on a bad configuration."""
    env = os.environ if env is None else env
    path = store.db_path(db)
    engine = (env.get(ENV_ENGINE) or "").strip().lower()
    lake = (env.get(ENV_LAKE) or "").strip() or None
    spark = (env.get(ENV_SPARK) or "").strip() or None
    if engine not in ("",) + ENGINES:
        raise CxStatsError(
            f"unknown {ENV_ENGINE}={env.get(ENV_ENGINE)!r}: use duckdb (the default; with "
            f"{ENV_LAKE} set it reads the lake), lake or spark"
        )
    if engine == "spark":
        if not lake:
            raise CxStatsError(
                f"{ENV_ENGINE}=spark needs {ENV_LAKE}: set it to the Parquet lake Spark should "
                "read (python -m cxstats lake export --to PATH writes one)"
            )
        spark = spark or DEFAULT_SPARK
        if not _SPARK_MASTER.match(spark):
            raise CxStatsError(
                f"{ENV_SPARK}={spark!r} is not a Spark master: use local[2], spark://HOST:7077 "
                "or sc://HOST:15002 (Spark Connect)"
            )
        kind = "spark"
    elif engine == "lake" and not lake:
        raise CxStatsError(f"{ENV_ENGINE}=lake needs {ENV_LAKE}: set it to the folder of the Parquet lake")
    else:
        kind = "lake" if lake else "duckdb"
        spark = None
    if kind == "lake" and lake and not _lake_is_local(lake):
        _check_duckdb_scheme(lake)
    if lake and _lake_is_local(lake):
        p = _local_path(lake)
        if not p.is_dir():
            raise CxStatsError(
                f"{ENV_LAKE}={lake}: no such folder; point it at a folder holding "
                f"{', '.join(t + '/' for t in LAKE_TABLES)} (python -m cxstats lake export "
                "--to PATH writes one)"
            )
        lake = str(p)
    return EngineConfig(kind, path, lake, spark)


def _scheme(lake: str) -> str:
    return lake.split("://", 1)[0].lower()


def _check_duckdb_scheme(lake: str) -> None:
    """A lake URI DuckDB can list and read (the files of each dataset are found by a glob)."""
    scheme = _scheme(lake)
    if scheme in ("http", "https"):
        raise CxStatsError(
            f"{ENV_LAKE}={lake}: DuckDB cannot list the files of an {scheme}:// folder (HTTP has no "
            "directory listing); point it at the same lake as s3://, gs:// or az://, copy it to a "
            f"local folder, or use {ENV_ENGINE}=spark with a cluster that reads it"
        )
    if scheme not in DUCKDB_LAKE_SCHEMES:
        raise CxStatsError(
            f"{ENV_LAKE}={lake}: DuckDB cannot read {scheme}:// lakes (it reads local folders and "
            f"{', '.join(s + '://' for s in DUCKDB_LAKE_SCHEMES)}); copy the lake to a local folder "
            f"or use {ENV_ENGINE}=spark with a cluster that reads {scheme}://"
        )


def _load_duckdb_extension(lake_con, lake: str) -> None:
    """Load the extension a remote lake needs into the lake's DuckDB connection, without ever
    downloading it (no network is assumed); CxStatsError saying how to install it otherwise."""
    import duckdb

    scheme = _scheme(lake)
    ext = DUCKDB_LAKE_SCHEMES[scheme]  # one of the names above, never user text
    lake_con.execute("SET autoinstall_known_extensions = false")
    try:
        lake_con.execute(f"LOAD {ext}")
    except duckdb.Error as exc:
        raise CxStatsError(
            f"{ENV_LAKE}={lake}: DuckDB reads {scheme}:// through its {ext} extension, which is not "
            f'installed here: run INSTALL {ext} once where DuckDB can download it (python -c "import '
            f"duckdb; duckdb.sql('INSTALL {ext}')\"; it is kept under ~/.duckdb/extensions), or copy "
            f"the lake to a local folder and point {ENV_LAKE} at it"
        ) from exc


# ---------------------------------------------------------------- types


def _ibis_type(schema_type: str):
    import ibis.expr.datatypes as dt

    return {
        "id": dt.string,
        "text": dt.string,
        "date": dt.date,
        "timestamp": dt.Timestamp(),
        "int": dt.int32,
        "bigint": dt.int64,
        "float": dt.float64,
        "money": dt.Decimal(18, 2),
        "bool": dt.boolean,
    }[schema_type]


def _accepts(schema_type: str, found) -> bool:
    """Whether a lake column of type ``found`` (an ibis dtype) may be read as ``schema_type``."""
    if schema_type in ("id", "text"):
        return found.is_string()
    if schema_type == "date":
        return found.is_date()
    if schema_type == "timestamp":
        return found.is_timestamp() or found.is_date()
    if schema_type in ("int", "bigint"):
        return found.is_integer()
    if schema_type == "float":
        return found.is_floating() or found.is_decimal() or found.is_integer()
    if schema_type == "money":  # money stays DECIMAL: a float column would sum to 1e-15 residues
        if found.is_integer():
            return True
        return (
            found.is_decimal()
            and (found.scale or 0) <= 2
            and (found.precision is None or found.precision - (found.scale or 0) <= 16)
        )
    if schema_type == "bool":
        return found.is_boolean()
    raise KeyError(schema_type)


def table_columns(name: str) -> tuple[tuple[str, str, bool], ...]:
    """(column, schema type, required in a lake) of an engine table, in order."""
    k = KINDS[name]
    return tuple((f.name, f.type, f.required) for f in k.fields) + EXTRA_COLUMNS.get(name, ())


def _conform(name: str, raw, where: str):
    """Check a raw lake table against the kind's columns and cast it to their types. Returns the
    conformed ibis table, or raises CxStatsError listing every problem (dataset, column, expected
    and found type)."""
    import ibis

    found = raw.schema()
    problems: list[str] = []
    cols = []
    for col, typ, required in table_columns(name):
        want = _ibis_type(typ)
        if col not in found:
            if required:
                problems.append(f"{where}{name}/ has no column {col} (expected {want})")
            cols.append(ibis.null(want).name(col))
            continue
        have = found[col]
        if not _accepts(typ, have):
            hint = " (ids are text)" if typ == "id" else (" (money is kept DECIMAL)" if typ == "money" else "")
            problems.append(f"{where}{name}/ column {col}: expected {want}, found {have}{hint}")
            continue
        cols.append(raw[col] if have == want else raw[col].cast(want).name(col))
    if problems:
        raise _problems(problems)
    return raw.select(*cols)


def _problems(problems: list[str]) -> CxStatsError:
    if len(problems) == 1:
        return CxStatsError(problems[0])
    return CxStatsError(f"{len(problems)} problems: " + "; ".join(problems), problems)


def current_customers(customers):
    """Each customer's latest row by updated_at; a consent withdrawal wins ties (then the smallest
    e-mail, handle, name, so every engine keeps the same row)."""
    import ibis

    c = customers
    withdrawn_first = ibis.cases((c.marketing_consent == False, 0), else_=1)  # noqa: E712 (an ibis expression)
    w = ibis.window(
        group_by=c.customer_id,
        order_by=[
            ibis.desc(c.updated_at, nulls_first=False),
            withdrawn_first,
            ibis.asc(c.email, nulls_first=False),
            ibis.asc(c.handle, nulls_first=False),
            ibis.asc(c.name, nulls_first=False),
        ],
    )
    ranked = c.mutate(_cx_rn=ibis.row_number().over(w))
    return ranked.filter(ranked._cx_rn == 0).drop("_cx_rn")


# ---------------------------------------------------------------- erasures: the HMAC, natively


def _hmac_pads(key: bytes) -> tuple[bytes, bytes]:
    """RFC 2104 inner and outer pads of an HMAC-SHA256 key."""
    if len(key) > 64:
        key = hashlib.sha256(key).digest()
    key = key.ljust(64, b"\0")
    return bytes(b ^ 0x36 for b in key), bytes(b ^ 0x5C for b in key)


@dataclass(frozen=True)
class _Erasures:
    pads: tuple[bytes, bytes] | None
    by_what: dict[str, tuple[str, ...]]  # 'id' (customers) | 'respondent' | 'email' | 'handle' -> erased HMACs

    @property
    def any(self) -> bool:
        return any(self.by_what.values())


def _erasures(con, db: Path) -> _Erasures:
    erased = store.erased_hmacs(con)
    by_what = {
        "id": tuple(sorted(erased["customer"])),
        "respondent": tuple(sorted(erased["respondent"])),
        "email": tuple(sorted(erased["email"])),
        "handle": tuple(sorted(erased["handle"])),
    }
    if not any(by_what.values()):
        return _Erasures(None, by_what)
    key = store.erasure_key(db)
    if key is None:
        raise CxStatsError(
            f"{db} records erasures but its erasure key is missing: set {store.KEY_ENV} or restore "
            f"{store.erasure_key_path(db)} (without it erased people cannot be left out of the lake)"
        )
    return _Erasures(_hmac_pads(key), by_what)


def _duckdb_erasure_filter(rel, table: str, er: _Erasures):
    """The relation without rows whose identifiers match an erasure (DuckDB expressions, no SQL text)."""
    import duckdb

    F, C, Col = duckdb.FunctionExpression, duckdb.ConstantExpression, duckdb.ColumnExpression
    if er.pads is None:  # no erasures recorded: nothing to leave out
        return rel
    ipad, opad = er.pads
    for col, what in ERASURE_COLUMNS[table]:
        hashes, prefix = er.by_what[what], ("id" if what == "respondent" else what)
        if not hashes or col not in rel.columns:
            continue
        v = F("trim", Col(col))
        if what in ("email", "handle"):
            v = F("lower", v)
        if what == "handle":
            v = F("ltrim", v, C("@"))
        msg = F("encode", F("||", C(f"{prefix}:"), v))
        inner = F("unhex", F("sha256", F("||", C(ipad), msg)))
        mac = F("sha256", F("||", C(opad), inner))
        rel = rel.filter(Col(col).isnull() | ~mac.isin(*[C(h) for h in hashes]))
    return rel


def _spark_erasure_filter(df, table: str, er: _Erasures):
    """The DataFrame without rows whose identifiers match an erasure (Spark column functions)."""
    try:
        from pyspark.sql.connect.dataframe import DataFrame as ConnectFrame
    except ImportError:  # no Connect client installed: a classic DataFrame
        ConnectFrame = ()  # type: ignore[assignment,misc]
    # Connect's own functions (pyspark.sql.functions wants a local JVM here); the two modules share one API
    F: ModuleType
    if isinstance(df, ConnectFrame):
        from pyspark.sql.connect import functions as connect_functions

        F = connect_functions
    else:
        from pyspark.sql import functions as classic_functions

        F = classic_functions

    if er.pads is None:  # no erasures recorded: nothing to leave out
        return df
    ipad, opad = er.pads
    for col, what in ERASURE_COLUMNS[table]:
        hashes, prefix = er.by_what[what], ("id" if what == "respondent" else what)
        if not hashes or col not in df.columns:
            continue
        v = F.trim(F.col(col))
        if what in ("email", "handle"):
            v = F.lower(v)
        if what == "handle":
            v = F.regexp_replace(v, "^@+", "")
        msg = F.encode(F.concat(F.lit(f"{prefix}:"), v), "UTF-8")
        inner = F.unhex(F.sha2(F.concat(F.lit(bytearray(ipad)), msg), 256))
        mac = F.sha2(F.concat(F.lit(bytearray(opad)), inner), 256)
        df = df.filter(F.col(col).isNull() | ~mac.isin(list(hashes)))
    return df


# ---------------------------------------------------------------- the tables of one operation


class Tables:
    """The tables of one operation (see :func:`open_tables`). Each of LAKE_TABLES is opened, checked
    against the kind's columns and erasure-filtered the first time :meth:`table` asks for it, at
    most once per operation (an analysis that reads two datasets pays for two)."""

    def __init__(self, cfg: EngineConfig, viewer: Viewer, con, backend, opener):
        self.cfg = cfg
        self.kind = cfg.kind
        self.viewer = viewer
        self.con = con  # the DuckDB connection of --db
        self.backend = backend  # the ibis backend the lake tables live in
        self._opener = opener  # name -> the conformed ibis table (raises CxStatsError on a bad dataset)
        self._tables: dict[str, Any] = {}
        self._lock = threading.Lock()

    def table(self, name: str):
        """One of LAKE_TABLES as an ibis.Table (erasures left out, customers current). Opened on
        first use; a missing dataset or wrong column types raise CxStatsError here."""
        if name not in LAKE_TABLES:
            raise CxStatsError(
                f"no engine table {name!r}: use one of {', '.join(LAKE_TABLES)} "
                "(other tables come from the DuckDB file: t.local)"
            )
        with self._lock:
            t = self._tables.get(name)
            if t is None:
                t = self._tables[name] = self._opener(name)
        return t

    @property
    def opened(self) -> tuple[str, ...]:
        """The datasets opened so far, in the order they were first asked for."""
        return tuple(self._tables)

    def local(self, sql: str, params: list | tuple | None = None):
        """A query on the DuckDB file (``?`` parameters) as a pandas.DataFrame."""
        return self.con.execute(sql, list(params or [])).df()

    def small(self, frame):
        """A small local frame (pandas, pyarrow or dict) as a table the engine can join."""
        import ibis

        return ibis.memtable(frame)

    def execute(self, expr):
        """Run an expression on the engine; the result (an aggregate) as a pyarrow.Table."""
        return self.backend.to_pyarrow(expr)


def file_tables(cfg: EngineConfig, con, *, viewer: Viewer) -> Tables:
    """The DuckDB file's tables through a connection the caller already holds (kind duckdb: no
    second connection); opened lazily like :func:`open_tables`'."""
    import ibis

    if not isinstance(viewer, Viewer):
        raise CxStatsError("file_tables needs a Viewer")
    backend = ibis.duckdb.from_connection(con)
    return Tables(cfg, viewer, con, backend, lambda name: _duckdb_table(backend, name))


def _duckdb_table(backend, name: str):
    """One of LAKE_TABLES from the DuckDB file, with the engine's columns and types."""
    import ibis

    t = backend.table(name)
    if name == "customers":
        # the current row of each customer: store.current_customers_sql's rule (latest batch, then row)
        w = ibis.window(group_by=t.customer_id, order_by=[ibis.desc(t.batch_id), ibis.desc(t.row_no)])
        t = t.mutate(_cx_rn=ibis.row_number().over(w))
        t = t.filter(t._cx_rn == 0).drop("_cx_rn")
        b = backend.table("batches").select("batch_id", updated_at="loaded_at")
        t = t.left_join(b, "batch_id").drop("batch_id_right")
    cols = []
    for c, typ, _ in table_columns(name):
        want = _ibis_type(typ)
        cols.append(t[c] if t[c].type() == want else t[c].cast(want).name(c))
    return t.select(*cols)


def _lake_where(cfg: EngineConfig) -> str:
    return f"lake {cfg.lake}: "


def _dataset_path(cfg: EngineConfig, name: str) -> str:
    return cfg.lake_location().rstrip("/") + "/" + name


def _check_dataset(cfg: EngineConfig, name: str) -> None:
    """A local lake's dataset must be a folder holding Parquet files."""
    if not _lake_is_local(cfg.lake_location()):
        return
    d = Path(_dataset_path(cfg, name))
    if not d.is_dir():
        raise CxStatsError(
            f"{_lake_where(cfg)}missing dataset {name}/ (a folder of Parquet files); "
            "python -m cxstats lake export --to PATH writes every dataset"
        )
    if not any(d.rglob("*.parquet")):
        raise CxStatsError(f"{_lake_where(cfg)}dataset {name}/ holds no Parquet files (*.parquet)")


def _lake_table(cfg: EngineConfig, er: _Erasures, lake_con, backend, name: str):
    """One dataset of a lake read by DuckDB: checked, read, conformed, erasure-filtered."""
    import duckdb

    _check_dataset(cfg, name)
    try:
        rel = lake_con.read_parquet(
            _dataset_path(cfg, name) + "/**/*.parquet", hive_partitioning=True, union_by_name=True
        )
    except duckdb.Error as exc:
        hint = "" if _lake_is_local(cfg.lake_location()) else f"; {DUCKDB_REMOTE_HINT}"
        raise CxStatsError(f"{_lake_where(cfg)}cannot read dataset {name}/: {exc}{hint}") from exc
    raw_view = f"cx_raw_{name}"
    rel.create_view(raw_view)
    conformed = _conform(name, backend.table(raw_view), _lake_where(cfg))
    if er.any:
        view = f"cx_{name}"
        _duckdb_erasure_filter(rel, name, er).create_view(view)
        conformed = _conform(name, backend.table(view), _lake_where(cfg))
    return current_customers(conformed) if name == "customers" else conformed


# ---------------------------------------------------------------- Spark

_SPARK_LOCK = threading.Lock()
_SPARK_SESSIONS: dict[str, Any] = {}


def _require_spark_extra(master: str) -> None:
    try:
        import ibis.backends.pyspark  # noqa: F401
        import pyspark  # noqa: F401

        if master.startswith("sc://"):
            import pyspark.sql.connect.session  # noqa: F401  (needs grpcio, the connect part of the extra)
    except ImportError as exc:
        raise CxStatsError(f"{ENV_ENGINE}=spark: {SPARK_EXTRA} ({exc})") from exc


def _java() -> str | None:
    home = os.environ.get("JAVA_HOME")
    if home:
        j = Path(home) / "bin" / "java"
        if j.is_file() and os.access(j, os.X_OK):
            return str(j)
    return shutil.which("java")


def _check_reachable(master: str, timeout: float) -> None:
    m = re.match(r"^(spark|sc)://([^/:;]+)(?::(\d+))?", master)
    if not m:
        return
    host, port = m.group(2), int(m.group(3) or (7077 if m.group(1) == "spark" else 15002))
    try:
        with socket.create_connection((host, port), timeout=timeout):
            pass
    except OSError as exc:
        raise CxStatsError(
            f"{ENV_SPARK}={master}: Spark {'master' if m.group(1) == 'spark' else 'Connect server'} "
            f"{host}:{port} unreachable within {timeout:g} s ({exc}); start it or fix "
            f"{ENV_SPARK}"
        ) from exc


def spark_session(master: str):
    """The process's SparkSession for ``master`` (created once, then cached)."""
    _require_spark_extra(master)
    with _SPARK_LOCK:
        s = _SPARK_SESSIONS.get(master)
        if s is not None:
            return s
        if not master.startswith("sc://") and _java() is None:
            raise CxStatsError(
                f"{ENV_ENGINE}=spark with {ENV_SPARK}={master} needs Java 17: install it "
                "(e.g. apt-get install openjdk-17-jre-headless) or set JAVA_HOME"
            )
        _check_reachable(master, SPARK_CONNECT_TIMEOUT_S)
        from pyspark.sql import SparkSession

        try:
            if master.startswith("sc://"):
                # the Connect client's own builder: pyspark's classic builder would switch the whole
                # process to Connect mode (and refuse while a local session exists)
                from pyspark.sql.connect.session import SparkSession as ConnectSession

                s = ConnectSession.builder.remote(master).getOrCreate()
                s.conf.set("spark.sql.shuffle.partitions", str(SPARK_SHUFFLE_PARTITIONS))
                s.conf.set("spark.sql.session.timeZone", "UTC")
            else:
                b = (
                    SparkSession.builder.master(master)
                    .appName("cxstats")
                    .config("spark.ui.enabled", "false")
                    .config("spark.ui.showConsoleProgress", "false")
                    .config("spark.sql.shuffle.partitions", str(SPARK_SHUFFLE_PARTITIONS))
                    .config("spark.sql.session.timeZone", "UTC")
                    .config("spark.sql.ansi.enabled", "false")
                    # Ibis's to_pyarrow goes through toPandas, and small tables through createDataFrame:
                    # without Arrow (Spark's default) every row is pickled through py4j, 5.5 s for 50k
                    # rows here; Arrow moves columns (unsupported types fall back to the row path)
                    .config("spark.sql.execution.arrow.pyspark.enabled", "true")
                )
                if master.startswith("local"):
                    b = b.config("spark.driver.host", "127.0.0.1").config("spark.driver.bindAddress", "127.0.0.1")
                s = b.getOrCreate()
                s.sparkContext.setLogLevel("ERROR")
        except Exception as exc:  # the JVM did not start or the cluster refused us
            raise CxStatsError(
                f"{ENV_SPARK}={master}: Spark did not start ({str(exc).splitlines()[0][:300]}); "
                f"check {ENV_SPARK}, Java 17 and the pyspark version (4.0)"
            ) from exc
        _SPARK_SESSIONS[master] = s
        return s


# what a Spark cluster (and the driver, for local[N] and spark://) needs to read a lake URI: the Hadoop
# FileSystem of its scheme on the classpath (pyspark 4.0 ships Hadoop 3.4.1 client jars, nothing else)
SPARK_FILESYSTEMS = {
    "s3a": "hadoop-aws 3.4.1 and its AWS SDK bundle (spark.jars.packages=org.apache.hadoop:hadoop-aws:3.4.1) "
    "and S3 credentials (spark.hadoop.fs.s3a.* or the AWS default chain)",
    "s3": "hadoop-aws 3.4.1 and its AWS SDK bundle (spark.jars.packages=org.apache.hadoop:hadoop-aws:3.4.1), "
    "spark.hadoop.fs.s3.impl=org.apache.hadoop.fs.s3a.S3AFileSystem (or write the URI as s3a://) and S3 "
    "credentials (spark.hadoop.fs.s3a.* or the AWS default chain)",
    "gs": "the GCS connector (com.google.cloud.bigdataoss:gcs-connector, hadoop3 shaded jar) with "
    "spark.hadoop.fs.gs.impl=com.google.cloud.hadoop.fs.gcs.GoogleHadoopFileSystem",
    "abfss": "hadoop-azure 3.4.1 (spark.jars.packages=org.apache.hadoop:hadoop-azure:3.4.1) and the storage "
    "account's credentials (spark.hadoop.fs.azure.account.*)",
}
DUCKDB_REMOTE_HINT = (
    "check the URI and that DuckDB has credentials for it (a persistent secret, e.g. CREATE PERSISTENT "
    "SECRET cx_lake (TYPE s3, PROVIDER credential_chain) with the aws extension)"
)


def spark_filesystem_hint(lake: str, error: str = "") -> str:
    """What to fix when Spark cannot read a remote lake: the Hadoop FileSystem of the URI's scheme
    when the error says it is missing (or no error is given), else the URI and credentials."""
    scheme = _scheme(lake)
    missing = not error or any(
        w in error for w in ("No FileSystem for scheme", "ClassNotFoundException", "UnsupportedFileSystem")
    )
    if not missing:
        return "check the URI and the cluster's credentials for it"
    needs = SPARK_FILESYSTEMS.get(scheme, f"a Hadoop FileSystem for {scheme}:// on its classpath")
    return (
        f"Spark has no {scheme}:// file system here: the cluster (and this machine for local[N] and spark://) "
        f"needs {needs}; see the README's Engines section"
    )


def _spark_table(cfg: EngineConfig, er: _Erasures, session, backend, tag: str, views: list[str], name: str):
    """One dataset of the lake on Spark: checked, read, registered as temp views (listed in
    ``views``, dropped when the operation ends), conformed, erasure-filtered."""
    _check_dataset(cfg, name)
    path = _dataset_path(cfg, name)
    try:
        df = session.read.option("basePath", path).parquet(path)
    except Exception as exc:  # AnalysisException: path does not exist, not Parquet
        first = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else type(exc).__name__
        hint = (
            "" if _lake_is_local(cfg.lake_location()) else f"; {spark_filesystem_hint(cfg.lake_location(), str(exc))}"
        )
        raise CxStatsError(f"{_lake_where(cfg)}cannot read dataset {name}/: {first}{hint}") from exc
    raw_view = f"cx_raw_{name}_{tag}"
    views.append(raw_view)
    df.createOrReplaceTempView(raw_view)
    conformed = _conform(name, backend.table(raw_view), _lake_where(cfg))
    if er.any:
        view = f"cx_{name}_{tag}"
        views.append(view)
        _spark_erasure_filter(df, name, er).createOrReplaceTempView(view)
        conformed = _conform(name, backend.table(view), _lake_where(cfg))
    return current_customers(conformed) if name == "customers" else conformed


def _drop_spark_views(session, views: list[str]) -> None:
    for v in views:
        try:
            session.catalog.dropTempView(v)
        except Exception:  # a view that was never made, or a session gone: nothing to clean
            pass


# ---------------------------------------------------------------- opening


@contextmanager
def open_tables(cfg: EngineConfig, *, viewer: Viewer) -> Iterator[Tables]:
    """The tables of one operation (one per operation, like ``store.connect``): LAKE_TABLES from
    the configured engine, everything else from the DuckDB file through ``t.local`` and ``t.con``.

    Opening checks the engine (the erasure key, the Spark extra, Java, a reachable cluster; the
    session is started once per process); each dataset is opened, checked and erasure-filtered the
    first time ``t.table(name)`` asks for it, so a missing dataset or wrong column types raise
    CxStatsError there, with the same message. Spark temp views are dropped when the block ends.

    ``viewer`` is who asks; the analyses that read these tables filter by it (the engine hands out
    only the tables every role's analysis starts from)."""
    if not isinstance(viewer, Viewer):
        raise CxStatsError("open_tables needs a Viewer")
    if cfg.kind not in ENGINES:
        raise CxStatsError(f"unknown engine kind {cfg.kind!r}: use one of {', '.join(ENGINES)}")
    import ibis

    with store.connect(cfg.db) as con:
        if cfg.kind == "duckdb":
            yield file_tables(cfg, con, viewer=viewer)
            return
        er = _erasures(con, cfg.db)
        if cfg.kind == "lake":
            import duckdb

            lake_con = duckdb.connect()
            try:
                lake_con.execute("SET TimeZone = 'UTC'")
                if not _lake_is_local(cfg.lake_location()):
                    _load_duckdb_extension(lake_con, cfg.lake_location())
                lake_backend = ibis.duckdb.from_connection(lake_con)
                yield Tables(
                    cfg,
                    viewer,
                    con,
                    lake_backend,
                    lambda name: _lake_table(cfg, er, lake_con, lake_backend, name),
                )
            finally:
                lake_con.close()
            return
        session = spark_session(cfg.spark_master())
        spark_backend = ibis.pyspark.connect(session)
        tag = uuid.uuid4().hex[:8]
        views: list[str] = []
        try:
            yield Tables(
                cfg,
                viewer,
                con,
                spark_backend,
                lambda name: _spark_table(cfg, er, session, spark_backend, tag, views, name),
            )
        finally:
            _drop_spark_views(session, views)


# ---------------------------------------------------------------- lake export

PARTITIONED_BY_YEAR = {"purchases": "order_date", "feedback": "date"}
ENGAGEMENT_TABLES = ("engagement", "engagement_answers", "engagement_items")


@dataclass(frozen=True)
class LakeExport:
    """What ``lake export`` wrote: rows per dataset."""

    path: Path
    rows: dict[str, int]

    def summary(self) -> str:
        per = ", ".join(f"{name} {n:,}" for name, n in self.rows.items())
        return f"lake written to {self.path}: {per} (Parquet; purchases and feedback partitioned by year)"


def _export_select(name: str) -> str:
    """The SELECT of one dataset from the DuckDB file (no user input in it)."""
    if name not in LAKE_TABLES:
        return f"SELECT * FROM {name} ORDER BY ALL"
    cols = [c for c, _, _ in table_columns(name)]
    if name == "customers":
        inner = ", ".join(f"c.{c}" for c in cols if c != "updated_at")
        return (
            f"SELECT {inner}, b.loaded_at AS updated_at FROM ({store.current_customers_sql()}) c "
            "LEFT JOIN batches b USING (batch_id) ORDER BY c.customer_id"
        )
    sel = ", ".join(cols)
    if name in PARTITIONED_BY_YEAR:
        sel += f", year({PARTITIONED_BY_YEAR[name]}) AS year"
    return f"SELECT {sel} FROM {name} ORDER BY ALL"


def export_lake(
    db: str | os.PathLike | None, to: str | os.PathLike, *, viewer: Viewer, include_engagement: bool = False
) -> LakeExport:
    """Write the DuckDB file's LAKE_TABLES (and, with ``include_engagement``, the survey tables) as a
    Parquet lake at ``to``: purchases and feedback partitioned by year (``year=2026/``), customers'
    current rows with ``updated_at``, erased people left out. Admin only. Written into a temporary
    folder beside ``to`` and renamed at the end, so a failure leaves nothing half-written; a
    non-empty ``to`` is refused."""
    import shutil as _shutil

    viewer.require("admin")
    target = Path(to)
    if _URI.match(str(to)) and not str(to).lower().startswith("file://"):
        raise CxStatsError(f"--to {to}: lake export writes a local folder; copy it to {to} afterwards")
    target = _local_path(str(to))
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise CxStatsError(
            f"--to {target}: {'is a file' if not target.is_dir() else 'folder is not empty'}; "
            "choose a new folder (lake export never overwrites)"
        )
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.partial-{uuid.uuid4().hex[:8]}")
    names = list(LAKE_TABLES) + (list(ENGAGEMENT_TABLES) if include_engagement else [])
    rows: dict[str, int] = {}
    try:
        with store.connect(db) as con:
            er = _erasures(con, store.db_path(db))
            tmp.mkdir()
            for name in names:
                rel = con.sql(_export_select(name))
                if er.any and name in ERASURE_COLUMNS:
                    rel = _duckdb_erasure_filter(rel, name, er)
                n = rel.count("*").fetchall()[0][0]
                d = tmp / name
                d.mkdir()
                if name in PARTITIONED_BY_YEAR and n:
                    rel.to_parquet(str(d), partition_by=["year"])
                else:
                    if name in PARTITIONED_BY_YEAR:  # no rows: one empty file keeps the schema
                        rel = rel.project(", ".join(c for c in rel.columns if c != "year"))
                    rel.to_parquet(str(d / "part-0.parquet"))
                rows[name] = int(n)
        os.replace(tmp, target)  # an empty target folder is replaced; nothing else is ever overwritten
    except BaseException:
        _shutil.rmtree(tmp, ignore_errors=True)
        raise
    return LakeExport(target, rows)
