"""Documentation that tests keep honest: the README's command-line block and first commands."""

import re
from pathlib import Path

import pytest

from cxstats.__main__ import build_parser

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")


def _subparsers(parser=None, prefix=""):
    """Every command's parser by its name; a command with commands of its own ('lake export')
    by the full name."""
    parser = parser or build_parser()
    action = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction")
    out = {}
    for name, sub in action.choices.items():
        if any(a.__class__.__name__ == "_SubParsersAction" for a in sub._actions):
            out.update(_subparsers(sub, f"{prefix}{name} "))
        else:
            out[f"{prefix}{name}"] = sub
    return out


def _readme_usage(command: str) -> str:
    m = re.search(rf"^python -m cxstats {command}\b.*$", README, re.M)
    assert m, f"README has no usage line for {command}"
    return m.group(0)


@pytest.mark.parametrize("command", sorted(_subparsers()))
def test_readme_lists_every_option_of(command):
    usage = _readme_usage(command)
    for action in _subparsers()[command]._actions:
        for flag in action.option_strings:
            if flag.startswith("--") and flag != "--help":
                assert flag in usage, f"{flag} of '{command}' missing from README"


def test_readme_lists_no_option_the_parser_lacks():
    for command, sub in _subparsers().items():
        known = {f for a in sub._actions for f in a.option_strings}
        for flag in re.findall(r"\[(--[a-z-]+)", _readme_usage(command)):
            assert flag in known, f"README shows {flag} for '{command}' but the CLI has no such option"


def test_readme_starts_with_the_two_fresh_machine_commands():
    block = re.search(r"```bash\n(.*?)```", README, re.S).group(1).splitlines()
    assert block[0].startswith("make run") and block[1].startswith("make test")
    makefile = (ROOT / "Makefile").read_text()
    assert re.search(r"^run:", makefile, re.M) and re.search(r"^test:", makefile, re.M)
    assert "make test" in (ROOT / ".ci" / "run").read_text()


# ---------------------------------------------------------------- docs/DEVELOPING.md's API table


def _api_rows():
    text = (ROOT / "docs" / "DEVELOPING.md").read_text(encoding="utf-8")
    table = text.split("## Module owners and public API", 1)[1]
    for line in table.splitlines()[3:]:
        if not line.startswith("|"):
            break
        module, api = [c.strip() for c in line.strip("|").split("|", 1)]
        yield module, api


def _documented_calls(api: str):
    """(name, [parameter names]) per documented function; None for 'any parameters' (`f(...)`)."""
    spans = re.findall(r"`([^`]+)`", api) or [s.strip() for s in api.split(",")]
    for span in spans:
        m = re.match(r"^([a-z_][a-z0-9_]*)(?:\((.*?)\))?", span)
        if not m or span.startswith("."):
            continue
        args = m.group(2)
        if args is None or args.strip() == "...":
            yield m.group(1), None
            continue
        names = []
        for part in args.split(","):
            name = re.split(r"[:=]", part.strip())[0].strip()
            if name and name not in ("*", "...") and not name.startswith("'"):
                names.append(name)
        yield m.group(1), names


@pytest.mark.parametrize("module, api", list(_api_rows()), ids=lambda v: v if len(v) < 20 else "")
def test_developing_api_table_matches_the_code(module, api):
    import importlib
    import inspect

    mod = importlib.import_module(f"cxstats.{module}")
    for name, params in _documented_calls(api):
        assert hasattr(mod, name), f"docs/DEVELOPING.md lists {module}.{name}, which does not exist"
        if params is None:
            continue
        real = inspect.signature(getattr(mod, name)).parameters
        missing = [p for p in params if p not in real]
        assert not missing, f"{module}.{name}: documented parameters {missing} are not in {list(real)}"


def test_design_cli_block_matches_the_parser():
    """DESIGN.md's command-line block (the contract, beside the repo) lists each command's options."""
    design = ROOT.parent / "shared" / "DESIGN.md"
    if not design.exists():
        pytest.skip("DESIGN.md lives beside the repository (../shared), not in a clean clone")
    block = design.read_text(encoding="utf-8").split("## Command line", 1)[1].split("```")[1]
    subs = _subparsers()
    for command, sub in subs.items():
        m = re.search(rf"^python -m cxstats {command}\b.*$", block, re.M)
        if not m:
            continue  # a command DESIGN.md does not pin (none today)
        known = {f for a in sub._actions for f in a.option_strings}
        for flag in re.findall(r"\[(--[a-z-]+)", m.group(0)):
            assert flag in known, f"DESIGN.md pins {flag} for '{command}' but the CLI has no such option"
