"""Relay conventions: global ids, `node`/`nodes`, and connections built from pages."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from typing import Any, TypeVar

import strawberry
from beanie import Document, PydanticObjectId
from bson import ObjectId
from bson.errors import InvalidId
from strawberry import relay
from strawberry.types.nodes import FragmentSpread, InlineFragment, Selection

from documents.errors import DomainError, ErrorCode
from resolvers.accounts.auth.viewer import Viewer
from resolvers.common.pagination import Page, PageCursor, PageRequest, page_request
from schema.common.context import Info

N = TypeVar("N")
C = TypeVar("C", bound=relay.Connection[Any])
D = TypeVar("D", bound=Document)


def object_id(value: str) -> ObjectId | None:
    try:
        return PydanticObjectId(value)
    except (InvalidId, TypeError):
        return None


def decode_id(global_id: relay.GlobalID, node_type: type[relay.Node], field: str) -> ObjectId:
    """The database id inside a global id, which must name a node of `node_type`."""
    expected = node_type.__strawberry_definition__.name  # type: ignore[attr-defined]
    oid = object_id(global_id.node_id) if global_id.type_name == expected else None
    if oid is None:
        raise DomainError(ErrorCode.INVALID_ID, f"Not the id of a {expected}.", field)
    return oid


def object_ids(node_ids: Iterable[str]) -> list[ObjectId | None]:
    return [object_id(i) for i in node_ids]


async def owned_documents(
    info: Info, node_ids: Iterable[str], document: type[D], owner_field: str
) -> list[D | None]:
    """The documents with these ids, in order, where the viewer owns them (their
    `owner_field` is the viewer) or is an admin; None elsewhere."""
    viewer = await info.context.viewer()
    ids = object_ids(node_ids)
    if viewer is None:
        return [None for _ in ids]
    return await _in_order(
        document, ids, {} if viewer.user.is_admin else {owner_field: viewer.user_id}
    )


async def admin_documents(info: Info, node_ids: Iterable[str], document: type[D]) -> list[D | None]:
    """The documents with these ids, in order, for an admin; None for anyone else."""
    viewer = await info.context.viewer()
    ids = object_ids(node_ids)
    if viewer is None or not viewer.user.is_admin:
        return [None for _ in ids]
    return await _in_order(document, ids, {})


async def visible_documents(
    info: Info,
    node_ids: Iterable[str],
    load: Callable[[list[ObjectId]], Awaitable[list[D | None]]],
    may_see: Callable[[Viewer, D], bool],
) -> list[D | None]:
    """The documents with these ids, in order, loaded with `load` (a data loader's
    `load_many`, say), where the viewer may see them; None elsewhere."""
    viewer = await info.context.viewer()
    ids = object_ids(node_ids)
    if viewer is None:
        return [None for _ in ids]
    loaded = await load([i for i in ids if i is not None])
    found: dict[ObjectId | None, D] = {
        d.id: d for d in loaded if d is not None and may_see(viewer, d)
    }
    return [found.get(i) if i is not None else None for i in ids]


async def _in_order(
    document: type[D], ids: list[ObjectId | None], query: dict[str, object]
) -> list[D | None]:
    """The documents with these ids that also match `query`, in order; None elsewhere."""
    query = {"_id": {"$in": [i for i in ids if i is not None]}, **query}
    found: dict[ObjectId | None, D] = {d.id: d for d in await document.find(query).to_list()}
    return [found.get(i) if i is not None else None for i in ids]


def requested_page(info: Info, first: int | None, after: str | None) -> PageRequest:
    """The page asked for of the connection being resolved, whose cursors are bound to
    it (`Query.tasks`, `Task.offers`...): a cursor works only where it came from."""
    services = info.context.services
    connection = services.cursors.of(f"{info.path.typename}.{info.field_name}")
    return page_request(
        first,
        after,
        connection,
        default=services.settings.default_page_size,
        maximum=services.settings.max_page_size,
    )


def to_connection(connection_type: type[C], page: Page[D], node: Callable[[D], Any]) -> C:
    edges: list[relay.Edge[Any]] = [_Edge(cursor, node(doc)) for cursor, doc in page.items]
    return connection_type(
        edges=edges,
        page_info=_PageInfo(
            page.has_next_page,
            page.has_previous_page,
            page.items[0][0] if page.items else None,
            page.items[-1][0] if page.items else None,
        ),
    )


# The cursors of a page are signed only when a query selects them (most read
# `pageInfo.endCursor` alone): these answer Relay's `Edge` and `PageInfo` with the
# `cursor`, `startCursor` and `endCursor` fields read from a `PageCursor` on demand.


class _Edge(relay.Edge[Any]):
    def __init__(self, cursor: PageCursor, node: Any) -> None:
        self._cursor = cursor
        self.node = node

    @property
    def cursor(self) -> str:  # type: ignore[override] # read-only: the page's cursor
        return self._cursor.text


class _PageInfo(relay.PageInfo):
    def __init__(
        self,
        has_next_page: bool,
        has_previous_page: bool,
        start: PageCursor | None,
        end: PageCursor | None,
    ) -> None:
        self.has_next_page = has_next_page
        self.has_previous_page = has_previous_page
        self._start = start
        self._end = end

    @property
    def start_cursor(self) -> str | None:  # type: ignore[override] # the page's
        return self._start.text if self._start is not None else None

    @property
    def end_cursor(self) -> str | None:  # type: ignore[override] # the page's
        return self._end.text if self._end is not None else None


def selects(info: Info, *path: str) -> bool:
    """Whether the query selects the field at `path` below the field being resolved
    (`selects(info, "edges", "node", "poster")`), through fragments and aliases.
    `@skip`/`@include` are not looked at: a field skipped counts as selected, which
    may cost a read ahead that was not needed but never leaves one out."""
    # Strawberry gives the field being resolved (once per node naming it), with its
    # selections below.
    return any(_selects(field.selections, path) for field in info.selected_fields)


def _selects(selections: Iterable[Selection], path: tuple[str, ...]) -> bool:
    if not path:
        return True
    for selection in selections:
        # A fragment's selections are the parent's own; a field's are one level down.
        if isinstance(selection, FragmentSpread | InlineFragment):
            if _selects(selection.selections, path):
                return True
        elif selection.name == path[0] and _selects(selection.selections, path[1:]):
            return True
    return False


@strawberry.type
class NodeQuery:
    @strawberry.field(description="Fetch any object by its global id; null if not visible.")
    async def node(self, info: Info, id: relay.GlobalID) -> relay.Node | None:
        nodes = await _resolve(info, [id])
        return nodes[0]

    @strawberry.field(description="Fetch objects by global ids, in order; null where not visible.")
    async def nodes(self, info: Info, ids: list[relay.GlobalID]) -> list[relay.Node | None]:
        maximum = info.context.services.settings.max_page_size
        if len(ids) > maximum:
            raise DomainError(ErrorCode.INVALID_INPUT, f"At most {maximum} ids at once.", "ids")
        return await _resolve(info, ids)


async def _resolve(info: Info, ids: list[relay.GlobalID]) -> list[relay.Node | None]:
    """Group ids by type so that each type resolves its ids in one batch."""
    by_type: dict[str, list[int]] = {}
    for position, global_id in enumerate(ids):
        by_type.setdefault(global_id.type_name, []).append(position)
    results: list[relay.Node | None] = [None] * len(ids)
    for type_name, positions in by_type.items():
        node_type = _node_type(info, type_name)
        if node_type is None:
            continue
        resolved = await node_type.resolve_nodes(  # type: ignore[misc]
            info=info, node_ids=[ids[p].node_id for p in positions], required=False
        )
        for position, node in zip(positions, resolved, strict=True):
            results[position] = node
    return results


def _node_type(info: Info, type_name: str) -> type[relay.Node] | None:
    definition = info.schema.get_type_by_name(type_name)
    origin = getattr(definition, "origin", None)
    if isinstance(origin, type) and issubclass(origin, relay.Node):
        return origin
    return None
