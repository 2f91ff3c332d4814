"""The password policy and hashing, without the network."""

from __future__ import annotations

import pytest

from resolvers.accounts.auth.passwords import Passwords, is_common, password_problems


@pytest.mark.parametrize(
    ("password", "reason"),
    [
        ("Aa1!aaa", "at least 8 characters"),
        ("lowercase-only-1", "an upper-case letter"),
        ("UPPERCASE-ONLY-1", "a lower-case letter"),
        ("No-Digits-Here", "a digit"),
        ("NoSymbols123x", "a symbol"),
        ("P@ssw0rd", "most commonly used"),
        ("Password1!", "most commonly used"),
        ("Qwerty123!", "most commonly used"),
        ("Summer2024!", "most commonly used"),
        ("Aa1!" + "x" * 253, "at most 256"),
    ],
)
def test_weak_passwords_are_explained(password: str, reason: str) -> None:
    [problem] = password_problems(password, "password")
    assert problem.code.value == "WEAK_PASSWORD" and problem.field == "password"
    assert reason in problem.message


@pytest.mark.parametrize("password", ["Correct-Horse-42", "tr0ub4dor&3Xylo", "Ünïcödé-Pässwörd-9"])
def test_strong_passwords_pass(password: str) -> None:
    assert password_problems(password, "password") == []


def test_missing_rules_are_listed_together() -> None:
    [problem] = password_problems("abc", "password")
    assert problem.message == (
        "Password needs at least 8 characters, an upper-case letter, a digit, a symbol."
    )


def test_common_passwords_are_recognised_in_disguise() -> None:
    assert is_common("dragon") and is_common("Dr4g0n!") and is_common("123456")
    assert not is_common("Correct-Horse-42")


async def test_argon2id_hashes_verify_and_report_stale_parameters() -> None:
    cheap = Passwords(time_cost=1, memory_cost_kib=1024, parallelism=1)
    stronger = Passwords(time_cost=2, memory_cost_kib=2048, parallelism=1)
    digest = await cheap.hash("Correct-Horse-42")
    assert digest.startswith("$argon2id$")
    assert await cheap.verify(digest, "Correct-Horse-42")
    assert not await cheap.verify(digest, "Correct-Horse-43")
    assert not await cheap.verify("not a hash", "Correct-Horse-42")
    assert not cheap.needs_rehash(digest) and stronger.needs_rehash(digest)
