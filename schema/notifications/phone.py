"""My phone number for SMS notifications: setting it, proving it is mine, removing it.

Only the caller sees their number here; the contact phone of a profile (`User.phone`)
is another field, shown to the people working with them.
"""

from __future__ import annotations

from datetime import datetime

import strawberry

from documents.notifications.preferences import Phone
from resolvers.notifications import phone as phones
from schema.common.context import Info
from schema.common.payloads import Payload, mutation_payload
from schema.common.permissions import IsAuthenticated, allow


@strawberry.type(
    name="MyPhone",
    description="The number SMS notifications go to; none go until it is verified.",
)
class MyPhone:
    number: str = strawberry.field(description="E.164, like +14155550123.")
    verified: bool
    code_expires_at: datetime | None = strawberry.field(
        description="While a code sent to the number waits to be confirmed: until when."
    )

    @classmethod
    def of(cls, phone: Phone) -> MyPhone:
        return cls(
            number=phone.number,
            verified=phone.verified_at is not None,
            code_expires_at=phone.code_expires_at,
        )


@strawberry.type
class PhoneQuery:
    @strawberry.field(
        extensions=allow(IsAuthenticated()), description="My number for SMS, if I gave one."
    )
    async def my_phone(self, info: Info) -> MyPhone | None:
        viewer = await info.context.require_viewer()
        phone = await phones.my_phone(viewer.user_id)
        return MyPhone.of(phone) if phone is not None else None


@strawberry.input
class StartPhoneVerificationInput:
    phone: str = strawberry.field(
        description="E.164: +, the country code and the number, like +14155550123."
    )


@strawberry.type(description="The number, held unverified until its code is confirmed.")
class StartPhoneVerificationPayload(Payload):
    phone: MyPhone | None = None


@strawberry.input
class ConfirmPhoneVerificationInput:
    code: str = strawberry.field(description="The 6-digit code the SMS carried.")


@strawberry.type
class ConfirmPhoneVerificationPayload(Payload):
    phone: MyPhone | None = None


@strawberry.input
class RemovePhoneInput:
    number: str = strawberry.field(
        description="The number as `myPhone` shows it: another one set since is not removed "
        "(NOT_FOUND)."
    )


@strawberry.type
class RemovePhonePayload(Payload):
    removed: bool | None = None


@strawberry.type
class PhoneMutation:
    @strawberry.mutation(
        extensions=allow(IsAuthenticated()),
        description="Text a 6-digit code, valid for 10 minutes, to a number, which replaces "
        "mine and stays unverified until `confirmPhoneVerification`. A few codes per number, "
        "account and network an hour (TOO_MANY_ATTEMPTS); my number already verified stays "
        "as it is, and nothing is sent.",
    )
    @mutation_payload
    async def start_phone_verification(
        self, info: Info, input: StartPhoneVerificationInput
    ) -> StartPhoneVerificationPayload:
        viewer = await info.context.require_viewer()
        phone = await phones.start_verification(
            info.context.services, info.context.meta, viewer, input.phone
        )
        return StartPhoneVerificationPayload(phone=MyPhone.of(phone))

    @strawberry.mutation(
        extensions=allow(IsAuthenticated()),
        description="Verify my number with the code sent to it (INVALID_CODE, CODE_EXPIRED); "
        f"{phones.WRONG_CODES_PER_HOUR} wrong codes an hour refuse further tries until the "
        "hour is over.",
    )
    @mutation_payload
    async def confirm_phone_verification(
        self, info: Info, input: ConfirmPhoneVerificationInput
    ) -> ConfirmPhoneVerificationPayload:
        viewer = await info.context.require_viewer()
        phone = await phones.confirm_verification(
            info.context.services, info.context.meta, viewer, input.code
        )
        return ConfirmPhoneVerificationPayload(phone=MyPhone.of(phone))

    @strawberry.mutation(
        extensions=allow(IsAuthenticated()), description="Stop SMS: forget my number."
    )
    @mutation_payload
    async def remove_phone(self, info: Info, input: RemovePhoneInput) -> RemovePhonePayload:
        viewer = await info.context.require_viewer()
        await phones.remove_phone(info.context.meta, viewer, input.number)
        return RemovePhonePayload(removed=True)
