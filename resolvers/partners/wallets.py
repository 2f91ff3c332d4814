"""Partner wallets: creating, reading, listing, changing, freezing and closing them.

Every use case acts for one partner (`PartnerAccess`, checked by the caller) and sees only
its wallets: another partner's id is NOT_FOUND, as an unknown one is. Status changes go
through `transition` with the PARTNER_WALLET lifecycle (documents/lifecycles.py), so a
freeze or close racing a movement of money (which holds the wallet, resolvers/partners/
postings.py) leaves exactly one winner.

A wallet is closed only empty, with no credit or withdrawal still under way, and closing
is conditional on the `version` it checked: money that arrived or left after the check
makes the close fail rather than shut a wallet that holds something.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from bson import ObjectId
from pymongo import ReturnDocument
from pymongo.errors import DuplicateKeyError

from documents.clock import utcnow
from documents.errors import DomainError, ErrorCode
from documents.lifecycles import PARTNER_WALLET, Party
from documents.partners.transactions import PartnerTransaction, TransactionStatus
from documents.partners.wallets import PartnerWallet, WalletStatus
from documents.payments.currencies import CHARGEABLE_CURRENCIES
from documents.payments.ledger_accounts import partner_wallet
from resolvers.common.inputs import KEEP, Keep, given_fields, if_given
from resolvers.common.pagination import Page, PageRequest, paginate
from resolvers.common.services import Services
from resolvers.common.transitions import Subject, transition
from resolvers.common.unit_of_work import UnitOfWork, transact
from resolvers.common.validation import Checked
from resolvers.partners.keys import PartnerAccess
from resolvers.partners.metadata import checked_metadata
from resolvers.partners.wallet_lookup import not_found, wallet_of
from resolvers.payments import ledger

WALLET_SUBJECT = Subject("wallet", "walletId")
MAX_EXTERNAL_ID_LENGTH = 255
MAX_WALLET_NAME_LENGTH = 100
CLEARING_PREFIX = "clearing-"
"""External wallet ids starting so are the partner's clearing wallets', made by gigql."""
NEWEST_FIRST = [("created_at", -1), ("_id", -1)]
_UNDER_WAY = [TransactionStatus.PENDING.value, TransactionStatus.PROCESSING.value]


@dataclass(frozen=True, slots=True)
class WalletFilter:
    external_user_id: str | None = None
    status: WalletStatus | None = None
    currency: str | None = None


def _external_id(checked: Checked, value: str, field: str) -> str:
    return checked.required_text(value, field, min_length=1, max_length=MAX_EXTERNAL_ID_LENGTH)


def _name(checked: Checked, value: str) -> str:
    return checked.required_text(value, "name", min_length=1, max_length=MAX_WALLET_NAME_LENGTH)


def _currency(checked: Checked, value: str) -> str:
    code = value.strip().upper()
    if code not in CHARGEABLE_CURRENCIES:
        message = f"Unknown or unaccepted currency {value[:10]!r}; one of: "
        checked.fail(
            ErrorCode.INVALID_INPUT, message + ", ".join(CHARGEABLE_CURRENCIES), "currency"
        )
    return code


async def create_wallet(
    access: PartnerAccess,
    *,
    external_user_id: str,
    external_wallet_id: str,
    name: str,
    currency: str,
    metadata: object,
) -> PartnerWallet:
    """A new active, empty wallet; ALREADY_EXISTS on `externalWalletId` if the partner has
    one with that id (the unique index decides between racing requests)."""
    checked = Checked()
    user_id = _external_id(checked, external_user_id, "externalUserId")
    wallet_id = _external_id(checked, external_wallet_id, "externalWalletId")
    if wallet_id.lower().startswith(CLEARING_PREFIX):
        message = f"External wallet ids starting with {CLEARING_PREFIX!r} are gigql's own."
        checked.fail(ErrorCode.INVALID_INPUT, message, "externalWalletId")
    wallet = PartnerWallet(
        partner_id=access.partner_id,
        external_user_id=user_id,
        external_wallet_id=wallet_id,
        name=_name(checked, name),
        currency=_currency(checked, currency),
        metadata=checked_metadata(checked, metadata),
    )
    checked.raise_if_any()
    try:
        await wallet.insert()
    except DuplicateKeyError as error:
        raise DomainError(
            ErrorCode.ALREADY_EXISTS,
            f"There is a wallet with the external id {wallet_id!r} already.",
            "externalWalletId",
        ) from error
    return wallet


async def get_wallet(access: PartnerAccess, wallet_id: ObjectId) -> PartnerWallet:
    return await wallet_of(access.partner_id, wallet_id, "id")


async def wallet_by_external_id(access: PartnerAccess, external_wallet_id: str) -> PartnerWallet:
    wallet = await PartnerWallet.find_one(
        {"partner_id": access.partner_id, "external_wallet_id": external_wallet_id}
    )
    if wallet is None:
        raise not_found("externalWalletId")
    return wallet


async def list_wallets(
    partner_id: ObjectId, filter: WalletFilter, request: PageRequest
) -> Page[PartnerWallet]:
    """The partner's wallets matching `filter`, newest first."""
    query: dict[str, Any] = {"partner_id": partner_id}
    if filter.external_user_id is not None:
        query["external_user_id"] = filter.external_user_id
    if filter.status is not None:
        query["status"] = filter.status.value
    if filter.currency is not None:
        query["currency"] = filter.currency.strip().upper()
    return await paginate(PartnerWallet, query, NEWEST_FIRST, request)


