"""The partner graph's wallets: reading and listing them (READ_WALLETS), creating,
changing, freezing, unfreezing and closing them (MOVE_MONEY)."""

from __future__ import annotations

from typing import TypeVar, cast

import strawberry
from bson import ObjectId
from strawberry import relay
from strawberry.scalars import JSON

from documents.partners.api_keys import ApiScope
from documents.partners.wallets import PartnerWallet, WalletStatus
from resolvers.partners import wallets
from schema.common.context import Info
from schema.common.payloads import Payload, input_mutation, mutation_payload
from schema.common.relay import decode_id, requested_page, to_connection
from schema.common.values import given
from schema.partners.context import PartnerInfo
from schema.partners.types import PartnerWalletConnection, PartnerWalletNode


@strawberry.input(description="Wallets matching every field given.")
class PartnerWalletFilter:
    external_user_id: str | None = None
    status: WalletStatus | None = None
    currency: str | None = None


@strawberry.type
class PartnerWalletQuery:
    @strawberry.field(description="One of my wallets (NOT_FOUND if it is not one).")
    async def wallet(self, info: PartnerInfo, id: relay.GlobalID) -> PartnerWalletNode:
        access = info.context.partner(ApiScope.READ_WALLETS)
        wallet = await wallets.get_wallet(access, decode_id(id, PartnerWalletNode, "id"))
        return PartnerWalletNode.of(wallet)

    @strawberry.field(description="One of my wallets by the id my app gave it.")
    async def wallet_by_external_id(
        self, info: PartnerInfo, external_wallet_id: str
    ) -> PartnerWalletNode:
        access = info.context.partner(ApiScope.READ_WALLETS)
        return PartnerWalletNode.of(await wallets.wallet_by_external_id(access, external_wallet_id))

    @strawberry.field(description="My wallets, newest first, clearing wallets included.")
    async def wallets(
        self,
        info: PartnerInfo,
        filter: PartnerWalletFilter | None = None,
        first: int | None = None,
        after: str | None = None,
    ) -> PartnerWalletConnection:
        access = info.context.partner(ApiScope.READ_WALLETS)
        return await wallets_of(cast("Info", info), access.partner_id, filter, first, after)


async def wallets_of(
    info: Info,
    partner_id: ObjectId,
    filter: PartnerWalletFilter | None,
    first: int | None,
    after: str | None,
) -> PartnerWalletConnection:
    """A partner's wallets, newest first: for the partner's key, and for admins."""
    given_filter = filter or PartnerWalletFilter()
    page = await wallets.list_wallets(
        partner_id,
        wallets.WalletFilter(
            external_user_id=given_filter.external_user_id,
            status=given_filter.status,
            currency=given_filter.currency,
        ),
        requested_page(info, first, after),
    )
    return to_connection(PartnerWalletConnection, page, PartnerWalletNode.of)


@strawberry.input
class CreateWalletInput:
    external_user_id: str = strawberry.field(description="My app's id of the wallet's user.")
    external_wallet_id: str = strawberry.field(
        description="My app's id of the wallet: unique among my wallets."
    )
    name: str
    currency: str = strawberry.field(description="ISO 4217 code, one the card gateway charges.")
    metadata: JSON | None = strawberry.field(
        default=None,
        description="My own data: an object of at most 50 keys (1 to 40 characters) whose "
        "values are strings (at most 500 characters), numbers or booleans.",
    )


@strawberry.input
class UpdateWalletInput:
    wallet_id: relay.GlobalID
    name: str | None = None
    metadata: JSON | None = strawberry.field(
        default=None, description="Replaces the stored metadata whole."
    )


@strawberry.input
class FreezeWalletInput:
    wallet_id: relay.GlobalID


@strawberry.input
class UnfreezeWalletInput:
    wallet_id: relay.GlobalID


@strawberry.input
class CloseWalletInput:
    wallet_id: relay.GlobalID


@strawberry.type
class PartnerWalletPayload(Payload):
    wallet: PartnerWalletNode | None = None


@strawberry.type
class CreateWalletPayload(PartnerWalletPayload):
    pass


@strawberry.type
class UpdateWalletPayload(PartnerWalletPayload):
    pass


@strawberry.type
class FreezeWalletPayload(PartnerWalletPayload):
    pass


@strawberry.type
class UnfreezeWalletPayload(PartnerWalletPayload):
    pass


@strawberry.type
class CloseWalletPayload(PartnerWalletPayload):
    pass


In = TypeVar("In", FreezeWalletInput, UnfreezeWalletInput, CloseWalletInput)
Out = TypeVar("Out", bound=PartnerWalletPayload)


def _status_change(
    input_type: type[In], payload_type: type[Out], move: str, description: str
) -> Out:
    """A mutation making one move of the wallet lifecycle: freeze, unfreeze or close."""

    async def run(info: PartnerInfo, input: In) -> Out:
        access = info.context.partner(ApiScope.MOVE_MONEY)
        wallet_id = decode_id(input.wallet_id, PartnerWalletNode, "walletId")
        services = info.context.services
        wallet: PartnerWallet
        if move == "close":
            wallet = await wallets.close_wallet(services, access, wallet_id)
        else:
            wallet = await wallets.set_frozen(services, access, wallet_id, frozen=move == "freeze")
        return payload_type(wallet=PartnerWalletNode.of(wallet))

    return input_mutation(input_type, payload_type, run, extensions=[], description=description)  # type: ignore[arg-type]


@strawberry.type
class PartnerWalletMutation:
    @strawberry.mutation(
        description="A wallet for one of my users (ALREADY_EXISTS on externalWalletId if I "
        "have one with that id)."
    )
    @mutation_payload
    async def create_wallet(
        self, info: PartnerInfo, input: CreateWalletInput
    ) -> CreateWalletPayload:
        access = info.context.partner(ApiScope.MOVE_MONEY)
        wallet = await wallets.create_wallet(
            access,
            external_user_id=input.external_user_id,
            external_wallet_id=input.external_wallet_id,
            name=input.name,
            currency=input.currency,
            metadata=input.metadata,
        )
        return CreateWalletPayload(wallet=PartnerWalletNode.of(wallet))

    @strawberry.mutation(description="Change a wallet's name or metadata.")
    @mutation_payload
    async def update_wallet(
        self, info: PartnerInfo, input: UpdateWalletInput
    ) -> UpdateWalletPayload:
        access = info.context.partner(ApiScope.MOVE_MONEY)
        wallet = await wallets.update_wallet(
            access,
            decode_id(input.wallet_id, PartnerWalletNode, "walletId"),
            name=given(input.name),
            metadata=given(input.metadata),
        )
        return UpdateWalletPayload(wallet=PartnerWalletNode.of(wallet))

    freeze_wallet = _status_change(
        FreezeWalletInput,
        FreezeWalletPayload,
        "freeze",
        "Freeze a wallet: until unfrozen it neither sends nor receives money (WALLET_FROZEN).",
    )
    unfreeze_wallet = _status_change(
        UnfreezeWalletInput,
        UnfreezeWalletPayload,
        "unfreeze",
        "Let a frozen wallet move money again.",
    )
    close_wallet = _status_change(
        CloseWalletInput,
        CloseWalletPayload,
        "close",
        "Close an empty wallet for good (INVALID_STATE while it holds money or a credit or "
        "withdrawal of it is under way).",
    )
