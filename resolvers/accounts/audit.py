"""Writing the security audit log."""

from __future__ import annotations

from typing import Any

from bson import ObjectId
from pymongo.asynchronous.client_session import AsyncClientSession

from documents.accounts.audit import AuditEvent, AuditKind
from resolvers.common.services import RequestMeta


async def record(
    kind: AuditKind,
    meta: RequestMeta,
    *,
    user_id: ObjectId | None = None,
    actor_id: ObjectId | None = None,
    session: AsyncClientSession | None = None,
    **details: Any,
) -> None:
    event = AuditEvent(
        kind=kind,
        user_id=user_id,
        actor_id=actor_id,
        ip=meta.ip,
        user_agent=meta.user_agent,
        request_id=meta.request_id,
        details=details,
    )
    await event.insert(session=session)
