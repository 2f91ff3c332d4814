"""Withdrawals: paying a provider's wallet out from their connected account to their bank.

Three steps, never a gateway call inside a transaction (documents/payments/payouts.py has the
states):
1. One transaction inserts the withdrawal and moves its amount from the wallet to
   `payout_in_flight`. The ledger's guard refuses a movement the wallet cannot cover,
   so however many requests race, the wallet is never overdrawn (INSUFFICIENT_FUNDS,
   and nothing is written).
2. The gateway payout, keyed `withdrawal:<id>:payout`.
3. A conditional update records the payout's id. A permanent refusal instead fails the
   withdrawal and moves the money back to the wallet.
If the gateway did not answer, or the process died between 1 and 3, `retry_unsent_payouts`
(a background job) repeats step 2 with the same key, which gives the same payout, never a
second one (after the gateway's idempotency window, resolvers/payments/late_retries.py first looks
for it there). The payout's `payout.paid` and `payout.failed` events settle it, in any
order and any number of times: each settlement is a conditional status update together
with its ledger posting, keyed by the withdrawal. An event must be of the connected
account, amount and currency of the withdrawal, and of the payout we recorded; one that
arrives before the payout's id was recorded (a crash between 2 and 3) records it, if
everything else matches. Else it is rejected (EventMismatch) and changes nothing.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from beanie import PydanticObjectId
from bson import ObjectId
from pymongo import ReturnDocument

from documents.accounts.profiles import ProviderProfile
from documents.accounts.users import Role
from documents.clock import utcnow
from documents.errors import DomainError, ErrorCode
from documents.events import EventKind
from documents.payments import ledger_accounts
from documents.payments.ledger import MovementKind, Ref, transfer
from documents.payments.payouts import Withdrawal, WithdrawalStatus
from integrations.payments.errors import GatewayError
from integrations.payments.gateway import GatewayEvent, Payout
from resolvers.accounts.auth.viewer import Viewer, require_role
from resolvers.common.inputs import MoneyInput
from resolvers.common.pagination import Page, PageRequest, paginate
from resolvers.common.services import Services
from resolvers.common.unit_of_work import UnitOfWork, transact
from resolvers.common.validation import Checked
from resolvers.payments import ledger
from resolvers.payments.late_retries import is_late, late_key, made_payout
from resolvers.payments.webhooks.checks import Comparison

log = logging.getLogger(__name__)

REFUSED = "payout_refused"
"""The failure code of a payout the gateway refused without giving one."""


def payout_key(withdrawal_id: ObjectId) -> str:
    return f"withdrawal:{withdrawal_id}:payout"


def _ledger_key(withdrawal_id: ObjectId, step: str) -> str:
    return f"withdrawal:{withdrawal_id}:{step}"


async def request_withdrawal(services: Services, viewer: Viewer, amount: MoneyInput) -> Withdrawal:
    require_role(viewer, Role.TASKER, "withdraw money")
    checked = Checked()
    money = checked.money(amount.amount, amount.currency, "amount")
    checked.raise_if_any()
    provider_id = viewer.user_id
    profile = await ProviderProfile.get(PydanticObjectId(provider_id))
    if profile is None or profile.stripe_account_id is None or not profile.payouts_enabled:
        raise DomainError(
            ErrorCode.PAYOUTS_NOT_ENABLED,
            "Finish setting up your payout account before withdrawing.",
        )
    wallet = ledger_accounts.wallet(provider_id)
    if not any(
        b.account == wallet and b.money.currency == money.currency
        for b in await ledger.balances_of(provider_id)
    ):
        raise DomainError(
            ErrorCode.INVALID_INPUT, f"Your wallet holds no {money.currency}.", "amount"
        )
    # The id is fixed before the transaction: a retried transaction posts the same key.
    withdrawal = Withdrawal(
        id=PydanticObjectId(),
        provider_id=provider_id,
        account_id=profile.stripe_account_id,
        amount=money,
    )
    assert withdrawal.id is not None
    withdrawal_id = withdrawal.id

    async def work(unit: UnitOfWork) -> None:
        await withdrawal.insert(session=unit.session)
        await ledger.post(
            unit.session,
            key=_ledger_key(withdrawal_id, "request"),
            kind=MovementKind.PAYOUT_REQUESTED,
            entries=transfer(wallet, ledger_accounts.payout_in_flight(provider_id), money),
            refs={Ref.PAYOUT: withdrawal_id},
            memo="Withdrawal to the provider's bank",
        )
        unit.emit(
            EventKind.PAYOUT_REQUESTED,
            actor_id=provider_id,
            audience=[provider_id],
            title=f"Withdrawal of {money} requested",
            withdrawal_id=withdrawal_id,
            amount=money,
        )

    await transact(services, work)
    return await send_payout(services, withdrawal)


async def send_payout(services: Services, withdrawal: Withdrawal) -> Withdrawal:
    """Make the withdrawal's gateway payout (again, with the same key) and record it."""
    assert withdrawal.id is not None
    key = payout_key(withdrawal.id)
    if is_late(services, withdrawal.requested_at):
        try:
            made = await made_payout(services.payments, withdrawal)
        except GatewayError as error:
            log.warning("payouts of withdrawal %s not listed: %s", withdrawal.id, error)
            return withdrawal
        if made is not None:
            return await _record_sent(withdrawal, made)
        key = late_key(key)
    try:
        payout = await services.payments.create_payout(
            account_id=withdrawal.account_id,
            amount=withdrawal.amount.amount,
            currency=withdrawal.amount.currency,
            metadata={
                "withdrawal_id": str(withdrawal.id),
                "provider_id": str(withdrawal.provider_id),
            },
            idempotency_key=key,
        )
    except GatewayError as error:
        if error.retryable:
            log.warning("payout of withdrawal %s not made yet: %s", withdrawal.id, error)
            return withdrawal
        log.warning("payout of withdrawal %s refused: %s", withdrawal.id, error)
        return await fail(services, withdrawal.id, error.code or REFUSED) or withdrawal
    return await _record_sent(withdrawal, payout)


