"""Sign-up, login, token refresh, logout, e-mail verification and password recovery."""

from __future__ import annotations

from datetime import datetime

import strawberry
from starlette.requests import Request

from documents.accounts.users import Role
from resolvers.accounts.auth import login as login_cases
from resolvers.accounts.auth import recovery, signup
from resolvers.accounts.auth import sessions as session_cases
from resolvers.accounts.auth.sessions import SignedIn
from schema.accounts.users import MyAccount, UserNode
from schema.common.context import Context, Info
from schema.common.payloads import Payload, mutation_payload
from schema.common.permissions import IsAuthenticated, allow

COOKIE_PATH = "/graphql"


@strawberry.type(description="A fresh access token, and the refresh token to get the next one.")
class AuthTokens:
    access_token: str = strawberry.field(description="Send as `Authorization: Bearer <token>`.")
    access_token_expires_at: datetime
    refresh_token: str | None = strawberry.field(
        description="Null when it was set as an httpOnly cookie instead."
    )
    refresh_token_expires_at: datetime


@strawberry.input
class SignUpInput:
    name: str
    email: str
    password: str = strawberry.field(
        description="8+ characters with upper and lower case, a digit and a symbol; "
        "not a common password."
    )
    phone: str | None = None
    roles: list[Role] = strawberry.field(description="Any of POSTER and TASKER.")


@strawberry.type(
    description="Succeeds alike whether or not the address already has an account: tell "
    "the person to check their e-mail (a confirmation link, or a note that the address has "
    "an account), then log in."
)
class SignUpPayload(Payload):
    user: UserNode | None = strawberry.field(
        default=None,
        deprecation_reason="Always null: the answer does not tell whether the address "
        "already had an account. Log in to get the user.",
    )


@strawberry.input
class VerifyEmailInput:
    token: str


@strawberry.type
class VerifyEmailPayload(Payload):
    user: UserNode | None = None
    account: MyAccount | None = strawberry.field(
        default=None, description="The verified account, with its own private fields."
    )


@strawberry.input
class ResendVerificationEmailInput:
    email: str


@strawberry.type(description="Succeeds whether or not the address has an account.")
class ResendVerificationEmailPayload(Payload):
    pass


@strawberry.input
class LoginInput:
    email: str
    password: str
    device_name: str | None = strawberry.field(
        default=None, description="Shown in the session list."
    )
    refresh_token_in_cookie: bool = strawberry.field(
        default=False,
        description="Set the refresh token as an httpOnly, Secure, SameSite cookie for browsers.",
    )


@strawberry.type
class LoginPayload(Payload):
    user: UserNode | None = None
    account: MyAccount | None = strawberry.field(
        default=None, description="The logged-in account, with its own private fields."
    )
    tokens: AuthTokens | None = None


@strawberry.input
class RefreshTokenInput:
    refresh_token: str | None = strawberry.field(
        default=None, description="Omit to use the refresh-token cookie."
    )


@strawberry.type
class RefreshTokenPayload(Payload):
    tokens: AuthTokens | None = None


@strawberry.input
class LogoutInput:
    refresh_token: str | None = strawberry.field(
        default=None,
        description="The session's refresh token; "
        "omit to end the session of the access token or cookie.",
    )


@strawberry.type
class LogoutPayload(Payload):
    pass


@strawberry.input
class LogoutEverywhereInput:
    keep_current_session: bool = False


@strawberry.type
class LogoutEverywherePayload(Payload):
    revoked_sessions: int | None = None


@strawberry.input
class RequestPasswordResetInput:
    email: str


@strawberry.type(description="Succeeds whether or not the address has an account.")
class RequestPasswordResetPayload(Payload):
    pass


@strawberry.input
class ResetPasswordInput:
    token: str
    new_password: str


@strawberry.type(description="Every session of the account has ended; log in again.")
class ResetPasswordPayload(Payload):
    user: UserNode | None = None


@strawberry.input
class ChangePasswordInput:
    current_password: str
    new_password: str


@strawberry.type(description="Other sessions have ended; this one goes on.")
class ChangePasswordPayload(Payload):
    revoked_sessions: int | None = None


def _tokens(context: Context, signed_in: SignedIn, use_cookie: bool) -> AuthTokens:
    refresh = signed_in.refresh
    if use_cookie:
        _set_refresh_cookie(context, refresh.token)
    return AuthTokens(
        access_token=signed_in.access.token,
        access_token_expires_at=signed_in.access.expires_at,
        refresh_token=None if use_cookie else refresh.token,
        refresh_token_expires_at=refresh.expires_at,
    )


def _set_refresh_cookie(context: Context, token: str) -> None:
    assert context.response is not None, "cookies need an HTTP response"
    settings = context.services.settings
    context.response.set_cookie(
        settings.refresh_cookie_name,
        token,
        max_age=int(settings.refresh_token_ttl.total_seconds()),
        path=COOKIE_PATH,
        secure=True,
        httponly=True,
        samesite=settings.refresh_cookie_samesite,
    )


