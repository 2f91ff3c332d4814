"""Sending partners the webhook deliveries due, in order per wallet, with retries.

`keep_sending` runs on every instance in the background (server/background.py). Every
send interval it reads the pending deliveries due, at most `PER_ENDPOINT` of each
endpoint (so that no partner's backlog crowds out the others'), and starts one worker
per endpoint that has none under way on this instance; a worker sends its endpoint's
streams, one per (endpoint, wallet), `STREAMS_PER_ENDPOINT` at once, each in sequence
order. A slow endpoint thus holds up only its own worker: the others' deliveries go out
at the next send interval. (`send_due` is one such round, waited for whole.)

- each delivery is claimed first, with a conditional update (pending, due, no lease or
  one that ran out) that leases it to this sender, so that however many instances run,
  one at a time sends it; a sender that died leaves it to be taken up after the lease;
- it is sent only when no earlier delivery of its stream is still pending: otherwise it
  waits behind that one (until that one's next attempt, or the next run while that one
  is being sent) and the stream stops for this run;
- a 2xx answer makes it DELIVERED; anything else (another status, a redirect, no
  answer in `partner_webhook_timeout`, no connection in `partner_webhook_connect_timeout`)
  records the attempt and schedules
  the next after `partner_webhook_retry_base`, doubling, at most an hour apart, until
  `partner_webhook_retry_period` after it was made (or redelivered): then, after one
  last attempt, DEAD. The rest of its stream waits behind it meanwhile; a delivered or
  dead one lets the next go at once;
- the circuit breaker: an endpoint that gave no answer at all (no connection, or none
  in time) `FAILURES_BEFORE_PAUSE` times in a row, on any instance, is paused for
  `partner_webhook_pause`: its worker stops, and its deliveries wait, in their order,
  until the pause is over; then it is tried again (one more failure pauses it again,
  any answer closes the breaker).

Every attempt is signed afresh with the endpoint's current secrets
(integrations/partner_webhooks.py), over the same body.

This module writes every status of a delivery: the sender's outcomes, the end of an
endpoint's pending deliveries when it is disabled or deleted (`end_pending`), and a
partner's redelivery (`requeue`).
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from bson import ObjectId
from pymongo import ReturnDocument
from pymongo.asynchronous.client_session import AsyncClientSession

from documents.clock import utcnow
from documents.partners.webhooks import (
    ATTEMPTS_KEPT,
    DeliveryAttempt,
    DeliveryStatus,
    PartnerWebhookDelivery,
    PartnerWebhookEndpoint,
    PartnerWebhookEvent,
)
from documents.settings import Settings
from integrations.partner_webhooks import (
    EVENT_ID_HEADER,
    SIGNATURE_HEADER,
    Answer,
    PosterSession,
    WebhookPoster,
    signature_header,
)
from resolvers.common.services import Services
from resolvers.partners.ids import EVENT_PREFIX

log = logging.getLogger(__name__)

BATCH = 500
"""Deliveries one round reads at most, over all endpoints."""
PER_ENDPOINT = 50
"""Deliveries one round reads at most for one endpoint."""
STREAMS_PER_ENDPOINT = 4
"""Streams (endpoint and wallet) an endpoint's worker sends at once; each in order."""
FAILURES_BEFORE_PAUSE = 5
"""Posts in a row an endpoint may leave unanswered before it is paused."""
LEASE_MARGIN = timedelta(seconds=30)
"""A claim lasts the timeout of one post and this much more."""
MAX_BACKOFF = timedelta(hours=1)

_PENDING = DeliveryStatus.PENDING.value
Stream = tuple[ObjectId, ObjectId]
"""An endpoint and a wallet: the deliveries that go out in sequence order."""


def signing_secrets(endpoint: PartnerWebhookEndpoint, now: datetime) -> list[str]:
    """The secrets that sign a delivery sent `now`: the newest first, then any rotated
    one whose overlap has not run out."""
    return [s.secret for s in endpoint.secrets if s.expires_at is None or s.expires_at > now]


async def drop_expired_secrets(endpoint: PartnerWebhookEndpoint, now: datetime) -> None:
    """Forget the rotated secrets whose overlap has run out, once one is met."""
    if all(s.expires_at is None or s.expires_at > now for s in endpoint.secrets):
        return
    await PartnerWebhookEndpoint.get_pymongo_collection().update_one(
        {"_id": endpoint.id}, {"$pull": {"secrets": {"expires_at": {"$lte": now}}}}
    )


def webhook_poster(settings: Settings) -> WebhookPoster:
    return WebhookPoster(
        timeout=settings.partner_webhook_timeout,
        connect_timeout=settings.partner_webhook_connect_timeout,
        allow_private=settings.partner_webhook_allow_private_hosts,
    )


