"""Notifications: one per person concerned by a change, linked to what changed."""

from __future__ import annotations

from tests.support.bookings import midday_zone, provider
from tests.support.graphql_client import GraphQLClient, error_codes
from tests.support.marketplace import make_offer, post_task, poster, tasker
from tests.support.reviews import complete_booking, confirmed_booking, reviewed

INBOX = """query($unread: Boolean!) { myNotifications(unreadOnly: $unread) { edges { node {
  id kind title readAt task { id } offer { id } booking { id } review { id } } } }
  unreadNotificationCount }"""


async def _inbox(
    client: GraphQLClient, token: str, unread: bool = False
) -> tuple[list[dict[str, object]], int]:
    data = await client.data(INBOX, {"unread": unread}, token=token)
    return [e["node"] for e in data["myNotifications"]["edges"]], data["unreadNotificationCount"]


async def test_offers_notify_the_other_side_not_the_actor(client: GraphQLClient) -> None:
    ann = await poster(client, "ann@example.com")
    tom = await tasker(client, "tom@example.com")
    task = await post_task(client, ann)
    offer = await make_offer(client, tom, task["id"])

    notes, unread = await _inbox(client, ann.access)
    assert unread == 1 and len(notes) == 1
    assert notes[0]["kind"] == "OFFER_RECEIVED" and notes[0]["readAt"] is None
    assert notes[0]["task"] == {"id": task["id"]} and notes[0]["offer"] == {"id": offer["id"]}
    assert "offered 110.00 AUD" in str(notes[0]["title"])
    assert (await _inbox(client, tom.access))[0] == []  # the actor is not told of their own act

    await client.mutate("acceptOffer", {"offerId": offer["id"]}, token=ann.access)
    kinds = sorted(str(n["kind"]) for n in (await _inbox(client, tom.access))[0])
    assert kinds == ["OFFER_ACCEPTED", "TASK_STATUS_CHANGED"]


async def test_marking_read(client: GraphQLClient) -> None:
    ann = await poster(client, "ann@example.com")
    taskers = [await tasker(client, f"t{i}@example.com") for i in range(3)]
    task = await post_task(client, ann)
    for who in taskers:
        await make_offer(client, who, task["id"])
    notes, unread = await _inbox(client, ann.access)
    assert unread == 3
    marked = await client.mutate(
        "markNotificationsRead", {"ids": [notes[0]["id"]]}, "marked", token=ann.access
    )
    assert marked["marked"] == 1
    assert len((await _inbox(client, ann.access, unread=True))[0]) == 2
    # Someone else's notification ids are not theirs to mark.
    other = await client.mutate(
        "markNotificationsRead", {"ids": [notes[1]["id"]]}, "marked", token=taskers[0].access
    )
    assert other["marked"] == 0
    assert (await client.mutate("markNotificationsRead", {}, "marked", token=ann.access))[
        "marked"
    ] == 2
    assert (await _inbox(client, ann.access))[1] == 0
    assert error_codes(
        await client.mutate("markNotificationsRead", {"ids": [task["id"]]}, token=ann.access)
    ) == ["INVALID_ID"]


async def test_booking_and_review_links_respect_visibility(client: GraphQLClient) -> None:
    cat = await poster(client, "cat@example.com")
    pia = await provider(client, "pia@example.com", time_zone=midday_zone())
    booking_id = await confirmed_booking(client, cat, pia)
    requested = [
        n for n in (await _inbox(client, pia.access))[0] if n["kind"] == "BOOKING_REQUESTED"
    ]
    assert requested[0]["booking"] == {"id": booking_id}

    await complete_booking(client, pia, booking_id)
    await reviewed(client, cat, booking_id, 5, "Spotless")
    posted = [n for n in (await _inbox(client, pia.access))[0] if n["kind"] == "REVIEW_POSTED"]
    assert len(posted) == 1 and posted[0]["review"] is None  # hidden until Pia reviews too
    await reviewed(client, pia, booking_id, 4)
    # Pia's review published both: Cat (not Pia, who caused it) hears of it.
    published = [
        n for n in (await _inbox(client, cat.access))[0] if n["kind"] == "REVIEWS_PUBLISHED"
    ]
    assert len(published) == 1 and published[0]["booking"] == {"id": booking_id}
    posted = [n for n in (await _inbox(client, pia.access))[0] if n["kind"] == "REVIEW_POSTED"]
    assert posted[0]["review"] is not None
