"""Provider and customer profiles, working hours, saved addresses."""

from __future__ import annotations

from datetime import date, datetime
from enum import Enum

import strawberry
from bson import ObjectId

from documents.accounts.profiles import (
    CustomerProfile,
    ExceptionKind,
    IdentityVerification,
    ProviderProfile,
    Rating,
    ScheduleException,
    TimeRange,
)
from resolvers.accounts import profiles
from resolvers.accounts.profiles import (
    MAX_EXCEPTIONS,
    MAX_RANGES_PER_DAY,
    MAX_SAVED_ADDRESSES,
    RangeInput,
)
from resolvers.marketplace.packages import MAX_PACKAGES, may_see_inactive
from schema.common.context import Info
from schema.common.copying import copied
from schema.common.limits import bounded
from schema.common.payloads import Payload, mutation_payload
from schema.common.permissions import IsAuthenticated, IsOwnerOrAdmin, allow
from schema.common.values import (
    Area,
    MoneyInputType,
    MoneyType,
    PlaceInputType,
    PlaceType,
    given,
    nullable_as,
)
from schema.marketplace.packages import ServicePackageNode

IdentityVerificationType = strawberry.enum(IdentityVerification, name="IdentityVerification")
ExceptionKindType = strawberry.enum(ExceptionKind, name="ScheduleExceptionKind")


@strawberry.enum
class Weekday(Enum):
    MONDAY = 0
    TUESDAY = 1
    WEDNESDAY = 2
    THURSDAY = 3
    FRIDAY = 4
    SATURDAY = 5
    SUNDAY = 6


def _clock(minute: int) -> str:
    return f"{minute // 60:02d}:{minute % 60:02d}"


@strawberry.type(name="TimeRange", description='Wall-clock times like "09:00" to "17:30".')
class TimeRangeType:
    start: str
    end: str

    @classmethod
    def of(cls, time_range: TimeRange) -> TimeRangeType:
        return cls(start=_clock(time_range.start_minute), end=_clock(time_range.end_minute))


@strawberry.input(name="TimeRangeInput")
class TimeRangeInputType:
    start: str
    end: str

    def value(self) -> RangeInput:
        return RangeInput(start=self.start, end=self.end)


@strawberry.type
class WorkingDay:
    weekday: Weekday
    ranges: list[TimeRangeType] = strawberry.field(metadata=bounded(MAX_RANGES_PER_DAY))


@strawberry.type(name="ScheduleException")
class ScheduleExceptionType:
    date: date
    kind: ExceptionKind
    ranges: list[TimeRangeType] = strawberry.field(
        description="Empty: the whole day.", metadata=bounded(MAX_RANGES_PER_DAY)
    )

    @classmethod
    def of(cls, exception: ScheduleException) -> ScheduleExceptionType:
        return copied(
            cls,
            exception,
            date=exception.day,
            ranges=[TimeRangeType.of(r) for r in exception.ranges],
        )


@strawberry.type(name="Rating")
class RatingType:
    average: float | None = strawberry.field(description="1 to 5; null until rated.")
    count: int

    @classmethod
    def of(cls, rating: Rating) -> RatingType:
        return copied(cls, rating)


