"""Subscriptions whose result cannot depend on who asks, written as pre-framed text.

A subscription normally runs as Strawberry's result stream over graphql-core's per-event
iterator: each event is executed, wrapped and sent for each subscriber on its own. When
the selection cannot depend on the viewer (schema/common/shared_events.py), none of
that per-subscriber machinery is needed. Such an operation, once admitted and
authorised like any other (schema/schema.py `GigqlSchema.stream`), follows its source
stream directly (the same `follow` that keeps order, replays `after`, fills gaps,
re-reads after a RESYNC, re-checks access when told and ends with the token), and
each item is executed and serialised once per process for every subscriber of the same
operation text; each socket gets that JSON inside its own protocol's frame, with its
own operation id.

Which root fields have such a source is declared by their area (`FramedSource`); the
websocket handler says how to frame and send for the operation (`FrameTarget`, set in
the operation's own task). Anything else, or anything that goes wrong before the stream
starts, takes the ordinary path, which then answers exactly as it always did. A source
that gives its feed not started (`Followed`) on a handler that allows it (`hub`) is
written from the broker's hub while caught up (schema/live/hub_writer.py); else the
operation's task writes each item.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Coroutine, Mapping
from contextlib import nullcontext
from contextvars import ContextVar
from typing import Any, TypeAlias

import strawberry
from graphql import (
    ExecutionResult,
    FieldNode,
    FragmentDefinitionNode,
    GraphQLError,
    GraphQLField,
    GraphQLSchema,
    OperationDefinitionNode,
    OperationType,
    get_operation_ast,
)
from graphql.execution import Executor
from graphql.execution.values import get_argument_values
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext
from strawberry.schema.schema_converter import GraphQLCoreConverter
from strawberry.types import ExecutionResult as StreamedResult
from strawberry.types.arguments import convert_arguments
from strawberry.types.field import StrawberryField

from realtime.broker import SubscriberOverflow
from realtime.going_away import OpenSocket
from realtime.streams import Followed
from schema.common.context import Context
from schema.common.shared_events import is_viewer_independent
from schema.live.hub_writer import HubWritten, close_slow
from schema.live.leaf_plan import LeafPlan
from schema.released import release

ReportErrors: TypeAlias = Callable[[list[GraphQLError]], None]
"""How the schema reports errors (and gives them their codes) before they are sent."""

FramedItems: TypeAlias = tuple[AsyncIterator[Any] | Followed[Any, Any], Callable[[Any], object]]
"""A subscriber's stream of items (or its feed, not started, for the hub to drive), and
what makes each item's event payload (the root value its selection is executed on):
applied as each is written, with no stream of its own in between."""
FramedSource: TypeAlias = Callable[[Context, dict[str, Any]], Awaitable[FramedItems]]
"""A root field's events for one subscriber: given the operation's context and the
field's arguments as its resolver receives them, authorise as the resolver would
(raising as it would) and return its items and how each becomes a payload."""


class FrameTarget:
    """Where one websocket operation's results go, and in which protocol's frame."""

    __slots__ = ("_head", "hub", "send_text")

    def __init__(
        self,
        operation_id: str,
        *,
        legacy: bool,
        send_text: Callable[[str], Coroutine[Any, Any, None]],
        hub: bool = False,
    ) -> None:
        """`legacy`: the `graphql-ws` protocol (`data` frames) rather than
        `graphql-transport-ws` (`next`). `hub`: the handler runs a `HubWritten` result
        in place of its stream (schema/live/hub_writer.py)."""
        self.send_text = send_text
        self.hub = hub
        # Everything before the data, made once: only the operation id differs between
        # subscribers (and the keys are in the order Strawberry's messages have them).
        quoted = json.dumps(operation_id)
        self._head = (
            f'{{"type":"data","id":{quoted},"payload":{{"data":'
            if legacy
            else f'{{"id":{quoted},"type":"next","payload":{{"data":'
        )

    def frame(self, data_json: str) -> str:
        """A result frame around JSON already made, as Strawberry would encode it."""
        return f"{self._head}{data_json}}}}}"


frame_target: ContextVar[FrameTarget | None] = ContextVar("frame_target", default=None)
"""Set by the websocket handler in each operation's own task."""


class FramedSelection:
    """One operation text's results, executed and serialised once per event payload.

    The subscribers of one live message are handed the very same payload object within
    moments of each other, so a few dozen entries suffice; a payload read from the
    database for one subscriber alone (a replay) is executed for it alone."""

    SIZE = 64
    executions = 0
    """Events executed on this path, by every selection: what the tests count."""

    def __init__(self, executor: Executor[Any]) -> None:
        self._executor = executor
        self._plan = LeafPlan.of(executor)
        self._recent: OrderedDict[int, tuple[object, str]] = OrderedDict()

    def data_json(self, payload: object) -> str:
        found = self._recent.get(id(payload))
        if found is not None and found[0] is payload:
            return found[1]
        FramedSelection.executions += 1
        data = self._plan.run(payload) if self._plan is not None else None
        if data is None:
            data = self.executed(payload)
        # As Strawberry encodes its messages (strawberry/http/base.py encode_json).
        data_json = json.dumps(data, separators=(",", ":"))
        self._recent[id(payload)] = (payload, data_json)  # kept so its id stays its own
        if len(self._recent) > self.SIZE:
            self._recent.popitem(last=False)
        return data_json

    def executed(self, payload: object) -> dict[str, Any]:
        """The event's `data` through graphql-core's executor (what the plan shortens)."""
        executor = self._executor.build_per_event_executor(payload)
        # graphql-core 3.3 memoises collected subfields in a dict its per-event copies
        # share with the executor they came from, keyed by each event's own field lists:
        # it would grow with every message (as schema/schema.py PerEventExecutor says).
        executor._relevant_sub_fields = {}
        result = executor.execute_operation(False)
        if not isinstance(result, ExecutionResult) or result.errors or result.data is None:
            # A plain selection neither awaits nor fails; one that does is a bug here.
            raise RuntimeError(f"a framed selection did not execute plainly: {result!r}")
        return result.data


