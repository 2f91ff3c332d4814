"""The mutation convention: one `input` argument, a payload with the result and `errors`.

Expected failures (bad input, wrong state, not allowed) come back as `UserError`s in
the payload, with a stable `code` and the input `field` at fault, while the result
fields stay null. Nothing is changed when `errors` is not empty.
"""

from __future__ import annotations

import functools
import typing
from collections.abc import Awaitable, Callable
from typing import Any, ParamSpec, TypeVar

import strawberry
from strawberry.extensions import FieldExtension

from documents.errors import DomainError, ErrorCode, Problem
from schema.common.context import Info
from schema.common.copying import copied

ErrorCodeType = strawberry.enum(
    ErrorCode,
    name="ErrorCode",
    description="Stable machine-readable error codes; new ones may be added, none renamed.",
)


@strawberry.type(description="An expected failure of a mutation. Nothing was changed.")
class UserError:
    field: str | None = strawberry.field(description="The input field at fault, if any.")
    code: ErrorCode
    message: str = strawberry.field(description="A human-readable explanation.")

    @classmethod
    def of(cls, problem: Problem) -> UserError:
        return copied(cls, problem)


@strawberry.interface(description="What every mutation returns.")
class Payload:
    errors: list[UserError] = strawberry.field(
        default_factory=list, description="Why the mutation did nothing; empty on success."
    )


P = ParamSpec("P")
R = TypeVar("R", bound=Payload)
In = TypeVar("In")


def mutation_payload(resolver: Callable[P, Awaitable[R]]) -> Callable[P, Awaitable[R]]:
    """Turn a DomainError raised by the resolver into its payload type with `errors`."""
    payload_type: type[R] | None = None

    @functools.wraps(resolver)
    async def resolve(*args: P.args, **kwargs: P.kwargs) -> R:
        nonlocal payload_type
        try:
            return await resolver(*args, **kwargs)
        except DomainError as error:
            if payload_type is None:
                payload_type = typing.get_type_hints(resolver)["return"]
            assert payload_type is not None
            built: Any = payload_type(errors=[UserError.of(p) for p in error.problems])
            return typing.cast("R", built)

    return resolve


def input_mutation(
    input_type: type[In],
    payload_type: type[R],
    run: Callable[[Info, In], Awaitable[R]],
    *,
    extensions: list[FieldExtension],
    description: str | None = None,
) -> R:
    """A mutation of the convention made by a function, for a family of mutations that
    differ only in their input and payload types and in what they pass on: `run` gets
    the request and the `input` argument (an `input_type`) and answers `payload_type`,
    whose `errors` take its DomainErrors (`mutation_payload`).

    Strawberry reads a field's argument and result types from its resolver's
    annotations. A resolver made here could only name type variables in them, so they
    are set to the types given.
    """

    async def resolve(info: Info, input: In) -> R:
        return await run(info, input)

    resolve.__annotations__ = {"info": Info, "input": input_type, "return": payload_type}
    return strawberry.mutation(
        resolver=mutation_payload(resolve), extensions=extensions, description=description
    )
