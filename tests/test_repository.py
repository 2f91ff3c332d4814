"""The repository keeps its promises about how it is run."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _readme_commands() -> list[str]:
    return re.findall(r"```sh\n(.+?)\n```", (ROOT / "README.md").read_text())


def test_readme_starts_with_the_serve_and_test_commands() -> None:
    serve, test = _readme_commands()[:2]
    assert serve.endswith("gigql serve")
    assert test.endswith("python -m pytest")
    head = (ROOT / "README.md").read_text()[:600]
    assert serve in head and test in head


def test_ci_runs_the_readme_test_command_and_the_linters() -> None:
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    assert _readme_commands()[1] in ci
    assert ".venv/bin/ruff check ." in ci and ".venv/bin/mypy" in ci
