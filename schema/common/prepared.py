"""Parsing, measuring and validating each distinct operation text once, off the event loop.

Validation is most of the work of a small query, and clients send the same few
operation texts over and over, so the outcome (the document and the cost of each of its
operations, or why it was refused) is kept in an LRU cache keyed by the text. Limits are
checked with it, so a refused operation is refused from the cache too.

The cache is no defence, though: a comment or a space makes a new text. What protects the
server is that preparing any text is bounded and linear in its length: the text is at
most `max_length` characters and `max_tokens` tokens; the limits are measured first and
linearly (schema/common/limits.py), and a document over them is refused without the standard
validation; and the standard rule that compares same-named fields pairwise (quadratic
in their number) gets a fixed budget of comparisons. Texts not in the cache are prepared
in one thread of their own (`prepared_off_loop`), since even linear work on a document of
5,000 tokens takes graphql-core longer than a request may hold up every other one on
the event loop. One thread: it contends for the interpreter with the event loop no more
than one thread can, and a flood of new texts waits its turn instead of taking the CPU.

Each cached text is also found by its SHA-256 (`text_of_hash`): that is where automatic
persisted queries are kept in a process (schema/persisted/policy.py), bounded with the
cache. The documents of the trusted-documents manifest are pinned: prepared once at
start-up and never evicted.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections import OrderedDict
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from graphql import (
    DocumentNode,
    GraphQLError,
    GraphQLSchema,
    GraphQLSyntaxError,
    get_operation_ast,
    parse,
    specified_rules,
    validate,
)
from graphql.validation import (
    ASTValidationRule,
    NoSchemaIntrospectionCustomRule,
    OverlappingFieldsCanBeMergedRule,
    ValidationContext,
)
from graphql.validation.validate import ValidationAbortedError
from strawberry.extensions import SchemaExtension
from strawberry.schema.validation_rules.maybe_null import MaybeNullValidationRule
from strawberry.schema.validation_rules.one_of import OneOfInputValidationRule

from schema.common.limits import Limits, measure

CACHE_SIZE = 512
CACHE_CHARACTERS = 250_000
"""What the cached texts may add up to: a parsed document keeps about 200 bytes per
character of its text, so this bounds the cache near 50 MB, whichever texts fill it."""
FIELD_COMPARISON_BUDGET = 50_000
"""Units of work graphql-core's OverlappingFieldsCanBeMerged may spend on one document (a
comparison of two fields costs two): up to about 70 ms of CPU, in the preparation thread.
Its own default, 500,000, is a second and a half. The test suite's operations spend none;
forty fragments on one type spread side by side, each asking for the same five fields,
spend 18,800."""

_ABORTED = "Validation aborted."
LIMITS = {
    "QUERY_TOO_DEEP": "depth",
    "TOO_MANY_ALIASES": "aliases",
    "QUERY_TOO_COSTLY": "cost",
    "QUERY_TOO_COMPLEX": "complexity",
}
"""The limits' error codes, and how `/metrics` names each (with `tokens` and `length`,
whose refusals are parse errors)."""
_TOO_MANY_TOKENS = "tokens. Parsing aborted."
"""How graphql-core's parser ends the message of a document over `max_tokens`."""
_preparation = ThreadPoolExecutor(max_workers=1, thread_name_prefix="gigql-prepare")


@dataclass(frozen=True, slots=True)
class Prepared:
    document: DocumentNode | None
    """None when the text does not parse."""
    errors: list[GraphQLError]
    """Why the operation is refused; run it only when empty."""
    costs: dict[str | None, int] = field(default_factory=dict)
    """The cost of each operation by name (None for an anonymous one), as the limits
    measure it; what the rate limits charge (schema/common/rate_limits.py)."""
    limit: str | None = None
    """The limit that refused the text, if one did (`LIMITS` values): what `/metrics`
    counts as refused by limits rather than merely invalid."""

    def cost(self, operation_name: str | None) -> int:
        """The cost of the operation a request names (or of the only one); 0 when the
        document names no such operation and so runs nothing."""
        if operation_name is None and len(self.costs) == 1:
            return next(iter(self.costs.values()))
        return self.costs.get(operation_name, 0)


