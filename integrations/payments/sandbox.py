"""A payment gateway kept in the app's database: `gigql serve` without a Stripe key, and tests.

It walks Stripe's states and speaks Stripe's events. Objects are kept in Stripe's JSON
shapes (integrations/payments/sandbox_store.py), so every process on the database sees
the same ones, before and after a restart. Every change becomes an event of Stripe's type
with the object as Stripe would show it, stored with the change and then delivered, signed
with the webhook secret, to `deliver` as a webhook body and `Stripe-Signature` header:
each event once, by whichever process claims it first, in order within a process, so the
app routes it through the same webhook inbox as Stripe's. Requests are idempotent by key
as on Stripe, across processes.

What happens on Stripe's pages is played on the sandbox's own pages, served by gigql
(server/sandbox_pages.py) at links the gateway hands out as Stripe does: onboarding a
payout account (completed, or left with requirements due) and an identity check
(verified or failed). The payer's card is played by `sandboxPay`. The bank answers each
payout `payout_delay` after it was made (`run_due`, a background job on every instance):
paid, or failed for the test amounts in `TEST_PAYOUT_FAILURES`. The controls at the end
play any of these directly, for tests.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import json
import logging
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any, Literal, TypeVar, cast

import stripe
from bson import ObjectId
from pymongo.asynchronous.database import AsyncDatabase

from integrations.payments.errors import (
    CardDeclined,
    IdempotencyConflict,
    InvalidRequest,
)
from integrations.payments.gateway import (
    ConnectedAccount,
    GatewayEvent,
    OnboardingLink,
    PaymentIntent,
    Payout,
    Refund,
    Transfer,
    TransferReversal,
    VerificationSession,
)
from integrations.payments.sandbox_store import (
    LINK_MEMORY,
    ClaimedEvent,
    Record,
    SandboxStore,
    StripeDict,
    Tx,
    aware,
    utcnow,
)
from integrations.payments.webhooks import parse_event, sign_payload

log = logging.getLogger(__name__)

Deliver = Callable[[bytes, str], Awaitable[None]]
"""Receives each event as a webhook body and its `Stripe-Signature` header."""

Outcome = Literal["succeeded", "declined", "requires_action"]
OnboardingOutcome = Literal["complete", "requirements_due"]
LinkKind = Literal["account_onboarding", "identity_verification"]
OUTCOMES: dict[LinkKind, tuple[str, ...]] = {
    "account_onboarding": ("complete", "requirements_due"),
    "identity_verification": ("verified", "failed"),
}
"""What each page lets the provider do."""

# Stripe's own test payment methods, for a payment method given when creating an intent.
TEST_PAYMENT_METHODS: dict[str, Outcome] = {
    "pm_card_visa": "succeeded",
    "pm_card_chargeCustomerFail": "declined",
    "pm_card_authenticationRequired": "requires_action",
}
TEST_PAYOUT_FAILURES: dict[int, str] = {
    1116: "no_account",
    1113: "account_closed",
    2227: "insufficient_funds",
    3335: "debit_not_authorized",
    4440: "invalid_currency",
}
"""A payout whose amount in minor units ends in these four digits fails with this code,
as a payout to Stripe's test bank account number ending in them does (11.16, 111.13...)."""
CANCELABLE = {
    "requires_payment_method",
    "requires_confirmation",
    "requires_action",
    "requires_capture",
    "processing",
}
ONBOARDING_LINK_LIFETIME = 300
"""Seconds an onboarding link may be used in, as Stripe's account links."""
PAYOUT_ARRIVAL_SECONDS = 2 * 24 * 3600
DEFAULT_PAYOUT_DELAY = timedelta(seconds=5)
BACKGROUND_INTERVAL = timedelta(seconds=1)
"""How often each instance runs `run_due`: the bank's answers, and events left due."""
DELIVERY_RETRY_BASE = timedelta(seconds=5)
MAX_DELIVERY_RETRY = timedelta(hours=1)
MAX_DELIVERY_ATTEMPTS = 10
DRAIN_POLL_SECONDS = 0.05
MAX_ERROR_LENGTH = 1000

ONBOARDING_PAGE = "/sandbox/connect/onboarding/"
IDENTITY_PAGE = "/sandbox/identity/"
"""Where server/sandbox_pages.py serves the pages; the link's token follows."""
INITIAL_REQUIREMENTS = ["business_type", "external_account", "tos_acceptance.date"]
DOCUMENT_REQUIREMENT = "individual.verification.document"

page_origin: ContextVar[str | None] = ContextVar("sandbox_page_origin", default=None)
"""The scheme and host of the request being served (set by server/sandbox_pages.py): the
sandbox's pages are on the same server, so links made for it point there."""

T = TypeVar("T")


def _new_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(12)}"


