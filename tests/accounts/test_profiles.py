"""Provider and customer profiles: validation, hours, exceptions, addresses, privacy."""

from __future__ import annotations

from datetime import date, timedelta

from documents.accounts.profiles import ProviderProfile
from server.runtime import Runtime
from tests.support.graphql_client import GraphQLClient, error_codes
from tests.support.marketplace import (
    ADDRESS,
    aud,
    logged_in_admin,
    make_offer,
    place,
    post_task,
    poster,
    tasker,
)

PROFILE = """profile { bio skills yearsOfExperience hourlyRate { amount currency } available
  serviceRadiusKm timeZone identityVerification rating { average count } completedJobs bufferMinutes
  area { city point { latitude } } }"""
PUBLIC = """query($id: ID!) { node(id: $id) { ... on User { providerProfile {
  bio area { city } place { address { line1 } }
  weeklyHours { weekday ranges { start end } } exceptions { date kind ranges { start end } } } } } }"""


async def test_a_tasker_sets_up_a_provider_profile(client: GraphQLClient) -> None:
    tom = await tasker(client, "tom@example.com")
    payload = await client.mutate(
        "updateProviderProfile",
        {
            "bio": "Gardener for ten years.",
            "skills": ["gardening", "Handyman", "gardening"],
            "yearsOfExperience": 10,
            "hourlyRate": aud(6500),
            "location": place(),
            "serviceRadiusKm": 25,
            "timeZone": "Australia/Sydney",
            "bufferMinutes": 30,
        },
        PROFILE,
        token=tom.access,
    )
    assert payload["errors"] == []
    assert payload["profile"] == {
        "bio": "Gardener for ten years.",
        "skills": ["gardening", "handyman"],
        "yearsOfExperience": 10,
        "hourlyRate": {"amount": 6500, "currency": "AUD"},
        "available": True,
        "serviceRadiusKm": 25,
        "timeZone": "Australia/Sydney",
        "identityVerification": "UNVERIFIED",
        "rating": {"average": None, "count": 0},
        "completedJobs": 0,
        "bufferMinutes": 30,
        "area": {"city": "Sydney", "point": {"latitude": -33.87}},
    }
    # Changing one field keeps the others.
    again = await client.mutate(
        "updateProviderProfile", {"available": False}, PROFILE, token=tom.access
    )
    assert (
        again["profile"]["available"] is False
        and again["profile"]["bio"] == "Gardener for ten years."
    )
    assert await ProviderProfile.count() == 1


async def test_bad_profile_input_changes_nothing(client: GraphQLClient) -> None:
    tom = await tasker(client, "tom@example.com")
    ann = await poster(client, "ann@example.com")
    assert error_codes(
        await client.mutate("updateProviderProfile", {"bio": "x"}, token=ann.access)
    ) == ["FORBIDDEN"]
    payload = await client.mutate(
        "updateProviderProfile",
        {
            "skills": ["astrology"],
            "yearsOfExperience": -1,
            "hourlyRate": {"amount": 100, "currency": "ABC"},
            "serviceRadiusKm": 0,
            "timeZone": "Mars/Olympus",
            "bufferMinutes": 1000,
            "bio": "x" * 2001,
        },
        token=tom.access,
    )
    fields = sorted(e["field"] for e in payload["errors"])
    assert fields == sorted(
        [
            "skills",
            "yearsOfExperience",
            "hourlyRate",
            "serviceRadiusKm",
            "timeZone",
            "bufferMinutes",
            "bio",
        ]
    )
    assert await ProviderProfile.count() == 0


async def test_weekly_hours_and_exceptions(client: GraphQLClient) -> None:
    tom = await tasker(client, "tom@example.com")
    hours = {
        "days": [
            {
                "weekday": "MONDAY",
                "ranges": [{"start": "13:00", "end": "17:30"}, {"start": "08:00", "end": "12:00"}],
            },
            {"weekday": "SATURDAY", "ranges": [{"start": "09:00", "end": "24:00"}]},
        ]
    }
    assert (await client.mutate("setWeeklyHours", hours, token=tom.access))["errors"] == []
    holiday = (date.today() + timedelta(days=10)).isoformat()
    extra = (date.today() + timedelta(days=11)).isoformat()
    await client.mutate(
        "setScheduleException", {"date": holiday, "kind": "UNAVAILABLE"}, token=tom.access
    )
    await client.mutate(
        "setScheduleException",
        {"date": extra, "kind": "EXTRA_HOURS", "ranges": [{"start": "18:00", "end": "20:00"}]},
        token=tom.access,
    )
    profile = (await client.data(PUBLIC, {"id": tom.user_id}))["node"]["providerProfile"]
    assert profile["weeklyHours"][0] == {
        "weekday": "MONDAY",
        "ranges": [{"start": "08:00", "end": "12:00"}, {"start": "13:00", "end": "17:30"}],
    }
    assert profile["weeklyHours"][5]["ranges"] == [{"start": "09:00", "end": "24:00"}]
    assert profile["weeklyHours"][1]["ranges"] == []
    assert profile["exceptions"] == [
        {"date": holiday, "kind": "UNAVAILABLE", "ranges": []},
        {"date": extra, "kind": "EXTRA_HOURS", "ranges": [{"start": "18:00", "end": "20:00"}]},
    ]
    removed = await client.mutate("removeScheduleException", {"date": holiday}, token=tom.access)
    assert removed["errors"] == []
    assert error_codes(
        await client.mutate("removeScheduleException", {"date": holiday}, token=tom.access)
    ) == ["NOT_FOUND"]


