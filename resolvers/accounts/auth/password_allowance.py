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

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

from documents.errors import DomainError, ErrorCode


class _Allowance:
    __slots__ = ("spent",)

    def __init__(self) -> None:
        self.spent = False


_current: ContextVar[_Allowance | None] = ContextVar("password_allowance", default=None)


@contextmanager
def password_scope() -> Iterator[None]:
    """Everything run inside (and in tasks started inside) shares one password."""
    token = _current.set(_Allowance())
    try:
        yield
    finally:
        _current.reset(token)


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
