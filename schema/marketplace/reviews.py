"""Reviews of completed tasks and bookings: posting them, and reading them."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import TYPE_CHECKING, Annotated

import strawberry
from bson import ObjectId
from strawberry import relay

from documents.clock import utcnow
from documents.errors import DomainError, ErrorCode
from documents.marketplace.reviews import Review, ReviewedAs, ReviewSubject
from resolvers.common.pagination import Page
from resolvers.marketplace import reviews
from schema.accounts.users import UserNode, user_node
from schema.common.context import Info
from schema.common.copying import copied
from schema.common.payloads import Payload, mutation_payload
from schema.common.permissions import IsAuthenticated, allow
from schema.common.relay import object_id, object_ids, requested_page, to_connection
from schema.marketplace.tasks import TaskNode

if TYPE_CHECKING:
    from schema.marketplace.bookings import BookingNode

# The node types a review can be about, by the type name inside their global ids.
SUBJECTS = {"Task": ReviewSubject.TASK, "Booking": ReviewSubject.BOOKING}


@strawberry.type(
    name="Review",
    description="What one side of a completed task or booking said of the other. "
    "Hidden from everyone but its author until it is published.",
)
class ReviewNode(relay.Node):
    id: relay.NodeID[str]
    rating: int = strawberry.field(description="1 to 5.")
    comment: str
    target_role: ReviewedAs = strawberry.field(
        description="PROVIDER: the tasker or provider was reviewed; CUSTOMER: the poster or "
        "customer."
    )
    created_at: datetime
    published_at: datetime = strawberry.field(
        description="When it shows to everyone: once both sides have reviewed, or at the end "
        "of the reveal period."
    )
    doc: strawberry.Private[Review]

    @classmethod
    def of(cls, review: Review) -> ReviewNode:
        return copied(cls, review, id=str(review.id), doc=review)

    @classmethod
    async def resolve_nodes(  # type: ignore[override] # one signature serves all overloads
        cls, *, info: Info, node_ids: Iterable[str], required: bool = False
    ) -> list[ReviewNode | None]:
        viewer = await info.context.viewer()
        ids = object_ids(node_ids)
        found = await info.context.loaders.reviews.load_many([i for i in ids if i is not None])
        visible: dict[ObjectId | None, Review] = {
            r.id: r for r in found if r is not None and reviews.is_visible(r, viewer)
        }
        return [cls.of(visible[i]) if i in visible else None for i in ids]

    @strawberry.field(description="Whether everyone can see it yet.")
    def published(self) -> bool:
        return self.doc.published_at <= utcnow()

    @strawberry.field
    async def author(self, info: Info) -> UserNode:
        author = await user_node(info, self.doc.author_id)
        assert author is not None
        return author

    @strawberry.field
    async def target(self, info: Info) -> UserNode:
        target = await user_node(info, self.doc.target_id)
        assert target is not None
        return target

    @strawberry.field(description="The task reviewed; null for a booking.")
    async def task(self, info: Info) -> TaskNode | None:
        if self.doc.subject is not ReviewSubject.TASK:
            return None
        task = await info.context.loaders.tasks.load(self.doc.subject_id)
        return TaskNode.of(task) if task else None

    @strawberry.field(
        description="The booking reviewed, for its customer, its provider and admins; null "
        "for a task."
    )
    async def booking(
        self, info: Info
    ) -> Annotated[BookingNode, strawberry.lazy("schema.marketplace.bookings")] | None:
        from schema.marketplace.bookings import BookingNode

        if self.doc.subject is not ReviewSubject.BOOKING:
            return None
        found = await BookingNode.resolve_nodes(info=info, node_ids=[str(self.doc.subject_id)])
        return found[0]


@strawberry.type
class ReviewConnection(relay.Connection[ReviewNode]):
    pass


def review_connection(page: Page[Review]) -> ReviewConnection:
    return to_connection(ReviewConnection, page, ReviewNode.of)


def _subject(global_id: relay.GlobalID) -> tuple[ReviewSubject, ObjectId]:
    subject = SUBJECTS.get(global_id.type_name)
    oid = object_id(global_id.node_id) if subject else None
    if subject is None or oid is None:
        raise DomainError(ErrorCode.INVALID_ID, "Not the id of a Task or a Booking.", "subjectId")
    return subject, oid


@strawberry.input
class PostReviewInput:
    subject_id: relay.GlobalID = strawberry.field(description="A completed Task or Booking.")
    rating: int = strawberry.field(description="1 to 5.")
    comment: str | None = strawberry.field(default=None, description="Up to 1000 characters.")


@strawberry.type
class PostReviewPayload(Payload):
    review: ReviewNode | None = None


@strawberry.type
class ReviewMutation:
    @strawberry.mutation(
        extensions=allow(IsAuthenticated()),
        description="Review the other side of a completed task or booking, once. It stays "
        "hidden until they have reviewed you too, or the reveal period has passed.",
    )
    @mutation_payload
    async def post_review(self, info: Info, input: PostReviewInput) -> PostReviewPayload:
        viewer = await info.context.require_viewer()
        subject, subject_id = _subject(input.subject_id)
        review = await reviews.post_review(
            info.context.services,
            viewer,
            subject,
            subject_id,
            rating=input.rating,
            comment=input.comment,
        )
        return PostReviewPayload(review=ReviewNode.of(review))


@strawberry.type
class ReviewQuery:
    @strawberry.field(
        extensions=allow(IsAuthenticated()),
        description="Reviews I wrote, hidden ones too, newest first.",
    )
    async def my_reviews(
        self, info: Info, first: int | None = None, after: str | None = None
    ) -> ReviewConnection:
        viewer = await info.context.require_viewer()
        page = await reviews.reviews_by(viewer.user_id, requested_page(info, first, after))
        return review_connection(page)
