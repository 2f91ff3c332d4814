"""Checking and normalising user input; every check reports a `Problem`, never raises.

Use cases collect the problems of all their fields and raise them together, so a form
shows every mistake at once and nothing is written while any remain.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import pycountry
from email_validator import EmailNotValidError, validate_email

from documents.accounts.users import SELF_SERVICE_ROLES, Role
from documents.clock import utcnow
from documents.errors import DomainError, ErrorCode, Problem
from documents.geo import Address, GeoPoint, Place
from documents.money import MAX_AMOUNT, Money
from documents.payments.currencies import CHARGEABLE_CURRENCIES, chargeable_currency
from resolvers.common import text_rules
from resolvers.common.links import link_problem
from resolvers.payments.fees import FeePolicy

MAX_NAME_LENGTH = 100
MAX_REASON_LENGTH = 500
MAX_URL_LENGTH = 2048
MAX_ADDRESS_FIELD_LENGTH = 200
_PHONE_PUNCTUATION = re.compile(r"[\s().\-]")
_E164 = re.compile(r"^\+[1-9]\d{6,14}$")


@dataclass(frozen=True, slots=True)
class PriceRules:
    """What a price must be so that the gateway can charge it and every fee is whole."""

    accepted: tuple[str, ...]
    """The marketplace's currencies; all of these the gateway can charge."""
    smallest_with_whole_fees: int
    """In minor units: below it some fee would round to nothing (see FeePolicy)."""

    @classmethod
    def of(cls, currencies: Sequence[str], fees: FeePolicy) -> PriceRules:
        """The rules for `currencies` as configured (none named: every currency the gateway
        charges) under the fee policy `fees`."""
        return cls(
            accepted=tuple(currencies or CHARGEABLE_CURRENCIES),
            smallest_with_whole_fees=fees.smallest_price_with_whole_fees(),
        )

    def smallest_price(self, code: str) -> Money | None:
        """The least price accepted in the currency; None if it is not accepted."""
        terms = chargeable_currency(code)
        if terms is None or code not in self.accepted:
            return None
        least = max(terms.minimum_charge, self.smallest_with_whole_fees, 1)
        return Money(amount=least, currency=code)


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
        """A person's name: one line of visible text, inner runs of spaces made one."""
        cleaned = " ".join(self.characters(value, field).split())
        if not text_rules.has_visible(cleaned):
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

    def characters(self, value: str, field: str, *, multiline: bool = False) -> str:
        """`value` as stored: without characters that have no place in text (controls,
        bidirectional overrides, private-use, unassigned; line breaks unless
        `multiline`, where they are made `\\n`). Whitespace is kept as given."""
        if multiline:
            value = text_rules.unify_line_breaks(value)
        problem = text_rules.problem(value, multiline=multiline)
        if problem is not None:
            self.fail(ErrorCode.INVALID_INPUT, problem, field)
        return value

    def text(self, value: str, field: str, max_length: int, *, multiline: bool = False) -> str:
        """Optional text: empty, or visible text of at most `max_length` characters."""
        cleaned = self.characters(value, field, multiline=multiline).strip()
        if cleaned and not text_rules.has_visible(cleaned):
            self.fail(ErrorCode.INVALID_INPUT, text_rules.INVISIBLE, field)
        elif len(cleaned) > max_length:
            message = f"Must be at most {max_length} characters."
            self.fail(ErrorCode.INVALID_INPUT, message, field)
        return cleaned

    def required_text(
        self,
        value: str,
        field: str,
        *,
        min_length: int,
        max_length: int,
        multiline: bool = False,
    ) -> str:
        cleaned = self.characters(value, field, multiline=multiline).strip()
        if cleaned and not text_rules.has_visible(cleaned):
            self.fail(ErrorCode.INVALID_INPUT, text_rules.INVISIBLE, field)
        elif len(cleaned) < min_length or not cleaned:
            self.fail(ErrorCode.INVALID_INPUT, f"Must be at least {min_length} characters.", field)
        elif len(cleaned) > max_length:
            self.fail(ErrorCode.INVALID_INPUT, f"Must be at most {max_length} characters.", field)
        return cleaned

    def money(self, amount: int, currency: str, field: str) -> Money:
        """An amount of money that exists already (a refund, a withdrawal): more than
        zero, in a currency the gateway handles."""
        code = self._currency(currency, CHARGEABLE_CURRENCIES, field)
        if amount <= 0:
            self.fail(ErrorCode.INVALID_INPUT, "The amount must be more than zero.", field)
        elif amount > MAX_AMOUNT:
            self.fail(ErrorCode.INVALID_INPUT, "The amount is too large.", field)
        return Money(amount=amount, currency=code)

    def price(self, amount: int, currency: str, field: str, rules: PriceRules) -> Money:
        """A price someone will be charged: in an accepted currency, at least the
        gateway's minimum charge and large enough that no fee on it rounds to nothing."""
        code = self._currency(currency, rules.accepted, field)
        smallest = rules.smallest_price(code)
        if smallest is None:
            return Money(amount=amount, currency=code)
        if amount < smallest.amount:
            message = f"The price must be at least {smallest}."
            self.fail(ErrorCode.INVALID_INPUT, message, field)
        elif amount > MAX_AMOUNT:
            self.fail(ErrorCode.INVALID_INPUT, "The amount is too large.", field)
        return Money(amount=amount, currency=code)

    def _currency(self, currency: str, accepted: Iterable[str], field: str) -> str:
        code = currency.strip().upper()
        allowed = list(accepted)
        if chargeable_currency(code) is None or code not in allowed:
            message = f"Unknown or unaccepted currency {currency[:10]!r}; one of: "
            self.fail(ErrorCode.INVALID_INPUT, message + ", ".join(allowed) + ".", field)
        return code

    def point(self, latitude: float, longitude: float, field: str) -> GeoPoint:
        if not (-90 <= latitude <= 90 and -180 <= longitude <= 180):
            self.fail(
                ErrorCode.INVALID_INPUT, "Latitude must be within ±90 and longitude ±180.", field
            )
            return GeoPoint.at(0, 0)
        return GeoPoint.at(latitude, longitude)

    def address(self, address: Address, field: str) -> Address:
        """A postal address; its lines are one line of text each. The field at fault is
        named within the address, like `location.address.city`."""
        at = f"{field}.address"

        def line(value: str | None, name: str) -> str | None:
            if value is None:
                return None
            return self.text(value, f"{at}.{name}", MAX_ADDRESS_FIELD_LENGTH) or None

        line1 = line(address.line1, "line1")
        city = line(address.city, "city")
        if not line1:
            self.fail(ErrorCode.INVALID_INPUT, "An address needs a street line.", f"{at}.line1")
        if not city:
            self.fail(ErrorCode.INVALID_INPUT, "An address needs a city.", f"{at}.city")
        return Address(
            line1=line1 or "",
            line2=line(address.line2, "line2"),
            city=city or "",
            region=line(address.region, "region"),
            postal_code=line(address.postal_code, "postalCode"),
            country=self.country(address.country, f"{at}.country"),
        )

    def country(self, value: str, field: str = "country") -> str:
        """An ISO 3166-1 alpha-2 code of a country that exists, upper case."""
        code = value.strip().upper()
        if len(code) != 2 or pycountry.countries.get(alpha_2=code) is None:
            message = "Country must be an ISO 3166-1 two-letter code, like AU."
            self.fail(ErrorCode.INVALID_INPUT, message, field)
        return code

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
        """Links to files stored elsewhere: absolute https URLs of public hosts, without
        credentials, each at most MAX_URL_LENGTH long (see resolvers/common/links.py)."""
        cleaned = [url.strip() for url in urls]
        if len(cleaned) > maximum:
            self.fail(ErrorCode.INVALID_INPUT, f"At most {maximum} {noun}.", field)
            return cleaned
        for index, url in enumerate(cleaned):
            problem = link_problem(url, MAX_URL_LENGTH)
            if problem is not None:
                self.fail(ErrorCode.INVALID_INPUT, problem, f"{field}.{index}")
        return cleaned

    def future(self, moment: datetime, field: str, *, within: timedelta) -> datetime:
        """A moment after now and at most `within` from now."""
        if moment.tzinfo is None:
            self.fail(ErrorCode.INVALID_INPUT, "Give a time zone offset with the time.", field)
            return moment
        now = utcnow()
        if moment <= now:
            self.fail(ErrorCode.INVALID_INPUT, "Must be in the future.", field)
        elif moment > now + within:
            message = f"Must be at most {within.days} days ahead."
            self.fail(ErrorCode.INVALID_INPUT, message, field)
        return moment
