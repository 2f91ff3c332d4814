"""Request headers read on every request, without an exception for each one absent, and
the request's body read without an asynchronous generator.

Starlette's `Headers.get` is `Mapping.get`: it looks a header up through `__getitem__`,
which raises KeyError when the request lacks it, and catches that. A `/graphql` request
reads five headers or so (Accept, Content-Type, Authorization, User-Agent), most of
them absent from a plain client's request, and the raised and caught KeyErrors were
about 4 % of a `{ __typename }` request's CPU (bench/README.md, "Issue 16: per-request
cost").
"""

from __future__ import annotations

from typing import Any

from starlette.datastructures import Headers
from starlette.requests import ClientDisconnect, Request


class RequestHeaders(Headers):
    """Starlette's request headers, whose `get` finds the first value by one scan."""

    def get(self, key: str, default: Any = None) -> Any:
        name = key.lower().encode("latin-1")
        for header, value in self._list:
            if header == name:
                return value.decode("latin-1")
        return default


class HTTPRequest(Request):
    """A Starlette request whose `headers` are RequestHeaders, and whose `body` reads the
    messages itself rather than through `stream`, an asynchronous generator closed
    by `aclosing` (about 3 % of a `{ __typename }` request): the same body, and the same
    errors for a stream consumed or a client gone."""

    async def body(self) -> bytes:
        if not hasattr(self, "_body"):
            if self._stream_consumed:
                raise RuntimeError("Stream consumed")
            chunks: list[bytes] = []
            while not self._stream_consumed:
                message = await self._receive()
                if message["type"] == "http.request":
                    if not message.get("more_body", False):
                        self._stream_consumed = True
                    if chunk := message.get("body", b""):
                        chunks.append(chunk)
                elif message["type"] == "http.disconnect":
                    self._is_disconnected = True
                    raise ClientDisconnect()
            self._body = b"".join(chunks)
        return self._body

    @property
    def headers(self) -> Headers:
        if not hasattr(self, "_headers"):
            self._headers = RequestHeaders(scope=self.scope)
        return self._headers
