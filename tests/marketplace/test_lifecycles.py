"""The lifecycles' declarations are the rules, and README shows them as they are."""

from __future__ import annotations

from pathlib import Path

from documents.lifecycles import LIFECYCLES, readme_section

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
        assert lifecycle.final(), f"{lifecycle.name} never ends"
