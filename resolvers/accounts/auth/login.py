"""Logging in with e-mail and password, defended against guessing (password_checks.py).

Unknown addresses cost the same time as known ones and fail, and lock, with the same
answers, so that the answer does not reveal who has an account. Only once the password
is proven may it tell more (a suspended account).
"""

from __future__ import annotations

from documents.accounts.audit import AuditKind
from documents.accounts.users import User, UserStatus, email_key
from documents.errors import DomainError, ErrorCode
from resolvers.accounts import audit
from resolvers.accounts.auth.password_checks import LOGIN, check_password
from resolvers.accounts.auth.sessions import MAX_DEVICE_NAME_LENGTH, SignedIn, start_session
from resolvers.common.services import RequestMeta, Services
from resolvers.common.validation import Checked


async def login(
    services: Services, meta: RequestMeta, *, email: str, password: str, device_name: str | None
) -> SignedIn:
    # Before the password is looked at: a bad device name is no failed login.
    checked = Checked()
    device_name = checked.text(device_name or "", "deviceName", MAX_DEVICE_NAME_LENGTH) or None
    checked.raise_if_any()
    address = email_key(email)
    user = await User.find_one(User.email_key == address)
    await check_password(services, meta, LOGIN, address=address, user=user, password=password)
    assert user is not None and user.id is not None and user.password_hash is not None

    # Only now, with the password proven, may the answer reveal the account's state.
    if user.status is UserStatus.SUSPENDED:
        await audit.record(AuditKind.LOGIN_FAILED, meta, user_id=user.id, reason="suspended")
        raise DomainError(ErrorCode.ACCOUNT_SUSPENDED, "This account is suspended.")

    if services.passwords.needs_rehash(user.password_hash):
        await User.get_pymongo_collection().update_one(
            {"_id": user.id}, {"$set": {"password_hash": await services.passwords.hash(password)}}
        )
    signed_in = await start_session(services, meta, user, device_name)
    await audit.record(
        AuditKind.LOGIN_SUCCEEDED, meta, user_id=user.id, session_id=str(signed_in.session.id)
    )
    return signed_in
