"""Building a GraphQL type from the document (or value) it shows, naming each field once.

Most fields of a type such as `Task` are its document's own, by the same name and as
stored. `copied` fills those in, so a new one is declared on the type alone; the type's
`of` passes only what differs: the Relay id, values of other GraphQL types (each made by
its own `of`), renamed or derived fields, and private ones. Who may see a field is
decided by its resolver's permission extensions, never here.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from strawberry.types.base import StrawberryContainer, get_object_definition, has_object_definition
from strawberry.types.lazy_type import LazyType
from strawberry.types.private import is_private
from strawberry.types.union import StrawberryUnion

T = TypeVar("T")


def copied(cls: type[T], source: object, /, **explicit: Any) -> T:
    """A `cls` with its plain fields read from `source` by name, and the others `explicit`.

    A plain field is one the graph shows, with no resolver, holding a scalar or an enum
    (or a list of them). `source` must have each plain field not given in `explicit`
    (else AttributeError); every other field of `cls` must be in `explicit` (else the
    constructor's TypeError), so a Money is never shown where a MoneyType belongs, nor an
    ObjectId as the Relay id.
    """
    build: Callable[..., T] = cls
    copies = {name: getattr(source, name) for name in plain_fields(cls) if name not in explicit}
    return build(**copies, **explicit)


_PLAIN_FIELDS: dict[type, tuple[str, ...]] = {}
"""Worked out once per type, on first use (when every annotation resolves): `copied` runs
for each row of every page."""


def plain_fields(cls: type) -> tuple[str, ...]:
    """The names of `cls`'s plain fields, in declaration order."""
    names = _PLAIN_FIELDS.get(cls)
    if names is None:
        names = _PLAIN_FIELDS[cls] = tuple(
            field.python_name
            for field in get_object_definition(cls, strict=True).fields
            if field.base_resolver is None and not is_private(field.type) and _is_leaf(field.type)
        )
    return names


def _is_leaf(field_type: object) -> bool:
    """Whether values of this type are scalars or enums, bare or in lists or nullable."""
    while isinstance(field_type, StrawberryContainer):
        field_type = field_type.of_type
    return not (
        has_object_definition(field_type) or isinstance(field_type, LazyType | StrawberryUnion)
    )
