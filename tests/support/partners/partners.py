"""An approved partner with an API key, its wallets and a completed card credit, made
directly as documents: where every partner test starts from but those of applying and
deciding (tests/support/partners/steps.py, over the main graph)."""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from beanie import PydanticObjectId
from bson import ObjectId

from documents.money import Money
from documents.partners.api_keys import ApiScope, KeyMode
from documents.partners.partners import Partner, PartnerFees, PartnerStatus
from documents.partners.transactions import PartnerTransaction, TransactionKind, TransactionStatus
from documents.partners.wallets import PartnerWallet
from resolvers.partners.keys import make_key
from resolvers.partners.webhooks.endpoints import add_endpoint

MONEY_SCOPES = (ApiScope.READ_WALLETS, ApiScope.MOVE_MONEY)


@dataclass(frozen=True)
class PartnerKey:
    partner: Partner
    key: str
    """The secret of its first API key."""

    @property
    def id(self) -> ObjectId:
        assert self.partner.id is not None
        return self.partner.id


async def approved_partner(
    name: str = "RoSaBank",
    *,
    credit_bp: int = 290,
    debit_bp: int = 0,
    transfer_bp: int = 0,
    withdrawal_bp: int = 0,
    scopes: tuple[ApiScope, ...] = MONEY_SCOPES,
    owner_id: ObjectId | None = None,
    endpoint: bool = False,
) -> PartnerKey:
    """An APPROVED partner with a key of `scopes`; with `endpoint`, its webhook URL is
    its first webhook endpoint, as approving makes it."""
    partner = Partner(
        owner_id=owner_id or ObjectId(),
        name=name,
        company_name=f"{name} Inc",
        contact_name="Jane Smith",
        contact_email="api@partner.example",
        business_type="Financial Services",
        webhook_url="https://api.partner.example/webhooks",
        status=PartnerStatus.APPROVED,
        fees=PartnerFees(
            credit_bp=credit_bp,
            debit_bp=debit_bp,
            transfer_bp=transfer_bp,
            withdrawal_bp=withdrawal_bp,
        ),
    )
    await partner.insert()
    assert partner.id is not None
    if endpoint:
        await add_endpoint(None, partner.id, partner.webhook_url)
    return PartnerKey(partner, await _new_key(partner, scopes))


async def key_of(partner: PartnerKey, scopes: tuple[ApiScope, ...] = MONEY_SCOPES) -> str:
    """Another key of the partner's; its secret."""
    return await _new_key(partner.partner, scopes)


async def _new_key(partner: Partner, scopes: tuple[ApiScope, ...]) -> str:
    assert partner.id is not None
    made = make_key(
        partner.id,
        mode=KeyMode.TEST,
        name="server",
        scopes=list(scopes),
        expires_at=None,
        created_by=partner.owner_id,
    )
    await made.key.insert()
    return made.secret


async def wallet_document(
    partner: PartnerKey, external_id: str | None = None, currency: str = "USD"
) -> PartnerWallet:
    """A wallet of the partner's (by default with an id of its own)."""
    external_id = external_id or f"wallet_{secrets.token_hex(4)}"
    wallet = PartnerWallet(
        partner_id=partner.id,
        external_user_id=f"user-{external_id}",
        external_wallet_id=external_id,
        name=f"Wallet {external_id}",
        currency=currency,
    )
    await wallet.insert()
    return wallet


def completed_credit(partner_id: ObjectId, wallet_id: ObjectId, money: Money) -> PartnerTransaction:
    """A card credit of `money` into the wallet as a confirmed payment leaves it, not
    stored yet."""
    return PartnerTransaction(
        id=PydanticObjectId(),
        partner_id=partner_id,
        idempotency_key=f"test-credit-{ObjectId()}",
        request_hash="test",
        kind=TransactionKind.CREDIT,
        status=TransactionStatus.COMPLETED,
        amount=money.amount,
        currency=money.currency,
        to_wallet_id=wallet_id,
    )
