"""Reviews: once each way after completion, hidden until both have posted or the reveal
period has passed, and ratings counted exactly once when a review is published."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta

from bson import ObjectId
from strawberry import relay

from documents.accounts.profiles import ProviderProfile, Rating
from documents.clock import utcnow
from documents.events import DomainEvent, EventKind, Notification
from documents.marketplace.reviews import Review
from resolvers.marketplace.reviews import publish_due_reviews
from server.runtime import Runtime
from tests.support.bookings import midday_zone, provider
from tests.support.command_log import CommandLog
from tests.support.graphql_client import (
    GraphQLClient,
    error_codes,
    graphql_error_codes,
)
from tests.support.marketplace import (
    logged_in_admin,
    make_offer,
    object_id,
    post_task,
    poster,
    tasker,
)
from tests.support.reviews import (
    complete_booking,
    completed_task,
    confirmed_booking,
    ratings,
    review,
    reviewed,
    reviews_of,
)

NODE = "query($id: ID!) { node(id: $id) { ... on Review { id rating } } }"
MY_REVIEWS = "{ myReviews { edges { node { id published target { id } } } } }"


def instant(value: str) -> datetime:
    return datetime.fromisoformat(value)


async def test_reviews_stay_hidden_until_both_sides_have_posted(
    runtime: Runtime, client: GraphQLClient
) -> None:
    ann = await poster(client, "ann@example.com")
    tom = await tasker(client, "tom@example.com")
    task_id = await completed_task(client, ann, tom)

    first = await reviewed(client, ann, task_id, 5, "  Quick and tidy.  ")
    assert first["published"] is False and first["comment"] == "Quick and tidy."
    assert first["targetRole"] == "PROVIDER" and first["target"] == {"id": tom.user_id}
    assert first["task"] == {"id": task_id} and first["booking"] is None
    assert instant(first["publishedAt"]) - instant(first["createdAt"]) == timedelta(days=7)
    # Hidden from the one reviewed and everyone else; its author sees it.
    assert (await client.data(NODE, {"id": first["id"]}, token=tom.access))["node"] is None
    assert (await client.data(NODE, {"id": first["id"]}))["node"] is None
    assert (await client.data(NODE, {"id": first["id"]}, token=ann.access))["node"] == {
        "id": first["id"],
        "rating": 5,
    }
    root = await logged_in_admin(client, runtime)
    assert (await client.data(NODE, {"id": first["id"]}, token=root.access))["node"] is not None
    assert (await reviews_of(client, tom.user_id))["edges"] == []
    assert await ratings(client, tom.user_id) == {"provider": None, "customer": None}
    mine = (await client.data(MY_REVIEWS, token=ann.access))["myReviews"]["edges"]
    assert [edge["node"] for edge in mine] == [
        {"id": first["id"], "published": False, "target": {"id": tom.user_id}}
    ]
    # The one reviewed hears of it, but not the rating.
    told = await Notification.find(Notification.kind == EventKind.REVIEW_POSTED).to_list()
    assert [(n.user_id, n.title) for n in told] == [
        (
            object_id(tom.user_id),
            "Test User reviewed you for “Mow the back lawn”. "
            "It shows once you review them too, or in 7 days.",
        )
    ]

    second = await reviewed(client, tom, task_id, 4)
    assert second["published"] is True and second["targetRole"] == "CUSTOMER"
    assert second["publishedAt"] == second["createdAt"]
    shown = (await client.data(NODE, {"id": first["id"]}, token=tom.access))["node"]
    assert shown == {"id": first["id"], "rating": 5}
    assert [e["node"]["id"] for e in (await reviews_of(client, tom.user_id))["edges"]] == [
        first["id"]
    ]
    assert [e["node"]["id"] for e in (await reviews_of(client, ann.user_id))["edges"]] == [
        second["id"]
    ]
    stored = await Review.get(object_id(first["id"]))
    assert stored is not None and stored.counted
    assert stored.published_at == datetime.fromisoformat(second["publishedAt"])
    assert await ratings(client, tom.user_id) == {
        "provider": {"average": 5.0, "count": 1},
        "customer": None,
    }
    assert await ratings(client, ann.user_id) == {
        "provider": None,
        "customer": {"average": 4.0, "count": 1},
    }
    published = await DomainEvent.find(DomainEvent.kind == EventKind.REVIEWS_PUBLISHED).to_list()
    assert len(published) == 1
    assert set(published[0].audience) == {object_id(ann.user_id), object_id(tom.user_id)}
    assert set(published[0].data["review_ids"]) == {
        str(object_id(first["id"])),
        str(object_id(second["id"])),
    }


async def test_a_review_alone_is_published_after_the_reveal_period(
    runtime: Runtime, client: GraphQLClient
) -> None:
    services = runtime.services
    ann = await poster(client, "ann@example.com")
    tom = await tasker(client, "tom@example.com")
    task_id = await completed_task(client, ann, tom)
    posted = await reviewed(client, ann, task_id, 3)
    reveal = instant(posted["publishedAt"])

    assert await publish_due_reviews(services) == 0
    assert await publish_due_reviews(services, now=reveal - timedelta(milliseconds=1)) == 0
    assert await ratings(client, tom.user_id) == {"provider": None, "customer": None}

    # A week later (moved back in the database rather than waited for):
    await Review.get_pymongo_collection().update_one(
        {"_id": object_id(posted["id"])},
        {"$set": {"published_at": utcnow() - timedelta(seconds=1)}},
    )
    assert await publish_due_reviews(services) == 1
    assert await publish_due_reviews(services) == 0
    assert (await ratings(client, tom.user_id))["provider"] == {"average": 3.0, "count": 1}
    assert [e["node"]["id"] for e in (await reviews_of(client, tom.user_id))["edges"]] == [
        posted["id"]
    ]
    event = await DomainEvent.find_one(DomainEvent.kind == EventKind.REVIEWS_PUBLISHED)
    assert event is not None and event.actor_id is None
    notified = await Notification.find(Notification.kind == EventKind.REVIEWS_PUBLISHED).to_list()
    assert {n.user_id for n in notified} == {object_id(ann.user_id), object_id(tom.user_id)}
    assert len(notified) == 2

    # The other side may still answer; that review shows at once, and the first one stays
    # as it was, counted once.
    late = await reviewed(client, tom, task_id, 5)
    assert late["published"] is True
    assert (await ratings(client, tom.user_id))["provider"] == {"average": 3.0, "count": 1}
    assert (await ratings(client, ann.user_id))["customer"] == {"average": 5.0, "count": 1}


async def test_simultaneous_publications_update_a_rating_exactly(client: GraphQLClient) -> None:
    tom = await tasker(client, "tom@example.com")
    posters = [await poster(client, f"p{i}@example.com") for i in range(5)]
    tasks = [await completed_task(client, p, tom) for p in posters]
    for task_id in tasks:
        await reviewed(client, tom, task_id, 4)

    stars = [5, 4, 4, 3, 5]
    posted = await asyncio.gather(
        *(review(client, p, t, s) for p, t, s in zip(posters, tasks, stars, strict=True))
    )
    assert [p["errors"] for p in posted] == [[]] * 5
    assert all(p["review"]["published"] for p in posted)
    assert (await ratings(client, tom.user_id))["provider"] == {"average": 4.2, "count": 5}
    profile = await ProviderProfile.get(object_id(tom.user_id))
    assert profile is not None and profile.rating == Rating(sum=21, count=5, average=4.2)
    for p in posters:
        assert (await ratings(client, p.user_id))["customer"] == {"average": 4.0, "count": 1}
    assert await Review.find(Review.counted == True).count() == 10  # noqa: E712

    # Newest first, page by page, each once.
    seen: list[str] = []
    after = None
    while True:
        page = await reviews_of(client, tom.user_id, first=2, after=after)
        seen += [edge["node"]["id"] for edge in page["edges"]]
        if not page["pageInfo"]["hasNextPage"]:
            break
        after = page["pageInfo"]["endCursor"]
    stored = await Review.find(Review.target_id == object_id(tom.user_id)).to_list()
    newest_first = sorted(stored, key=lambda r: (r.published_at, r.id), reverse=True)
    assert len(newest_first) == 5
    assert [object_id(i) for i in seen] == [r.id for r in newest_first]


async def test_a_page_of_reviews_costs_the_same_round_trips_whatever_its_size(
    client: GraphQLClient, command_log: CommandLog
) -> None:
    tom = await tasker(client, "tom@example.com")
    posters = [await poster(client, f"p{i}@example.com") for i in range(5)]
    for p in posters:
        task_id = await completed_task(client, p, tom)
        await reviewed(client, tom, task_id, 4)
        await reviewed(client, p, task_id, 5)
    query = """query($id: ID!, $first: Int) { node(id: $id) { ... on User {
      reviews(first: $first) { edges { node { rating author { name } task { title } } } } } } }"""
    costs = {}
    for first in (2, 5):
        request_id = f"reviews-cost-{first:04d}"
        with command_log.recording(request_id) as commands:
            data = await client.data(
                query,
                {"id": tom.user_id, "first": first},
                headers={"X-Request-ID": request_id},
            )
        edges = data["node"]["reviews"]["edges"]
        assert [e["node"]["author"]["name"] for e in edges] == ["Test User"] * first
        assert all(e["node"]["task"]["title"] == "Mow the back lawn" for e in edges)
        costs[first] = sorted(commands)
    # The user, their reviews, the reviews' authors and tasks.
    assert (
        costs[2]
        == costs[5]
        == sorted([("find", "users"), ("find", "reviews"), ("find", "users"), ("find", "tasks")])
    ), costs


async def test_instances_publishing_at_once_count_each_review_once(
    runtime: Runtime, client: GraphQLClient
) -> None:
    tom = await tasker(client, "tom@example.com")
    posters = [await poster(client, f"p{i}@example.com") for i in range(5)]
    for i, p in enumerate(posters):
        await reviewed(client, p, await completed_task(client, p, tom), i + 1)
    await Review.get_pymongo_collection().update_many(
        {}, {"$set": {"published_at": utcnow() - timedelta(seconds=1)}}
    )
    results = await asyncio.gather(*(publish_due_reviews(runtime.services) for _ in range(3)))
    assert sum(results) == 5
    assert (await ratings(client, tom.user_id))["provider"] == {"average": 3.0, "count": 5}


async def test_each_side_reviews_once_even_when_racing(client: GraphQLClient) -> None:
    ann = await poster(client, "ann@example.com")
    tom = await tasker(client, "tom@example.com")
    task_id = await completed_task(client, ann, tom)
    attempts = await asyncio.gather(*(review(client, ann, task_id, 5) for _ in range(5)))
    assert sorted(code for a in attempts for code in error_codes(a)) == ["ALREADY_EXISTS"] * 4
    assert await Review.count() == 1
    again = await review(client, ann, task_id, 1)
    assert error_codes(again) == ["ALREADY_EXISTS"] and again["review"] is None
    assert await Review.count() == 1


async def test_the_two_sides_posting_at_once_both_publish(client: GraphQLClient) -> None:
    ann = await poster(client, "ann@example.com")
    tom = await tasker(client, "tom@example.com")
    task_id = await completed_task(client, ann, tom)
    posted = await asyncio.gather(review(client, ann, task_id, 5), review(client, tom, task_id, 2))
    assert [p["errors"] for p in posted] == [[], []]
    # Whichever committed second saw the first: both show, both are counted.
    reviews = await Review.find_all().to_list()
    assert [r.counted for r in reviews] == [True, True]
    assert all(r.published_at <= utcnow() for r in reviews)
    assert (await ratings(client, tom.user_id))["provider"] == {"average": 5.0, "count": 1}
    assert (await ratings(client, ann.user_id))["customer"] == {"average": 2.0, "count": 1}


async def test_who_may_review_what_and_how(client: GraphQLClient) -> None:
    ann = await poster(client, "ann@example.com")
    bob = await poster(client, "bob@example.com")
    tom = await tasker(client, "tom@example.com")
    sue = await tasker(client, "sue@example.com")
    task = await post_task(client, ann)
    offer = await make_offer(client, tom, task["id"])
    assert error_codes(await review(client, ann, task["id"], 5)) == ["INVALID_STATE"]
    await client.mutate("acceptOffer", {"offerId": offer["id"]}, token=ann.access)
    assert error_codes(await review(client, tom, task["id"], 5)) == ["INVALID_STATE"]

    done = await completed_task(client, ann, tom)
    cases = {
        "outsider": (await review(client, bob, done, 5), "FORBIDDEN", "subjectId"),
        "another tasker": (await review(client, sue, done, 5), "FORBIDDEN", "subjectId"),
        "no stars": (await review(client, ann, done, 0), "INVALID_INPUT", "rating"),
        "six stars": (await review(client, ann, done, 6), "INVALID_INPUT", "rating"),
        "long comment": (
            await review(client, ann, done, 5, "x" * 1001),
            "INVALID_INPUT",
            "comment",
        ),
        "a user's id": (await review(client, ann, tom.user_id, 5), "INVALID_ID", "subjectId"),
        "an offer's id": (await review(client, ann, offer["id"], 5), "INVALID_ID", "subjectId"),
        "no such task": (
            await review(client, ann, relay.to_base64("Task", str(ObjectId())), 5),
            "NOT_FOUND",
            "subjectId",
        ),
    }
    for case, (payload, code, field) in cases.items():
        assert [(e["code"], e["field"]) for e in payload["errors"]] == [(code, field)], case
        assert payload["review"] is None, case
    assert await Review.count() == 0
    assert await DomainEvent.find(DomainEvent.kind == EventKind.REVIEW_POSTED).count() == 0

    anonymous = await client.execute(
        "mutation($input: PostReviewInput!) { postReview(input: $input) { review { id } } }",
        {"input": {"subjectId": done, "rating": 5}},
    )
    assert graphql_error_codes(anonymous) == ["UNAUTHENTICATED"]
    assert await Review.count() == 0

    longest = await reviewed(client, ann, done, 1, "y" * 1000)
    assert len(longest["comment"]) == 1000


async def test_both_sides_of_a_booking_review_each_other(client: GraphQLClient) -> None:
    cat = await poster(client, "cat@example.com")
    pam = await provider(client, "pam@example.com", time_zone=midday_zone())
    outsider = await poster(client, "olga@example.com")
    booking_id = await confirmed_booking(client, cat, pam)
    assert error_codes(await review(client, cat, booking_id, 5)) == ["INVALID_STATE"]
    await complete_booking(client, pam, booking_id)
    # Bookings are private: to outsiders, one does not exist.
    assert error_codes(await review(client, outsider, booking_id, 5)) == ["NOT_FOUND"]

    by_customer = await reviewed(client, cat, booking_id, 5, "Spotless.")
    assert by_customer["targetRole"] == "PROVIDER" and by_customer["target"] == {"id": pam.user_id}
    assert by_customer["booking"] == {"id": booking_id} and by_customer["task"] is None
    by_provider = await reviewed(client, pam, booking_id, 4)
    assert by_provider["targetRole"] == "CUSTOMER" and by_provider["published"] is True
    assert (await ratings(client, pam.user_id))["provider"] == {"average": 5.0, "count": 1}
    assert (await ratings(client, cat.user_id))["customer"] == {"average": 4.0, "count": 1}

    # The reviews are public now; the booking behind them is not.
    query = "query($id: ID!) { node(id: $id) { ... on Review { rating booking { id } } } }"
    public = (await client.data(query, {"id": by_customer["id"]}, token=outsider.access))["node"]
    assert public == {"rating": 5, "booking": None}
    as_provider = await reviews_of(client, pam.user_id, **{"as": "PROVIDER"})
    assert [e["node"]["comment"] for e in as_provider["edges"]] == ["Spotless."]
    assert (await reviews_of(client, pam.user_id, **{"as": "CUSTOMER"}))["edges"] == []
