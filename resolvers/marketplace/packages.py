"""Service packages: what a provider sells at a fixed price and duration.

Bookings copy what they need of a package, so editing or deactivating one never
changes a booking already made.
"""

from __future__ import annotations

from typing import Any

from beanie import PydanticObjectId
from bson import ObjectId
from pymongo import ReturnDocument

from documents.accounts.users import Role
from documents.clock import utcnow
from documents.errors import DomainError, ErrorCode
from documents.marketplace.packages import PackageType, ServicePackage
from documents.money import Money
from resolvers.accounts.auth.viewer import Viewer, require_role
from resolvers.accounts.profiles import get_provider_profile
from resolvers.common.inputs import KEEP, Keep, MoneyInput, given_fields, if_given
from resolvers.common.services import Services
from resolvers.common.validation import MAX_NAME_LENGTH, Checked

MAX_DESCRIPTION = 2000
MIN_DURATION = 15
MAX_DURATION = 720
DURATION_STEP = 5
MAX_PACKAGES = 50
"""Per provider, so that a profile lists them all without paging."""


async def get_package(package_id: ObjectId) -> ServicePackage:
    package = await ServicePackage.get(PydanticObjectId(package_id))
    if package is None:
        raise DomainError(ErrorCode.NOT_FOUND, "No such service package.", "packageId")
    return package


def may_see_inactive(viewer: Viewer | None, provider_id: ObjectId) -> bool:
    return viewer is not None and (viewer.user_id == provider_id or viewer.user.is_admin)


def _fields(
    checked: Checked,
    services: Services,
    *,
    name: str | Keep,
    description: str | Keep,
    price: MoneyInput | Keep,
    duration_minutes: int | Keep,
    type: PackageType | Keep,
) -> dict[str, Any]:
    """The checked values of the fields given, as stored, by document field name."""
    return given_fields(
        name=if_given(name, lambda text: _name(checked, text)),
        description=if_given(description, lambda text: _description(checked, text)),
        price=if_given(price, lambda money: _price(checked, services, money).model_dump()),
        duration_minutes=if_given(duration_minutes, lambda minutes: _duration(checked, minutes)),
        type=if_given(type, lambda kind: kind.value),
    )


def _name(checked: Checked, name: str) -> str:
    return checked.required_text(name, "name", min_length=3, max_length=MAX_NAME_LENGTH)


def _description(checked: Checked, description: str) -> str:
    return checked.required_text(
        description, "description", min_length=10, max_length=MAX_DESCRIPTION, multiline=True
    )


def _price(checked: Checked, services: Services, price: MoneyInput) -> Money:
    rules = services.price_rules
    return checked.price(price.amount, price.currency, "price", rules)


def _duration(checked: Checked, minutes: int) -> int:
    if not MIN_DURATION <= minutes <= MAX_DURATION or minutes % DURATION_STEP:
        checked.fail(
            ErrorCode.INVALID_INPUT,
            f"The duration must be {MIN_DURATION} to {MAX_DURATION} minutes, "
            f"in steps of {DURATION_STEP}.",
            "durationMinutes",
        )
    return minutes


async def create_package(
    services: Services,
    viewer: Viewer,
    *,
    name: str,
    description: str,
    price: MoneyInput,
    duration_minutes: int,
    type: PackageType,
) -> ServicePackage:
    require_role(viewer, Role.TASKER, "sell service packages")
    await get_provider_profile(viewer)
    checked = Checked()
    fields = _fields(
        checked,
        services,
        name=name,
        description=description,
        price=price,
        duration_minutes=duration_minutes,
        type=type,
    )
    checked.raise_if_any()
    if await ServicePackage.find(ServicePackage.provider_id == viewer.user_id).count() >= (
        MAX_PACKAGES
    ):
        raise DomainError(ErrorCode.INVALID_INPUT, f"At most {MAX_PACKAGES} packages.", "name")
    package = ServicePackage(provider_id=viewer.user_id, **fields)
    await package.insert()
    return package


async def update_package(
    services: Services,
    viewer: Viewer,
    package_id: ObjectId,
    *,
    name: str | Keep = KEEP,
    description: str | Keep = KEEP,
    price: MoneyInput | Keep = KEEP,
    duration_minutes: int | Keep = KEEP,
    type: PackageType | Keep = KEEP,
) -> ServicePackage:
    checked = Checked()
    fields = _fields(
        checked,
        services,
        name=name,
        description=description,
        price=price,
        duration_minutes=duration_minutes,
        type=type,
    )
    checked.raise_if_any()
    return await _change(viewer, package_id, {}, fields)


async def set_package_active(
    services: Services, viewer: Viewer, package_id: ObjectId, active: bool
) -> ServicePackage:
    """Deactivate (no new bookings; existing ones stand) or reactivate a package."""
    return await _change(viewer, package_id, {"active": not active}, {"active": active})


async def _change(
    viewer: Viewer, package_id: ObjectId, condition: dict[str, Any], changes: dict[str, Any]
) -> ServicePackage:
    package = await get_package(package_id)
    if package.provider_id != viewer.user_id:
        raise DomainError(
            ErrorCode.FORBIDDEN, "Only its provider can change a package.", "packageId"
        )
    raw = await ServicePackage.get_pymongo_collection().find_one_and_update(
        {"_id": package.id, **condition},
        {"$set": {**changes, "updated_at": utcnow()}},
        return_document=ReturnDocument.AFTER,
    )
    if raw is None:  # packages are never deleted: only the condition can fail
        state = "active" if package.active else "inactive"
        raise DomainError(ErrorCode.INVALID_STATE, f"The package is {state} already.", "packageId")
    changed: ServicePackage = ServicePackage.model_validate(raw)
    return changed