def _items(metadata: Mapping[str, str]) -> list[list[str]]:
    return [[key, value] for key, value in sorted(metadata.items())]


def _unexpected_state(obj: StripeDict, action: str) -> InvalidRequest:
    return InvalidRequest(
        f"You cannot {action} this {obj['object']} because it has a status of {obj['status']}.",
        code="payment_intent_unexpected_state" if obj["object"] == "payment_intent" else None,
    )


def _card_error(code: str, message: str, decline_code: str | None = None) -> StripeDict:
    return {"type": "card_error", "code": code, "decline_code": decline_code, "message": message}


DECLINED = _card_error("card_declined", "Your card was declined.", "generic_decline")
AUTHENTICATION_FAILED = _card_error(
    "payment_intent_authentication_failure",
    "The provided PaymentMethod has failed authentication.",
)


def _declined(error: StripeDict) -> CardDeclined:
    return CardDeclined(error["message"], code=error["code"], decline_code=error["decline_code"])


def _new(prefix: str, fields: StripeDict, **beside: Any) -> Record:
    stripe_object = {
        "id": _new_id(prefix),
        "created": int(time.time()),
        "livemode": False,
        **fields,
    }
    return Record(stripe=stripe_object, **beside)


def _event(event_type: str, obj: StripeDict, account: str | None = None) -> StripeDict:
    event: StripeDict = {
        "id": _new_id("evt"),
        "object": "event",
        "api_version": stripe.api_version,
        "created": int(time.time()),
        "data": {"object": copy.deepcopy(obj)},  # a snapshot of the moment
        "livemode": False,
        "pending_webhooks": 1,
        "request": {"id": None, "idempotency_key": None},
        "type": event_type,
    }
    if account is not None:
        event["account"] = account
    return event


@dataclass(frozen=True, slots=True)
class PageLink:
    """A link to one of the sandbox's pages, as the page shows it."""

    kind: LinkKind
    usable: bool
    """Unused and unexpired (onboarding), or its session still open (identity)."""
    subject: StripeDict
    """The account being onboarded, or the verification session."""
    return_url: str | None
    refresh_url: str | None


