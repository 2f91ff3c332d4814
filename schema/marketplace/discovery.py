"""Finding providers to hire."""

from __future__ import annotations

from datetime import date

import strawberry
from strawberry import relay

from documents.accounts.profiles import ProviderProfile, profile_owner
from resolvers.marketplace import discovery, task_search
from resolvers.marketplace.discovery import ProviderPage, ProviderQuery, ProviderSort
from schema.accounts.profiles import ProviderProfileType
from schema.accounts.users import UserNode
from schema.common.context import Info
from schema.common.relay import requested_page, to_connection
from schema.common.values import NearInput

ProviderSortType = strawberry.enum(ProviderSort, name="ProviderSort")


@strawberry.type(description="A tasker offering their services, as found by a search.")
class Provider:
    user: UserNode
    profile: ProviderProfileType
    distance_km: float | None = strawberry.field(
        description="From the point searched near to their area, when one was given."
    )


@strawberry.type
class ProviderConnection(relay.Connection[Provider]):  # type: ignore[type-var] # Relay allows non-Node items
    pass


@strawberry.input
class ProviderFilter:
    category: str | None = strawberry.field(default=None, description="A skill they have.")
    near: NearInput | None = strawberry.field(
        default=None,
        description="Within the radius of this point, and within their own service radius.",
    )
    min_rating: float | None = strawberry.field(
        default=None, description="1 to 5; leaves out providers not rated yet."
    )
    min_price: int | None = strawberry.field(
        default=None, description="Hourly rate, in minor units; needs currency."
    )
    max_price: int | None = strawberry.field(
        default=None, description="Hourly rate, in minor units; needs currency."
    )
    currency: str | None = strawberry.field(
        default=None, description="Only providers whose hourly rate is in this currency."
    )
    available_on: date | None = strawberry.field(
        default=None,
        description="Taking work and with working hours on this date (their local calendar).",
    )

    def query(self, sort: ProviderSort) -> ProviderQuery:
        return ProviderQuery(
            category=self.category,
            near=self.near.value() if self.near else None,
            min_rating=self.min_rating,
            min_price=self.min_price,
            max_price=self.max_price,
            currency=self.currency,
            available_on=self.available_on,
            sort=sort,
        )


def provider_connection(info: Info, found: ProviderPage) -> ProviderConnection:
    # The page read these already: nested `user { providerProfile }` costs no query.
    loaders = info.context.loaders
    loaders.users.prime_many(found.users)
    loaders.provider_profiles.prime_many(
        {profile_owner(profile): profile for profile in found.profiles.documents}
    )

    def provider(profile: ProviderProfile) -> Provider:
        metres = found.profiles.computed.get(profile.id, {}).get("distance")
        return Provider(
            user=UserNode.of(found.users[profile_owner(profile)]),
            profile=ProviderProfileType.of(profile),
            distance_km=task_search.kilometres(metres),
        )

    return to_connection(ProviderConnection, found.profiles, provider)


@strawberry.type
class DiscoveryQuery:
    @strawberry.field(description="Find providers; best rated first unless sorted otherwise.")
    async def search_providers(
        self,
        info: Info,
        first: int | None = None,
        after: str | None = None,
        filter: ProviderFilter | None = None,
        sort: ProviderSort = ProviderSort.RATING,
    ) -> ProviderConnection:
        query = (filter or ProviderFilter()).query(sort)
        found = await discovery.search_providers(query, requested_page(info, first, after))
        return provider_connection(info, found)
