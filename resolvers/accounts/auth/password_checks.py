"""Checking a password: the one way login and every confirmation of a password do it.

Login and the fields that ask a logged-in user for their password again (changePassword,
exportMyData, deleteMyAccount) share every defence against guessing:

- one password per request (password_allowance.py);
- checks per client IP, refused past `login_ip_max_failures` a window (guessing.py);
- `login_max_failures` wrong passwords in a row for one address lock it for
  `login_lockout`; failures a day old are forgotten;
- every wrong password, lock and refusal is audited.

Checks are counted before they are made, so that checks in flight count too: a burst of
concurrent requests gets no more guesses than the same requests one after another.
An address without an account is counted and locked the same way and costs the same
argon2 work: a wrong password, a lock and its message read the same either way.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from bson import ObjectId
from pymongo.asynchronous.client_session import AsyncClientSession

from documents.accounts.audit import AuditKind
from documents.accounts.throttle import PasswordLock
from documents.accounts.users import User
from documents.clock import utcnow
from documents.errors import DomainError, ErrorCode
from resolvers.accounts import audit
from resolvers.accounts.auth import guessing
from resolvers.accounts.auth.password_allowance import spend_password_allowance
from resolvers.accounts.auth.throttle import count_failure
from resolvers.accounts.auth.tokens import digest
from resolvers.common.services import RequestMeta, Services

FAILURE_MEMORY = timedelta(days=1)


@dataclass(frozen=True, slots=True)
class PasswordCheck:
    """Where a password is checked: how failures are audited and reported."""

    failure: AuditKind
    field: str
    """The input field holding the password."""
    wrong: str
    """The message answering a wrong password."""
    wrong_field: str | None
    """The field a wrong password is reported on (none at login: either may be wrong)."""

    def wrong_password(self) -> DomainError:
        return DomainError(ErrorCode.INVALID_CREDENTIALS, self.wrong, self.wrong_field)


LOGIN = PasswordCheck(
    AuditKind.LOGIN_FAILED, "password", "E-mail address or password is incorrect.", None
)


def confirmation(field: str) -> PasswordCheck:
    """A logged-in user giving their password again to confirm a sensitive change."""
    return PasswordCheck(
        AuditKind.PASSWORD_CHECK_FAILED, field, "The password is incorrect.", field
    )


async def check_password(
    services: Services,
    meta: RequestMeta,
    check: PasswordCheck,
    *,
    address: str,
    user: User | None,
    password: str,
) -> None:
    """Raise unless `password` is the password of `user`, the account at `address` (the
    lookup key of an e-mail address), if there is one."""
    spend_password_allowance(check.field)
    user_id = user.id if user is not None else None
    async with guessing.attempt(services, meta, check.failure, user_id=user_id) as attempt:
        lock_key = digest(address)
        failures = await _count_attempt(services, meta, check, lock_key, user)
        if user is not None and user.password_hash is not None:
            right = await services.passwords.verify(user.password_hash, password)
        else:
            await services.passwords.waste_time(password)
            right = False
        attempt.wrong = not right
    if right:
        await PasswordLock.get_pymongo_collection().delete_one({"key": lock_key})
        return

    reason = "wrong_password" if user is not None else "unknown_account"
    await audit.record(check.failure, meta, user_id=user_id, reason=reason)
    if failures >= services.settings.login_max_failures:
        raise await _lock(services, meta, lock_key, user_id)
    raise check.wrong_password()


async def forget_failures(address: str, db_session: AsyncClientSession | None = None) -> None:
    """Lift the lock of an address and forget its count (its owner proved control of it)."""
    await PasswordLock.get_pymongo_collection().delete_one(
        {"key": digest(address)}, session=db_session
    )


async def _count_attempt(
    services: Services, meta: RequestMeta, check: PasswordCheck, key: str, user: User | None
) -> int:
    """Count one more attempt on the address, or refuse while it is locked or while
    attempts in flight already fill what is left before the lock."""
    now = utcnow()
    user_id = user.id if user is not None else None
    locks = PasswordLock.get_pymongo_collection()
    lock = await locks.find_one({"key": key})
    locked_until = lock.get("locked_until") if lock is not None else None
    if locked_until is not None and locked_until > now:
        await audit.record(check.failure, meta, user_id=user_id, reason="locked")
        raise _locked(locked_until)
    if locked_until is not None:
        # The lock has run out: counting starts afresh (conditional: once, however many race).
        await locks.update_one(
            {"key": key, "locked_until": locked_until},
            {"$set": {"failures": 0, "locked_until": None}},
        )
    counted = await count_failure(
        locks, {"key": key}, {"$set": {"expires_at": now + FAILURE_MEMORY}}
    )
    if counted > services.settings.login_max_failures:
        await audit.record(check.failure, meta, user_id=user_id, reason="locked")
        raise await _lock(services, meta, key, user_id)
    return counted


async def _lock(
    services: Services, meta: RequestMeta, key: str, user_id: ObjectId | None
) -> DomainError:
    """Lock the address, unless an attempt racing this one did already. The count stays,
    so that attempts that read the address unlocked just before are refused all the same."""
    now = utcnow()
    locked_until = now + services.settings.login_lockout
    locked = await PasswordLock.get_pymongo_collection().update_one(
        {"key": key, "locked_until": None},
        {
            "$set": {
                "locked_until": locked_until,
                "expires_at": max(locked_until, now + FAILURE_MEMORY),
            }
        },
    )
    if locked.modified_count:
        await audit.record(
            AuditKind.ACCOUNT_LOCKED, meta, user_id=user_id, until=locked_until.isoformat()
        )
    return _locked(locked_until)


def _locked(until: datetime) -> DomainError:
    return DomainError(
        ErrorCode.ACCOUNT_LOCKED,
        f"Too many wrong passwords: this account is locked until {guessing.clock(until)}.",
    )
