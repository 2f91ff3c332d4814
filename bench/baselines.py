"""The two apps gigql is measured against, served by uvicorn exactly as gigql is.

All three put `/graphql` behind a Starlette route, so routing costs each the same.
"""

from __future__ import annotations

import strawberry
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from strawberry.asgi import GraphQL


async def _typename(request: Request) -> JSONResponse:
    # Read the body as a GraphQL server must, then answer what `{ __typename }` answers.
    await request.body()
    return JSONResponse({"data": {"__typename": "Query"}})


# (a) The floor: Starlette and uvicorn with no GraphQL at all.
raw_app = Starlette(routes=[Route("/graphql", _typename, methods=["POST"])])


@strawberry.type
class Query:
    @strawberry.field
    def hello(self) -> str:
        return "world"


# (b) Strawberry as its documentation sets it up: default settings, no caches.
strawberry_app = Starlette(
    routes=[Route("/graphql", GraphQL(strawberry.Schema(Query)), methods=["GET", "POST"])]
)