class BoundedOverlappingFields(OverlappingFieldsCanBeMergedRule):
    """The standard rule with a budget of work of our own, refused with its own code."""

    def __init__(self, context: ValidationContext) -> None:
        super().__init__(context)
        self.rule_context.remaining_complexity_budget = FIELD_COMPARISON_BUDGET

    def enter_selection_set(self, *args: Any) -> None:
        try:
            super().enter_selection_set(*args)
        except ValidationAbortedError:
            if self.rule_context.remaining_complexity_budget >= 0:
                raise  # aborted for another reason: too many errors
            raise ValidationAbortedError(
                "The document repeats too many fields under the same names to check that "
                "they can be merged. Ask for each field once.",
                extensions={"code": "QUERY_TOO_COMPLEX"},
            ) from None


class PreparedDocuments:
    def __init__(
        self, limits: Limits, max_tokens: int, max_length: int, introspection: bool
    ) -> None:
        rules: list[type[ASTValidationRule]] = [
            BoundedOverlappingFields if rule is OverlappingFieldsCanBeMergedRule else rule
            for rule in specified_rules
        ]
        rules += [MaybeNullValidationRule, OneOfInputValidationRule]
        if not introspection:
            rules.append(NoSchemaIntrospectionCustomRule)
        self._rules = tuple(rules)
        # "Did you mean ...?" would reveal the schema that introspection hides.
        self.hide_suggestions = not introspection
        self.limits = limits
        self.max_tokens = max_tokens
        self.max_length = max_length
        self._cache: OrderedDict[str, Prepared] = OrderedDict()
        self._cached_characters = 0
        self._cache_characters = max(CACHE_CHARACTERS, max_length)  # the longest fits
        self._in_preparation: dict[str, asyncio.Future[Prepared]] = {}
        self._by_hash: dict[str, str] = {}
        """The cached texts by their SHA-256 (lower-case hex), evicted with them."""
        self._pinned: dict[str, Prepared] = {}
        """Texts prepared at start-up that stay (the trusted documents' manifest)."""

    def pin(self, query: str, prepared: Prepared) -> None:
        """Keep a text prepared for the life of the process, outside the LRU's bounds
        (which the operator's manifest, not clients, decides)."""
        self._pinned[query] = prepared

    def text_of_hash(self, sha256_hex: str) -> str | None:
        """The cached text whose SHA-256 this is, if it still is in the cache."""
        return self._by_hash.get(sha256_hex)

    def prepare(self, schema: GraphQLSchema, query: str) -> Prepared:
        """The prepared text, from the cache or prepared here and now. For callers that
        cannot wait; the others use `prepared_off_loop`, which fills the cache."""
        cached = self.cached(query)
        if cached is not None:
            return cached
        prepared = self._prepare(schema, query)
        self._keep(query, prepared)
        return prepared

    async def prepared_off_loop(self, schema: GraphQLSchema, query: str) -> Prepared:
        """The prepared text, from the cache or prepared in the preparation thread (once,
        however many requests send the same new text at the same time)."""
        cached = self.cached(query)
        if cached is not None:
            return cached
        if len(query) > self.max_length:
            return self._too_long(query)
        pending = self._in_preparation.get(query)
        if pending is None:
            loop = asyncio.get_running_loop()
            pending = loop.run_in_executor(_preparation, self._prepare, schema, query)
            self._in_preparation[query] = pending
            pending.add_done_callback(lambda done: self._prepared(query, done))
        # Shielded: a client that goes away must not cancel it for the others waiting.
        return await asyncio.shield(pending)

    def _prepared(self, query: str, done: asyncio.Future[Prepared]) -> None:
        del self._in_preparation[query]
        if not done.cancelled() and done.exception() is None:
            self._keep(query, done.result())

    def cached(self, query: str) -> Prepared | None:
        """The text as prepared before, if it still is in the cache; never prepares it."""
        pinned = self._pinned.get(query)
        if pinned is not None:
            return pinned
        cached = self._cache.get(query)
        if cached is not None:
            self._cache.move_to_end(query)
        return cached

    def _keep(self, query: str, prepared: Prepared) -> None:
        if len(query) > self.max_length or query in self._cache:
            return
        self._cache[query] = prepared
        self._cached_characters += len(query)
        self._by_hash[sha256_of(query)] = query
        while len(self._cache) > CACHE_SIZE or self._cached_characters > self._cache_characters:
            oldest, _ = self._cache.popitem(last=False)
            self._cached_characters -= len(oldest)
            del self._by_hash[sha256_of(oldest)]

    def _too_long(self, query: str) -> Prepared:
        error = GraphQLError(
            f"The document is {len(query)} characters long; the limit is {self.max_length}.",
            extensions={"code": "GRAPHQL_PARSE_FAILED"},
        )
        return Prepared(None, [error], limit="length")

    def _prepare(self, schema: GraphQLSchema, query: str) -> Prepared:
        if len(query) > self.max_length:
            return self._too_long(query)
        try:
            document = parse(query, max_tokens=self.max_tokens)
        except GraphQLError as syntax_error:
            syntax_error.extensions = {"code": "GRAPHQL_PARSE_FAILED"}
            too_many = syntax_error.message.endswith(_TOO_MANY_TOKENS)
            return Prepared(None, [syntax_error], limit="tokens" if too_many else None)
        measured = measure(schema, document, self.limits)
        if measured.errors:
            # Refused whatever else is wrong with it, without the work of finding out.
            return Prepared(document, measured.errors, limit=_limit_of(measured.errors))
        errors = [
            _coded(error)
            for error in validate(
                schema, document, self._rules, hide_suggestions=self.hide_suggestions
            )
        ]
        return Prepared(
            document, errors, measured.costs if not errors else {}, limit=_limit_of(errors)
        )


