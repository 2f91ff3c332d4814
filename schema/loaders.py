"""Per-request DataLoaders: each relation is fetched once per batch, not once per row."""

from __future__ import annotations

from functools import partial

from bson import ObjectId
from strawberry.dataloader import DataLoader

from documents.bookings import Booking
from documents.chat import ChatMessage, Conversation
from documents.disputes import Dispute
from documents.escrow import Escrow
from documents.offers import Offer
from documents.packages import ServicePackage
from documents.profiles import CustomerProfile, ProviderProfile
from documents.reviews import Review
from documents.tasks import Task
from documents.users import User
from resolvers import lookups
from resolvers.disputes import latest_disputes
from resolvers.escrow import escrows_of_deals
from resolvers.lookups import by_ids


class Loaders:
    def __init__(self) -> None:
        self.users: DataLoader[ObjectId, User | None] = DataLoader(partial(by_ids, User))
        self.tasks: DataLoader[ObjectId, Task | None] = DataLoader(partial(by_ids, Task))
        self.offers: DataLoader[ObjectId, Offer | None] = DataLoader(partial(by_ids, Offer))
        self.packages: DataLoader[ObjectId, ServicePackage | None] = DataLoader(
            partial(by_ids, ServicePackage)
        )
        self.bookings: DataLoader[ObjectId, Booking | None] = DataLoader(partial(by_ids, Booking))
        self.reviews: DataLoader[ObjectId, Review | None] = DataLoader(partial(by_ids, Review))
        self.conversations: DataLoader[ObjectId, Conversation | None] = DataLoader(
            partial(by_ids, Conversation)
        )
        self.messages: DataLoader[ObjectId, ChatMessage | None] = DataLoader(
            partial(by_ids, ChatMessage)
        )
        self.escrows: DataLoader[ObjectId, Escrow | None] = DataLoader(partial(by_ids, Escrow))
        self.escrows_by_deal: DataLoader[str, Escrow | None] = DataLoader(escrows_of_deals)
        """By deal (`task:<id>`, `booking:<id>`)."""
        self.disputes_of_escrows: DataLoader[ObjectId, Dispute | None] = DataLoader(latest_disputes)
        """By escrow id: its open dispute, else its latest."""
        self.packages_of: DataLoader[ObjectId, list[ServicePackage]] = DataLoader(
            lookups.packages_of
        )
        """By provider id: all their packages, cheapest first."""
        self.provider_profiles: DataLoader[ObjectId, ProviderProfile | None] = DataLoader(
            partial(by_ids, ProviderProfile)
        )
        self.customer_profiles: DataLoader[ObjectId, CustomerProfile | None] = DataLoader(
            partial(by_ids, CustomerProfile)
        )
        self._live_offers: dict[ObjectId, DataLoader[ObjectId, Offer | None]] = {}
        self._counterparts: dict[ObjectId, DataLoader[ObjectId, bool]] = {}

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
