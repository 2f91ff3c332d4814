"""Counting GraphQL operations for `/metrics`: by name, type and outcome, with bounded labels.

An operation's name label is the name its prepared document gives the operation that
runs, never the request's `operationName` nor any other raw text: a document that does not
parse or validate is `(invalid)`, an anonymous operation `(anonymous)`. Names are still
the client's to choose, so each graph labels at most `MOST_OPERATION_NAMES` of them (the
first it sees, per process) and counts the rest as `(other)`. The parenthesised labels
cannot be GraphQL names.

The hot path allocates nothing per request: each (name, type, outcome) binds its label
children once, and a name's series are found through one dict and a list index.
"""

from __future__ import annotations

from collections.abc import Callable
from enum import IntEnum

from graphql import OperationDefinitionNode, get_operation_ast
from prometheus_client.metrics import Counter, Histogram

from documents.metrics import GRAPHQL_OPERATION_DURATION, GRAPHQL_OPERATIONS, LIMIT_REFUSALS
from schema.common.prepared import Prepared

MOST_OPERATION_NAMES = 200
"""Operation names one graph labels per process; the rest are `(other)`."""
LONGEST_OPERATION_NAME = 100

INVALID = "(invalid)"
ANONYMOUS = "(anonymous)"
OTHER = "(other)"


class Outcome(IntEnum):
    OK = 0
    ERRORS = 1
    INVALID = 2
    REFUSED = 3
    RATE_LIMITED = 4


_OUTCOMES = ("ok", "errors", "invalid", "refused", "rate_limited")
_TYPES = ("query", "mutation", "subscription", "(none)")
_TYPE_INDEX = {"query": 0, "mutation": 1, "subscription": 2}
_NO_TYPE = 3

OperationNamer = Callable[[str, str], None]
"""Told each HTTP operation's name label and type while its request runs: tracing names
the request's span with it (server/observability/tracing.py)."""


class _Series:
    """The label children of one (name, type, outcome), bound once."""

    __slots__ = ("count", "duration")

    def __init__(self, count: Counter, duration: Histogram | None) -> None:
        self.count = count
        self.duration = duration


class OperationMetrics:
    """One graph's operation counts, over one transport (`http` or `websocket`)."""

    def __init__(self, graph: str, transport: str, *, enabled: bool = True) -> None:
        self.graph = graph
        self.transport = transport
        self.enabled = enabled
        self.namer: OperationNamer | None = None
        self._series: dict[str, list[_Series | None]] = {}

    def label(self, prepared: Prepared | None, operation_name: str | None) -> tuple[str, str]:
        """The name and type labels of the operation a request runs from a document."""
        if prepared is None or prepared.document is None or prepared.errors:
            return INVALID, _TYPES[_NO_TYPE]
        # An empty name is no name, as the view and unknown_operation have it.
        operation = get_operation_ast(prepared.document, operation_name or None)
        return self.label_of(operation)

    def label_of(self, operation: OperationDefinitionNode | None) -> tuple[str, str]:
        if operation is None:
            return INVALID, _TYPES[_NO_TYPE]
        kind = operation.operation.value
        if operation.name is None:
            return ANONYMOUS, kind
        name = operation.name.value
        if name in self._series:
            return name, kind
        if len(self._series) >= MOST_OPERATION_NAMES or len(name) > LONGEST_OPERATION_NAME:
            return OTHER, kind
        return name, kind

    def record(self, name: str, kind: str, outcome: Outcome, seconds: float | None = None) -> None:
        """Count one operation (and its time, if given) under labels from `label`."""
        if not self.enabled:
            return
        series = self._series.get(name)
        if series is None:
            series = self._series[name] = [None] * (len(_TYPES) * len(_OUTCOMES))
        index = _TYPE_INDEX.get(kind, _NO_TYPE) * len(_OUTCOMES) + outcome
        bound = series[index]
        if bound is None:
            bound = series[index] = self._bind(name, kind, outcome)
        bound.count.inc()
        if seconds is not None and bound.duration is not None:
            bound.duration.observe(seconds)

    def refused(self, prepared: Prepared | None) -> Outcome:
        """The outcome of a document that will not run: refused by a limit (counted as
        such), or invalid."""
        if prepared is not None and prepared.limit is not None:
            if self.enabled:
                LIMIT_REFUSALS.labels(prepared.limit).inc()
            return Outcome.REFUSED
        return Outcome.INVALID

    def name_request(self, name: str, kind: str) -> None:
        if self.namer is not None:
            self.namer(name, kind)

    def _bind(self, name: str, kind: str, outcome: Outcome) -> _Series:
        outcome_label = _OUTCOMES[outcome]
        count = GRAPHQL_OPERATIONS.labels(self.graph, self.transport, name, kind, outcome_label)
        duration = (
            GRAPHQL_OPERATION_DURATION.labels(self.graph, name, kind, outcome_label)
            if self.transport == "http"
            else None
        )
        return _Series(count, duration)
