"""Password policy and argon2id hashing."""

from __future__ import annotations

import asyncio
import base64
import re
import secrets
import string
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import cache
from typing import TypeVar, TypeVarTuple

from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError

from documents.errors import ErrorCode, Problem

T = TypeVar("T")
Ts = TypeVarTuple("Ts")

MIN_LENGTH = 8
# argon2 accepts any length; a cap keeps one request from buying seconds of hashing.
MAX_LENGTH = 256

_LEET = str.maketrans(
    {"0": "o", "1": "l", "3": "e", "4": "a", "5": "s", "7": "t", "@": "a", "$": "s"}
)
_EDGE_NON_LETTERS = re.compile(r"^[^a-z]+|[^a-z]+$")


@cache
def _common_passwords() -> frozenset[str]:
    # zxcvbn ships the 30,000 passwords seen most often in leaks, lower-cased.
    from zxcvbn.frequency_lists import FREQUENCY_LISTS

    return frozenset(FREQUENCY_LISTS["passwords"])


def is_common(password: str) -> bool:
    """Common outright, or a common password dressed up to pass the character rules.

    "P@ssw0rd" and "Summer2024!" meet every character class, yet are among the first
    guesses of any attacker: undo the usual substitutions and strip the digits and
    symbols stuck to either end before looking the word up.
    """
    lowered = password.lower()
    unleeted = lowered.translate(_LEET)
    candidates = {lowered, unleeted, _EDGE_NON_LETTERS.sub("", lowered)}
    candidates.add(_EDGE_NON_LETTERS.sub("", unleeted))
    common = _common_passwords()
    return any(candidate in common for candidate in candidates if candidate)


def password_problems(password: str, field: str) -> list[Problem]:
    """Everything wrong with a proposed password, as one problem listing all rules broken."""
    missing = []
    if len(password) < MIN_LENGTH:
        missing.append(f"at least {MIN_LENGTH} characters")
    if not any(c.isupper() for c in password):
        missing.append("an upper-case letter")
    if not any(c.islower() for c in password):
        missing.append("a lower-case letter")
    if not any(c.isdigit() for c in password):
        missing.append("a digit")
    if not any(c in string.punctuation or not c.isalnum() for c in password):
        missing.append("a symbol")
    if missing:
        message = "Password needs " + ", ".join(missing) + "."
        return [Problem(ErrorCode.WEAK_PASSWORD, message, field)]
    if len(password) > MAX_LENGTH:
        message = f"Password must be at most {MAX_LENGTH} characters."
        return [Problem(ErrorCode.WEAK_PASSWORD, message, field)]
    if is_common(password):
        message = "This password is one of the most commonly used; choose another."
        return [Problem(ErrorCode.WEAK_PASSWORD, message, field)]
    return []


class Passwords:
    """argon2id hashing on a small pool of threads of its own.

    A hash takes tens of milliseconds of CPU and the whole memory cost (64 MiB by
    default) while it runs. On the event loop's shared executor as many would run at
    once as that has threads, and a burst of logins would take the memory of each; this
    pool runs `max_concurrent` at a time and queues the rest (a queued check holds only
    its password), so the memory argon2 takes is bounded whatever arrives at once.
    """

    def __init__(
        self, time_cost: int, memory_cost_kib: int, parallelism: int, max_concurrent: int = 2
    ) -> None:
        self._hasher = PasswordHasher(
            time_cost=time_cost,
            memory_cost=memory_cost_kib,
            parallelism=parallelism,
            type=Type.ID,
        )
        self._pool = ThreadPoolExecutor(max_workers=max_concurrent, thread_name_prefix="argon2")
        self._dummy_hash = _unmatchable_hash(self._hasher)

    async def hash(self, password: str) -> str:
        return await self._run(self._hasher.hash, password)

    async def verify(self, password_hash: str, password: str) -> bool:
        return await self._run(self._verify, password_hash, password)

    async def _run(self, work: Callable[[*Ts], T], *args: *Ts) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._pool, work, *args)

    def _verify(self, password_hash: str, password: str) -> bool:
        try:
            return self._hasher.verify(password_hash, password)
        except (VerificationError, InvalidHashError):
            return False

    async def waste_time(self, password: str) -> None:
        """Spend what a real verification costs, so unknown accounts answer no faster."""
        await self.verify(self._dummy_hash, password)

    def needs_rehash(self, password_hash: str) -> bool:
        return self._hasher.check_needs_rehash(password_hash)

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


def _unmatchable_hash(hasher: PasswordHasher) -> str:
    """A hash with the current parameters that no password matches: random salt and digest.

    Verifying against it costs exactly what verifying a real one does, and making it
    costs nothing (no hashing at start-up, none on the first unknown login).
    """

    def encoded(size: int) -> str:
        return base64.b64encode(secrets.token_bytes(size)).decode().rstrip("=")

    return (
        f"$argon2id$v=19$m={hasher.memory_cost},t={hasher.time_cost},p={hasher.parallelism}"
        f"${encoded(hasher.salt_len)}${encoded(hasher.hash_len)}"
    )
