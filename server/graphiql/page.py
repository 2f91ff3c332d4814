"""The GraphiQL page at `/graphql` (a browser's GET, when `settings.graphiql_enabled`),
loading nothing from the internet.

Strawberry's own page loads React and GraphiQL from a CDN; ours loads pinned copies that
ship inside this package (static/vendor/, fetched by vendor.py, listed with their licences
in static/README.md) and a start-up script of ours (static/gigql-graphiql.js), so it
works offline and its Content-Security-Policy can allow 'self' alone, with no inline
script. Each file is read once and served from memory under a path that carries a digest
of its bytes, `/graphiql/static/<digest>/<name>`, cached as immutable: a new version
is a new path. Only the files listed in `FILES` are served, by name: nothing in the URL
ever becomes a filesystem path, so there is nothing to traverse and no folder to list.
Without GraphiQL the routes do not exist (404).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import cache
from importlib.resources import files

from jinja2 import Environment, PackageLoader, select_autoescape
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, Response
from starlette.routing import BaseRoute, Route

from documents.settings import Settings

PREFIX = "/graphiql/static"
MEDIA_TYPES = {".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8"}
# What the page loads, in order: styles in <head>, scripts at the end of <body>.
STYLES = ("vendor/graphiql.min.css", "vendor/plugin-explorer.css", "gigql-graphiql.css")
SCRIPTS = (
    "vendor/react.production.min.js",
    "vendor/react-dom.production.min.js",
    "vendor/graphiql.min.js",
    "vendor/plugin-explorer.umd.js",
    "gigql-graphiql.js",
)
FILES = STYLES + SCRIPTS
IMMUTABLE = {
    "Cache-Control": "public, max-age=31536000, immutable",
    "X-Content-Type-Options": "nosniff",
}
PAGE_HEADERS = {
    # Scripts, styles and connections (HTTP and the websocket) to this origin only. The
    # fonts and icons GraphiQL's stylesheet embeds are data: URLs.
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
        "img-src 'self' data:; font-src 'self' data:; base-uri 'none'; form-action 'none'; "
        "frame-ancestors 'none'"
    ),
    # The page names the current digests: it must not outlive an upgrade in a cache.
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
}
_templates = Environment(
    loader=PackageLoader("server", "templates"), autoescape=select_autoescape(["html"])
)


@dataclass(frozen=True)
class Asset:
    name: str  # as in FILES: its path under static/
    body: bytes
    media_type: str
    digest: str

    @property
    def file_name(self) -> str:
        """The last part of its URL."""
        return self.name.rpartition("/")[2]

    @property
    def url(self) -> str:
        return f"{PREFIX}/{self.digest}/{self.file_name}"


@cache
def assets() -> dict[str, Asset]:
    """The files by the last part of their URL, read once. A missing file fails here, at
    start-up (routes), not in a developer's browser."""
    static = files(__package__).joinpath("static")
    loaded: dict[str, Asset] = {}
    for name in FILES:
        body = static.joinpath(name).read_bytes()
        asset = Asset(
            name=name,
            body=body,
            media_type=MEDIA_TYPES[name[name.rindex(".") :]],
            digest=hashlib.sha256(body).hexdigest()[:16],
        )
        if asset.file_name in loaded:
            raise ValueError(f"Two GraphiQL files are named {asset.file_name}")
        loaded[asset.file_name] = asset
    return loaded


def routes(settings: Settings) -> list[BaseRoute]:
    """The static files' route, only while GraphiQL is on."""
    if not settings.graphiql_enabled:
        return []
    assets()
    return [Route(PREFIX + "/{digest}/{name}", static_file, methods=["GET"])]


async def static_file(request: Request) -> Response:
    asset = assets().get(request.path_params["name"])
    if asset is None or asset.digest != request.path_params["digest"]:
        # An old digest is not answered with today's bytes: they would be cached as its.
        return PlainTextResponse("Not Found", status_code=404)
    return Response(asset.body, media_type=asset.media_type, headers=IMMUTABLE)


def page() -> HTMLResponse:
    by_name = {asset.name: asset.url for asset in assets().values()}
    html = _templates.get_template("graphiql.html").render(
        styles=[by_name[name] for name in STYLES], scripts=[by_name[name] for name in SCRIPTS]
    )
    return HTMLResponse(html, headers=PAGE_HEADERS)
