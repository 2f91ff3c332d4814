"""The repository keeps its promises about how it is run."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


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


LAYERS = {
    "documents": 0,
    "integrations": 1,
    "realtime": 1,
    "resolvers": 2,
    "schema": 3,
    "server": 4,
}
"""The layers, lowest first: a module imports from its own layer or the ones below."""

MOST_MODULES_IN_A_PACKAGE = 15


def _imported_modules(path: Path) -> list[tuple[int, str]]:
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.lineno, node.module))
        elif isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name) for alias in node.names)
    return found


def test_no_module_imports_from_a_layer_above_it() -> None:
    upward = [
        f"{path.relative_to(ROOT)}:{line} imports {module}"
        for layer, rank in LAYERS.items()
        for path in sorted((ROOT / layer).rglob("*.py"))
        for line, module in _imported_modules(path)
        if LAYERS.get(module.split(".")[0], -1) > rank
    ]
    assert upward == []


def test_every_package_folder_stays_small_enough_to_read() -> None:
    folders = [ROOT / name for name in [*LAYERS, "tests", "bench"]]
    crowded = {
        str(init.parent.relative_to(ROOT)): count
        for folder in folders
        for init in folder.rglob("__init__.py")
        if (count := len([p for p in init.parent.glob("*.py") if p.name != "__init__.py"]))
        > MOST_MODULES_IN_A_PACKAGE
    }
    assert crowded == {}


STATUS_WRITERS = {
    "resolvers/common/transitions.py": "tasks, offers, bookings and disputes: `transition`",
    "resolvers/payments/escrow/escrows.py": "escrows: `change_escrow`",
    "resolvers/payments/escrow/milestones.py": "milestones: `move_milestone`",
    "resolvers/accounts/admin.py": "a user's status: suspended and reinstated by admins",
    "resolvers/accounts/own_account.py": "a user's status, and deliveries to them: deleted",
    "resolvers/payments/withdrawals.py": "withdrawals",
    "resolvers/payments/identity.py": "a profile's identity verification status",
    "resolvers/notifications/outbox.py": "deliveries: sent, skipped, dead, retried",
    "resolvers/notifications/scheduled.py": "scheduled messages: done, dropped, cancelled",
    "resolvers/partners/webhooks/sender.py": "partner webhook deliveries: sent, dead, redelivered",
    "resolvers/payments/webhooks/inbox.py": "Stripe's events: processed, ignored, failed, dead, revived",
}
"""Every module that writes a status, and whose. A deal's status (documents/lifecycles.py)
is written only by the function that checks its declaration."""


def _status_keys_set(path: Path) -> list[str]:
    """The keys naming a status in the `$set` documents the module writes."""
    found: list[str] = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if not isinstance(node, ast.Dict):
            continue
        for key, value in zip(node.keys, node.values, strict=True):
            if (
                isinstance(key, ast.Constant)
                and key.value == "$set"
                and isinstance(value, ast.Dict)
            ):
                names = [ast.unparse(k) for k in value.keys if k is not None]
                found.extend(name for name in names if "status" in name)
    return found


def test_only_the_declared_writers_change_a_status() -> None:
    writers = {
        str(path.relative_to(ROOT))
        for path in (ROOT / "resolvers").rglob("*.py")
        if _status_keys_set(path)
    }
    assert writers == set(STATUS_WRITERS)
