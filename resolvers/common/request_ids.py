"""The id of the request being served, for logs and for what a request leaves behind
(mail sent after it answers): set by the server's middleware, read anywhere below."""

from __future__ import annotations

from contextvars import ContextVar

request_id_var: ContextVar[str | None] = ContextVar("request_id", default=None)