@strawberry.type(name="ProviderProfile", description="A tasker's public profile.")
class ProviderProfileType:
    bio: str
    skills: list[str]
    years_of_experience: int
    hourly_rate: MoneyType | None
    available: bool = strawberry.field(description="Taking new work at the moment.")
    service_radius_km: int
    time_zone: str
    identity_verification: IdentityVerification
    rating: RatingType
    completed_jobs: int
    cancellation_count: int = strawberry.field(
        description="Tasks the provider stepped back from after their offer was accepted."
    )
    buffer_minutes: int = strawberry.field(description="Kept free before and after bookings.")
    updated_at: datetime
    doc: strawberry.Private[ProviderProfile]

    @classmethod
    def of(cls, profile: ProviderProfile) -> ProviderProfileType:
        return copied(
            cls,
            profile,
            years_of_experience=profile.years_experience,
            hourly_rate=MoneyType.maybe(profile.hourly_rate),
            rating=RatingType.of(profile.rating),
            cancellation_count=profile.cancellations,
            doc=profile,
        )

    @property
    def owner_id(self) -> ObjectId:
        assert self.doc.id is not None
        return self.doc.id

    @strawberry.field(description="Roughly where they work from.")
    def area(self) -> Area | None:
        return Area.of(self.doc.place) if self.doc.place else None

    # Not for customers either: work happens at the task's place or the booking's
    # service location, never at the provider's home.
    @strawberry.field(
        extensions=allow(IsOwnerOrAdmin(), silent=True),
        description="The exact address: for the provider and admins alone.",
    )
    def place(self) -> PlaceType | None:
        return PlaceType.of(self.doc.place) if self.doc.place else None

    @strawberry.field(
        description="Weekly working hours, Monday first, in their time zone.", metadata=bounded(7)
    )
    def weekly_hours(self) -> list[WorkingDay]:
        return [
            WorkingDay(weekday=Weekday(index), ranges=[TimeRangeType.of(r) for r in ranges])
            for index, ranges in enumerate(self.doc.weekly_hours)
        ]

    @strawberry.field(
        description="Days off and extra hours, by date, from today on.",
        metadata=bounded(MAX_EXCEPTIONS),
    )
    def exceptions(self) -> list[ScheduleExceptionType]:
        return [ScheduleExceptionType.of(e) for e in self.doc.exceptions]

    @strawberry.field(
        description="Service packages, cheapest first; inactive ones only for the provider "
        "and admins, when asked for.",
        metadata=bounded(MAX_PACKAGES),
    )
    async def packages(
        self, info: Info, include_inactive: bool = False
    ) -> list[ServicePackageNode]:
        shown = await info.context.loaders.packages_of.load(self.owner_id)
        if not (include_inactive and may_see_inactive(await info.context.viewer(), self.owner_id)):
            shown = [p for p in shown if p.active]
        return [ServicePackageNode.of(p) for p in shown]


@strawberry.type(name="SavedAddress")
class SavedAddressType:
    id: str
    label: str
    place: PlaceType


@strawberry.type(name="CustomerProfile")
class CustomerProfileType:
    rating: RatingType = strawberry.field(description="How providers rated this customer.")
    doc: strawberry.Private[CustomerProfile]

    @property
    def owner_id(self) -> ObjectId:
        assert self.doc.id is not None
        return self.doc.id

    @strawberry.field(
        extensions=allow(IsOwnerOrAdmin(), silent=True), metadata=bounded(MAX_SAVED_ADDRESSES)
    )
    def saved_addresses(self) -> list[SavedAddressType] | None:
        return [
            copied(SavedAddressType, a, place=PlaceType.of(a.place)) for a in self.doc.addresses
        ]

    @classmethod
    def of(cls, profile: CustomerProfile) -> CustomerProfileType:
        return cls(rating=RatingType.of(profile.rating), doc=profile)


@strawberry.input
class UpdateProviderProfileInput:
    bio: str | None = strawberry.UNSET
    skills: list[str] | None = strawberry.field(default=strawberry.UNSET, description="Categories.")
    years_of_experience: int | None = strawberry.UNSET
    hourly_rate: MoneyInputType | None = strawberry.field(
        default=strawberry.UNSET, description="null removes it."
    )
    available: bool | None = strawberry.UNSET
    location: PlaceInputType | None = strawberry.field(
        default=strawberry.UNSET, description="null removes it."
    )
    service_radius_km: int | None = strawberry.UNSET
    time_zone: str | None = strawberry.field(
        default=strawberry.UNSET, description='IANA name, like "Australia/Sydney".'
    )
    buffer_minutes: int | None = strawberry.UNSET


@strawberry.type
class ProviderProfilePayload(Payload):
    profile: ProviderProfileType | None = None


@strawberry.type
class UpdateProviderProfilePayload(ProviderProfilePayload):
    pass


@strawberry.input
class WorkingDayInput:
    weekday: Weekday
    ranges: list[TimeRangeInputType]


@strawberry.input
class SetWeeklyHoursInput:
    days: list[WorkingDayInput] = strawberry.field(description="Days left out have no hours.")


@strawberry.type
class SetWeeklyHoursPayload(ProviderProfilePayload):
    pass


@strawberry.input
class SetScheduleExceptionInput:
    date: date
    kind: ExceptionKind
    ranges: list[TimeRangeInputType] = strawberry.field(
        default_factory=list, description="For UNAVAILABLE, empty means the whole day."
    )


