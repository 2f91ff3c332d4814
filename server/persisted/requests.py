"""GraphQL requests read from HTTP with the document they name, not only the one they send.

Strawberry reads `query`, `variables`, `operationName` and `extensions` from a body or a
GET's parameters; GraphQL over HTTP's persisted documents add `documentId`, which it
drops. The view decodes requests here instead, in one pass: each item checked for shape
(server/request_shape.py), and what it names kept with it, for the view to resolve into a
text once the request's context (its access token) is known.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from cross_web import HTTPException
from strawberry.http import GraphQLRequestData

from schema.persisted.policy import PersistedQueryRefused, Requested, Resolved
from server.request_shape import operation_problem


@dataclass
class NamedRequestData(GraphQLRequestData):
    """A request with what it says of its document; `query` is filled in when resolved."""

    requested: Requested | None = None
    resolved: Resolved | None = None


def requests_of(data: object, protocol: str) -> NamedRequestData | list[NamedRequestData]:
    """The requests of a decoded body or GET parameters (a batch's size already checked);
    HTTPException (400) for a shape that is not a GraphQL request's, PersistedQueryRefused
    for a bad `documentId` or `persistedQuery`."""
    if isinstance(data, list):
        return [_request(item, protocol, position) for position, item in enumerate(data, 1)]
    return _request(data, protocol, None)


def _request(item: object, protocol: str, position: int | None) -> NamedRequestData:
    where = f"Operation {position} of the batch: " if position is not None else ""
    if not isinstance(item, Mapping):
        raise HTTPException(400, "The request body must be a JSON object or a list of them.")
    query, variables = item.get("query"), item.get("variables")
    operation_name, extensions = item.get("operationName"), item.get("extensions")
    problem = operation_problem(query, variables, operation_name, extensions)
    if problem is not None:
        raise HTTPException(400, where + problem)
    try:
        requested = Requested.of(query, item.get("documentId"), extensions)
    except PersistedQueryRefused as refused:
        refused.message = where + refused.message
        raise
    return NamedRequestData(
        query=query,
        variables=variables,
        operation_name=operation_name,
        extensions=extensions,
        protocol=protocol,  # type: ignore[arg-type]
        requested=requested,
    )
