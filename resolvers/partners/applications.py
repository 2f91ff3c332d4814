"""A partner's life: a person applies for their business, an admin decides.

    apply                          anyone logged in, once: they become its owner
    approve | reject               an admin, of an application
    suspend | reinstate | close    an admin, of an approved (or suspended) partner

Every change is one transaction with its audit event. Approving also makes the partner's
first webhook endpoint, from the URL in the application. Closing is final and needs
every wallet of the partner empty and no card credit or withdrawal under way; it claims
each wallet as a money movement does (resolvers/partners/postings.py `hold_active`), so a
movement racing the close conflicts with it and whichever commits second sees the other.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from bson import ObjectId
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.errors import DuplicateKeyError

from documents.accounts.audit import AuditKind
from documents.clock import utcnow
from documents.errors import DomainError, ErrorCode
from documents.lifecycles import PARTNER, Party
from documents.money import Money
from documents.partners.partners import Partner, PartnerFees, PartnerStatus, StatusChange
from documents.partners.transactions import PartnerTransaction, TransactionStatus
from documents.partners.wallets import PartnerWallet
from documents.payments.ledger import AccountBalance
from documents.payments.ledger_accounts import partner_wallet
from resolvers.accounts import audit
from resolvers.accounts.auth.viewer import Viewer
from resolvers.common.pagination import Page, PageRequest, paginate
from resolvers.common.services import RequestMeta, Services
from resolvers.common.transitions import Subject, transition
from resolvers.common.unit_of_work import UnitOfWork, transact
from resolvers.common.validation import MAX_NAME_LENGTH, MAX_REASON_LENGTH, Checked
from resolvers.partners.webhooks.endpoints import add_endpoint
from resolvers.partners.webhooks.urls import webhook_url_problem

PARTNER_SUBJECT = Subject("partner", "partnerId")
NEWEST_FIRST = [("created_at", -1), ("_id", -1)]
MAX_COMPANY_NAME_LENGTH = 200
MAX_FEE_BP = 5_000
"""As `PartnerFees`: at most 50 %."""
_WALLETS_PER_BATCH = 500
"""Wallets whose balances one query of the close check reads."""


@dataclass(frozen=True, slots=True)
class Application:
    name: str
    """What the partner is called in the API and to admins (its brand)."""
    company_name: str
    contact_name: str
    contact_email: str
    business_type: str
    webhook_url: str


async def apply(
    services: Services, meta: RequestMeta, viewer: Viewer, application: Application
) -> Partner:
    """The viewer's application for their business, which they own; ALREADY_EXISTS if
    they have one already (whatever became of it)."""
    checked = Checked()
    name = checked.required_text(application.name, "name", min_length=2, max_length=MAX_NAME_LENGTH)
    company_name = checked.required_text(
        application.company_name,
        "companyName",
        min_length=2,
        max_length=MAX_COMPANY_NAME_LENGTH,
    )
    contact_name = checked.name(application.contact_name, "contactName")
    contact_email = checked.email(application.contact_email, "contactEmail")
    business_type = checked.required_text(
        application.business_type, "businessType", min_length=2, max_length=MAX_NAME_LENGTH
    )
    webhook_url = application.webhook_url.strip()
    problem = webhook_url_problem(webhook_url, services.settings)
    if problem is not None:
        checked.fail(ErrorCode.INVALID_INPUT, problem, "webhookUrl")
    checked.raise_if_any()

    async def work(unit: UnitOfWork) -> Partner:
        if await Partner.find_one({"owner_id": viewer.user_id}, session=unit.session):
            raise _already_applied()
        now = utcnow()
        partner = Partner(
            owner_id=viewer.user_id,
            name=name,
            company_name=company_name,
            contact_name=contact_name,
            contact_email=contact_email,
            business_type=business_type,
            webhook_url=webhook_url,
            fees=PartnerFees(credit_bp=services.settings.partner_credit_fee_bp),
            history=[
                StatusChange(
                    status=PartnerStatus.APPLIED.value, at=now, by=viewer.user_id, move="apply"
                )
            ],
            created_at=now,
            updated_at=now,
        )
        await partner.insert(session=unit.session)
        await audit.record(
            AuditKind.PARTNER_APPLIED,
            meta,
            user_id=viewer.user_id,
            actor_id=viewer.user_id,
            session=unit.session,
            partner_id=str(partner.id),
            name=name,
            company_name=company_name,
        )
        return partner

    try:
        return await transact(services, work)
    except DuplicateKeyError as error:  # a concurrent application got there first
        raise _already_applied() from error


def _already_applied() -> DomainError:
    return DomainError(
        ErrorCode.ALREADY_EXISTS, "You have applied for a partnership already; one per person."
    )


async def partner_of(
    owner_id: ObjectId, session: AsyncClientSession | None = None
) -> Partner | None:
    """The partner `owner_id` applied for, if any."""
    return await Partner.find_one({"owner_id": owner_id}, session=session)


async def list_partners(status: PartnerStatus | None, request: PageRequest) -> Page[Partner]:
    """Partners (of one status, if given), newest first: for admins."""
    query: dict[str, Any] = {} if status is None else {"status": status.value}
    return await paginate(Partner, query, NEWEST_FIRST, request)


async def approve(
    services: Services,
    meta: RequestMeta,
    admin: Viewer,
    partner_id: ObjectId,
    note: str,
    credit_fee_bp: int | None = None,
) -> Partner:
    """Approve an application (the caller checks the role), with its own fee on card
    credits if given; its first webhook endpoint is the application's URL."""
    checked = Checked()
    if credit_fee_bp is not None and not 0 <= credit_fee_bp <= MAX_FEE_BP:
        message = f"A fee is 0 to {MAX_FEE_BP} basis points (50 %)."
        checked.fail(ErrorCode.INVALID_INPUT, message, "creditFeeBp")
    fields = {} if credit_fee_bp is None else {"fees.credit_bp": credit_fee_bp}
    return await move_partner(
        services, meta, admin, partner_id, "approve", note, checked=checked, fields=fields
    )


