"""Declarative access rules for fields: `@strawberry.field(extensions=allow(IsAdmin()))`.

A missing or bad token fails with its own code (UNAUTHENTICATED, TOKEN_EXPIRED, ...),
so that clients know whether to refresh or log in; a valid caller without the right
gets FORBIDDEN. `allow(..., silent=True)` makes a nullable field read as null instead,
for private details of objects the caller may otherwise see.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any, Protocol

from bson import ObjectId
from strawberry.extensions import FieldExtension
from strawberry.permission import BasePermission, PermissionExtension

from documents.accounts.users import Role
from schema.common.context import Info


class Owned(Protocol):
    @property
    def owner_id(self) -> ObjectId: ...


class _Rule(BasePermission):
    error_extensions = {"code": "FORBIDDEN"}


class IsAuthenticated(_Rule):
    message = "Log in to do this."
    error_extensions = {"code": "UNAUTHENTICATED"}

    async def has_permission(self, source: Any, info: Info, **kwargs: Any) -> bool:
        return await info.context.require_viewer() is not None


class HasRole(_Rule):
    def __init__(self, role: Role) -> None:
        self.role = role
        self.message = f"Only users with the {role.value} role may do this."

    async def has_permission(self, source: Any, info: Info, **kwargs: Any) -> bool:
        viewer = await info.context.require_viewer()
        return viewer.user.has_role(self.role)


class IsAdmin(HasRole):
    def __init__(self) -> None:
        super().__init__(Role.ADMIN)


class IsOwnerOrAdmin(_Rule):
    """The object belongs to the caller (its `owner_id`), or the caller is an admin."""

    message = "Only its owner may see or change this."

    async def has_permission(self, source: Owned, info: Info, **kwargs: Any) -> bool:
        viewer = await info.context.viewer()
        if viewer is None:
            return False
        return source.owner_id == viewer.user_id or viewer.user.is_admin


def allow(*permissions: BasePermission, silent: bool = False) -> list[FieldExtension]:
    return [PermissionExtension(permissions=list(permissions), fail_silently=silent)]


class Involved(Protocol):
    @property
    def participant_ids(self) -> Collection[ObjectId]: ...


class IsParticipantOrAdmin(_Rule):
    """The caller takes part in the object (its poster, tasker, customer...), or is an admin."""

    message = "Only the people involved may see this."

    async def has_permission(self, source: Involved, info: Info, **kwargs: Any) -> bool:
        viewer = await info.context.viewer()
        if viewer is None:
            return False
        return viewer.user_id in source.participant_ids or viewer.user.is_admin


class MaySeeContacts(_Rule):
    """Contact details: the person, admins, and whoever works with them (an accepted
    offer or a confirmed booking binds the two)."""

    message = "Only people working together may see each other's contact details."

    async def has_permission(self, source: Owned, info: Info, **kwargs: Any) -> bool:
        viewer = await info.context.viewer()
        if viewer is None:
            return False
        if source.owner_id == viewer.user_id or viewer.user.is_admin:
            return True
        return await info.context.loaders.counterparts_of(viewer.user_id).load(source.owner_id)
