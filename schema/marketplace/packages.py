"""Service packages as the graph shows them, and the mutations providers manage them with."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import TypeVar

import strawberry
from bson import ObjectId
from strawberry import relay

from documents.marketplace.packages import PackageType, ServicePackage
from resolvers.marketplace import packages
from schema.accounts.users import UserNode, user_node
from schema.common.context import Info
from schema.common.copying import copied
from schema.common.payloads import Payload, input_mutation, mutation_payload
from schema.common.permissions import IsAuthenticated, allow
from schema.common.relay import decode_id, object_ids
from schema.common.values import MoneyInputType, MoneyType, given, given_as

PackageTypeType = strawberry.enum(PackageType, name="PackageType")


@strawberry.type(
    name="ServicePackage", description="A service a provider sells at a fixed price and length."
)
class ServicePackageNode(relay.Node):
    id: relay.NodeID[str]
    name: str
    description: str
    price: MoneyType
    duration_minutes: int
    type: PackageType
    active: bool = strawberry.field(description="Inactive packages take no new bookings.")
    created_at: datetime
    updated_at: datetime
    doc: strawberry.Private[ServicePackage]

    @classmethod
    def of(cls, package: ServicePackage) -> ServicePackageNode:
        return copied(
            cls, package, id=str(package.id), price=MoneyType.of(package.price), doc=package
        )

    @classmethod
    async def resolve_nodes(  # type: ignore[override] # one signature serves all overloads
        cls, *, info: Info, node_ids: Iterable[str], required: bool = False
    ) -> list[ServicePackageNode | None]:
        ids = object_ids(node_ids)
        found_packages = await info.context.loaders.packages.load_many(
            [i for i in ids if i is not None]
        )
        found: dict[ObjectId | None, ServicePackage] = {
            p.id: p for p in found_packages if p is not None
        }
        return [cls.of(found[i]) if i in found else None for i in ids]

    @strawberry.field
    async def provider(self, info: Info) -> UserNode:
        provider = await user_node(info, self.doc.provider_id)
        assert provider is not None
        return provider


@strawberry.input
class CreateServicePackageInput:
    name: str
    description: str
    price: MoneyInputType
    duration_minutes: int = strawberry.field(description="15 to 720, in steps of 5.")
    type: PackageType


@strawberry.input
class UpdateServicePackageInput:
    package_id: relay.GlobalID
    name: str | None = strawberry.UNSET
    description: str | None = strawberry.UNSET
    price: MoneyInputType | None = strawberry.UNSET
    duration_minutes: int | None = strawberry.UNSET
    type: PackageType | None = strawberry.UNSET


@strawberry.input
class DeactivateServicePackageInput:
    package_id: relay.GlobalID


@strawberry.input
class ReactivateServicePackageInput(DeactivateServicePackageInput):
    pass


@strawberry.type
class ServicePackagePayload(Payload):
    package: ServicePackageNode | None = None


@strawberry.type
class CreateServicePackagePayload(ServicePackagePayload):
    pass


@strawberry.type
class UpdateServicePackagePayload(ServicePackagePayload):
    pass


@strawberry.type
class DeactivateServicePackagePayload(ServicePackagePayload):
    pass


@strawberry.type
class ReactivateServicePackagePayload(ServicePackagePayload):
    pass


ToggleInput = TypeVar("ToggleInput", bound=DeactivateServicePackageInput)
TogglePayload = TypeVar("TogglePayload", bound=ServicePackagePayload)


def _set_active(
    input_type: type[ToggleInput],
    payload_type: type[TogglePayload],
    *,
    active: bool,
    description: str,
) -> TogglePayload:
    """A mutation making a package take new bookings (`active`) or not."""

    async def run(info: Info, input: ToggleInput) -> TogglePayload:
        viewer = await info.context.require_viewer()
        package_id = decode_id(input.package_id, ServicePackageNode, "packageId")
        package = await packages.set_package_active(
            info.context.services, viewer, package_id, active
        )
        return payload_type(package=ServicePackageNode.of(package))

    return input_mutation(
        input_type,
        payload_type,
        run,
        extensions=allow(IsAuthenticated()),
        description=description,
    )


@strawberry.type
class PackageMutation:
    @strawberry.mutation(
        extensions=allow(IsAuthenticated()),
        description="Providers: offer a service at a fixed price and duration.",
    )
    @mutation_payload
    async def create_service_package(
        self, info: Info, input: CreateServicePackageInput
    ) -> CreateServicePackagePayload:
        viewer = await info.context.require_viewer()
        package = await packages.create_package(
            info.context.services,
            viewer,
            name=input.name,
            description=input.description,
            price=input.price.value(),
            duration_minutes=input.duration_minutes,
            type=input.type,
        )
        return CreateServicePackagePayload(package=ServicePackageNode.of(package))

    @strawberry.mutation(
        extensions=allow(IsAuthenticated()),
        description="Change a package; bookings already made keep what was agreed.",
    )
    @mutation_payload
    async def update_service_package(
        self, info: Info, input: UpdateServicePackageInput
    ) -> UpdateServicePackagePayload:
        viewer = await info.context.require_viewer()
        package = await packages.update_package(
            info.context.services,
            viewer,
            decode_id(input.package_id, ServicePackageNode, "packageId"),
            name=given(input.name),
            description=given(input.description),
            price=given_as(input.price, MoneyInputType.value),
            duration_minutes=given(input.duration_minutes),
            type=given(input.type),
        )
        return UpdateServicePackagePayload(package=ServicePackageNode.of(package))

    deactivate_service_package = _set_active(
        DeactivateServicePackageInput,
        DeactivateServicePackagePayload,
        active=False,
        description="Stop taking bookings for a package; bookings already made stand.",
    )
    reactivate_service_package = _set_active(
        ReactivateServicePackageInput,
        ReactivateServicePackagePayload,
        active=True,
        description="Take bookings for a package again.",
    )
