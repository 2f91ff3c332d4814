"""Documents read only to be shown: built from what the database holds, without validation.

Every document was validated when it was written, so a page that only shows what it
reads need not validate it again; pydantic's validation was a fifth of gigql's own CPU on
the marketplace's front-page reads (bench/README.md, issue 16). `shown` builds the same
model `model_validate` would, field by field with `model_construct`, following a plan
made once per model from its annotations: nested models, lists, optional values, enums,
ObjectIds and dates (which the database stores as datetimes) are turned into what
validation would give, while strings, numbers, booleans and datetimes (tz-aware, as the
client is set to return them) are taken as they are.

Whatever the plan does not understand is validated as before: a model with validators
of its own (which may derive or normalise a value, such as a place's area) unless it
names them in `SHOWN_TRUSTS` as checks that only refuse, a field with more than bounds
and lengths to check, a union of several types; a field of a type it does not know is
validated alone (a `TypeAdapter`, made once). Tests hold `shown` equal to `model_validate`
for every kind of document it serves (tests/api/test_read_path.py).

Only reads that show documents use it (`Reader.SHOWN` in resolvers/common/pagination.py):
anything saved or used to decide a state change is read with `model_validate`, as before.
"""

from __future__ import annotations

import enum
import functools
import types
import typing
import uuid
from collections.abc import Callable, Mapping
from datetime import date, datetime
from typing import Any, TypeVar

from annotated_types import BaseMetadata
from beanie import Document, PydanticObjectId
from bson import ObjectId
from pydantic import BaseModel, TypeAdapter

M = TypeVar("M", bound=BaseModel)

Convert = Callable[[Any], Any]
"""Turns one stored value into what validation would make of it."""

PLAIN: tuple[type, ...] = (str, int, bool, datetime, uuid.UUID)
"""Types whose stored values validation keeps as they are. A datetime comes back tz-aware
from the client (server/runtime.py)."""

SHOWN_TRUSTS = "shown_trusts"
"""A model's class attribute naming its validators that only refuse values (and return
them unchanged): what is stored passed them when it was written."""


class Unplanned(Exception):
    """A model or a type `shown` leaves to validation."""


def shown(model: type[M], raw: Mapping[str, Any]) -> M:
    """The model of a stored document, as `model.model_validate(raw)` would make it, for
    showing only."""
    return _builder(model)(raw)  # type: ignore[no-any-return]


@functools.cache
def _builder(model: type[BaseModel]) -> Callable[[Any], Any]:
    """How to build `model` from a stored value: by its plan, or by validation."""
    try:
        return _planned(model)
    except Unplanned:
        return model.model_validate


def _planned(model: type[BaseModel]) -> Callable[[Any], Any]:
    _check_plain_model(model)
    if model.__pydantic_root_model__:
        raise Unplanned(model.__name__)
    fields = [
        (name, info.alias or name, _converter(info.annotation), info)
        for name, info in model.model_fields.items()
    ]
    post_init = bool(model.__pydantic_post_init__)
    set_attribute = object.__setattr__

    # What `model_construct` does, without its per-call search through aliases: pydantic
    # validates in compiled code, and a construct that searched would be slower than it.
    def build(raw: Any) -> Any:
        if not isinstance(raw, Mapping):
            return model.model_validate(raw)  # validation gives the error it always gave
        values: dict[str, Any] = {}
        given: set[str] = set()
        for name, key, convert, info in fields:
            if key in raw:
                values[name] = convert(raw[key])
                given.add(name)
            elif not info.is_required():
                values[name] = info.get_default(call_default_factory=True, validated_data=values)
            else:
                return model.model_validate(raw)  # validation reports what is missing
        built = model.__new__(model)
        set_attribute(built, "__dict__", values)
        set_attribute(built, "__pydantic_fields_set__", given)
        set_attribute(built, "__pydantic_extra__", None)
        set_attribute(built, "__pydantic_private__", None)
        if post_init:
            built.model_post_init(None)  # private attributes get their defaults
        return built

    return build


def _check_plain_model(model: type[BaseModel]) -> None:
    """Refuses models whose validation does more than check and convert field types."""
    decorators = model.__pydantic_decorators__
    trusted = set(getattr(model, SHOWN_TRUSTS, ()))
    if issubclass(model, Document):
        trusted.add("fill_back_refs")  # Beanie's: fills back-links, which ours do not have
    own_validators = [name for name in decorators.model_validators if name not in trusted]
    if own_validators or decorators.field_validators or decorators.computed_fields:
        raise Unplanned(model.__name__)
    if issubclass(model, Document) and model._link_fields:
        raise Unplanned(model.__name__)
    if model.model_config.get("extra") == "allow":
        raise Unplanned(model.__name__)
    checks_only = (
        isinstance(item, BaseMetadata)
        for info in model.model_fields.values()
        for item in info.metadata
    )
    if not all(checks_only):
        # Bounds and lengths were checked on writing; other metadata may also transform
        # a value (strip, lower), which is validation's job.
        raise Unplanned(model.__name__)


def _converter(annotation: Any) -> Convert:
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        others = [arg for arg in typing.get_args(annotation) if arg is not type(None)]
        if len(others) != 1:
            return _validated(annotation)
        inner = _converter(others[0])
        return lambda value: None if value is None else inner(value)
    if origin is list:
        [item] = typing.get_args(annotation) or [Any]
        convert_item = _converter(item)
        return lambda value: [convert_item(v) for v in value]
    if origin is dict:
        key_type, value_type = typing.get_args(annotation) or (Any, Any)
        if key_type is not str:
            return _validated(annotation)
        convert_value = _converter(value_type)
        return lambda value: {k: convert_value(v) for k, v in value.items()}
    if origin is not None:
        return _validated(annotation)  # tuples, sets, literals...
    return _converter_of_type(annotation)


def _converter_of_type(annotation: Any) -> Convert:
    if annotation is Any:
        return _same
    if not isinstance(annotation, type):
        return _validated(annotation)
    if issubclass(annotation, BaseModel):
        return _nested(annotation)
    if issubclass(annotation, enum.Enum):
        return annotation
    if issubclass(annotation, PydanticObjectId):
        return _object_id
    if annotation is ObjectId:
        return _same
    if annotation is date:
        return _date
    if annotation is float:
        return _float
    if annotation in PLAIN:
        return _same
    return _validated(annotation)


def _validated(annotation: Any) -> Convert:
    """A field `shown` has no plan for: validated alone."""
    return TypeAdapter(annotation).validate_python


def _nested(model: type[BaseModel]) -> Convert:
    # Resolved on first use: a model may refer to itself, or to one not yet planned.
    def convert(value: Any) -> Any:
        return _builder(model)(value)

    return convert


def _same(value: Any) -> Any:
    return value


def _object_id(value: Any) -> Any:
    return PydanticObjectId(value) if isinstance(value, ObjectId) else value


def _float(value: Any) -> Any:
    # Validation makes a float of a whole number: 12 shows as 12.0.
    return float(value) if type(value) is int else value


def _date(value: Any) -> Any:
    # Beanie stores a date as the datetime of its midnight; validation gives the date.
    return value.date() if isinstance(value, datetime) else value
