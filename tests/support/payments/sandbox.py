"""Helpers for the sandbox gateway's tests: a deal driven over GraphQL only, and the
sandbox's pages used as a browser would (fetch the page, submit its form, follow the
redirect), on any server: in-process or a `gigql serve` process."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from html.parser import HTMLParser
from typing import Any, TypeVar
from urllib.parse import urljoin

import httpx

from tests.support.graphql_client import GraphQLClient, Tokens
from tests.support.marketplace import make_offer, post_task, poster, tasker
from tests.support.payments.wallets import MY_PAYOUT_ACCOUNT, MY_WALLET, figures

T = TypeVar("T")
WAIT = 30.0
"""Seconds for what happens in the background: event delivery, the sandbox's bank."""

TASK_ESCROW = "query($id: ID!) { node(id: $id) { ... on Task { escrow { id status } } } }"
MY_WITHDRAWALS = """{ myWithdrawals(first: 20) { edges { node {
  id status failureCode amount { amount currency } } } } }"""
WITHDRAWAL = "withdrawal { id status failureCode amount { amount currency } }"


@dataclass
class Form:
    action: str
    method: str
    choices: dict[str, str] = field(default_factory=dict)
    """Each submit button's value, by the name it is sent under."""


class _Forms(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.forms: list[Form] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        given = dict(attrs)
        if tag == "form":
            self.forms.append(Form(given.get("action") or "", (given.get("method") or "get")))
        elif tag == "button" and self.forms and given.get("name") and given.get("value"):
            self.forms[-1].choices[given["value"] or ""] = given["name"] or ""


def forms_of(html: str) -> list[Form]:
    parser = _Forms()
    parser.feed(html)
    return parser.forms


async def page(http: httpx.AsyncClient, url: str) -> httpx.Response:
    """A sandbox page as a browser first gets it (redirects not followed)."""
    return await http.get(url, follow_redirects=False)


async def choose(http: httpx.AsyncClient, url: str, outcome: str) -> httpx.Response:
    """Open the page at `url` and press the button for `outcome` on its form; the answer
    (a redirect, not followed)."""
    shown = await page(http, url)
    assert shown.status_code == 200, (shown.status_code, shown.text)
    (form,) = forms_of(shown.text)
    assert form.method.lower() == "post"
    assert outcome in form.choices, form
    return await http.post(
        urljoin(url, form.action), data={form.choices[outcome]: outcome}, follow_redirects=False
    )


async def until(check: Callable[[], Awaitable[T | None]], timeout: float = WAIT) -> T:
    """Poll `check` until it gives something other than None (or fail after `timeout`)."""
    deadline = time.monotonic() + timeout
    while True:
        found = await check()
        if found is not None:
            return found
        assert time.monotonic() < deadline, "not within the time allowed"
        await asyncio.sleep(0.1)


@dataclass(frozen=True)
class Deal:
    poster: Tokens
    tasker: Tokens
    task_id: str
    escrow_id: str


async def paid_task(client: GraphQLClient, tag: str, amount: int = 11000) -> Deal:
    """A task posted, offered on, accepted and paid with `sandboxPay`, over GraphQL."""
    who = await poster(client, f"poster-{tag}@example.com")
    worker = await tasker(client, f"tasker-{tag}@example.com")
    task = await post_task(client, who)
    offer = await make_offer(client, worker, task["id"], amount)
    accepted = await client.mutate("acceptOffer", {"offerId": offer["id"]}, token=who.access)
    assert accepted["errors"] == [], accepted
    escrow = (await client.data(TASK_ESCROW, {"id": task["id"]}, token=who.access))["node"]
    escrow_id = escrow["escrow"]["id"]
    paid = await client.mutate(
        "sandboxPay",
        {"escrowId": escrow_id, "outcome": "SUCCEEDED"},
        "escrow { status }",
        token=who.access,
    )
    assert paid["errors"] == [] and paid["escrow"]["status"] == "HELD", paid
    return Deal(who, worker, task["id"], escrow_id)


async def finish_task(client: GraphQLClient, deal: Deal) -> None:
    """The tasker starts and hands in the work, the poster accepts it."""
    for name, who in (
        ("startTask", deal.tasker),
        ("submitTask", deal.tasker),
        ("completeTask", deal.poster),
    ):
        moved = await client.mutate(name, {"taskId": deal.task_id}, token=who.access)
        assert moved["errors"] == [], (name, moved)


async def escrow_status(client: GraphQLClient, deal: Deal) -> str:
    data = await client.data(TASK_ESCROW, {"id": deal.task_id}, token=deal.poster.access)
    status: str = data["node"]["escrow"]["status"]
    return status


async def onboarding_link(client: GraphQLClient, who: Tokens) -> str:
    started = await client.mutate("startPayoutOnboarding", {}, "onboardingUrl", token=who.access)
    assert started["errors"] == [], started
    url: str = started["onboardingUrl"]
    return url


async def payout_account(client: GraphQLClient, who: Tokens) -> dict[str, Any]:
    account: dict[str, Any] = (await client.data(MY_PAYOUT_ACCOUNT, token=who.access))[
        "myPayoutAccount"
    ]
    return account


async def payouts_enabled(client: GraphQLClient, who: Tokens) -> None:
    """Wait until the gateway's `account.updated` has enabled the provider's payouts."""

    async def enabled() -> bool | None:
        return True if (await payout_account(client, who))["payoutsEnabled"] else None

    await until(enabled)


async def available(client: GraphQLClient, who: Tokens, currency: str = "AUD") -> int:
    return figures(await wallet_of(client, who), currency)["available"]


async def wallet_of(client: GraphQLClient, who: Tokens) -> dict[str, Any]:
    found: dict[str, Any] = (await client.data(MY_WALLET, token=who.access))["myWallet"]
    return found


async def withdraw(client: GraphQLClient, who: Tokens, amount: int) -> dict[str, Any]:
    payload = await client.mutate(
        "requestWithdrawal",
        {"amount": {"amount": amount, "currency": "AUD"}},
        WITHDRAWAL,
        token=who.access,
    )
    assert payload["errors"] == [], payload
    withdrawal: dict[str, Any] = payload["withdrawal"]
    return withdrawal


async def settled_withdrawal(
    client: GraphQLClient, who: Tokens, withdrawal_id: str, timeout: float = WAIT
) -> dict[str, Any]:
    """The withdrawal once the sandbox's bank has answered its payout: PAID or FAILED."""

    async def settled() -> dict[str, Any] | None:
        edges = (await client.data(MY_WITHDRAWALS, token=who.access))["myWithdrawals"]["edges"]
        (found,) = [edge["node"] for edge in edges if edge["node"]["id"] == withdrawal_id]
        return found if found["status"] in ("PAID", "FAILED") else None

    return await until(settled, timeout)
