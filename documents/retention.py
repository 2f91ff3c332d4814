"""How long records are kept: money records seven years, the audit log ten.

These are floors set by the regulators partners answer to (the wallet-gateway design:
transaction records 7 years, audit logs 10), applied to the marketplace's own money
records as well. gigql deletes none of these documents at any age: no TTL index, no code
path that removes them (tests/partners/access/test_partner_records.py keeps it so). An operator
who must erase older records does it by hand, after these periods, from a backup policy
of their own; README ("Records and retention") says so.
"""

from __future__ import annotations

from beanie import Document

from documents.accounts.audit import AuditEvent
from documents.partners.transactions import PartnerGatewayObject, PartnerTransaction
from documents.partners.wallets import WalletEntry
from documents.partners.webhooks import PartnerWebhookEvent
from documents.payments.escrow import Escrow
from documents.payments.ledger import LedgerTransaction
from documents.payments.payouts import Withdrawal
from documents.payments.webhooks import WebhookEvent

TRANSACTION_RECORD_YEARS = 7
AUDIT_LOG_YEARS = 10

KEPT_YEARS: dict[type[Document], int] = {
    LedgerTransaction: TRANSACTION_RECORD_YEARS,
    PartnerTransaction: TRANSACTION_RECORD_YEARS,
    WalletEntry: TRANSACTION_RECORD_YEARS,
    PartnerGatewayObject: TRANSACTION_RECORD_YEARS,
    PartnerWebhookEvent: TRANSACTION_RECORD_YEARS,
    Escrow: TRANSACTION_RECORD_YEARS,
    Withdrawal: TRANSACTION_RECORD_YEARS,
    WebhookEvent: TRANSACTION_RECORD_YEARS,
    AuditEvent: AUDIT_LOG_YEARS,
}
"""Each kept record, and the years it is kept at least (in fact: for ever)."""
