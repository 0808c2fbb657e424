"""House rules: the library never imports streamlit (core logic knows nothing of the UI); no test or
benchmark imports a test module (shared helpers live in modules without a test_ name)."""

import ast
import subprocess
import sys
from pathlib import Path

PKG = Path(__file__).resolve().parents[1] / "cxstats"


def _imported(path: Path) -> list[str]:
    """The modules ``path`` imports (absolute imports, any depth of the file)."""
    names = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.append(node.module)
    return names


def test_no_module_of_cxstats_imports_streamlit():
    offenders = [
        f"{path.name}: {n}"
        for path in sorted(PKG.rglob("*.py"))
        for n in _imported(path)
        if n.split(".")[0] == "streamlit"
    ]
    assert offenders == []


def test_no_test_or_benchmark_imports_a_test_module():
    """A helper another file needs goes in a module without a test_ name (tests/app_fixtures.py,
    engine_fixtures.py, ...): importing a test module runs its tests' collection twice and hides
    shared code among tests."""
    root = PKG.parent
    offenders = [
        f"{path.relative_to(root)}: {n}"
        for folder in ("tests", "benchmarks")
        for path in sorted((root / folder).glob("*.py"))
        for n in _imported(path)
        if n.split(".")[-1].startswith("test_") or n.split(".")[0].startswith("test_")
    ]
    assert offenders == []


def test_importing_every_module_leaves_streamlit_unloaded():
    code = (
        "import importlib, pkgutil, sys, cxstats\n"
        "for m in pkgutil.iter_modules(cxstats.__path__):\n"
        "    importlib.import_module('cxstats.' + m.name)\n"
        "print('streamlit' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=PKG.parent)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"