async def test_bad_hours_are_refused(client: GraphQLClient) -> None:
    tom = await tasker(client, "tom@example.com")
    for ranges in (
        [{"start": "17:00", "end": "09:00"}],
        [{"start": "9am", "end": "5pm"}],
        [{"start": "09:00", "end": "13:00"}, {"start": "12:00", "end": "15:00"}],
        [{"start": "09:00", "end": "24:30"}],
    ):
        payload = await client.mutate(
            "setWeeklyHours", {"days": [{"weekday": "TUESDAY", "ranges": ranges}]}, token=tom.access
        )
        assert error_codes(payload) == ["INVALID_INPUT"], ranges
    past = (date.today() - timedelta(days=5)).isoformat()
    assert error_codes(
        await client.mutate(
            "setScheduleException", {"date": past, "kind": "UNAVAILABLE"}, token=tom.access
        )
    ) == ["INVALID_INPUT"]
    future = (date.today() + timedelta(days=5)).isoformat()
    assert error_codes(
        await client.mutate(
            "setScheduleException", {"date": future, "kind": "EXTRA_HOURS"}, token=tom.access
        )
    ) == ["INVALID_INPUT"]


async def test_the_exact_address_is_for_the_provider_and_admins_alone(
    client: GraphQLClient, runtime: Runtime
) -> None:
    tom = await tasker(client, "tom@example.com")
    ann = await poster(client, "ann@example.com")
    await client.mutate("updateProviderProfile", {"location": place()}, token=tom.access)
    seen = (await client.data(PUBLIC, {"id": tom.user_id}, token=ann.access))["node"][
        "providerProfile"
    ]
    assert seen["area"] == {"city": "Sydney"} and seen["place"] is None
    own = (await client.data(PUBLIC, {"id": tom.user_id}, token=tom.access))["node"][
        "providerProfile"
    ]
    assert own["place"] == {"address": {"line1": ADDRESS["line1"]}}
    root = await logged_in_admin(client, runtime)
    audited = (await client.data(PUBLIC, {"id": tom.user_id}, token=root.access))["node"][
        "providerProfile"
    ]
    assert audited["place"] == own["place"]
    # Working together gives contact details, not the provider's home: the work is at
    # the task's place (or a booking's service location).
    task = await post_task(client, ann)
    offer = await make_offer(client, tom, task["id"])
    await client.mutate("acceptOffer", {"offerId": offer["id"]}, token=ann.access)
    hired = (await client.data(PUBLIC, {"id": tom.user_id}, token=ann.access))["node"][
        "providerProfile"
    ]
    assert hired["area"] == {"city": "Sydney"} and hired["place"] is None


async def test_saved_addresses_are_private(client: GraphQLClient) -> None:
    ann = await poster(client, "ann@example.com")
    tom = await tasker(client, "tom@example.com")
    saved = await client.mutate(
        "saveAddress",
        {"label": "Home", "location": place()},
        "profile { savedAddresses { id label } }",
        token=ann.access,
    )
    [address] = saved["profile"]["savedAddresses"]
    assert address["label"] == "Home"
    query = "query($id: ID!) { node(id: $id) { ... on User { customerProfile { savedAddresses { id } } } } }"
    # Others see an empty list, as if there were none.
    assert (await client.data(query, {"id": ann.user_id}, token=tom.access))["node"][
        "customerProfile"
    ] == {"savedAddresses": []}
    removed = await client.mutate(
        "removeSavedAddress",
        {"addressId": address["id"]},
        "profile { savedAddresses { id } }",
        token=ann.access,
    )
    assert removed["profile"]["savedAddresses"] == []
    assert error_codes(
        await client.mutate("removeSavedAddress", {"addressId": address["id"]}, token=ann.access)
    ) == ["NOT_FOUND"]
