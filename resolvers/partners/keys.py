"""Partner API keys: making them, and checking the one a request presents.

A presented key is checked against the database on every request, so a revoked or
expired key, or a partner suspended, is refused on the next request on every instance.
A key nobody was given counts against the client's address with every other secret
check (resolvers/accounts/auth/guessing.py): past the limit of failures a window, keys
from that address are refused before they are looked up. Every refusal is audited. Right
keys are not counted (a partner's servers send many requests at once), nor are real keys
refused for being revoked or expired (see `_GUESSES`).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime

from bson import ObjectId

from documents.accounts.audit import AuditKind
from documents.clock import utcnow
from documents.errors import DomainError, ErrorCode
from documents.partners.api_keys import ApiScope, KeyMode, PartnerApiKey
from documents.partners.partners import Partner, PartnerStatus
from documents.settings import Settings
from resolvers.accounts import audit
from resolvers.accounts.auth.guessing import count_wrong, refuse_if_throttled
from resolvers.common.services import RequestMeta, Services

KEY_PREFIX = "gq_"
_LOOKUP_BYTES = 8
_SECRET_BYTES = 32
_LAST_USED_PRECISION_SECONDS = 60
"""`last_used_at` is written at most once a minute per key: not a write per request."""


def looks_like_key(token: str | None) -> bool:
    """Whether a bearer token is meant as a partner key (else it is a user's token)."""
    return token is not None and token.startswith(KEY_PREFIX)


def key_mode(settings: Settings) -> KeyMode:
    """Live keys where real money moves (a live Stripe key), test keys everywhere else."""
    secret = settings.stripe_secret_key
    live = secret is not None and secret.get_secret_value().startswith(("sk_live_", "rk_live_"))
    return KeyMode.LIVE if live else KeyMode.TEST


@dataclass(frozen=True, slots=True)
class NewKey:
    """A key as made: `secret` is the whole key, shown once and never stored."""

    key: PartnerApiKey
    secret: str


def make_key(
    partner_id: ObjectId,
    *,
    mode: KeyMode,
    name: str,
    scopes: list[ApiScope],
    expires_at: datetime | None,
    created_by: ObjectId,
) -> NewKey:
    lookup = secrets.token_hex(_LOOKUP_BYTES)
    secret = f"{KEY_PREFIX}{mode.value}_{lookup}_{secrets.token_urlsafe(_SECRET_BYTES)}"
    key = PartnerApiKey(
        partner_id=partner_id,
        lookup=lookup,
        digest=digest(secret),
        mode=mode,
        hint=f"{secret[: len(KEY_PREFIX) + len(mode.value) + 5]}...{secret[-4:]}",
        name=name,
        scopes=sorted(set(scopes)),
        expires_at=expires_at,
        created_by=created_by,
    )
    return NewKey(key, secret)


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def _lookup_of(presented: str, mode: KeyMode) -> str | None:
    start = f"{KEY_PREFIX}{mode.value}_"
    if not presented.startswith(start):
        return None
    lookup, separator, _ = presented[len(start) :].partition("_")
    if not separator or len(lookup) != 2 * _LOOKUP_BYTES:
        return None
    return lookup


@dataclass(frozen=True, slots=True)
class PartnerAccess:
    """Who a partner request acts for: the partner, and the key with its scopes."""

    partner: Partner
    key: PartnerApiKey

    @property
    def partner_id(self) -> ObjectId:
        assert self.partner.id is not None
        return self.partner.id

    def has(self, scope: ApiScope) -> bool:
        return scope in self.key.scopes

    def require(self, scope: ApiScope) -> None:
        if not self.has(scope):
            raise DomainError(ErrorCode.FORBIDDEN, f"This API key lacks the {scope.value} scope.")


_GUESSES = frozenset({"malformed", "unknown", "wrong_secret"})
"""Refusals that count against the address: a key nobody was given. A real key that
was revoked or expired, or whose partner is suspended, is refused and audited alike,
but is no guess: a partner's server still sending its old key after a rotation must
not lock out the new one, nor everyone else behind the same address."""

_REFUSED = (
    "Invalid API key, or a key that was revoked, has expired or whose partner is not approved."
)


async def authenticate(services: Services, meta: RequestMeta, presented: str) -> PartnerAccess:
    """The partner and key a presented key stands for; raises INVALID_API_KEY (audited,
    counted against the address) for anything else, and TOO_MANY_ATTEMPTS past the limit."""
    kind = AuditKind.PARTNER_KEY_REJECTED
    await refuse_if_throttled(services, meta, kind, token="partner_api_key")  # noqa: S106
    reason, key, partner = await _check(services.settings, presented)
    if reason is not None:
        if reason in _GUESSES:
            await count_wrong(services, meta)
        await audit.record(
            kind,
            meta,
            reason=reason,
            key_id=str(key.id) if key else None,
            partner_id=str(partner.id) if partner else None,
        )
        raise DomainError(ErrorCode.INVALID_API_KEY, _REFUSED)
    assert key is not None and partner is not None
    await _note_use(key)
    return PartnerAccess(partner, key)


async def _check(
    settings: Settings, presented: str
) -> tuple[str | None, PartnerApiKey | None, Partner | None]:
    lookup = _lookup_of(presented, key_mode(settings))
    if lookup is None:
        return "malformed", None, None
    key = await PartnerApiKey.find_one({"lookup": lookup})
    if key is None:
        return "unknown", None, None
    if not hmac.compare_digest(key.digest, digest(presented)):
        return "wrong_secret", key, None
    if key.revoked_at is not None:
        return "revoked", key, None
    if key.expires_at is not None and key.expires_at <= utcnow():
        return "expired", key, None
    partner = await Partner.get(key.partner_id)
    if partner is None or partner.status is not PartnerStatus.APPROVED:
        return f"partner_{partner.status.value if partner else 'gone'}", key, partner
    return None, key, partner


async def _note_use(key: PartnerApiKey) -> None:
    now = utcnow()
    last = key.last_used_at
    if last is not None and (now - last).total_seconds() < _LAST_USED_PRECISION_SECONDS:
        return
    await PartnerApiKey.get_pymongo_collection().update_one(
        {"_id": key.id}, {"$set": {"last_used_at": now}}
    )
