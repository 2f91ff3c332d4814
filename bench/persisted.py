"""A trusted document run by its id, against the same document sent as text.

Run from the repository root: `python -m bench.persisted` (about a minute; needs `wrk`).
gigql runs as `bench.run` runs it (production settings, one uvicorn worker) with a
trusted-documents manifest of one query (GIGQL_TRUSTED_DOCUMENTS, mode `allow`), and wrk
posts, in the same run and on the same server: the query's text (the yardstick: found in
the prepared-documents cache after the first request), then `{"documentId": ...}` naming
it. The difference is what resolving an id costs on top of the cache hit a text gets.
"""

from __future__ import annotations

import argparse
import hashlib
import json
from dataclasses import asdict, dataclass
from typing import Any

from bench.harness import (
    FIGURE_ALIGNMENT,
    FIGURE_HEADINGS,
    LoadResult,
    add_load_arguments,
    check_load_arguments,
    expect,
    figure_cells,
    load,
    load_average_before,
    load_options,
    machine_facts,
    machine_markdown,
    run_and_report,
    serve,
    workspace,
)

QUERY = "query Settings { marketplaceSettings { categories fees { customerFeeBp } } }"


@dataclass(frozen=True)
class Report:
    machine: dict[str, str]
    rows: list[LoadResult]


def run(args: argparse.Namespace) -> Report:
    options = load_options(args)
    load_before = load_average_before()
    document_id = hashlib.sha256(QUERY.encode()).hexdigest()
    by_text: dict[str, Any] = {"query": QUERY}
    by_id: dict[str, Any] = {"documentId": f"sha256:{document_id}"}
    with workspace() as space:
        manifest = space.workdir / "persisted-documents.json"
        manifest.write_text(json.dumps({document_id: QUERY}))
        env = {**space.gigql_environment("WARNING"), "GIGQL_TRUSTED_DOCUMENTS": str(manifest)}
        app = "server.cli:app_from_environment"
        with serve("gigql", app, space.workdir, env, factory=True) as server:
            text_answer = expect(server, by_text, None, lambda answer: "data" in answer)
            expect(server, by_id, None, lambda answer: answer == text_answer)
            rows = [
                load(options, server, by_text, "text", None, space.database_pid),
                load(options, server, by_id, "documentId", None, space.database_pid),
            ]
    return Report(machine_facts(options, load_before), rows)


def markdown(report: Report) -> str:
    lines = [
        f"| sent | {FIGURE_HEADINGS} |",
        f"| --- | {FIGURE_ALIGNMENT} |",
        *(f"| {row.query} | {' | '.join(figure_cells(row))} |" for row in report.rows),
        "",
        *machine_markdown(report.machine),
    ]
    return "\n".join(lines)


def as_json(report: Report) -> dict[str, Any]:
    return {"machine": report.machine, "rows": [asdict(row) for row in report.rows]}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench.persisted", description=__doc__.split("\n\n")[0] if __doc__ else None
    )
    add_load_arguments(parser)
    args = parser.parse_args(argv)
    check_load_arguments(parser, args)
    run_and_report(lambda: run(args), markdown, as_json, args.json)


if __name__ == "__main__":
    main()
