"""Mutations on a task's milestones."""

from __future__ import annotations

from typing import TypeVar

import strawberry
from strawberry import relay

from documents.marketplace.tasks import Task
from resolvers.marketplace import milestones
from schema.common.context import Info
from schema.common.payloads import Payload, mutation_payload
from schema.common.permissions import IsAuthenticated, allow
from schema.common.relay import decode_id
from schema.marketplace.milestones import MilestoneType
from schema.marketplace.tasks import TaskNode


@strawberry.input
class FundMilestoneInput:
    task_id: relay.GlobalID
    number: int


@strawberry.input
class ApproveMilestoneInput(FundMilestoneInput):
    pass


@strawberry.input
class SubmitMilestoneInput(FundMilestoneInput):
    note: str | None = None


@strawberry.input
class RequestMilestoneChangesInput(FundMilestoneInput):
    reason: str


@strawberry.type
class MilestonePayload(Payload):
    task: TaskNode | None = None
    milestone: MilestoneType | None = None


@strawberry.type
class FundMilestonePayload(MilestonePayload):
    pass


@strawberry.type
class SubmitMilestonePayload(MilestonePayload):
    pass


@strawberry.type
class ApproveMilestonePayload(MilestonePayload):
    pass


@strawberry.type
class RequestMilestoneChangesPayload(MilestonePayload):
    pass


P = TypeVar("P", bound=MilestonePayload)


def _payload(payload: type[P], task: Task, number: int) -> P:
    milestone = task.milestone(number)
    assert task.id is not None and milestone is not None
    return payload(task=TaskNode.of(task), milestone=MilestoneType.of(task, milestone))


@strawberry.type
class MilestoneMutation:
    @strawberry.mutation(
        extensions=allow(IsAuthenticated()),
        description="Poster: start paying for a milestone; pay with its escrow's clientSecret. "
        "Repeating it is harmless.",
    )
    @mutation_payload
    async def fund_milestone(self, info: Info, input: FundMilestoneInput) -> FundMilestonePayload:
        viewer = await info.context.require_viewer()
        task = await milestones.fund_milestone(
            info.context.services,
            viewer,
            decode_id(input.task_id, TaskNode, "taskId"),
            input.number,
        )
        return _payload(FundMilestonePayload, task, input.number)

    @strawberry.mutation(
        extensions=allow(IsAuthenticated()),
        description="Tasker: hand in a paid milestone's work (in order); the last submits the "
        "task. Released automatically unless the poster answers in time.",
    )
    @mutation_payload
    async def submit_milestone(
        self, info: Info, input: SubmitMilestoneInput
    ) -> SubmitMilestonePayload:
        viewer = await info.context.require_viewer()
        task = await milestones.submit_milestone(
            info.context.services,
            viewer,
            decode_id(input.task_id, TaskNode, "taskId"),
            input.number,
            input.note,
        )
        return _payload(SubmitMilestonePayload, task, input.number)

    @strawberry.mutation(
        extensions=allow(IsAuthenticated()),
        description="Poster: accept a milestone handed in; its payment is released to the "
        "tasker, and the last completes the task.",
    )
    @mutation_payload
    async def approve_milestone(
        self, info: Info, input: ApproveMilestoneInput
    ) -> ApproveMilestonePayload:
        viewer = await info.context.require_viewer()
        task = await milestones.approve_milestone(
            info.context.services,
            viewer,
            decode_id(input.task_id, TaskNode, "taskId"),
            input.number,
        )
        return _payload(ApproveMilestonePayload, task, input.number)

    @strawberry.mutation(
        extensions=allow(IsAuthenticated()),
        description="Poster: send a milestone handed in back for changes.",
    )
    @mutation_payload
    async def request_milestone_changes(
        self, info: Info, input: RequestMilestoneChangesInput
    ) -> RequestMilestoneChangesPayload:
        viewer = await info.context.require_viewer()
        task = await milestones.request_milestone_changes(
            info.context.services,
            viewer,
            decode_id(input.task_id, TaskNode, "taskId"),
            input.number,
            input.reason,
        )
        return _payload(RequestMilestoneChangesPayload, task, input.number)
