"""Mail about an account: single-use tokens and the messages that carry them, the note
to the owner of an address someone tried to sign up with, and sending them after the
request has its answer."""

from __future__ import annotations

from collections.abc import Coroutine
from contextvars import copy_context
from datetime import timedelta
from typing import Any
from urllib.parse import urlencode

from pymongo import ReturnDocument
from pymongo.asynchronous.client_session import AsyncClientSession

from documents.accounts.one_time_tokens import OneTimeToken, TokenPurpose
from documents.accounts.users import User
from documents.clock import utcnow
from documents.errors import DomainError, ErrorCode
from documents.transactions import run_in_transaction
from integrations.mail import Mail
from resolvers.accounts.auth.throttle import Throttle
from resolvers.accounts.auth.tokens import digest, new_secret
from resolvers.common.request_ids import request_id_var
from resolvers.common.services import Services

# At most this many link e-mails per address and hour, so nobody can mail-bomb an inbox.
MAILS_PER_ADDRESS_PER_HOUR = 5
mail_throttle = Throttle("mail", MAILS_PER_ADDRESS_PER_HOUR, timedelta(hours=1))

_PAGES = {TokenPurpose.VERIFY_EMAIL: "verify-email", TokenPurpose.RESET_PASSWORD: "reset-password"}


def mail_after_response(services: Services, compose: Coroutine[Any, Any, Mail | None]) -> None:
    """Prepare and send a mail once the request has its answer, so that neither the answer
    nor its timing shows whether there was an account to mail.

    The work is logged under the request's id with `/after` appended: what the client
    waited for and what followed stay apart.
    """
    context = copy_context()
    context.run(request_id_var.set, f"{request_id_var.get()}/after")
    services.postman.post_when_ready(compose, context)


async def link_mail(services: Services, user: User, purpose: TokenPurpose) -> Mail | None:
    """Replace any earlier token for this purpose with a new one, and the mail carrying
    it; None when the address has had its share of mails this hour."""
    assert user.id is not None and user.email is not None and user.email_key is not None
    if await mail_throttle.hit(user.email_key) > MAILS_PER_ADDRESS_PER_HOUR:
        return None
    ttl = _ttl(services, purpose)
    token, token_hash = new_secret()
    fresh = OneTimeToken(
        purpose=purpose,
        token_hash=token_hash,
        user_id=user.id,
        email_key=user.email_key,
        expires_at=utcnow() + ttl,
    )

    async def replace(db_session: AsyncClientSession) -> None:
        await OneTimeToken.find(
            OneTimeToken.user_id == user.id, OneTimeToken.purpose == purpose, session=db_session
        ).delete(session=db_session)
        await fresh.insert(session=db_session)

    await run_in_transaction(replace)
    return _compose(services, user, purpose, token, ttl)


async def address_taken_mail(services: Services, user: User) -> Mail | None:
    """Tell the owner of an address that someone tried to sign up with it; None when the
    address has had its share of mails this hour."""
    assert user.email is not None and user.email_key is not None
    if await mail_throttle.hit(user.email_key) > MAILS_PER_ADDRESS_PER_HOUR:
        return None
    body = (
        "Hello,\n\nsomeone tried to create an account with this e-mail address, "
        "which already has one. If it was you, log in instead, or reset your password "
        f"if you have forgotten it:\n{services.settings.app_url}\n\n"
        "If it was not you, ignore this message: your account stays as it is."
    )
    return Mail(to=user.email, subject="Someone tried to sign up with your address", text=body)


async def consume(
    purpose: TokenPurpose, token: str, db_session: AsyncClientSession
) -> OneTimeToken:
    """Mark a token used, exactly once; explain why when it cannot be."""
    token_hash = digest(token)
    now = utcnow()
    consumed = await OneTimeToken.get_pymongo_collection().find_one_and_update(
        {
            "token_hash": token_hash,
            "purpose": purpose.value,
            "used_at": None,
            "expires_at": {"$gt": now},
        },
        {"$set": {"used_at": now}},
        return_document=ReturnDocument.AFTER,
        session=db_session,
    )
    if consumed is not None:
        used: OneTimeToken = OneTimeToken.model_validate(consumed)
        return used
    known = await OneTimeToken.find_one(
        OneTimeToken.token_hash == token_hash, OneTimeToken.purpose == purpose, session=db_session
    )
    if known is not None and known.used_at is None:
        raise DomainError(
            ErrorCode.TOKEN_EXPIRED, "This link has expired; ask for a new one.", "token"
        )
    raise DomainError(
        ErrorCode.INVALID_TOKEN, "This link is not valid or was already used.", "token"
    )


def _ttl(services: Services, purpose: TokenPurpose) -> timedelta:
    settings = services.settings
    if purpose is TokenPurpose.VERIFY_EMAIL:
        return settings.email_verification_ttl
    return settings.password_reset_ttl


def _compose(
    services: Services, user: User, purpose: TokenPurpose, token: str, ttl: timedelta
) -> Mail:
    """The message, plain text of our own words, the link (built from GIGQL_APP_URL and
    the token) and the code: nothing that people wrote. The name on an account is
    whatever whoever signed up typed, and a verification mail goes to an address not yet
    proven theirs, so a name ("Your account is locked, see https://...") would be
    someone else's words in our mail."""
    assert user.email is not None
    link = (
        f"{services.settings.app_url.rstrip('/')}/{_PAGES[purpose]}?{urlencode({'token': token})}"
    )
    hours = ttl.total_seconds() / 3600
    valid_for = f"{hours:g} hour" + ("" if hours == 1 else "s")
    if purpose is TokenPurpose.VERIFY_EMAIL:
        subject = "Confirm your e-mail address"
        body = (
            f"Hello,\n\nconfirm your e-mail address by opening this link:\n{link}\n\n"
            f"Or enter this code: {token}\n\nThe link works once, for {valid_for}."
        )
    else:
        subject = "Reset your password"
        body = (
            "Hello,\n\nsomeone asked to reset the password of your account. "
            f"To choose a new one, open this link:\n{link}\n\nOr enter this code: {token}\n\n"
            f"The link works once, for {valid_for}. If you did not ask for it, ignore this "
            "message: your password stays as it is."
        )
    return Mail(to=user.email, subject=subject, text=body)
