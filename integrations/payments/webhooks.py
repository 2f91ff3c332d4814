"""Stripe's webhook signatures, which both gateways' events carry.

`Stripe-Signature: t=<unix time>,v1=<hex>[,v1=<hex>...]`, where each v1 is
HMAC-SHA256(endpoint secret, "<t>.<raw body>"); several v1 values appear while a secret
is being rolled. As in Stripe's SDKs, any matching v1 will do, and a timestamp more than
300 s in the past is refused (a replay), one in the future is not.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time

from integrations.payments.errors import WebhookSignatureError
from integrations.payments.gateway import GatewayEvent

SIGNATURE_TOLERANCE_SECONDS = 300
SCHEME = "v1"


def _signature(payload: bytes, secret: str, timestamp: int) -> str:
    signed = str(timestamp).encode() + b"." + payload
    return hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()


def sign_payload(payload: bytes, secret: str, timestamp: int) -> str:
    """The `Stripe-Signature` header Stripe would send with this body."""
    return f"t={timestamp},{SCHEME}={_signature(payload, secret, timestamp)}"


def verify_signature(payload: bytes, signature_header: str | None, secret: str) -> None:
    if not signature_header:
        raise WebhookSignatureError("no Stripe-Signature header")
    if not secret.strip():
        raise WebhookSignatureError("no webhook secret configured")
    timestamps: list[str] = []
    signatures: list[str] = []
    for item in signature_header.split(","):
        key, _, value = item.partition("=")
        if key == "t":
            timestamps.append(value)
        elif key == SCHEME:
            signatures.append(value)
    try:
        timestamp = int(timestamps[0])
    except (IndexError, ValueError):
        raise WebhookSignatureError("no timestamp in the Stripe-Signature header") from None
    if not signatures:
        raise WebhookSignatureError(f"no {SCHEME} signature in the Stripe-Signature header")
    expected = _signature(payload, secret, timestamp)
    if not any(hmac.compare_digest(expected.encode(), given.encode()) for given in signatures):
        raise WebhookSignatureError("no signature matches the payload")
    if timestamp < time.time() - SIGNATURE_TOLERANCE_SECONDS:
        raise WebhookSignatureError(f"the signature is older than {SIGNATURE_TOLERANCE_SECONDS} s")


def parse_event(payload: bytes, signature_header: str | None, secret: str) -> GatewayEvent:
    verify_signature(payload, signature_header, secret)
    return GatewayEvent.from_stripe(json.loads(payload))
