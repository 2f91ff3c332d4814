"""Identity verification of providers through the gateway (Stripe Identity).

A provider starts a verification session and completes it on the gateway's pages with
the session's url or client secret; we keep only the session's id and status. Starting
makes the profile's `identity_verification` pending; the session's webhook events move
it on: `verified` (only ever from a verified event), back to `unverified` when the check
needs new input or was cancelled (the provider may start again), pending while processing.

Each attempt has its own session, keyed by the user id and the attempt's number, so a
repeated or concurrent request for the same attempt gets the same session. An open
session (waiting for the provider's input) is handed out again rather than replaced,
unless the provider asks to start over.

Sessions are the platform's objects, so their events name no connected account, and a
`verified` event must show the session verified: else it is rejected (EventMismatch).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from bson import ObjectId

from documents.accounts.profiles import IdentityVerification, ProviderProfile
from documents.accounts.users import Role
from documents.clock import utcnow
from documents.errors import DomainError, ErrorCode
from documents.events import EventKind
from integrations.payments.gateway import GatewayEvent, VerificationSession
from resolvers.accounts.auth.viewer import Viewer, require_role
from resolvers.common.services import Services
from resolvers.common.unit_of_work import UnitOfWork, transact
from resolvers.payments.gateway_failures import answered
from resolvers.payments.provider_fields import store_if, stored_profile, synced_no_later_than
from resolvers.payments.webhooks.checks import Comparison

log = logging.getLogger(__name__)

OPEN = "requires_input"
PROCESSING = "processing"
VERIFIED = "verified"
CANCELED = "canceled"
FINAL = (VERIFIED, CANCELED)
"""A session in these states never changes again."""

VERIFICATION_OF: dict[str, IdentityVerification] = {
    OPEN: IdentityVerification.UNVERIFIED,
    PROCESSING: IdentityVerification.PENDING,
    VERIFIED: IdentityVerification.VERIFIED,
    CANCELED: IdentityVerification.UNVERIFIED,
}
"""The profile's verification after an event of the session reporting each status."""
EVENT_PREFIX = "identity.verification_session."
RETURN_PATH = "/identity/done"
"""The front end's page (GIGQL_APP_URL) the gateway sends the provider back to."""


def session_key(user_id: ObjectId, attempt: int) -> str:
    return f"identity:{user_id}:{attempt}"


@dataclass(frozen=True, slots=True)
class Verification:
    profile: ProviderProfile
    session: VerificationSession
    """Its url and client secret are for the provider only, at once: never stored."""


async def start_verification(
    services: Services, viewer: Viewer, start_over: bool = False
) -> Verification:
    require_role(viewer, Role.TASKER, "verify their identity")
    profile = await ProviderProfile.get(viewer.user_id)
    if profile is not None:
        if profile.identity_verification is IdentityVerification.VERIFIED:
            raise DomainError(ErrorCode.INVALID_STATE, "Your identity is already verified.")
        if profile.identity_session_status == PROCESSING:
            raise DomainError(ErrorCode.INVALID_STATE, "Your documents are being checked.")
        if profile.identity_session_status == OPEN and not start_over:
            assert profile.identity_session_id is not None
            session = await answered(
                services.payments.retrieve_verification_session(profile.identity_session_id)
            )
            if session.status == OPEN:
                await _resume(profile, session)
                return Verification(await stored_profile(viewer.user_id), session)
    attempt = (profile.identity_attempts if profile else 0) + 1
    session = await answered(
        services.payments.create_verification_session(
            metadata={"user_id": str(viewer.user_id)},
            idempotency_key=session_key(viewer.user_id, attempt),
            return_url=services.settings.app_url + RETURN_PATH,
        )
    )
    await _store_session(viewer.user_id, attempt, session)
    return Verification(await stored_profile(viewer.user_id), session)


async def _resume(profile: ProviderProfile, session: VerificationSession) -> None:
    """The provider is back at the open session (after a failed check, say): pending again."""
    await ProviderProfile.get_pymongo_collection().update_one(
        {"_id": profile.id, "identity_session_id": session.id, "identity_session_status": OPEN},
        {"$set": {"identity_verification": IdentityVerification.PENDING.value}},
    )


async def _store_session(user_id: ObjectId, attempt: int, session: VerificationSession) -> None:
    """Record the attempt's session, unless another request recorded this attempt first
    (the same session, by its key) or a later one."""
    fields = {
        "identity_session_id": session.id,
        "identity_session_status": session.status,
        "identity_attempts": attempt,
        "identity_verification": IdentityVerification.PENDING.value,
        "identity_synced_at": None,
    }
    # Profiles from before identity verification have no count.
    previous: object = {"$in": [0, None]} if attempt == 1 else attempt - 1
    await store_if(user_id, {"identity_attempts": previous}, fields)


async def verification_session_changed(services: Services, event: GatewayEvent) -> None:
    """Webhooks `identity.verification_session.{verified,requires_input,processing,canceled}`."""
    status = event.type.removeprefix(EVENT_PREFIX)
    session = VerificationSession.from_stripe(event.data_object)
    comparison = Comparison(event)
    comparison.on_platform()
    if status == VERIFIED:
        # Only this verifies anyone: the session itself must say so. (The other types
        # hold or take away, and count as their type says.)
        comparison.same("status", VERIFIED, session.status)
    comparison.settle()
    owner = session.metadata.get("user_id", "")
    if status not in VERIFICATION_OF or not ObjectId.is_valid(owner):
        log.info("%s %s: not one of our verification sessions", event.type, event.id)
        return
    verification = VERIFICATION_OF[status]

    async def work(unit: UnitOfWork) -> bool:
        result = await ProviderProfile.get_pymongo_collection().update_one(
            {
                "_id": ObjectId(owner),
                # Events of an earlier attempt, or older than the last applied, or after
                # the session ended, change nothing.
                "identity_session_id": session.id,
                "identity_session_status": {"$nin": list(FINAL)},
                **synced_no_later_than("identity_synced_at", event.created),
            },
            {
                "$set": {
                    "identity_session_status": status,
                    "identity_verification": verification.value,
                    "identity_synced_at": event.created,
                    "updated_at": utcnow(),
                }
            },
            session=unit.session,
        )
        if result.modified_count:
            unit.emit(
                EventKind.IDENTITY_VERIFICATION_UPDATED,
                actor_id=None,
                audience=[ObjectId(owner)],
                title=_TITLES[verification],
                verification=verification.value,
                error_code=session.last_error_code,
            )
        return bool(result.modified_count)

    if not await transact(services, work):
        log.info("%s %s: stale, or not the provider's current session", event.type, event.id)


_TITLES = {
    IdentityVerification.VERIFIED: "Your identity is verified",
    IdentityVerification.PENDING: "Your identity documents are being checked",
    IdentityVerification.UNVERIFIED: "Your identity could not be verified; please try again",
}
