"""Which partner documents a request may see: its own partner's, over a key; any, for an
admin in the main graph; none for anyone else. Every partner type's `resolve_nodes` and
every lookup by id goes through here, so `node` reveals nothing across partners.

And which of their fields a key may read: wallet data (balances, metadata, external ids,
statements, transactions) needs READ_WALLETS wherever it is reached, a mutation's payload
or a webhook delivery as much as a query. A type holding it is declared with
`@scoped(ApiScope.READ_WALLETS, public=...)`, so that each of its fields, a field added
later too, needs the scope unless it is named public."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from beanie import Document
from strawberry.permission import BasePermission
from strawberry.types.base import get_object_definition

from documents.partners.api_keys import ApiScope
from schema.common.context import Info
from schema.common.permissions import allow
from schema.common.relay import object_ids
from schema.partners.context import PartnerContext

D = TypeVar("D", bound=Document)
T = TypeVar("T")


class HasScope(BasePermission):
    """A partner's key with `scope`; any other caller (an admin in the main graph, who
    reached the object through the admin's own checks) passes."""

    error_extensions = {"code": "FORBIDDEN"}

    def __init__(self, scope: ApiScope) -> None:
        self.scope = scope
        self.message = f"This API key lacks the {scope.value} scope."

    def has_permission(self, source: Any, info: Info, **kwargs: Any) -> bool:
        context = info.context
        if not isinstance(context, PartnerContext):
            return True
        assert context.partner_access is not None, "the partner view authenticates first"
        return context.partner_access.has(self.scope)


def scoped(scope: ApiScope, *, public: Iterable[str]) -> Callable[[type[T]], type[T]]:
    """Over `@strawberry.type`: every field of the type but those in `public` needs
    `scope` (FORBIDDEN without it)."""

    def decorate(cls: type[T]) -> type[T]:
        definition = get_object_definition(cls, strict=True)
        open_fields = set(public)
        for field in definition.fields:
            # A relay node's `id` is the field named so in GraphQL, `_id` in Python.
            names = {field.python_name, field.graphql_name}
            if names.isdisjoint(open_fields):
                field.extensions.extend(allow(HasScope(scope)))
        return cls

    return decorate


async def visible_documents(
    info: Info, node_ids: Iterable[str], document: type[D], scope: ApiScope
) -> list[D | None]:
    """The documents with these ids, in order, where the caller may see them; None
    elsewhere (a partner's key needs `scope`; the documents carry `partner_id`)."""
    ids = object_ids(node_ids)
    context = info.context
    if isinstance(context, PartnerContext):
        access = context.partner(scope)
        query: dict[str, object] = {"partner_id": access.partner_id}
    else:
        viewer = await context.viewer()
        if viewer is None or not viewer.user.is_admin:
            return [None for _ in ids]
        query = {}
    wanted = [i for i in ids if i is not None]
    found = {d.id: d async for d in document.find({**query, "_id": {"$in": wanted}})}
    return [found.get(i) if i is not None else None for i in ids]
