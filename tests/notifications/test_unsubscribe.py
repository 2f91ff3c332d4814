"""One-click unsubscribe (RFC 8058), over real HTTP: the link in the headers and the text
of every mail that may be turned off, a POST that turns that kind's e-mail off without a
login, a GET that only asks, and tokens we did not make refused with a 400."""

from __future__ import annotations

from collections.abc import AsyncIterator
from urllib.parse import urlsplit

import httpx
import pytest
from bson import ObjectId

from documents.notifications.catalogue import Channel, NotificationKind
from documents.notifications.deliveries import Delivery, DeliveryStatus
from documents.notifications.preferences import NotificationPreferences
from integrations.mail import Mail, MemoryMailer
from resolvers.notifications.sending import send_due
from resolvers.notifications.unsubscribe import InvalidUnsubscribeLink, UnsubscribeLinks
from server.runtime import Runtime
from tests.conftest import TEST_JWT_SECRET, serve
from tests.support.graphql_client import GraphQLClient
from tests.support.marketplace import object_id

ONE_CLICK = {"List-Unsubscribe": "One-Click"}


async def mailed(
    runtime: Runtime, outbox: MemoryMailer, user_id: ObjectId, kind: NotificationKind
) -> Mail:
    """The e-mail of one `kind` notification, as sending writes it."""
    await Delivery(
        key=f"test:{user_id}:{kind.value}",
        user_id=user_id,
        kind=kind,
        channel=Channel.EMAIL,
        title=f"About {kind.value}",
    ).insert()
    await send_due(runtime.services)
    return next(m for m in outbox.outbox if m.subject == f"About {kind.value}")


def link_of(mail: Mail) -> str:
    header = mail.header("List-Unsubscribe")
    assert header is not None and header.startswith("<") and header.endswith(">")
    return header[1:-1]


def on(base_url: str, link: str) -> str:
    """The link, on the test server (links name GIGQL_PUBLIC_URL)."""
    parts = urlsplit(link)
    return f"{base_url}{parts.path}?{parts.query}"


async def channels_of(user_id: ObjectId, kind: NotificationKind) -> frozenset[Channel]:
    found = await NotificationPreferences.find_one(NotificationPreferences.user_id == user_id)
    return (found or NotificationPreferences(user_id=user_id)).chosen(kind)


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=30) as opened:
        yield opened


async def test_every_mail_that_may_be_turned_off_carries_a_one_click_link(
    client: GraphQLClient, runtime: Runtime, outbox: MemoryMailer
) -> None:
    ann = await client.member("ann@example.com")
    user_id = object_id(ann.user_id)
    offer = await mailed(runtime, outbox, user_id, NotificationKind.OFFER_RECEIVED)
    link = link_of(offer)
    public = runtime.services.settings.public_url
    assert link.startswith(f"{public}/notifications/unsubscribe?token=")
    assert offer.header("List-Unsubscribe-Post") == "List-Unsubscribe=One-Click"
    assert link in offer.text and f'href="{link}"' in (offer.html or "")

    receipt = await mailed(runtime, outbox, user_id, NotificationKind.PAYMENT_RECEIPT)
    assert receipt.header("List-Unsubscribe") is None
    assert receipt.header("List-Unsubscribe-Post") is None
    assert "unsubscribe" not in receipt.text.lower() and "Stop these" not in receipt.text


async def test_a_post_turns_that_kinds_email_off_and_a_get_only_asks(
    client: GraphQLClient,
    runtime: Runtime,
    outbox: MemoryMailer,
    http: httpx.AsyncClient,
    base_url: str,
) -> None:
    ann = await client.member("ann@example.com")
    user_id = object_id(ann.user_id)
    url = on(
        base_url, link_of(await mailed(runtime, outbox, user_id, NotificationKind.OFFER_RECEIVED))
    )

    # A mail scanner follows the link: a page with a button, nothing changed.
    page = await http.get(url)
    assert page.status_code == 200
    assert '<form method="post">' in page.text
    assert '<input type="hidden" name="List-Unsubscribe" value="One-Click">' in page.text
    assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
    assert page.headers["cache-control"] == "no-store"
    assert await channels_of(user_id, NotificationKind.OFFER_RECEIVED) == {
        Channel.EMAIL,
        Channel.PUSH,
    }

    # A POST that is not RFC 8058's changes nothing either.
    wrong = await http.post(url, data={"unsubscribe": "yes"})
    assert wrong.status_code == 400
    assert Channel.EMAIL in await channels_of(user_id, NotificationKind.OFFER_RECEIVED)

    done = await http.post(url, data=ONE_CLICK)
    assert done.status_code == 200 and "no longer get e-mails about offer received" in done.text
    assert await channels_of(user_id, NotificationKind.OFFER_RECEIVED) == {Channel.PUSH}
    # Only that kind, and a second click changes nothing.
    assert await channels_of(user_id, NotificationKind.OFFER_ACCEPTED) == {
        Channel.EMAIL,
        Channel.PUSH,
    }
    again = await http.post(url, data=ONE_CLICK)
    assert again.status_code == 200
    assert await channels_of(user_id, NotificationKind.OFFER_RECEIVED) == {Channel.PUSH}

    # The person sees it in their preferences, and the next mail of that kind is not sent.
    preferences = await client.data(
        "{ notificationPreferences { kinds { kind channels } } }", token=ann.access
    )
    kinds = {k["kind"]: k["channels"] for k in preferences["notificationPreferences"]["kinds"]}
    assert kinds["OFFER_RECEIVED"] == ["PUSH"]
    next_one = Delivery(
        key="test:next",
        user_id=user_id,
        kind=NotificationKind.OFFER_RECEIVED,
        channel=Channel.EMAIL,
        title="Another offer",
    )
    await next_one.insert()
    await send_due(runtime.services)
    skipped = await Delivery.get(next_one.id)
    assert skipped is not None and skipped.status is DeliveryStatus.SKIPPED
    assert [m for m in outbox.outbox if m.subject == "Another offer"] == []


