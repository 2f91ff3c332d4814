"""`gigql serve` prepares every trusted document at start-up, before anything starts: a
manifest entry that would not run stops it with one line naming the file and the entry."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from tests.support.gigql_process import assert_one_line_error, gigql_env, run_gigql

GOOD = "query Settings { marketplaceSettings { categories } }"
# Deep enough pages to be over the default cost limit (10,000): 100 x 100 x 100 tasks.
COSTLY = (
    "query Costly { tasks(first: 100) { edges { node { offers(first: 100) { edges { node {"
    " id } } } } } } }"
)


async def _serve_with(tmp_path: Path, manifest: object, **extra: str) -> str:
    path = tmp_path / "persisted-documents.json"
    path.write_text(manifest if isinstance(manifest, str) else json.dumps(manifest))
    env = gigql_env(tmp_path / "data", GIGQL_TRUSTED_DOCUMENTS=str(path), GIGQL_PORT="0", **extra)
    result = await asyncio.to_thread(run_gigql, "serve", env=env, cwd=tmp_path)
    return assert_one_line_error(result, "GIGQL_TRUSTED_DOCUMENTS", str(path))


@pytest.mark.parametrize(
    ("entries", "expected"),
    [
        (
            {"good": GOOD, "bad-field": "{ noSuchField }"},
            ["'bad-field'", "GRAPHQL_VALIDATION_FAILED", "noSuchField"],
        ),
        ({"unparsable": "query {"}, ["'unparsable'", "GRAPHQL_PARSE_FAILED"]),
        ({"fragment-only": "fragment F on Query { __typename }"}, ["'fragment-only'"]),
        ({"not-text": 42}, ["'not-text'", "must be a string"]),
        ({"has:colon": GOOD}, ["has:colon", "without a colon"]),
        ("[1, 2]", ["JSON object"]),
        ("{not json", ["not JSON"]),
    ],
)
async def test_start_refuses_a_manifest_entry_that_would_not_run(
    tmp_path: Path, entries: object, expected: list[str]
) -> None:
    line = await _serve_with(tmp_path, entries)
    for part in expected:
        assert part in line, line


async def test_start_refuses_an_entry_over_the_cost_limit(tmp_path: Path) -> None:
    line = await _serve_with(tmp_path, {"costly": COSTLY})
    assert "'costly'" in line and "QUERY_TOO_COSTLY" in line, line
