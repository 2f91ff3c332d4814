"""Checking and normalising user input; every check reports a `Problem`, never raises.

Use cases collect the problems of all their fields and raise them together, so a form
shows every mistake at once and nothing is written while any remain.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import datetime
from urllib.parse import urlsplit

from email_validator import EmailNotValidError, validate_email

from documents.clock import utcnow
from documents.errors import DomainError, ErrorCode, Problem
from documents.geo import Address, GeoPoint, Place
from documents.money import MAX_AMOUNT, Money, minor_unit_exponent
from documents.users import SELF_SERVICE_ROLES, Role

MAX_NAME_LENGTH = 100
MAX_REASON_LENGTH = 500
MAX_URL_LENGTH = 2048
MAX_ADDRESS_FIELD_LENGTH = 200
_PHONE_PUNCTUATION = re.compile(r"[\s().\-]")
_E164 = re.compile(r"^\+[1-9]\d{6,14}$")


class Checked:
    """Collects problems while normalising the fields of one input."""

    def __init__(self) -> None:
        self.problems: list[Problem] = []

    def add(self, problems: Iterable[Problem]) -> None:
        self.problems.extend(problems)

    def fail(self, code: ErrorCode, message: str, field: str) -> None:
        self.problems.append(Problem(code, message, field))

    def raise_if_any(self) -> None:
        if self.problems:
            raise DomainError.of(self.problems)

    def email(self, value: str, field: str = "email") -> str:
        try:
            # Syntax only: deliverability is proven by the verification e-mail.
            return validate_email(value.strip(), check_deliverability=False).normalized
        except EmailNotValidError as error:
            self.fail(ErrorCode.INVALID_EMAIL, str(error), field)
            return value

    def name(self, value: str, field: str = "name") -> str:
        cleaned = " ".join(value.split())
        if not cleaned:
            self.fail(ErrorCode.INVALID_INPUT, "Name must not be empty.", field)
        elif len(cleaned) > MAX_NAME_LENGTH:
            message = f"Name must be at most {MAX_NAME_LENGTH} characters."
            self.fail(ErrorCode.INVALID_INPUT, message, field)
        return cleaned

    def phone(self, value: str | None, field: str = "phone") -> str | None:
        """An international number in E.164 form; spaces, dashes and brackets are dropped."""
        if value is None or not value.strip():
            return None
        cleaned = _PHONE_PUNCTUATION.sub("", value)
        if not _E164.match(cleaned):
            message = "Phone must be an international number starting with +, like +14155550123."
            self.fail(ErrorCode.INVALID_INPUT, message, field)
        return cleaned

    def self_service_roles(self, roles: Iterable[Role], field: str = "roles") -> list[Role]:
        chosen = list(dict.fromkeys(roles))
        if not chosen:
            self.fail(ErrorCode.INVALID_INPUT, "Choose at least one role.", field)
        elif not SELF_SERVICE_ROLES.issuperset(chosen):
            message = "Only the poster and tasker roles can be chosen."
            self.fail(ErrorCode.FORBIDDEN, message, field)
        return chosen

    def text(self, value: str, field: str, max_length: int) -> str:
        cleaned = value.strip()
        if len(cleaned) > max_length:
            message = f"Must be at most {max_length} characters."
            self.fail(ErrorCode.INVALID_INPUT, message, field)
        return cleaned

    def required_text(self, value: str, field: str, *, min_length: int, max_length: int) -> str:
        cleaned = value.strip()
        if len(cleaned) < min_length:
            self.fail(ErrorCode.INVALID_INPUT, f"Must be at least {min_length} characters.", field)
        elif len(cleaned) > max_length:
            self.fail(ErrorCode.INVALID_INPUT, f"Must be at most {max_length} characters.", field)
        return cleaned

    def money(
        self,
        amount: int,
        currency: str,
        field: str,
        *,
        accepted: Iterable[str] = (),
        positive: bool = True,
    ) -> Money:
        code = currency.strip().upper()
        allowed = list(accepted)
        if minor_unit_exponent(code) is None or (allowed and code not in allowed):
            message = f"Unknown or unaccepted currency {currency!r}."
            if allowed:
                message += f" Accepted: {', '.join(allowed)}."
            self.fail(ErrorCode.INVALID_INPUT, message, field)
        if amount < 0 or (positive and amount == 0):
            self.fail(ErrorCode.INVALID_INPUT, "The amount must be more than zero.", field)
        elif amount > MAX_AMOUNT:
            self.fail(ErrorCode.INVALID_INPUT, "The amount is too large.", field)
        return Money(amount=amount, currency=code)

    def point(self, latitude: float, longitude: float, field: str) -> GeoPoint:
        if not (-90 <= latitude <= 90 and -180 <= longitude <= 180):
            self.fail(
                ErrorCode.INVALID_INPUT, "Latitude must be within ±90 and longitude ±180.", field
            )
            return GeoPoint.at(0, 0)
        return GeoPoint.at(latitude, longitude)

    def address(self, address: Address, field: str) -> Address:
        fields = {
            "line1": address.line1,
            "line2": address.line2,
            "city": address.city,
            "region": address.region,
            "postal_code": address.postal_code,
        }
        cleaned = {k: (v.strip() if v else None) for k, v in fields.items()}
        if not cleaned["line1"] or not cleaned["city"]:
            self.fail(ErrorCode.INVALID_INPUT, "An address needs a street line and a city.", field)
        if any(v and len(v) > MAX_ADDRESS_FIELD_LENGTH for v in cleaned.values()):
            self.fail(ErrorCode.INVALID_INPUT, "Address lines are at most 200 characters.", field)
        country = address.country.strip().upper()
        if not re.fullmatch(r"[A-Z]{2}", country):
            self.fail(ErrorCode.INVALID_INPUT, "Country must be a two-letter ISO 3166 code.", field)
        return Address(
            line1=cleaned["line1"] or "",
            line2=cleaned["line2"],
            city=cleaned["city"] or "",
            region=cleaned["region"],
            postal_code=cleaned["postal_code"],
            country=country,
        )

    def place(self, latitude: float, longitude: float, address: Address, field: str) -> Place:
        return Place(
            point=self.point(latitude, longitude, field), address=self.address(address, field)
        )

    def category(self, value: str, categories: Iterable[str], field: str = "category") -> str:
        known = list(categories)
        slug = value.strip().lower()
        if slug not in known:
            self.fail(
                ErrorCode.INVALID_INPUT, f"Unknown category; one of: {', '.join(known)}.", field
            )
        return slug

    def image_urls(
        self, urls: Iterable[str], field: str = "imageUrls", *, maximum: int = 10
    ) -> list[str]:
        """Links to images stored elsewhere (https only); we never take uploads."""
        return self.urls(urls, field, maximum=maximum, noun="images")

    def urls(
        self, urls: Iterable[str], field: str, *, maximum: int, noun: str = "links"
    ) -> list[str]:
        """Links to files stored elsewhere: https only, each at most MAX_URL_LENGTH long."""
        cleaned = [url.strip() for url in urls]
        if len(cleaned) > maximum:
            self.fail(ErrorCode.INVALID_INPUT, f"At most {maximum} {noun}.", field)
        for url in cleaned:
            parts = urlsplit(url)
            if parts.scheme != "https" or not parts.hostname or len(url) > MAX_URL_LENGTH:
                self.fail(ErrorCode.INVALID_INPUT, f"Not an https URL: {url[:80]!r}.", field)
                break
        return cleaned

    def future(self, moment: datetime, field: str) -> datetime:
        if moment.tzinfo is None:
            self.fail(ErrorCode.INVALID_INPUT, "Give a time zone offset with the time.", field)
        elif moment <= utcnow():
            self.fail(ErrorCode.INVALID_INPUT, "Must be in the future.", field)
        return moment