def _cookie_token(context: Context) -> str | None:
    request = context.request
    if not isinstance(request, Request):
        return None
    return request.cookies.get(context.services.settings.refresh_cookie_name)


def _clear_refresh_cookie(context: Context) -> None:
    if context.response is not None and _cookie_token(context) is not None:
        settings = context.services.settings
        context.response.delete_cookie(
            settings.refresh_cookie_name,
            path=COOKIE_PATH,
            secure=True,
            httponly=True,
            samesite=settings.refresh_cookie_samesite,
        )


@strawberry.type
class AuthMutation:
    @strawberry.mutation(description="Create an account; a confirmation link is e-mailed.")
    @mutation_payload
    async def sign_up(self, info: Info, input: SignUpInput) -> SignUpPayload:
        await signup.sign_up(
            info.context.services,
            info.context.meta,
            name=input.name,
            email=input.email,
            password=input.password,
            phone=input.phone,
            roles=input.roles,
        )
        return SignUpPayload()

    @strawberry.mutation
    @mutation_payload
    async def verify_email(self, info: Info, input: VerifyEmailInput) -> VerifyEmailPayload:
        user = await signup.verify_email(info.context.services, info.context.meta, input.token)
        return VerifyEmailPayload(user=UserNode.of(user), account=MyAccount.of(user))

    @strawberry.mutation
    @mutation_payload
    async def resend_verification_email(
        self, info: Info, input: ResendVerificationEmailInput
    ) -> ResendVerificationEmailPayload:
        signup.resend_verification(info.context.services, input.email)
        return ResendVerificationEmailPayload()

    @strawberry.mutation
    @mutation_payload
    async def login(self, info: Info, input: LoginInput) -> LoginPayload:
        signed_in = await login_cases.login(
            info.context.services,
            info.context.meta,
            email=input.email,
            password=input.password,
            device_name=input.device_name,
        )
        return LoginPayload(
            user=UserNode.of(signed_in.user),
            account=MyAccount.of(signed_in.user),
            tokens=_tokens(info.context, signed_in, input.refresh_token_in_cookie),
        )

    @strawberry.mutation(description="Rotate the refresh token; each one works once.")
    @mutation_payload
    async def refresh_token(self, info: Info, input: RefreshTokenInput) -> RefreshTokenPayload:
        from_cookie = input.refresh_token is None
        token = input.refresh_token or _cookie_token(info.context) or ""
        signed_in = await session_cases.refresh(info.context.services, info.context.meta, token)
        return RefreshTokenPayload(tokens=_tokens(info.context, signed_in, from_cookie))

    @strawberry.mutation(description="End the current session.")
    @mutation_payload
    async def logout(self, info: Info, input: LogoutInput) -> LogoutPayload:
        refresh_token = input.refresh_token or _cookie_token(info.context)
        viewer = None if refresh_token else await info.context.viewer()
        await session_cases.logout(
            info.context.services, info.context.meta, viewer=viewer, refresh_token=refresh_token
        )
        _clear_refresh_cookie(info.context)
        return LogoutPayload()

    @strawberry.mutation(extensions=allow(IsAuthenticated()), description="End all my sessions.")
    @mutation_payload
    async def logout_everywhere(
        self, info: Info, input: LogoutEverywhereInput
    ) -> LogoutEverywherePayload:
        viewer = await info.context.require_viewer()
        count = await session_cases.logout_everywhere(
            info.context.services,
            info.context.meta,
            viewer,
            keep_current=input.keep_current_session,
        )
        if not input.keep_current_session:
            _clear_refresh_cookie(info.context)
        return LogoutEverywherePayload(revoked_sessions=count)

    @strawberry.mutation(description="E-mail a password reset link, valid for one hour.")
    @mutation_payload
    async def request_password_reset(
        self, info: Info, input: RequestPasswordResetInput
    ) -> RequestPasswordResetPayload:
        recovery.request_password_reset(info.context.services, info.context.meta, input.email)
        return RequestPasswordResetPayload()

    @strawberry.mutation
    @mutation_payload
    async def reset_password(self, info: Info, input: ResetPasswordInput) -> ResetPasswordPayload:
        user = await recovery.reset_password(
            info.context.services, info.context.meta, input.token, input.new_password
        )
        return ResetPasswordPayload(user=UserNode.of(user))

    @strawberry.mutation(extensions=allow(IsAuthenticated()))
    @mutation_payload
    async def change_password(
        self, info: Info, input: ChangePasswordInput
    ) -> ChangePasswordPayload:
        viewer = await info.context.require_viewer()
        count = await recovery.change_password(
            info.context.services,
            info.context.meta,
            viewer,
            input.current_password,
            input.new_password,
        )
        return ChangePasswordPayload(revoked_sessions=count)
