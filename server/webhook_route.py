"""`POST /webhooks/stripe`: the gateway's events, on a REST side route.

The signature is checked on the raw body (any re-encoding would break it), once the
body is known to be JSON we accept at all (server/strict_json.py): bytes that are not
UTF-8, lone surrogates or deep nesting would otherwise fail while being stored or read
back, as a 500 that the gateway retries for days. 200 means the event is stored,
whatever its processing did: a failure there is ours to retry, not the gateway's. A
database that cannot store it gets a 503, so the gateway sends it again.
"""

from __future__ import annotations

import logging

from pymongo.errors import PyMongoError
from starlette.requests import Request
from starlette.responses import JSONResponse

from integrations.payments.errors import WebhookSignatureError
from resolvers.payments.webhooks.inbox import NotAnEvent, receive
from server import strict_json
from server.runtime import Runtime

log = logging.getLogger(__name__)

SIGNATURE_HEADER = "stripe-signature"


async def stripe_webhook(request: Request) -> JSONResponse:
    runtime: Runtime = request.app.state.runtime
    payload = await request.body()
    try:
        strict_json.loads(payload)
    except strict_json.MalformedJSON as error:
        log.warning("webhook refused: malformed JSON: %s", error)
        return JSONResponse({"error": "not an event", "detail": str(error)}, status_code=400)
    try:
        stored = await receive(runtime.services, payload, request.headers.get(SIGNATURE_HEADER))
    except WebhookSignatureError as error:
        log.warning("webhook refused: %s", error)
        return JSONResponse({"error": "invalid signature", "detail": str(error)}, status_code=400)
    except NotAnEvent as error:
        # Signed by the right secret but not an event: nothing to store or retry.
        log.warning("webhook refused: a signed body that is not an event: %s", error)
        return JSONResponse({"error": "not an event", "detail": str(error)}, status_code=400)
    except PyMongoError:
        log.exception("webhook not stored")
        return JSONResponse({"error": "temporarily unavailable"}, status_code=503)
    return JSONResponse({"received": True, "id": stored.event_id, "status": stored.status.value})
