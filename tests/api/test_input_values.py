"""Money, dates, countries, weekdays and mails: values with bounds of their own."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import httpx
import pytest
from pydantic import ValidationError

from documents.accounts.profiles import ProviderProfile
from documents.marketplace.tasks import Task
from documents.settings import Settings
from integrations.mail import MemoryMailer
from server.runtime import Runtime
from tests.conftest import serve
from tests.support.bookings import WEEK, create_package, package_input, provider
from tests.support.graphql_client import GraphQLClient, graphql_error_codes
from tests.support.marketplace import (
    ADDRESS,
    TASK_FIELDS,
    aud,
    make_offer,
    place,
    post_task,
    poster,
    task_input,
    tasker,
)
from tests.support.payments.wallets import start_onboarding, user_id


def _problems(payload: dict[str, Any]) -> list[tuple[str, str]]:
    return [(e["code"], e["field"]) for e in payload["errors"]]


async def _post(client: GraphQLClient, token: str, **changes: Any) -> dict[str, Any]:
    return await client.mutate("postTask", task_input(**changes), TASK_FIELDS, token=token)


async def test_prices_are_in_currencies_the_gateway_charges_and_at_least_its_minimum(
    client: GraphQLClient,
) -> None:
    ann = await poster(client, "ann@example.com")
    refused = {
        "four decimals, which Stripe refuses": {"amount": 100_000, "currency": "CLF"},
        "not a currency": {"amount": 5000, "currency": "ZZZ"},
        "one cent": aud(1),
        "a cent under Stripe's A$0.50": aud(49),
        "under Stripe's £0.30": {"amount": 29, "currency": "GBP"},
        "under Stripe's ¥50": {"amount": 49, "currency": "JPY"},
    }
    for what, budget in refused.items():
        payload = await _post(client, ann.access, budget=budget)
        assert _problems(payload) == [("INVALID_INPUT", "budget")], what
    assert await Task.count() == 0

    for budget in (aud(50), {"amount": 30, "currency": "GBP"}, {"amount": 50, "currency": "JPY"}):
        assert (await _post(client, ann.access, budget=budget))["errors"] == []


async def test_every_price_of_the_graph_is_chargeable(client: GraphQLClient) -> None:
    ann = await poster(client, "ann@example.com")
    tom = await provider(client, "tom@example.com")
    task = await post_task(client, ann)
    offer = await make_offer(client, tom, task["id"], amount=11000)

    one_cent = await client.mutate(
        "makeOffer",
        {"taskId": task["id"], "amount": aud(1), "message": "Cheap!"},
        token=(await tasker(client, "ned@example.com")).access,
    )
    assert _problems(one_cent) == [("INVALID_INPUT", "amount")]
    cheaper = await client.mutate(
        "updateOffer", {"offerId": offer["id"], "amount": aud(10)}, token=tom.access
    )
    assert _problems(cheaper) == [("INVALID_INPUT", "amount")]
    # Each milestone is charged on its own, so each must be chargeable.
    split = await client.mutate(
        "acceptOffer",
        {
            "offerId": offer["id"],
            "milestones": [
                {"title": "Start", "amount": aud(10)},
                {"title": "Rest", "amount": aud(10990)},
            ],
        },
        "offer { status }",
        token=ann.access,
    )
    assert _problems(split) == [("INVALID_INPUT", "milestones.0.amount")]
    package = await client.mutate(
        "createServicePackage", package_input(price=aud(1)), token=tom.access
    )
    assert _problems(package) == [("INVALID_INPUT", "price")]
    rate = await client.mutate(
        "updateProviderProfile",
        {"hourlyRate": aud(1)},
        "profile { hourlyRate { amount } }",
        token=tom.access,
    )
    assert _problems(rate) == [("INVALID_INPUT", "hourlyRate")]
    offers = await client.data(
        "query($id: ID!) { node(id: $id) { ... on Offer { status amount { amount } } } }",
        {"id": offer["id"]},
        token=tom.access,
    )
    assert offers["node"] == {"status": "PENDING", "amount": {"amount": 11000}}


async def test_no_fee_is_rounded_to_nothing(runtime: Runtime) -> None:
    # A 0.01 % service fee is under a cent on any price below A$100: such prices are refused.
    async with serve(runtime, customer_fee_bp=1) as url, httpx.AsyncClient(base_url=url) as http:
        client = GraphQLClient(http)
        ann = await poster(client, "ann@example.com")
        small = await _post(client, ann.access, budget=aud(9999))
        assert _problems(small) == [("INVALID_INPUT", "budget")]
        assert "100.00 AUD" in small["errors"][0]["message"]
        assert (await _post(client, ann.access, budget=aud(10000)))["errors"] == []


async def test_the_currencies_setting_names_only_currencies_the_gateway_charges(
    runtime: Runtime,
) -> None:
    for unchargeable in ("CLF", "XYZ", "ISK"):
        with pytest.raises(ValidationError, match="cannot charge"):
            Settings(_env_file=None, currencies=unchargeable)
    async with serve(runtime, currencies=["AUD"]) as url, httpx.AsyncClient(base_url=url) as http:
        client = GraphQLClient(http)
        ann = await poster(client, "ann@example.com")
        usd = await _post(client, ann.access, budget={"amount": 5000, "currency": "USD"})
        assert _problems(usd) == [("INVALID_INPUT", "budget")]
        assert (await _post(client, ann.access, budget=aud(5000)))["errors"] == []


async def test_due_dates_are_ahead_but_not_years_ahead(client: GraphQLClient) -> None:
    ann = await poster(client, "ann@example.com")
    now = datetime.now(UTC)
    refused = {
        "an hour ago": (now - timedelta(hours=1)).isoformat(),
        "three years ahead": (now + timedelta(days=3 * 365)).isoformat(),
    }
    for what, due in refused.items():
        assert _problems(await _post(client, ann.access, dueAt=due)) == [
            ("INVALID_INPUT", "dueAt")
        ], what
    # Years nobody means are no DateTime at all (schema/common/scalars.py), west of UTC included.
    for due in (
        "9999-12-31T23:00:00-05:00",
        "9999-12-31T00:00:00+00:00",
        "0001-01-01T00:00:00+01:00",
    ):
        answer = await client.execute(
            "mutation($input: PostTaskInput!) { postTask(input: $input) { errors { code } } }",
            {"input": task_input(dueAt=due)},
            token=ann.access,
        )
        assert graphql_error_codes(answer) == ["BAD_USER_INPUT"], (due, answer)
    task = await post_task(client, ann, dueAt=(now + timedelta(days=365)).isoformat())
    later = await client.mutate(
        "updateTask",
        {"taskId": task["id"], "dueAt": (now + timedelta(days=4 * 365)).isoformat()},
        token=ann.access,
    )
    assert _problems(later) == [("INVALID_INPUT", "dueAt")]
    assert await Task.count() == 1


async def test_schedule_exceptions_are_at_most_a_year_ahead(client: GraphQLClient) -> None:
    tom = await provider(client, "tom@example.com")
    far = await client.mutate(
        "setScheduleException",
        {"date": (date.today() + timedelta(days=400)).isoformat(), "kind": "UNAVAILABLE"},
        token=tom.access,
    )
    assert _problems(far) == [("INVALID_INPUT", "date")]
    profile = await ProviderProfile.get(user_id(tom))
    assert profile is not None and profile.exceptions == []


async def test_countries_are_iso_3166_codes_that_exist(client: GraphQLClient) -> None:
    ann = await poster(client, "ann@example.com")
    nowhere = place()
    nowhere["address"] = {**ADDRESS, "country": "ZZ"}
    refused = await _post(client, ann.access, location=nowhere)
    assert _problems(refused) == [("INVALID_INPUT", "location.address.country")]
    assert await Task.count() == 0

    tom = await tasker(client, "tom@example.com")
    bad = await start_onboarding(client, tom, country="ZZ")
    assert _problems(bad) == [("INVALID_INPUT", "country")]
    assert await ProviderProfile.get(user_id(tom)) is None

    british = place()
    british["address"] = {**ADDRESS, "country": "gb"}
    posted = await client.mutate(
        "postTask",
        task_input(location=british),
        "task { place { address { country } } }",
        token=ann.access,
    )
    assert posted["task"]["place"]["address"]["country"] == "GB"


async def test_a_weekday_given_twice_is_refused_not_overwritten(client: GraphQLClient) -> None:
    tom = await provider(client, "tom@example.com", hours=("09:00", "17:00"))
    twice = await client.mutate(
        "setWeeklyHours",
        {
            "days": [
                {"weekday": "MONDAY", "ranges": [{"start": "08:00", "end": "12:00"}]},
                {"weekday": "TUESDAY", "ranges": [{"start": "08:00", "end": "12:00"}]},
                {"weekday": "MONDAY", "ranges": [{"start": "13:00", "end": "18:00"}]},
            ]
        },
        token=tom.access,
    )
    assert _problems(twice) == [("INVALID_INPUT", "days.2.weekday")]
    profile = await ProviderProfile.get(user_id(tom))
    assert profile is not None
    assert [[(r.start_minute, r.end_minute) for r in day] for day in profile.weekly_hours] == [
        [(9 * 60, 17 * 60)]
    ] * len(WEEK)


async def test_clock_times_take_ascii_digits(client: GraphQLClient) -> None:
    tom = await provider(client, "tom@example.com")
    for start in ("²:00", "\u0669:00", "9:0", "09:00:00"):
        payload = await client.mutate(
            "setWeeklyHours",
            {"days": [{"weekday": "MONDAY", "ranges": [{"start": start, "end": "17:00"}]}]},
            token=tom.access,
        )
        assert _problems(payload) == [("INVALID_INPUT", "days.0.ranges")], start


async def test_mails_carry_no_words_of_whoever_signed_up(
    client: GraphQLClient, outbox: MemoryMailer
) -> None:
    lure = "Your account is locked, unlock it at https://evil.example.com/unlock"
    await client.sign_up("ann@example.com", name=lure)
    reset = await client.mutate("requestPasswordReset", {"email": "ann@example.com"})
    assert reset["errors"] == []
    for subject in ("Confirm your e-mail address", "Reset your password"):
        mail = await outbox.wait_for(lambda m, s=subject: m.subject == s)  # type: ignore[misc]
        assert "evil.example.com" not in mail.text and "locked" not in mail.text
        assert "http://localhost:3000/" in mail.text  # the link: GIGQL_APP_URL and a token

    for name in ("Ann\r\nBcc: everyone@example.com", "Ann\nB", "\u200b\u200b"):
        payload = await client.mutate(
            "signUp",
            {
                "name": name,
                "email": "bo@example.com",
                "password": "Correct-Horse-42",
                "roles": ["POSTER"],
            },
        )
        assert _problems(payload) == [("INVALID_INPUT", "name")], name
    assert not [m for m in outbox.outbox if m.to == "bo@example.com"]


async def test_packages_and_profiles_keep_good_text(client: GraphQLClient) -> None:
    tom = await provider(client, "tom@example.com")
    package = await create_package(
        client, tom, description="Windows inside and out.\nFrames wiped too.\r\nLadders brought."
    )
    assert package["description"] == "Windows inside and out.\nFrames wiped too.\nLadders brought."