class SandboxGateway:
    def __init__(
        self,
        webhook_secret: str,
        deliver: Deliver,
        database: AsyncDatabase[dict[str, Any]],
        *,
        payout_delay: timedelta = DEFAULT_PAYOUT_DELAY,
        pages_origin: str = "http://127.0.0.1:8000",
    ) -> None:
        """`pages_origin`: where the pages are when a link is made outside a request."""
        self._webhook_secret = webhook_secret
        self._deliver = deliver
        self._store = SandboxStore(database)
        self._payout_delay = payout_delay
        self._pages_origin = pages_origin
        self._last_emitted: ObjectId | None = None
        self._wake: asyncio.Event | None = None
        self._courier: asyncio.Task[None] | None = None
        self._delivering = asyncio.Lock()

    # -- the gateway ------------------------------------------------------------------

    async def create_payment_intent(
        self,
        *,
        amount: int,
        currency: str,
        transfer_group: str,
        metadata: Mapping[str, str],
        idempotency_key: str,
        capture_manually: bool = False,
        payment_method: str | None = None,
    ) -> PaymentIntent:
        request = [
            "create_payment_intent",
            amount,
            currency.lower(),
            transfer_group,
            _items(metadata),
            capture_manually,
            payment_method,
        ]

        async def perform(tx: Tx) -> StripeDict | CardDeclined:
            return await self._create_intent(
                tx, amount, currency, transfer_group, metadata, capture_manually, payment_method
            )

        return PaymentIntent.from_stripe(await self._once(idempotency_key, request, perform))

    async def retrieve_payment_intent(self, payment_intent_id: str) -> PaymentIntent:
        record = await self._store.get("payment_intent", payment_intent_id)
        return PaymentIntent.from_stripe(record.stripe)

    async def capture_payment_intent(
        self, payment_intent_id: str, *, idempotency_key: str, amount: int | None = None
    ) -> PaymentIntent:
        request = ["capture_payment_intent", payment_intent_id, amount]

        async def perform(tx: Tx) -> StripeDict:
            return await self._capture(tx, payment_intent_id, amount)

        return PaymentIntent.from_stripe(await self._once(idempotency_key, request, perform))

    async def cancel_payment_intent(
        self, payment_intent_id: str, *, idempotency_key: str
    ) -> PaymentIntent:
        request = ["cancel_payment_intent", payment_intent_id]

        async def perform(tx: Tx) -> StripeDict:
            return await self._cancel(tx, payment_intent_id)

        return PaymentIntent.from_stripe(await self._once(idempotency_key, request, perform))

    async def refund(
        self,
        payment_intent_id: str,
        *,
        amount: int | None,
        metadata: Mapping[str, str],
        idempotency_key: str,
    ) -> Refund:
        request = ["refund", payment_intent_id, amount, _items(metadata)]

        async def perform(tx: Tx) -> StripeDict:
            return await self._refund(tx, payment_intent_id, amount, metadata)

        return Refund.from_stripe(await self._once(idempotency_key, request, perform))

    async def create_transfer(
        self,
        *,
        amount: int,
        currency: str,
        destination_account_id: str,
        transfer_group: str,
        metadata: Mapping[str, str],
        idempotency_key: str,
        source_charge_id: str | None = None,
    ) -> Transfer:
        request = [
            "create_transfer",
            amount,
            currency.lower(),
            destination_account_id,
            transfer_group,
            _items(metadata),
            source_charge_id,
        ]

        async def perform(tx: Tx) -> StripeDict:
            return await self._transfer(
                tx,
                amount,
                currency,
                destination_account_id,
                transfer_group,
                metadata,
                source_charge_id,
            )

        return Transfer.from_stripe(await self._once(idempotency_key, request, perform))

    async def reverse_transfer(
        self, transfer_id: str, *, amount: int | None, idempotency_key: str
    ) -> TransferReversal:
        request = ["reverse_transfer", transfer_id, amount]

        async def perform(tx: Tx) -> StripeDict:
            return await self._reverse(tx, transfer_id, amount)

        return TransferReversal.from_stripe(await self._once(idempotency_key, request, perform))

    async def create_connected_account(
        self, *, email: str, country: str, idempotency_key: str
    ) -> ConnectedAccount:
        request = ["create_connected_account", email, country]

        async def perform(tx: Tx) -> StripeDict:
            return await self._account(tx, email, country)

        return ConnectedAccount.from_stripe(await self._once(idempotency_key, request, perform))

    async def create_onboarding_link(
        self, account_id: str, *, refresh_url: str, return_url: str
    ) -> OnboardingLink:
        """A single-use link to the sandbox's onboarding page, as Stripe's account links."""

        async def work(tx: Tx) -> StripeDict:
            await tx.get("account", account_id)
            token = secrets.token_urlsafe(32)
            now = int(time.time())
            expires_at = datetime.fromtimestamp(now + ONBOARDING_LINK_LIFETIME, UTC)
            await tx.insert_link(
                token,
                {
                    "kind": "account_onboarding",
                    "object_id": account_id,
                    "refresh_url": refresh_url,
                    "return_url": return_url,
                    "expires_at": expires_at,
                    "used_at": None,
                    "forget_at": expires_at + LINK_MEMORY,
                },
            )
            return {
                "object": "account_link",
                "created": now,
                "expires_at": now + ONBOARDING_LINK_LIFETIME,
                "url": self._page_url(ONBOARDING_PAGE, token),
            }

        return OnboardingLink.from_stripe(await self._run(work))

    async def retrieve_account(self, account_id: str) -> ConnectedAccount:
        return ConnectedAccount.from_stripe((await self._store.get("account", account_id)).stripe)

    async def create_payout(
        self,
        *,
        account_id: str,
        amount: int,
        currency: str,
        metadata: Mapping[str, str],
        idempotency_key: str,
    ) -> Payout:
        request = ["create_payout", amount, currency.lower(), _items(metadata)]

        async def perform(tx: Tx) -> StripeDict:
            return await self._payout(tx, account_id, amount, currency, metadata)

        # Keys are per account, as with Stripe's Stripe-Account header.
        made = await self._once(idempotency_key, request, perform, account=account_id)
        return Payout.from_stripe(made, account_id)

    async def create_verification_session(
        self, *, metadata: Mapping[str, str], idempotency_key: str, return_url: str | None = None
    ) -> VerificationSession:
        request = ["create_verification_session", _items(metadata), return_url]

        async def perform(tx: Tx) -> StripeDict:
            return await self._verification(tx, metadata, return_url)

        return VerificationSession.from_stripe(await self._once(idempotency_key, request, perform))

    async def retrieve_verification_session(self, session_id: str) -> VerificationSession:
        record = await self._store.get("identity.verification_session", session_id)
        return VerificationSession.from_stripe(record.stripe)

    async def list_payment_intents(
        self, created_from: datetime, created_until: datetime
    ) -> AsyncIterator[PaymentIntent]:
        for record in await self._created_within("payment_intent", created_from, created_until):
            yield PaymentIntent.from_stripe(record.stripe)

    async def list_transfers(
        self, created_from: datetime, created_until: datetime, transfer_group: str | None = None
    ) -> AsyncIterator[Transfer]:
        match = {} if transfer_group is None else {"stripe.transfer_group": transfer_group}
        for record in await self._created_within("transfer", created_from, created_until, match):
            yield Transfer.from_stripe(record.stripe)

    async def list_refunds(
        self,
        created_from: datetime,
        created_until: datetime,
        payment_intent_id: str | None = None,
    ) -> AsyncIterator[Refund]:
        match = {} if payment_intent_id is None else {"stripe.payment_intent": payment_intent_id}
        for record in await self._created_within("refund", created_from, created_until, match):
            yield Refund.from_stripe(record.stripe)

    async def list_payouts(
        self, account_id: str, created_from: datetime, created_until: datetime
    ) -> AsyncIterator[Payout]:
        match = {"account": account_id}
        for record in await self._created_within("payout", created_from, created_until, match):
            yield Payout.from_stripe(record.stripe, account_id)

    def parse_event(self, payload: bytes, signature_header: str) -> GatewayEvent:
        return parse_event(payload, signature_header, self._webhook_secret)

    @property
    def webhook_secret(self) -> str:
        """What its events are signed with, for tests that post events of their own."""
        return self._webhook_secret

    async def drain(self) -> None:
        """Wait until every event this process caused so far has been delivered (by
        whichever process claimed it), events those deliveries caused included; an event
        whose delivery failed is left to its retries."""
        while True:
            await self.deliver_due()
            last = self._last_emitted
            if last is None or not await self._store.awaiting_first_delivery(last):
                return
            await asyncio.sleep(DRAIN_POLL_SECONDS)

    async def aclose(self) -> None:
        if self._courier is None:
            return  # nothing was emitted here: nothing of ours to deliver
        await self.drain()
        self._courier.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._courier

    # -- in the background, on every instance -----------------------------------------

    async def run_due(self) -> int:
        """The bank's answers to payouts whose time has come, then any events due (left
        by a process that died, or due for another delivery attempt); how many of both."""
        settled = 0
        for payout_id in await self._store.due_payouts(utcnow()):
            if await self._run(partial(self._bank_answers, payout_id=payout_id)):
                settled += 1
        return settled + await self.deliver_due()

    async def deliver_due(self) -> int:
        """Deliver the events due, oldest first, one at a time in this process."""
        delivered = 0
        while True:
            async with self._delivering:
                event = await self._store.claim_event()
                if event is None:
                    return delivered
                await self._send(event)
            delivered += 1

    # -- the pages (server/sandbox_pages.py) ---------------------------------------------

    async def open_link(self, kind: LinkKind, token: str) -> PageLink | None:
        """The link as its page shows it; None if there is no such link."""

        async def work(tx: Tx) -> PageLink | None:
            return await self._page_link(tx, kind, token)

        return await self._run(work)

    async def follow_link(self, kind: LinkKind, token: str, outcome: str) -> PageLink | None:
        """Play `outcome` on the link's page if the link is usable (it is then used up,
        for onboarding); the link as it was. None if there is no such link."""

        if outcome not in OUTCOMES[kind]:
            raise InvalidRequest(f"No such outcome: '{outcome}'", param="outcome")

        async def work(tx: Tx) -> PageLink | None:
            link = await self._page_link(tx, kind, token)
            if link is None or not link.usable:
                return link
            if kind == "account_onboarding":
                await tx.update_link(token, {"used_at": utcnow()})
                account = await tx.get("account", link.subject["id"])
                self._onboard(tx, account, cast("OnboardingOutcome", outcome))
                await tx.save(account)
            else:
                session = await tx.get("identity.verification_session", link.subject["id"])
                self._identity_checked(tx, session, ok=outcome == "verified")
                await tx.save(session)
            return link

        return await self._run(work)

    # -- controls for tests: what happens on Stripe's pages and at the bank --------------

    async def confirm(
        self, payment_intent_id: str, outcome: Outcome = "succeeded"
    ) -> PaymentIntent:
        """The payer confirms with a card that is charged, declined, or needs 3-D Secure."""

        async def work(tx: Tx) -> StripeDict:
            record = await tx.get("payment_intent", payment_intent_id)
            intent = record.stripe
            if intent["status"] not in ("requires_payment_method", "requires_confirmation"):
                raise _unexpected_state(intent, "confirm")
            self._attempt(tx, intent, f"pm_sandbox_{outcome}", outcome)
            await tx.save(record)
            return intent

        return PaymentIntent.from_stripe(await self._run(work))

    async def authenticate(self, payment_intent_id: str, ok: bool = True) -> PaymentIntent:
        """The payer passes, or fails, the 3-D Secure check the card asked for."""

        async def work(tx: Tx) -> StripeDict:
            record = await tx.get("payment_intent", payment_intent_id)
            intent = record.stripe
            if intent["status"] != "requires_action":
                raise _unexpected_state(intent, "authenticate")
            if ok:
                self._charge(tx, intent)
            else:
                self._payment_failed(tx, intent, AUTHENTICATION_FAILED)
            await tx.save(record)
            return intent

        return PaymentIntent.from_stripe(await self._run(work))

    async def complete_onboarding(self, account_id: str) -> ConnectedAccount:
        async def work(tx: Tx) -> StripeDict:
            account = await tx.get("account", account_id)
            self._onboard(tx, account, "complete")
            await tx.save(account)
            return account.stripe

        return ConnectedAccount.from_stripe(await self._run(work))

    async def verify_identity(self, session_id: str, ok: bool = True) -> VerificationSession:
        async def work(tx: Tx) -> StripeDict:
            session = await tx.get("identity.verification_session", session_id)
            if session.stripe["status"] != "requires_input":
                raise _unexpected_state(session.stripe, "verify")
            self._identity_checked(tx, session, ok=ok)
            await tx.save(session)
            return session.stripe

        return VerificationSession.from_stripe(await self._run(work))

    async def forget_idempotency_keys(self) -> None:
        """What Stripe does to keys at least 24 hours old: a repeat makes a new object."""
        await self._store.forget_keys()

    async def pay_out(self, payout_id: str) -> Payout:
        """The bank accepted the payout."""
        return await self._settle(payout_id, "paid")

    async def fail_payout(self, payout_id: str, code: str = "could_not_process") -> Payout:
        """The bank returned the payout (`account_closed`, `no_account`, ...)."""
        return await self._settle(payout_id, "failed", code)

    # -- requests ----------------------------------------------------------------------

    async def _run(self, work: Callable[[Tx], Awaitable[T]]) -> T:
        """`work` in one transaction; the events it emitted go out once it committed."""
        result, last_event = await self._store.run(work)
        if last_event is not None:
            self._last_emitted = last_event
            self._kick()
        return result

    async def _once(
        self,
        key: str,
        request: Sequence[object],
        perform: Callable[[Tx], Awaitable[StripeDict | CardDeclined]],
        account: str | None = None,
    ) -> StripeDict:
        """Stripe's idempotency: the first answer under a key answers every retry of the
        same request, a declined card included; the key with another request is refused.
        A request refused as invalid leaves no answer, so it can be corrected."""
        fingerprint = json.dumps(request)

        async def work(tx: Tx) -> StripeDict | CardDeclined:
            kept = await tx.kept_answer(account, key)
            if kept is not None:
                if kept.request != fingerprint:
                    raise IdempotencyConflict(
                        "Keys for idempotent requests can only be used with the same "
                        "parameters they were first used with. Try using a key other than "
                        f"'{key}' if you meant to execute a different request."
                    )
                if kept.declined is not None:
                    return _declined(kept.declined)
                assert kept.response is not None
                return kept.response
            outcome = await perform(tx)
            if isinstance(outcome, CardDeclined):
                await tx.keep_answer(account, key, fingerprint, declined=DECLINED)
            else:
                await tx.keep_answer(account, key, fingerprint, response=outcome)
            return outcome

        outcome = await self._run(work)
        if isinstance(outcome, CardDeclined):
            raise outcome
        return outcome

    async def _created_within(
        self, kind: str, start: datetime, end: datetime, match: dict[str, Any] | None = None
    ) -> list[Record]:
        low, high = int(start.timestamp()), int(end.timestamp())
        return await self._store.created_within(kind, low, high, **(match or {}))

    def _page_url(self, path: str, token: str) -> str:
        return f"{page_origin.get() or self._pages_origin}{path}{token}"

    # -- events ------------------------------------------------------------------------

    def _emit(self, tx: Tx, event_type: str, obj: StripeDict, account: str | None = None) -> None:
        tx.emit(_event(event_type, obj, account))

    def _kick(self) -> None:
        """Wake this process's courier: there are events to deliver."""
        if self._wake is None:
            self._wake = asyncio.Event()
        self._wake.set()
        if self._courier is None or self._courier.done():
            self._courier = asyncio.create_task(self._carry(), name="gigql-sandbox-courier")

    async def _carry(self) -> None:
        assert self._wake is not None
        while True:
            await self._wake.wait()
            self._wake.clear()
            try:
                await self.deliver_due()
            except Exception:
                # The database is away, say: the events stay due for the next run.
                log.exception("the sandbox could not deliver its events")

    async def _send(self, event: ClaimedEvent) -> None:
        # Signed when sent, as Stripe signs each delivery attempt.
        signature = sign_payload(event.payload, self._webhook_secret, int(time.time()))
        try:
            await self._deliver(event.payload, signature)
        except Exception as error:
            log.exception("the webhook handler failed on a sandbox event")
            retry_in = (
                None
                if event.attempts >= MAX_DELIVERY_ATTEMPTS
                else min(DELIVERY_RETRY_BASE * 2 ** (event.attempts - 1), MAX_DELIVERY_RETRY)
            )
            reason = f"{type(error).__name__}: {error}"[:MAX_ERROR_LENGTH]
            await self._store.delivery_failed(event, reason, retry_in)
        else:
            await self._store.delivered(event)

    # -- payments ----------------------------------------------------------------------

    async def _create_intent(
        self,
        tx: Tx,
        amount: int,
        currency: str,
        transfer_group: str,
        metadata: Mapping[str, str],
        capture_manually: bool,
        payment_method: str | None,
    ) -> StripeDict | CardDeclined:
        if amount < 1:
            raise InvalidRequest("The amount must be at least 1.", param="amount")
        outcome = None
        if payment_method is not None:
            outcome = TEST_PAYMENT_METHODS.get(payment_method)
            if outcome is None:
                raise InvalidRequest(
                    f"No such PaymentMethod: '{payment_method}'",
                    code="resource_missing",
                    param="payment_method",
                )
        record = _new(
            "pi",
            {
                "object": "payment_intent",
                "amount": amount,
                "amount_capturable": 0,
                "amount_received": 0,
                "capture_method": "manual" if capture_manually else "automatic_async",
                "currency": currency.lower(),
                "last_payment_error": None,
                "latest_charge": None,
                "metadata": dict(metadata),
                "next_action": None,
                "payment_method": None,
                "status": "requires_payment_method",
                "transfer_group": transfer_group,
            },
        )
        intent = record.stripe
        intent["client_secret"] = f"{intent['id']}_secret_{secrets.token_hex(12)}"
        self._emit(tx, "payment_intent.created", intent)
        if payment_method is not None and outcome is not None:
            self._attempt(tx, intent, payment_method, outcome)
        await tx.insert(record)
        if outcome == "declined":
            return _declined(DECLINED)
        return intent

    def _attempt(self, tx: Tx, intent: StripeDict, payment_method: str, outcome: Outcome) -> None:
        intent.update(payment_method=payment_method, last_payment_error=None)
        if outcome == "requires_action":
            intent["status"] = "requires_action"
            intent["next_action"] = {"type": "use_stripe_sdk", "use_stripe_sdk": {}}
            self._emit(tx, "payment_intent.requires_action", intent)
        elif outcome == "declined":
            intent["latest_charge"] = _new_id("ch")  # a failed charge
            self._payment_failed(tx, intent, DECLINED)
        else:
            self._charge(tx, intent)

    def _charge(self, tx: Tx, intent: StripeDict) -> None:
        intent.update(latest_charge=_new_id("ch"), next_action=None)
        if intent["capture_method"] == "manual":
            intent.update(status="requires_capture", amount_capturable=intent["amount"])
            self._emit(tx, "payment_intent.amount_capturable_updated", intent)
        else:
            intent.update(status="succeeded", amount_received=intent["amount"])
            self._emit(tx, "payment_intent.succeeded", intent)

    def _payment_failed(self, tx: Tx, intent: StripeDict, error: StripeDict) -> None:
        intent.update(
            status="requires_payment_method",
            payment_method=None,
            next_action=None,
            last_payment_error=dict(error),
        )
        self._emit(tx, "payment_intent.payment_failed", intent)

    async def _capture(self, tx: Tx, payment_intent_id: str, amount: int | None) -> StripeDict:
        record = await tx.get("payment_intent", payment_intent_id)
        intent = record.stripe
        if intent["status"] != "requires_capture":
            raise _unexpected_state(intent, "capture")
        capturable = intent["amount_capturable"]
        amount = capturable if amount is None else amount
        if not 0 < amount <= capturable:
            raise InvalidRequest(
                f"The amount to capture must be between 1 and {capturable}.",
                param="amount_to_capture",
            )
        intent.update(status="succeeded", amount_received=amount, amount_capturable=0)
        self._emit(tx, "payment_intent.succeeded", intent)
        await tx.save(record)
        return intent

    async def _cancel(self, tx: Tx, payment_intent_id: str) -> StripeDict:
        record = await tx.get("payment_intent", payment_intent_id)
        intent = record.stripe
        if intent["status"] not in CANCELABLE:
            raise _unexpected_state(intent, "cancel")
        intent.update(status="canceled", amount_capturable=0, next_action=None)
        self._emit(tx, "payment_intent.canceled", intent)
        await tx.save(record)
        return intent

    async def _refund(
        self, tx: Tx, payment_intent_id: str, amount: int | None, metadata: Mapping[str, str]
    ) -> StripeDict:
        record = await tx.get("payment_intent", payment_intent_id)
        intent = record.stripe
        if intent["status"] != "succeeded":
            raise _unexpected_state(intent, "refund")
        refundable = intent["amount_received"] - record.refunded
        amount = refundable if amount is None else amount
        if not 0 < amount <= refundable:
            raise InvalidRequest(
                f"The refund amount must be between 1 and the {refundable} not yet refunded.",
                param="amount",
            )
        refund = _new(
            "re",
            {
                "object": "refund",
                "amount": amount,
                "charge": intent["latest_charge"],
                "currency": intent["currency"],
                "metadata": dict(metadata),
                "payment_intent": payment_intent_id,
                "reason": None,
                "status": "succeeded",
            },
        )
        await tx.insert(refund)
        # Counted on the intent: two refunds racing conflict on it, and one runs again.
        record.refunded += amount
        await tx.save(record)
        self._emit(tx, "refund.created", refund.stripe)
        self._emit(tx, "charge.refunded", _refunded_charge(intent, record.refunded))
        return refund.stripe

    # -- Connect -----------------------------------------------------------------------

    async def _account(self, tx: Tx, email: str, country: str) -> StripeDict:
        account = _new(
            "acct",
            {
                "object": "account",
                "type": "express",
                "country": country,
                "email": email,
                "capabilities": {"transfers": "inactive"},
                "charges_enabled": False,
                "payouts_enabled": False,
                "details_submitted": False,
                "metadata": {},
                "requirements": {
                    "currently_due": list(INITIAL_REQUIREMENTS),
                    "past_due": [],
                    "disabled_reason": "requirements.past_due",
                },
            },
        )
        await tx.insert(account)
        return account.stripe

    def _onboard(self, tx: Tx, account: Record, outcome: OnboardingOutcome) -> None:
        """The provider went through onboarding: every requirement met, or all but a
        document, which leaves payouts disabled until they come back to it."""
        due = [] if outcome == "complete" else [DOCUMENT_REQUIREMENT]
        account.stripe.update(
            details_submitted=True,
            payouts_enabled=not due,
            requirements={
                "currently_due": due,
                "past_due": due,
                "disabled_reason": "requirements.past_due" if due else None,
            },
        )
        account.stripe["capabilities"]["transfers"] = "inactive" if due else "active"
        self._emit(tx, "account.updated", account.stripe, account=account.id)

    async def _transfer(
        self,
        tx: Tx,
        amount: int,
        currency: str,
        destination: str,
        transfer_group: str,
        metadata: Mapping[str, str],
        source_charge_id: str | None,
    ) -> StripeDict:
        if amount < 1:
            raise InvalidRequest("The amount must be at least 1.", param="amount")
        try:
            await tx.get("account", destination)
        except InvalidRequest:
            raise InvalidRequest(
                f"No such destination: '{destination}'",
                code="resource_missing",
                param="destination",
            ) from None
        transfer = _new(
            "tr",
            {
                "object": "transfer",
                "amount": amount,
                "amount_reversed": 0,
                "currency": currency.lower(),
                "destination": destination,
                "metadata": dict(metadata),
                "reversed": False,
                "source_transaction": source_charge_id,
                "transfer_group": transfer_group,
            },
        )
        transfer.stripe["reversals"] = {
            "object": "list",
            "data": [],
            "has_more": False,
            "total_count": 0,
            "url": f"/v1/transfers/{transfer.id}/reversals",
        }
        await tx.insert(transfer)
        self._emit(tx, "transfer.created", transfer.stripe)
        return transfer.stripe

    async def _reverse(self, tx: Tx, transfer_id: str, amount: int | None) -> StripeDict:
        record = await tx.get("transfer", transfer_id)
        transfer = record.stripe
        remaining = transfer["amount"] - transfer["amount_reversed"]
        amount = remaining if amount is None else amount
        if not 0 < amount <= remaining:
            raise InvalidRequest(
                f"The reversal amount must be between 1 and the {remaining} not yet reversed.",
                param="amount",
            )
        reversal = _new(
            "trr",
            {
                "object": "transfer_reversal",
                "amount": amount,
                "currency": transfer["currency"],
                "metadata": {},
                "transfer": transfer_id,
            },
        )
        await tx.insert(reversal)
        transfer["amount_reversed"] += amount
        transfer["reversed"] = transfer["amount_reversed"] == transfer["amount"]
        transfer["reversals"]["data"].insert(0, dict(reversal.stripe))
        transfer["reversals"]["total_count"] += 1
        await tx.save(record)
        self._emit(tx, "transfer.reversed", transfer)
        return reversal.stripe

    async def _payout(
        self, tx: Tx, account_id: str, amount: int, currency: str, metadata: Mapping[str, str]
    ) -> StripeDict:
        account = await tx.get("account", account_id)
        if not account.stripe["payouts_enabled"]:
            raise InvalidRequest(
                "Payouts are not enabled on this account yet.", code="payouts_not_allowed"
            )
        if amount < 1:
            raise InvalidRequest("The amount must be at least 1.", param="amount")
        payout = _new(
            "po",
            {
                "object": "payout",
                "amount": amount,
                "arrival_date": int(time.time()) + PAYOUT_ARRIVAL_SECONDS,
                "currency": currency.lower(),
                "failure_code": None,
                "failure_message": None,
                "metadata": dict(metadata),
                "method": "standard",
                "status": "pending",
                "type": "bank_account",
            },
            account=account_id,
            settle_at=utcnow() + self._payout_delay,
        )
        await tx.insert(payout)
        self._emit(tx, "payout.created", payout.stripe, account=account_id)
        return payout.stripe

    async def _settle(self, payout_id: str, status: str, code: str | None = None) -> Payout:
        async def work(tx: Tx) -> Record:
            payout = await tx.get("payout", payout_id)
            self._settle_payout(tx, payout, status, code)
            await tx.save(payout)
            return payout

        settled = await self._run(work)
        assert settled.account is not None
        return Payout.from_stripe(settled.stripe, settled.account)

    def _settle_payout(self, tx: Tx, payout: Record, status: str, code: str | None) -> None:
        obj = payout.stripe
        if obj["status"] not in ("pending", "in_transit"):
            raise _unexpected_state(obj, "settle")
        obj.update(status=status, failure_code=code)
        if code is not None:
            obj["failure_message"] = f"The bank returned the payout ({code})."
        payout.settle_at = None
        self._emit(tx, f"payout.{status}", obj, account=payout.account)

    async def _bank_answers(self, tx: Tx, *, payout_id: str) -> bool:
        """The bank pays the payout, or returns it for a test amount; False if another
        instance (or a control) settled it first."""
        payout = await tx.get("payout", payout_id)
        if payout.settle_at is None or payout.settle_at > utcnow():
            return False
        code = TEST_PAYOUT_FAILURES.get(payout.stripe["amount"] % 10_000)
        self._settle_payout(tx, payout, "paid" if code is None else "failed", code)
        await tx.save(payout)
        return True

    # -- identity ----------------------------------------------------------------------

    async def _verification(
        self, tx: Tx, metadata: Mapping[str, str], return_url: str | None
    ) -> StripeDict:
        token = secrets.token_urlsafe(32)
        session = _new(
            "vs",
            {
                "object": "identity.verification_session",
                "last_error": None,
                "metadata": dict(metadata),
                "status": "requires_input",
                "type": "document",
                # As Stripe's: the page to send the provider to while the session is open.
                "url": self._page_url(IDENTITY_PAGE, token),
            },
        )
        session.stripe["client_secret"] = f"{session.id}_secret_{secrets.token_hex(12)}"
        await tx.insert(session)
        await tx.insert_link(
            token,
            {
                "kind": "identity_verification",
                "object_id": session.id,
                "return_url": return_url,
                "forget_at": None,
            },
        )
        self._emit(tx, "identity.verification_session.created", session.stripe)
        return session.stripe

    def _identity_checked(self, tx: Tx, session: Record, *, ok: bool) -> None:
        obj = session.stripe
        if ok:
            obj.update(status="verified", url=None, last_error=None)
        else:
            # Stripe's outcome for a document it could not verify: the session waits for
            # another try, at the same url.
            obj["last_error"] = {
                "code": "document_unverified_other",
                "reason": "The document could not be verified.",
            }
        self._emit(tx, f"identity.verification_session.{obj['status']}", obj)

    # -- links -------------------------------------------------------------------------

    async def _page_link(self, tx: Tx, kind: LinkKind, token: str) -> PageLink | None:
        link = await tx.link(token)
        if link is None or link["kind"] != kind:
            return None
        if kind == "account_onboarding":
            subject = (await tx.get("account", link["object_id"])).stripe
            expires_at = aware(link["expires_at"])
            usable = link["used_at"] is None and expires_at is not None and utcnow() < expires_at
            return PageLink(kind, usable, subject, link["return_url"], link["refresh_url"])
        subject = (await tx.get("identity.verification_session", link["object_id"])).stripe
        open_session = subject["status"] == "requires_input"
        return PageLink(kind, open_session, subject, link["return_url"], None)


def _refunded_charge(intent: StripeDict, amount_refunded: int) -> StripeDict:
    """The intent's charge as `charge.refunded` shows it (charges are not kept here)."""
    return {
        "id": intent["latest_charge"],
        "object": "charge",
        "amount": intent["amount"],
        "amount_captured": intent["amount_received"],
        "amount_refunded": amount_refunded,
        "created": intent["created"],
        "currency": intent["currency"],
        "livemode": False,
        "metadata": dict(intent["metadata"]),
        "paid": True,
        "payment_intent": intent["id"],
        "refunded": amount_refunded == intent["amount_received"],
        "status": "succeeded",
        "transfer_group": intent["transfer_group"],
    }
