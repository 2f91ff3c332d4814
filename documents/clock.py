"""The one clock of the domain.

BSON dates keep milliseconds, so times are truncated to milliseconds before they are
stored: a value read back then equals the value written, which keeps cursors and
conditional updates exact.
"""

from datetime import UTC, datetime


def utcnow() -> datetime:
    now = datetime.now(UTC)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)
