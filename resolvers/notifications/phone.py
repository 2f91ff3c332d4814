"""The phone number SMS notifications go to, and the proof that it is the person's.

No SMS notification goes to a number until its owner has typed back the one-time code
sent to it: otherwise anyone could have the marketplace text a stranger. Asking for a
code replaces the number held (verified or not) with the new one, unverified until its
code comes back; the code is 6 digits, valid for 10 minutes, and stored only as an
HMAC under a key derived from the JWT secret, bound to the account and the number.

Codes cost money and land on someone's phone, so each hour at most
CODES_PER_NUMBER_PER_HOUR go to one number, CODES_PER_ACCOUNT_PER_HOUR to one account's
numbers and CODES_PER_CLIENT_PER_HOUR from one client address. Checking a code is a
secret check like a password's: counted per client address with every other
(resolvers/accounts/auth/guessing.py), and per account, where WRONG_CODES_PER_HOUR wrong
or expired codes refuse every further check until the hour is over. A check counts
before it is made, so concurrent guesses get no more tries than guesses in a row. Every
code sent, wrong code, refusal, verification and removal is audited (without the
number).
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import uuid
from datetime import datetime, timedelta

from bson import ObjectId
from pymongo.errors import DuplicateKeyError

from documents.accounts.audit import AuditKind
from documents.clock import utcnow
from documents.errors import DomainError, ErrorCode
from documents.notifications.preferences import NotificationPreferences, Phone
from integrations.sms import NumberUnreachable, SmsFailed
from resolvers.accounts import audit
from resolvers.accounts.auth import guessing
from resolvers.accounts.auth.throttle import Throttle
from resolvers.accounts.auth.tokens import digest
from resolvers.accounts.auth.viewer import Viewer
from resolvers.common.client_addresses import address_key
from resolvers.common.services import RequestMeta, Services

E164 = re.compile(r"\+[1-9][0-9]{7,14}")
"""+, then 8 to 15 ASCII digits of which the first (the country code's) is not 0."""
CODE_DIGITS = 6
CODE_TTL = timedelta(minutes=10)
CODE_KEY_LABEL = b"gigql/phone-codes/v1"
"""Derives the key codes are stored under from the JWT secret."""

HOUR = timedelta(hours=1)
CODES_PER_NUMBER_PER_HOUR = 3
CODES_PER_ACCOUNT_PER_HOUR = 5
CODES_PER_CLIENT_PER_HOUR = 10
WRONG_CODES_PER_HOUR = 5

_code_allowances = (
    ("this network", Throttle("sms-code-client", CODES_PER_CLIENT_PER_HOUR, HOUR)),
    ("for this account", Throttle("sms-code-account", CODES_PER_ACCOUNT_PER_HOUR, HOUR)),
    ("to this number", Throttle("sms-code-number", CODES_PER_NUMBER_PER_HOUR, HOUR)),
)
_wrong_codes = Throttle("sms-code-failures", WRONG_CODES_PER_HOUR, HOUR)

# Failures of a code check that count as guesses; the rest (no code waiting) do not.
_WRONG_CODE = {ErrorCode.INVALID_CODE: "wrong", ErrorCode.CODE_EXPIRED: "expired"}


async def my_phone(user_id: ObjectId) -> Phone | None:
    preferences = await NotificationPreferences.find_one(NotificationPreferences.user_id == user_id)
    return preferences.phone if preferences is not None else None


def e164(value: str, field: str = "phone") -> str:
    """`value` if it is an E.164 number (surrounding spaces dropped), else INVALID_INPUT."""
    number = value.strip()
    if not E164.fullmatch(number):
        raise DomainError(
            ErrorCode.INVALID_INPUT,
            "Phone must be in E.164 form: + and the country code, then the number, "
            "8 to 15 digits in all, like +14155550123.",
            field,
        )
    return number


async def start_verification(
    services: Services, meta: RequestMeta, viewer: Viewer, phone: str
) -> Phone:
    """Text a new code to `phone` and hold it, unverified, in place of any number before.
    A number already verified stays as it is, and nothing is sent."""
    number = e164(phone)
    held = await my_phone(viewer.user_id)
    if held is not None and held.number == number and held.verified_at is not None:
        return held
    await _spend_code_allowance(meta, viewer.user_id, number)
    code = f"{secrets.randbelow(10**CODE_DIGITS):0{CODE_DIGITS}d}"
    now = utcnow()
    pending = Phone(
        number=number,
        code_hash=_code_hash(services, viewer.user_id, number, code),
        code_expires_at=now + CODE_TTL,
    )
    # Sent before it is stored: a number the provider refuses is never held.
    await _text_code(services, viewer.user_id, number, code)
    await _hold(viewer.user_id, pending, now)
    await audit.record(AuditKind.PHONE_CODE_SENT, meta, user_id=viewer.user_id)
    return pending


async def confirm_verification(
    services: Services, meta: RequestMeta, viewer: Viewer, code: str
) -> Phone:
    """Mark the number held verified if `code` is the one waiting for it."""
    user_id = viewer.user_id
    subject = str(user_id)
    async with guessing.attempt(
        services, meta, AuditKind.PHONE_CODE_REJECTED, user_id=user_id
    ) as attempt:
        if await _wrong_codes.hit(subject) > _wrong_codes.limit:
            await _wrong_codes.forgive(subject)
            await audit.record(
                AuditKind.PHONE_CODE_REJECTED, meta, user_id=user_id, reason="throttled"
            )
            raise DomainError(
                ErrorCode.TOO_MANY_ATTEMPTS,
                "Too many wrong codes; try again after "
                f"{guessing.clock(_wrong_codes.retry_after())}.",
                "code",
            )
        try:
            verified = await _check(services, user_id, code)
        except DomainError as error:
            if error.code in _WRONG_CODE:
                attempt.wrong = True
                reason = _WRONG_CODE[error.code]
                await audit.record(
                    AuditKind.PHONE_CODE_REJECTED, meta, user_id=user_id, reason=reason
                )
            else:
                await _wrong_codes.forgive(subject)
            raise
        await _wrong_codes.forgive(subject)
    await audit.record(AuditKind.PHONE_VERIFIED, meta, user_id=user_id)
    return verified


async def remove_phone(meta: RequestMeta, viewer: Viewer, number: str) -> None:
    """Forget the number held, if it is `number` (as the caller last saw it); SMS
    deliveries still waiting for it are skipped when their turn comes."""
    removed = await NotificationPreferences.get_pymongo_collection().update_one(
        {"user_id": viewer.user_id, "phone.number": number.strip()},
        {"$set": {"phone": None, "updated_at": utcnow()}},
    )
    if not removed.modified_count:
        raise DomainError(
            ErrorCode.NOT_FOUND, "This is not the phone number on your account.", "number"
        )
    await audit.record(AuditKind.PHONE_REMOVED, meta, user_id=viewer.user_id)


async def _spend_code_allowance(meta: RequestMeta, user_id: ObjectId, number: str) -> None:
    """Count one code against each hourly allowance, or refuse (counting none) when one
    of them is spent."""
    subjects = (address_key(meta.ip), str(user_id), digest(number))
    spent: list[tuple[Throttle, str]] = []
    for (whose, throttle), subject in zip(_code_allowances, subjects, strict=True):
        spent.append((throttle, subject))
        if await throttle.hit(subject) > throttle.limit:
            for counted, its_subject in spent:
                await counted.forgive(its_subject)
            raise DomainError(
                ErrorCode.TOO_MANY_ATTEMPTS,
                f"Too many codes were sent {whose}; try again after "
                f"{guessing.clock(throttle.retry_after())}.",
                "phone",
            )


async def _text_code(services: Services, user_id: ObjectId, number: str, code: str) -> None:
    minutes = int(CODE_TTL.total_seconds() // 60)
    body = (
        f"{services.settings.marketplace_name}: {code} is your code to confirm this phone "
        f"number. It expires in {minutes} minutes. Do not share it."
    )
    try:
        await services.sms.send(number, body, f"phone-code:{user_id}:{uuid.uuid4().hex}")
    except NumberUnreachable as error:
        raise DomainError(
            ErrorCode.INVALID_INPUT, "This number cannot receive text messages.", "phone"
        ) from error
    except SmsFailed as error:
        raise DomainError(
            ErrorCode.SMS_UNAVAILABLE, "The code could not be sent now; try again later.", "phone"
        ) from error


async def _hold(user_id: ObjectId, phone: Phone, now: datetime) -> None:
    """Make `phone` the person's number, their preferences made if they had none."""
    preferences = NotificationPreferences.get_pymongo_collection()
    change = {
        "$set": {"phone": phone.model_dump(), "updated_at": now},
        "$setOnInsert": {"choices": {}, "quiet_hours": None, "push_subscriptions": []},
    }
    try:
        await preferences.update_one({"user_id": user_id}, change, upsert=True)
    except DuplicateKeyError:
        # A first write of this person's preferences raced ours: theirs exists now.
        await preferences.update_one({"user_id": user_id}, change)


async def _check(services: Services, user_id: ObjectId, code: str) -> Phone:
    phone = await my_phone(user_id)
    if phone is None or phone.code_hash is None or phone.code_expires_at is None:
        raise DomainError(
            ErrorCode.INVALID_STATE,
            "No code is waiting: ask for one with startPhoneVerification.",
            "code",
        )
    if phone.code_expires_at <= utcnow():
        raise DomainError(
            ErrorCode.CODE_EXPIRED, "This code has expired; ask for a new one.", "code"
        )
    typed = "".join(code.split())
    if not hmac.compare_digest(_code_hash(services, user_id, phone.number, typed), phone.code_hash):
        raise DomainError(ErrorCode.INVALID_CODE, "This is not the code we sent.", "code")
    now = utcnow()
    # Only while that code still waits: a new number asked for meanwhile is not verified.
    confirmed = await NotificationPreferences.get_pymongo_collection().update_one(
        {"user_id": user_id, "phone.number": phone.number, "phone.code_hash": phone.code_hash},
        {
            "$set": {
                "phone.verified_at": now,
                "phone.code_hash": None,
                "phone.code_expires_at": None,
                "updated_at": now,
            }
        },
    )
    if not confirmed.modified_count:
        raise DomainError(ErrorCode.INVALID_CODE, "This is not the code we sent.", "code")
    return Phone(number=phone.number, verified_at=now)


def _code_hash(services: Services, user_id: ObjectId, number: str, code: str) -> str:
    key = services.tokens.derived_key(CODE_KEY_LABEL)
    return hmac.new(key, f"{user_id}:{number}:{code}".encode(), hashlib.sha256).hexdigest()
