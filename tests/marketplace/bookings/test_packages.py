"""Service packages: providers create, edit, deactivate and reactivate them; everyone sees
the active ones."""

from __future__ import annotations

from documents.marketplace.packages import ServicePackage
from tests.support.bookings import PACKAGE_FIELDS, create_package, package_input, provider
from tests.support.graphql_client import GraphQLClient, error_codes
from tests.support.marketplace import aud, object_id, poster, tasker

LISTED = """query($id: ID!, $all: Boolean!) { node(id: $id) { ... on User {
  providerProfile { packages(includeInactive: $all) { id name active } } } } }"""


async def test_a_provider_creates_and_edits_a_package(client: GraphQLClient) -> None:
    tom = await provider(client, "tom@example.com")
    package = await create_package(client, tom)
    assert package == {
        "id": package["id"],
        "name": "Deep clean",
        "description": "Kitchen, bathrooms and floors, top to bottom.",
        "price": {"amount": 8999, "currency": "AUD"},
        "durationMinutes": 120,
        "type": "DEEP",
        "active": True,
        "provider": {"id": tom.user_id},
    }
    edited = await client.mutate(
        "updateServicePackage",
        {"packageId": package["id"], "price": aud(9500), "durationMinutes": 150, "type": "BASIC"},
        PACKAGE_FIELDS,
        token=tom.access,
    )
    assert edited["errors"] == []
    assert (edited["package"]["price"], edited["package"]["durationMinutes"]) == (
        {"amount": 9500, "currency": "AUD"},
        150,
    )
    assert (edited["package"]["type"], edited["package"]["name"]) == ("BASIC", "Deep clean")
    stored = await ServicePackage.get(object_id(package["id"]))
    assert stored is not None and stored.price.amount == 9500 and stored.duration_minutes == 150


async def test_only_providers_with_a_profile_sell_packages(client: GraphQLClient) -> None:
    ann = await poster(client, "ann@example.com")
    assert error_codes(
        await client.mutate("createServicePackage", package_input(), token=ann.access)
    ) == ["FORBIDDEN"]
    newcomer = await tasker(client, "new@example.com")  # no provider profile yet
    assert error_codes(
        await client.mutate("createServicePackage", package_input(), token=newcomer.access)
    ) == ["NOT_FOUND"]
    unauthenticated = await client.execute(
        "mutation($input: CreateServicePackageInput!) { createServicePackage(input: $input) "
        "{ errors { code } } }",
        {"input": package_input()},
    )
    assert unauthenticated["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
    assert await ServicePackage.count() == 0


async def test_bad_package_input_is_refused_and_nothing_stored(client: GraphQLClient) -> None:
    tom = await provider(client, "tom@example.com")
    cases = {
        "price": package_input(price=aud(0)),
        "price ": package_input(price=aud(-100)),
        "price  ": package_input(price={"amount": 100, "currency": "XYZ"}),
        "durationMinutes": package_input(durationMinutes=10),
        "durationMinutes ": package_input(durationMinutes=725),
        "durationMinutes  ": package_input(durationMinutes=62),
        "name": package_input(name="x" * 101),
        "name ": package_input(name=" "),
        "description": package_input(description="x" * 2001),
    }
    for field, given in cases.items():
        payload = await client.mutate("createServicePackage", given, token=tom.access)
        assert [(e["field"], e["code"]) for e in payload["errors"]] == [
            (field.strip(), "INVALID_INPUT")
        ], (field, payload)
    assert await ServicePackage.count() == 0

    package = await create_package(client, tom)
    bad_edit = await client.mutate(
        "updateServicePackage",
        {"packageId": package["id"], "name": "Quick clean", "durationMinutes": 5},
        token=tom.access,
    )
    assert [e["field"] for e in bad_edit["errors"]] == ["durationMinutes"]
    stored = await ServicePackage.get(object_id(package["id"]))
    assert stored is not None and stored.name == "Deep clean" and stored.duration_minutes == 120


async def test_only_its_provider_changes_a_package(client: GraphQLClient) -> None:
    tom = await provider(client, "tom@example.com")
    sue = await provider(client, "sue@example.com")
    package = await create_package(client, tom)
    for name, extra in [
        ("updateServicePackage", {"name": "Mine now"}),
        ("deactivateServicePackage", {}),
    ]:
        payload = await client.mutate(name, {"packageId": package["id"], **extra}, token=sue.access)
        assert error_codes(payload) == ["FORBIDDEN"], name
    wrong_type = await client.mutate(
        "deactivateServicePackage", {"packageId": tom.user_id}, token=tom.access
    )
    assert [(e["code"], e["field"]) for e in wrong_type["errors"]] == [("INVALID_ID", "packageId")]
    unknown = await client.mutate(
        "deactivateServicePackage",
        {"packageId": "U2VydmljZVBhY2thZ2U6MDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAw"},
        token=tom.access,
    )
    assert error_codes(unknown) == ["NOT_FOUND"]
    stored = await ServicePackage.get(object_id(package["id"]))
    assert stored is not None and stored.active and stored.name == "Deep clean"


async def test_deactivated_packages_are_listed_only_for_their_provider(
    client: GraphQLClient,
) -> None:
    tom = await provider(client, "tom@example.com")
    ann = await poster(client, "ann@example.com")
    basic = await create_package(client, tom, name="Basic clean", price=aud(5000), type="BASIC")
    deep = await create_package(client, tom)

    off = await client.mutate(
        "deactivateServicePackage", {"packageId": deep["id"]}, PACKAGE_FIELDS, token=tom.access
    )
    assert off["package"]["active"] is False
    again = await client.mutate(
        "deactivateServicePackage", {"packageId": deep["id"]}, token=tom.access
    )
    assert error_codes(again) == ["INVALID_STATE"]

    async def listed(viewer: str | None, include_inactive: bool) -> list[tuple[str, bool]]:
        data = await client.data(LISTED, {"id": tom.user_id, "all": include_inactive}, token=viewer)
        return [(p["name"], p["active"]) for p in data["node"]["providerProfile"]["packages"]]

    assert await listed(tom.access, True) == [("Basic clean", True), ("Deep clean", False)]
    assert await listed(tom.access, False) == [("Basic clean", True)]
    assert await listed(ann.access, True) == [("Basic clean", True)]
    assert await listed(None, True) == [("Basic clean", True)]
    # The package itself stays public by id, marked inactive.
    node = await client.data(
        "query($id: ID!) { node(id: $id) { ... on ServicePackage { name active } } }",
        {"id": deep["id"]},
    )
    assert node["node"] == {"name": "Deep clean", "active": False}

    on = await client.mutate(
        "reactivateServicePackage", {"packageId": deep["id"]}, PACKAGE_FIELDS, token=tom.access
    )
    assert on["package"]["active"] is True
    assert error_codes(
        await client.mutate("reactivateServicePackage", {"packageId": deep["id"]}, token=tom.access)
    ) == ["INVALID_STATE"]
    assert await listed(ann.access, False) == [("Basic clean", True), ("Deep clean", True)]
    assert basic["price"]["amount"] < deep["price"]["amount"]
