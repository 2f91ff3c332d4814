"""The payment gateway: what gigql asks of Stripe, and what it keeps of the answers.

Results are small frozen records of ids, status strings (Stripe's own words), amounts in
minor units and upper-case ISO currency codes; we store nothing else of Stripe's objects.
Each is read from an object in Stripe's JSON shape (`from_stripe`), so the Stripe gateway
and the sandbox, which keeps its objects in those shapes, share one reading.

Every method that makes something takes the caller's `idempotency_key`, derived from our
own ids: a retry after a timeout returns the first result instead of paying twice.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

StripeObject = Mapping[str, Any]


def _time(seconds: int) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


def _ref(value: str | StripeObject) -> str:
    """The id in a reference, which `expand` may have turned into the object itself."""
    return value if isinstance(value, str) else str(value["id"])


def _optional_ref(value: str | StripeObject | None) -> str | None:
    return None if value is None else _ref(value)


def _metadata(obj: StripeObject) -> dict[str, str]:
    return dict(obj.get("metadata") or {})


@dataclass(frozen=True, slots=True)
class PaymentIntent:
    id: str
    status: str
    """requires_payment_method, requires_confirmation, requires_action, processing,
    requires_capture, succeeded or canceled."""
    amount: int
    currency: str
    client_secret: str | None
    """For the payer's app only: it confirms the payment with it."""
    capture_manually: bool
    transfer_group: str | None
    latest_charge_id: str | None
    failure_code: str | None
    """Why the last attempt failed (`card_declined`, ...); the intent then again
    requires a payment method."""
    metadata: Mapping[str, str]
    created: datetime

    @classmethod
    def from_stripe(cls, obj: StripeObject) -> PaymentIntent:
        error = obj.get("last_payment_error") or {}
        return cls(
            id=obj["id"],
            status=obj["status"],
            amount=obj["amount"],
            currency=obj["currency"].upper(),
            client_secret=obj.get("client_secret"),
            capture_manually=obj.get("capture_method") == "manual",
            transfer_group=obj.get("transfer_group"),
            latest_charge_id=_optional_ref(obj.get("latest_charge")),
            failure_code=error.get("code"),
            metadata=_metadata(obj),
            created=_time(obj["created"]),
        )


@dataclass(frozen=True, slots=True)
class Refund:
    id: str
    payment_intent_id: str | None
    amount: int
    currency: str
    status: str
    """pending, requires_action, succeeded, failed or canceled."""
    metadata: Mapping[str, str]
    created: datetime

    @classmethod
    def from_stripe(cls, obj: StripeObject) -> Refund:
        return cls(
            id=obj["id"],
            payment_intent_id=_optional_ref(obj.get("payment_intent")),
            amount=obj["amount"],
            currency=obj["currency"].upper(),
            status=obj["status"],
            metadata=_metadata(obj),
            created=_time(obj["created"]),
        )


@dataclass(frozen=True, slots=True)
class Transfer:
    id: str
    amount: int
    amount_reversed: int
    currency: str
    destination_account_id: str
    transfer_group: str | None
    metadata: Mapping[str, str]
    created: datetime

    @classmethod
    def from_stripe(cls, obj: StripeObject) -> Transfer:
        return cls(
            id=obj["id"],
            amount=obj["amount"],
            amount_reversed=obj.get("amount_reversed", 0),
            currency=obj["currency"].upper(),
            destination_account_id=_ref(obj["destination"]),
            transfer_group=obj.get("transfer_group"),
            metadata=_metadata(obj),
            created=_time(obj["created"]),
        )


@dataclass(frozen=True, slots=True)
class TransferReversal:
    id: str
    transfer_id: str
    amount: int
    currency: str
    created: datetime

    @classmethod
    def from_stripe(cls, obj: StripeObject) -> TransferReversal:
        return cls(
            id=obj["id"],
            transfer_id=_ref(obj["transfer"]),
            amount=obj["amount"],
            currency=obj["currency"].upper(),
            created=_time(obj["created"]),
        )


@dataclass(frozen=True, slots=True)
class ConnectedAccount:
    """A provider's Express account: only its id and these flags are ours to keep."""

    id: str
    payouts_enabled: bool
    charges_enabled: bool
    details_submitted: bool

    @classmethod
    def from_stripe(cls, obj: StripeObject) -> ConnectedAccount:
        return cls(
            id=obj["id"],
            payouts_enabled=bool(obj.get("payouts_enabled")),
            charges_enabled=bool(obj.get("charges_enabled")),
            details_submitted=bool(obj.get("details_submitted")),
        )


@dataclass(frozen=True, slots=True)
class OnboardingLink:
    """Single-use and short-lived: send the provider there at once, never store it."""

    url: str
    expires_at: datetime

    @classmethod
    def from_stripe(cls, obj: StripeObject) -> OnboardingLink:
        return cls(url=obj["url"], expires_at=_time(obj["expires_at"]))


