"""Reviews the two sides of a completed task or booking leave each other, once each.

A review stays hidden until the other side has posted theirs, or `review_reveal_days`
have passed, so that neither can answer the other's: it is stored with `published_at`
that far ahead, and when the counterpart's review arrives both are published at once,
in the same transaction. Reviews that reach their reveal time alone are published by
`publish_due_reviews`, which every API instance runs periodically (server/background.py).

Publishing counts the rating into the target's profile exactly once: a conditional
update sets `counted`, and in the same transaction the rating's sum and count grow and
its average is recomputed. Of several writers publishing one review (the jobs of two
instances, a job and the counterpart's post), one wins; the transactions of the others
conflict on the review, retry and find it counted.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from typing import Any

from beanie import PydanticObjectId
from bson import ObjectId
from pymongo import ReturnDocument
from pymongo.errors import DuplicateKeyError

from documents.accounts.profiles import CustomerProfile, ProviderProfile
from documents.clock import utcnow
from documents.errors import DomainError, ErrorCode
from documents.events import EventKind
from documents.marketplace.bookings import Booking, BookingStatus
from documents.marketplace.reviews import Review, ReviewedAs, ReviewSubject
from documents.marketplace.tasks import Task, TaskStatus
from resolvers.accounts.auth.viewer import Viewer
from resolvers.accounts.profiles import new_profile_fields
from resolvers.common.pagination import Page, PageRequest, paginate
from resolvers.common.services import Services
from resolvers.common.unit_of_work import UnitOfWork, transact
from resolvers.common.validation import Checked

MIN_RATING = 1
MAX_RATING = 5
MAX_COMMENT = 1000
DUE_BATCH = 100
"""Due reviews read per query by `publish_due_reviews`."""


@dataclass(frozen=True)
class Deal:
    """A task or booking as reviews see it: its two sides and what to call it."""

    subject: ReviewSubject
    id: ObjectId
    title: str
    customer_id: ObjectId
    provider_id: ObjectId | None
    completed: bool

    def counterpart(self, author_id: ObjectId) -> tuple[ObjectId, ReviewedAs]:
        """Whom one side of the completed work reviews, and in which role."""
        if author_id == self.customer_id:
            assert self.provider_id is not None, "completed work has someone who did it"
            return self.provider_id, ReviewedAs.PROVIDER
        return self.customer_id, ReviewedAs.CUSTOMER

    @property
    def sides(self) -> list[ObjectId | None]:
        return [self.customer_id, self.provider_id]

    @property
    def event_ids(self) -> dict[str, ObjectId]:
        return {"task_id" if self.subject is ReviewSubject.TASK else "booking_id": self.id}


async def _deal(subject: ReviewSubject, subject_id: ObjectId, unit: UnitOfWork) -> Deal:
    if subject is ReviewSubject.TASK:
        task = await Task.get(PydanticObjectId(subject_id), session=unit.session)
        if task is None:
            raise DomainError(ErrorCode.NOT_FOUND, "No such task.", "subjectId")
        assert task.id is not None
        return Deal(
            subject,
            task.id,
            task.title,
            task.poster_id,
            task.assigned_tasker_id,
            task.status is TaskStatus.COMPLETED,
        )
    booking = await Booking.get(PydanticObjectId(subject_id), session=unit.session)
    if booking is None:
        raise DomainError(ErrorCode.NOT_FOUND, "No such booking.", "subjectId")
    assert booking.id is not None
    return Deal(
        subject,
        booking.id,
        booking.package.name,
        booking.customer_id,
        booking.provider_id,
        booking.status is BookingStatus.COMPLETED,
    )


def _reviewable(deal: Deal, viewer: Viewer) -> tuple[ObjectId, ReviewedAs]:
    if viewer.user_id not in deal.sides:
        # Tasks are public, so outsiders learn only that they may not; bookings are
        # private, so outsiders do not learn that one exists.
        if deal.subject is ReviewSubject.BOOKING:
            raise DomainError(ErrorCode.NOT_FOUND, "No such booking.", "subjectId")
        raise DomainError(
            ErrorCode.FORBIDDEN,
            "Only the poster and the assigned tasker can review a task.",
            "subjectId",
        )
    if not deal.completed:
        raise DomainError(
            ErrorCode.INVALID_STATE, "Reviews can be left once the work is completed.", "subjectId"
        )
    return deal.counterpart(viewer.user_id)


async def _serialize(unit: UnitOfWork, deal: Deal, now: datetime) -> None:
    """Write the subject, so that the reviews of its two sides cannot commit side by side.

    Each review's transaction reads whether the other side has posted. Reading alone,
    two simultaneous posts could each miss the other and both stay hidden; writing one
    document makes the later transaction conflict, retry and see the earlier review.
    """
    model = Task if deal.subject is ReviewSubject.TASK else Booking
    await model.get_pymongo_collection().update_one(
        {"_id": deal.id}, {"$set": {"updated_at": now}}, session=unit.session
    )


async def post_review(
    services: Services,
    viewer: Viewer,
    subject: ReviewSubject,
    subject_id: ObjectId,
    *,
    rating: int,
    comment: str | None,
) -> Review:
    checked = Checked()
    if not MIN_RATING <= rating <= MAX_RATING:
        checked.fail(
            ErrorCode.INVALID_INPUT, f"The rating must be {MIN_RATING} to {MAX_RATING}.", "rating"
        )
    comment = checked.text(comment or "", "comment", MAX_COMMENT, multiline=True)
    checked.raise_if_any()
    reveal_days = services.settings.review_reveal_days

    async def work(unit: UnitOfWork) -> Review:
        deal = await _deal(subject, subject_id, unit)
        target_id, target_role = _reviewable(deal, viewer)
        now = utcnow()
        await _serialize(unit, deal, now)
        review = Review(
            subject=subject,
            subject_id=deal.id,
            author_id=viewer.user_id,
            target_id=target_id,
            target_role=target_role,
            rating=rating,
            comment=comment,
            created_at=now,
            published_at=now + timedelta(days=reveal_days),
        )
        try:
            await review.insert(session=unit.session)
        except DuplicateKeyError as error:
            raise DomainError(
                ErrorCode.ALREADY_EXISTS, "You have reviewed this already.", "subjectId"
            ) from error
        answered = await Review.find_one(
            {"subject_id": deal.id, "author_id": target_id}, session=unit.session
        )
        hint = "" if answered else f" It shows once you review them too, or in {reveal_days} days."
        unit.emit(
            EventKind.REVIEW_POSTED,
            actor_id=viewer.user_id,
            audience=[target_id],
            title=f"{viewer.user.name} reviewed you for “{deal.title}”.{hint}",
            review_id=review.id,
            **deal.event_ids,
        )
        if answered is None:
            return review
        # Both sides have spoken: show both now (the other may have shown already).
        published = [await _publish(unit, review, now), await _publish(unit, answered, now)]
        _announce(unit, deal, [r for r in published if r is not None], viewer.user_id)
        mine = published[0]
        assert mine is not None
        return mine

    return await transact(services, work)


async def _publish(
    unit: UnitOfWork, review: Review, now: datetime, *, due_only: bool = False
) -> Review | None:
    """Show the review from `now` at the latest and count its rating, unless that is
    done already; `due_only` leaves it alone until its reveal time."""
    query: dict[str, Any] = {"_id": review.id, "counted": False}
    if due_only:
        query["published_at"] = {"$lte": now}
    raw = await Review.get_pymongo_collection().find_one_and_update(
        query,
        {"$set": {"counted": True}, "$min": {"published_at": now}},
        return_document=ReturnDocument.AFTER,
        session=unit.session,
    )
    if raw is None:
        return None
    published: Review = Review.model_validate(raw)
    await _add_rating(unit, published)
    return published


async def _add_rating(unit: UnitOfWork, review: Review) -> None:
    """Count the rating into the target's profile, creating the profile if there is none
    yet: a tasker is rated for tasks even before setting up a provider profile."""
    now = utcnow()
    fresh: ProviderProfile | CustomerProfile = (
        ProviderProfile(created_at=now, updated_at=now)
        if review.target_role is ReviewedAs.PROVIDER
        else CustomerProfile(updated_at=now)
    )
    profiles = type(fresh).get_pymongo_collection()
    raw = await profiles.find_one_and_update(
        {"_id": review.target_id},
        {
            "$inc": {"rating.sum": review.rating, "rating.count": 1},
            "$setOnInsert": new_profile_fields(fresh, besides={"rating"}),
        },
        upsert=True,
        return_document=ReturnDocument.AFTER,
        session=unit.session,
    )
    # The profile is this transaction's until it commits: the average matches sum and count.
    assert raw is not None  # upserted
    rating = raw["rating"]
    await profiles.update_one(
        {"_id": review.target_id},
        {"$set": {"rating.average": rating["sum"] / rating["count"]}},
        session=unit.session,
    )


def _announce(
    unit: UnitOfWork, deal: Deal, reviews: list[Review], actor_id: ObjectId | None
) -> None:
    unit.emit(
        EventKind.REVIEWS_PUBLISHED,
        actor_id=actor_id,
        audience=deal.sides,
        title=f"The reviews for “{deal.title}” are now visible.",
        review_ids=[review.id for review in reviews],
        **deal.event_ids,
    )


async def publish_due_reviews(services: Services, now: datetime | None = None) -> int:
    """Publish every review whose reveal time has come by `now`; return how many this
    call published. Safe on several instances at once: each review is published in a
    transaction of its own, by a conditional update that only one of them wins."""
    moment = now or utcnow()
    published = 0
    while True:
        due = (
            await Review.find({"counted": False, "published_at": {"$lte": moment}})
            .sort("+published_at")
            .limit(DUE_BATCH)
            .to_list()
        )
        for review in due:
            published += await transact(services, partial(_publish_due, review, moment))
        if len(due) < DUE_BATCH:
            return published


async def _publish_due(review: Review, now: datetime, unit: UnitOfWork) -> int:
    published = await _publish(unit, review, now, due_only=True)
    if published is None:
        return 0
    deal = await _deal(published.subject, published.subject_id, unit)
    _announce(unit, deal, [published], actor_id=None)
    return 1


def is_visible(review: Review, viewer: Viewer | None) -> bool:
    """Published reviews are public; until then only their author (and admins) see them."""
    if review.published_at <= utcnow():
        return True
    return viewer is not None and (viewer.user_id == review.author_id or viewer.user.is_admin)


async def reviews_of(
    user_id: ObjectId, role: ReviewedAs | None, request: PageRequest
) -> Page[Review]:
    """Published reviews of a user (as a provider, a customer, or both), newest first."""
    filters: dict[str, Any] = {"target_id": user_id, "published_at": {"$lte": utcnow()}}
    if role is not None:
        filters["target_role"] = role.value
    return await paginate(Review, filters, [("published_at", -1), ("_id", -1)], request)


async def reviews_by(author_id: ObjectId, request: PageRequest) -> Page[Review]:
    """Reviews a user wrote, hidden ones too, newest first."""
    return await paginate(
        Review, {"author_id": author_id}, [("created_at", -1), ("_id", -1)], request
    )
