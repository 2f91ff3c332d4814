"""The sandbox gateway's pages, used as a browser would over HTTP: onboarding a payout
account (completed, or left with a requirement due), an identity check (failed, then
verified), what a used, expired or unknown link does, and that they exist only on the
sandbox. Then the whole loop on two `gigql serve` processes sharing one database: every
sandbox event delivered once."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit

import httpx
from bson import ObjectId

from documents.accounts.audit import AuditEvent, AuditKind
from documents.payments.webhooks import WebhookEvent, WebhookStatus
from documents.settings import Settings
from integrations.payments.sandbox_store import EVENTS, LINKS
from resolvers.payments.connect import ONBOARDING_REFRESH_PATH, ONBOARDING_RETURN_PATH
from resolvers.payments.identity import RETURN_PATH as IDENTITY_RETURN_PATH
from server.runtime import Runtime
from tests.conftest import serve
from tests.payments.gateways.harness import SECRET_KEY, WEBHOOK_SECRET
from tests.support.gigql_process import graphql, sharing_the_test_database
from tests.support.graphql_client import GraphQLClient, Tokens
from tests.support.marketplace import make_offer, object_id, post_task, poster, tasker
from tests.support.payments.sandbox import (
    TASK_ESCROW,
    Deal,
    available,
    choose,
    escrow_status,
    finish_task,
    onboarding_link,
    page,
    payout_account,
    payouts_enabled,
    settled_withdrawal,
    until,
    withdraw,
)
from tests.support.payments.wallets import stripe_account_of

IDENTITY_STARTED = "url identityVerification"


async def identity_link(client: GraphQLClient, who: Tokens) -> str:
    started = await client.mutate(
        "startIdentityVerification", {}, IDENTITY_STARTED, token=who.access
    )
    assert started["errors"] == [] and started["identityVerification"] == "PENDING", started
    url: str = started["url"]
    return url


async def identity_becomes(client: GraphQLClient, who: Tokens, expected: str) -> None:
    async def reached() -> bool | None:
        state = (await payout_account(client, who))["identityVerification"]
        return True if state == expected else None

    await until(reached)


async def test_onboarding_left_with_a_requirement_due_is_finished_with_a_new_link(
    client: GraphQLClient, runtime: Runtime
) -> None:
    app_url = runtime.services.settings.app_url
    who = await tasker(client, "due@example.com")
    first = await onboarding_link(client, who)

    async with httpx.AsyncClient(timeout=30) as browser:
        due = await choose(browser, first, "requirements_due")
        assert due.status_code == 303
        assert due.headers["location"] == app_url + ONBOARDING_RETURN_PATH

        async def submitted() -> dict[str, object] | None:
            account = await payout_account(client, who)
            return account if account["detailsSubmitted"] else None

        account = await until(submitted)
        assert account["payoutsEnabled"] is False
        # Single use, as Stripe's account links: the provider is sent for a new one.
        again = await page(browser, first)
        assert again.status_code == 303
        assert again.headers["location"] == app_url + ONBOARDING_REFRESH_PATH

        done = await choose(browser, await onboarding_link(client, who), "complete")
        assert done.headers["location"] == app_url + ONBOARDING_RETURN_PATH
        await payouts_enabled(client, who)


async def test_an_expired_onboarding_link_leads_to_its_refresh_url(
    client: GraphQLClient, runtime: Runtime
) -> None:
    who = await tasker(client, "late@example.com")
    link = await onboarding_link(client, who)
    # Past its five minutes (Stripe's account links live that long).
    await runtime.database[LINKS].update_many(
        {"kind": "account_onboarding"},
        {"$set": {"expires_at": datetime.now(UTC) - timedelta(seconds=1)}},
    )

    async with httpx.AsyncClient(timeout=30) as browser:
        shown = await page(browser, link)
        posted = await browser.post(link, data={"outcome": "complete"})

    refresh = runtime.services.settings.app_url + ONBOARDING_REFRESH_PATH
    assert (shown.status_code, shown.headers["location"]) == (303, refresh)
    assert (posted.status_code, posted.headers["location"]) == (303, refresh)
    assert (await payout_account(client, who))["payoutsEnabled"] is False


async def test_identity_checks_fail_then_verify_on_the_sandbox_page(
    client: GraphQLClient, runtime: Runtime, base_url: str
) -> None:
    done_url = runtime.services.settings.app_url + IDENTITY_RETURN_PATH
    who = await tasker(client, "identity@example.com")
    link = await identity_link(client, who)
    assert link.startswith(f"{base_url}/sandbox/identity/")

    async with httpx.AsyncClient(timeout=30) as browser:
        failed = await choose(browser, link, "failed")
        assert (failed.status_code, failed.headers["location"]) == (303, done_url)
        await identity_becomes(client, who, "UNVERIFIED")

        # The open session is handed out again: the same page, for another try.
        assert await identity_link(client, who) == link
        verified = await choose(browser, link, "verified")
        assert (verified.status_code, verified.headers["location"]) == (303, done_url)
        await identity_becomes(client, who, "VERIFIED")

        over = await page(browser, link)
        assert over.status_code == 410


async def test_unknown_links_and_bad_forms_change_nothing_and_guesses_are_throttled(
    runtime: Runtime,
) -> None:
    async with (
        serve(runtime, login_ip_max_failures=3) as url,
        httpx.AsyncClient(base_url=url, timeout=30) as http,
    ):
        client = GraphQLClient(http)
        who = await tasker(client, "guessed@example.com")
        link = await onboarding_link(client, who)
        path = urlsplit(link).path

        # Not one of the page's outcomes, bytes that are not UTF-8, no outcome at all.
        for body in (b"outcome=everything", b"outcome=%FF", b"\xff\xfe", b""):
            refused = await http.post(
                path,
                content=body,
                headers={"content-type": "application/x-www-form-urlencoded"},
            )
            assert refused.status_code == 400, body
        guesses = [
            await http.get(f"/sandbox/connect/onboarding/{guess}")
            for guess in ("not-a-token", "%FF%FE", "x" * 2000)
        ]
        assert [guess.status_code for guess in guesses] == [404, 404, 404]
        throttled = await http.post(path, data={"outcome": "complete"})
        assert throttled.status_code == 429  # even with the right token, for a while
        assert (await payout_account(client, who))["detailsSubmitted"] is False

    rejected = await AuditEvent.find(AuditEvent.kind == AuditKind.TOKEN_REJECTED).to_list()
    assert sorted((e.details["token"], e.details["reason"]) for e in rejected) == [
        ("sandbox_link", "invalid"),
        ("sandbox_link", "invalid"),
        ("sandbox_link", "invalid"),
        ("sandbox_link", "ip_throttled"),
    ]


async def test_pages_escape_what_they_show_and_keep_their_token_to_themselves(
    client: GraphQLClient,
) -> None:
    who = await tasker(client, "o'brien&co@example.com")
    link = await onboarding_link(client, who)

    async with httpx.AsyncClient(timeout=30) as browser:
        shown = await page(browser, link)

    assert shown.status_code == 200
    assert "o&#39;brien&amp;co@example.com" in shown.text
    assert shown.headers["referrer-policy"] == "no-referrer"
    assert shown.headers["cache-control"] == "no-store"
    assert "frame-ancestors 'none'" in shown.headers["content-security-policy"]
    assert "<script" not in shown.text


async def test_the_pages_exist_only_on_the_sandbox(
    client: GraphQLClient, settings: Settings, tmp_path: Path
) -> None:
    who = await tasker(client, "stripe-only@example.com")
    link = await onboarding_link(client, who)
    path = urlsplit(link).path
    async with httpx.AsyncClient(timeout=30) as browser:
        assert (await page(browser, link)).status_code == 200

    stripe = {"STRIPE_SECRET_KEY": SECRET_KEY, "STRIPE_WEBHOOK_SECRET": WEBHOOK_SECRET}
    async with (
        sharing_the_test_database(tmp_path, settings, **stripe) as on_stripe,
        httpx.AsyncClient(base_url=on_stripe.base_url, timeout=30) as http,
    ):
        # The same link, in the same database, on a server configured for Stripe.
        shown = await http.get(path)
        posted = await http.post(path, data={"outcome": "complete"})
        identity = await http.get("/sandbox/identity/anything")

    assert [shown.status_code, posted.status_code, identity.status_code] == [404, 404, 404]


async def test_two_processes_on_one_database_run_the_loop_delivering_each_event_once(
    runtime: Runtime, settings: Settings, tmp_path: Path
) -> None:
    since = ObjectId.from_datetime(datetime.now(UTC) - timedelta(seconds=1))
    async with (
        sharing_the_test_database(tmp_path / "a", settings) as a,
        sharing_the_test_database(tmp_path / "b", settings) as b,
        graphql(a) as on_a,
        graphql(b) as on_b,
        httpx.AsyncClient(timeout=30) as browser,
    ):
        ann = await poster(on_a, "ann@example.com")
        tom = await tasker(on_b, "tom@example.com")
        task = await post_task(on_a, ann)
        offer = await make_offer(on_b, tom, task["id"], 11000)
        accepted = await on_a.mutate("acceptOffer", {"offerId": offer["id"]}, token=ann.access)
        assert accepted["errors"] == [], accepted
        escrow = (await on_b.data(TASK_ESCROW, {"id": task["id"]}, token=ann.access))["node"]
        paid = await on_b.mutate(
            "sandboxPay",
            {"escrowId": escrow["escrow"]["id"], "outcome": "SUCCEEDED"},
            "escrow { status }",
            token=ann.access,
        )
        assert paid["escrow"]["status"] == "HELD", paid
        deal = Deal(ann, tom, task["id"], escrow["escrow"]["id"])

        # A link made by A, followed on B: the link is in the database, not in A.
        link = await onboarding_link(on_a, tom)
        done = await choose(browser, b.base_url + urlsplit(link).path, "complete")
        assert done.status_code == 303, done.text
        await payouts_enabled(on_a, tom)
        await finish_task(on_b, deal)

        async def released() -> bool | None:
            return True if await escrow_status(on_a, deal) == "RELEASED" else None

        await until(released)
        withdrawal = await withdraw(on_a, tom, await available(on_b, tom))
        assert (await settled_withdrawal(on_b, tom, withdrawal["id"]))["status"] == "PAID"

    sent = await runtime.database[EVENTS].find({"_id": {"$gte": since}}).to_list()
    # Others too: the instances' bank also paid what earlier tests left pending.
    mentions = (await stripe_account_of(tom), str(object_id(deal.escrow_id)))
    ours = [e for e in sent if any(name in str(e["payload"]) for name in mentions)]
    assert sorted(str(event["type"]) for event in ours) == [
        "account.updated",
        "payment_intent.created",
        "payment_intent.succeeded",
        "payout.created",
        "payout.paid",
        "transfer.created",
    ]
    assert {(event["status"], event["attempts"]) for event in sent} == {("delivered", 1)}
    received = await WebhookEvent.find(
        {"event_id": {"$in": [e["event_id"] for e in sent]}}
    ).to_list()
    assert sorted(event.event_id for event in received) == sorted(str(e["event_id"]) for e in sent)
    assert {event.status for event in received} <= {WebhookStatus.PROCESSED, WebhookStatus.IGNORED}