def event_id(event: PartnerWebhookEvent) -> str:
    return f"{EVENT_PREFIX}{event.id}"


def event_body(event: PartnerWebhookEvent) -> bytes:
    """What every delivery of `event` posts: the same bytes on every attempt."""
    body = {
        "id": event_id(event),
        "object": "event",
        "type": event.type.value,
        "created": int(event.created_at.timestamp()),
        "sequence": event.sequence,
        "data": {"object": event.data},
    }
    return json.dumps(body, separators=(",", ":")).encode()


async def keep_sending(services: Services, poster: WebhookPoster) -> None:
    """The background job: every send interval, a worker for each endpoint with
    deliveries due and none under way here. Cancelling it cancels the workers (their
    claimed deliveries are taken up once the leases run out)."""
    interval = services.settings.partner_webhook_send_interval.total_seconds()
    busy: set[ObjectId] = set()

    async def work(endpoint_id: ObjectId, due: list[PartnerWebhookDelivery]) -> None:
        try:
            await _send_endpoint(services, poster, due)
        finally:
            busy.discard(endpoint_id)

    async with asyncio.TaskGroup() as workers:
        while True:
            try:
                for endpoint_id, due in (await _due_by_endpoint(BATCH, skip=busy)).items():
                    busy.add(endpoint_id)
                    workers.create_task(work(endpoint_id, due))
            except Exception:
                # The database away: the next round tries again.
                log.exception("reading the partner webhook deliveries due failed")
            await asyncio.sleep(interval)


async def send_due(services: Services, poster: WebhookPoster, limit: int = BATCH) -> int:
    """One round, waited for whole: send what is due; returns how many deliveries were
    attempted."""
    by_endpoint = await _due_by_endpoint(limit, skip=set())
    counts = await asyncio.gather(
        *(_send_endpoint(services, poster, due) for due in by_endpoint.values())
    )
    return sum(counts)


async def _due_by_endpoint(
    limit: int, skip: set[ObjectId]
) -> dict[ObjectId, list[PartnerWebhookDelivery]]:
    """The pending deliveries due, the earliest first, at most PER_ENDPOINT of each
    endpoint and `limit` in all, of the endpoints not in `skip` nor paused."""
    now = utcnow()
    due_query = {"status": _PENDING, "next_attempt_at": {"$lte": now}}
    endpoint_ids = set(await _collection().distinct("endpoint_id", due_query)) - skip
    paused = {
        e["_id"]
        async for e in PartnerWebhookEndpoint.get_pymongo_collection().find(
            {"_id": {"$in": list(endpoint_ids)}, "paused_until": {"$gt": now}},
            projection={"_id": 1},
        )
    }
    # Instances read the same due deliveries; taking the endpoints in an order of their
    # own spreads them between instances, and the share of each within `limit`.
    order = list(endpoint_ids - paused)
    random.shuffle(order)
    found: dict[ObjectId, list[PartnerWebhookDelivery]] = {}
    for endpoint_id in order:
        if limit <= 0:
            break
        due = (
            await PartnerWebhookDelivery.find({**due_query, "endpoint_id": endpoint_id})
            .sort("next_attempt_at")
            .limit(min(PER_ENDPOINT, limit))
            .to_list()
        )
        if due:
            found[endpoint_id] = due
            limit -= len(due)
    return found


async def _send_endpoint(
    services: Services, poster: WebhookPoster, due: list[PartnerWebhookDelivery]
) -> int:
    """Send one endpoint's due deliveries, stream by stream; how many were attempted."""
    streams: dict[Stream, list[PartnerWebhookDelivery]] = {}
    for delivery in sorted(due, key=lambda d: d.sequence):
        streams.setdefault((delivery.endpoint_id, delivery.wallet_id), []).append(delivery)
    run = _Run(
        services.settings,
        endpoints=await _by_id(PartnerWebhookEndpoint, {d.endpoint_id for d in due}),
        events=await _by_id(PartnerWebhookEvent, {d.event_id for d in due}),
    )
    order = list(streams.values())
    random.shuffle(order)
    gate = asyncio.Semaphore(STREAMS_PER_ENDPOINT)
    # A session of its own: a slow endpoint holds none of the others' connections.
    async with poster.session() as http:

        async def send_stream(deliveries: list[PartnerWebhookDelivery]) -> int:
            async with gate:
                try:
                    return await run.stream(http, deliveries)
                except Exception:
                    # One stream's failure (the database away) must not stop the others;
                    # its claimed delivery is taken up again once the lease runs out.
                    log.exception("partner webhook stream %s failed", deliveries[0].id)
                    return 0

        counts = await asyncio.gather(*(send_stream(s) for s in order))
    return sum(counts)


