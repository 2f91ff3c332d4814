"""One-click unsubscribe (RFC 8058): a signed link in every e-mail of a kind that may be
turned off, which stops that kind's e-mails to that person without a login.

The link's token names the person and the kind, and carries a tag: HMAC-SHA256 over
both, with a key derived from the JWT secret and the link version
(GIGQL_UNSUBSCRIBE_LINK_VERSION), as page cursors derive theirs
(resolvers/common/cursors.py). Every instance sharing the secret accepts the others'
links and nothing new has to be kept secret. Links do not expire: a mail read a year on
must still unsubscribe. Raising the version, or a new secret, ends every link mailed
before. A token changed in any way, or made for another person or kind, is refused
before anything is read from the database.

A link only ever turns e-mail off, of one kind, for its person: the worst a leaked one
does is what its owner would have done with it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
from dataclasses import dataclass

from bson import ObjectId

from documents.notifications.catalogue import CATALOGUE, NotificationKind
from resolvers.notifications.preferences import turn_off_email

log = logging.getLogger(__name__)

PATH = "/notifications/unsubscribe"
"""Where the API answers unsubscribe links (server/notifications/unsubscribe_page.py)."""
KEY_LABEL = "gigql/unsubscribe-links/v{version}"
"""Derives the key of one link version from the JWT secret; no other use of the secret
yields it."""
TAG_BYTES = 16
"""128 bits of HMAC-SHA256: forging one is out of reach."""
MAX_TOKEN_CHARS = 128
"""Far above any token we make (about 80 characters); longer is refused unread."""
_KINDS = frozenset(kind.value for kind in NotificationKind)


class InvalidUnsubscribeLink(Exception):
    """Not a link we made: changed, made up, or of an older version."""


@dataclass(frozen=True, slots=True)
class Unsubscribing:
    """Whose e-mails of which kind a valid link stops."""

    user_id: ObjectId
    kind: NotificationKind


class UnsubscribeLinks:
    """Makes and reads the links, for one secret, version and public address."""

    def __init__(self, jwt_secret: str, public_url: str, version: int) -> None:
        label = KEY_LABEL.format(version=version).encode()
        self._key = hmac.digest(jwt_secret.encode(), label, hashlib.sha256)
        self._version = str(version)
        self._base = public_url.rstrip("/") + PATH

    def url(self, user_id: ObjectId, kind: NotificationKind) -> str | None:
        """The link for e-mails of `kind` to the person; None if the kind may not be
        turned off."""
        if not CATALOGUE[kind].optional:
            return None
        return f"{self._base}?token={self.token(user_id, kind)}"

    def token(self, user_id: ObjectId, kind: NotificationKind) -> str:
        """`<version>.<user id>.<kind>.<tag>`: characters a URL carries as they are."""
        body = f"{self._version}.{user_id}.{kind.value}"
        return f"{body}.{self._tag(body)}"

    def read(self, token: str) -> Unsubscribing:
        """Whose e-mails of which kind `token` stops; InvalidUnsubscribeLink if we did
        not make it with this key."""
        if len(token) > MAX_TOKEN_CHARS:
            raise InvalidUnsubscribeLink("too long")
        body, _, tag = token.rpartition(".")
        expected = self._tag(body).encode()
        if not hmac.compare_digest(tag.encode("utf-8", "replace"), expected):
            raise InvalidUnsubscribeLink("the tag does not match")
        # Signed by us, so well formed; checked all the same, as cursors are.
        parts = body.split(".")
        if len(parts) != 3:
            raise InvalidUnsubscribeLink("not a link of ours")
        version, user_id, kind = parts
        if version != self._version or not ObjectId.is_valid(user_id):
            raise InvalidUnsubscribeLink("not a link of this version")
        if kind not in _KINDS or not CATALOGUE[NotificationKind(kind)].optional:
            raise InvalidUnsubscribeLink("not a kind that may be turned off")
        return Unsubscribing(ObjectId(user_id), NotificationKind(kind))

    def _tag(self, body: str) -> str:
        digest = hmac.digest(self._key, body.encode("utf-8", "replace"), hashlib.sha256)
        return base64.urlsafe_b64encode(digest[:TAG_BYTES]).decode().rstrip("=")


async def unsubscribe(links: UnsubscribeLinks, token: str) -> Unsubscribing:
    """Stop the e-mails a valid link names (again: a second click changes nothing)."""
    subject = links.read(token)
    if await turn_off_email(subject.user_id, subject.kind):
        log.info(
            "e-mails of %s turned off by an unsubscribe link",
            subject.kind.value,
            extra={"user_id": str(subject.user_id), "notification_kind": subject.kind.value},
        )
    return subject
