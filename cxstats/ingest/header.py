"""The header and the mapping: which row is the header, which column is which field."""

from __future__ import annotations

from cxstats import CxStatsError, readers, store
from cxstats.schema import KINDS, header_lookup, normalise_header


def _kind(kind: str):
    if kind not in KINDS:
        raise CxStatsError(f"unknown kind {kind!r}; use one of {', '.join(KINDS)}")
    return KINDS[kind]


def _limits(con) -> tuple[int, int, tuple[str, ...]]:
    items: tuple[str, ...] = ()
    if con is None:
        mb, rows = float(store.DEFAULT_SETTINGS["max_file_mb"]), int(store.DEFAULT_SETTINGS["max_rows"])
    else:
        st = store.settings(con)
        mb, rows, items = st.max_file_mb, st.max_rows, st.index_items
    return int(mb * 1_000_000), rows, items


def _resolve_mapping(kind: str, header: list[str], user: dict[str, str] | None) -> tuple[list[str], dict[int, str]]:
    """Column labels as the user sees them, and position -> field/'item'/'ignore' for the mapped ones."""
    k = KINDS[kind]
    lookup = header_lookup(kind)
    labels = [h if h else f"column {readers.column_letter(i)}" for i, h in enumerate(header)]
    seen: dict[str, int] = {}
    for i, lab in enumerate(labels):  # two columns with one header: tell them apart
        if lab in seen:
            labels[i] = f"{lab} ({readers.column_letter(i)})"
        seen.setdefault(lab, i)
    valid = set(k.field_names) | {"ignore"} | ({"item"} if kind == "engagement" else set())
    user = dict(user or {})
    by_norm = {normalise_header(lab): i for i, lab in enumerate(labels)}
    forced: dict[int, str] = {}
    for src, dst in user.items():
        if dst not in valid:
            raise CxStatsError(f"--map {src}={dst}: {kind} has no field {dst!r}; fields are {', '.join(sorted(valid))}")
        pos = labels.index(src) if src in labels else by_norm.get(normalise_header(src))
        if pos is None:
            raise CxStatsError(
                f"--map {src}={dst}: the file has no column {src!r}; its columns are "
                f"{', '.join(repr(lab) for lab in labels)}"
            )
        forced[pos] = dst
    mapped: dict[int, str] = {}
    for i, h in enumerate(header):
        if i in forced:
            mapped[i] = forced[i]
        elif h and normalise_header(h) in lookup:
            mapped[i] = lookup[normalise_header(h)]
    return labels, mapped


def _header_score(kind: str, user: dict[str, str] | None):
    lookup = header_lookup(kind)
    user_keys = {normalise_header(s) for s in (user or {})}

    def score(cells: list[str]) -> int:
        found = {lookup[n] for n in (normalise_header(c) for c in cells if c) if n in lookup}
        found |= {n for n in (normalise_header(c) for c in cells if c) if n in user_keys}
        return len(found)

    return score


def _missing_column_message(kind: str, f: str) -> str:
    syn = [s for s in KINDS[kind].field(f).synonyms][:4]
    also = f" (or a column named {', '.join(syn)})" if syn else ""
    return (
        f"missing column {f!r}{also}: a {kind} file needs it; rename the column or map it with "
        f"--map 'SOURCE={f}' (is this a {kind} file?)"
    )
