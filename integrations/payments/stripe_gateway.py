"""The payment gateway on Stripe, through the official SDK's async methods."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime
from typing import Any

import stripe
from stripe.params import (
    AccountCreateParams,
    PaymentIntentCaptureParams,
    PaymentIntentCreateParams,
    RefundCreateParams,
    TransferCreateParams,
    TransferReversalCreateParams,
)

from integrations.payments.errors import (
    CardDeclined,
    GatewayError,
    GatewayUnavailable,
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
from integrations.payments.webhooks import parse_event

# Every request that changes something carries our idempotency key, so the SDK may resend
# it after a network error, a 409 or a 5xx without paying or transferring twice.
MAX_NETWORK_RETRIES = 2
PAGE_SIZE = 100  # Stripe's largest


@contextmanager
def _translated_errors() -> Iterator[None]:
    try:
        yield
    except stripe.CardError as error:
        decline_code = error.error.decline_code if error.error else None
        raise CardDeclined(str(error), code=error.code, decline_code=decline_code) from error
    except stripe.IdempotencyError as error:
        raise IdempotencyConflict(str(error), code=error.code) from error
    except stripe.InvalidRequestError as error:
        raise InvalidRequest(str(error), code=error.code, param=error.param) from error
    except (stripe.APIConnectionError, stripe.RateLimitError, stripe.APIError) as error:
        # APIError: 5xx, and the 409 of a request colliding with one still running.
        raise GatewayUnavailable(str(error), code=error.code) from error
    except stripe.StripeError as error:
        # Authentication and permission errors: the configuration is wrong.
        raise GatewayError(str(error), code=error.code) from error


def _seconds(moment: datetime) -> int:
    return int(moment.timestamp())


class StripeGateway:
    def __init__(
        self,
        secret_key: str,
        webhook_secret: str,
        *,
        api_base: str | None = None,
        max_network_retries: int = MAX_NETWORK_RETRIES,
        page_size: int = PAGE_SIZE,
    ) -> None:
        """`api_base`: another server speaking Stripe's API (the tests' localstripe)."""
        self._webhook_secret = webhook_secret
        self._page_size = page_size
        # httpx explicitly: the SDK would otherwise pick whichever async library happens
        # to be installed, or none.
        self._http = stripe.HTTPXClient()
        self._stripe = stripe.StripeClient(
            secret_key,
            base_addresses={"api": api_base} if api_base else {},
            max_network_retries=max_network_retries,
            http_client=self._http,
        ).v1

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
        params: PaymentIntentCreateParams = {
            "amount": amount,
            "currency": currency.lower(),
            "transfer_group": transfer_group,
            "metadata": dict(metadata),
        }
        if capture_manually:
            params["capture_method"] = "manual"
        if payment_method:
            # Cards only: a method that may redirect the payer cannot be confirmed on the
            # server without a return_url.
            params["payment_method"] = payment_method
            params["allowed_payment_method_types"] = ["card"]
            params["confirm"] = True
        with _translated_errors():
            intent = await self._stripe.payment_intents.create_async(
                params, {"idempotency_key": idempotency_key}
            )
        return PaymentIntent.from_stripe(intent.to_dict())

    async def retrieve_payment_intent(self, payment_intent_id: str) -> PaymentIntent:
        with _translated_errors():
            intent = await self._stripe.payment_intents.retrieve_async(payment_intent_id)
        return PaymentIntent.from_stripe(intent.to_dict())

    async def capture_payment_intent(
        self, payment_intent_id: str, *, idempotency_key: str, amount: int | None = None
    ) -> PaymentIntent:
        params: PaymentIntentCaptureParams = {}
        if amount is not None:
            params["amount_to_capture"] = amount
        with _translated_errors():
            intent = await self._stripe.payment_intents.capture_async(
                payment_intent_id, params, {"idempotency_key": idempotency_key}
            )
        return PaymentIntent.from_stripe(intent.to_dict())

    async def cancel_payment_intent(
        self, payment_intent_id: str, *, idempotency_key: str
    ) -> PaymentIntent:
        with _translated_errors():
            intent = await self._stripe.payment_intents.cancel_async(
                payment_intent_id, options={"idempotency_key": idempotency_key}
            )
        return PaymentIntent.from_stripe(intent.to_dict())

    async def refund(
        self,
        payment_intent_id: str,
        *,
        amount: int | None,
        metadata: Mapping[str, str],
        idempotency_key: str,
    ) -> Refund:
        params: RefundCreateParams = {
            "payment_intent": payment_intent_id,
            "metadata": dict(metadata),
        }
        if amount is not None:
            params["amount"] = amount
        with _translated_errors():
            refund = await self._stripe.refunds.create_async(
                params, {"idempotency_key": idempotency_key}
            )
        return Refund.from_stripe(refund.to_dict())

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
        params: TransferCreateParams = {
            "amount": amount,
            "currency": currency.lower(),
            "destination": destination_account_id,
            "transfer_group": transfer_group,
            "metadata": dict(metadata),
        }
        if source_charge_id:
            params["source_transaction"] = source_charge_id
        with _translated_errors():
            transfer = await self._stripe.transfers.create_async(
                params, {"idempotency_key": idempotency_key}
            )
        return Transfer.from_stripe(transfer.to_dict())

    async def reverse_transfer(
        self, transfer_id: str, *, amount: int | None, idempotency_key: str
    ) -> TransferReversal:
        params: TransferReversalCreateParams = {}
        if amount is not None:
            params["amount"] = amount
        with _translated_errors():
            reversal = await self._stripe.transfers.reversals.create_async(
                transfer_id, params, {"idempotency_key": idempotency_key}
            )
        return TransferReversal.from_stripe(reversal.to_dict())

    async def create_connected_account(
        self, *, email: str, country: str, idempotency_key: str
    ) -> ConnectedAccount:
        params: AccountCreateParams = {
            "type": "express",
            "country": country,
            "email": email,
            # Separate charges and transfers: the provider's account only receives transfers.
            "capabilities": {"transfers": {"requested": True}},
        }
        with _translated_errors():
            account = await self._stripe.accounts.create_async(
                params, {"idempotency_key": idempotency_key}
            )
        return ConnectedAccount.from_stripe(account.to_dict())

    async def create_onboarding_link(
        self, account_id: str, *, refresh_url: str, return_url: str
    ) -> OnboardingLink:
        # No idempotency key: a second link is harmless, and each expires within minutes.
        with _translated_errors():
            link = await self._stripe.account_links.create_async(
                {
                    "account": account_id,
                    "refresh_url": refresh_url,
                    "return_url": return_url,
                    "type": "account_onboarding",
                }
            )
        return OnboardingLink.from_stripe(link.to_dict())

    async def retrieve_account(self, account_id: str) -> ConnectedAccount:
        with _translated_errors():
            account = await self._stripe.accounts.retrieve_async(account_id)
        return ConnectedAccount.from_stripe(account.to_dict())

    async def create_payout(
        self,
        *,
        account_id: str,
        amount: int,
        currency: str,
        metadata: Mapping[str, str],
        idempotency_key: str,
    ) -> Payout:
        with _translated_errors():
            payout = await self._stripe.payouts.create_async(
                {"amount": amount, "currency": currency.lower(), "metadata": dict(metadata)},
                {"stripe_account": account_id, "idempotency_key": idempotency_key},
            )
        return Payout.from_stripe(payout.to_dict(), account_id)

    async def create_verification_session(
        self, *, metadata: Mapping[str, str], idempotency_key: str, return_url: str | None = None
    ) -> VerificationSession:
        params: dict[str, Any] = {"type": "document", "metadata": dict(metadata)}
        if return_url is not None:
            params["return_url"] = return_url
        with _translated_errors():
            session = await self._stripe.identity.verification_sessions.create_async(
                params,  # type: ignore[arg-type]
                {"idempotency_key": idempotency_key},
            )
        return VerificationSession.from_stripe(session.to_dict())

    async def retrieve_verification_session(self, session_id: str) -> VerificationSession:
        with _translated_errors():
            session = await self._stripe.identity.verification_sessions.retrieve_async(session_id)
        return VerificationSession.from_stripe(session.to_dict())

    def list_payment_intents(
        self, created_from: datetime, created_until: datetime
    ) -> AsyncIterator[PaymentIntent]:
        listed = self._created_within(self._stripe.payment_intents, created_from, created_until)
        return (PaymentIntent.from_stripe(obj) async for obj in listed)

    def list_transfers(
        self, created_from: datetime, created_until: datetime, transfer_group: str | None = None
    ) -> AsyncIterator[Transfer]:
        filters = {"transfer_group": transfer_group} if transfer_group else {}
        listed = self._created_within(
            self._stripe.transfers, created_from, created_until, filters=filters
        )
        return (Transfer.from_stripe(obj) async for obj in listed)

    def list_refunds(
        self,
        created_from: datetime,
        created_until: datetime,
        payment_intent_id: str | None = None,
    ) -> AsyncIterator[Refund]:
        filters = {"payment_intent": payment_intent_id} if payment_intent_id else {}
        listed = self._created_within(
            self._stripe.refunds, created_from, created_until, filters=filters
        )
        return (Refund.from_stripe(obj) async for obj in listed)

    def list_payouts(
        self, account_id: str, created_from: datetime, created_until: datetime
    ) -> AsyncIterator[Payout]:
        listed = self._created_within(
            self._stripe.payouts, created_from, created_until, {"stripe_account": account_id}
        )
        return (Payout.from_stripe(obj, account_id) async for obj in listed)

    async def _created_within(
        self,
        resource: Any,
        created_from: datetime,
        created_until: datetime,
        options: dict[str, Any] | None = None,
        filters: dict[str, str] | None = None,
    ) -> AsyncIterator[dict[str, Any]]:
        """Every object of a list endpoint created in [from, until) and matching
        `filters` (the endpoint's own parameters), page after page."""
        with _translated_errors():
            page = await resource.list_async(
                {
                    "created": {"gte": _seconds(created_from), "lt": _seconds(created_until)},
                    "limit": self._page_size,
                    **(filters or {}),
                },
                options or {},
            )
            async for obj in page.auto_paging_iter():
                yield obj.to_dict()

    def parse_event(self, payload: bytes, signature_header: str) -> GatewayEvent:
        return parse_event(payload, signature_header, self._webhook_secret)

    async def aclose(self) -> None:
        await self._http.close_async()  # type: ignore[no-untyped-call]  # untyped in the SDK
