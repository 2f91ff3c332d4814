"""Changing a password: knowing the old one, or proving control of the e-mail address."""

from __future__ import annotations

from pymongo.asynchronous.client_session import AsyncClientSession

from documents.accounts.audit import AuditKind
from documents.accounts.one_time_tokens import TokenPurpose
from documents.accounts.sessions import RevokeReason
from documents.accounts.users import User, UserStatus, email_key
from documents.clock import utcnow
from documents.errors import DomainError, ErrorCode
from documents.transactions import run_in_transaction
from integrations.mail import Mail
from realtime.signals import announce_access_change
from resolvers.accounts import audit
from resolvers.accounts.auth import email_links, guessing
from resolvers.accounts.auth.password_allowance import spend_password_allowance
from resolvers.accounts.auth.password_checks import check_password, confirmation, forget_failures
from resolvers.accounts.auth.passwords import password_problems
from resolvers.accounts.auth.sessions import revoke_all_sessions
from resolvers.accounts.auth.viewer import Viewer
from resolvers.common.services import RequestMeta, Services
from resolvers.common.validation import Checked


def request_password_reset(services: Services, meta: RequestMeta, email: str) -> None:
    """Mail a reset link if the address has an account, after the answer, which is the
    same either way."""
    email_links.mail_after_response(services, _reset_link(services, meta, email_key(email)))


async def _reset_link(services: Services, meta: RequestMeta, address: str) -> Mail | None:
    user = await User.find_one(User.email_key == address)
    if user is None or user.status is not UserStatus.ACTIVE:
        return None
    mail = await email_links.link_mail(services, user, TokenPurpose.RESET_PASSWORD)
    if mail is not None:
        await audit.record(AuditKind.PASSWORD_RESET_REQUESTED, meta, user_id=user.id)
    return mail


async def reset_password(
    services: Services, meta: RequestMeta, token: str, new_password: str
) -> User:
    """Set a new password with a mailed token; every session of the account ends."""
    checked = Checked()
    checked.add(password_problems(new_password, "newPassword"))
    checked.raise_if_any()
    spend_password_allowance("newPassword")
    async with guessing.token_check(services, meta, "reset_password"):
        user, revoked = await _reset(services, token, new_password)
    assert user.id is not None
    await announce_access_change(services.broker, user.id)
    await audit.record(AuditKind.PASSWORD_RESET, meta, user_id=user.id, sessions_revoked=revoked)
    return user


async def _reset(services: Services, token: str, new_password: str) -> tuple[User, int]:
    password_hash = await services.passwords.hash(new_password)

    async def apply(db_session: AsyncClientSession) -> tuple[User, int]:
        used = await email_links.consume(TokenPurpose.RESET_PASSWORD, token, db_session)
        user = await User.get(used.user_id, session=db_session)
        if user is None or user.status is not UserStatus.ACTIVE or user.email_key != used.email_key:
            raise DomainError(ErrorCode.INVALID_TOKEN, "This link is no longer valid.", "token")
        now = utcnow()
        user.password_hash = password_hash
        # Following the mailed link proved the address as well.
        user.email_verified_at = user.email_verified_at or now
        user.updated_at = now
        await user.save(session=db_session)
        assert user.id is not None
        revoked = await revoke_all_sessions(
            user.id, RevokeReason.PASSWORD_RESET, db_session=db_session
        )
        await forget_failures(used.email_key, db_session)
        return user, revoked

    return await run_in_transaction(apply)


async def change_password(
    services: Services, meta: RequestMeta, viewer: Viewer, current_password: str, new_password: str
) -> int:
    """Replace the password; other sessions end, this one stays. Returns how many ended."""
    user = viewer.user
    checked = Checked()
    checked.add(password_problems(new_password, "newPassword"))
    if new_password == current_password:
        checked.fail(
            ErrorCode.INVALID_INPUT,
            "The new password must differ from the current one.",
            "newPassword",
        )
    checked.raise_if_any()
    assert user.email_key is not None  # only erased accounts lack one, and they cannot log in
    await check_password(
        services,
        meta,
        confirmation("currentPassword"),
        address=user.email_key,
        user=user,
        password=current_password,
    )
    password_hash = await services.passwords.hash(new_password)

    async def apply(db_session: AsyncClientSession) -> int:
        await User.get_pymongo_collection().update_one(
            {"_id": viewer.user_id},
            {"$set": {"password_hash": password_hash, "updated_at": utcnow()}},
            session=db_session,
        )
        return await revoke_all_sessions(
            viewer.user_id,
            RevokeReason.PASSWORD_CHANGED,
            keep=viewer.session_id,
            db_session=db_session,
        )

    revoked = await run_in_transaction(apply)
    await announce_access_change(services.broker, viewer.user_id)  # the others' sockets end
    await audit.record(
        AuditKind.PASSWORD_CHANGED, meta, user_id=viewer.user_id, sessions_revoked=revoked
    )
    return revoked
