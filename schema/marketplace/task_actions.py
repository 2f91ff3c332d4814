"""Mutations on tasks and offers."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Protocol, TypeVar

import strawberry
from strawberry import relay

from resolvers.common.inputs import KEEP
from resolvers.marketplace import offers, reopening, tasks
from schema.accounts.users import UserNode
from schema.common.context import Info
from schema.common.payloads import Payload, input_mutation, mutation_payload
from schema.common.permissions import IsAuthenticated, allow
from schema.common.relay import decode_id
from schema.common.values import MoneyInputType, PlaceInputType, given, given_as
from schema.marketplace.milestones import MilestoneInputType
from schema.marketplace.tasks import OfferNode, TaskNode


@strawberry.input
class PostTaskInput:
    title: str
    description: str
    category: str
    budget: MoneyInputType
    location: PlaceInputType = strawberry.field(
        description="Shown to others only as an area until the task is assigned."
    )
    due_at: datetime | None = strawberry.field(default=None, description="Omit when flexible.")
    image_urls: list[str] = strawberry.field(default_factory=list, description="https links.")


@strawberry.input
class UpdateTaskInput:
    task_id: relay.GlobalID
    title: str | None = strawberry.UNSET
    description: str | None = strawberry.UNSET
    category: str | None = strawberry.UNSET
    budget: MoneyInputType | None = strawberry.UNSET
    location: PlaceInputType | None = strawberry.UNSET
    due_at: datetime | None = strawberry.field(
        default=strawberry.UNSET, description="null makes the timing flexible."
    )
    image_urls: list[str] | None = strawberry.UNSET


@strawberry.type
class TaskPayload(Payload):
    task: TaskNode | None = None


@strawberry.type
class PostTaskPayload(TaskPayload):
    pass


@strawberry.type
class UpdateTaskPayload(TaskPayload):
    pass


# Each mutation has an input type of its own, so that each can grow on its own.
@strawberry.input
class StartTaskInput:
    task_id: relay.GlobalID


@strawberry.input
class CompleteTaskInput(StartTaskInput):
    pass


@strawberry.input
class SubmitTaskInput:
    task_id: relay.GlobalID
    note: str | None = None


@strawberry.input
class RequestChangesInput:
    task_id: relay.GlobalID
    reason: str


@strawberry.input
class CancelTaskInput(RequestChangesInput):
    pass


@strawberry.input
class StepBackFromTaskInput(RequestChangesInput):
    pass


@strawberry.type
class StartTaskPayload(TaskPayload):
    pass


@strawberry.type
class SubmitTaskPayload(TaskPayload):
    pass


@strawberry.type
class RequestChangesPayload(TaskPayload):
    pass


@strawberry.type
class CompleteTaskPayload(TaskPayload):
    pass


@strawberry.type
class CancelTaskPayload(TaskPayload):
    pass


@strawberry.type
class StepBackFromTaskPayload(TaskPayload):
    pass


@strawberry.input
class MakeOfferInput:
    task_id: relay.GlobalID
    amount: MoneyInputType
    message: str


@strawberry.input
class SendDirectOfferInput:
    task_id: relay.GlobalID
    tasker_id: relay.GlobalID
    amount: MoneyInputType
    message: str


@strawberry.input
class UpdateOfferInput:
    offer_id: relay.GlobalID
    amount: MoneyInputType | None = strawberry.UNSET
    message: str | None = strawberry.UNSET


@strawberry.input
class WithdrawOfferInput:
    offer_id: relay.GlobalID


@strawberry.input
class AcceptOfferInput(WithdrawOfferInput):
    expected_amount: MoneyInputType | None = strawberry.field(
        default=None,
        description="The amount the offer showed when it was accepted: if it changed since, "
        "OFFER_CHANGED and nothing is agreed. Send it: without it, whatever the offer says "
        "when the acceptance commits is agreed.",
    )
    milestones: list[MilestoneInputType] | None = strawberry.field(
        default=None,
        description="Poster: split the work into 2 to 20 parts adding up to the offer, each "
        "funded and paid on its own; the first is due now, each later one on fundMilestone.",
    )


@strawberry.input
class RejectOfferInput:
    offer_id: relay.GlobalID
    reason: str | None = None


@strawberry.type
class OfferPayload(Payload):
    offer: OfferNode | None = None


@strawberry.type
class MakeOfferPayload(OfferPayload):
    pass


@strawberry.type
class SendDirectOfferPayload(OfferPayload):
    pass


@strawberry.type
class UpdateOfferPayload(OfferPayload):
    pass


@strawberry.type
class WithdrawOfferPayload(OfferPayload):
    pass


@strawberry.type
class RejectOfferPayload(OfferPayload):
    pass


@strawberry.type(description="The offer, and its task, now assigned.")
class AcceptOfferPayload(OfferPayload):
    task: TaskNode | None = None


class _OnTask(Protocol):
    @property
    def task_id(self) -> relay.GlobalID: ...


OnTask = TypeVar("OnTask", bound=_OnTask)
Moved = TypeVar("Moved", bound=TaskPayload)


def _move(
    input_type: type[OnTask],
    payload_type: type[Moved],
    move: str,
    *,
    note: Callable[[OnTask], str | None] = lambda input: None,
    description: str,
) -> Moved:
    """A mutation making one move of the task's lifecycle (documents/lifecycles.py `TASK`),
    noting what `note` reads from the input."""

    async def run(info: Info, input: OnTask) -> Moved:
        viewer = await info.context.require_viewer()
        task_id = decode_id(input.task_id, TaskNode, "taskId")
        task = await tasks.move_task(info.context.services, viewer, task_id, move, note=note(input))
        return payload_type(task=TaskNode.of(task))

    return input_mutation(
        input_type,
        payload_type,
        run,
        extensions=allow(IsAuthenticated()),
        description=description,
    )


@strawberry.type
class TaskMutation:
    @strawberry.mutation(extensions=allow(IsAuthenticated()), description="Post a task (posters).")
    @mutation_payload
    async def post_task(self, info: Info, input: PostTaskInput) -> PostTaskPayload:
        viewer = await info.context.require_viewer()
        task = await tasks.post_task(
            info.context.services,
            viewer,
            title=input.title,
            description=input.description,
            category=input.category,
            budget=input.budget.value(),
            place=input.location.value(),
            due_at=input.due_at,
            image_urls=input.image_urls,
        )
        return PostTaskPayload(task=TaskNode.of(task))

    @strawberry.mutation(extensions=allow(IsAuthenticated()), description="Edit an open task.")
    @mutation_payload
    async def update_task(self, info: Info, input: UpdateTaskInput) -> UpdateTaskPayload:
        viewer = await info.context.require_viewer()
        task = await tasks.update_task(
            info.context.services,
            viewer,
            decode_id(input.task_id, TaskNode, "taskId"),
            title=given(input.title),
            description=given(input.description),
            category=given(input.category),
            budget=given_as(input.budget, MoneyInputType.value),
            place=given_as(input.location, PlaceInputType.value),
            # null here means something: the timing becomes flexible.
            due_at=KEEP if input.due_at is strawberry.UNSET else input.due_at,
            image_urls=given(input.image_urls),
        )
        return UpdateTaskPayload(task=TaskNode.of(task))

    start_task = _move(
        StartTaskInput, StartTaskPayload, "start", description="Tasker: begin the work."
    )
    submit_task = _move(
        SubmitTaskInput,
        SubmitTaskPayload,
        "submit",
        note=lambda input: input.note,
        description="Tasker: hand in the work.",
    )
    request_changes = _move(
        RequestChangesInput,
        RequestChangesPayload,
        "send_back",
        note=lambda input: input.reason,
        description="Poster: send submitted work back.",
    )
    complete_task = _move(
        CompleteTaskInput,
        CompleteTaskPayload,
        "complete",
        description="Poster: accept the submitted work.",
    )

    @strawberry.mutation(
        extensions=allow(IsAuthenticated()),
        description="Assigned tasker: leave the task before work starts, with a reason. "
        "Anything paid goes back to the poster, the task is open for offers again, and it "
        "counts on the tasker's profile (cancellationCount).",
    )
    @mutation_payload
    async def step_back_from_task(
        self, info: Info, input: StepBackFromTaskInput
    ) -> StepBackFromTaskPayload:
        viewer = await info.context.require_viewer()
        task_id = decode_id(input.task_id, TaskNode, "taskId")
        task = await reopening.step_back(info.context.services, viewer, task_id, input.reason)
        return StepBackFromTaskPayload(task=TaskNode.of(task))

    cancel_task = _move(
        CancelTaskInput,
        CancelTaskPayload,
        "cancel",
        note=lambda input: input.reason,
        description="Poster: cancel an open task, or an assigned one before work starts (a "
        "task in milestones also in progress, while no milestone was handed in).",
    )

    @strawberry.mutation(
        extensions=allow(IsAuthenticated()), description="Tasker: offer to do a task."
    )
    @mutation_payload
    async def make_offer(self, info: Info, input: MakeOfferInput) -> MakeOfferPayload:
        viewer = await info.context.require_viewer()
        offer = await offers.make_offer(
            info.context.services,
            viewer,
            decode_id(input.task_id, TaskNode, "taskId"),
            input.amount.value(),
            input.message,
        )
        return MakeOfferPayload(offer=OfferNode.of(offer))

    @strawberry.mutation(
        extensions=allow(IsAuthenticated()),
        description="Poster: offer the task to a chosen tasker (a direct hire).",
    )
    @mutation_payload
    async def send_direct_offer(
        self, info: Info, input: SendDirectOfferInput
    ) -> SendDirectOfferPayload:
        viewer = await info.context.require_viewer()
        offer = await offers.send_direct_offer(
            info.context.services,
            viewer,
            decode_id(input.task_id, TaskNode, "taskId"),
            decode_id(input.tasker_id, UserNode, "taskerId"),
            input.amount.value(),
            input.message,
        )
        return SendDirectOfferPayload(offer=OfferNode.of(offer))

    @strawberry.mutation(
        extensions=allow(IsAuthenticated()), description="Change a pending offer one made."
    )
    @mutation_payload
    async def update_offer(self, info: Info, input: UpdateOfferInput) -> UpdateOfferPayload:
        viewer = await info.context.require_viewer()
        offer = await offers.update_offer(
            info.context.services,
            viewer,
            decode_id(input.offer_id, OfferNode, "offerId"),
            amount=given_as(input.amount, MoneyInputType.value),
            message=given(input.message),
        )
        return UpdateOfferPayload(offer=OfferNode.of(offer))

    @strawberry.mutation(
        extensions=allow(IsAuthenticated()), description="Withdraw a pending offer one made."
    )
    @mutation_payload
    async def withdraw_offer(self, info: Info, input: WithdrawOfferInput) -> WithdrawOfferPayload:
        viewer = await info.context.require_viewer()
        offer = await offers.withdraw_offer(
            info.context.services, viewer, decode_id(input.offer_id, OfferNode, "offerId")
        )
        return WithdrawOfferPayload(offer=OfferNode.of(offer))

    @strawberry.mutation(
        extensions=allow(IsAuthenticated()),
        description="Accept an offer: the task is assigned and every other offer rejected.",
    )
    @mutation_payload
    async def accept_offer(self, info: Info, input: AcceptOfferInput) -> AcceptOfferPayload:
        viewer = await info.context.require_viewer()
        offer = await offers.accept_offer(
            info.context.services,
            viewer,
            decode_id(input.offer_id, OfferNode, "offerId"),
            [milestone.value() for milestone in input.milestones or []],
            input.expected_amount.value() if input.expected_amount else None,
        )
        task = await tasks.get_task(offer.task_id)
        return AcceptOfferPayload(offer=OfferNode.of(offer), task=TaskNode.of(task))

    @strawberry.mutation(extensions=allow(IsAuthenticated()), description="Decline an offer.")
    @mutation_payload
    async def reject_offer(self, info: Info, input: RejectOfferInput) -> RejectOfferPayload:
        viewer = await info.context.require_viewer()
        offer = await offers.reject_offer(
            info.context.services,
            viewer,
            decode_id(input.offer_id, OfferNode, "offerId"),
            input.reason,
        )
        return RejectOfferPayload(offer=OfferNode.of(offer))
