"""Logging in with e-mail and password, defended against guessing.

Two brakes: an account locks after `login_max_failures` consecutive failures (whoever
made them), and a client IP is refused after `login_ip_max_failures` failures in a
window (whichever accounts it tried). Unknown addresses cost the same time as known
ones and fail with the same error, so the answer does not reveal who has an account.
"""

from __future__ import annotations

from datetime import datetime

from bson import ObjectId
from pymongo import ReturnDocument

from documents.audit import AuditKind
from documents.clock import utcnow
from documents.errors import DomainError, ErrorCode
from documents.users import User, UserStatus, email_key
from resolvers import audit
from resolvers.auth.sessions import MAX_DEVICE_NAME_LENGTH, SignedIn, start_session
from resolvers.auth.throttle import Throttle
from resolvers.services import RequestMeta, Services
from resolvers.validation import Checked

INVALID_CREDENTIALS = "E-mail address or password is incorrect."


def _ip_throttle(services: Services) -> Throttle:
    settings = services.settings
    return Throttle("login-ip", settings.login_ip_max_failures, settings.login_ip_window)


async def login(
    services: Services, meta: RequestMeta, *, email: str, password: str, device_name: str | None
) -> SignedIn:
    # Before the password is looked at: a bad device name is no failed login.
    checked = Checked()
    device_name = checked.text(device_name or "", "deviceName", MAX_DEVICE_NAME_LENGTH) or None
    checked.raise_if_any()
    ip_throttle = _ip_throttle(services)
    client = meta.ip or "unknown"
    if await ip_throttle.exhausted(client):
        await audit.record(AuditKind.LOGIN_FAILED, meta, reason="ip_throttled")
        raise DomainError(
            ErrorCode.TOO_MANY_ATTEMPTS,
            "Too many failed logins from this network; "
            f"try again after {_clock(ip_throttle.retry_after())}.",
        )

    user = await User.find_one(User.email_key == email_key(email))
    if user is None or user.password_hash is None:
        await services.passwords.waste_time(password)
        await ip_throttle.hit(client)
        await audit.record(AuditKind.LOGIN_FAILED, meta, reason="unknown_account")
        raise DomainError(ErrorCode.INVALID_CREDENTIALS, INVALID_CREDENTIALS)
    assert user.id is not None

    if user.locked_until is not None and user.locked_until > utcnow():
        await audit.record(AuditKind.LOGIN_FAILED, meta, user_id=user.id, reason="locked")
        raise _locked(user.locked_until)

    if not await services.passwords.verify(user.password_hash, password):
        await ip_throttle.hit(client)
        await audit.record(AuditKind.LOGIN_FAILED, meta, user_id=user.id, reason="wrong_password")
        locked_until = await _count_failure(services, meta, user.id)
        if locked_until is not None:
            raise _locked(locked_until)
        raise DomainError(ErrorCode.INVALID_CREDENTIALS, INVALID_CREDENTIALS)

    # Only now, with the password proven, may the answer reveal the account's state.
    if user.status is UserStatus.SUSPENDED:
        await audit.record(AuditKind.LOGIN_FAILED, meta, user_id=user.id, reason="suspended")
        raise DomainError(ErrorCode.ACCOUNT_SUSPENDED, "This account is suspended.")

    await _reset_failures(services, user, password)
    signed_in = await start_session(services, meta, user, device_name)
    await audit.record(
        AuditKind.LOGIN_SUCCEEDED, meta, user_id=user.id, session_id=str(signed_in.session.id)
    )
    return signed_in


async def _count_failure(
    services: Services, meta: RequestMeta, user_id: ObjectId
) -> datetime | None:
    """Add a failure; lock the account when it reaches the limit. Returns the lock's end."""
    settings = services.settings
    users = User.get_pymongo_collection()
    counted = await users.find_one_and_update(
        {"_id": user_id},
        {"$inc": {"failed_logins": 1}},
        return_document=ReturnDocument.AFTER,
    )
    if counted is None or counted["failed_logins"] < settings.login_max_failures:
        return None
    locked_until = utcnow() + settings.login_lockout
    # Conditional, so that of several failures racing past the limit exactly one locks.
    locked = await users.update_one(
        {"_id": user_id, "failed_logins": {"$gte": settings.login_max_failures}},
        {"$set": {"failed_logins": 0, "locked_until": locked_until}},
    )
    if locked.modified_count:
        await audit.record(
            AuditKind.ACCOUNT_LOCKED, meta, user_id=user_id, until=locked_until.isoformat()
        )
    return locked_until


async def _reset_failures(services: Services, user: User, password: str) -> None:
    changes: dict[str, object] = {}
    if user.failed_logins or user.locked_until is not None:
        changes.update(failed_logins=0, locked_until=None)
    assert user.password_hash is not None
    if services.passwords.needs_rehash(user.password_hash):
        changes["password_hash"] = await services.passwords.hash(password)
    if changes:
        await User.get_pymongo_collection().update_one({"_id": user.id}, {"$set": changes})


def _locked(until: datetime) -> DomainError:
    return DomainError(
        ErrorCode.ACCOUNT_LOCKED,
        f"Too many failed logins: this account is locked until {_clock(until)}.",
    )


def _clock(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M UTC")