@strawberry.type
class SetScheduleExceptionPayload(ProviderProfilePayload):
    pass


@strawberry.input
class RemoveScheduleExceptionInput:
    date: date


@strawberry.type
class RemoveScheduleExceptionPayload(ProviderProfilePayload):
    pass


@strawberry.input
class SaveAddressInput:
    label: str
    location: PlaceInputType


@strawberry.type
class CustomerProfilePayload(Payload):
    profile: CustomerProfileType | None = None


@strawberry.type
class SaveAddressPayload(CustomerProfilePayload):
    pass


@strawberry.input
class RemoveSavedAddressInput:
    address_id: str


@strawberry.type
class RemoveSavedAddressPayload(CustomerProfilePayload):
    pass


@strawberry.type
class ProfileMutation:
    @strawberry.mutation(
        extensions=allow(IsAuthenticated()), description="Create or change my provider profile."
    )
    @mutation_payload
    async def update_provider_profile(
        self, info: Info, input: UpdateProviderProfileInput
    ) -> UpdateProviderProfilePayload:
        viewer = await info.context.require_viewer()
        profile = await profiles.update_provider_profile(
            info.context.services,
            viewer,
            bio=given(input.bio),
            skills=given(input.skills),
            years_experience=given(input.years_of_experience),
            hourly_rate=nullable_as(input.hourly_rate, MoneyInputType.value),
            available=given(input.available),
            place=nullable_as(input.location, PlaceInputType.value),
            service_radius_km=given(input.service_radius_km),
            time_zone=given(input.time_zone),
            buffer_minutes=given(input.buffer_minutes),
        )
        return UpdateProviderProfilePayload(profile=ProviderProfileType.of(profile))

    @strawberry.mutation(
        extensions=allow(IsAuthenticated()), description="Replace my weekly hours."
    )
    @mutation_payload
    async def set_weekly_hours(
        self, info: Info, input: SetWeeklyHoursInput
    ) -> SetWeeklyHoursPayload:
        viewer = await info.context.require_viewer()
        days = [
            profiles.WorkingDayInput(day.weekday.value, [r.value() for r in day.ranges])
            for day in input.days
        ]
        profile = await profiles.set_weekly_hours(info.context.services, viewer, days)
        return SetWeeklyHoursPayload(profile=ProviderProfileType.of(profile))

    @strawberry.mutation(
        extensions=allow(IsAuthenticated()), description="A day off, or extra hours, on a date."
    )
    @mutation_payload
    async def set_schedule_exception(
        self, info: Info, input: SetScheduleExceptionInput
    ) -> SetScheduleExceptionPayload:
        viewer = await info.context.require_viewer()
        profile = await profiles.set_schedule_exception(
            info.context.services, viewer, input.date, input.kind, [r.value() for r in input.ranges]
        )
        return SetScheduleExceptionPayload(profile=ProviderProfileType.of(profile))

    @strawberry.mutation(extensions=allow(IsAuthenticated()))
    @mutation_payload
    async def remove_schedule_exception(
        self, info: Info, input: RemoveScheduleExceptionInput
    ) -> RemoveScheduleExceptionPayload:
        viewer = await info.context.require_viewer()
        profile = await profiles.remove_schedule_exception(
            info.context.services, viewer, input.date
        )
        return RemoveScheduleExceptionPayload(profile=ProviderProfileType.of(profile))

    @strawberry.mutation(
        extensions=allow(IsAuthenticated()), description="Save an address to book at."
    )
    @mutation_payload
    async def save_address(self, info: Info, input: SaveAddressInput) -> SaveAddressPayload:
        viewer = await info.context.require_viewer()
        profile = await profiles.save_address(
            info.context.services, viewer, input.label, input.location.value()
        )
        return SaveAddressPayload(profile=CustomerProfileType.of(profile))

    @strawberry.mutation(extensions=allow(IsAuthenticated()))
    @mutation_payload
    async def remove_saved_address(
        self, info: Info, input: RemoveSavedAddressInput
    ) -> RemoveSavedAddressPayload:
        viewer = await info.context.require_viewer()
        profile = await profiles.remove_saved_address(
            info.context.services, viewer, input.address_id
        )
        return RemoveSavedAddressPayload(profile=CustomerProfileType.of(profile))
