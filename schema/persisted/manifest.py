"""Trusted-documents manifests: the operations a front end was built with, read once at
start-up.

`@graphql-codegen/client-preset` (`persistedDocuments: true`) writes
`persisted-documents.json`, and Relay's compiler (`--persist-output`) writes
`persisted_queries.json`: both a JSON object from a document's id (a hash, or any string)
to its text. Every entry is parsed, measured against the limits and validated against the
schema here, once, and its prepared document pinned in the schema's cache: a manifest
that would fail at run time stops the start instead, naming the entry.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import orjson
from graphql import GraphQLSchema

from schema.common.prepared import Prepared, PreparedDocuments

MAX_ID_LENGTH = 200
"""Longer ids are refused: a client-preset's is 64 characters, Relay's 32."""


class ManifestError(Exception):
    """Why a manifest cannot be served, in one line that names the file and entry."""


@dataclass(frozen=True, slots=True)
class Manifest:
    texts: Mapping[str, str] = field(default_factory=dict)
    """Each document's text by its id."""
    trusted: frozenset[str] = frozenset()
    """The texts themselves: a request that sends one of them verbatim sends a trusted
    document, whether by id or in full."""

    def text(self, document_id: str) -> str | None:
        """The text of an id: as listed, or a `sha256:<hex>` id (GraphQL over HTTP's
        prefixed form) of a document listed under its bare hex hash."""
        text = self.texts.get(document_id)
        if text is None and document_id.startswith("sha256:"):
            text = self.texts.get(document_id.removeprefix("sha256:"))
        return text


def load_manifest(
    paths: Iterable[Path], schema: GraphQLSchema, documents: PreparedDocuments
) -> Manifest:
    """Every manifest's entries, each prepared and pinned; ManifestError on the first
    file or entry that cannot be served."""
    texts: dict[str, str] = {}
    origins: dict[str, Path] = {}
    for path in paths:
        for document_id, text in _entries(path).items():
            if document_id in texts and texts[document_id] != text:
                raise ManifestError(
                    f"{path}: document {document_id!r} is also in {origins[document_id]} "
                    "with another text"
                )
            prepared = documents.prepare(schema, text)
            problem = _problem(prepared)
            if problem is not None:
                raise ManifestError(f"{path}: document {document_id!r} {problem}")
            documents.pin(text, prepared)
            texts[document_id] = text
            origins[document_id] = path
    return Manifest(texts, frozenset(texts.values()))


def _entries(path: Path) -> dict[str, str]:
    try:
        raw = path.read_bytes()
    except OSError as error:
        raise ManifestError(f"{path}: cannot be read ({error.strerror})") from None
    try:
        # orjson, as for requests (server/strict_json.py): UTF-8 and no lone surrogates.
        entries = orjson.loads(raw)
    except orjson.JSONDecodeError as error:
        raise ManifestError(f"{path}: not JSON ({error.msg})") from None
    if not isinstance(entries, dict):
        raise ManifestError(f"{path}: must be a JSON object of document ids to their texts")
    for document_id, text in entries.items():
        if not document_id or len(document_id) > MAX_ID_LENGTH or ":" in document_id:
            raise ManifestError(
                f"{path}: document id {document_id[:MAX_ID_LENGTH]!r} must be 1 to "
                f"{MAX_ID_LENGTH} characters without a colon"
            )
        if not isinstance(text, str):
            raise ManifestError(f"{path}: document {document_id!r} must be a string of GraphQL")
    return entries


def _problem(prepared: Prepared) -> str | None:
    if not prepared.errors:
        if prepared.document is not None and prepared.costs:
            return None
        return "holds no operation"
    first = prepared.errors[0]
    code = (first.extensions or {}).get("code", "GRAPHQL_VALIDATION_FAILED")
    message = " ".join(first.message.split())  # one line, whatever the error's layout
    return f"is refused ({code}): {message}"
