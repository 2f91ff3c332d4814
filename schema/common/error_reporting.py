"""What clients learn from errors, and what the log keeps.

Every error gets an `extensions.code`. Errors the client caused (syntax, validation,
refused limits, bad variables, DomainErrors, permission refusals) keep their message.
Anything else is a bug or an outage: it is logged with its traceback and the request id,
and outside debug mode the client sees only "Internal server error" and the request id.
"""

from __future__ import annotations

import logging

from graphql import GraphQLError
from strawberry.relay.types import GlobalIDValueError

from documents.errors import DomainError, ErrorCode

log = logging.getLogger("gigql.graphql")

INTERNAL_ERROR_MESSAGE = "Internal server error"


def coded_error(error: DomainError) -> GraphQLError:
    """A DomainError met outside a resolver, in the shape resolvers' errors get."""
    return GraphQLError(str(error), extensions={"code": error.code.value})


def report_errors(errors: list[GraphQLError], request_id: str | None, debug: bool) -> None:
    for error in errors:
        original = error.original_error
        if isinstance(original, DomainError):
            problem = original.problems[0]
            extensions = {"code": problem.code.value}
            if problem.field:
                extensions["field"] = problem.field
            error.extensions = extensions
        elif isinstance(original, GlobalIDValueError):
            error.extensions = {"code": ErrorCode.INVALID_ID.value}
        elif original is None or isinstance(original, GraphQLError) or _bad_variable(error):
            if not error.extensions or "code" not in error.extensions:
                code = "BAD_USER_INPUT" if error.path is None else "GRAPHQL_ERROR"
                error.extensions = {**(error.extensions or {}), "code": code}
        else:
            # A bug or an outage (a subscription whose broker is away fails before its
            # field has a path): logged, and never shown to the client as it was.
            log.error(
                "unexpected error resolving %s",
                ".".join(str(p) for p in error.path or ()) or "an operation",
                exc_info=(type(original), original, original.__traceback__),
                extra={"request_id": request_id},
            )
            if not debug:
                error.message = INTERNAL_ERROR_MESSAGE
            error.extensions = {"code": "INTERNAL_SERVER_ERROR", "requestId": request_id}


def _bad_variable(error: GraphQLError) -> bool:
    """A scalar refusing a variable's value: it raises ValueError or TypeError while the
    variables are coerced, before any field runs (so without a path). Anything else
    without a path (a subscription whose broker is away fails before its field has one)
    is ours."""
    return error.path is None and isinstance(error.original_error, ValueError | TypeError)
