"""Parsing and validating each distinct operation text once.

Validation is most of the work of a small query, and clients send the same few
operation texts over and over, so the outcome (the document, or why it was refused)
is kept in an LRU cache keyed by the text. Limits are validation rules, so a refused
operation is refused from the cache too. Only texts up to `MAX_CACHED_LENGTH` are kept,
which bounds the memory the cache can hold.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass

from graphql import (
    DocumentNode,
    GraphQLError,
    GraphQLSchema,
    GraphQLSyntaxError,
    parse,
    specified_rules,
    validate,
)
from graphql.validation import ASTValidationRule, NoSchemaIntrospectionCustomRule
from strawberry.extensions import SchemaExtension
from strawberry.schema.validation_rules.maybe_null import MaybeNullValidationRule
from strawberry.schema.validation_rules.one_of import OneOfInputValidationRule

from schema.limits import Limits, operation_limits

MAX_CACHED_LENGTH = 20_000
CACHE_SIZE = 512


@dataclass(frozen=True, slots=True)
class Prepared:
    document: DocumentNode | None
    """None when the text does not parse."""
    errors: list[GraphQLError]
    """Why the operation is refused; run it only when empty."""


class PreparedDocuments:
    def __init__(self, limits: Limits, max_tokens: int, introspection: bool) -> None:
        rules: list[type[ASTValidationRule]] = [
            *specified_rules,
            MaybeNullValidationRule,
            OneOfInputValidationRule,
            operation_limits(limits),
        ]
        if not introspection:
            rules.append(NoSchemaIntrospectionCustomRule)
        self._rules = tuple(rules)
        # "Did you mean ...?" would reveal the schema that introspection hides.
        self.hide_suggestions = not introspection
        self.max_tokens = max_tokens
        self._cache: OrderedDict[str, Prepared] = OrderedDict()

    def prepare(self, schema: GraphQLSchema, query: str) -> Prepared:
        cached = self._cache.get(query)
        if cached is not None:
            self._cache.move_to_end(query)
            return cached
        prepared = self._prepare(schema, query)
        if len(query) <= MAX_CACHED_LENGTH:
            self._cache[query] = prepared
            if len(self._cache) > CACHE_SIZE:
                self._cache.popitem(last=False)
        return prepared

    def _prepare(self, schema: GraphQLSchema, query: str) -> Prepared:
        try:
            document = parse(query, max_tokens=self.max_tokens)
        except GraphQLError as syntax_error:
            syntax_error.extensions = {"code": "GRAPHQL_PARSE_FAILED"}
            return Prepared(None, [syntax_error])
        errors = validate(schema, document, self._rules, hide_suggestions=self.hide_suggestions)
        for error in errors:
            if not error.extensions or "code" not in error.extensions:
                error.extensions = {**(error.extensions or {}), "code": "GRAPHQL_VALIDATION_FAILED"}
        return Prepared(document, errors)


class UsePreparedDocuments(SchemaExtension):
    """Gives operations that Strawberry runs itself (subscriptions) the same cache and limits."""

    def __init__(self, documents: PreparedDocuments) -> None:
        self._documents = documents

    def on_parse(self) -> Iterator[None]:
        context = self.execution_context
        if context.query is not None:
            prepared = self._documents.prepare(context.schema._schema, context.query)
            if prepared.document is not None:
                context.graphql_document = prepared.document
                context.pre_execution_errors = prepared.errors or None
            else:
                # Unparsable: Strawberry parses again under the same token limit and reports it.
                context.parse_options["max_tokens"] = self._documents.max_tokens
        yield
        for error in context.pre_execution_errors or ():
            if isinstance(error, GraphQLSyntaxError) and not error.extensions:
                error.extensions = {"code": "GRAPHQL_PARSE_FAILED"}  # as over HTTP

    def on_validate(self) -> Iterator[None]:
        # Validated with parsing above; no rules left makes Strawberry skip its own pass.
        self.execution_context.validation_rules = ()
        yield
