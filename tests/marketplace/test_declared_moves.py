"""Escrow and milestone statuses move only as their lifecycles declare: the functions
that write them refuse a move the declaration does not have, whoever calls them."""

from __future__ import annotations

import pytest

from documents.errors import DomainError, ErrorCode
from documents.lifecycles import Party
from documents.marketplace.tasks import MilestoneStatus, Task
from documents.payments.escrow import Escrow, EscrowStatus
from resolvers.common.unit_of_work import UnitOfWork, transact
from resolvers.payments.escrow.escrows import change_escrow
from resolvers.payments.escrow.milestones import move_milestone
from server.runtime import Runtime
from tests.marketplace.test_milestones import working
from tests.payments.escrow.test_disputes import paid_task
from tests.support.graphql_client import GraphQLClient
from tests.support.marketplace import object_id


async def fresh(escrow: Escrow) -> Escrow:
    stored = await Escrow.get(escrow.id)
    assert stored is not None
    return stored


async def test_an_escrow_is_not_moved_where_its_lifecycle_does_not_lead(
    client: GraphQLClient, runtime: Runtime
) -> None:
    _, escrow = await paid_task(client, runtime)  # HELD
    assert escrow.status is EscrowStatus.HELD

    async def write(status: EscrowStatus, by: Party = Party.SYSTEM) -> Escrow | None:
        return await change_escrow(None, {"_id": escrow.id}, status, note="test", by=by)

    # Held money is released through RELEASING, never marked released at once; it does
    # not go back to awaiting payment; only an admin keeps it for a chargeback.
    assert await write(EscrowStatus.RELEASED) is None
    assert await write(EscrowStatus.AWAITING_PAYMENT) is None
    assert await write(EscrowStatus.CHARGED_BACK) is None
    assert (await fresh(escrow)).status is EscrowStatus.HELD

    refunded = await write(EscrowStatus.REFUNDED)  # declared: `refund`
    assert refunded is not None and refunded.status is EscrowStatus.REFUNDED
    # Final: nothing moves it again, not even to itself.
    for status in EscrowStatus:
        assert await write(status, Party.ADMIN) is None, status
    stored = await fresh(escrow)
    assert stored.status is EscrowStatus.REFUNDED
    assert [change.status for change in stored.history][-1] is EscrowStatus.REFUNDED


async def test_a_milestone_moves_only_as_declared_and_by_its_party(
    client: GraphQLClient, runtime: Runtime
) -> None:
    deal = await working(client, runtime)  # milestone 1 paid, work started
    task_id = object_id(deal.task_id)

    async def step(number: int, move: str, party: Party) -> Task | None:
        async def work(unit: UnitOfWork) -> Task | None:
            task = await Task.get(task_id, session=unit.session)
            assert task is not None
            return await move_milestone(unit, runtime.services, task, number, move, party)

        return await transact(runtime.services, work)

    # The tasker cannot approve their own work; the poster cannot hand it in.
    with pytest.raises(DomainError) as refused:
        await step(1, "approve", Party.TASKER)
    assert refused.value.code is ErrorCode.FORBIDDEN
    with pytest.raises(DomainError) as refused:
        await step(1, "submit", Party.POSTER)
    assert refused.value.code is ErrorCode.FORBIDDEN
    # Work not handed in is not approved; a milestone not paid for is not handed in.
    assert await step(1, "approve", Party.POSTER) is None
    with pytest.raises(DomainError) as refused:
        await step(2, "submit", Party.TASKER)
    assert refused.value.code is ErrorCode.PAYMENT_REQUIRED

    submitted = await step(1, "submit", Party.TASKER)
    assert submitted is not None
    assert [m.status for m in submitted.milestones][:2] == [
        MilestoneStatus.SUBMITTED,
        MilestoneStatus.PENDING,
    ]
