"""A completed task or booking asks both sides for a review GIGQL_REVIEW_REQUEST_DELAY
later; a side that has reviewed by then is not asked, nor anyone while the work is
disputed (until an admin decides it completed)."""

from __future__ import annotations

from datetime import timedelta

from documents.clock import utcnow
from documents.notifications.catalogue import NotificationKind as K
from documents.notifications.scheduled import ScheduledStatus
from resolvers.notifications.scheduled import turn_due
from server.runtime import Runtime
from tests.payments.escrow.test_disputes import decided_by_admin, opened
from tests.support.bookings import midday_zone, provider
from tests.support.graphql_client import GraphQLClient
from tests.support.marketplace import object_id, poster, tasker
from tests.support.reviews import complete_booking, completed_task, confirmed_booking, reviewed
from tests.support.scheduled import by_kind_and_person, deliveries, scheduled_messages, statuses

DELAY = timedelta(hours=2)
"""GIGQL_REVIEW_REQUEST_DELAY's default, which the tests' app runs on."""


async def test_completing_a_task_asks_both_sides_for_a_review_after_the_delay(
    client: GraphQLClient, runtime: Runtime
) -> None:
    assert runtime.services.settings.review_request_delay == DELAY
    ann = await poster(client, "ann@example.com")
    tom = await tasker(client, "tom@example.com")
    before = utcnow()
    task_id = await completed_task(client, ann, tom)
    after = utcnow()

    requests = await by_kind_and_person(kind=K.REVIEW_REQUEST)
    ann_id, tom_id = object_id(ann.user_id), object_id(tom.user_id)
    assert set(requests) == {(K.REVIEW_REQUEST, ann_id), (K.REVIEW_REQUEST, tom_id)}
    for request in requests.values():
        assert before + DELAY <= request.due_at <= after + DELAY
        assert request.task_id == object_id(task_id)
        assert request.title == "How did “Mow the back lawn” go? Leave a review"

    # Ann reviews before it comes due: only Tom is asked.
    await reviewed(client, ann, task_id, 5)
    assert await turn_due(runtime.services, after + DELAY) == 2
    requests = await by_kind_and_person(kind=K.REVIEW_REQUEST)
    ann_request, tom_request = (
        requests[K.REVIEW_REQUEST, ann_id],
        requests[K.REVIEW_REQUEST, tom_id],
    )
    assert (ann_request.status, ann_request.ended_reason) == (
        ScheduledStatus.DROPPED,
        "they have reviewed it already",
    )
    assert tom_request.status is ScheduledStatus.DONE
    assert await deliveries() == [(K.REVIEW_REQUEST, tom_id, "email")]


async def test_completing_a_booking_asks_for_reviews_and_ends_its_reminders(
    client: GraphQLClient, runtime: Runtime
) -> None:
    ann = await poster(client, "ann@example.com")
    tom = await provider(client, "tom@example.com", time_zone=midday_zone())
    booking_id = await confirmed_booking(client, ann, tom)
    await complete_booking(client, tom, booking_id)

    booked = object_id(booking_id)
    reminders = [
        m for m in await scheduled_messages(booking_id=booked) if m.kind != K.REVIEW_REQUEST
    ]
    # It starts within the hour and a half: at least the 30-minute reminder was scheduled.
    assert reminders and {m.status for m in reminders} == {ScheduledStatus.CANCELLED}
    assert await statuses(kind=K.REVIEW_REQUEST, booking_id=booked) == {ScheduledStatus.PENDING}

    assert await turn_due(runtime.services, utcnow() + DELAY) == 2
    assert await deliveries() == sorted(
        [
            (K.REVIEW_REQUEST, object_id(ann.user_id), "email"),
            (K.REVIEW_REQUEST, object_id(tom.user_id), "email"),
        ]
    )


async def test_work_disputed_before_the_request_is_due_is_asked_about_once_decided(
    client: GraphQLClient, runtime: Runtime
) -> None:
    ann = await poster(client, "ann@example.com")
    tom = await provider(client, "tom@example.com", time_zone=midday_zone())
    booking_id = await confirmed_booking(client, ann, tom)
    await complete_booking(client, tom, booking_id)
    dispute = await opened(client, ann, booking_id)

    # Disputed when it comes due: nobody is asked to review work not completed.
    assert await turn_due(runtime.services, utcnow() + DELAY) == 2
    booked = object_id(booking_id)
    assert {
        (m.status, m.ended_reason) for m in await scheduled_messages(kind=K.REVIEW_REQUEST)
    } == {(ScheduledStatus.DROPPED, "the work is no longer completed")}
    # Decided as completed: both are asked, once, after the delay from the decision.
    decided_at = utcnow()
    await decided_by_admin(client, runtime, dispute["id"], "RELEASE")
    requests = await scheduled_messages(kind=K.REVIEW_REQUEST, booking_id=booked)
    assert {m.status for m in requests} == {ScheduledStatus.PENDING}
    assert all(m.due_at >= decided_at + DELAY for m in requests)
    assert await turn_due(runtime.services, utcnow() + DELAY) == 2
    assert await statuses(kind=K.REVIEW_REQUEST) == {ScheduledStatus.DONE}
    assert len(await deliveries()) == 2