async def _by_id(model: type[Any], ids: set[ObjectId]) -> dict[ObjectId, Any]:
    return {d.id: d async for d in model.find({"_id": {"$in": list(ids)}})}


class _Run:
    def __init__(
        self,
        settings: Settings,
        *,
        endpoints: dict[ObjectId, PartnerWebhookEndpoint],
        events: dict[ObjectId, PartnerWebhookEvent],
    ) -> None:
        self.settings = settings
        self.endpoints = endpoints
        self.events = events
        self.lease = settings.partner_webhook_timeout + LEASE_MARGIN
        self.paused: set[ObjectId] = set()
        """Endpoints paused during this run: their streams stop."""

    async def _breaker(self, endpoint: PartnerWebhookEndpoint, answer: Answer) -> None:
        """Count the endpoint's posts left unanswered in a row (on every instance); at
        FAILURES_BEFORE_PAUSE pause it. Any answer, whatever its status, resets it."""
        endpoints = PartnerWebhookEndpoint.get_pymongo_collection()
        if answer.status_code is not None:
            await endpoints.update_one(
                {"_id": endpoint.id, "failures_in_row": {"$gt": 0}},
                {"$set": {"failures_in_row": 0, "paused_until": None}},
            )
            return
        counted = await endpoints.find_one_and_update(
            {"_id": endpoint.id},
            {"$inc": {"failures_in_row": 1}},
            projection={"failures_in_row": 1},
            return_document=ReturnDocument.AFTER,
        )
        if counted is None or counted["failures_in_row"] < FAILURES_BEFORE_PAUSE:
            return
        until = utcnow() + self.settings.partner_webhook_pause
        await endpoints.update_one({"_id": endpoint.id}, {"$set": {"paused_until": until}})
        log.warning(
            "partner webhook endpoint %s paused until %s after %d posts without an answer",
            endpoint.id,
            until.isoformat(),
            counted["failures_in_row"],
        )
        assert endpoint.id is not None
        self.paused.add(endpoint.id)

    async def stream(
        self, http: PosterSession, deliveries: Sequence[PartnerWebhookDelivery]
    ) -> int:
        """Send one stream's due deliveries in order, stopping where one has to wait."""
        attempted = 0
        for listed in deliveries:
            if listed.endpoint_id in self.paused:
                return attempted
            delivery = await _claim(listed.id, self.lease)
            if delivery is None:
                return attempted  # another sender has it, or it is no longer due
            if await _waits(delivery):
                return attempted
            endpoint = self.endpoints.get(delivery.endpoint_id)
            if endpoint is None or not endpoint.enabled:
                await _end(delivery, DeliveryStatus.DEAD, {})
                continue
            answer = await self._post(http, endpoint, delivery)
            attempted += 1
            await self._breaker(endpoint, answer)
            if not await self._outcome(delivery, answer):
                return attempted
        return attempted

    async def _post(
        self,
        http: PosterSession,
        endpoint: PartnerWebhookEndpoint,
        delivery: PartnerWebhookDelivery,
    ) -> Answer:
        event = self.events[delivery.event_id]
        body = event_body(event)
        now = utcnow()
        await drop_expired_secrets(endpoint, now)
        header = signature_header(body, signing_secrets(endpoint, now), int(now.timestamp()))
        return await http.post(
            endpoint.url, body, {SIGNATURE_HEADER: header, EVENT_ID_HEADER: event_id(event)}
        )

    async def _outcome(self, delivery: PartnerWebhookDelivery, answer: Answer) -> bool:
        """Record what came of the attempt; whether the stream may go on."""
        now = utcnow()
        attempt = DeliveryAttempt(
            at=now,
            status_code=answer.status_code,
            response_body=answer.body,
            duration_ms=answer.duration_ms,
        ).model_dump()
        if answer.delivered:
            await _end(delivery, DeliveryStatus.DELIVERED, {"delivered_at": now}, attempt)
            return True
        settings = self.settings
        since = delivery.redelivered_at or delivery.created_at
        # Failures since it was made or redelivered (a redelivery starts the backoff afresh).
        failures = sum(1 for earlier in delivery.attempts if earlier.at >= since) + 1
        deadline = since + settings.partner_webhook_retry_period
        if now >= deadline:
            log.info("partner webhook delivery %s is dead after %d attempts", delivery.id, failures)
            await _end(delivery, DeliveryStatus.DEAD, {}, attempt)
            return True  # a dead one no longer holds back the rest
        backoff = min(settings.partner_webhook_retry_base * 2 ** (failures - 1), MAX_BACKOFF)
        later = min(now + backoff, deadline)
        await _collection().update_one(
            _held(delivery),
            {
                "$set": {"next_attempt_at": later, "lease_until": None},
                "$push": {"attempts": _appended(attempt)},
            },
        )
        # The rest of the stream is not due before it.
        await _collection().update_many(
            {**_later_in_stream(delivery), "next_attempt_at": {"$lt": later}},
            {"$set": {"next_attempt_at": later}},
        )
        return False


