"""The caller's notifications: listing and marking them read."""

from __future__ import annotations

from bson import ObjectId

from documents.clock import utcnow
from documents.events import Notification
from resolvers.accounts.auth.viewer import Viewer


async def mark_read(viewer: Viewer, ids: list[ObjectId] | None) -> int:
    """Mark the given notifications (or, with None, all) read; returns how many changed."""
    query: dict[str, object] = {"user_id": viewer.user_id, "read_at": None}
    if ids is not None:
        query["_id"] = {"$in": ids}
    result = await Notification.get_pymongo_collection().update_many(
        query, {"$set": {"read_at": utcnow()}}
    )
    return result.modified_count


async def unread_count(viewer: Viewer) -> int:
    return await Notification.find(
        Notification.user_id == viewer.user_id,
        Notification.read_at == None,  # noqa: E711
    ).count()
