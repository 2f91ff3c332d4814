"""The Starlette application: routes, middleware and the lifespan of its resources."""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.middleware.errors import ServerErrorMiddleware
from starlette.routing import Route, WebSocketRoute
from starlette.types import Receive, Scope, Send

from documents.settings import Settings
from realtime.going_away import close_before_sigterm
from resolvers.notifications.unsubscribe import PATH as UNSUBSCRIBE_PATH
from schema.common.rate_limits import RateLimits
from schema.partners.schema import build_partner_schema
from schema.persisted.setup import persisted_documents
from schema.persisted.shared import SharedQueries
from schema.schema import build_schema
from server import background, sandbox_pages
from server.graphiql import page as graphiql_page
from server.graphql_view import GraphQLView
from server.health import healthz, readyz
from server.middleware import EdgeMiddleware
from server.notifications.unsubscribe_page import unsubscribe_page
from server.observability.edge import edge_middleware, http_routes, start_tracing
from server.observability.exposition import PATH as METRICS_PATH
from server.observability.exposition import MetricsEndpoint
from server.observability.multiprocess import worker_stopped
from server.partners.view import ByCredential, PartnerGraphQLView
from server.runtime import Runtime, open_runtime
from server.webhook_route import stripe_webhook


class App(Starlette):
    """Starlette, less two calls for a websocket: the `ServerErrorMiddleware` it puts
    outermost answers HTTP alone and passes a websocket through, and the edge layer's
    `__call__` only dispatches on the scope's type; yet every open socket kept both
    suspended frames for its life. A websocket goes from here straight to the first of
    the user middleware (the edge's `websocket` when that is first, as without the
    metrics port or tracing), with the scope's `app` set as Starlette sets it; HTTP and
    the lifespan take Starlette's whole path as before. (`__call__` stays a coroutine
    function: servers tell ASGI 3 apps by that.)"""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "websocket":
            await super().__call__(scope, receive, send)
            return
        scope["app"] = self
        if self.middleware_stack is None:
            self.middleware_stack = self.build_middleware_stack()
        stack = self.middleware_stack
        inner = stack.app if isinstance(stack, ServerErrorMiddleware) else stack
        if isinstance(inner, EdgeMiddleware):
            await inner.websocket(scope, receive, send)  # past its dispatch too
        else:
            await inner(scope, receive, send)


def create_app(settings: Settings, runtime: Runtime | None = None) -> Starlette:
    """Build the app; it opens (and closes) its own runtime unless one is handed in.

    Only with its own runtime does it also run the background jobs and close its
    websockets politely on SIGTERM: whoever hands one in (tests, embedding) decides what
    runs when.
    """

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        try:
            async with serving(app):
                yield
        finally:
            await rate_limits.close()
            if persisted_redis is not None:
                await persisted_redis.aclose()
            if tracing is not None:
                tracing.shutdown()
            worker_stopped()

    @asynccontextmanager
    async def serving(app: Starlette) -> AsyncIterator[None]:
        if runtime is not None:
            app.state.runtime = runtime
            yield
            return
        async with open_runtime(settings) as opened:
            app.state.runtime = opened
            # What start-up allocated lives as long as the process: keeping it out of the
            # collector's generations turns 60 ms full collections into 1 ms ones.
            gc.collect()
            gc.freeze()
            jobs = background.marketplace_jobs(opened.services)
            with close_before_sigterm(view.sockets):
                async with background.running(jobs, background.instance_name()):
                    yield

    rate_limits = RateLimits(settings)
    view = GraphQLView(build_schema(settings, rate_limits))
    partners = PartnerGraphQLView(build_partner_schema(settings, rate_limits))
    by_credential = ByCredential(view, partners)
    # Persisted queries and trusted documents (schema/persisted/); a manifest that cannot
    # be served raises ManifestError here, before anything is served.
    persisted_redis = (
        SharedQueries.connect(settings.redis_url)
        if settings.redis_url and settings.persisted_queries_enabled
        else None
    )
    view.schema.persisted = persisted_documents(
        view.schema, settings, graph="main", redis=persisted_redis
    )
    partners.schema.persisted = persisted_documents(
        partners.schema, settings, graph="partner", redis=persisted_redis, trusted=False
    )
    tracing = start_tracing(settings, view.schema, partners.schema)

    # Served from the edge layer, past the HTTP-only layers (server/middleware.py).
    sockets = [WebSocketRoute("/graphql", view)]
    routes = [
        # Every method: the view answers those it does not serve (405, with Allow).
        Route("/graphql", by_credential),
        *sockets,
        Route("/healthz", healthz),
        Route("/readyz", readyz),
        Route(METRICS_PATH, MetricsEndpoint(settings).serve),
        Route("/webhooks/stripe", stripe_webhook, methods=["POST"]),
        Route(UNSUBSCRIBE_PATH, unsubscribe_page, methods=["GET", "POST"]),
        *sandbox_pages.routes(settings),  # none with a Stripe key
        *graphiql_page.routes(settings),  # none without GraphiQL
    ]
    return App(
        debug=settings.debug,
        routes=routes,
        middleware=[
            *edge_middleware(settings, tracing),
            # Request ids and the access log, metrics, the sandbox pages' origin, CORS and
            # the size limits, in one layer (server/middleware.py).
            Middleware(
                EdgeMiddleware,
                max_bytes=settings.max_body_bytes,
                cors=partial(
                    CORSMiddleware,
                    allow_origins=settings.cors_origins,
                    allow_methods=["GET", "POST"],
                    allow_headers=["authorization", "content-type", "x-request-id"],
                    expose_headers=["x-request-id"],
                    allow_credentials=True,
                    max_age=600,
                ),
                routes=http_routes(settings, routes),
                remember_origin=sandbox_pages.served(settings),
                sockets=sockets,
            ),
        ],
        lifespan=lifespan,
    )
