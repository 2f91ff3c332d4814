"""The escrow a change returns inside a transaction, made from the escrow the transaction
read rather than read back, is the escrow as stored."""

from __future__ import annotations

from typing import Any

from pymongo.asynchronous.client_session import AsyncClientSession

from documents.payments.escrow import Escrow, EscrowStatus
from documents.transactions import run_in_transaction
from resolvers.payments.escrow.escrows import change_escrow
from server.runtime import Runtime
from tests.payments.escrow.test_escrow_races import unpaid
from tests.support.graphql_client import GraphQLClient


async def changed_in_a_transaction(escrow: Escrow, **more: Any) -> Escrow:
    async def attempt(session: AsyncClientSession) -> Escrow:
        current = await Escrow.get(escrow.id, session=session)
        assert current is not None
        held = await change_escrow(
            session,
            {"_id": current.id, "status": current.status.value},
            EscrowStatus.HELD,
            note="payment received",
            event_id="evt_post_image",
            fields={
                "payment_intent_id": "pi_post_image",
                "captured": True,
                "requires_action": False,
            },
            read=current,
            **more,
        )
        assert held is not None
        return held

    changed: Escrow = await run_in_transaction(attempt)
    return changed


async def test_the_change_made_from_what_was_read_is_what_is_stored(
    client: GraphQLClient, runtime: Runtime
) -> None:
    _deal, escrow = await unpaid(client)

    returned = await changed_in_a_transaction(escrow)

    stored = await Escrow.get(escrow.id)
    assert stored is not None and stored.status is EscrowStatus.HELD
    assert returned.model_dump() == stored.model_dump()
    assert [change.event_id for change in returned.history][-1] == "evt_post_image"


async def test_an_update_it_cannot_apply_is_read_back(
    client: GraphQLClient, runtime: Runtime
) -> None:
    _deal, escrow = await unpaid(client)

    assert escrow.pay_by is not None
    returned = await changed_in_a_transaction(escrow, more={"$unset": {"pay_by": ""}})

    stored = await Escrow.get(escrow.id)
    assert stored is not None and stored.pay_by is None
    assert returned.model_dump() == stored.model_dump()
