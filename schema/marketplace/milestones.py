"""A task's milestones as the graph shows them, to the poster, the tasker and admins."""

from __future__ import annotations

from datetime import datetime

import strawberry
from bson import ObjectId

from documents.marketplace.tasks import Milestone, MilestoneStatus, Task
from documents.payments.escrow import milestone_deal
from resolvers.marketplace.milestones import MilestoneInput
from schema.common.context import Info
from schema.common.copying import copied
from schema.common.values import MoneyInputType, MoneyType
from schema.payments.escrow import EscrowNode, escrow_of

MilestoneStatusType = strawberry.enum(MilestoneStatus, name="MilestoneStatus")


@strawberry.type(
    name="Milestone",
    description="A part of a task funded and paid on its own, through its own escrow.",
)
class MilestoneType:
    number: int = strawberry.field(description="1, 2, 3... in the order the work is done.")
    title: str
    amount: MoneyType
    status: MilestoneStatus
    note: str | None = strawberry.field(
        description="The tasker's note on handing it in, or the poster's on sending it back."
    )
    submitted_at: datetime | None
    approved_at: datetime | None
    task_id: strawberry.Private[ObjectId]
    deal: strawberry.Private[str]

    @classmethod
    def of(cls, task: Task, milestone: Milestone) -> MilestoneType:
        assert task.id is not None
        return copied(
            cls,
            milestone,
            amount=MoneyType.of(milestone.amount),
            task_id=task.id,
            deal=milestone_deal(task.id, milestone.number, task.deal_round),
        )

    @strawberry.field(
        description="Its payment, once the poster started funding it (fundMilestone): "
        "its clientSecret is what the poster pays with."
    )
    async def escrow(self, info: Info) -> EscrowNode | None:
        return await escrow_of(info, self.deal)


@strawberry.input(name="MilestoneInput")
class MilestoneInputType:
    title: str
    amount: MoneyInputType = strawberry.field(description="In the offer's currency.")

    def value(self) -> MilestoneInput:
        return MilestoneInput(title=self.title, amount=self.amount.value())