def _appended(attempt: dict[str, Any]) -> dict[str, Any]:
    """`$push` of one attempt, keeping the latest ATTEMPTS_KEPT."""
    return {"$each": [attempt], "$slice": -ATTEMPTS_KEPT}


def _collection() -> Any:
    return PartnerWebhookDelivery.get_pymongo_collection()


async def _claim(delivery_id: ObjectId | None, lease: timedelta) -> PartnerWebhookDelivery | None:
    now = utcnow()
    raw = await _collection().find_one_and_update(
        {
            "_id": delivery_id,
            "status": _PENDING,
            "next_attempt_at": {"$lte": now},
            "$or": [{"lease_until": None}, {"lease_until": {"$lte": now}}],
        },
        {"$set": {"next_attempt_at": now + lease, "lease_until": now + lease}},
        return_document=ReturnDocument.AFTER,
    )
    return None if raw is None else PartnerWebhookDelivery.model_validate(raw)


def _held(delivery: PartnerWebhookDelivery) -> dict[str, Any]:
    """The claimed delivery, unless its lease ran out and another sender took it since
    (the stored lease end is the claim's mark)."""
    return {"_id": delivery.id, "status": _PENDING, "lease_until": delivery.lease_until}


def _later_in_stream(delivery: PartnerWebhookDelivery) -> dict[str, Any]:
    return {
        "endpoint_id": delivery.endpoint_id,
        "wallet_id": delivery.wallet_id,
        "status": _PENDING,
        "sequence": {"$gt": delivery.sequence},
    }


async def _waits(delivery: PartnerWebhookDelivery) -> bool:
    """Whether an earlier delivery of the stream is still pending: then `delivery` waits
    until that one's next attempt (or, while that one is being sent, the next run)."""
    earlier = await _collection().find_one(
        {
            "endpoint_id": delivery.endpoint_id,
            "wallet_id": delivery.wallet_id,
            "status": _PENDING,
            "sequence": {"$lt": delivery.sequence},
        },
        projection={"next_attempt_at": 1, "lease_until": 1},
    )
    if earlier is None:
        return False
    now = utcnow()
    in_flight = earlier.get("lease_until") is not None and earlier["lease_until"] > now
    until: datetime = now if in_flight else max(earlier["next_attempt_at"], now)
    await _collection().update_one(
        _held(delivery), {"$set": {"next_attempt_at": until, "lease_until": None}}
    )
    return True


async def _end(
    delivery: PartnerWebhookDelivery,
    status: DeliveryStatus,
    fields: dict[str, Any],
    attempt: dict[str, Any] | None = None,
) -> None:
    """End `delivery` as `status` if this sender still holds it; the rest of its stream
    may go at once."""
    update: dict[str, Any] = {"$set": {"status": status.value, "lease_until": None, **fields}}
    if attempt is not None:
        update["$push"] = {"attempts": _appended(attempt)}
    await _collection().update_one(_held(delivery), update)
    now = utcnow()
    await _collection().update_many(
        {**_later_in_stream(delivery), "next_attempt_at": {"$gt": now}, "lease_until": None},
        {"$set": {"next_attempt_at": now}},
    )


async def end_pending(session: AsyncClientSession, endpoint_id: ObjectId) -> None:
    """In the transaction that disables or deletes an endpoint: its pending deliveries
    end as dead (a sender holding one finds it so and records nothing)."""
    await _collection().update_many(
        {"endpoint_id": endpoint_id, "status": _PENDING},
        {"$set": {"status": DeliveryStatus.DEAD.value, "lease_until": None}},
        session=session,
    )


async def requeue(delivery_id: ObjectId) -> PartnerWebhookDelivery | None:
    """A delivered or dead delivery pending again and due now, its retry period counted
    from now; None if it is pending."""
    now = utcnow()
    raw = await _collection().find_one_and_update(
        {
            "_id": delivery_id,
            "status": {"$in": [DeliveryStatus.DELIVERED.value, DeliveryStatus.DEAD.value]},
        },
        {
            "$set": {
                "status": _PENDING,
                "next_attempt_at": now,
                "redelivered_at": now,
                "delivered_at": None,
                "lease_until": None,
            }
        },
        return_document=ReturnDocument.AFTER,
    )
    return None if raw is None else PartnerWebhookDelivery.model_validate(raw)
