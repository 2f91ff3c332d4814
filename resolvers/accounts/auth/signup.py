"""Creating accounts and confirming their e-mail addresses."""

from __future__ import annotations

from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.errors import DuplicateKeyError

from documents.accounts.audit import AuditKind
from documents.accounts.one_time_tokens import TokenPurpose
from documents.accounts.users import Role, User, UserStatus, email_key
from documents.clock import utcnow
from documents.errors import DomainError, ErrorCode
from documents.transactions import run_in_transaction
from integrations.mail import Mail
from realtime.signals import announce_access_change
from resolvers.accounts import audit
from resolvers.accounts.auth import email_links, guessing
from resolvers.accounts.auth.password_allowance import spend_password_allowance
from resolvers.accounts.auth.passwords import password_problems
from resolvers.common.services import RequestMeta, Services
from resolvers.common.validation import Checked


async def sign_up(
    services: Services,
    meta: RequestMeta,
    *,
    name: str,
    email: str,
    password: str,
    phone: str | None,
    roles: list[Role],
) -> None:
    """Create an account and mail its confirmation link; the answer is the same when the
    address has an account already (its owner is mailed instead), so that signing up
    does not tell who has one.

    Both ways the request does the same work: the password is hashed and the account
    inserted, where the unique index refuses a taken address. What follows, different
    for each, is done after the answer (email_links.mail_after_response).
    """
    checked = Checked()
    name = checked.name(name)
    email = checked.email(email)
    phone = checked.phone(phone)
    roles = checked.self_service_roles(roles)
    checked.add(password_problems(password, "password"))
    checked.raise_if_any()
    spend_password_allowance("password")

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
    except DuplicateKeyError:
        # The unique index decides, also between sign-ups racing for one address.
        email_links.mail_after_response(services, _tell_owner(services, meta, email_key(email)))
        return
    email_links.mail_after_response(services, _welcome(services, meta, user))


async def _welcome(services: Services, meta: RequestMeta, user: User) -> Mail | None:
    await audit.record(AuditKind.SIGNUP, meta, user_id=user.id, roles=[r.value for r in user.roles])
    return await email_links.link_mail(services, user, TokenPurpose.VERIFY_EMAIL)


async def _tell_owner(services: Services, meta: RequestMeta, address: str) -> Mail | None:
    owner = await User.find_one(User.email_key == address)
    if owner is None:  # erased since
        return None
    await audit.record(AuditKind.SIGNUP_ADDRESS_TAKEN, meta, user_id=owner.id)
    return await email_links.address_taken_mail(services, owner)


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
    assert user.id is not None
    await announce_access_change(services.broker, user.id)  # sockets read it again
    await audit.record(AuditKind.EMAIL_VERIFIED, meta, user_id=user.id)
    return user


def resend_verification(services: Services, email: str) -> None:
    """Mail a fresh link if the address belongs to an unverified account, after the
    answer, which is the same either way."""
    email_links.mail_after_response(services, _fresh_link(services, email_key(email)))


async def _fresh_link(services: Services, address: str) -> Mail | None:
    user = await User.find_one(User.email_key == address)
    if user is None or user.status is not UserStatus.ACTIVE or user.email_verified_at is not None:
        return None
    return await email_links.link_mail(services, user, TokenPurpose.VERIFY_EMAIL)
