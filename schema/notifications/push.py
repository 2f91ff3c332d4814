"""Web push: the key browsers subscribe with, and registering their subscriptions."""

from __future__ import annotations

from datetime import datetime

import strawberry

from documents.notifications.preferences import PushSubscription
from resolvers.notifications import push_subscriptions
from resolvers.notifications.push_subscriptions import MAX_PUSH_SUBSCRIPTIONS
from schema.common.context import Info
from schema.common.payloads import Payload, mutation_payload
from schema.common.permissions import IsAuthenticated, allow


@strawberry.type
class PushQuery:
    @strawberry.field(
        description="The application server key (VAPID public key, base64url) to give "
        "`pushManager.subscribe` as `applicationServerKey`; null when this server sends no "
        "web push."
    )
    def push_public_key(self, info: Info) -> str | None:
        return push_subscriptions.push_public_key(info.context.services)


@strawberry.type(name="PushSubscription", description="A browser that receives my web push.")
class PushSubscriptionType:
    endpoint: str
    added_at: datetime

    @classmethod
    def of(cls, subscription: PushSubscription) -> PushSubscriptionType:
        return cls(endpoint=subscription.endpoint, added_at=subscription.added_at)


@strawberry.input(description="A PushSubscription's keys, as its JSON gives them.")
class PushSubscriptionKeysInput:
    p256dh: str = strawberry.field(description="The browser's P-256 public key, base64url.")
    auth: str = strawberry.field(description="The 16-byte authentication secret, base64url.")


@strawberry.input(description="A browser's PushSubscription, as `subscription.toJSON()` gives it.")
class RegisterPushSubscriptionInput:
    endpoint: str = strawberry.field(description="An https URL of the browser's push service.")
    keys: PushSubscriptionKeysInput
    expiration_time: float | None = strawberry.field(
        default=None,
        description="Taken so that the JSON may be sent as it is, and not used: a push "
        "service answers that an expired subscription is gone, and it is dropped then.",
    )


@strawberry.type
class RegisterPushSubscriptionPayload(Payload):
    subscription: PushSubscriptionType | None = None


@strawberry.input
class RemovePushSubscriptionInput:
    endpoint: str


@strawberry.type
class RemovePushSubscriptionPayload(Payload):
    removed: bool | None = strawberry.field(
        default=None, description="False: the endpoint was not registered for me."
    )


@strawberry.type
class PushMutation:
    @strawberry.mutation(
        extensions=allow(IsAuthenticated()),
        description="Receive web push in this browser. The same endpoint again replaces its "
        f"keys; a person keeps {MAX_PUSH_SUBSCRIPTIONS} browsers, the one registered longest "
        "ago dropped for a new one, so register on each visit.",
    )
    @mutation_payload
    async def register_push_subscription(
        self, info: Info, input: RegisterPushSubscriptionInput
    ) -> RegisterPushSubscriptionPayload:
        viewer = await info.context.require_viewer()
        subscription = await push_subscriptions.register(
            viewer, input.endpoint, input.keys.p256dh, input.keys.auth
        )
        return RegisterPushSubscriptionPayload(subscription=PushSubscriptionType.of(subscription))

    @strawberry.mutation(
        extensions=allow(IsAuthenticated()),
        description="Receive no more web push at an endpoint (unsubscribed, or signing out).",
    )
    @mutation_payload
    async def remove_push_subscription(
        self, info: Info, input: RemovePushSubscriptionInput
    ) -> RemovePushSubscriptionPayload:
        viewer = await info.context.require_viewer()
        return RemovePushSubscriptionPayload(
            removed=await push_subscriptions.remove(viewer, input.endpoint)
        )