async def update_wallet(
    access: PartnerAccess,
    wallet_id: ObjectId,
    *,
    name: str | Keep = KEEP,
    metadata: object | Keep = KEEP,
) -> PartnerWallet:
    """A wallet's name and metadata (metadata is replaced whole); a closed wallet stays as
    it was closed (INVALID_STATE)."""
    checked = Checked()
    changes = given_fields(
        name=if_given(name, lambda n: _name(checked, n)),
        metadata=if_given(metadata, lambda m: checked_metadata(checked, m)),
    )
    checked.raise_if_any()
    raw = await PartnerWallet.get_pymongo_collection().find_one_and_update(
        {
            "_id": wallet_id,
            "partner_id": access.partner_id,
            "status": {"$ne": WalletStatus.CLOSED.value},
        },
        {"$set": {**changes, "updated_at": utcnow()}},
        return_document=ReturnDocument.AFTER,
    )
    if raw is None:
        wallet = await wallet_of(access.partner_id, wallet_id, "walletId")
        raise DomainError(
            ErrorCode.INVALID_STATE,
            f"The wallet is {wallet.status.value}; a closed wallet cannot be changed.",
            "walletId",
        )
    updated: PartnerWallet = PartnerWallet.model_validate(raw)
    return updated


async def set_frozen(
    services: Services, access: PartnerAccess, wallet_id: ObjectId, *, frozen: bool
) -> PartnerWallet:
    """Freeze a wallet (it neither sends nor receives money) or unfreeze it."""

    async def work(unit: UnitOfWork) -> PartnerWallet:
        wallet = await wallet_of(access.partner_id, wallet_id, "walletId", session=unit.session)
        move = "freeze" if frozen else "unfreeze"
        return await transition(
            unit, services, PARTNER_WALLET, move, wallet, Party.PARTNER, WALLET_SUBJECT
        )

    return await transact(services, work)


async def close_wallet(
    services: Services, access: PartnerAccess, wallet_id: ObjectId
) -> PartnerWallet:
    """Close an empty wallet with nothing under way, for good."""

    async def work(unit: UnitOfWork) -> PartnerWallet:
        session = unit.session
        wallet = await wallet_of(access.partner_id, wallet_id, "walletId", session=session)
        assert wallet.id is not None
        if wallet.clearing:
            raise _cannot_close("it is the partner's clearing wallet, which debits pay into")
        held = await ledger.balance(partner_wallet(wallet.id), wallet.currency, session)
        if held.amount != 0:
            raise _cannot_close(f"it holds {held}; move or withdraw it first")
        under_way = await PartnerTransaction.find_one(
            {
                "partner_id": access.partner_id,
                "$or": [{"from_wallet_id": wallet.id}, {"to_wallet_id": wallet.id}],
                "status": {"$in": _UNDER_WAY},
            },
            session=session,
        )
        if under_way is not None:
            raise _cannot_close("a credit or withdrawal of it is still under way")
        # Closing only the wallet as checked: any movement since bumped its version.
        unchanged = await PartnerWallet.get_pymongo_collection().update_one(
            {"_id": wallet.id, "version": wallet.version},
            {"$inc": {"version": 1}},
            session=session,
        )
        if unchanged.matched_count == 0:
            raise _cannot_close("its money moved while it was being closed; try again")
        return await transition(
            unit, services, PARTNER_WALLET, "close", wallet, Party.PARTNER, WALLET_SUBJECT
        )

    return await transact(services, work)


def _cannot_close(why: str) -> DomainError:
    return DomainError(ErrorCode.INVALID_STATE, f"The wallet cannot be closed: {why}.", "walletId")