def _limit_of(errors: list[GraphQLError]) -> str | None:
    for error in errors:
        code = (error.extensions or {}).get("code")
        if isinstance(code, str) and code in LIMITS:
            return LIMITS[code]
    return None


def sha256_of(query: str) -> str:
    """The SHA-256 of a text's UTF-8 bytes in lower-case hex: an APQ hash, a document id."""
    return hashlib.sha256(query.encode("utf-8", "surrogatepass")).hexdigest()


def _coded(error: GraphQLError) -> GraphQLError:
    if error.extensions and "code" in error.extensions:
        return error
    if isinstance(error, ValidationAbortedError) and error.message == _ABORTED:
        # graphql-core's own budgets for work across fragments, and for their nesting.
        return GraphQLError(
            "The document spreads its fragments too often, or nests them too deeply, to be "
            "checked. Spread each fragment in fewer places.",
            extensions={"code": "QUERY_TOO_COMPLEX"},
        )
    error.extensions = {**(error.extensions or {}), "code": "GRAPHQL_VALIDATION_FAILED"}
    return error


class UsePreparedDocuments(SchemaExtension):
    """Gives operations that Strawberry runs itself (over websocket) the same preparation
    and limits: `GigqlSchema.stream` prepared the text off the event loop just before."""

    def __init__(self, documents: PreparedDocuments) -> None:
        self._documents = documents

    def on_parse(self) -> Iterator[None]:
        context = self.execution_context
        if context.query is not None:
            # Handed over by GigqlSchema.stream, which prepared it off the event loop: the
            # cache may have let it go since, and preparing it again here would be on it.
            handed_over = getattr(context.context, "prepared", None)
            prepared = (
                handed_over
                if isinstance(handed_over, Prepared)
                else self._documents.prepare(context.schema._schema, context.query)
            )
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


def unknown_operation(document: DocumentNode, operation_name: str | None) -> GraphQLError | None:
    """Why `document` has no operation to run by this name (GraphQL's GetOperation), or
    None. A request error, over HTTP and websocket alike: nothing runs. An empty name is
    no name, as the GraphQL-over-HTTP specification has it."""
    if get_operation_ast(document, operation_name or None) is not None:
        return None
    reason = (
        f"Unknown operation named '{operation_name}'."
        if operation_name
        else "Name the operation to run: the document has several."
    )
    return GraphQLError(reason, extensions={"code": "BAD_REQUEST"})
