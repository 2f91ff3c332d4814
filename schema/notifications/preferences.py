"""My notification preferences: which channels each kind reaches me on, and quiet hours.

The use cases are resolvers/notifications/preferences.py; here they meet the graph.
"""

from __future__ import annotations

from datetime import time

import strawberry

from documents.notifications.catalogue import Channel, NotificationKind
from documents.notifications.preferences import NotificationPreferences, QuietHours
from resolvers.notifications import preferences
from schema.common.context import Info
from schema.common.payloads import Payload, mutation_payload
from schema.common.permissions import IsAuthenticated, allow
from schema.common.values import nullable_as

NotificationKindType = strawberry.enum(
    NotificationKind,
    name="NotificationKind",
    description="A kind of notification sent beyond the app (README: Notifications).",
)
NotificationChannelType = strawberry.enum(
    Channel,
    name="NotificationChannel",
    description="Where a notification reaches someone who is not looking at the app.",
)


def _ordered(channels: frozenset[Channel]) -> list[Channel]:
    return [channel for channel in Channel if channel in channels]


def _clock(value: time) -> str:
    return value.strftime("%H:%M")


@strawberry.type(name="NotificationKindPreference")
class KindPreferenceType:
    kind: NotificationKind
    channels: list[Channel] = strawberry.field(
        description="The channels chosen (the defaults unless changed); SMS needs a verified "
        "phone and push a subscribed browser before anything is sent there."
    )
    default_channels: list[Channel]
    optional: bool = strawberry.field(
        description="Whether it may be turned off; if not, its default channels stay on."
    )

    @classmethod
    def of(cls, setting: preferences.KindSetting) -> KindPreferenceType:
        return cls(
            kind=setting.kind,
            channels=_ordered(setting.channels),
            default_channels=_ordered(setting.default),
            optional=setting.optional,
        )


@strawberry.type(name="QuietHours")
class QuietHoursType:
    start: str = strawberry.field(description="Hours and minutes (HH:MM) in the time zone.")
    end: str = strawberry.field(description="HH:MM; before the start, it runs past midnight.")
    time_zone: str = strawberry.field(description="IANA name.")
    email_waits: bool = strawberry.field(
        description="Whether e-mail waits for the end too; SMS and push always do."
    )

    @classmethod
    def of(cls, quiet: QuietHours) -> QuietHoursType:
        return cls(
            start=_clock(quiet.start),
            end=_clock(quiet.end),
            time_zone=quiet.time_zone,
            email_waits=quiet.email_waits,
        )


@strawberry.type(name="NotificationPreferences")
class NotificationPreferencesType:
    kinds: list[KindPreferenceType] = strawberry.field(
        description="Every kind of notification, in the catalogue's order."
    )
    quiet_hours: QuietHoursType | None

    @classmethod
    def of(cls, chosen: NotificationPreferences) -> NotificationPreferencesType:
        quiet = chosen.quiet_hours
        return cls(
            kinds=[KindPreferenceType.of(s) for s in preferences.kind_settings(chosen)],
            quiet_hours=QuietHoursType.of(quiet) if quiet is not None else None,
        )


@strawberry.type
class NotificationPreferencesQuery:
    @strawberry.field(extensions=allow(IsAuthenticated()))
    async def notification_preferences(self, info: Info) -> NotificationPreferencesType:
        viewer = await info.context.require_viewer()
        return NotificationPreferencesType.of(await preferences.my_preferences(viewer))


@strawberry.input
class NotificationChoiceInput:
    kind: NotificationKind
    channels: list[Channel] = strawberry.field(description="Empty turns the kind off.")

    def value(self) -> preferences.Choice:
        return preferences.Choice(kind=self.kind, channels=self.channels)


@strawberry.input
class QuietHoursInput:
    start: str = strawberry.field(description='HH:MM, like "22:00".')
    end: str = strawberry.field(description='HH:MM, like "07:00"; not the start.')
    time_zone: str = strawberry.field(description='IANA name, like "Europe/Paris".')
    email_waits: bool = False

    def value(self) -> preferences.QuietHoursInput:
        return preferences.QuietHoursInput(
            start=self.start,
            end=self.end,
            time_zone=self.time_zone,
            email_waits=self.email_waits,
        )


@strawberry.input
class UpdateNotificationPreferencesInput:
    choices: list[NotificationChoiceInput] = strawberry.field(
        default_factory=list, description="The kinds to change; the others keep theirs."
    )
    quiet_hours: QuietHoursInput | None = strawberry.field(
        default=strawberry.UNSET, description="null clears them; absent keeps them."
    )


@strawberry.type
class UpdateNotificationPreferencesPayload(Payload):
    preferences: NotificationPreferencesType | None = None


@strawberry.type
class NotificationPreferencesMutation:
    @strawberry.mutation(extensions=allow(IsAuthenticated()))
    @mutation_payload
    async def update_notification_preferences(
        self, info: Info, input: UpdateNotificationPreferencesInput
    ) -> UpdateNotificationPreferencesPayload:
        viewer = await info.context.require_viewer()
        updated = await preferences.update_preferences(
            viewer,
            [choice.value() for choice in input.choices],
            nullable_as(input.quiet_hours, QuietHoursInput.value),
        )
        return UpdateNotificationPreferencesPayload(
            preferences=NotificationPreferencesType.of(updated)
        )
