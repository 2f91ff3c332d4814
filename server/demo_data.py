"""`gigql seed --demo`: a marketplace's worth of believable data to try gigql with.

Posters and providers in a few cities, provider profiles with skills, rates, hours and
packages, and tasks in every state with offers. Every demo account has the password
DEMO_PASSWORD; their addresses end in @demo.gigql.test. Random but repeatable: the
same seed gives the same data.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import timedelta

from beanie import PydanticObjectId

from documents.accounts.profiles import ProviderProfile, Rating, TimeRange, no_hours
from documents.accounts.users import Role, User, email_key
from documents.clock import utcnow
from documents.geo import Address, GeoPoint, Place
from documents.marketplace.offers import Offer, OfferStatus
from documents.marketplace.packages import PackageType, ServicePackage
from documents.marketplace.tasks import StatusChange, Task, TaskStatus
from documents.money import Money
from resolvers.common import search
from resolvers.common.services import Services

DEMO_PASSWORD = "Demo-Marketplace-2026"  # noqa: S105 - published on purpose, for demo logins
DEMO_DOMAIN = "demo.gigql.test"
CHUNK = 1000
CURRENCY = "AUD"

CITIES = [
    ("Sydney", "NSW", -33.8688, 151.2093, "Australia/Sydney"),
    ("Melbourne", "VIC", -37.8136, 144.9631, "Australia/Melbourne"),
    ("Brisbane", "QLD", -27.4698, 153.0251, "Australia/Brisbane"),
    ("Perth", "WA", -31.9523, 115.8613, "Australia/Perth"),
    ("Adelaide", "SA", -34.9285, 138.6007, "Australia/Adelaide"),
]
JOBS = {
    "cleaning": ["Clean a two-bedroom flat", "End of lease clean", "Oven and kitchen deep clean"],
    "gardening": ["Mow the back lawn", "Trim the hedges", "Weed the garden beds"],
    "handyman": ["Fix a squeaky door", "Hang three shelves", "Patch a hole in the wall"],
    "moving": ["Move a couch across town", "Help load a moving truck", "Carry boxes upstairs"],
    "delivery": ["Pick up a parcel", "Deliver a bookcase", "Collect groceries"],
    "assembly": ["Assemble a wardrobe", "Build a desk", "Put together a bed frame"],
    "painting": ["Paint a bedroom", "Touch up the fence", "Paint the front door"],
    "plumbing": ["Fix a leaking tap", "Unblock the sink", "Replace a toilet seat"],
    "electrical": ["Install a ceiling fan", "Replace light fittings", "Add an outdoor socket"],
    "pet-care": ["Walk my dog for a week", "Feed the cat while away", "Wash a big dog"],
}
STATUS_MIX = [
    (TaskStatus.OPEN, 0.75),
    (TaskStatus.ASSIGNED, 0.08),
    (TaskStatus.IN_PROGRESS, 0.05),
    (TaskStatus.COMPLETED, 0.09),
    (TaskStatus.CANCELLED, 0.03),
]


@dataclass(frozen=True)
class DemoCounts:
    posters: int
    providers: int
    tasks: int
    offers: int
    packages: int


class DemoDataExists(Exception):
    pass


def _nearby(rng: random.Random, city: tuple[str, str, float, float, str], km: float) -> Place:
    name, region, lat, lon, _ = city
    # About 111 km per degree of latitude; good enough for scattering points in a city.
    point = GeoPoint.at(lat + rng.uniform(-km, km) / 111, lon + rng.uniform(-km, km) / 111)
    street = f"{rng.randint(1, 400)} {rng.choice(['High', 'King', 'Queen', 'Park', 'Beach'])} St"
    return Place(
        point=point,
        address=Address(
            line1=street,
            city=name,
            region=region,
            postal_code=str(rng.randint(2000, 6999)),
            country="AU",
        ),
    )


def _user(index: int, kind: str, roles: list[Role], password_hash: str) -> User:
    email = f"{kind}{index}@{DEMO_DOMAIN}"
    return User(
        id=PydanticObjectId(),  # insert_many does not give ids back
        name=f"Demo {kind.capitalize()} {index}",
        email=email,
        email_key=email_key(email),
        email_verified_at=utcnow(),
        roles=roles,
        password_hash=password_hash,
    )


async def _insert(
    documents: list[User] | list[Task] | list[Offer] | list[ProviderProfile] | list[ServicePackage],
) -> None:
    for start in range(0, len(documents), CHUNK):
        chunk = documents[start : start + CHUNK]
        await type(chunk[0]).insert_many(chunk)


async def seed_demo(
    services: Services,
    *,
    tasks: int = 10_000,
    providers: int = 1_000,
    posters: int = 500,
    seed: int = 2026,
) -> DemoCounts:
    if await User.find_one({"email_key": {"$regex": f"@{DEMO_DOMAIN}$"}}) is not None:
        raise DemoDataExists(f"demo data is already there (accounts @{DEMO_DOMAIN})")
    rng = random.Random(seed)  # noqa: S311 - demo data, not secrets
    password_hash = await services.passwords.hash(DEMO_PASSWORD)
    now = utcnow()

    poster_users = [_user(i, "poster", [Role.POSTER], password_hash) for i in range(posters)]
    provider_users = [
        _user(i, "provider", [Role.TASKER, Role.POSTER], password_hash) for i in range(providers)
    ]
    await _insert(poster_users)
    await _insert(provider_users)

    profiles, packages = [], []
    for user in provider_users:
        assert user.id is not None
        city = rng.choice(CITIES)
        skills = rng.sample(sorted(JOBS), k=rng.randint(1, 3))
        rated = rng.randint(0, 60)
        total = sum(rng.randint(3, 5) for _ in range(rated))
        hours = no_hours()
        for weekday in range(5 if rng.random() < 0.7 else 6):
            hours[weekday] = [
                TimeRange(start_minute=8 * 60, end_minute=rng.choice([16, 17, 18]) * 60)
            ]
        profiles.append(
            ProviderProfile(
                id=user.id,
                bio=f"{rng.randint(1, 25)} years of {' and '.join(skills)} around {city[0]}.",
                skills=skills,
                years_experience=rng.randint(0, 25),
                hourly_rate=Money(amount=rng.randrange(3000, 12000, 500), currency=CURRENCY),
                available=rng.random() < 0.9,
                place=_nearby(rng, city, 15),
                service_radius_km=rng.choice([5, 10, 20, 30, 50]),
                time_zone=city[4],
                rating=Rating(
                    sum=total, count=rated, average=round(total / rated, 4) if rated else None
                ),
                completed_jobs=rated + rng.randint(0, 20),
                weekly_hours=hours,
                buffer_minutes=rng.choice([0, 15, 30]),
            )
        )
        for kind in rng.sample(list(PackageType), k=rng.randint(1, 3)):
            minutes = {PackageType.BASIC: 120, PackageType.DEEP: 240, PackageType.SPECIALISED: 180}[
                kind
            ]
            packages.append(
                ServicePackage(
                    provider_id=user.id,
                    name=f"{kind.value.capitalize()} {skills[0]}",
                    description=f"A {kind.value} {skills[0]} visit of {minutes // 60} hours.",
                    price=Money(amount=rng.randrange(8000, 40000, 1000), currency=CURRENCY),
                    duration_minutes=minutes,
                    type=kind,
                )
            )
    await _insert(profiles)
    await _insert(packages)

    task_docs, offer_docs = [], []
    statuses, weights = zip(*STATUS_MIX, strict=True)
    for _ in range(tasks):
        owner = rng.choice(poster_users)
        assert owner.id is not None
        category = rng.choice(sorted(JOBS))
        title = rng.choice(JOBS[category])
        description = f"{title}. Around {rng.randint(1, 6)} hours of work, tools available on site."
        status = rng.choices(statuses, weights)[0]
        created = now - timedelta(minutes=rng.randint(0, 60 * 24 * 60))
        bidders = rng.sample(provider_users, k=rng.randint(0, 4))
        needs_tasker = status in (TaskStatus.ASSIGNED, TaskStatus.IN_PROGRESS, TaskStatus.COMPLETED)
        if needs_tasker and not bidders:
            status = TaskStatus.OPEN
        assigned = bidders[0] if needs_tasker and bidders else None
        budget = Money(amount=rng.randrange(3000, 50000, 500), currency=CURRENCY)
        task = Task(
            id=PydanticObjectId(),
            poster_id=owner.id,
            title=title,
            description=description,
            category=category,
            budget=budget,
            place=_nearby(rng, rng.choice(CITIES), 20),
            due_at=created + timedelta(days=rng.randint(3, 30)) if rng.random() < 0.7 else None,
            status=status,
            assigned_tasker_id=assigned.id if assigned else None,
            agreed_price=budget if assigned else None,
            offer_count=len(bidders),
            keywords=search.words(title, description, category),
            history=[StatusChange(status=TaskStatus.OPEN, at=created, by=owner.id)]
            + (
                [StatusChange(status=status, at=created + timedelta(days=1))]
                if status is not TaskStatus.OPEN
                else []
            ),
            created_at=created,
            updated_at=created,
        )
        for bidder in bidders:
            assert bidder.id is not None and task.id is not None
            accepted = bidder is assigned
            decided = status is not TaskStatus.OPEN
            offer_status = (
                OfferStatus.ACCEPTED
                if accepted
                else OfferStatus.REJECTED
                if decided
                else OfferStatus.PENDING
            )
            offer = Offer(
                id=PydanticObjectId(),
                task_id=task.id,
                tasker_id=bidder.id,
                poster_id=owner.id,
                amount=Money(amount=budget.amount - rng.randrange(0, 2000, 100), currency=CURRENCY),
                message="Happy to help, I have done this many times.",
                status=offer_status,
                live=True if offer_status in (OfferStatus.PENDING, OfferStatus.ACCEPTED) else None,
                created_at=created + timedelta(hours=rng.randint(1, 48)),
            )
            if accepted:
                task.accepted_offer_id = offer.id
            offer_docs.append(offer)
        task_docs.append(task)
    await _insert(task_docs)
    if offer_docs:
        await _insert(offer_docs)
    return DemoCounts(
        posters=posters,
        providers=providers,
        tasks=tasks,
        offers=len(offer_docs),
        packages=len(packages),
    )
