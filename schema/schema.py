"""The GraphQL schema: every area's root fields merged into one graph."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, cast

import strawberry
from graphql import ExecutionResult, GraphQLError, GraphQLObjectType
from graphql.execution import Executor
from graphql.execution.collect_fields import FieldDetailsList
from graphql.pyutils import Path
from strawberry.schema.config import StrawberryConfig
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext, StreamResult
from strawberry.tools import merge_types
from strawberry.types import ExecutionContext
from strawberry.types.execution import PreExecutionError
from strawberry.types.graphql import OperationType

from documents.errors import DomainError
from documents.metrics import SUBSCRIPTIONS_LIVE
from documents.settings import Settings
from schema.accounts.admin import AdminMutation, AdminQuery
from schema.accounts.auth import AuthMutation
from schema.accounts.profiles import ProfileMutation
from schema.accounts.users import UserMutation, UserQuery
from schema.chat.conversations import ChatMutation, ChatQuery
from schema.chat.live import ChatSubscription, framed_message_added
from schema.common.context import Context
from schema.common.error_reporting import coded_error, report_errors
from schema.common.limits import Limits
from schema.common.operation_metrics import OperationMetrics, Outcome
from schema.common.prepared import (
    Prepared,
    PreparedDocuments,
    UsePreparedDocuments,
    unknown_operation,
)
from schema.common.rate_limits import RateLimited, RateLimits, count_socket_operation
from schema.common.relay import NodeQuery
from schema.common.scalars import SCALAR_OVERRIDES
from schema.common.shared_events import is_viewer_independent, shared_results
from schema.direct_resolvers import call_resolvers_directly
from schema.leaf_fields import DECLINED, execute_leaf, leaf_read
from schema.live.framed import FramedSource, FramedSubscriptions
from schema.live.hub_writer import HubWritten
from schema.marketplace.booking_actions import BookingMutation
from schema.marketplace.bookings import BookingQuery
from schema.marketplace.discovery import DiscoveryQuery
from schema.marketplace.milestone_actions import MilestoneMutation
from schema.marketplace.packages import PackageMutation
from schema.marketplace.reviews import ReviewMutation, ReviewQuery
from schema.marketplace.task_actions import TaskMutation
from schema.marketplace.tasks import TaskQuery
from schema.marketplace.terms import MarketplaceQuery
from schema.node_ids import speed_up_node_ids
from schema.notifications.admin import NotificationAdminMutation, NotificationAdminQuery
from schema.notifications.inbox import NotificationMutation, NotificationQuery
from schema.notifications.live import LiveSubscription
from schema.notifications.phone import PhoneMutation, PhoneQuery
from schema.notifications.preferences import (
    NotificationPreferencesMutation,
    NotificationPreferencesQuery,
)
from schema.notifications.push import PushMutation, PushQuery
from schema.partners.admin import PartnerAdminMutation, PartnerAdminQuery
from schema.partners.owners import PartnerOwnerMutation, PartnerOwnerQuery
from schema.payments.admin_escrows import AdminEscrowsMutation, AdminEscrowsQuery
from schema.payments.admin_payments import AdminPaymentsMutation, AdminPaymentsQuery
from schema.payments.connect import ConnectMutation, ConnectQuery
from schema.payments.disputes import DisputeMutation, DisputeQuery
from schema.payments.escrow import EscrowMutation
from schema.payments.wallets import WalletMutation, WalletQuery
from schema.persisted.policy import PersistedDocuments
from schema.released import released_when_complete

Query = merge_types(
    "Query",
    (
        NodeQuery,
        UserQuery,
        TaskQuery,
        DiscoveryQuery,
        BookingQuery,
        ReviewQuery,
        NotificationQuery,
        NotificationPreferencesQuery,
        PhoneQuery,
        PushQuery,
        ChatQuery,
        AdminQuery,
        AdminPaymentsQuery,
        NotificationAdminQuery,
        AdminEscrowsQuery,
        DisputeQuery,
        ConnectQuery,
        WalletQuery,
        MarketplaceQuery,
        PartnerOwnerQuery,
        PartnerAdminQuery,
    ),
)
Mutation = merge_types(
    "Mutation",
    (
        AuthMutation,
        UserMutation,
        ProfileMutation,
        TaskMutation,
        MilestoneMutation,
        PackageMutation,
        BookingMutation,
        ReviewMutation,
        NotificationMutation,
        NotificationPreferencesMutation,
        PhoneMutation,
        PushMutation,
        ChatMutation,
        AdminMutation,
        AdminPaymentsMutation,
        NotificationAdminMutation,
        AdminEscrowsMutation,
        DisputeMutation,
        ConnectMutation,
        WalletMutation,
        EscrowMutation,
        PartnerOwnerMutation,
        PartnerAdminMutation,
    ),
)
Subscription = merge_types("Subscription", (LiveSubscription, ChatSubscription))
FRAMED_SOURCES: Mapping[str, FramedSource] = {"messageAdded": framed_message_added}
"""Root subscription fields with a source for the framed path (schema/live/framed.py)."""


class PerEventExecutor(StrawberryGraphQLCoreExecutionContext):
    """graphql-core's executor, without its leak on long subscriptions.

    graphql-core 3.3 memoises collected subfields by the identity of each event's field
    list, in a dict that per-event executors share with the subscription's executor: it
    grows by about a kilobyte per event for as long as the subscription lives. Each event
    gets a dict of its own, freed with it.
    """

    _shareable: bool | None = None
    """Whether this subscription's result for an event depends on the event alone."""
    _share_as: object = None
    """On a per-event executor whose result others may reuse: the event."""

    def build_per_event_executor(self, payload: Any) -> Executor[Any]:
        if self._shareable is None:
            self._shareable = is_viewer_independent(
                self.schema, self.operation, self.fragment_definitions
            )
        if self._shareable and (result := shared_results.get(payload, self.operation)):
            # graphql-core only asks a per-event executor to execute_operation.
            return cast("Executor[Any]", _Executed(result))
        executor = cast("PerEventExecutor", super().build_per_event_executor(payload))
        executor._relevant_sub_fields = {}
        if self._shareable:
            executor._share_as = payload
        return executor

    def execute_field(
        self,
        parent_type: GraphQLObjectType,
        source: Any,
        field_details_list: FieldDetailsList,
        path: Path,
        position_context: Any,
    ) -> Any:
        # Leaf fields read straight off their source, completed in line
        # (schema/leaf_fields.py); every other field, graphql-core's way.
        node = field_details_list[0].node
        field_def = self.schema.get_field(parent_type, node.name.value)
        leaf = leaf_read(field_def.resolve) if field_def is not None else None
        manager = self.middleware_manager  # Strawberry's own execute passes an empty one
        if leaf is not None and not node.arguments and (manager is None or not manager.middlewares):
            assert field_def is not None
            answer = execute_leaf(
                self,
                leaf,
                field_def,
                parent_type,
                source,
                field_details_list,
                path,
                position_context,
            )
            if answer is not DECLINED:
                return answer
        return super().execute_field(
            parent_type, source, field_details_list, path, position_context
        )

    def execute_operation(self, serially: bool | None = None) -> Any:
        result = super().execute_operation(serially)
        # Only a result already complete: an awaited one would be executed by every
        # subscriber that came before it was done.
        if self._share_as is not None and isinstance(result, ExecutionResult):
            shared_results.put(self._share_as, self.operation, result)
        # A query's objects go with its answer, not at a later collection (schema/released.py).
        return released_when_complete(self, result)


