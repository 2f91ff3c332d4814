"""What every money request of a partner names, held to one rule: debits, transfers,
card credits and withdrawals alike.

An amount (more than zero, in a currency the gateway handles), the partner's
description (optional visible text, resolvers/common/validation.py `Checked.text`), its
tracking metadata (resolvers/partners/metadata.py) and its idempotency key
(resolvers/partners/idempotency.py). What a kind of request adds (the wallet's currency,
a card's minimum charge) its own module checks on top.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from documents.errors import ErrorCode
from documents.money import Money
from resolvers.common.inputs import MoneyInput
from resolvers.common.validation import Checked
from resolvers.partners.idempotency import key_problem
from resolvers.partners.metadata import checked_metadata

MAX_DESCRIPTION_LENGTH = 500


@dataclass(frozen=True, slots=True)
class CheckedRequest:
    """A money request's common fields, as stored."""

    money: Money
    description: str
    metadata: dict[str, Any]
    idempotency_key: str


def checked_request(
    checked: Checked,
    amount: MoneyInput,
    description: str,
    metadata: object,
    idempotency_key: str,
) -> CheckedRequest:
    """The request's common fields as stored; every problem added to `checked` (the
    caller adds its own and raises)."""
    money = checked.money(amount.amount, amount.currency, "amount")
    text = checked.text(description, "description", MAX_DESCRIPTION_LENGTH)
    kept = checked_metadata(checked, metadata)
    problem = key_problem(idempotency_key)
    if problem is not None:
        checked.fail(ErrorCode.INVALID_INPUT, problem, "idempotencyKey")
    return CheckedRequest(money, text, kept, idempotency_key)
