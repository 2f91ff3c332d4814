"""Stripe's API for the Stripe adapter's tests, on one loopback address.

localstripe (a separate process) implements payment intents, payment methods and refunds.
This stub answers, in Stripe's JSON shapes, what localstripe lacks: Connect accounts and
account links, transfers and their reversals, payouts on a connected account (the
`Stripe-Account` header) and their list, Identity verification sessions. Every other
request goes on to localstripe. In front of both it keeps Stripe's idempotency
(localstripe ignores `Idempotency-Key`), and it covers two more gaps of localstripe:
payment intents keep their `transfer_group` here (and `allowed_payment_method_types` is
dropped: localstripe only knows cards anyway), and lists of payment intents and refunds
are filtered by `created` (and by `payment_intent`, as transfers by `transfer_group`).

It also receives localstripe's webhooks (`/_webhooks`). The test controls at the end play
what happens on Stripe's pages and at the bank.
"""

from __future__ import annotations

import asyncio
import json
import re
import secrets
import socket
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlencode

import httpx
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

StripeDict = dict[str, Any]
Pairs = list[tuple[str, str]]

# Parameters of POST /v1/payment_intents that localstripe refuses as unknown.
KEPT_FROM_LOCALSTRIPE = ("transfer_group", "allowed_payment_method_types")
FILTERED_HERE = {"/v1/payment_intents", "/v1/refunds"}


class StripeProblem(Exception):
    """An error answered in Stripe's shape."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        code: str | None = None,
        error_type: str = "invalid_request_error",
        **extra: str,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.error = {"type": error_type, "message": message, "code": code, **extra}

    def response(self) -> JSONResponse:
        return JSONResponse({"error": self.error}, status_code=self.status)


def _missing(kind: str, object_id: str, status: int = 404, **extra: str) -> StripeProblem:
    return StripeProblem(status, f"No such {kind}: '{object_id}'", code="resource_missing", **extra)


def _nested(pairs: Pairs) -> StripeDict:
    """Stripe's form encoding (`metadata[deal]=x`) back into objects."""
    tree: StripeDict = {}
    for key, value in pairs:
        path = re.findall(r"[^\[\]]+", key)
        node = tree
        for part in path[:-1]:
            node = node.setdefault(part, {})
        node[path[-1]] = value
    return tree


LIST_FILTERS = ("transfer_group", "payment_intent")
"""Parameters of list endpoints that keep only the objects with that value."""


def _page(objects: list[StripeDict], query: StripeDict, url: str) -> StripeDict:
    """Stripe's list: newest first, filtered by `created` and `LIST_FILTERS`, paged
    with `starting_after`."""
    created = query.get("created", {})
    bounds: dict[str, Callable[[int, int], bool]] = {
        "gt": int.__gt__,
        "gte": int.__ge__,
        "lt": int.__lt__,
        "lte": int.__le__,
    }
    chosen = [
        obj
        for obj in objects
        if all(bounds[op](obj["created"], int(value)) for op, value in created.items())
        and all(obj.get(name) == query[name] for name in LIST_FILTERS if name in query)
    ]
    chosen.sort(key=lambda obj: obj["created"], reverse=True)  # stable: ties keep their order
    if "starting_after" in query:
        ids = [obj["id"] for obj in chosen]
        chosen = chosen[ids.index(query["starting_after"]) + 1 :]
    limit = int(query.get("limit", 10))
    return {"object": "list", "data": chosen[:limit], "has_more": len(chosen) > limit, "url": url}


@dataclass(frozen=True)
class Seen:
    path: str
    idempotency_key: str | None
    stripe_account: str | None