class _Executed:
    """An event's result executed for another subscriber, in place of an executor."""

    def __init__(self, result: ExecutionResult) -> None:
        self.result = result

    def execute_operation(self, serially: bool | None = None) -> ExecutionResult:
        return self.result


class GigqlSchema(strawberry.Schema):
    def __init__(
        self,
        settings: Settings,
        rate_limits: RateLimits | None = None,
        *,
        query: type = Query,
        mutation: type | None = Mutation,
        subscription: type | None = Subscription,
        graph: str = "main",
        framed_sources: Mapping[str, FramedSource] = FRAMED_SOURCES,
        **kwargs: Any,
    ) -> None:
        """The main graph by default; another (the partner API's) with its own roots and
        its own name in `/metrics` (`graph`). `framed_sources`: the subscription root fields
        that may be written as pre-framed text (schema/live/framed.py)."""
        self.settings = settings
        self.http_metrics = OperationMetrics(graph, "http", enabled=settings.metrics)
        self.socket_metrics = OperationMetrics(graph, "websocket", enabled=settings.metrics)
        self.rate_limits = rate_limits
        """Counted per operation when set (schema/common/rate_limits.py); None counts nothing."""
        self.documents = PreparedDocuments(
            Limits(
                max_depth=settings.max_query_depth,
                max_cost=settings.max_query_cost,
                max_aliases=settings.max_aliases,
                default_page_size=settings.default_page_size,
                max_page_size=settings.max_page_size,
            ),
            max_tokens=settings.max_tokens,
            max_length=settings.max_query_length,
            introspection=settings.introspection_enabled,
        )
        self.framed_sources = framed_sources
        self.persisted = PersistedDocuments(self.documents, apq=settings.persisted_queries_enabled)
        """Documents named instead of sent (schema/persisted/): APQ in this process by
        default; the app gives the main graph its manifest and both the shared store."""
        super().__init__(
            query=query,
            mutation=mutation,
            subscription=subscription,
            execution_context_class=PerEventExecutor,
            scalar_overrides=SCALAR_OVERRIDES,
            extensions=[lambda: UsePreparedDocuments(self.documents)],
            config=StrawberryConfig(
                batching_config={"max_operations": settings.max_batch_operations},
                # Suggestions ("did you mean ...?") would leak the schema introspection hides.
                disable_field_suggestions=not settings.introspection_enabled,
                relay_max_results=settings.max_page_size,
            ),
            **kwargs,
        )
        # Per-field work that does not depend on the field, done once here: resolvers
        # without arguments or extensions are called directly (schema/direct_resolvers.py),
        # and node ids computed where Strawberry's own resolution gives the same text
        # (schema/node_ids.py; after the first, whose resolver it falls back on).
        call_resolvers_directly(self.schema_converter)
        speed_up_node_ids(self._schema)
        self.framed = FramedSubscriptions(self, framed_sources)
        """Subscriptions written as pre-framed text (schema/live/framed.py)."""

    async def prepared(self, query: object) -> Prepared | None:
        """A text prepared off the event loop (schema/common/prepared.py), or None if not text."""
        if not isinstance(query, str):
            return None
        return await self.documents.prepared_off_loop(self._schema, query)

    async def stream(
        self,
        query: str | None,
        variable_values: dict[str, Any] | None = None,
        context_value: Any | None = None,
        root_value: Any | None = None,
        operation_name: str | None = None,
        operation_extensions: dict[str, Any] | None = None,
        allowed_operation_types: Iterable[OperationType] | None = None,
    ) -> StreamResult:
        """How Strawberry runs operations itself (over websocket). Each runs in a context of
        its own, authorised as of its start (schema/common/context.py `for_operation`), and is
        prepared off the event loop and counted against the rate limits before Strawberry
        looks at it; one refused answers with why, running nothing."""
        if isinstance(context_value, Context) and context_value.socket is not None:
            try:
                context_value = await context_value.for_operation()
            except DomainError as error:
                return _refused([coded_error(error)])
        refusal = await self._refusal(query, operation_name, context_value)
        if refusal is not None:
            return _refused(refusal)
        results = await self._framed(context_value, operation_name, variable_values)
        if results is None:
            results = await super().stream(
                query,
                variable_values,
                context_value,
                root_value,
                operation_name,
                operation_extensions,
                allowed_operation_types,
            )
        metrics = self.socket_metrics
        if not metrics.enabled:
            return results
        prepared = getattr(context_value, "prepared", None)
        if not isinstance(prepared, Prepared) or prepared.errors:
            # Strawberry answers with the prepared document's errors.
            metrics.record(*metrics.label(None, None), metrics.refused(prepared))
            return results
        name, kind = metrics.label(prepared, operation_name)
        if isinstance(results, HubWritten):
            # Not a stream to wrap: a subscription, live until the writer is over.
            metrics.record(name, kind, Outcome.OK)
            SUBSCRIPTIONS_LIVE.inc()
            results.on_end(SUBSCRIPTIONS_LIVE.dec)
            return cast("StreamResult", results)
        return _counted(results, metrics, name, kind)

    async def _framed(
        self, context: object, operation_name: str | None, variables: dict[str, Any] | None
    ) -> StreamResult | None:
        """A subscription admitted and counted, whose selection cannot depend on the viewer,
        written as pre-framed text (schema/live/framed.py); None for the ordinary path."""
        prepared = getattr(context, "prepared", None)
        if not isinstance(prepared, Prepared) or prepared.errors or prepared.document is None:
            return None

        # Only the request id: the closure lives as long as the stream, and the operation's
        # context (its caller as read at the start, its loaders) need not.
        request_id = context.meta.request_id if isinstance(context, Context) else None
        debug = self.settings.debug

        def report(errors: list[GraphQLError]) -> None:
            report_errors(errors, request_id, debug)

        results = await self.framed.start(
            context, prepared.document, operation_name, variables, report
        )
        # Not a generator, for graphql-transport-ws's handler to run in place of one
        # (server/graphql_view.py `_send_result_stream`).
        return cast("StreamResult | None", results)

    async def _refusal(
        self, query: str | None, operation_name: str | None, context: object
    ) -> list[GraphQLError] | None:
        try:
            if isinstance(context, Context) and context.socket is not None:
                # Counted here over websocket; HTTP counts in the view, before it runs anything.
                prepared = await count_socket_operation(self, context, query, operation_name)
            else:
                prepared = await self.prepared(query)
        except RateLimited as limited:
            known = self.documents.cached(query) if isinstance(query, str) else None
            metrics = self.socket_metrics
            metrics.record(*metrics.label(known, operation_name), Outcome.RATE_LIMITED)
            return [limited.error()]
        if isinstance(context, Context):
            context.prepared = prepared
        if prepared is None:
            return None
        metrics = self.socket_metrics
        if prepared.document is None:
            metrics.record(*metrics.label(None, None), metrics.refused(prepared))
            return prepared.errors  # would not parse: not parsed again on the event loop
        if not prepared.errors:
            unknown = unknown_operation(prepared.document, operation_name)
            if unknown is not None:
                metrics.record(*metrics.label(None, None), Outcome.INVALID)
                return [unknown]  # said here, in our words, not as Strawberry's failure
        return None

    def process_errors(
        self, errors: list[GraphQLError], execution_context: ExecutionContext | None = None
    ) -> None:
        context = execution_context.context if execution_context else None
        request_id = context.meta.request_id if isinstance(context, Context) else None
        report_errors(errors, request_id, self.settings.debug)


async def _counted(
    results: StreamResult, metrics: OperationMetrics, name: str, kind: str
) -> StreamResult:
    """A websocket operation's results, counted: a subscription as live while it runs, a
    query or mutation by whether its result has errors."""
    live = kind == "subscription"
    outcome = Outcome.OK
    if live:
        metrics.record(name, kind, outcome)
        SUBSCRIPTIONS_LIVE.inc()
    try:
        async for result in results:
            if not live and getattr(result, "errors", None):
                outcome = Outcome.ERRORS
            yield result
    finally:
        if live:
            SUBSCRIPTIONS_LIVE.dec()
        else:
            metrics.record(name, kind, outcome)
        await results.aclose()


async def _refused(errors: list[GraphQLError]) -> StreamResult:
    """The stream of an operation refused before it ran, as Strawberry makes its own."""
    yield PreExecutionError(data=None, errors=errors)


def build_schema(
    settings: Settings | None = None, rate_limits: RateLimits | None = None
) -> GigqlSchema:
    return GigqlSchema(settings or Settings(), rate_limits)
