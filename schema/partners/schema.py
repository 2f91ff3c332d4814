"""The partner API's graph: what a request with a partner API key can reach, and nothing
of the main graph's (users, tasks, bookings, chat, the marketplace's money). Served on
the same `/graphql` (server/partners/view.py picks it by the key's `gq_` prefix), with
the same document limits and rate limits, plus one budget per key."""

from __future__ import annotations

from strawberry.tools import merge_types

from documents.settings import Settings
from schema.common.rate_limits import RateLimits
from schema.common.relay import NodeQuery
from schema.partners.gateway_moves import PartnerGatewayMutation
from schema.partners.me import PartnerSelfQuery
from schema.partners.moves import PartnerMoneyMutation, PartnerMoneyQuery
from schema.partners.wallets import PartnerWalletMutation, PartnerWalletQuery
from schema.partners.webhooks import PartnerWebhookMutation, PartnerWebhookQuery
from schema.schema import GigqlSchema

PartnerQuery = merge_types(
    "Query",
    (NodeQuery, PartnerSelfQuery, PartnerWalletQuery, PartnerMoneyQuery, PartnerWebhookQuery),
)
PartnerMutation = merge_types(
    "Mutation",
    (
        PartnerWalletMutation,
        PartnerMoneyMutation,
        PartnerGatewayMutation,
        PartnerWebhookMutation,
    ),
)


def build_partner_schema(
    settings: Settings | None = None, rate_limits: RateLimits | None = None
) -> GigqlSchema:
    return GigqlSchema(
        settings or Settings(),
        rate_limits,
        query=PartnerQuery,
        mutation=PartnerMutation,
        subscription=None,
        graph="partner",
    )
