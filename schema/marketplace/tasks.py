"""Tasks and offers as the graph shows them, and the queries that list them."""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Iterable
from datetime import datetime
from enum import Enum

import strawberry
from bson import ObjectId
from strawberry import relay

from documents.marketplace.offers import Offer, OfferStatus
from documents.marketplace.tasks import MAX_MILESTONES, StatusChange, Task, TaskStatus
from documents.payments.escrow import task_deal
from resolvers.accounts.auth.viewer import Viewer
from resolvers.common.pagination import Page, paginate
from resolvers.marketplace import task_search
from resolvers.marketplace.offers import can_see_offer
from resolvers.marketplace.task_search import TaskSort
from schema.accounts.users import UserNode, user_node, user_node_now
from schema.common.context import Info
from schema.common.copying import copied
from schema.common.limits import bounded
from schema.common.permissions import IsAuthenticated, IsParticipantOrAdmin, allow
from schema.common.relay import (
    decode_id,
    object_ids,
    requested_page,
    selects,
    to_connection,
    visible_documents,
)
from schema.common.values import Area, MoneyType, NearInput, PlaceType
from schema.marketplace.milestones import MilestoneType
from schema.payments.escrow import EscrowNode, escrow_of

TaskStatusType = strawberry.enum(TaskStatus, name="TaskStatus")
OfferStatusType = strawberry.enum(OfferStatus, name="OfferStatus")
TaskSortType = strawberry.enum(TaskSort, name="TaskSort")


@strawberry.type(name="TaskStatusChange")
class TaskStatusChangeType:
    status: TaskStatus
    at: datetime
    note: str | None
    by_id: strawberry.Private[ObjectId | None]

    @strawberry.field
    async def by(self, info: Info) -> UserNode | None:
        return await user_node(info, self.by_id)

    @classmethod
    def of(cls, change: StatusChange) -> TaskStatusChangeType:
        return copied(cls, change, by_id=change.by)


