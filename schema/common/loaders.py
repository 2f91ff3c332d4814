"""Per-request DataLoaders: each relation is fetched once per batch, not once per row."""

from __future__ import annotations

from functools import cached_property, partial

from bson import ObjectId
from strawberry.dataloader import DataLoader

from documents.accounts.profiles import CustomerProfile, ProviderProfile
from documents.accounts.users import User
from documents.chat.conversations import ChatMessage, Conversation
from documents.marketplace.bookings import Booking
from documents.marketplace.offers import Offer
from documents.marketplace.packages import ServicePackage
from documents.marketplace.reviews import Review
from documents.marketplace.tasks import Task
from documents.payments.disputes import Dispute
from documents.payments.escrow import Escrow
from resolvers.common import lookups
from resolvers.common.lookups import by_ids
from resolvers.payments.disputes.disputes import latest_disputes
from resolvers.payments.escrow.escrows import escrows_of_deals


class Loaders:
    """Each loader is made when first used: most operations use one or two of them, and
    making all of them for every request cost more than some whole requests."""

    # Nothing made up front, not even the per-person loaders' dicts: a websocket's context
    # keeps a Loaders for the socket's life (and a subscription's stream one of its own),
    # and most never use it; an instance with no attribute set has no `__dict__` yet.

    @cached_property
    def _live_offers(self) -> dict[ObjectId, DataLoader[ObjectId, Offer | None]]:
        return {}

    @cached_property
    def _counterparts(self) -> dict[ObjectId, DataLoader[ObjectId, bool]]:
        return {}

    @cached_property
    def users(self) -> DataLoader[ObjectId, User | None]:
        return DataLoader(partial(by_ids, User))

    @cached_property
    def tasks(self) -> DataLoader[ObjectId, Task | None]:
        return DataLoader(partial(by_ids, Task))

    @cached_property
    def offers(self) -> DataLoader[ObjectId, Offer | None]:
        return DataLoader(partial(by_ids, Offer))

    @cached_property
    def packages(self) -> DataLoader[ObjectId, ServicePackage | None]:
        return DataLoader(partial(by_ids, ServicePackage))

    @cached_property
    def bookings(self) -> DataLoader[ObjectId, Booking | None]:
        return DataLoader(partial(by_ids, Booking))

    @cached_property
    def reviews(self) -> DataLoader[ObjectId, Review | None]:
        return DataLoader(partial(by_ids, Review))

    @cached_property
    def conversations(self) -> DataLoader[ObjectId, Conversation | None]:
        return DataLoader(partial(by_ids, Conversation))

    @cached_property
    def messages(self) -> DataLoader[ObjectId, ChatMessage | None]:
        return DataLoader(partial(by_ids, ChatMessage))

    @cached_property
    def escrows(self) -> DataLoader[ObjectId, Escrow | None]:
        return DataLoader(partial(by_ids, Escrow))

    @cached_property
    def escrows_by_deal(self) -> DataLoader[str, Escrow | None]:
        """By deal (`task:<id>`, `booking:<id>`)."""
        return DataLoader(escrows_of_deals)

    @cached_property
    def disputes_of_escrows(self) -> DataLoader[ObjectId, Dispute | None]:
        """By escrow id: its open dispute, else its latest."""
        return DataLoader(latest_disputes)

    @cached_property
    def packages_of(self) -> DataLoader[ObjectId, list[ServicePackage]]:
        """By provider id: all their packages, cheapest first."""
        return DataLoader(lookups.packages_of)

    @cached_property
    def provider_profiles(self) -> DataLoader[ObjectId, ProviderProfile | None]:
        return DataLoader(partial(by_ids, ProviderProfile))

    @cached_property
    def customer_profiles(self) -> DataLoader[ObjectId, CustomerProfile | None]:
        return DataLoader(partial(by_ids, CustomerProfile))

    def live_offers_of(self, tasker_id: ObjectId) -> DataLoader[ObjectId, Offer | None]:
        """By task id: this tasker's live offer on it."""
        if tasker_id not in self._live_offers:
            self._live_offers[tasker_id] = DataLoader(partial(lookups.live_offers, tasker_id))
        return self._live_offers[tasker_id]

    def counterparts_of(self, viewer_id: ObjectId) -> DataLoader[ObjectId, bool]:
        """By user id: whether the viewer works with that user."""
        if viewer_id not in self._counterparts:
            self._counterparts[viewer_id] = DataLoader(partial(lookups.counterparts, viewer_id))
        return self._counterparts[viewer_id]
