"""One password per request.

Checking or setting a password is argon2 work, slow and memory-hard on purpose. A request
that could do it in many fields (aliases, a batch of operations) would try hundreds of
guesses in one POST and queue hundreds of hashes. So a request may check or set one
password; any further field that would gets ONE_PASSWORD_PER_REQUEST and does nothing.

A request is an HTTP request, a batch included, or one websocket operation: the server
opens a scope for each (`password_scope`). The scope lives in a context variable, which
the tasks that run the request's fields (a batch's operations run side by side) inherit
together with the one allowance object in it.
"""

from __future__ import annotations

from contextvars import ContextVar, Token

from documents.errors import DomainError, ErrorCode


class _Allowance:
    __slots__ = ("spent",)

    def __init__(self) -> None:
        self.spent = False


_current: ContextVar[_Allowance | None] = ContextVar("password_allowance", default=None)


class password_scope:  # named as the function it replaced, and used as one
    """Everything run inside (and in tasks started inside) shares one password.

    A class rather than a `contextmanager` generator: a websocket keeps its scope open
    for its whole life (and each subscription one of its own), and the generator, its
    frame and the context manager around it cost about 0.4 KB per socket where this
    object costs 48 bytes (bench/README.md, "Issue 16, third pass: per-connection
    memory")."""

    __slots__ = ("_token",)

    def __enter__(self) -> None:
        self._token: Token[_Allowance | None] = _current.set(_Allowance())

    def __exit__(self, *_: object) -> None:
        _current.reset(self._token)


def spend_password_allowance(field: str) -> None:
    """Take the request's one password, or refuse (on `field`) if it was taken already.

    Outside any scope (the command line, background work) there is no request to share
    it with, and nothing is refused.
    """
    allowance = _current.get()
    if allowance is None:
        return
    if allowance.spent:
        raise DomainError(
            ErrorCode.ONE_PASSWORD_PER_REQUEST,
            "A request may check or set one password; send this one in a request of its own.",
            field,
        )
    allowance.spent = True
