"""The context of a request made with a partner API key."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeAlias

import strawberry

from documents.partners.api_keys import ApiScope
from resolvers.partners.keys import PartnerAccess
from schema.common.context import Context


@dataclass
class PartnerContext(Context):
    """As a user's, but authenticated by an API key (server/partners/view.py checked it
    before anything ran): never a viewer, always a partner."""

    partner_access: PartnerAccess | None = None

    def partner(self, scope: ApiScope) -> PartnerAccess:
        """The partner this request acts for, if its key has `scope` (else FORBIDDEN)."""
        assert self.partner_access is not None, "the partner view authenticates first"
        self.partner_access.require(scope)
        return self.partner_access


PartnerInfo: TypeAlias = strawberry.Info[PartnerContext, None]
