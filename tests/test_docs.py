"""The documentation says what the code does: README's commands parse, README stays a guide, and
bench/README.md states the figures bench/results/ holds."""

import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from s2r.cli import build_parser

ROOT = Path(__file__).resolve().parent.parent


def _commands(path: Path) -> list[str]:
    """The `s2r ...` lines of a markdown file's bash blocks, continuation lines joined."""
    blocks = re.findall(r"```bash\n(.*?)```", path.read_text(), flags=re.S)
    text = "\n".join(blocks).replace("\\\n", " ")
    lines = [line.split("#")[0].split("&&") for line in text.splitlines()]
    return [part.strip() for parts in lines for part in parts if part.strip().startswith("s2r ")]


@pytest.mark.parametrize("doc", ["README.md", "docs/calibration.md"])
def test_every_command_in_the_docs_parses(doc):
    commands = _commands(ROOT / doc)
    assert commands, f"no s2r commands in {doc}?"
    for command in commands:
        argv = shlex.split(command.replace("$D", "D"))[1:]
        try:
            build_parser().parse_args(argv)
        except SystemExit as exc:
            raise AssertionError(f"{doc}: `{command}` does not parse") from exc


def test_readme_is_a_guide_not_a_notebook():
    assert len((ROOT / "README.md").read_text().splitlines()) <= 300


def test_bench_readme_states_what_the_results_hold():
    out = subprocess.run([sys.executable, str(ROOT / "bench" / "readme.py"), "--check"], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
