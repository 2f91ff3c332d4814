"""Operator views and actions: the audit log, suspending accounts."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

import strawberry
from bson import ObjectId
from strawberry import relay
from strawberry.scalars import JSON

from documents.accounts.audit import AuditEvent, AuditKind
from resolvers.accounts import admin
from resolvers.common.pagination import paginate
from schema.accounts.users import UserNode
from schema.common.context import Info
from schema.common.copying import copied
from schema.common.payloads import Payload, mutation_payload
from schema.common.permissions import IsAdmin, allow
from schema.common.relay import admin_documents, decode_id, requested_page, to_connection

AuditKindType = strawberry.enum(AuditKind, name="AuditEventKind")


@strawberry.type(name="AuditEvent", description="A security event, visible to admins.")
class AuditEventNode(relay.Node):
    id: relay.NodeID[str]
    kind: AuditKind
    at: datetime
    ip: str | None
    user_agent: str | None
    request_id: str | None
    details: JSON
    doc: strawberry.Private[AuditEvent]

    @classmethod
    def of(cls, event: AuditEvent) -> AuditEventNode:
        return copied(cls, event, id=str(event.id), details=JSON(event.details), doc=event)

    @classmethod
    async def resolve_nodes(  # type: ignore[override] # one signature serves all overloads
        cls, *, info: Info, node_ids: Iterable[str], required: bool = False
    ) -> list[AuditEventNode | None]:
        events = await admin_documents(info, node_ids, AuditEvent)
        return [cls.of(e) if e else None for e in events]

    @strawberry.field(description="The account the event is about.")
    async def user(self, info: Info) -> UserNode | None:
        return await _user(info, self.doc.user_id)

    @strawberry.field(description="Who caused it, when that was someone else.")
    async def actor(self, info: Info) -> UserNode | None:
        return await _user(info, self.doc.actor_id)


async def _user(info: Info, user_id: ObjectId | None) -> UserNode | None:
    if user_id is None:
        return None
    user = await info.context.loaders.users.load(user_id)
    return UserNode.of(user) if user else None


@strawberry.type
class AuditEventConnection(relay.Connection[AuditEventNode]):
    pass


@strawberry.type
class AdminQuery:
    @strawberry.field(extensions=allow(IsAdmin()), description="The audit log, newest first.")
    async def audit_events(
        self,
        info: Info,
        first: int | None = None,
        after: str | None = None,
        user_id: relay.GlobalID | None = None,
        kind: AuditKind | None = None,
    ) -> AuditEventConnection:
        filters: dict[str, Any] = {}
        if user_id is not None:
            filters["user_id"] = decode_id(user_id, UserNode, "userId")
        if kind is not None:
            filters["kind"] = kind.value
        page = await paginate(
            AuditEvent, filters, [("at", -1), ("_id", -1)], requested_page(info, first, after)
        )
        return to_connection(AuditEventConnection, page, AuditEventNode.of)


@strawberry.input
class SuspendUserInput:
    user_id: relay.GlobalID
    reason: str


@strawberry.type
class SuspendUserPayload(Payload):
    user: UserNode | None = None


@strawberry.input
class ReinstateUserInput:
    user_id: relay.GlobalID


@strawberry.type
class ReinstateUserPayload(Payload):
    user: UserNode | None = None


@strawberry.type
class AdminMutation:
    @strawberry.mutation(
        extensions=allow(IsAdmin()),
        description="Stop an account: its sessions end and its tokens stop working at once.",
    )
    @mutation_payload
    async def suspend_user(self, info: Info, input: SuspendUserInput) -> SuspendUserPayload:
        admin_viewer = await info.context.require_viewer()
        user_id = decode_id(input.user_id, UserNode, "userId")
        user = await admin.suspend_user(
            info.context.services, info.context.meta, admin_viewer, user_id, input.reason
        )
        return SuspendUserPayload(user=UserNode.of(user))

    @strawberry.mutation(extensions=allow(IsAdmin()))
    @mutation_payload
    async def reinstate_user(self, info: Info, input: ReinstateUserInput) -> ReinstateUserPayload:
        admin_viewer = await info.context.require_viewer()
        user_id = decode_id(input.user_id, UserNode, "userId")
        user = await admin.reinstate_user(info.context.meta, admin_viewer, user_id)
        return ReinstateUserPayload(user=UserNode.of(user))
