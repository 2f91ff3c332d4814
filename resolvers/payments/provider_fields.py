"""Storing what the gateway made for a provider (an account, a verification session)
on their profile, which is created if they have none yet."""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from bson import ObjectId
from pymongo.errors import DuplicateKeyError

from documents.accounts.profiles import ProviderProfile
from documents.clock import utcnow
from resolvers.accounts.profiles import new_profile_fields


def synced_no_later_than(field: str, moment: datetime) -> dict[str, Any]:
    """A profile whose `field` (when an event of the gateway was last applied) is unset or
    not after `moment`: an event older than the last applied changes nothing."""
    return {"$or": [{field: None}, {field: {"$lte": moment}}]}


async def stored_profile(user_id: ObjectId) -> ProviderProfile:
    """The provider's profile, once it was there or `store_if` made it."""
    profile = await ProviderProfile.get(user_id)
    assert profile is not None
    return profile


async def store_if(
    user_id: ObjectId, condition: Mapping[str, Any], fields: Mapping[str, Any]
) -> None:
    """Set `fields` on the provider's profile if it matches `condition`, or on a new
    profile if there is none. A profile that exists but does not match is left as it is:
    a concurrent request got there first."""
    now = utcnow()
    # An existing profile that fails the condition makes the upsert insert a second
    # document with its id, which the unique _id refuses.
    with contextlib.suppress(DuplicateKeyError):
        await ProviderProfile.get_pymongo_collection().update_one(
            {**condition, "_id": user_id},
            {
                "$set": {**fields, "updated_at": now},
                "$setOnInsert": new_profile_fields(
                    ProviderProfile(created_at=now), besides={*fields, "updated_at"}
                ),
            },
            upsert=True,
        )
