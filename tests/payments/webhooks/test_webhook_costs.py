"""What one webhook event costs the database: the commands `receive` sends for it.

Each write is a round trip, and on the embedded database every statement of a
transaction waits for the statements of the others, so the inbox and the payment
handler send as few as their guarantees allow (bench/README.md, Issue 16: payment
webhooks). The commands are those of this task only (tests/support/command_log.py): the
runtime's background jobs run under other request ids.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from documents.payments.escrow import Escrow, EscrowStatus
from documents.payments.webhooks import WebhookStatus
from resolvers.common.request_ids import request_id_var
from resolvers.payments.webhooks.inbox import receive
from server.runtime import Runtime
from tests.payments.escrow.test_escrow_races import succeeded, unpaid
from tests.support.command_log import CommandLog
from tests.support.graphql_client import GraphQLClient
from tests.support.payments.webhooks import (
    event_id_of,
    signature,
    stored,
    stripe_event,
    webhook_secret,
)


@contextmanager
def commands_of_this_task(command_log: CommandLog, name: str) -> Iterator[list[tuple[str, str]]]:
    token = request_id_var.set(name)
    try:
        with command_log.recording(name) as commands:
            yield commands
    finally:
        request_id_var.reset(token)


async def test_an_ignored_event_is_stored_claimed_and_finished_in_two_writes(
    runtime: Runtime, command_log: CommandLog
) -> None:
    body = stripe_event()
    header = signature(body, webhook_secret(runtime.services))
    with commands_of_this_task(command_log, "ignored-event") as commands:
        event = await receive(runtime.services, body, header)

    assert event.status is WebhookStatus.IGNORED
    # Stored already held by this runner (one attempt), then finished: no separate claim.
    assert commands == [("insert", "webhook_events"), ("update", "webhook_events")]
    kept = await stored(event_id_of(body))
    assert kept.status is WebhookStatus.IGNORED and kept.attempts == 1


PAYMENT_COMMANDS = [
    # Stored, already held by this delivery: no claim of its own.
    ("insert", "webhook_events"),
    # One transaction: the escrow found once and changed by id (the change is made from
    # what was found, not read back),
    ("find", "escrows"),
    ("update", "escrows"),
    # the payment posted once (its key looked up first) with its balances,
    ("find", "ledger_transactions"),
    ("insert", "ledger_transactions"),
    ("update", "ledger_balances"),
    # is the task disputed? then the domain event, the outbox's record.
    ("find", "tasks"),
    ("insert", "events"),
    ("commitTransaction", "1"),
    # After the commit: the event's notifications and deliveries derived from it, the
    # event marked derived and published in one write, the webhook event finished. No
    # partner transaction is looked for (the intent names an escrow) and the escrow is
    # not fetched again (nothing waits for the gateway).
    ("insert", "notifications"),
    ("find", "notification_preferences"),
    ("insert", "notification_deliveries"),
    ("update", "events"),
    ("update", "webhook_events"),
]


async def test_a_payment_costs_one_transaction_and_no_collection_scans(
    client: GraphQLClient, runtime: Runtime, command_log: CommandLog
) -> None:
    _deal, escrow = await unpaid(client)
    body = stripe_event("payment_intent.succeeded", succeeded(escrow))
    header = signature(body, webhook_secret(runtime.services))
    with commands_of_this_task(command_log, "payment-event") as commands:
        event = await receive(runtime.services, body, header)
    sent = list(zip(commands, command_log.documents, strict=True))

    assert event.status is WebhookStatus.PROCESSED
    paid = await Escrow.get(escrow.id)
    assert paid is not None and paid.status is EscrowStatus.HELD
    assert commands == PAYMENT_COMMANDS, "\n".join(map(str, commands))
    # findAndModify writes by scanning the whole collection on the embedded database, and
    # so does a top-level `$and`: the escrow is changed by its id, beside the status it
    # must be in.
    (escrow_write,) = [doc for command, doc in sent if command == ("update", "escrows")]
    condition: dict[str, Any] = escrow_write["updates"][0]["q"]
    assert condition["_id"] == escrow.id and "$and" not in condition, condition
    assert condition["status"] == {"$in": [EscrowStatus.AWAITING_PAYMENT.value]}