async def move_partner(
    services: Services,
    meta: RequestMeta,
    admin: Viewer,
    partner_id: ObjectId,
    move: str,
    note: str,
    *,
    checked: Checked | None = None,
    fields: dict[str, Any] | None = None,
) -> Partner:
    """Make `move` of the PARTNER lifecycle as an admin (the caller checks the role),
    audited with `note` in the same transaction."""
    checked = checked or Checked()
    note = checked.text(note, "note", MAX_REASON_LENGTH, multiline=True)
    checked.raise_if_any()

    async def work(unit: UnitOfWork) -> Partner:
        partner = await Partner.get(partner_id, session=unit.session)
        if partner is None:
            raise DomainError(ErrorCode.NOT_FOUND, "No such partner.", "partnerId")
        if move == "close":
            await _check_closable(unit.session, partner)
        moved = await transition(
            unit,
            services,
            PARTNER,
            move,
            partner,
            Party.ADMIN,
            PARTNER_SUBJECT,
            actor_id=admin.user_id,
            note=note or None,
            fields=fields,
        )
        if move == "approve":
            assert moved.id is not None
            await add_endpoint(unit.session, moved.id, moved.webhook_url)
        await audit.record(
            AuditKind.PARTNER_STATUS_CHANGED,
            meta,
            user_id=partner.owner_id,
            actor_id=admin.user_id,
            session=unit.session,
            partner_id=str(partner.id),
            move=move,
            status_before=partner.status.value,
            status_after=moved.status.value,
            note=note,
            **({"fees": moved.fees.model_dump()} if fields else {}),
        )
        return moved

    return await transact(services, work)


async def _check_closable(session: AsyncClientSession, partner: Partner) -> None:
    """INVALID_STATE, saying why, unless nothing of the partner's money is left or on
    its way; claims each of its wallets (see the module's docstring)."""
    busy = await PartnerTransaction.find_one(
        {
            "partner_id": partner.id,
            "status": {
                "$in": [TransactionStatus.PENDING.value, TransactionStatus.PROCESSING.value]
            },
        },
        session=session,
    )
    if busy is not None:
        raise DomainError(
            ErrorCode.INVALID_STATE,
            f"The partner has a {busy.kind.value} under way (transaction {busy.id}); it can "
            "be closed once that is settled.",
            PARTNER_SUBJECT.field,
        )
    holding = await _wallets_holding_money(session, partner)
    if holding:
        shown = ", ".join(f"{name} holds {money}" for name, money in holding[:3])
        more = f" and {len(holding) - 3} more" if len(holding) > 3 else ""
        raise DomainError(
            ErrorCode.INVALID_STATE,
            f"{len(holding)} of the partner's wallets still hold money ({shown}{more}); "
            "they must be emptied before the partner is closed.",
            PARTNER_SUBJECT.field,
        )


async def _wallets_holding_money(
    session: AsyncClientSession, partner: Partner
) -> list[tuple[str, Money]]:
    """Each wallet of the partner whose ledger balance is not zero (by its external id),
    read after claiming every wallet in this transaction."""
    wallets = PartnerWallet.get_pymongo_collection()
    await wallets.update_many(
        {"partner_id": partner.id},
        {"$inc": {"version": 1}, "$set": {"updated_at": utcnow()}},
        session=session,
    )
    holding: list[tuple[str, Money]] = []
    batch: dict[str, str] = {}
    found = wallets.find(
        {"partner_id": partner.id}, {"external_wallet_id": 1}, session=session
    ).sort("_id", 1)
    async for raw in found:
        batch[partner_wallet(raw["_id"])] = raw["external_wallet_id"]
        if len(batch) == _WALLETS_PER_BATCH:
            holding += await _non_zero(session, batch)
            batch = {}
    if batch:
        holding += await _non_zero(session, batch)
    return holding


async def _non_zero(session: AsyncClientSession, names: dict[str, str]) -> list[tuple[str, Money]]:
    """Of the accounts named (ledger account -> wallet's external id), those not at zero."""
    totals: dict[tuple[str, str], int] = defaultdict(int)
    shards = AccountBalance.get_pymongo_collection().find(
        {"account": {"$in": list(names)}},
        {"account": 1, "currency": 1, "balance": 1},
        session=session,
    )
    async for shard in shards:
        totals[shard["account"], shard["currency"]] += int(shard["balance"])
    return [
        (names[account], Money(amount=total, currency=currency))
        for (account, currency), total in sorted(totals.items())
        if total != 0
    ]