class StripeStub:
    def __init__(self, localstripe_url: str) -> None:
        self.url = ""  # set once served
        self._localstripe = httpx.AsyncClient(base_url=localstripe_url, timeout=30)
        self._objects: dict[str, StripeDict] = {}
        self._transfer_groups: dict[str, str] = {}
        self._payout_accounts: dict[str, str] = {}
        self._replies: dict[tuple[str | None, str], tuple[list[object], int, bytes]] = {}
        self._failures: list[int] = []
        self.seen: list[Seen] = []
        self.webhooks: list[tuple[bytes, str]] = []
        self._webhook_arrived = asyncio.Event()
        self.app = Starlette(
            routes=[
                Route("/_webhooks", self._receive_webhook, methods=["POST"]),
                Route("/{path:path}", self._handle, methods=["GET", "POST", "DELETE"]),
            ]
        )
        post: dict[str, Callable[[StripeDict, Request], StripeDict]] = {
            r"/v1/accounts": self._create_account,
            r"/v1/account_links": self._create_account_link,
            r"/v1/transfers": self._create_transfer,
            r"/v1/transfers/(?P<id>[^/]+)/reversals": self._reverse_transfer,
            r"/v1/payouts": self._create_payout,
            r"/v1/identity/verification_sessions": self._create_verification_session,
        }
        get: dict[str, Callable[[StripeDict, Request], StripeDict]] = {
            r"/v1/accounts/(?P<id>[^/]+)": self._retrieve("account"),
            r"/v1/transfers": self._list_transfers,
            r"/v1/transfers/(?P<id>[^/]+)": self._retrieve("transfer"),
            r"/v1/payouts": self._list_payouts,
            r"/v1/identity/verification_sessions/(?P<id>[^/]+)": self._retrieve(
                "identity.verification_session"
            ),
        }
        self._routes = {"POST": post, "GET": get}

    async def aclose(self) -> None:
        await self._localstripe.aclose()

    # -- controls ----------------------------------------------------------------------

    def fail_next(self, status: int) -> None:
        """Answer the next request with this status before it reaches Stripe proper (a
        load balancer's 503): nothing is done and nothing is remembered for its key."""
        self._failures.append(status)

    def forget_idempotency_keys(self) -> None:
        """What Stripe does to keys at least 24 hours old: a repeat makes a new object."""
        self._replies.clear()

    def complete_onboarding(self, account_id: str) -> None:
        account = self._objects[account_id]
        account.update(details_submitted=True, payouts_enabled=True)
        account["capabilities"]["transfers"] = "active"

    def verify_identity(self, session_id: str, ok: bool) -> None:
        session = self._objects[session_id]
        if ok:
            session["status"] = "verified"
        else:
            session["last_error"] = {
                "code": "document_unverified_other",
                "reason": "The document could not be verified.",
            }

    async def webhook(self, match: Callable[[StripeDict], bool], timeout: float = 10) -> bytes:
        """The body of the first webhook from localstripe whose event matches."""
        async with asyncio.timeout(timeout):
            while True:
                for body, _ in self.webhooks:
                    if match(json.loads(body)):
                        return body
                self._webhook_arrived.clear()
                await self._webhook_arrived.wait()

    def signature_of(self, body: bytes) -> str:
        return next(header for sent, header in self.webhooks if sent == body)

    # -- the front: idempotency, then our endpoints or localstripe ----------------------

    async def _handle(self, request: Request) -> Response:
        key = request.headers.get("idempotency-key")
        account = request.headers.get("stripe-account")
        self.seen.append(Seen(request.url.path, key, account))
        if self._failures:
            return JSONResponse(
                {"error": {"type": "api_error", "message": "Service unavailable."}},
                status_code=self._failures.pop(0),
            )
        if request.method == "POST":
            pairs = parse_qsl((await request.body()).decode(), keep_blank_values=True)
        else:
            pairs = list(request.query_params.multi_items())
        fingerprint: list[object] = [request.method, request.url.path, sorted(pairs)]
        if request.method == "POST" and key is not None and (account, key) in self._replies:
            first, status, body = self._replies[(account, key)]
            if first != fingerprint:
                return StripeProblem(
                    400,
                    "Keys for idempotent requests can only be used with the same "
                    "parameters they were first used with. Try using a key other than "
                    f"'{key}' if you meant to execute a different request.",
                    error_type="idempotency_error",
                ).response()
            return Response(
                body,
                status,
                media_type="application/json",
                headers={"Idempotent-Replayed": "true"},
            )
        response = await self._answer(request, pairs)
        # Stripe keeps the result once the endpoint has run, but not a request refused as
        # invalid, which may then be corrected and sent again with the same key.
        if request.method == "POST" and key is not None and response.status_code not in (400, 404):
            self._replies[(account, key)] = (
                fingerprint,
                response.status_code,
                bytes(response.body),
            )
        return response

    async def _answer(self, request: Request, pairs: Pairs) -> Response:
        path = request.url.path
        for pattern, endpoint in self._routes.get(request.method, {}).items():
            found = re.fullmatch(pattern, path)
            if found:
                params = _nested(pairs)
                params.update(found.groupdict())
                try:
                    return JSONResponse(endpoint(params, request))
                except StripeProblem as problem:
                    return problem.response()
        if request.method == "GET" and path in FILTERED_HERE and "created" in _nested(pairs):
            return await self._filtered_list(request, pairs)
        return await self._forward(request, pairs)

    async def _forward(self, request: Request, pairs: Pairs) -> Response:
        path = request.url.path
        creating_intent = request.method == "POST" and path == "/v1/payment_intents"
        transfer_group = dict(pairs).get("transfer_group")
        if creating_intent:
            pairs = [(k, v) for k, v in pairs if not k.startswith(KEPT_FROM_LOCALSTRIPE)]
        reply = await self._localstripe.request(
            request.method,
            path,
            params=None if request.method == "POST" else urlencode(pairs),
            content=urlencode(pairs) if request.method == "POST" else None,
            headers={
                "Authorization": request.headers.get("authorization", ""),
                "Content-Type": "application/x-www-form-urlencoded",
            },
        )
        if not reply.headers.get("content-type", "").startswith("application/json"):
            return Response(reply.content, reply.status_code)  # localstripe crashed
        body = reply.json()
        if creating_intent and reply.is_success and transfer_group is not None:
            self._transfer_groups[body["id"]] = transfer_group
        return JSONResponse(self._with_transfer_groups(body), status_code=reply.status_code)

    async def _filtered_list(self, request: Request, pairs: Pairs) -> Response:
        reply = await self._localstripe.get(
            request.url.path,
            params={"limit": 1_000_000},
            headers={"Authorization": request.headers.get("authorization", "")},
        )
        everything = self._with_transfer_groups(reply.json())["data"]
        return JSONResponse(_page(everything, _nested(pairs), request.url.path))

    def _with_transfer_groups(self, body: StripeDict) -> StripeDict:
        for obj in body.get("data", [body]) if body.get("object") == "list" else [body]:
            if obj.get("object") == "payment_intent":
                obj["transfer_group"] = self._transfer_groups.get(obj["id"])
        return body

    async def _receive_webhook(self, request: Request) -> Response:
        self.webhooks.append((await request.body(), request.headers["stripe-signature"]))
        self._webhook_arrived.set()
        return Response(status_code=200)

    # -- the endpoints localstripe lacks ----------------------------------------------

    def _new(self, prefix: str, fields: StripeDict) -> StripeDict:
        obj = {
            "id": f"{prefix}_{secrets.token_hex(8)}",
            "created": int(time.time()),
            "livemode": False,
            **fields,
        }
        self._objects[obj["id"]] = obj
        return obj

    def _get(self, kind: str, object_id: str, status: int = 404, **extra: str) -> StripeDict:
        obj = self._objects.get(object_id)
        if obj is None or obj["object"] != kind:
            raise _missing(kind.rsplit(".", 1)[-1], object_id, status, **extra)
        return obj

    def _retrieve(self, kind: str) -> Callable[[StripeDict, Request], StripeDict]:
        return lambda params, _request: self._get(kind, params["id"])

    def _create_account(self, params: StripeDict, _request: Request) -> StripeDict:
        if params.get("type") != "express":
            raise StripeProblem(400, "Only Express accounts here.", param="type")
        return self._new(
            "acct",
            {
                "object": "account",
                "type": "express",
                "country": params.get("country", "US"),
                "email": params.get("email"),
                "capabilities": {name: "inactive" for name in params.get("capabilities", {})},
                "charges_enabled": False,
                "payouts_enabled": False,
                "details_submitted": False,
                "metadata": params.get("metadata", {}),
            },
        )

    def _create_account_link(self, params: StripeDict, _request: Request) -> StripeDict:
        account = self._get("account", params.get("account", ""), 400, param="account")
        now = int(time.time())
        return {
            "object": "account_link",
            "created": now,
            "expires_at": now + 300,
            "url": f"{self.url}/express/onboarding/{account['id']}/{secrets.token_hex(8)}",
        }

    def _create_transfer(self, params: StripeDict, _request: Request) -> StripeDict:
        destination = params.get("destination", "")
        self._get("account", destination, 400, param="destination")
        transfer = self._new(
            "tr",
            {
                "object": "transfer",
                "amount": int(params["amount"]),
                "amount_reversed": 0,
                "currency": params["currency"],
                "destination": destination,
                "metadata": params.get("metadata", {}),
                "reversed": False,
                "source_transaction": params.get("source_transaction"),
                "transfer_group": params.get("transfer_group"),
            },
        )
        transfer["reversals"] = {
            "object": "list",
            "data": [],
            "has_more": False,
            "total_count": 0,
            "url": f"/v1/transfers/{transfer['id']}/reversals",
        }
        return transfer

    def _reverse_transfer(self, params: StripeDict, _request: Request) -> StripeDict:
        transfer = self._get("transfer", params["id"])
        remaining = transfer["amount"] - transfer["amount_reversed"]
        amount = int(params.get("amount", remaining))
        if not 0 < amount <= remaining:
            raise StripeProblem(400, "Amount exceeds what can be reversed.", param="amount")
        reversal = self._new(
            "trr",
            {
                "object": "transfer_reversal",
                "amount": amount,
                "currency": transfer["currency"],
                "metadata": params.get("metadata", {}),
                "transfer": transfer["id"],
            },
        )
        transfer["amount_reversed"] += amount
        transfer["reversed"] = transfer["amount_reversed"] == transfer["amount"]
        transfer["reversals"]["data"].insert(0, reversal)
        transfer["reversals"]["total_count"] += 1
        return reversal

    def _list_transfers(self, params: StripeDict, request: Request) -> StripeDict:
        transfers = [obj for obj in self._objects.values() if obj["object"] == "transfer"]
        return _page(transfers, params, request.url.path)

    def _create_payout(self, params: StripeDict, request: Request) -> StripeDict:
        account_id = request.headers.get("stripe-account")
        if account_id is None:
            raise StripeProblem(400, "This stub pays out from connected accounts only.")
        account = self._get("account", account_id, 400)
        if not account["payouts_enabled"]:
            raise StripeProblem(
                400, "Payouts are not enabled on this account.", code="payouts_not_allowed"
            )
        payout = self._new(
            "po",
            {
                "object": "payout",
                "amount": int(params["amount"]),
                "arrival_date": int(time.time()) + 2 * 24 * 3600,
                "currency": params["currency"],
                "failure_code": None,
                "failure_message": None,
                "metadata": params.get("metadata", {}),
                "method": "standard",
                "status": "pending",
                "type": "bank_account",
            },
        )
        self._payout_accounts[payout["id"]] = account_id
        return payout

    def _list_payouts(self, params: StripeDict, request: Request) -> StripeDict:
        account_id = request.headers.get("stripe-account")
        payouts = [
            obj
            for obj in self._objects.values()
            if obj["object"] == "payout" and self._payout_accounts[obj["id"]] == account_id
        ]
        return _page(payouts, params, request.url.path)

    def _create_verification_session(self, params: StripeDict, _request: Request) -> StripeDict:
        session = self._new(
            "vs",
            {
                "object": "identity.verification_session",
                "last_error": None,
                "metadata": params.get("metadata", {}),
                "status": "requires_input",
                "type": params.get("type", "document"),
            },
        )
        session["client_secret"] = f"{session['id']}_secret_{secrets.token_hex(8)}"
        session["url"] = f"{self.url}/verify/{session['id']}"
        return session


class _InLoopServer(uvicorn.Server):
    @contextmanager
    def capture_signals(self) -> Iterator[None]:
        # Leave Ctrl-C to pytest.
        yield


@asynccontextmanager
async def serve_stub(localstripe_url: str) -> AsyncIterator[StripeStub]:
    """The stub on a free loopback port, served in the running event loop."""
    stub = StripeStub(localstripe_url)
    server = _InLoopServer(
        uvicorn.Config(stub.app, log_config=None, access_log=False, lifespan="off")
    )
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    stub.url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.01)
    try:
        yield stub
    finally:
        server.should_exit = True
        await task
        sock.close()
        await stub.aclose()
