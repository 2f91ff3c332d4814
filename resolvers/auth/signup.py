"""Creating accounts and confirming their e-mail addresses."""

from __future__ import annotations

from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.errors import DuplicateKeyError

from documents.audit import AuditKind
from documents.clock import utcnow
from documents.errors import DomainError, ErrorCode
from documents.one_time_tokens import TokenPurpose
from documents.transactions import run_in_transaction
from documents.users import Role, User, UserStatus, email_key
from resolvers import audit
from resolvers.auth import email_links, guessing
from resolvers.auth.password_allowance import spend_password_allowance
from resolvers.auth.passwords import password_problems
from resolvers.services import RequestMeta, Services
from resolvers.validation import Checked

EMAIL_TAKEN = "An account with this e-mail address already exists."


async def sign_up(
    services: Services,
    meta: RequestMeta,
    *,
    name: str,
    email: str,
    password: str,
    phone: str | None,
    roles: list[Role],
) -> User:
    checked = Checked()
    name = checked.name(name)
    email = checked.email(email)
    phone = checked.phone(phone)
    roles = checked.self_service_roles(roles)
    checked.add(password_problems(password, "password"))
    checked.raise_if_any()
    spend_password_allowance("password")
    if await User.find_one(User.email_key == email_key(email)) is not None:
        raise DomainError(ErrorCode.EMAIL_TAKEN, EMAIL_TAKEN, "email")

    user = User(
        name=name,
        email=email,
        email_key=email_key(email),
        phone=phone,
        roles=roles,
        password_hash=await services.passwords.hash(password),
    )
    try:
        await user.insert()
    except DuplicateKeyError as error:
        # Lost a race with a sign-up for the same address: the unique index decides.
        raise DomainError(ErrorCode.EMAIL_TAKEN, EMAIL_TAKEN, "email") from error
    await audit.record(AuditKind.SIGNUP, meta, user_id=user.id, roles=[r.value for r in roles])
    await email_links.send_link(services, user, TokenPurpose.VERIFY_EMAIL)
    return user


async def verify_email(services: Services, meta: RequestMeta, token: str) -> User:
    async def confirm(db_session: AsyncClientSession) -> User:
        used = await email_links.consume(TokenPurpose.VERIFY_EMAIL, token, db_session)
        user = await User.get(used.user_id, session=db_session)
        if user is None or user.status is UserStatus.DELETED or user.email_key != used.email_key:
            raise DomainError(ErrorCode.INVALID_TOKEN, "This link is no longer valid.", "token")
        if user.email_verified_at is None:
            user.email_verified_at = utcnow()
            user.updated_at = user.email_verified_at
            await user.save(session=db_session)
        return user

    async with guessing.token_check(services, meta, "verify_email"):
        user = await run_in_transaction(confirm)
    await audit.record(AuditKind.EMAIL_VERIFIED, meta, user_id=user.id)
    return user


async def resend_verification(services: Services, email: str) -> None:
    """Mail a fresh link if the address belongs to an unverified account; say nothing either way."""
    user = await User.find_one(User.email_key == email_key(email))
    if user is not None and user.status is UserStatus.ACTIVE and user.email_verified_at is None:
        await email_links.send_link(services, user, TokenPurpose.VERIFY_EMAIL)