async def _record_sent(withdrawal: Withdrawal, payout: Payout) -> Withdrawal:
    """Step 3: the payout's id, once; the withdrawal as it is now."""
    raw = await Withdrawal.get_pymongo_collection().find_one_and_update(
        {"_id": withdrawal.id, "status": WithdrawalStatus.REQUESTED.value, "payout_id": None},
        {
            "$set": {
                "payout_id": payout.id,
                "status": WithdrawalStatus.IN_TRANSIT.value,
                "updated_at": utcnow(),
            }
        },
        return_document=ReturnDocument.AFTER,
    )
    if raw is None:  # recorded by a concurrent retry, or settled already
        current: Withdrawal | None = await Withdrawal.get(withdrawal.id)
        return current or withdrawal
    recorded: Withdrawal = Withdrawal.model_validate(raw)
    return recorded


async def retry_unsent_payouts(
    services: Services, older_than: timedelta | None = None, limit: int = 100
) -> int:
    """Repeat the payout of withdrawals left without one; how many were tried.

    Only those requested at least `older_than` (by default the job's interval) ago, so
    that a request still on its way to the gateway is normally left to finish.
    """
    cutoff = utcnow() - (
        services.settings.payout_retry_interval if older_than is None else older_than
    )
    due = (
        await Withdrawal.find(
            {
                "status": WithdrawalStatus.REQUESTED.value,
                "payout_id": None,
                "requested_at": {"$lte": cutoff},
            }
        )
        .sort("requested_at")
        .limit(limit)
        .to_list()
    )
    for withdrawal in due:
        await send_payout(services, withdrawal)
    return len(due)


async def fail(services: Services, withdrawal_id: ObjectId, code: str) -> Withdrawal | None:
    """The payout failed (or was refused): the money goes back to the wallet, once.
    None if the withdrawal had already failed."""

    async def work(unit: UnitOfWork) -> Withdrawal | None:
        before = await _move(unit, withdrawal_id, _UNFAILED, WithdrawalStatus.FAILED, code)
        if before is None:
            return None
        provider_id = before.provider_id
        # A bank may return a payout after it was reported paid.
        source = (
            ledger_accounts.paid_out(provider_id)
            if before.status is WithdrawalStatus.PAID
            else ledger_accounts.payout_in_flight(provider_id)
        )
        await ledger.post(
            unit.session,
            key=_ledger_key(withdrawal_id, "return"),
            kind=MovementKind.PAYOUT_FAILED,
            entries=transfer(source, ledger_accounts.wallet(provider_id), before.amount),
            refs={Ref.PAYOUT: withdrawal_id},
            memo=f"Payout failed ({code}): back to the wallet",
        )
        unit.emit(
            EventKind.PAYOUT_FAILED,
            actor_id=None,
            audience=[provider_id],
            title=f"Your withdrawal of {before.amount} failed; the money is back in your wallet",
            withdrawal_id=withdrawal_id,
            amount=before.amount,
            failure_code=code,
        )
        return await Withdrawal.get(PydanticObjectId(withdrawal_id), session=unit.session)

    return await transact(services, work)


