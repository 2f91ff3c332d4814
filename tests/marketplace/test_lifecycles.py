"""The lifecycles' declarations are the rules, and README shows them as they are."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from documents.lifecycles import LIFECYCLES, Lifecycle, Party, readme_section

README = Path(__file__).resolve().parents[2] / "README.md"


def test_readme_shows_every_lifecycle_as_declared() -> None:
    assert readme_section() in README.read_text(), (
        "README's Deal lifecycles diagrams are out of date: paste readme_section() in"
    )


def test_every_state_is_reachable_and_every_lifecycle_ends() -> None:
    for lifecycle in LIFECYCLES:
        graph = lifecycle.graph()
        reached = {lifecycle.initial}
        frontier = [lifecycle.initial]
        while frontier:
            for target in graph[frontier.pop()]:
                if target not in reached:
                    reached.add(target)
                    frontier.append(target)
        every = set(lifecycle.every_state())
        assert reached == every, (lifecycle.name, every - reached)
        assert lifecycle.final() or _ends_unless_the_system_reopens(lifecycle), (
            f"{lifecycle.name} never ends"
        )


def _ends_unless_the_system_reopens(lifecycle: Lifecycle[Any]) -> bool:
    """A state no party leaves, only gigql itself (a closed partner wallet that money
    came back to is reopened frozen: it must not hold money while closed)."""
    graph = lifecycle.graph()
    return any(
        targets
        and all(m.by == {Party.SYSTEM} for m in lifecycle.moves.values() if state in m.sources)
        for state, targets in graph.items()
    )
