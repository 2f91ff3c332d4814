"""A payment gateway inside this process: `gigql serve` without a Stripe key, and tests.

It walks Stripe's states and speaks Stripe's events. Objects are kept in Stripe's JSON
shapes; every change becomes an event of Stripe's type with the object as Stripe would
show it, signed with the webhook secret and handed to `deliver` as a webhook body and
`Stripe-Signature` header, after the request that caused it and in order, so the app
routes it through the same webhook handling as Stripe's. Requests are idempotent by key
as on Stripe. What happens on Stripe's pages (the payer paying, the provider onboarding,
an identity check, a bank paying out) is played by the controls at the end.

State lives in memory: it is lost at exit and not shared between worker processes.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import json
import logging
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from datetime import datetime
from typing import Any, Literal, TypeVar, cast

import stripe

from integrations.payments.errors import (
    CardDeclined,
    GatewayError,
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
from integrations.payments.webhooks import parse_event, sign_payload

log = logging.getLogger(__name__)

Deliver = Callable[[bytes, str], Awaitable[None]]
"""Receives each event as a webhook body and its `Stripe-Signature` header."""

Outcome = Literal["succeeded", "declined", "requires_action"]

# Stripe's own test payment methods, for a payment method given when creating an intent.
TEST_PAYMENT_METHODS: dict[str, Outcome] = {
    "pm_card_visa": "succeeded",
    "pm_card_chargeCustomerFail": "declined",
    "pm_card_authenticationRequired": "requires_action",
}
CANCELABLE = {
    "requires_payment_method",
    "requires_confirmation",
    "requires_action",
    "requires_capture",
    "processing",
}
ONBOARDING_LINK_LIFETIME = 300
PAYOUT_ARRIVAL_SECONDS = 2 * 24 * 3600

T = TypeVar("T")
StripeDict = dict[str, Any]


def _new_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(12)}"


def _items(metadata: Mapping[str, str]) -> tuple[tuple[str, str], ...]:
    return tuple(sorted(metadata.items()))


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


class SandboxGateway:
    def __init__(self, webhook_secret: str, deliver: Deliver) -> None:
        self._webhook_secret = webhook_secret
        self._deliver = deliver
        self._objects: dict[str, StripeDict] = {}  # by id, in creation order
        self._payout_accounts: dict[str, str] = {}
        # (connected account or None, key) -> (request, its result or card error)
        self._keys: dict[tuple[str | None, str], tuple[tuple[object, ...], object]] = {}
        self._outbox: asyncio.Queue[bytes] = asyncio.Queue()
        self._courier: asyncio.Task[None] | None = None

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
        request = (
            "create_payment_intent",
            amount,
            currency.lower(),
            transfer_group,
            _items(metadata),
            capture_manually,
            payment_method,
        )
        return self._once(
            idempotency_key,
            request,
            lambda: self._create_intent(
                amount, currency, transfer_group, metadata, capture_manually, payment_method
            ),
        )

    async def retrieve_payment_intent(self, payment_intent_id: str) -> PaymentIntent:
        return PaymentIntent.from_stripe(self._get("payment_intent", payment_intent_id))

    async def capture_payment_intent(
        self, payment_intent_id: str, *, idempotency_key: str, amount: int | None = None
    ) -> PaymentIntent:
        request = ("capture_payment_intent", payment_intent_id, amount)
        return self._once(
            idempotency_key, request, lambda: self._capture(payment_intent_id, amount)
        )

    async def cancel_payment_intent(
        self, payment_intent_id: str, *, idempotency_key: str
    ) -> PaymentIntent:
        request = ("cancel_payment_intent", payment_intent_id)
        return self._once(idempotency_key, request, lambda: self._cancel(payment_intent_id))

    async def refund(
        self,
        payment_intent_id: str,
        *,
        amount: int | None,
        metadata: Mapping[str, str],
        idempotency_key: str,
    ) -> Refund:
        request = ("refund", payment_intent_id, amount, _items(metadata))
        return self._once(
            idempotency_key, request, lambda: self._refund(payment_intent_id, amount, metadata)
        )

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
        request = (
            "create_transfer",
            amount,
            currency.lower(),
            destination_account_id,
            transfer_group,
            _items(metadata),
            source_charge_id,
        )
        return self._once(
            idempotency_key,
            request,
            lambda: self._transfer(
                amount, currency, destination_account_id, transfer_group, metadata, source_charge_id
            ),
        )

    async def reverse_transfer(
        self, transfer_id: str, *, amount: int | None, idempotency_key: str
    ) -> TransferReversal:
        request = ("reverse_transfer", transfer_id, amount)
        return self._once(idempotency_key, request, lambda: self._reverse(transfer_id, amount))

    async def create_connected_account(
        self, *, email: str, country: str, idempotency_key: str
    ) -> ConnectedAccount:
        request = ("create_connected_account", email, country)
        return self._once(idempotency_key, request, lambda: self._account(email, country))

    async def create_onboarding_link(
        self, account_id: str, *, refresh_url: str, return_url: str
    ) -> OnboardingLink:
        # There are no onboarding pages here: the link leads straight back, and
        # `complete_onboarding` plays the provider's part.
        self._get("account", account_id)
        now = int(time.time())
        return OnboardingLink.from_stripe(
            {
                "object": "account_link",
                "created": now,
                "expires_at": now + ONBOARDING_LINK_LIFETIME,
                "url": return_url,
            }
        )

    async def retrieve_account(self, account_id: str) -> ConnectedAccount:
        return ConnectedAccount.from_stripe(self._get("account", account_id))

    async def create_payout(
        self,
        *,
        account_id: str,
        amount: int,
        currency: str,
        metadata: Mapping[str, str],
        idempotency_key: str,
    ) -> Payout:
        request = ("create_payout", amount, currency.lower(), _items(metadata))
        return self._once(
            idempotency_key,
            request,
            lambda: self._payout(account_id, amount, currency, metadata),
            account=account_id,  # keys are per account, as with Stripe's Stripe-Account header
        )

    async def create_verification_session(
        self, *, metadata: Mapping[str, str], idempotency_key: str
    ) -> VerificationSession:
        request = ("create_verification_session", _items(metadata))
        return self._once(idempotency_key, request, lambda: self._verification(metadata))

    async def retrieve_verification_session(self, session_id: str) -> VerificationSession:
        return VerificationSession.from_stripe(
            self._get("identity.verification_session", session_id)
        )

    async def list_payment_intents(
        self, created_from: datetime, created_until: datetime
    ) -> AsyncIterator[PaymentIntent]:
        for obj in self._created_within("payment_intent", created_from, created_until):
            yield PaymentIntent.from_stripe(obj)

    async def list_transfers(
        self, created_from: datetime, created_until: datetime, transfer_group: str | None = None
    ) -> AsyncIterator[Transfer]:
        for obj in self._created_within("transfer", created_from, created_until):
            if transfer_group is None or obj["transfer_group"] == transfer_group:
                yield Transfer.from_stripe(obj)

    async def list_refunds(
        self,
        created_from: datetime,
        created_until: datetime,
        payment_intent_id: str | None = None,
    ) -> AsyncIterator[Refund]:
        for obj in self._created_within("refund", created_from, created_until):
            if payment_intent_id is None or obj["payment_intent"] == payment_intent_id:
                yield Refund.from_stripe(obj)

    async def list_payouts(
        self, account_id: str, created_from: datetime, created_until: datetime
    ) -> AsyncIterator[Payout]:
        for obj in self._created_within("payout", created_from, created_until):
            if self._payout_accounts[obj["id"]] == account_id:
                yield Payout.from_stripe(obj, account_id)

    def parse_event(self, payload: bytes, signature_header: str) -> GatewayEvent:
        return parse_event(payload, signature_header, self._webhook_secret)

    @property
    def webhook_secret(self) -> str:
        """What its events are signed with, for tests that post events of their own."""
        return self._webhook_secret

    async def drain(self) -> None:
        """Wait until every event so far has been delivered."""
        await self._outbox.join()

    async def aclose(self) -> None:
        await self.drain()
        if self._courier is not None:
            self._courier.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._courier

    # -- what happens on Stripe's pages ------------------------------------------------

    def confirm(self, payment_intent_id: str, outcome: Outcome = "succeeded") -> PaymentIntent:
        """The payer confirms with a card that is charged, declined, or needs 3-D Secure."""
        intent = self._get("payment_intent", payment_intent_id)
        if intent["status"] not in ("requires_payment_method", "requires_confirmation"):
            raise _unexpected_state(intent, "confirm")
        self._attempt(intent, f"pm_sandbox_{outcome}", outcome)
        return PaymentIntent.from_stripe(intent)

    def authenticate(self, payment_intent_id: str, ok: bool = True) -> PaymentIntent:
        """The payer passes, or fails, the 3-D Secure check the card asked for."""
        intent = self._get("payment_intent", payment_intent_id)
        if intent["status"] != "requires_action":
            raise _unexpected_state(intent, "authenticate")
        if ok:
            self._charge(intent)
        else:
            self._payment_failed(intent, AUTHENTICATION_FAILED)
        return PaymentIntent.from_stripe(intent)

    def complete_onboarding(self, account_id: str) -> ConnectedAccount:
        account = self._get("account", account_id)
        account.update(details_submitted=True, payouts_enabled=True)
        account["capabilities"]["transfers"] = "active"
        self._emit("account.updated", account, account=account_id)
        return ConnectedAccount.from_stripe(account)

    def verify_identity(self, session_id: str, ok: bool = True) -> VerificationSession:
        session = self._get("identity.verification_session", session_id)
        if session["status"] != "requires_input":
            raise _unexpected_state(session, "verify")
        if ok:
            session["status"] = "verified"
        else:
            session["last_error"] = {
                "code": "document_unverified_other",
                "reason": "The document could not be verified.",
            }
        self._emit(f"identity.verification_session.{session['status']}", session)
        return VerificationSession.from_stripe(session)

    def forget_idempotency_keys(self) -> None:
        """What Stripe does to keys at least 24 hours old: a repeat makes a new object."""
        self._keys.clear()

    def pay_out(self, payout_id: str) -> Payout:
        """The bank accepted the payout."""
        return self._settle_payout(payout_id, "paid")

    def fail_payout(self, payout_id: str, code: str = "could_not_process") -> Payout:
        """The bank returned the payout (`account_closed`, `no_account`, ...)."""
        return self._settle_payout(payout_id, "failed", code)

    # -- state -------------------------------------------------------------------------

    def _once(
        self,
        key: str,
        request: tuple[object, ...],
        perform: Callable[[], T],
        account: str | None = None,
    ) -> T:
        """Stripe's idempotency: the first result under a key answers every retry of the
        same request, a declined card included; the key with another request is refused.
        A request refused as invalid leaves no result, so it can be corrected."""
        scope = (account, key)
        if scope in self._keys:
            first_request, result = self._keys[scope]
            if first_request != request:
                raise IdempotencyConflict(
                    "Keys for idempotent requests can only be used with the same parameters "
                    f"they were first used with. Try using a key other than '{key}' if you "
                    "meant to execute a different request."
                )
            if isinstance(result, GatewayError):
                raise result
            return cast("T", result)
        try:
            outcome = perform()
        except CardDeclined as declined:
            self._keys[scope] = (request, declined)
            raise
        self._keys[scope] = (request, outcome)
        return outcome

    def _new(self, prefix: str, fields: StripeDict) -> StripeDict:
        obj = {"id": _new_id(prefix), "created": int(time.time()), "livemode": False, **fields}
        self._objects[obj["id"]] = obj
        return obj

    def _get(self, kind: str, object_id: str) -> StripeDict:
        obj = self._objects.get(object_id)
        if obj is None or obj["object"] != kind:
            raise InvalidRequest(
                f"No such {kind.rsplit('.', 1)[-1]}: '{object_id}'", code="resource_missing"
            )
        return obj

    def _created_within(self, kind: str, start: datetime, end: datetime) -> list[StripeDict]:
        low, high = int(start.timestamp()), int(end.timestamp())
        found = [
            obj
            for obj in self._objects.values()
            if obj["object"] == kind and low <= obj["created"] < high
        ]
        return found[::-1]  # newest first, as Stripe lists

    def _emit(self, event_type: str, obj: StripeDict, account: str | None = None) -> None:
        event: StripeDict = {
            "id": _new_id("evt"),
            "object": "event",
            "api_version": stripe.api_version,
            "created": int(time.time()),
            "data": {"object": copy.deepcopy(obj)},
            "livemode": False,
            "pending_webhooks": 1,
            "request": {"id": None, "idempotency_key": None},
            "type": event_type,
        }
        if account is not None:
            event["account"] = account
        self._outbox.put_nowait(json.dumps(event).encode())
        if self._courier is None:
            self._courier = asyncio.create_task(self._carry())

    async def _carry(self) -> None:
        while True:
            payload = await self._outbox.get()
            try:
                # Signed when sent, as Stripe signs each delivery attempt.
                await self._deliver(
                    payload, sign_payload(payload, self._webhook_secret, int(time.time()))
                )
            except Exception:
                log.exception("the webhook handler failed on a sandbox event")
            finally:
                self._outbox.task_done()

    # -- payments ----------------------------------------------------------------------

    def _create_intent(
        self,
        amount: int,
        currency: str,
        transfer_group: str,
        metadata: Mapping[str, str],
        capture_manually: bool,
        payment_method: str | None,
    ) -> PaymentIntent:
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
        intent = self._new(
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
        intent["client_secret"] = f"{intent['id']}_secret_{secrets.token_hex(12)}"
        self._emit("payment_intent.created", intent)
        if payment_method is not None and outcome is not None:
            self._attempt(intent, payment_method, outcome)
            if outcome == "declined":
                raise CardDeclined(
                    DECLINED["message"], code=DECLINED["code"], decline_code="generic_decline"
                )
        return PaymentIntent.from_stripe(intent)

    def _attempt(self, intent: StripeDict, payment_method: str, outcome: Outcome) -> None:
        intent.update(payment_method=payment_method, last_payment_error=None)
        if outcome == "requires_action":
            intent["status"] = "requires_action"
            intent["next_action"] = {"type": "use_stripe_sdk", "use_stripe_sdk": {}}
            self._emit("payment_intent.requires_action", intent)
        elif outcome == "declined":
            intent["latest_charge"] = _new_id("ch")  # a failed charge
            self._payment_failed(intent, DECLINED)
        else:
            self._charge(intent)

    def _charge(self, intent: StripeDict) -> None:
        intent.update(latest_charge=_new_id("ch"), next_action=None)
        if intent["capture_method"] == "manual":
            intent.update(status="requires_capture", amount_capturable=intent["amount"])
            self._emit("payment_intent.amount_capturable_updated", intent)
        else:
            intent.update(status="succeeded", amount_received=intent["amount"])
            self._emit("payment_intent.succeeded", intent)

    def _payment_failed(self, intent: StripeDict, error: StripeDict) -> None:
        intent.update(
            status="requires_payment_method",
            payment_method=None,
            next_action=None,
            last_payment_error=dict(error),
        )
        self._emit("payment_intent.payment_failed", intent)

    def _capture(self, payment_intent_id: str, amount: int | None) -> PaymentIntent:
        intent = self._get("payment_intent", payment_intent_id)
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
        self._emit("payment_intent.succeeded", intent)
        return PaymentIntent.from_stripe(intent)

    def _cancel(self, payment_intent_id: str) -> PaymentIntent:
        intent = self._get("payment_intent", payment_intent_id)
        if intent["status"] not in CANCELABLE:
            raise _unexpected_state(intent, "cancel")
        intent.update(status="canceled", amount_capturable=0, next_action=None)
        self._emit("payment_intent.canceled", intent)
        return PaymentIntent.from_stripe(intent)

    def _refund(
        self, payment_intent_id: str, amount: int | None, metadata: Mapping[str, str]
    ) -> Refund:
        intent = self._get("payment_intent", payment_intent_id)
        if intent["status"] != "succeeded":
            raise _unexpected_state(intent, "refund")
        refunded = sum(
            obj["amount"]
            for obj in self._objects.values()
            if obj["object"] == "refund" and obj["payment_intent"] == payment_intent_id
        )
        refundable = intent["amount_received"] - refunded
        amount = refundable if amount is None else amount
        if not 0 < amount <= refundable:
            raise InvalidRequest(
                f"The refund amount must be between 1 and the {refundable} not yet refunded.",
                param="amount",
            )
        refund = self._new(
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
        self._emit("refund.created", refund)
        self._emit("charge.refunded", self._refunded_charge(intent, refunded + amount))
        return Refund.from_stripe(refund)

    def _refunded_charge(self, intent: StripeDict, amount_refunded: int) -> StripeDict:
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

    # -- Connect -----------------------------------------------------------------------

    def _account(self, email: str, country: str) -> ConnectedAccount:
        account = self._new(
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
            },
        )
        return ConnectedAccount.from_stripe(account)

    def _transfer(
        self,
        amount: int,
        currency: str,
        destination: str,
        transfer_group: str,
        metadata: Mapping[str, str],
        source_charge_id: str | None,
    ) -> Transfer:
        if amount < 1:
            raise InvalidRequest("The amount must be at least 1.", param="amount")
        if destination not in self._objects:
            raise InvalidRequest(
                f"No such destination: '{destination}'",
                code="resource_missing",
                param="destination",
            )
        transfer = self._new(
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
        transfer["reversals"] = {
            "object": "list",
            "data": [],
            "has_more": False,
            "total_count": 0,
            "url": f"/v1/transfers/{transfer['id']}/reversals",
        }
        self._emit("transfer.created", transfer)
        return Transfer.from_stripe(transfer)

    def _reverse(self, transfer_id: str, amount: int | None) -> TransferReversal:
        transfer = self._get("transfer", transfer_id)
        remaining = transfer["amount"] - transfer["amount_reversed"]
        amount = remaining if amount is None else amount
        if not 0 < amount <= remaining:
            raise InvalidRequest(
                f"The reversal amount must be between 1 and the {remaining} not yet reversed.",
                param="amount",
            )
        reversal = self._new(
            "trr",
            {
                "object": "transfer_reversal",
                "amount": amount,
                "currency": transfer["currency"],
                "metadata": {},
                "transfer": transfer_id,
            },
        )
        transfer["amount_reversed"] += amount
        transfer["reversed"] = transfer["amount_reversed"] == transfer["amount"]
        transfer["reversals"]["data"].insert(0, dict(reversal))
        transfer["reversals"]["total_count"] += 1
        self._emit("transfer.reversed", transfer)
        return TransferReversal.from_stripe(reversal)

    def _payout(
        self, account_id: str, amount: int, currency: str, metadata: Mapping[str, str]
    ) -> Payout:
        account = self._get("account", account_id)
        if not account["payouts_enabled"]:
            raise InvalidRequest(
                "Payouts are not enabled on this account yet.", code="payouts_not_allowed"
            )
        if amount < 1:
            raise InvalidRequest("The amount must be at least 1.", param="amount")
        payout = self._new(
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
        )
        self._payout_accounts[payout["id"]] = account_id
        self._emit("payout.created", payout, account=account_id)
        return Payout.from_stripe(payout, account_id)

    def _settle_payout(self, payout_id: str, status: str, code: str | None = None) -> Payout:
        payout = self._get("payout", payout_id)
        if payout["status"] not in ("pending", "in_transit"):
            raise _unexpected_state(payout, "settle")
        payout.update(status=status, failure_code=code)
        if code is not None:
            payout["failure_message"] = f"The bank returned the payout ({code})."
        account_id = self._payout_accounts[payout_id]
        self._emit(f"payout.{status}", payout, account=account_id)
        return Payout.from_stripe(payout, account_id)

    # -- identity ----------------------------------------------------------------------

    def _verification(self, metadata: Mapping[str, str]) -> VerificationSession:
        session = self._new(
            "vs",
            {
                "object": "identity.verification_session",
                "last_error": None,
                "metadata": dict(metadata),
                "status": "requires_input",
                "type": "document",
                "url": None,
            },
        )
        session["client_secret"] = f"{session['id']}_secret_{secrets.token_hex(12)}"
        self._emit("identity.verification_session.created", session)
        return VerificationSession.from_stripe(session)
