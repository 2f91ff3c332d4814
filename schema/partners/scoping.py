"""Which partner documents a request may see: its own partner's, over a key; any, for an
admin in the main graph; none for anyone else. Every partner type's `resolve_nodes` and
every lookup by id goes through here, so `node` reveals nothing across partners."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TypeVar

from beanie import Document

from documents.partners.api_keys import ApiScope
from schema.common.context import Info
from schema.common.relay import object_ids
from schema.partners.context import PartnerContext

D = TypeVar("D", bound=Document)


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