@dataclass(frozen=True, slots=True)
class Payout:
    id: str
    account_id: str
    amount: int
    currency: str
    status: str
    """pending, in_transit, paid, failed or canceled."""
    failure_code: str | None
    metadata: Mapping[str, str]
    created: datetime

    @classmethod
    def from_stripe(cls, obj: StripeObject, account_id: str) -> Payout:
        """`account_id`: the connected account, which Stripe's payout does not name."""
        return cls(
            id=obj["id"],
            account_id=account_id,
            amount=obj["amount"],
            currency=obj["currency"].upper(),
            status=obj["status"],
            failure_code=obj.get("failure_code"),
            metadata=_metadata(obj),
            created=_time(obj["created"]),
        )


@dataclass(frozen=True, slots=True)
class VerificationSession:
    """A Stripe Identity check; we keep only its id and status."""

    id: str
    status: str
    """requires_input, processing, verified or canceled."""
    client_secret: str | None
    url: str | None
    last_error_code: str | None
    metadata: Mapping[str, str]

    @classmethod
    def from_stripe(cls, obj: StripeObject) -> VerificationSession:
        error = obj.get("last_error") or {}
        return cls(
            id=obj["id"],
            status=obj["status"],
            client_secret=obj.get("client_secret"),
            url=obj.get("url"),
            last_error_code=error.get("code"),
            metadata=_metadata(obj),
        )


@dataclass(frozen=True, slots=True)
class GatewayEvent:
    """A verified webhook event. `account` is the connected account it happened on."""

    id: str
    type: str
    created: datetime
    account: str | None
    data_object: dict[str, Any]

    @classmethod
    def from_stripe(cls, obj: StripeObject) -> GatewayEvent:
        return cls(
            id=obj["id"],
            type=obj["type"],
            created=_time(obj["created"]),
            account=obj.get("account"),
            data_object=dict(obj["data"]["object"]),
        )


class PaymentGateway(Protocol):
    """Separate charges and transfers: the payer pays the platform, which holds the funds
    (`transfer_group` = the deal) and later transfers the provider's share."""

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
        """Without `payment_method` the payer confirms with the client secret; with one
        (a card the payer's app tokenised), it is charged at once and a decline raises
        `CardDeclined`."""
        ...

    async def retrieve_payment_intent(self, payment_intent_id: str) -> PaymentIntent: ...

    async def capture_payment_intent(
        self, payment_intent_id: str, *, idempotency_key: str, amount: int | None = None
    ) -> PaymentIntent: ...

    async def cancel_payment_intent(
        self, payment_intent_id: str, *, idempotency_key: str
    ) -> PaymentIntent: ...

    async def refund(
        self,
        payment_intent_id: str,
        *,
        amount: int | None,
        metadata: Mapping[str, str],
        idempotency_key: str,
    ) -> Refund:
        """`amount` None refunds whatever is left."""
        ...

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
        """`source_charge_id` ties the transfer to the payer's charge, so that it can be
        made before that charge's funds are available on the platform."""
        ...

    async def reverse_transfer(
        self, transfer_id: str, *, amount: int | None, idempotency_key: str
    ) -> TransferReversal: ...

    async def create_connected_account(
        self, *, email: str, country: str, idempotency_key: str
    ) -> ConnectedAccount: ...

    async def create_onboarding_link(
        self, account_id: str, *, refresh_url: str, return_url: str
    ) -> OnboardingLink: ...

    async def retrieve_account(self, account_id: str) -> ConnectedAccount: ...

    async def create_payout(
        self,
        *,
        account_id: str,
        amount: int,
        currency: str,
        metadata: Mapping[str, str],
        idempotency_key: str,
    ) -> Payout:
        """From the connected account's balance to its bank account."""
        ...

    async def create_verification_session(
        self, *, metadata: Mapping[str, str], idempotency_key: str, return_url: str | None = None
    ) -> VerificationSession:
        """`return_url`: where the gateway's page sends the provider once they are done."""
        ...

    async def retrieve_verification_session(self, session_id: str) -> VerificationSession: ...

    def list_payment_intents(
        self, created_from: datetime, created_until: datetime
    ) -> AsyncIterator[PaymentIntent]:
        """Created in [from, until), to the second, newest first, every page."""
        ...

    def list_transfers(
        self, created_from: datetime, created_until: datetime, transfer_group: str | None = None
    ) -> AsyncIterator[Transfer]:
        """With `transfer_group`, only the transfers of that group (a deal's)."""
        ...

    def list_refunds(
        self,
        created_from: datetime,
        created_until: datetime,
        payment_intent_id: str | None = None,
    ) -> AsyncIterator[Refund]:
        """With `payment_intent_id`, only the refunds of that payment."""
        ...

    def list_payouts(
        self, account_id: str, created_from: datetime, created_until: datetime
    ) -> AsyncIterator[Payout]:
        """The payouts of one connected account."""
        ...

    def parse_event(self, payload: bytes, signature_header: str) -> GatewayEvent:
        """The event in a webhook body, once its `Stripe-Signature` checks out; raises
        `WebhookSignatureError` otherwise."""
        ...

    async def aclose(self) -> None: ...