async def test_mail_programs_may_post_multipart(
    client: GraphQLClient,
    runtime: Runtime,
    outbox: MemoryMailer,
    http: httpx.AsyncClient,
    base_url: str,
) -> None:
    ann = await client.member("ann@example.com")
    user_id = object_id(ann.user_id)
    mail = await mailed(runtime, outbox, user_id, NotificationKind.REVIEW_REQUEST)
    done = await http.post(
        on(base_url, link_of(mail)), files={"List-Unsubscribe": (None, "One-Click")}
    )
    assert done.status_code == 200, done.text
    assert await channels_of(user_id, NotificationKind.REVIEW_REQUEST) == frozenset()


async def test_tokens_we_did_not_make_are_a_400_and_change_nothing(
    client: GraphQLClient,
    runtime: Runtime,
    outbox: MemoryMailer,
    http: httpx.AsyncClient,
    base_url: str,
) -> None:
    ann = await client.member("ann@example.com")
    user_id = object_id(ann.user_id)
    link = link_of(await mailed(runtime, outbox, user_id, NotificationKind.OFFER_RECEIVED))
    token = urlsplit(link).query.removeprefix("token=")
    version, person, kind, tag = token.split(".")
    other = str(ObjectId())
    flipped = tag[:-1] + ("A" if tag[-1] != "A" else "B")
    path = f"{base_url}/notifications/unsubscribe"
    bad = [
        f"{path}?token={version}.{person}.{kind}.{flipped}",  # tampered tag
        f"{path}?token={version}.{other}.{kind}.{tag}",  # someone else
        f"{path}?token={version}.{person}.offer_accepted.{tag}",  # another kind
        f"{path}?token=2.{person}.{kind}.{tag}",  # another version
        f"{path}?token={token}.{tag}",
        f"{path}?token=garbage",
        f"{path}?token=",
        f"{path}?token=%ff%fe%00",
        f"{path}?token={'x' * 5000}",
        f"{path}?token={token}&token={token}",
        path,
    ]
    for url in bad:
        for response in (await http.get(url), await http.post(url, data=ONE_CLICK)):
            assert response.status_code == 400, (url, response.status_code)
            assert "not valid" in response.text
    assert await channels_of(user_id, NotificationKind.OFFER_RECEIVED) == {
        Channel.EMAIL,
        Channel.PUSH,
    }


async def test_a_new_link_version_ends_the_links_mailed_before(
    client: GraphQLClient, runtime: Runtime, outbox: MemoryMailer, http: httpx.AsyncClient
) -> None:
    ann = await client.member("ann@example.com")
    user_id = object_id(ann.user_id)
    link = link_of(await mailed(runtime, outbox, user_id, NotificationKind.OFFER_RECEIVED))
    async with serve(runtime, unsubscribe_link_version=2) as rotated:
        refused = await http.post(on(rotated, link), data=ONE_CLICK)
    assert refused.status_code == 400
    assert Channel.EMAIL in await channels_of(user_id, NotificationKind.OFFER_RECEIVED)


def test_links_are_made_only_for_kinds_that_may_be_turned_off() -> None:
    links = UnsubscribeLinks(TEST_JWT_SECRET, "https://api.example.com/", 1)
    person = ObjectId()
    assert links.url(person, NotificationKind.PAYOUT_PAID) is None
    url = links.url(person, NotificationKind.CHAT_MESSAGE)
    assert url is not None and url.startswith("https://api.example.com/notifications/unsubscribe?")
    read = links.read(url.split("token=", 1)[1])
    assert (read.user_id, read.kind) == (person, NotificationKind.CHAT_MESSAGE)
    # Even one signed with our key is refused for a kind that stays on.
    with pytest.raises(InvalidUnsubscribeLink):
        links.read(links.token(person, NotificationKind.PAYOUT_PAID))
    with pytest.raises(InvalidUnsubscribeLink):
        UnsubscribeLinks("another-secret-" * 4, "https://api.example.com", 1).read(
            links.token(person, NotificationKind.CHAT_MESSAGE)
        )