async def _paid(services: Services, withdrawal_id: ObjectId) -> None:
    async def work(unit: UnitOfWork) -> None:
        before = await _move(
            unit, withdrawal_id, (WithdrawalStatus.IN_TRANSIT,), WithdrawalStatus.PAID
        )
        if before is None:
            return  # paid already, or failed (its failure came first)
        provider_id = before.provider_id
        await ledger.post(
            unit.session,
            key=_ledger_key(withdrawal_id, "paid"),
            kind=MovementKind.PAYOUT_PAID,
            entries=transfer(
                ledger_accounts.payout_in_flight(provider_id),
                ledger_accounts.paid_out(provider_id),
                before.amount,
            ),
            refs={Ref.PAYOUT: withdrawal_id},
            memo="Paid to the provider's bank",
        )
        unit.emit(
            EventKind.PAYOUT_PAID,
            actor_id=None,
            audience=[provider_id],
            title=f"Your withdrawal of {before.amount} was paid to your bank",
            withdrawal_id=withdrawal_id,
            amount=before.amount,
        )

    await transact(services, work)


_UNFAILED = (WithdrawalStatus.REQUESTED, WithdrawalStatus.IN_TRANSIT, WithdrawalStatus.PAID)


async def _move(
    unit: UnitOfWork,
    withdrawal_id: ObjectId,
    sources: tuple[WithdrawalStatus, ...],
    target: WithdrawalStatus,
    failure_code: str | None = None,
) -> Withdrawal | None:
    """Move the withdrawal to `target` if it is in one of `sources`; it as it was, or None."""
    raw = await Withdrawal.get_pymongo_collection().find_one_and_update(
        {"_id": withdrawal_id, "status": {"$in": [s.value for s in sources]}},
        {"$set": {"status": target.value, "failure_code": failure_code, "updated_at": utcnow()}},
        return_document=ReturnDocument.BEFORE,
        session=unit.session,
    )
    return None if raw is None else Withdrawal.model_validate(raw)


async def payout_paid(services: Services, event: GatewayEvent) -> None:
    """Webhook `payout.paid`."""
    withdrawal = await _withdrawal_paid_out_by(event)
    if withdrawal is not None:
        assert withdrawal.id is not None
        await _paid(services, withdrawal.id)


async def payout_failed(services: Services, event: GatewayEvent) -> None:
    """Webhook `payout.failed`."""
    withdrawal = await _withdrawal_paid_out_by(event)
    if withdrawal is not None:
        assert withdrawal.id is not None
        code = event.data_object.get("failure_code") or REFUSED
        await fail(services, withdrawal.id, code)


async def _withdrawal_paid_out_by(event: GatewayEvent) -> Withdrawal | None:
    """The withdrawal a payout event is about (by the payout's metadata), checked against
    the event, with the payout's id recorded; None if it is not one of ours."""
    payout = Payout.from_stripe(event.data_object, event.account or "")
    withdrawal_id = payout.metadata.get("withdrawal_id", "")
    withdrawal = (
        await Withdrawal.get(PydanticObjectId(withdrawal_id))
        if ObjectId.is_valid(withdrawal_id)
        else None
    )
    if withdrawal is None:
        # Not made by a withdrawal: a payout the account's own schedule made, say.
        log.info("%s %s: payout %s is not a withdrawal's", event.type, event.id, payout.id)
        return None
    _check_payout(event, withdrawal, payout)
    if withdrawal.payout_id is None:
        # Made, but the process died before recording it: everything else matches.
        withdrawal = await _record_sent(withdrawal, payout)
        _check_payout(event, withdrawal, payout)  # unless another payout was recorded meanwhile
    return withdrawal


def _check_payout(event: GatewayEvent, withdrawal: Withdrawal, payout: Payout) -> None:
    comparison = Comparison(event)
    comparison.on_account(withdrawal.account_id)
    comparison.same_money(withdrawal.amount, payout.amount, payout.currency)
    comparison.our_links({"provider_id": str(withdrawal.provider_id)}, payout.metadata)
    if withdrawal.payout_id is not None:
        comparison.same("payout", withdrawal.payout_id, payout.id)
    elif withdrawal.status is not WithdrawalStatus.REQUESTED:
        # Failed when the gateway refused to make a payout: there is none to hear of.
        refused = f"none (the withdrawal is {withdrawal.status.value})"
        comparison.differ("payout", refused, payout.id)
    comparison.settle()


async def withdrawals_of(provider_id: ObjectId, request: PageRequest) -> Page[Withdrawal]:
    """The provider's withdrawals, newest first."""
    order = [("requested_at", -1), ("_id", -1)]
    return await paginate(Withdrawal, {"provider_id": provider_id}, order, request)