class FramedSubscriptions:
    """The framed sources of a schema's subscription root fields, and the selections
    prepared for them, by operation (the prepared-document cache keeps one AST a text)."""

    SELECTIONS = 256

    def __init__(self, schema: strawberry.Schema, sources: Mapping[str, FramedSource]) -> None:
        self._strawberry = schema
        self._schema: GraphQLSchema = schema._schema
        self._sources = dict(sources)
        self._selections: OrderedDict[int, tuple[OperationDefinitionNode, FramedSelection]] = (
            OrderedDict()
        )

    async def start(
        self,
        context: object,
        document: Any,
        operation_name: str | None,
        variables: dict[str, Any] | None,
        report_errors: ReportErrors,
    ) -> AsyncGenerator[StreamedResult, None] | HubWritten | None:
        """The operation's results if it goes the framed way, its stream already
        authorised (and started, unless written from the hub); None for the ordinary
        path."""
        target = frame_target.get()
        if target is None or not isinstance(context, Context) or context.socket is None:
            return None
        operation = get_operation_ast(document, operation_name)
        if operation is None or operation.operation is not OperationType.SUBSCRIPTION:
            return None
        selections = operation.selection_set.selections
        root = selections[0] if len(selections) == 1 else None
        if not isinstance(root, FieldNode) or root.directives:
            return None
        source = self._sources.get(root.name.value)
        if source is None:
            return None
        fragments = {
            d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)
        }
        if not is_viewer_independent(self._schema, operation, fragments):
            return None
        executor = StrawberryGraphQLCoreExecutionContext.build(
            self._schema, document, None, None, variables, operation_name
        )
        if not isinstance(executor, Executor):
            return None  # variables that do not coerce: answered on the ordinary path
        subscription = self._schema.subscription_type
        assert subscription is not None
        field = subscription.fields[root.name.value]
        try:
            items, payload_of = await source(context, self._arguments(field, root, executor))
        except Exception:
            # Refused, or it failed: the ordinary path runs it again and answers in its
            # own words (and logs what must be).
            release(executor)
            return None
        selection = self._selection(operation, executor)
        # The socket alone, not the operation's context (its caller as read at the start):
        # the stream lives as long as the socket.
        if isinstance(items, Followed):
            if target.hub:
                return HubWritten(
                    items,
                    payload_of,
                    selection,
                    target,
                    context.socket,
                    context.request,
                    report_errors,
                )
            items = items.stream()
        return _written(
            items, payload_of, selection, target, context.socket, context.request, report_errors
        )

    def _arguments(self, field: GraphQLField, node: FieldNode, executor: Executor[Any]) -> Any:
        """The root field's arguments as its resolver would receive them: by their Python
        names, converted to their Python types (a relay GlobalID, an input class)."""
        definition = field.extensions[GraphQLCoreConverter.DEFINITION_BACKREF]
        assert isinstance(definition, StrawberryField)
        schema = self._strawberry
        return convert_arguments(
            get_argument_values(field, node, executor.variable_values),
            definition.arguments,
            scalar_registry=schema.schema_converter.scalar_registry,
            config=schema.config,
        )

    def _selection(
        self, operation: OperationDefinitionNode, executor: Executor[Any]
    ) -> FramedSelection:
        found = self._selections.get(id(operation))
        if found is not None and found[0] is operation:
            self._selections.move_to_end(id(operation))
            # Not kept: without its self-reference it goes now, not at a full collection.
            release(executor)
            return found[1]
        # Executed with no context: nothing in a viewer-independent selection reads one,
        # and no subscriber's context is kept alive by the selection.
        executor.context_value = None
        selection = FramedSelection(executor)
        self._selections[id(operation)] = (operation, selection)
        if len(self._selections) > self.SELECTIONS:
            self._selections.popitem(last=False)
        return selection


async def _written(
    items: AsyncIterator[Any],
    payload_of: Callable[[Any], object],
    selection: FramedSelection,
    target: FrameTarget,
    open_socket: OpenSocket | None,
    socket: object,
    report_errors: ReportErrors,
) -> AsyncGenerator[StreamedResult, None]:
    """Writes each item's frame to the socket itself; yields only the error that ends the
    stream, which the handler sends as it sends any result (then `complete`)."""
    try:
        async for item in items:
            frame = target.frame(selection.data_json(payload_of(item)))
            # While it is being sent, a graceful shutdown waits (realtime/going_away.py).
            with open_socket.working() if open_socket else nullcontext():
                await target.send_text(frame)
    except SubscriberOverflow:
        await close_slow(socket)
        raise
    except Exception as error:
        # As Strawberry ends a stream whose source raised (strawberry/schema/schema.py).
        failure = (
            error
            if isinstance(error, GraphQLError)
            else GraphQLError(str(error), original_error=error)
        )
        report_errors([failure])
        yield StreamedResult(data=None, errors=[failure])
    finally:
        aclose = getattr(items, "aclose", None)
        if aclose is not None:
            await aclose()
