"""availableSlots over the API: working hours, exceptions, bookings with buffers, notice,
and daylight-saving days in New York and Sydney, as exact UTC instants."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

import pytest

from tests.support.bookings import (
    SLOTS,
    act,
    book,
    booked,
    create_package,
    freeze_clock,
    provider,
    slots,
    utc,
)
from tests.support.graphql_client import GraphQLClient, error_codes, graphql_error_codes
from tests.support.marketplace import poster

NEW_YEAR = datetime(2026, 1, 1, tzinfo=UTC)
JUNE_1 = date(2026, 6, 1)
NY_SPRING, NY_FALL = date(2026, 3, 8), date(2026, 11, 1)
SYDNEY_FALL, SYDNEY_SPRING = date(2026, 4, 5), date(2026, 10, 4)


@pytest.fixture(autouse=True)
def new_year(monkeypatch: pytest.MonkeyPatch) -> None:
    """It is 2026-01-01 for these tests, so the dates they book stay in the future."""
    freeze_clock(monkeypatch, NEW_YEAR)


async def test_new_york_daylight_saving_days(client: GraphQLClient) -> None:
    tom = await provider(
        client, "tom@example.com", time_zone="America/New_York", hours=("00:30", "03:00")
    )
    hour = await create_package(client, tom, durationMinutes=60)
    # Spring forward: 02:00 EST is 03:00 EDT, so 00:30 to 03:00 is an hour and a half.
    assert await slots(client, tom.user_id, hour["id"], NY_SPRING) == [
        utc(NY_SPRING, 5, 30),  # 00:30 EST
        utc(NY_SPRING, 6),  # 01:00 EST, ending an hour later at 03:00 EDT
    ]
    # Fall back: 01:00-01:59 happen twice, and both are offered.
    fall_back = [
        utc(NY_FALL, 4, 30),  # 00:30 EDT
        utc(NY_FALL, 5),  # 01:00 EDT
        utc(NY_FALL, 5, 30),  # 01:30 EDT
        utc(NY_FALL, 6),  # 01:00 EST
        utc(NY_FALL, 6, 30),  # 01:30 EST
        utc(NY_FALL, 7),  # 02:00 EST, ending at 03:00 EST
    ]
    assert await slots(client, tom.user_id, hour["id"], NY_FALL) == fall_back

    ann = await poster(client, "ann@example.com")
    second_half_past_one = await booked(client, ann, hour["id"], fall_back[4])
    assert (second_half_past_one["start"], second_half_past_one["end"]) == (
        utc(NY_FALL, 6, 30),
        utc(NY_FALL, 7, 30),
    )
    assert await slots(client, tom.user_id, hour["id"], NY_FALL) == fall_back[:3]
    # The same wall-clock time an hour earlier is another instant, and still free.
    assert (await booked(client, ann, hour["id"], fall_back[2]))["start"] == fall_back[2]


async def test_sydney_daylight_saving_days(client: GraphQLClient) -> None:
    sue = await provider(
        client, "sue@example.com", time_zone="Australia/Sydney", hours=("01:00", "04:00")
    )
    hour = await create_package(client, sue, durationMinutes=60)
    # Fall back: 03:00 AEDT is 02:00 AEST; in UTC it is still the day before.
    the_day_before = SYDNEY_FALL - timedelta(days=1)
    assert await slots(client, sue.user_id, hour["id"], SYDNEY_FALL) == [
        utc(the_day_before, 14),  # 01:00 AEDT
        utc(the_day_before, 14, 30),
        utc(the_day_before, 15),  # 02:00 AEDT
        utc(the_day_before, 15, 30),
        utc(the_day_before, 16),  # 02:00 AEST
        utc(the_day_before, 16, 30),
        utc(the_day_before, 17),  # 03:00 AEST, ending at 04:00 AEST
    ]
    # Spring forward: 02:00 AEST is 03:00 AEDT.
    the_day_before = SYDNEY_SPRING - timedelta(days=1)
    assert await slots(client, sue.user_id, hour["id"], SYDNEY_SPRING) == [
        utc(the_day_before, 15),  # 01:00 AEST
        utc(the_day_before, 15, 30),
        utc(the_day_before, 16),  # 03:00 AEDT
    ]
    ann = await poster(client, "ann@example.com")
    off_grid = await book(client, ann, hour["id"], utc(the_day_before, 15, 45))
    assert [(e["code"], e["field"]) for e in off_grid["errors"]] == [("UNAVAILABLE", "start")]
    outside = await book(client, ann, hour["id"], utc(the_day_before, 20))
    assert [(e["code"], e["field"]) for e in outside["errors"]] == [("UNAVAILABLE", "start")]


async def test_bookings_hold_their_time_and_the_buffer(client: GraphQLClient) -> None:
    tom = await provider(client, "tom@example.com", hours=("09:00", "17:00"), buffer_minutes=30)
    ann = await poster(client, "ann@example.com")
    clean = await create_package(client, tom)  # two hours
    all_day = [utc(JUNE_1, 9 + i // 2, 30 * (i % 2)) for i in range(13)]  # 09:00 to 15:00
    assert await slots(client, tom.user_id, clean["id"], JUNE_1) == all_day

    noon = await booked(client, ann, clean["id"], utc(JUNE_1, 12))
    # A booking must end 30 minutes before noon, or start 30 minutes after 14:00.
    around_noon = [utc(JUNE_1, 9), utc(JUNE_1, 9, 30), utc(JUNE_1, 14, 30), utc(JUNE_1, 15)]
    assert await slots(client, tom.user_id, clean["id"], JUNE_1) == around_noon
    await act(client, "confirmBooking", tom, noon["id"])
    assert await slots(client, tom.user_id, clean["id"], JUNE_1) == around_noon
    taken = await book(client, ann, clean["id"], utc(JUNE_1, 14))
    assert [(e["code"], e["message"]) for e in taken["errors"]] == [
        ("UNAVAILABLE", "That time is taken.")
    ]
    cancelled = await act(client, "cancelBooking", ann, noon["id"], reason="Plans changed")
    assert cancelled["booking"]["status"] == "CANCELLED"
    assert await slots(client, tom.user_id, clean["id"], JUNE_1) == all_day


async def test_exceptions_and_notice(
    client: GraphQLClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    tom = await provider(client, "tom@example.com", hours=("09:00", "12:00"))
    hour = await create_package(client, tom, durationMinutes=60)
    # Exceptions are only taken for dates to come, by the real clock.
    freeze_clock(monkeypatch, datetime.now(UTC))
    off, short, long = (datetime.now(UTC).date() + timedelta(days=d) for d in (10, 11, 12))
    for day, kind, ranges in [
        (off, "UNAVAILABLE", []),
        (short, "UNAVAILABLE", [{"start": "10:00", "end": "11:00"}]),
        (long, "EXTRA_HOURS", [{"start": "18:00", "end": "19:30"}]),
    ]:
        payload = await client.mutate(
            "setScheduleException",
            {"date": day.isoformat(), "kind": kind, "ranges": ranges},
            token=tom.access,
        )
        assert payload["errors"] == [], payload
    assert await slots(client, tom.user_id, hour["id"], off) == []
    assert await slots(client, tom.user_id, hour["id"], short) == [utc(short, 9), utc(short, 11)]
    ann = await poster(client, "ann@example.com")
    assert (await booked(client, ann, hour["id"], utc(short, 11)))["end"] == utc(short, 12)
    assert await slots(client, tom.user_id, hour["id"], short) == [utc(short, 9)]
    assert await slots(client, tom.user_id, hour["id"], long) == [
        utc(long, 9),
        utc(long, 9, 30),
        utc(long, 10),
        utc(long, 10, 30),
        utc(long, 11),
        utc(long, 18),
        utc(long, 18, 30),
    ]

    # An hour's notice (the default): at 09:10, the first start is 10:30.
    freeze_clock(monkeypatch, datetime.combine(long, time(9, 10), UTC))
    assert (await slots(client, tom.user_id, hour["id"], long))[:2] == [
        utc(long, 10, 30),
        utc(long, 11),
    ]
    too_soon = await book(client, ann, hour["id"], utc(long, 10))
    assert [(e["code"], e["field"]) for e in too_soon["errors"]] == [("UNAVAILABLE", "start")]
    past = await book(client, ann, hour["id"], utc(long, 9))
    assert [(e["code"], e["field"]) for e in past["errors"]] == [("INVALID_INPUT", "start")]


async def test_nothing_is_open_when_the_provider_or_package_is_not(client: GraphQLClient) -> None:
    tom = await provider(client, "tom@example.com", hours=("09:00", "12:00"))
    sue = await provider(client, "sue@example.com")
    hour = await create_package(client, tom, durationMinutes=60)
    assert len(await slots(client, tom.user_id, hour["id"], JUNE_1)) == 5

    await client.mutate("updateProviderProfile", {"available": False}, token=tom.access)
    assert await slots(client, tom.user_id, hour["id"], JUNE_1) == []
    ann = await poster(client, "ann@example.com")
    away = await book(client, ann, hour["id"], utc(JUNE_1, 9))
    assert error_codes(away) == ["UNAVAILABLE"]
    await client.mutate("updateProviderProfile", {"available": True}, token=tom.access)
    await client.mutate("deactivateServicePackage", {"packageId": hour["id"]}, token=tom.access)
    assert await slots(client, tom.user_id, hour["id"], JUNE_1) == []
    inactive = await book(client, ann, hour["id"], utc(JUNE_1, 9))
    assert error_codes(inactive) == ["INVALID_STATE"]

    variables = {"provider": sue.user_id, "package": hour["id"], "date": JUNE_1.isoformat()}
    assert graphql_error_codes(await client.execute(SLOTS, variables)) == ["NOT_FOUND"]
    swapped = {**variables, "package": sue.user_id}
    assert graphql_error_codes(await client.execute(SLOTS, swapped)) == ["INVALID_ID"]
    # Bookings are taken up to a year ahead (it is 2026-01-01 here).
    far = {**variables, "provider": tom.user_id, "date": "2027-01-03"}
    assert graphql_error_codes(await client.execute(SLOTS, far)) == ["INVALID_INPUT"]
    # Years nobody means are no Date at all (schema/common/scalars.py).
    for day in ("0001-01-01", "9999-12-31"):
        result = await client.execute(SLOTS, {**far, "date": day})
        assert graphql_error_codes(result) == ["BAD_USER_INPUT"], day