@strawberry.type(name="Task", description="Something a poster wants done.")
class TaskNode(relay.Node):
    id: relay.NodeID[str]
    title: str
    description: str
    category: str
    budget: MoneyType
    due_at: datetime | None = strawberry.field(description="Null when the timing is flexible.")
    image_urls: list[str]
    status: TaskStatus
    offer_count: int = strawberry.field(description="Offers made and not withdrawn.")
    agreed_price: MoneyType | None = strawberry.field(description="The accepted offer's amount.")
    created_at: datetime
    updated_at: datetime
    distance_km: float | None = strawberry.field(
        default=None,
        description="From the point searched near to the task's area, when one was given.",
    )
    doc: strawberry.Private[Task]

    @classmethod
    def of(cls, task: Task, distance_km: float | None = None) -> TaskNode:
        return copied(
            cls,
            task,
            id=str(task.id),
            budget=MoneyType.of(task.budget),
            agreed_price=MoneyType.maybe(task.agreed_price),
            distance_km=distance_km,
            doc=task,
        )

    @property
    def participant_ids(self) -> list[ObjectId]:
        return list(self.doc.participants)

    @classmethod
    async def resolve_nodes(  # type: ignore[override] # one signature serves all overloads
        cls, *, info: Info, node_ids: Iterable[str], required: bool = False
    ) -> list[TaskNode | None]:
        ids = object_ids(node_ids)
        tasks = await info.context.loaders.tasks.load_many([i for i in ids if i is not None])
        found: dict[ObjectId | None, Task] = {t.id: t for t in tasks if t is not None}
        return [cls.of(found[i]) if i in found else None for i in ids]

    @strawberry.field
    def flexible(self) -> bool:
        return self.doc.due_at is None

    @strawberry.field(description="Roughly where; the exact place is for the people involved.")
    def area(self) -> Area:
        return Area.of(self.doc.place)

    @strawberry.field(
        extensions=allow(IsParticipantOrAdmin(), silent=True),
        description="The exact place: for the poster, the assigned tasker and admins.",
    )
    def place(self) -> PlaceType | None:
        return PlaceType.of(self.doc.place)

    @strawberry.field(graphql_type=UserNode)
    def poster(self, info: Info) -> UserNode | Awaitable[UserNode]:
        # Complete at once when the page read its posters ahead (`task_connection`).
        poster = user_node_now(info, self.doc.poster_id)
        if inspect.isawaitable(poster):
            return _present(poster)
        assert poster is not None
        return poster

    @strawberry.field
    async def assigned_tasker(self, info: Info) -> UserNode | None:
        return await user_node(info, self.doc.assigned_tasker_id)

    @strawberry.field(extensions=allow(IsParticipantOrAdmin(), silent=True))
    def history(self) -> list[TaskStatusChangeType] | None:
        return [TaskStatusChangeType.of(change) for change in self.doc.history]

    @strawberry.field(
        description="The payment for the accepted offer: for its payer, payee and admins."
    )
    async def escrow(self, info: Info) -> EscrowNode | None:
        return await escrow_of(info, task_deal(self.id, self.doc.deal_round))

    @strawberry.field(
        extensions=allow(IsParticipantOrAdmin(), silent=True),
        metadata=bounded(MAX_MILESTONES),
        description="The parts the work was split into, each paid on its own (then `escrow` "
        "is null): for the poster, the tasker and admins; empty for others or when not split.",
    )
    def milestones(self) -> list[MilestoneType]:
        assert self.doc.id is not None
        return [MilestoneType.of(self.doc, m) for m in self.doc.milestones]

    @strawberry.field(description="The caller's live offer on this task, if any.")
    async def my_offer(self, info: Info) -> OfferNode | None:
        viewer = await info.context.viewer()
        if viewer is None:
            return None
        assert self.doc.id is not None
        offer = await info.context.loaders.live_offers_of(viewer.user_id).load(self.doc.id)
        return OfferNode.of(offer) if offer else None

    @strawberry.field(
        extensions=allow(IsAuthenticated()),
        description="Every offer for the poster; a tasker sees their own.",
    )
    async def offers(
        self,
        info: Info,
        first: int | None = None,
        after: str | None = None,
        status: OfferStatus | None = None,
    ) -> OfferConnection:
        viewer = await info.context.require_viewer()
        filters: dict[str, object] = {"task_id": self.doc.id}
        if viewer.user_id != self.doc.poster_id and not viewer.user.is_admin:
            filters["tasker_id"] = viewer.user_id
        if status is not None:
            filters["status"] = status.value
        page = await paginate(
            Offer, filters, [("created_at", -1), ("_id", -1)], requested_page(info, first, after)
        )
        return to_connection(OfferConnection, page, OfferNode.of)


@strawberry.type(name="Offer", description="An offer to do a task for an amount.")
class OfferNode(relay.Node):
    id: relay.NodeID[str]
    amount: MoneyType
    message: str
    status: OfferStatus
    direct: bool = strawberry.field(description="Sent by the poster to a chosen tasker.")
    rejection_reason: str | None
    created_at: datetime
    updated_at: datetime
    decided_at: datetime | None
    doc: strawberry.Private[Offer]

    @classmethod
    def of(cls, offer: Offer) -> OfferNode:
        return copied(cls, offer, id=str(offer.id), amount=MoneyType.of(offer.amount), doc=offer)

    @classmethod
    async def resolve_nodes(  # type: ignore[override] # one signature serves all overloads
        cls, *, info: Info, node_ids: Iterable[str], required: bool = False
    ) -> list[OfferNode | None]:
        offers = await visible_documents(
            info, node_ids, info.context.loaders.offers.load_many, can_see_offer
        )
        return [cls.of(o) if o else None for o in offers]

    @strawberry.field
    async def task(self, info: Info) -> TaskNode:
        task = await info.context.loaders.tasks.load(self.doc.task_id)
        assert task is not None
        return TaskNode.of(task)

    @strawberry.field(
        description="The payment, once this offer is accepted: for its payer, payee and admins."
    )
    async def escrow(self, info: Info) -> EscrowNode | None:
        if self.doc.status is not OfferStatus.ACCEPTED:
            return None
        task = await info.context.loaders.tasks.load(self.doc.task_id)
        assert task is not None  # tasks are never deleted
        return await escrow_of(info, task_deal(self.doc.task_id, task.deal_round))

    @strawberry.field
    async def tasker(self, info: Info) -> UserNode:
        tasker = await user_node(info, self.doc.tasker_id)
        assert tasker is not None
        return tasker


