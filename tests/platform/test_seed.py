"""`gigql seed --demo`: consistent demo data that the API serves."""

from __future__ import annotations

import pytest

from documents.accounts.profiles import ProviderProfile
from documents.accounts.users import User
from documents.marketplace.offers import Offer, OfferStatus
from documents.marketplace.packages import ServicePackage
from documents.marketplace.tasks import Task, TaskStatus
from server.demo_data import DEMO_PASSWORD, DemoDataExists, seed_demo
from server.runtime import Runtime
from tests.support.graphql_client import GraphQLClient


async def test_demo_data_is_consistent_and_usable(runtime: Runtime, client: GraphQLClient) -> None:
    counts = await seed_demo(runtime.services, tasks=300, providers=30, posters=10, seed=7)
    assert (await User.count(), await Task.count(), await ProviderProfile.count()) == (40, 300, 30)
    assert await Offer.count() == counts.offers > 0
    assert await ServicePackage.count() == counts.packages >= 30

    tasks = {t.id: t for t in await Task.find_all().to_list()}
    offers = await Offer.find_all().to_list()
    for task in tasks.values():
        made = [o for o in offers if o.task_id == task.id]
        assert task.offer_count == len(made)
        accepted = [o for o in made if o.status is OfferStatus.ACCEPTED]
        if task.status in (TaskStatus.ASSIGNED, TaskStatus.IN_PROGRESS, TaskStatus.COMPLETED):
            assert len(accepted) == 1 and accepted[0].tasker_id == task.assigned_tasker_id
            assert task.accepted_offer_id == accepted[0].id
        if task.status is TaskStatus.OPEN:
            assert all(o.status is OfferStatus.PENDING for o in made)
    for offer in offers:
        assert (offer.live is True) == (offer.status in (OfferStatus.PENDING, OfferStatus.ACCEPTED))

    # Same seed, same data; and a demo account logs in and browses.
    tokens = await client.login("poster3@demo.gigql.test", DEMO_PASSWORD)
    feed = await client.data(
        "{ tasks(first: 5) { edges { node { title poster { name } } } } }", token=tokens.access
    )
    assert len(feed["tasks"]["edges"]) == 5

    with pytest.raises(DemoDataExists):
        await seed_demo(runtime.services, tasks=1, providers=1, posters=1)
