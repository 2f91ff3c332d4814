"""Users and their sessions; the caller's own account."""

from __future__ import annotations

from collections.abc import Awaitable, Iterable
from datetime import datetime
from typing import TYPE_CHECKING, Annotated

import strawberry
from bson import ObjectId
from strawberry import relay
from strawberry.extensions import FieldExtension
from strawberry.scalars import JSON

from documents.accounts.sessions import Session
from documents.accounts.users import Role, User, UserStatus
from documents.marketplace.reviews import ReviewedAs
from resolvers.accounts import own_account as accounts
from resolvers.accounts.auth import sessions as session_cases
from resolvers.common.inputs import KEEP
from resolvers.common.pagination import paginate
from resolvers.marketplace import reviews
from schema.common.context import Info
from schema.common.copying import copied
from schema.common.payloads import Payload, mutation_payload
from schema.common.permissions import IsAuthenticated, IsOwnerOrAdmin, MaySeeContacts, allow
from schema.common.relay import (
    decode_id,
    object_ids,
    owned_documents,
    requested_page,
    to_connection,
)
from schema.common.values import given

if TYPE_CHECKING:
    from schema.accounts.profiles import CustomerProfileType, ProviderProfileType
    from schema.marketplace.reviews import ReviewConnection

RoleType = strawberry.enum(Role, name="Role", description="What a user may do on the marketplace.")
UserStatusType = strawberry.enum(UserStatus, name="UserStatus")
ReviewedAsType = strawberry.enum(
    ReviewedAs, name="ReviewedAs", description="The role in which someone was reviewed."
)


def private() -> list[FieldExtension]:
    """For the object's owner and admins; null for everyone else."""
    return allow(IsOwnerOrAdmin(), silent=True)


@strawberry.type(name="User", description="A person on the marketplace, as others see them.")
class UserNode(relay.Node):
    id: relay.NodeID[str]
    name: str
    roles: list[Role]
    created_at: datetime
    doc: strawberry.Private[User]

    @classmethod
    def of(cls, user: User) -> UserNode:
        return copied(cls, user, id=str(user.id), doc=user)

    @property
    def owner_id(self) -> ObjectId:
        assert self.doc.id is not None
        return self.doc.id

    @classmethod
    async def resolve_nodes(  # type: ignore[override] # one signature serves all overloads
        cls, *, info: Info, node_ids: Iterable[str], required: bool = False
    ) -> list[UserNode | None]:
        ids = object_ids(node_ids)
        users = await info.context.loaders.users.load_many([i for i in ids if i is not None])
        found: dict[ObjectId | None, User] = {u.id: u for u in users if u is not None}
        return [cls.of(found[i]) if i in found else None for i in ids]

    @strawberry.field(
        extensions=allow(MaySeeContacts(), silent=True),
        description="Only for the user, admins, and people working with them.",
    )
    def email(self) -> str | None:
        return self.doc.email

    @strawberry.field(extensions=private(), description="Only for the user and admins.")
    def email_verified(self) -> bool | None:
        return self.doc.email_verified_at is not None

    @strawberry.field(
        extensions=allow(MaySeeContacts(), silent=True),
        description="Only for the user, admins, and people working with them.",
    )
    def phone(self) -> str | None:
        return self.doc.phone

    @strawberry.field(extensions=private(), description="Only for the user and admins.")
    def status(self) -> UserStatus | None:
        return self.doc.status

    @strawberry.field(description="For taskers who have set one up.")
    async def provider_profile(
        self, info: Info
    ) -> Annotated[ProviderProfileType, strawberry.lazy("schema.accounts.profiles")] | None:
        from schema.accounts.profiles import ProviderProfileType

        profile = await info.context.loaders.provider_profiles.load(self.owner_id)
        return ProviderProfileType.of(profile) if profile else None

    @strawberry.field(description="Saved addresses (for the user) and how providers rated them.")
    async def customer_profile(
        self, info: Info
    ) -> Annotated[CustomerProfileType, strawberry.lazy("schema.accounts.profiles")] | None:
        from schema.accounts.profiles import CustomerProfileType

        profile = await info.context.loaders.customer_profiles.load(self.owner_id)
        return CustomerProfileType.of(profile) if profile else None

    @strawberry.field(description="Published reviews of this user, newest first.")
    async def reviews(
        self,
        info: Info,
        first: int | None = None,
        after: str | None = None,
        as_: Annotated[
            ReviewedAs | None,
            strawberry.argument(name="as", description="Only those of this role; default both."),
        ] = None,
    ) -> Annotated[ReviewConnection, strawberry.lazy("schema.marketplace.reviews")]:
        from schema.marketplace.reviews import review_connection

        page = await reviews.reviews_of(self.owner_id, as_, requested_page(info, first, after))
        return review_connection(page)

    @strawberry.field(
        extensions=private(), description="Active sessions, most recently used first."
    )
    async def sessions(
        self, info: Info, first: int | None = None, after: str | None = None
    ) -> SessionConnection | None:
        page = await paginate(
            Session,
            {"user_id": self.owner_id, "revoked_at": None},
            [("last_used_at", -1), ("_id", -1)],
            requested_page(info, first, after),
        )
        viewer = await info.context.viewer()
        current = viewer.session_id if viewer else None
        return to_connection(SessionConnection, page, lambda s: SessionNode.of(s, current))


