"""Reading the tokens out of the mails the tests' in-memory outbox received."""

from __future__ import annotations

import re

from integrations.mail import MemoryMailer


async def mailed_token(outbox: MemoryMailer, to: str, subject_contains: str) -> str:
    mail = await outbox.wait_for(lambda m: m.to == to and subject_contains in m.subject)
    match = re.search(r"token=([A-Za-z0-9_-]+)", mail.text)
    assert match, mail.text
    return match.group(1)
