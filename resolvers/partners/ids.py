"""The ids partners see: Relay global ids, as the partner schema gives them, so that an
id in a webhook is the id the API takes."""

from __future__ import annotations

import base64

from bson import ObjectId

PARTNER_TYPE = "Partner"
WALLET_TYPE = "PartnerWallet"
TRANSACTION_TYPE = "PartnerTransaction"
EVENT_PREFIX = "evt_"


def global_id(type_name: str, oid: ObjectId) -> str:
    """As `strawberry.relay.to_base64(type_name, oid)`."""
    return base64.b64encode(f"{type_name}:{oid}".encode()).decode()
