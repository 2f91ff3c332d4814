"""Service packages providers sell at a fixed price and duration (the home-cleaning flow)."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from beanie import Document, PydanticObjectId
from pydantic import Field
from pymongo import ASCENDING, IndexModel

from documents.clock import utcnow
from documents.money import Money


class PackageType(StrEnum):
    BASIC = "basic"
    DEEP = "deep"
    SPECIALISED = "specialised"


class ServicePackage(Document):
    provider_id: PydanticObjectId
    name: str
    description: str
    price: Money
    duration_minutes: int
    type: PackageType
    active: bool = True
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)

    class Settings:
        name = "service_packages"
        use_revision = False
        indexes = [
            IndexModel(
                [("provider_id", ASCENDING), ("active", ASCENDING), ("price.amount", ASCENDING)]
            ),
        ]
