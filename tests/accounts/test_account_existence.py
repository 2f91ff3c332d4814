"""Who has an account: signUp, login and the mailed links answer alike either way.

Besides the answers, each test compares the database commands the request itself sends
(by request id) for an address with an account and one without: work that would differ
is done after the answer, where neither the answer nor its timing can show it.
"""

from __future__ import annotations

import re
from typing import Any

from documents.accounts.audit import AuditEvent, AuditKind
from documents.accounts.users import User
from integrations.mail import MemoryMailer
from server.runtime import Runtime
from tests.support.command_log import CommandLog
from tests.support.graphql_client import STRONG_PASSWORD, GraphQLClient

ADDRESS_TAKEN = "Someone tried to sign up with your address"


async def answer_and_commands(
    client: GraphQLClient,
    command_log: CommandLog,
    request_id: str,
    name: str,
    input: dict[str, Any],
    selection: str = "",
) -> tuple[dict[str, Any], list[tuple[str, str]]]:
    """The payload of a mutation, and the commands its request sent to the database."""
    query = (
        f"mutation($input: {name[0].upper()}{name[1:]}Input!) "
        f"{{ {name}(input: $input) {{ errors {{ field code message }} {selection} }} }}"
    )
    with command_log.recording(request_id) as commands:
        result = await client.execute(query, {"input": input}, headers={"X-Request-ID": request_id})
    assert "errors" not in result, result
    payload: dict[str, Any] = result["data"][name]
    return payload, list(commands)


def sign_up_input(email: str, password: str = STRONG_PASSWORD) -> dict[str, object]:
    return {"name": "Someone Else", "email": email, "password": password, "roles": ["POSTER"]}


async def test_signing_up_with_a_taken_address_answers_as_a_new_one(
    client: GraphQLClient, outbox: MemoryMailer, runtime: Runtime, command_log: CommandLog
) -> None:
    await client.sign_up("owner@example.com", name="Olive Owner")
    await runtime.services.postman.drain()
    outbox.outbox.clear()

    taken, taken_commands = await answer_and_commands(
        client,
        command_log,
        "signup-taken",
        "signUp",
        sign_up_input("OWNER@example.com"),
        "user { id }",
    )
    fresh, fresh_commands = await answer_and_commands(
        client,
        command_log,
        "signup-fresh",
        "signUp",
        sign_up_input("new@example.com"),
        "user { id }",
    )
    assert taken == fresh == {"errors": [], "user": None}
    assert taken_commands == fresh_commands, (taken_commands, fresh_commands)

    # The owner hears of it, in a plain note that names nothing the other person wrote.
    note = await outbox.wait_for(lambda m: m.to == "owner@example.com")
    assert note.subject == ADDRESS_TAKEN
    assert note.text.startswith("Hello,\n") and "Someone Else" not in note.text
    await outbox.wait_for(lambda m: m.to == "new@example.com")
    owner = await User.find_one(User.email_key == "owner@example.com")
    assert owner is not None and owner.name == "Olive Owner" and await User.count() == 2
    attempt = await AuditEvent.find_one(AuditEvent.kind == AuditKind.SIGNUP_ADDRESS_TAKEN)
    assert attempt is not None and attempt.user_id == owner.id
    # The account keeps its password: the other person's does not log in.
    await client.login("owner@example.com")


def _same_clock(payload: dict[str, Any]) -> dict[str, Any]:
    """The payload with the minute a lock ends blanked (the two locks may straddle one)."""
    text = re.sub(r"\d{4}-\d\d-\d\d \d\d:\d\d UTC", "<when>", str(payload))
    return {"text": text}


async def test_guessing_at_an_address_without_an_account_locks_like_one_with(
    client: GraphQLClient, command_log: CommandLog
) -> None:
    await client.sign_up("real@example.com")
    for attempt in range(6):
        answers, commands = [], []
        for address in ("real@example.com", "ghost@example.com"):
            payload, sent = await answer_and_commands(
                client,
                command_log,
                f"login-{attempt}-{address.split('@')[0]}",
                "login",
                {"email": address, "password": f"Wrong-{attempt}-Xy!"},
                "tokens { accessToken }",
            )
            answers.append(_same_clock(payload))
            commands.append(sent)
        assert answers[0] == answers[1], (attempt, answers)
        assert commands[0] == commands[1], (attempt, commands)
        expected = "INVALID_CREDENTIALS" if attempt < 4 else "ACCOUNT_LOCKED"
        assert expected in answers[0]["text"], (attempt, answers)


async def test_asking_for_a_reset_link_answers_alike_and_mails_afterwards(
    client: GraphQLClient, outbox: MemoryMailer, runtime: Runtime, command_log: CommandLog
) -> None:
    await client.sign_up("forgetful@example.com")
    await runtime.services.postman.drain()
    outbox.outbox.clear()

    real, real_commands = await answer_and_commands(
        client,
        command_log,
        "reset-real",
        "requestPasswordReset",
        {"email": "forgetful@example.com"},
    )
    ghost, ghost_commands = await answer_and_commands(
        client, command_log, "reset-ghost", "requestPasswordReset", {"email": "ghost@example.com"}
    )
    assert real == ghost == {"errors": []}
    assert real_commands == ghost_commands == [], (real_commands, ghost_commands)

    await outbox.wait_for(lambda m: m.to == "forgetful@example.com" and "Reset" in m.subject)
    await runtime.services.postman.drain()
    assert [m.to for m in outbox.outbox] == ["forgetful@example.com"]
    requested = await AuditEvent.find_one(AuditEvent.kind == AuditKind.PASSWORD_RESET_REQUESTED)
    assert requested is not None and requested.request_id == "reset-real"


async def test_asking_for_a_new_confirmation_link_answers_alike(
    client: GraphQLClient, outbox: MemoryMailer, runtime: Runtime, command_log: CommandLog
) -> None:
    await client.sign_up("unconfirmed@example.com")
    await runtime.services.postman.drain()
    outbox.outbox.clear()

    real, real_commands = await answer_and_commands(
        client,
        command_log,
        "resend-real",
        "resendVerificationEmail",
        {"email": "unconfirmed@example.com"},
    )
    ghost, ghost_commands = await answer_and_commands(
        client,
        command_log,
        "resend-ghost",
        "resendVerificationEmail",
        {"email": "ghost@example.com"},
    )
    assert real == ghost == {"errors": []}
    assert real_commands == ghost_commands == [], (real_commands, ghost_commands)
    await outbox.wait_for(lambda m: m.to == "unconfirmed@example.com")