@strawberry.type(name="Session", description="A logged-in device: one refresh-token family.")
class SessionNode(relay.Node):
    id: relay.NodeID[str]
    device: str | None = strawberry.field(
        description="The device name given at login, else its user agent."
    )
    user_agent: str | None
    ip: str | None
    created_at: datetime
    last_used_at: datetime = strawberry.field(description="Last login or token refresh.")
    expires_at: datetime
    current: bool = strawberry.field(description="Whether this is the session making the request.")
    doc: strawberry.Private[Session]

    @classmethod
    def of(cls, session: Session, current: ObjectId | None) -> SessionNode:
        return copied(
            cls,
            session,
            id=str(session.id),
            device=session.device_name or session.user_agent,
            current=session.id == current,
            doc=session,
        )

    @classmethod
    async def resolve_nodes(  # type: ignore[override] # one signature serves all overloads
        cls, *, info: Info, node_ids: Iterable[str], required: bool = False
    ) -> list[SessionNode | None]:
        sessions = await owned_documents(info, node_ids, Session, "user_id")
        viewer = await info.context.viewer()
        current = viewer.session_id if viewer else None
        return [cls.of(s, current) if s else None for s in sessions]


@strawberry.type
class SessionConnection(relay.Connection[SessionNode]):
    pass


@strawberry.type(
    name="MyAccount",
    description="The caller's own account with its private fields, for answers given "
    "before the request carries the account's token (login, verifyEmail).",
)
class MyAccount:
    user: UserNode = strawberry.field(description="The account as the graph shows it.")
    email: str | None = strawberry.field(description="Null only once the account is deleted.")
    email_verified: bool
    status: UserStatus
    roles: list[Role]

    @classmethod
    def of(cls, user: User) -> MyAccount:
        return copied(
            cls, user, user=UserNode.of(user), email_verified=user.email_verified_at is not None
        )


@strawberry.type
class UserQuery:
    @strawberry.field(extensions=allow(IsAuthenticated()), description="The logged-in user.")
    async def me(self, info: Info) -> UserNode:
        viewer = await info.context.require_viewer()
        return UserNode.of(viewer.user)


@strawberry.input
class UpdateProfileInput:
    name: str | None = strawberry.UNSET
    phone: str | None = strawberry.field(
        default=strawberry.UNSET, description="E.164, like +14155550123; null removes it."
    )
    roles: list[Role] | None = strawberry.field(
        default=strawberry.UNSET, description="The working roles to hold (poster, tasker)."
    )


@strawberry.type
class UpdateProfilePayload(Payload):
    user: UserNode | None = None


@strawberry.input
class RevokeSessionInput:
    session_id: relay.GlobalID


@strawberry.type
class RevokeSessionPayload(Payload):
    session_id: relay.GlobalID | None = None


@strawberry.input
class ExportMyDataInput:
    password: str = strawberry.field(description="The account password, to confirm it is you.")


@strawberry.type
class ExportMyDataPayload(Payload):
    data: JSON | None = None


@strawberry.input
class DeleteMyAccountInput:
    password: str = strawberry.field(description="The account password, to confirm it is you.")


@strawberry.type
class DeleteMyAccountPayload(Payload):
    deleted_user_id: relay.GlobalID | None = None


@strawberry.type
class UserMutation:
    @strawberry.mutation(extensions=allow(IsAuthenticated()))
    @mutation_payload
    async def update_profile(self, info: Info, input: UpdateProfileInput) -> UpdateProfilePayload:
        viewer = await info.context.require_viewer()
        # Absent means "leave as is"; null too, except for phone, where it removes it.
        user = await accounts.update_profile(
            info.context.services,
            info.context.meta,
            viewer,
            name=given(input.name),
            phone=KEEP if input.phone is strawberry.UNSET else input.phone,
            roles=given(input.roles),
        )
        return UpdateProfilePayload(user=UserNode.of(user))

    @strawberry.mutation(extensions=allow(IsAuthenticated()), description="End one of my sessions.")
    @mutation_payload
    async def revoke_session(self, info: Info, input: RevokeSessionInput) -> RevokeSessionPayload:
        viewer = await info.context.require_viewer()
        session_id = decode_id(input.session_id, SessionNode, "sessionId")
        await session_cases.revoke_own_session(
            info.context.services, info.context.meta, viewer, session_id
        )
        return RevokeSessionPayload(session_id=input.session_id)

    @strawberry.mutation(extensions=allow(IsAuthenticated()), description="A copy of all my data.")
    @mutation_payload
    async def export_my_data(self, info: Info, input: ExportMyDataInput) -> ExportMyDataPayload:
        viewer = await info.context.require_viewer()
        data = await accounts.export_my_data(
            info.context.services, info.context.meta, viewer, input.password
        )
        return ExportMyDataPayload(data=JSON(data))

    @strawberry.mutation(
        extensions=allow(IsAuthenticated()),
        description="Erase my personal data and end every session. Cannot be undone.",
    )
    @mutation_payload
    async def delete_my_account(
        self, info: Info, input: DeleteMyAccountInput
    ) -> DeleteMyAccountPayload:
        viewer = await info.context.require_viewer()
        await accounts.delete_my_account(
            info.context.services, info.context.meta, viewer, input.password
        )
        return DeleteMyAccountPayload(deleted_user_id=relay.GlobalID("User", str(viewer.user_id)))


async def user_node(info: Info, user_id: ObjectId | None) -> UserNode | None:
    """The user `user_id` names, read through the request's loader; None for none."""
    if user_id is None:
        return None
    user = await info.context.loaders.users.load(user_id)
    return UserNode.of(user) if user else None


def user_node_now(info: Info, user_id: ObjectId) -> UserNode | Awaitable[UserNode | None] | None:
    """Like `user_node`, but without a coroutine when the loader has the user already
    (a page that read its users ahead, say): in a list, graphql-core waits for items
    that are awaitable with a task each, where items that are not complete at once."""
    loaded = info.context.loaders.users.cache_map.get(user_id)
    if loaded is not None and loaded.done() and not loaded.cancelled() and not loaded.exception():
        user = loaded.result()
        return UserNode.of(user) if user else None
    return user_node(info, user_id)
