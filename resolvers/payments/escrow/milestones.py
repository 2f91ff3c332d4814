"""A milestone's steps inside a transaction: opening its escrow, moving its status.

Each step is a conditional update of the task document itself, so steps on one task
(two approvals, two fundings, funding against a cancellation) conflict and run one
after the other: the second finds the first's result and does nothing, or fails.
"""

from __future__ import annotations

from typing import Any

from pymongo import ReturnDocument

from documents.clock import utcnow
from documents.lifecycles import MILESTONE, Party
from documents.marketplace.tasks import Task
from documents.payments.escrow import Escrow, milestone_deal
from resolvers.common.deal_guards import check_guards
from resolvers.common.services import Services
from resolvers.common.transitions import MILESTONE_SUBJECT, forbidden
from resolvers.common.unit_of_work import UnitOfWork
from resolvers.marketplace.deal_terms import DealTerms
from resolvers.payments.escrow.escrows import open_escrow
from resolvers.payments.fees import FeePolicy


def _where(number: int, **fields: Any) -> dict[str, Any]:
    """Milestone `number` having `fields`. (A path like `milestones.0.x` would not do: for
    null it also matches through elements that lack a field named "0".)"""
    return {"milestones": {"$elemMatch": {"number": number, **fields}}}


async def open_milestone_escrow(
    unit: UnitOfWork, terms: DealTerms, fees: FeePolicy, task: Task, number: int
) -> Escrow | None:
    """The milestone's escrow, awaiting the poster's payment; None if it has one already.
    Its fees are those of its own amount, so each escrow is exact in itself."""
    milestone = task.milestone(number)
    assert task.id is not None and task.assigned_tasker_id is not None and milestone is not None
    opened = await Task.get_pymongo_collection().update_one(
        {"_id": task.id, **_where(number, escrow_opened_at=None)},
        {"$set": {f"milestones.{number - 1}.escrow_opened_at": utcnow()}},
        session=unit.session,
    )
    if not opened.modified_count:
        return None
    return await open_escrow(
        unit,
        terms,
        fees,
        deal=milestone_deal(task.id, number, task.deal_round),
        payer_id=task.poster_id,
        provider_id=task.assigned_tasker_id,
        price=milestone.amount,
        task_id=task.id,
        offer_id=task.accepted_offer_id,
        milestone=number,
        # The first is the deal's first payment, due as an accepted offer's is; the poster
        # funds each later one as its work comes up.
        pay_by=utcnow() + terms.payment_deadline if number == 1 else None,
    )


async def move_milestone(
    unit: UnitOfWork,
    services: Services,
    task: Task,
    number: int,
    move_name: str,
    party: Party,
    **fields: Any,
) -> Task | None:
    """Milestone `number` of `task` (as read in this transaction) moved by `party` as its
    lifecycle (documents/lifecycles.py `MILESTONE`) declares `move_name`, setting `fields`
    on it: the task as it is after, or None if the milestone was in none of the move's
    source states. A party the move is not for is FORBIDDEN; an unmet guard raises its
    error."""
    move = MILESTONE[move_name]
    if party not in move.by:
        raise forbidden(move, MILESTONE_SUBJECT)
    milestone = task.milestone(number)
    assert task.id is not None and milestone is not None
    if milestone.status not in move.sources:
        return None
    deal = milestone_deal(task.id, number, task.deal_round)
    await check_guards(unit, services, MILESTONE, move, task, deal)
    at = f"milestones.{number - 1}"
    sources = [state.value for state in move.sources]
    raw = await Task.get_pymongo_collection().find_one_and_update(
        {"_id": task.id, **_where(number, status={"$in": sources})},
        {
            "$set": {
                f"{at}.status": move.target.value,
                **{f"{at}.{name}": value for name, value in fields.items()},
                "updated_at": utcnow(),
            }
        },
        return_document=ReturnDocument.AFTER,
        session=unit.session,
    )
    return None if raw is None else Task.model_validate(raw)
