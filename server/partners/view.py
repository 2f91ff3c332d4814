"""`/graphql` for partners: requests whose bearer token is a partner API key (`gq_...`).

The key is checked before anything else is done with the request (resolvers/partners/
keys.py): a bad one is 401 with `INVALID_API_KEY`, too many bad ones from an address 429.
The request then runs against the partner graph (schema/partners/schema.py) with the
partner in its context, counted against the key's own rate limit as well as the usual
per-address ones. Partner keys are not taken over websocket.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send
from starlette.websockets import WebSocket
from strawberry.http import GraphQLRequestData

from documents.errors import DomainError, ErrorCode
from resolvers.common.request_ids import request_id_var
from resolvers.common.services import RequestMeta
from resolvers.partners.keys import PartnerAccess, authenticate, looks_like_key
from schema.common.context import Context
from schema.common.rate_limits import count_partner_operations
from schema.partners.context import PartnerContext
from server.edge.headers import HTTPRequest, RequestHeaders
from server.edge.media_types import error_media_type
from server.graphql_view import GraphQLView, bearer_token, graphql_error_response
from server.runtime import Runtime

_ACCESS = "gigql.partner_access"
_STATUS = {ErrorCode.INVALID_API_KEY: 401, ErrorCode.TOO_MANY_ATTEMPTS: 429}


class ByCredential:
    """`/graphql` over HTTP: a partner's API key reaches the partner graph, anything else
    (a user's token, none) the main one."""

    def __init__(self, main: GraphQLView, partners: PartnerGraphQLView) -> None:
        self.main = main
        self.partners = partners

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        header = RequestHeaders(scope=scope).get("authorization")
        chosen = self.partners if looks_like_key(bearer_token(header)) else self.main
        await chosen(scope, receive, send)


class PartnerGraphQLView(GraphQLView):
    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        assert scope["type"] == "http", "partner keys are not taken over websocket"
        request = HTTPRequest(scope, receive)
        runtime: Runtime = request.app.state.runtime
        presented = bearer_token(request.headers.get("authorization")) or ""
        try:
            scope[_ACCESS] = await authenticate(runtime.services, _meta(request), presented)
        except DomainError as error:
            response = graphql_error_response(
                _STATUS.get(error.code, 401),
                str(error),
                error.code.value,
                media_type=error_media_type(request.headers),
            )
            if error.code is ErrorCode.INVALID_API_KEY:
                response.headers["WWW-Authenticate"] = 'Bearer error="invalid_token"'
            await response(scope, receive, send)
            return
        await super().__call__(scope, receive, send)

    async def get_context(
        self, request: Request | WebSocket, response: Response | WebSocket
    ) -> PartnerContext:
        access: PartnerAccess = request.scope[_ACCESS]
        return PartnerContext(
            services=request.app.state.runtime.services,
            meta=_meta(request),
            request=request,
            response=response if isinstance(response, Response) else None,
            access_token=None,
            partner_access=access,
        )

    async def count(self, context: Context, operations: list[GraphQLRequestData]) -> None:
        """A partner's requests count against its key's budgets, in place of the address's:
        a partner's servers may all call from one address, and every one is identified."""
        assert isinstance(context, PartnerContext) and context.partner_access is not None
        key_id = str(context.partner_access.key.id)
        await count_partner_operations(self.schema, key_id, operations)


def _meta(request: Request | WebSocket) -> RequestMeta:
    return RequestMeta(
        ip=request.client.host if request.client else None,
        user_agent=request.headers.get("user-agent"),
        request_id=request_id_var.get(),
    )
