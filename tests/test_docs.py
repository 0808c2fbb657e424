"""Documentation that tests keep honest: the README's command-line block and first commands."""

import re
from pathlib import Path

import pytest

from cxstats.__main__ import build_parser

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")


def _subparsers():
    parser = build_parser()
    action = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction")
    return action.choices


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
