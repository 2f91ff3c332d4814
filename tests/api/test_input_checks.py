"""Every text and link field of the graph refuses what must never be stored.

The tables below name every input field that takes a String: as text (one line, or
several), as a link, or with a check of its own. A new String field that is in none of
them fails the first test, so no field is left without its check.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from server.runtime import Runtime
from tests.support.bookings import booking_input, package_input
from tests.support.graphql_client import STRONG_PASSWORD, GraphQLClient
from tests.support.input_checks import (
    World,
    in_a_week,
    input_field_of,
    make_world,
    public_schema,
    snapshot,
    string_input_fields,
    unknown_id,
    with_value,
)
from tests.support.marketplace import ADDRESS, aud, place, task_input

Input = Callable[[World], dict[str, Any]]
PUSH_KEY = "BGRXDSJiVxTh_0LnMQSCIurl3q2Eg9_v4JvssxWylg4kpzQfCxHAbrHVpwWr_cHC8bUjSF601M4jII2ITTiTIJo"
"""A browser's P-256 public key, as a PushSubscription's JSON gives it."""


@dataclass(frozen=True)
class Field:
    mutation: str
    path: str
    """Where the field is in the input, as errors name it."""
    who: str
    """Who sends it: a person of the World, or "nobody" (signed out)."""
    valid: Input
    multiline: bool = False


def _sign_up(world: World) -> dict[str, Any]:
    return {
        "name": "Ann",
        "email": "new@example.com",
        "password": STRONG_PASSWORD,
        "roles": ["POSTER"],
    }


def _login(world: World) -> dict[str, Any]:
    return {"email": "ann@example.com", "password": STRONG_PASSWORD, "deviceName": "Phone"}


def _task(world: World) -> dict[str, Any]:
    return task_input()


def _task_change(world: World) -> dict[str, Any]:
    return {"taskId": world.task_id, "title": "Mow the front lawn", "description": "x" * 20}


def _new_offer(world: World) -> dict[str, Any]:
    return {"taskId": world.task_id, "amount": aud(9000), "message": "I can come today."}


def _offer_change(world: World) -> dict[str, Any]:
    return {"offerId": world.offer_id, "message": "Tomorrow works too."}


def _direct_offer(world: World) -> dict[str, Any]:
    return {
        "taskId": world.task_id,
        "taskerId": world.newcomer.user_id,
        "amount": aud(9000),
        "message": "Would you do it?",
    }


def _rejection(world: World) -> dict[str, Any]:
    return {"offerId": world.offer_id, "reason": "Too late for us."}


def _milestones(world: World) -> dict[str, Any]:
    parts = [{"title": "Front", "amount": aud(5500)}, {"title": "Back", "amount": aud(5500)}]
    return {"offerId": world.offer_id, "milestones": parts}


def _task_reason(world: World) -> dict[str, Any]:
    return {"taskId": world.task_id, "reason": "Plans changed."}


def _task_note(world: World) -> dict[str, Any]:
    return {"taskId": world.task_id, "note": "All done."}


def _milestone_note(world: World) -> dict[str, Any]:
    return {"taskId": world.task_id, "number": 1, "note": "First part done."}


def _milestone_reason(world: World) -> dict[str, Any]:
    return {"taskId": world.task_id, "number": 1, "reason": "The edges are not cut."}


def _dispute(world: World) -> dict[str, Any]:
    return {"dealId": world.task_id, "reason": "Nothing was done."}


def _decision(world: World) -> dict[str, Any]:
    return {"disputeId": unknown_id("Dispute"), "outcome": "REFUND", "note": "Refunded."}


def _escrow_note(world: World) -> dict[str, Any]:
    return {"escrowId": unknown_id("Escrow"), "note": "Agreed by phone."}


def _suspension(world: World) -> dict[str, Any]:
    return {"userId": world.newcomer.user_id, "reason": "Spam."}


def _review(world: World) -> dict[str, Any]:
    return {"subjectId": world.task_id, "rating": 5, "comment": "Great work."}


def _booking_reason(world: World) -> dict[str, Any]:
    return {"bookingId": unknown_id("Booking"), "reason": "Ill today."}


def _booking(world: World) -> dict[str, Any]:
    return booking_input(world.package_id, in_a_week())


def _package(world: World) -> dict[str, Any]:
    return package_input(name="Window clean")


def _package_change(world: World) -> dict[str, Any]:
    return {"packageId": world.package_id, "name": "Big clean", "description": "y" * 20}


def _provider_profile(world: World) -> dict[str, Any]:
    return {"bio": "Ten years of gardens.", "location": place()}


def _address(world: World) -> dict[str, Any]:
    return {"label": "Home", "location": place()}


def _message(world: World) -> dict[str, Any]:
    return {"conversationId": world.conversation_id, "text": "See you at nine."}


def _message_edit(world: World) -> dict[str, Any]:
    return {"messageId": world.message_id, "text": "See you at ten."}


def _profile(world: World) -> dict[str, Any]:
    return {"name": "Ann B"}


def _partnership(world: World) -> dict[str, Any]:
    return {
        "name": "RoSaBank",
        "companyName": "Rosa Banking Solutions Inc",
        "contactName": "Jane Smith",
        "contactEmail": "api@rosabank.com",
        "businessType": "Financial Services",
        "webhookUrl": "https://api.rosabank.com/webhooks",
    }


def _partner_key(world: World) -> dict[str, Any]:
    return {"name": "server", "scopes": ["READ_WALLETS"]}


def _partner_note(world: World) -> dict[str, Any]:
    return {"partnerId": unknown_id("Partner"), "note": "Checked their registration."}


TEXT_FIELDS = [
    Field("signUp", "name", "nobody", _sign_up),
    Field("updateProfile", "name", "poster", _profile),
    Field("login", "deviceName", "nobody", _login),
    Field("postTask", "title", "poster", _task),
    Field("postTask", "description", "poster", _task, multiline=True),
    Field("postTask", "location.address.line1", "poster", _task),
    Field("postTask", "location.address.line2", "poster", _task),
    Field("postTask", "location.address.city", "poster", _task),
    Field("postTask", "location.address.region", "poster", _task),
    Field("postTask", "location.address.postalCode", "poster", _task),
    Field("updateTask", "title", "poster", _task_change),
    Field("updateTask", "description", "poster", _task_change, multiline=True),
    Field("makeOffer", "message", "newcomer", _new_offer, multiline=True),
    Field("updateOffer", "message", "tasker", _offer_change, multiline=True),
    Field("sendDirectOffer", "message", "poster", _direct_offer, multiline=True),
    Field("rejectOffer", "reason", "poster", _rejection, multiline=True),
    Field("acceptOffer", "milestones.0.title", "poster", _milestones),
    Field("cancelTask", "reason", "poster", _task_reason, multiline=True),
    Field("requestChanges", "reason", "poster", _task_reason, multiline=True),
    Field("submitTask", "note", "tasker", _task_note, multiline=True),
    Field("stepBackFromTask", "reason", "tasker", _task_reason, multiline=True),
    Field("submitMilestone", "note", "tasker", _milestone_note, multiline=True),
    Field("requestMilestoneChanges", "reason", "poster", _milestone_reason, multiline=True),
    Field("openDispute", "reason", "poster", _dispute, multiline=True),
    Field("resolveDispute", "note", "admin", _decision, multiline=True),
    Field("adminRefundEscrow", "note", "admin", _escrow_note, multiline=True),
    Field("adminReleaseEscrow", "note", "admin", _escrow_note, multiline=True),
    Field("adminSettleChargeback", "note", "admin", _escrow_note, multiline=True),
    Field("suspendUser", "reason", "admin", _suspension, multiline=True),
    Field("postReview", "comment", "poster", _review, multiline=True),
    Field("cancelBooking", "reason", "poster", _booking_reason, multiline=True),
    Field("rejectBooking", "reason", "tasker", _booking_reason, multiline=True),
    Field("bookSlot", "instructions", "poster", _booking, multiline=True),
    Field("bookSlot", "serviceLocation.address.line1", "poster", _booking),
    Field("createServicePackage", "name", "tasker", _package),
    Field("createServicePackage", "description", "tasker", _package, multiline=True),
    Field("updateServicePackage", "name", "tasker", _package_change),
    Field("updateServicePackage", "description", "tasker", _package_change, multiline=True),
    Field("updateProviderProfile", "bio", "tasker", _provider_profile, multiline=True),
    Field("updateProviderProfile", "location.address.city", "tasker", _provider_profile),
    Field("saveAddress", "label", "poster", _address),
    Field("saveAddress", "location.address.line1", "poster", _address),
    Field("sendMessage", "text", "tasker", _message, multiline=True),
    Field("editMessage", "text", "tasker", _message_edit, multiline=True),
    Field("applyForPartnership", "name", "poster", _partnership),
    Field("applyForPartnership", "companyName", "poster", _partnership),
    Field("applyForPartnership", "contactName", "poster", _partnership),
    Field("applyForPartnership", "businessType", "poster", _partnership),
    Field("createPartnerApiKey", "name", "poster", _partner_key),
    Field("approvePartner", "note", "admin", _partner_note, multiline=True),
    Field("rejectPartner", "note", "admin", _partner_note, multiline=True),
    Field("suspendPartner", "note", "admin", _partner_note, multiline=True),
    Field("reinstatePartner", "note", "admin", _partner_note, multiline=True),
    Field("closePartner", "note", "admin", _partner_note, multiline=True),
]


def _images(world: World) -> dict[str, Any]:
    return task_input(imageUrls=["https://images.example.com/lawn.jpg"])


def _image_change(world: World) -> dict[str, Any]:
    return {"taskId": world.task_id, "imageUrls": ["https://images.example.com/lawn.jpg"]}


def _attachment(world: World) -> dict[str, Any]:
    return {**_message(world), "attachmentUrls": ["https://files.example.com/plan.pdf"]}


def _evidence(world: World) -> dict[str, Any]:
    return {**_dispute(world), "evidenceUrls": ["https://files.example.com/photo.jpg"]}


def _more_evidence(world: World) -> dict[str, Any]:
    return {"disputeId": unknown_id("Dispute"), "evidenceUrls": ["https://files.example.com/a"]}


def _push_subscription(world: World) -> dict[str, Any]:
    return {
        "endpoint": "https://push.example.com/send/abc",
        "keys": {"p256dh": PUSH_KEY, "auth": "qLAYRzG9TnUwptNKVsfH-A"},
    }


LINK_FIELDS = [
    Field("postTask", "imageUrls.0", "poster", _images),
    Field("updateTask", "imageUrls.0", "poster", _image_change),
    Field("sendMessage", "attachmentUrls.0", "tasker", _attachment),
    Field("openDispute", "evidenceUrls.0", "poster", _evidence),
    Field("addDisputeEvidence", "evidenceUrls.0", "poster", _more_evidence),
    Field("registerPushSubscription", "endpoint", "poster", _push_subscription),
    Field("applyForPartnership", "webhookUrl", "poster", _partnership),
]

CHECKED_OTHERWISE = {
    # Compared with what is stored or hashed, never stored as given.
    "SignUpInput.password": "password policy",
    "LoginInput.password": "compared with its hash",
    "ChangePasswordInput.currentPassword": "compared with its hash",
    "ChangePasswordInput.newPassword": "password policy",
    "ResetPasswordInput.newPassword": "password policy",
    "DeleteMyAccountInput.password": "compared with its hash",
    "ExportMyDataInput.password": "compared with its hash",
    "ResetPasswordInput.token": "compared with its digest",
    "VerifyEmailInput.token": "compared with its digest",
    "RefreshTokenInput.refreshToken": "compared with its digest",
    "LogoutInput.refreshToken": "compared with its digest",
    "BookSlotInput.savedAddressId": "one of the customer's saved addresses",
    "RemoveSavedAddressInput.addressId": "one of the customer's saved addresses",
    "RemovePushSubscriptionInput.endpoint": "one of the caller's push endpoints",
    # Values of a fixed form, each with its own check.
    "SignUpInput.email": "e-mail syntax",
    "LoginInput.email": "looked up only",
    "RequestPasswordResetInput.email": "looked up only",
    "ResendVerificationEmailInput.email": "looked up only",
    "SignUpInput.phone": "E.164",
    "UpdateProfileInput.phone": "E.164",
    "StartPhoneVerificationInput.phone": "E.164",
    "ConfirmPhoneVerificationInput.code": "compared with its HMAC",
    "RemovePhoneInput.number": "compared with the number held",
    "MoneyInput.currency": "a currency the gateway charges",
    "AddressInput.country": "ISO 3166-1",
    "StartPayoutOnboardingInput.country": "ISO 3166-1",
    "StartPartnerPayoutOnboardingInput.country": "ISO 3166-1",
    "ApplyForPartnershipInput.contactEmail": "e-mail syntax",
    "PostTaskInput.category": "a configured category",
    "UpdateTaskInput.category": "a configured category",
    "UpdateProviderProfileInput.skills": "configured categories",
    "UpdateProviderProfileInput.timeZone": "an IANA time zone",
    "TimeRangeInput.start": "HH:MM",
    "TimeRangeInput.end": "HH:MM",
    "QuietHoursInput.start": "HH:MM",
    "QuietHoursInput.end": "HH:MM",
    "QuietHoursInput.timeZone": "an IANA time zone",
    "PushSubscriptionKeysInput.p256dh": "a P-256 public key in base64url",
    "PushSubscriptionKeysInput.auth": "16 bytes in base64url",
    # Searched for, never stored.
    "TaskFilter.text": "search words",
    "TaskFilter.category": "search filter",
    "TaskFilter.currency": "search filter",
    "ProviderFilter.category": "search filter",
    "ProviderFilter.currency": "search filter",
    "LedgerRefInput.value": "search filter",
    "LedgerTransactionFilter.account": "search filter",
    "PartnerWalletFilter.externalUserId": "search filter",
    "PartnerWalletFilter.currency": "search filter",
}

BAD_TEXT = {
    "a NUL byte": "Mow the\x00 lawn, please",
    "an escape sequence": "Mow the \x1b[2Jlawn, please",
    "only zero-width characters": "\u200b\u200c\u2060\ufeff" * 5,
    "only Hangul fillers and spaces": "\u3164 " * 8,
    "a right-to-left override": "Invoice \u202egpj.exe, please",
    "a private-use character": "Mow the \ue000 lawn, please",
}
LINE_BREAKS = {"CR/LF": "Mow the lawn\r\nBcc: all@example.com", "LF": "Mow the\nlawn, please"}

BAD_LINKS = {
    "plain http": "http://images.example.com/a.jpg",
    "a space": "https://images.example.com/a b.jpg",
    "CR/LF": "https://images.example.com/a.jpg\r\nX: y",
    "a NUL byte": "https://images.example.com/\x00.jpg",
    "a backslash": "https://images.example.com\\@evil.example.com/",
    "credentials": "https://user:secret@images.example.com/a.jpg",
    "loopback": "https://127.0.0.1/a.jpg",
    "loopback IPv6": "https://[::1]/a.jpg",
    "private": "https://192.168.1.10/a.jpg",
    "private, IPv4-mapped": "https://[::ffff:10.0.0.1]/a.jpg",
    "link-local (cloud metadata)": "https://169.254.169.254/latest/meta-data",
    "multicast": "https://224.0.0.1/a.jpg",
    "reserved": "https://240.0.0.1/a.jpg",
    "localhost": "https://localhost/a.jpg",
    "a single label": "https://intranet/a.jpg",
    "a .local name": "https://printer.local/a.jpg",
    "a decimal IPv4 address": "https://2130706433/a.jpg",
    "another port": "https://images.example.com:8080/a.jpg",
    "a bad port": "https://images.example.com:99999/a.jpg",
    "a broken IPv6 literal": "https://[::1/a.jpg",
    "too long": "https://images.example.com/" + "a" * 2100,
}


def test_every_string_input_is_checked_as_text_a_link_or_otherwise() -> None:
    schema = public_schema()
    tabled = {input_field_of(schema, f.mutation, f.path) for f in TEXT_FIELDS + LINK_FIELDS}
    unclassified = string_input_fields(schema) - tabled - set(CHECKED_OTHERWISE)
    assert unclassified == set(), "add these fields to a table of tests/api/test_input_checks.py"


async def _refusals(
    client: GraphQLClient, world: World, field: Field, values: dict[str, str]
) -> list[str]:
    """What went wrong when `field` was given each of `values`: each must be refused with
    INVALID_INPUT naming the field, and leave every stored document as it was."""
    who = world.person(field.who)
    wrong = []
    for what, value in values.items():
        before = await snapshot()
        given = with_value(field.valid(world), field.path, value)
        payload = await client.mutate(field.mutation, given, token=who.access if who else None)
        errors = [(e["code"], e["field"]) for e in payload["errors"]]
        if errors != [("INVALID_INPUT", field.path)]:
            wrong.append(f"{field.mutation} {field.path} with {what}: {errors}")
        elif await snapshot() != before:
            wrong.append(f"{field.mutation} {field.path} with {what}: something changed")
    return wrong


async def test_every_text_field_refuses_controls_invisible_text_and_overrides(
    client: GraphQLClient, runtime: Runtime
) -> None:
    world = await make_world(client, runtime)
    wrong = []
    for field in TEXT_FIELDS:
        bad = BAD_TEXT if field.multiline else {**BAD_TEXT, **LINE_BREAKS}
        wrong += await _refusals(client, world, field, bad)
    assert wrong == []


async def test_every_link_field_refuses_links_that_are_not_public_https(
    client: GraphQLClient, runtime: Runtime
) -> None:
    world = await make_world(client, runtime)
    wrong = []
    for field in LINK_FIELDS:
        wrong += await _refusals(client, world, field, BAD_LINKS)
    assert wrong == []


async def test_text_of_several_lines_keeps_its_line_breaks_and_links_stay_as_given(
    client: GraphQLClient, runtime: Runtime
) -> None:
    world = await make_world(client, runtime)
    posted = await client.mutate(
        "postTask",
        task_input(
            description="Front lawn first,\r\nthen the back.\tMower in the shed. 🌱👩‍🌾",
            imageUrls=["https://bücher.example.com/lawn.jpg?size=big#top", "https://8.8.8.8/x"],
            location={**place(), "address": {**ADDRESS, "line1": "  1   George St "}},
        ),
        "task { description imageUrls place { address { line1 } } }",
        token=world.poster.access,
    )
    assert posted["errors"] == [], posted
    assert posted["task"]["description"] == (
        "Front lawn first,\nthen the back.\tMower in the shed. 🌱👩‍🌾"
    )
    assert posted["task"]["imageUrls"] == [
        "https://bücher.example.com/lawn.jpg?size=big#top",
        "https://8.8.8.8/x",
    ]
    assert posted["task"]["place"]["address"]["line1"] == "1   George St"
