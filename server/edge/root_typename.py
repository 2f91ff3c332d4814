"""The answer to an operation that asks the root for nothing but its type's name.

`{ __typename }` is what clients send to check that a GraphQL server is up (Apollo's and
others' health checks, keep-alive probes). Its answer depends on nothing: no resolver,
no variable, no viewer; graphql-core would still build an executor, coerce the (absent)
variables, collect the fields and resolve `__typename` for it, about a quarter of such a
request's CPU (bench/README.md, "Issue 16, second pass: the edge"). An operation whose
selections are all `__typename` fields of the root, with no directives, fragments or
variable definitions, is answered from the root type's name instead: the same data the
executor would give, and no errors (undeclared variables sent along are ignored by the
executor too). Everything else about the request (rate limits, metrics, the answer's
media type and status) is unchanged, for the view still runs it.
"""

from __future__ import annotations

from graphql import FieldNode, GraphQLSchema, OperationDefinitionNode

TYPENAME = "__typename"


def root_typename_data(
    schema: GraphQLSchema, operation: OperationDefinitionNode
) -> dict[str, str] | None:
    """The data `operation` answers with if it selects only the root's `__typename`
    (aliased or not, once or more), else None: then it must be executed."""
    if operation.variable_definitions or operation.directives:
        return None
    keys = []
    for selection in operation.selection_set.selections:
        if (
            not isinstance(selection, FieldNode)
            or selection.name.value != TYPENAME
            or selection.directives
            or selection.arguments
            or selection.selection_set is not None
        ):
            return None
        keys.append(selection.alias.value if selection.alias else TYPENAME)
    root = schema.get_root_type(operation.operation)
    if root is None:
        return None
    # As the executor's: the keys in the order of their first selection.
    return dict.fromkeys(keys, root.name)
