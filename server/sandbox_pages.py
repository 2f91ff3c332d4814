"""The sandbox gateway's pages: what Stripe's onboarding and identity pages do, served by
gigql while it runs on the sandbox (no route exists with a Stripe key: 404).

    /sandbox/connect/onboarding/<token>   a payout account's onboarding: completed, or
                                          left with a requirement due
    /sandbox/identity/<token>             an identity check: verified, or failed

Plain server-rendered HTML forms (Jinja2, everything escaped), no JavaScript. The link's
token is the only credential: unguessable, made for one provider, single-use and valid
for five minutes (onboarding, as Stripe's account links) or while the check is open
(identity, as Stripe's session url). A form posts back to its own link, so a page on
another site cannot forge it without the token. Each check of a token counts with the
other secret checks of the client's address (resolvers/accounts/auth/guessing.py): an unknown one
is audited and counts as a failure. After the outcome the page redirects to the return
URL the link was made with; an expired or used onboarding link redirects to its refresh
URL, as Stripe's do.
"""

from __future__ import annotations

import re
from urllib.parse import parse_qs

from jinja2 import Environment, PackageLoader, select_autoescape
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Route
from starlette.types import Scope

from documents.errors import DomainError, ErrorCode
from documents.settings import Settings
from integrations.payments.factory import uses_sandbox
from integrations.payments.sandbox import (
    IDENTITY_PAGE,
    ONBOARDING_PAGE,
    OUTCOMES,
    LinkKind,
    PageLink,
    SandboxGateway,
)
from resolvers.accounts.auth.guessing import token_check
from resolvers.common.request_ids import request_id_var
from resolvers.common.services import RequestMeta
from server.runtime import Runtime

TOKEN_KIND = "sandbox_link"  # noqa: S105 - a name, not a secret
"""How a token check of these pages is named in the audit log."""
MAX_FORM_FIELDS = 4
HEADERS = {
    "Cache-Control": "no-store",
    # The token in the address must not follow the provider to the return URL.
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; frame-ancestors 'none'"
    ),
}
# What a Host header may be for links to be built from it: a name or address, a port.
_HOST = re.compile(r"^(?:[A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\])(?::[0-9]{1,5})?$")
_SCHEMES = {"http": "http", "https": "https", "ws": "http", "wss": "https"}

_templates = Environment(
    loader=PackageLoader("server", "templates"),
    autoescape=select_autoescape(default=True, default_for_string=True),
)


def routes(settings: Settings) -> list[BaseRoute]:
    if not uses_sandbox(settings):
        return []
    methods = ["GET", "POST"]
    return [
        Route(ONBOARDING_PAGE + "{token}", _onboarding, methods=methods),
        Route(IDENTITY_PAGE + "{token}", _identity, methods=methods),
    ]


def served(settings: Settings) -> bool:
    """Whether the pages are served: then each request keeps the scheme and host it came
    to (`page_origin`, set by server/middleware.py from `origin_of`), so that the links
    the sandbox makes while serving it lead back to this server."""
    return uses_sandbox(settings)


def origin_of(scope: Scope) -> str | None:
    scheme = _SCHEMES.get(scope.get("scheme", ""), "http")
    for name, value in scope.get("headers", ()):
        if name == b"host":
            host = value.decode("latin-1")
            return f"{scheme}://{host}" if _HOST.match(host) else None
    return None


async def _onboarding(request: Request) -> Response:
    return await _page(request, "account_onboarding")


async def _identity(request: Request) -> Response:
    return await _page(request, "identity_verification")


async def _page(request: Request, kind: LinkKind) -> Response:
    runtime: Runtime = request.app.state.runtime
    gateway = runtime.services.payments
    if not isinstance(gateway, SandboxGateway):
        return _message("Not found", "There is no such page.", 404)
    outcome = None
    if request.method == "POST":
        outcome = _outcome(await request.body(), kind)
        if outcome is None:
            return _message("Bad request", "Choose one of the outcomes on the page.", 400)
    token = request.path_params["token"]
    meta = RequestMeta(
        ip=request.client.host if request.client else None,
        user_agent=request.headers.get("user-agent"),
        request_id=request_id_var.get(),
    )
    try:
        async with token_check(runtime.services, meta, TOKEN_KIND):
            link = await (
                gateway.open_link(kind, token)
                if outcome is None
                else gateway.follow_link(kind, token, outcome)
            )
            if link is None:
                raise DomainError(ErrorCode.INVALID_TOKEN, "No such link.")
    except DomainError as error:
        if error.code is ErrorCode.TOO_MANY_ATTEMPTS:
            return _message("Too many attempts", error.problems[0].message, 429)
        return _message("Not found", "This link does not exist.", 404)
    if not link.usable:
        return _spent(link)
    if outcome is None:
        return _form(link)
    return _done(link)


def _outcome(body: bytes, kind: LinkKind) -> str | None:
    """The outcome a form posted, if it is one of the page's."""
    try:
        fields = parse_qs(body.decode(), max_num_fields=MAX_FORM_FIELDS, strict_parsing=True)
    except (UnicodeDecodeError, ValueError):
        return None
    chosen = fields.get("outcome", [])
    if len(chosen) != 1 or chosen[0] not in OUTCOMES[kind]:
        return None
    return chosen[0]


def _form(link: PageLink) -> Response:
    if link.kind == "account_onboarding":
        return _html("sandbox_onboarding.html", 200, title="Payout account", account=link.subject)
    return _html("sandbox_identity.html", 200, title="Identity check", session=link.subject)


def _spent(link: PageLink) -> Response:
    """A used or expired onboarding link goes to its refresh URL for a new one; a closed
    identity check has nothing left to do."""
    if link.refresh_url is not None:
        return _redirect(link.refresh_url)
    return _message("Identity check", "This identity check is over.", 410)


def _done(link: PageLink) -> Response:
    if link.return_url is not None:
        return _redirect(link.return_url)
    return _message("Done", "You can close this page and return to the marketplace.", 200)


def _redirect(url: str) -> Response:
    return RedirectResponse(url, status_code=303, headers=HEADERS)


def _message(title: str, message: str, status: int) -> Response:
    return _html("sandbox_message.html", status, title=title, message=message)


def _html(template: str, status: int, **values: object) -> Response:
    page = _templates.get_template(template).render(**values)
    return HTMLResponse(page, status_code=status, headers=HEADERS)