@strawberry.type
class TaskConnection(relay.Connection[TaskNode]):
    pass


@strawberry.type
class OfferConnection(relay.Connection[OfferNode]):
    pass


@strawberry.input
class TaskFilter:
    text: str | None = strawberry.field(
        default=None, description="Words of the title or description."
    )
    category: str | None = None
    statuses: list[TaskStatus] | None = strawberry.field(default=None, description="Default: OPEN.")
    min_budget: int | None = strawberry.field(
        default=None, description="Minor units; needs currency."
    )
    max_budget: int | None = strawberry.field(
        default=None, description="Minor units; needs currency."
    )
    currency: str | None = None
    near: NearInput | None = None
    poster_id: relay.GlobalID | None = None


@strawberry.enum
class TaskRole(Enum):
    POSTER = "poster"
    TASKER = "tasker"


async def _present(poster: Awaitable[UserNode | None]) -> UserNode:
    found = await poster
    assert found is not None
    return found


OTHER_USERS_OF_A_TASK = ("assignedTasker", "history")
"""Fields of a task that read users in the same pass as `poster` (and so in the same
loader batch)."""


async def task_connection(info: Info, page: Page[Task]) -> TaskConnection:
    if selects(info, "edges", "node", "poster") and not any(
        selects(info, "edges", "node", field) for field in OTHER_USERS_OF_A_TASK
    ):
        # The posters in one read now, the one the loader would make, so that each
        # task's `poster` is complete at once: no coroutine and no task per edge. Not
        # when the page shows other users of its tasks: those would then need a read
        # of their own, where the loader reads them all in one.
        await info.context.loaders.users.load_many([task.poster_id for task in page.documents])
    return to_connection(
        TaskConnection,
        page,
        lambda task: TaskNode.of(
            task, task_search.kilometres(page.computed.get(task.id, {}).get("distance"))
        ),
    )


@strawberry.type
class TaskQuery:
    @strawberry.field(description="Browse and search tasks; open ones unless statuses are given.")
    async def tasks(
        self,
        info: Info,
        first: int | None = None,
        after: str | None = None,
        filter: TaskFilter | None = None,
        sort: TaskSort = TaskSort.NEWEST,
    ) -> TaskConnection:
        given = filter or TaskFilter()
        query = task_search.TaskQuery(
            text=given.text,
            category=given.category,
            statuses=given.statuses or [TaskStatus.OPEN],
            min_budget=given.min_budget,
            max_budget=given.max_budget,
            currency=given.currency,
            near=given.near.value() if given.near else None,
            poster_id=decode_id(given.poster_id, UserNode, "posterId") if given.poster_id else None,
            sort=sort,
        )
        page = await task_search.search_tasks(query, requested_page(info, first, after))
        return await task_connection(info, page)

    @strawberry.field(
        extensions=allow(IsAuthenticated()),
        description="Tasks I posted (POSTER) or was assigned (TASKER), newest first.",
    )
    async def my_tasks(
        self,
        info: Info,
        role: TaskRole = TaskRole.POSTER,
        statuses: list[TaskStatus] | None = None,
        first: int | None = None,
        after: str | None = None,
    ) -> TaskConnection:
        viewer: Viewer = await info.context.require_viewer()
        query = task_search.TaskQuery(
            statuses=statuses or list(TaskStatus),
            poster_id=viewer.user_id if role is TaskRole.POSTER else None,
            tasker_id=viewer.user_id if role is TaskRole.TASKER else None,
        )
        page = await task_search.search_tasks(query, requested_page(info, first, after))
        return await task_connection(info, page)

    @strawberry.field(
        extensions=allow(IsAuthenticated()),
        description="Offers I made as a tasker, or received as direct hires, newest first.",
    )
    async def my_offers(
        self,
        info: Info,
        status: OfferStatus | None = None,
        first: int | None = None,
        after: str | None = None,
    ) -> OfferConnection:
        viewer = await info.context.require_viewer()
        filters: dict[str, object] = {"tasker_id": viewer.user_id}
        if status is not None:
            filters["status"] = status.value
        page = await paginate(
            Offer, filters, [("created_at", -1), ("_id", -1)], requested_page(info, first, after)
        )
        return to_connection(OfferConnection, page, OfferNode.of)
