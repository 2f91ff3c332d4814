"""Preferences: read with the catalogue's defaults, changed kind by kind, counted from
the next change on; kinds that may not be turned off stay on; quiet hours checked."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from documents.notifications.catalogue import CATALOGUE, Channel, NotificationKind, readme_table
from documents.notifications.deliveries import Delivery, DeliveryStatus
from documents.notifications.preferences import NotificationPreferences
from integrations.mail import MemoryMailer
from resolvers.notifications.sending import send_due
from server.runtime import Runtime
from tests.support.graphql_client import GraphQLClient, Tokens, error_codes, graphql_error_codes
from tests.support.marketplace import make_offer, object_id, post_task, poster, tasker

README = Path(__file__).resolve().parents[2] / "README.md"

PREFERENCES = """{ notificationPreferences {
  kinds { kind channels defaultChannels optional }
  quietHours { start end timeZone emailWaits } } }"""
SELECTION = """preferences { kinds { kind channels defaultChannels optional }
  quietHours { start end timeZone emailWaits } }"""
NIGHT = {"start": "22:00", "end": "07:00", "timeZone": "Europe/Paris"}


async def read(client: GraphQLClient, who: Tokens) -> dict[str, Any]:
    preferences: dict[str, Any] = (await client.data(PREFERENCES, token=who.access))[
        "notificationPreferences"
    ]
    return preferences


async def update(client: GraphQLClient, who: Tokens, **input: Any) -> dict[str, Any]:
    return await client.mutate("updateNotificationPreferences", input, SELECTION, token=who.access)


def by_kind(preferences: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {entry["kind"]: entry for entry in preferences["kinds"]}


def test_readme_shows_the_catalogue_as_declared() -> None:
    assert readme_table() in README.read_text(), (
        "README's table of notifications is out of date: paste readme_table() in"
    )


async def test_preferences_read_as_the_catalogue_until_chosen(client: GraphQLClient) -> None:
    ann = await client.member("ann@example.com")
    preferences = await read(client, ann)
    assert [entry["kind"] for entry in preferences["kinds"]] == [k.name for k in CATALOGUE]
    kinds = by_kind(preferences)
    assert kinds["OFFER_RECEIVED"] == {
        "kind": "OFFER_RECEIVED",
        "channels": ["EMAIL", "PUSH"],
        "defaultChannels": ["EMAIL", "PUSH"],
        "optional": True,
    }
    assert kinds["BOOKING_REQUESTED"]["channels"] == ["EMAIL", "SMS", "PUSH"]
    assert kinds["PAYMENT_RECEIPT"] == {
        "kind": "PAYMENT_RECEIPT",
        "channels": ["EMAIL"],
        "defaultChannels": ["EMAIL"],
        "optional": False,
    }
    assert preferences["quietHours"] is None

    anonymous = await client.execute(PREFERENCES)
    assert graphql_error_codes(anonymous) == ["UNAUTHENTICATED"]


async def test_a_kind_turned_off_writes_and_sends_no_email_from_the_next_change_on(
    client: GraphQLClient, runtime: Runtime, outbox: MemoryMailer
) -> None:
    ann = await poster(client, "ann@example.com")
    tom = await tasker(client, "tom@example.com")
    tia = await tasker(client, "tia@example.com")
    task = await post_task(client, ann)
    await make_offer(client, tom, task["id"])
    mine = {"user_id": object_id(ann.user_id), "kind": NotificationKind.OFFER_RECEIVED.value}
    # Ann has no browser subscribed: e-mail is the one channel she is reached on.
    [first] = await Delivery.find(mine).to_list()
    assert first.channel is Channel.EMAIL and first.status is DeliveryStatus.PENDING

    changed = await update(client, ann, choices=[{"kind": "OFFER_RECEIVED", "channels": ["PUSH"]}])
    assert changed["errors"] == []
    kinds = by_kind(changed["preferences"])
    assert kinds["OFFER_RECEIVED"]["channels"] == ["PUSH"]
    assert kinds["OFFER_ACCEPTED"]["channels"] == ["EMAIL", "PUSH"]  # the others keep theirs
    assert by_kind(await read(client, ann))["OFFER_RECEIVED"]["channels"] == ["PUSH"]

    await make_offer(client, tia, task["id"])
    assert await Delivery.find(mine).count() == 1  # the second offer wrote none

    await send_due(runtime.services)
    # The one written before the change is checked again as it goes out: not sent.
    skipped = await Delivery.get(first.id)
    assert skipped is not None and skipped.status is DeliveryStatus.SKIPPED
    assert skipped.ended_reason == "turned off"
    assert [m for m in outbox.outbox if m.to == "ann@example.com" and m.header("Message-ID")] == []


async def test_a_choice_like_the_defaults_follows_them(client: GraphQLClient) -> None:
    ann = await client.member("ann@example.com")
    await update(client, ann, choices=[{"kind": "OFFER_REJECTED", "channels": []}])
    back = await update(client, ann, choices=[{"kind": "OFFER_REJECTED", "channels": ["EMAIL"]}])
    assert by_kind(back["preferences"])["OFFER_REJECTED"]["channels"] == ["EMAIL"]
    user_id = object_id(ann.user_id)
    stored = await NotificationPreferences.find_one(NotificationPreferences.user_id == user_id)
    assert stored is not None and stored.choices == {}


async def test_a_kind_that_may_not_be_turned_off_refuses_to_lose_a_default_channel(
    client: GraphQLClient,
) -> None:
    ann = await client.member("ann@example.com")
    before = await read(client, ann)
    refused = await update(
        client,
        ann,
        choices=[
            {"kind": "OFFER_REJECTED", "channels": []},
            {"kind": "PAYMENT_RECEIPT", "channels": []},
            {"kind": "PAYOUT_FAILED", "channels": ["EMAIL"]},
        ],
        quietHours=NIGHT,
    )
    assert error_codes(refused) == ["NOTIFICATION_REQUIRED", "NOTIFICATION_REQUIRED"]
    assert [e["field"] for e in refused["errors"]] == ["choices.1.channels", "choices.2.channels"]
    assert refused["preferences"] is None
    assert await read(client, ann) == before  # nothing changed, not even the rest

    # Adding a channel takes nothing away: allowed.
    added = await update(
        client, ann, choices=[{"kind": "PAYMENT_RECEIPT", "channels": ["EMAIL", "PUSH"]}]
    )
    assert added["errors"] == []
    assert by_kind(added["preferences"])["PAYMENT_RECEIPT"]["channels"] == ["EMAIL", "PUSH"]


async def test_a_kind_chosen_twice_is_refused(client: GraphQLClient) -> None:
    ann = await client.member("ann@example.com")
    twice = await update(
        client,
        ann,
        choices=[
            {"kind": "OFFER_REJECTED", "channels": []},
            {"kind": "OFFER_REJECTED", "channels": ["EMAIL"]},
        ],
    )
    assert error_codes(twice) == ["INVALID_INPUT"]
    assert twice["errors"][0]["field"] == "choices.1.kind"


async def test_quiet_hours_are_set_kept_and_cleared(client: GraphQLClient) -> None:
    ann = await client.member("ann@example.com")
    quiet = await update(client, ann, quietHours={**NIGHT, "emailWaits": True})
    assert quiet["errors"] == []
    expected = {**NIGHT, "emailWaits": True}
    assert quiet["preferences"]["quietHours"] == expected
    assert (await read(client, ann))["quietHours"] == expected

    # Left out, they stay; null clears them.
    kept = await update(client, ann, choices=[{"kind": "OFFER_REJECTED", "channels": []}])
    assert kept["preferences"]["quietHours"] == expected
    cleared = await update(client, ann, quietHours=None)
    assert cleared["errors"] == [] and cleared["preferences"]["quietHours"] is None
    assert by_kind(cleared["preferences"])["OFFER_REJECTED"]["channels"] == []


async def test_quiet_hours_need_clock_times_that_differ_and_a_real_time_zone(
    client: GraphQLClient,
) -> None:
    ann = await client.member("ann@example.com")
    wrong = [
        ({"start": "24:00"}, "quietHours.start"),
        ({"start": "7:00"}, "quietHours.start"),
        ({"start": "07:60"}, "quietHours.start"),
        ({"start": "\u0660\u0667:\u0660\u0660"}, "quietHours.start"),  # Arabic-Indic digits
        ({"end": "10pm"}, "quietHours.end"),
        ({"end": "22:00"}, "quietHours.end"),  # the start
        ({"timeZone": "Mars/Olympus_Mons"}, "quietHours.timeZone"),
        ({"timeZone": "../../../etc/passwd"}, "quietHours.timeZone"),
        ({"timeZone": ""}, "quietHours.timeZone"),
        ({"timeZone": "Europe/Paris" * 20}, "quietHours.timeZone"),
    ]
    for change, field in wrong:
        refused = await update(client, ann, quietHours={**NIGHT, **change})
        assert error_codes(refused) == ["INVALID_INPUT"], change
        assert refused["errors"][0]["field"] == field, change
    both = await update(client, ann, quietHours={**NIGHT, "start": "x", "timeZone": "Nowhere"})
    assert [e["field"] for e in both["errors"]] == ["quietHours.start", "quietHours.timeZone"]
    assert (await read(client, ann))["quietHours"] is None

    daytime = await update(
        client, ann, quietHours={"start": "00:00", "end": "23:59", "timeZone": "UTC"}
    )
    assert daytime["errors"] == []
