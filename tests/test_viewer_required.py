"""House rule (DESIGN.md "Layout"): every public function that returns data or writes takes `viewer` as a
required keyword-only argument; no default quietly acts as admin. Table-driven over the library's modules, so
a new function that reads the database without a viewer fails here until it takes one (or is listed below
with the reason it needs none)."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import pytest

import cxstats
from cxstats import ADMIN, AccessDenied, Viewer, store

# parameters that mean "this function reads or writes the database"
DB_PARAMS = {"con", "db", "db_or_con"}

# functions that touch the database without a viewer, and why that is right
EXEMPT = {
    # login machinery: it runs before there is a viewer, and returns no survey or customer data
    **{
        f"auth.{n}": "login, before a viewer exists"
        for n in (
            "lock_state",
            "record_failure",
            "record_success",
            "address_state",
            "record_address_failure",
            "attempt_login",
            "session_generation",
            "session_is_current",
            "end_sessions",
            "token_login",
        )
    },
    # the demo is built by the command line's demo command or by the app on a fresh database
    "demo.build_demo": "writes generated demo data only (the CLI's demo, the app's first start)",
    "demo.ensure_demo": "writes generated demo data only when the database is empty",
    "demo.is_demo": "a yes/no about the batches' origin",
    "engine.config_from_env": "reads the environment, not the database",
    # steps inside a checked operation: their callers take the viewer
    "export.export_frame": "a step of export_bytes/write_advocates, which check the viewer",
    "governance.snapshot": "a step of load and undo, which check the viewer",
    "governance.guard_groups": "a step of load and undo, which check the viewer",
    "governance.unit_histories": "unit ids and dates for the re-organisation steps",
    "metrics.scope": "the settings' thresholds, no data",
    "metrics.engine_config": "which engine runs the aggregation, no data",
    "customer_aggregates.database_path": "the database file's path, no data",
    "customer_aggregates.day_totals_usable": "whether the derived day totals are fresh, no data",
    "value.backtest_window": "the backtest's dates (first order date, as-of), a step of customer_value",
    "advocates.latest_order_date": "one date (the default as-of), no person's data",
    "programme.holdout_lists": "a step of programme_effect, which checks the viewer",
    "quality.data_version": "a cache key (counts and ids of batches), no data",
    # the storage layer: its callers check the viewer (set_setting and undo check it themselves)
    **{
        f"store.{n}": "storage layer, called by functions that check the viewer"
        for n in (
            "migrate",
            "settings",
            "retention_months",
            "list_batches",
            "find_active_hash",
            "load_batch",
            "purchases_fingerprint",
            "order_totals_fresh",
            "sync_order_totals",
            "known_units",
            "table_fingerprint",
            "held_out",
            "record_holdout",
            "sync_unit_map",
            "unit_mapping",
            "erased_hmacs",
            "mark_rewrite_pending",
            "scrub_written_files",
            "record_written_file",
            "derived_fresh",
            "mark_derived_fresh",
        )
    },
}

# helpers that take a viewer only to turn it into something else (SQL parameters), returning no data
VIEWER_HELPERS = {"store.viewer_units": "the parameters of store.VIEWER_UNITS_SQL"}

MODULES = sorted(m.name for m in pkgutil.iter_modules(cxstats.__path__) if m.name not in ("__main__", "cli"))


def _public_functions(name: str):
    mod = importlib.import_module(f"cxstats.{name}")
    for fname, f in sorted(vars(mod).items()):
        if not fname.startswith("_") and inspect.isfunction(f) and f.__module__ == mod.__name__:
            yield f"{name}.{fname}", inspect.signature(f).parameters


def _required_keyword(params) -> bool:
    v = params.get("viewer")
    return v is not None and v.kind is inspect.Parameter.KEYWORD_ONLY and v.default is inspect.Parameter.empty


@pytest.mark.parametrize("module", MODULES)
def test_functions_that_touch_the_database_take_a_required_keyword_viewer(module):
    missing = [
        qual
        for qual, params in _public_functions(module)
        if DB_PARAMS & set(params) and qual not in EXEMPT and not _required_keyword(params)
    ]
    assert missing == [], (
        f"take `*, viewer: Viewer` (required, keyword-only) or list with a reason in EXEMPT: {missing}"
    )


@pytest.mark.parametrize("module", MODULES)
def test_no_viewer_has_a_default_or_is_positional(module):
    loose = [
        qual
        for qual, params in _public_functions(module)
        if "viewer" in params and not _required_keyword(params) and qual not in VIEWER_HELPERS
    ]
    assert loose == []


def test_the_exemptions_name_real_functions():
    known = {qual for m in MODULES for qual, _ in _public_functions(m)}
    stale = sorted(q for q in {**EXEMPT, **VIEWER_HELPERS} if q not in known)
    assert stale == [], f"EXEMPT lists functions that no longer exist: {stale}"


def test_set_setting_and_undo_always_check_the_viewer(db):
    leader = Viewer("leader", ())
    with store.connect(db) as con:
        with pytest.raises(TypeError):
            store.set_setting(con, "min_group", 6)  # no viewer: refused, never skipped
        with pytest.raises(AccessDenied):
            store.set_setting(con, "min_group", 6, viewer=leader)
        with pytest.raises(TypeError):
            store.undo(con, 1)
        with pytest.raises(AccessDenied):
            store.undo(con, 1, viewer=leader)
        store.set_setting(con, "min_group", 6, viewer=ADMIN)
        assert store.settings(con).min_group == 6
