"""Webhooks to partners in the partner graph: endpoints and their secrets, deliveries
and redelivery. Every field needs the key's MANAGE_WEBHOOKS scope."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import cast

import strawberry
from bson import ObjectId
from strawberry import relay

from documents.partners.api_keys import ApiScope
from documents.partners.webhooks import (
    ATTEMPTS_KEPT,
    DeliveryAttempt,
    DeliveryStatus,
    PartnerEventType,
    PartnerWebhookDelivery,
    PartnerWebhookEndpoint,
    PartnerWebhookEvent,
)
from resolvers.partners.ids import WALLET_TYPE, global_id
from resolvers.partners.webhooks import deliveries, endpoints
from resolvers.partners.webhooks.deliveries import DeliveryFilter
from resolvers.partners.webhooks.sender import event_body, event_id
from schema.common.context import Info
from schema.common.copying import copied
from schema.common.limits import bounded
from schema.common.payloads import Payload, mutation_payload
from schema.common.permissions import allow
from schema.common.relay import decode_id, requested_page, to_connection
from schema.partners.context import PartnerInfo
from schema.partners.scoping import HasScope, visible_documents
from schema.partners.types import PartnerWalletNode

DeliveryStatusType = strawberry.enum(
    DeliveryStatus,
    name="PartnerWebhookDeliveryStatus",
    description="PENDING: to be sent, or retried at nextAttemptAt; DELIVERED: the endpoint "
    "answered 2xx; DEAD: retried for the retry period without success, or its endpoint was "
    "disabled or deleted (redeliverWebhook sends it again).",
)
EventTypeType = strawberry.enum(
    PartnerEventType,
    name="PartnerEventType",
    description="WALLET_FUNDS_ADDED: wallet.funds_added; TRANSACTION_COMPLETED: "
    "transaction.completed; TRANSACTION_FAILED: transaction.failed; PAYOUT_PROCESSED: "
    "payout.processed; PAYOUT_FAILED: payout.failed.",
)


ENDPOINT_TYPE = "PartnerWebhookEndpoint"


@strawberry.type(
    name=ENDPOINT_TYPE,
    description="Where webhooks are posted, signed with the endpoint's secret (shown only "
    "when the endpoint is made and when the secret is rotated).",
)
class WebhookEndpointNode(relay.Node):
    id: relay.NodeID[str]
    url: str
    enabled: bool
    created_at: datetime
    updated_at: datetime
    previous_secret_expires_at: datetime | None = strawberry.field(
        description="After a rotation: until when the previous secret still signs too."
    )

    @classmethod
    def of(cls, endpoint: PartnerWebhookEndpoint) -> WebhookEndpointNode:
        rotated = [s.expires_at for s in endpoint.secrets if s.expires_at is not None]
        return copied(
            cls,
            endpoint,
            id=str(endpoint.id),
            previous_secret_expires_at=max(rotated) if rotated else None,
        )

    @classmethod
    async def resolve_nodes(  # type: ignore[override] # one signature serves all overloads
        cls, *, info: Info, node_ids: Iterable[str], required: bool = False
    ) -> list[WebhookEndpointNode | None]:
        found = await visible_documents(
            info, node_ids, PartnerWebhookEndpoint, ApiScope.MANAGE_WEBHOOKS
        )
        return [cls.of(e) if e else None for e in found]


@strawberry.type(name="PartnerWebhookAttempt", description="One post of a delivery.")
class WebhookAttemptType:
    at: datetime
    status_code: int | None = strawberry.field(
        description="The endpoint's HTTP status; null when it did not answer."
    )
    response_body: str = strawberry.field(
        description="The first KB of the endpoint's answer, or what went wrong."
    )
    duration_ms: int

    @classmethod
    def of(cls, attempt: DeliveryAttempt) -> WebhookAttemptType:
        return copied(cls, attempt)


@strawberry.type(
    name="PartnerWebhookDelivery", description="One event posted (or to post) to one endpoint."
)
class WebhookDeliveryNode(relay.Node):
    id: relay.NodeID[str]
    event_id: str = strawberry.field(description="`evt_...`: the body's `id`.")
    event_type: PartnerEventType
    endpoint_id: strawberry.ID
    wallet_id: strawberry.ID
    sequence: int = strawberry.field(
        description="The event's number in its wallet's events: deliveries keep this order."
    )
    status: DeliveryStatus
    attempts: list[WebhookAttemptType] = strawberry.field(
        description=f"The latest {ATTEMPTS_KEPT}, the oldest first.",
        metadata=bounded(ATTEMPTS_KEPT),
    )
    next_attempt_at: datetime | None = strawberry.field(
        description="While pending: when it is sent next."
    )
    delivered_at: datetime | None
    created_at: datetime
    payload: str | None = strawberry.field(
        description="The body posted, exactly (JSON); it holds the wallet's balance and the "
        "transaction, so null for a key without READ_WALLETS.",
        extensions=allow(HasScope(ApiScope.READ_WALLETS), silent=True),
    )

    @classmethod
    def of(
        cls, delivery: PartnerWebhookDelivery, event: PartnerWebhookEvent | None
    ) -> WebhookDeliveryNode:
        pending = delivery.status is DeliveryStatus.PENDING
        return copied(
            cls,
            delivery,
            id=str(delivery.id),
            event_id=event_id(event) if event else "",
            endpoint_id=strawberry.ID(global_id(ENDPOINT_TYPE, delivery.endpoint_id)),
            wallet_id=strawberry.ID(global_id(WALLET_TYPE, delivery.wallet_id)),
            attempts=[WebhookAttemptType.of(a) for a in delivery.attempts],
            next_attempt_at=delivery.next_attempt_at if pending else None,
            payload=event_body(event).decode() if event else "",
        )

    @classmethod
    async def resolve_nodes(  # type: ignore[override] # one signature serves all overloads
        cls, *, info: Info, node_ids: Iterable[str], required: bool = False
    ) -> list[WebhookDeliveryNode | None]:
        found = await visible_documents(
            info, node_ids, PartnerWebhookDelivery, ApiScope.MANAGE_WEBHOOKS
        )
        events = await deliveries.events_of([d for d in found if d])
        return [cls.of(d, events.get(d.event_id)) if d else None for d in found]


@strawberry.type
class WebhookDeliveryConnection(relay.Connection[WebhookDeliveryNode]):
    pass


@strawberry.input(name="PartnerWebhookDeliveryFilter", description="Every given field must match.")
class DeliveryFilterInput:
    endpoint_id: relay.GlobalID | None = None
    status: DeliveryStatus | None = None
    event_type: PartnerEventType | None = None
    wallet_id: relay.GlobalID | None = None

    def to_filter(self) -> DeliveryFilter:
        return DeliveryFilter(
            endpoint_id=(
                decode_id(self.endpoint_id, WebhookEndpointNode, "filter.endpointId")
                if self.endpoint_id
                else None
            ),
            status=self.status,
            event_type=self.event_type,
            wallet_id=(
                decode_id(self.wallet_id, PartnerWalletNode, "filter.walletId")
                if self.wallet_id
                else None
            ),
        )


@strawberry.type
class PartnerWebhookQuery:
    @strawberry.field(description="My webhook endpoints, oldest first (at most 5).")
    async def webhook_endpoints(self, info: PartnerInfo) -> list[WebhookEndpointNode]:
        access = info.context.partner(ApiScope.MANAGE_WEBHOOKS)
        return [WebhookEndpointNode.of(e) for e in await endpoints.endpoints_of(access.partner_id)]

    @strawberry.field(description="My webhook deliveries, newest first.")
    async def webhook_deliveries(
        self,
        info: PartnerInfo,
        filter: DeliveryFilterInput | None = None,
        first: int | None = None,
        after: str | None = None,
    ) -> WebhookDeliveryConnection:
        access = info.context.partner(ApiScope.MANAGE_WEBHOOKS)
        return await deliveries_of(cast("Info", info), access.partner_id, filter, first, after)


async def deliveries_of(
    info: Info,
    partner_id: ObjectId,
    filter: DeliveryFilterInput | None,
    first: int | None,
    after: str | None,
) -> WebhookDeliveryConnection:
    """A partner's webhook deliveries, newest first: for the partner's key, and for admins."""
    page = await deliveries.deliveries_of(
        partner_id,
        filter.to_filter() if filter else DeliveryFilter(),
        requested_page(info, first, after),
    )
    events = await deliveries.events_of(page.documents)
    return to_connection(
        WebhookDeliveryConnection,
        page,
        lambda d: WebhookDeliveryNode.of(d, events.get(d.event_id)),
    )


@strawberry.input
class CreateWebhookEndpointInput:
    url: str = strawberry.field(
        description="An https URL of a public host (GIGQL_PARTNER_WEBHOOK_ALLOW_PRIVATE_HOSTS, "
        "in development: also http and private or loopback hosts)."
    )


@strawberry.type
class CreateWebhookEndpointPayload(Payload):
    endpoint: WebhookEndpointNode | None = None
    secret: str | None = strawberry.field(
        default=None, description="`whsec_...`: the signing secret, shown this once."
    )


@strawberry.input
class UpdateWebhookEndpointInput:
    endpoint_id: relay.GlobalID
    url: str | None = strawberry.field(default=None, description="Omit to keep it.")
    enabled: bool | None = strawberry.field(
        default=None,
        description="Omit to keep it. Disabling ends the endpoint's pending deliveries as DEAD.",
    )


@strawberry.type
class UpdateWebhookEndpointPayload(Payload):
    endpoint: WebhookEndpointNode | None = None


@strawberry.input
class DeleteWebhookEndpointInput:
    endpoint_id: relay.GlobalID


@strawberry.type
class DeleteWebhookEndpointPayload(Payload):
    deleted_endpoint_id: strawberry.ID | None = None


@strawberry.input
class RotateWebhookSecretInput:
    endpoint_id: relay.GlobalID
    overlap_seconds: int | None = strawberry.field(
        default=None,
        description="How long the current secret keeps signing too (at most 604800, 7 days; "
        "0: it stops at once). Omitted: GIGQL_PARTNER_WEBHOOK_SECRET_OVERLAP.",
    )


@strawberry.type
class RotateWebhookSecretPayload(Payload):
    endpoint: WebhookEndpointNode | None = None
    secret: str | None = strawberry.field(
        default=None, description="The new signing secret, shown this once."
    )


@strawberry.input
class RevealWebhookSecretInput:
    endpoint_id: relay.GlobalID


@strawberry.type
class RevealWebhookSecretPayload(Payload):
    secret: str | None = strawberry.field(
        default=None, description="The endpoint's current signing secret (`whsec_...`)."
    )


@strawberry.input
class RedeliverWebhookInput:
    delivery_id: relay.GlobalID


@strawberry.type
class RedeliverWebhookPayload(Payload):
    delivery: WebhookDeliveryNode | None = None


@strawberry.type
class PartnerWebhookMutation:
    @strawberry.mutation(
        description="A webhook endpoint, enabled, with its signing secret (shown this once); "
        "at most 5 per partner (INVALID_STATE)."
    )
    @mutation_payload
    async def create_webhook_endpoint(
        self, info: PartnerInfo, input: CreateWebhookEndpointInput
    ) -> CreateWebhookEndpointPayload:
        access = info.context.partner(ApiScope.MANAGE_WEBHOOKS)
        made = await endpoints.create_endpoint(info.context.services, access, input.url)
        return CreateWebhookEndpointPayload(
            endpoint=WebhookEndpointNode.of(made.endpoint), secret=made.secret
        )

    @strawberry.mutation(description="Change an endpoint's URL, or disable or enable it.")
    @mutation_payload
    async def update_webhook_endpoint(
        self, info: PartnerInfo, input: UpdateWebhookEndpointInput
    ) -> UpdateWebhookEndpointPayload:
        access = info.context.partner(ApiScope.MANAGE_WEBHOOKS)
        endpoint = await endpoints.update_endpoint(
            info.context.services,
            access,
            decode_id(input.endpoint_id, WebhookEndpointNode, "endpointId"),
            url=input.url,
            enabled=input.enabled,
        )
        return UpdateWebhookEndpointPayload(endpoint=WebhookEndpointNode.of(endpoint))

    @strawberry.mutation(
        description="Delete an endpoint; its pending deliveries end as DEAD and stay listed."
    )
    @mutation_payload
    async def delete_webhook_endpoint(
        self, info: PartnerInfo, input: DeleteWebhookEndpointInput
    ) -> DeleteWebhookEndpointPayload:
        access = info.context.partner(ApiScope.MANAGE_WEBHOOKS)
        await endpoints.delete_endpoint(
            info.context.services,
            access,
            decode_id(input.endpoint_id, WebhookEndpointNode, "endpointId"),
        )
        return DeleteWebhookEndpointPayload(
            deleted_endpoint_id=strawberry.ID(str(input.endpoint_id))
        )

    @strawberry.mutation(
        description="A new signing secret (shown this once); the current one keeps signing "
        "until overlapSeconds from now, then is dropped. Audited."
    )
    @mutation_payload
    async def rotate_webhook_secret(
        self, info: PartnerInfo, input: RotateWebhookSecretInput
    ) -> RotateWebhookSecretPayload:
        access = info.context.partner(ApiScope.MANAGE_WEBHOOKS)
        overlap = input.overlap_seconds
        made = await endpoints.rotate_secret(
            info.context.services,
            info.context.meta,
            access,
            decode_id(input.endpoint_id, WebhookEndpointNode, "endpointId"),
            timedelta(seconds=overlap) if overlap is not None else None,
        )
        return RotateWebhookSecretPayload(
            endpoint=WebhookEndpointNode.of(made.endpoint), secret=made.secret
        )

    @strawberry.mutation(
        description="The current signing secret of an endpoint, such as the one made from "
        "the partner's application when it was approved. Audited."
    )
    @mutation_payload
    async def reveal_webhook_secret(
        self, info: PartnerInfo, input: RevealWebhookSecretInput
    ) -> RevealWebhookSecretPayload:
        access = info.context.partner(ApiScope.MANAGE_WEBHOOKS)
        secret = await endpoints.reveal_secret(
            info.context.services,
            info.context.meta,
            access,
            decode_id(input.endpoint_id, WebhookEndpointNode, "endpointId"),
        )
        return RevealWebhookSecretPayload(secret=secret)

    @strawberry.mutation(
        description="Send a DELIVERED or DEAD delivery again (the same delivery, PENDING and "
        "due at once, its retry period afresh); INVALID_STATE while it is pending or its "
        "endpoint is deleted or disabled."
    )
    @mutation_payload
    async def redeliver_webhook(
        self, info: PartnerInfo, input: RedeliverWebhookInput
    ) -> RedeliverWebhookPayload:
        access = info.context.partner(ApiScope.MANAGE_WEBHOOKS)
        delivery = await deliveries.redeliver(
            access, decode_id(input.delivery_id, WebhookDeliveryNode, "deliveryId")
        )
        [event] = (await deliveries.events_of([delivery])).values()
        return RedeliverWebhookPayload(delivery=WebhookDeliveryNode.of(delivery, event))
