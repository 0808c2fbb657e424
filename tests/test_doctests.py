"""Every docstring example in the library runs (docs that tests keep honest, issue 12 item 5)."""

from __future__ import annotations

import doctest
import importlib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# every cxstats module whose source holds a docstring example
MODULES = sorted(
    ".".join(p.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
    for p in (ROOT / "cxstats").rglob("*.py")
    if ">>>" in p.read_text(encoding="utf-8")
)


def test_the_library_has_examples():
    assert len(MODULES) >= 8


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_run(name):
    mod = importlib.import_module(name)
    result = doctest.testmod(mod, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0
    assert result.failed == 0
