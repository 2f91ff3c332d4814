"""Which text a request runs: the one it sends, or the one it names.

A request names a document by GraphQL over HTTP's `documentId` or by Apollo's
`extensions.persistedQuery: {version: 1, sha256Hash}`, and may leave the text out:

- A trusted document (schema/persisted/manifest.py) is found by its id, or by
  `sha256:<id>` when its id is a bare hash.
- Automatic persisted queries (`GIGQL_PERSISTED_QUERIES`): a hash alone finds a text this
  process has prepared (its cache, schema/common/prepared.py, indexes them by SHA-256) or
  one registered in Redis by any instance (schema/persisted/shared.py); else
  PERSISTED_QUERY_NOT_FOUND, on which Apollo Client's, urql's and the other APQ links send
  hash and text. That registers the text, once its SHA-256 is checked to be the hash
  (PERSISTED_QUERY_HASH_MISMATCH otherwise: nobody can file a text under another's hash).
  With APQ off and no manifest, a hash gets PERSISTED_QUERY_NOT_SUPPORTED and the links
  stop hashing. Both answers are Apollo Server's, word for word, with status 200.

In `only` mode (`GIGQL_TRUSTED_DOCUMENTS_MODE`) a text runs only if it is a manifest
document's, however it came (by id, or sent in full); any other is PERSISTED_QUERY_ONLY,
unless the request's access token says its account is an admin (the `adm` claim, read
from the verified token without a database round trip, as the rate limits read the
account). That trust is narrow on purpose: the claim only widens which documents may be
sent, never what they may read or do, for every field still authorises the account as it
is now; a token keeps a revoked role at most its lifetime (GIGQL_ACCESS_TOKEN_TTL).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field

from graphql import GraphQLError

from documents.errors import DomainError
from resolvers.accounts.auth.tokens import AccessTokens
from schema.common.prepared import PreparedDocuments, sha256_of
from schema.persisted.manifest import MAX_ID_LENGTH, Manifest
from schema.persisted.shared import SharedQueries

NOT_FOUND = "PERSISTED_QUERY_NOT_FOUND"
NOT_SUPPORTED = "PERSISTED_QUERY_NOT_SUPPORTED"
HASH_MISMATCH = "PERSISTED_QUERY_HASH_MISMATCH"
ONLY = "PERSISTED_QUERY_ONLY"
APQ_VERSION = 1

_SHA256_HEX = re.compile(r"[0-9a-f]{64}")
# GraphQL over HTTP's document identifiers: `sha256:<hex>`, `x-...:...`, or custom.
_DOCUMENT_ID = re.compile(r"[A-Za-z0-9._~-]+(:[A-Za-z0-9._~-]+)?")


class PersistedQueryRefused(Exception):
    """A request whose document cannot be run: answered with one error and `status`."""

    def __init__(self, message: str, code: str, status: int = 400) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.status = status

    def error(self) -> GraphQLError:
        return GraphQLError(self.message, extensions={"code": self.code})


def _bad_request(message: str) -> PersistedQueryRefused:
    return PersistedQueryRefused(message, "BAD_REQUEST")


@dataclass(frozen=True, slots=True)
class Requested:
    """What a request says of its document: its text, its id, its APQ hash."""

    query: str | None
    document_id: str | None = None
    sha256_hash: str | None = None

    @classmethod
    def of(cls, query: object, document_id: object, extensions: object) -> Requested:
        """From a request's fields (already checked: `query` a string or None and
        `extensions` an object or None); PersistedQueryRefused when they name badly."""
        assert query is None or isinstance(query, str)
        if document_id is not None and not (
            isinstance(document_id, str)
            and len(document_id) <= MAX_ID_LENGTH + len("sha256:")
            and _DOCUMENT_ID.fullmatch(document_id)
        ):
            raise _bad_request(
                "`documentId` must be a document identifier: `sha256:` and a hash, or an id "
                "of letters, digits, `.`, `_`, `~` and `-`."
            )
        if document_id is not None and query is not None:
            raise _bad_request("Send a document's `documentId` or its `query`, not both.")
        persisted = extensions.get("persistedQuery") if isinstance(extensions, dict) else None
        if persisted is None:
            return cls(query, document_id)
        if not isinstance(persisted, dict) or persisted.get("version") != APQ_VERSION:
            raise _bad_request("Unsupported persisted query version")  # Apollo's words
        sha256_hash = persisted.get("sha256Hash")
        if not isinstance(sha256_hash, str) or not _SHA256_HEX.fullmatch(sha256_hash.lower()):
            raise _bad_request("`persistedQuery.sha256Hash` must be 64 hexadecimal digits.")
        sha256_hash = sha256_hash.lower()
        if document_id is not None and document_id.removeprefix("sha256:") != sha256_hash:
            raise _bad_request("`documentId` and `persistedQuery` name different documents.")
        return cls(query, document_id, sha256_hash)


@dataclass(frozen=True, slots=True)
class Resolved:
    text: str
    share_as: str | None = None
    """The hash to register the text under in Redis, once it has prepared without errors."""


@dataclass
class PersistedDocuments:
    """One graph's persisted documents: its manifest, its APQ texts, its mode."""

    documents: PreparedDocuments
    apq: bool
    manifest: Manifest = field(default_factory=Manifest)
    only: bool = False
    """Run manifest documents only (`GIGQL_TRUSTED_DOCUMENTS_MODE=only`)."""
    exempt_admins: bool = True
    shared: SharedQueries | None = None

    async def resolve(self, requested: Requested, is_admin: Callable[[], bool]) -> Resolved:
        """The text to run; PersistedQueryRefused with the answer when there is none.
        `is_admin` is asked only when an `only` mode has to decide about a text."""
        query, document_id, sha256_hash = (
            requested.query,
            requested.document_id,
            requested.sha256_hash,
        )
        if document_id is not None:
            text = self.manifest.text(document_id)
            if text is None and self.apq and document_id.startswith("sha256:"):
                text = await self._registered(document_id.removeprefix("sha256:"))
            return Resolved(self._allowed(_found(text), is_admin))
        if sha256_hash is None:
            if query is None:
                raise _bad_request("No GraphQL query found in the request.")
            return Resolved(self._allowed(query, is_admin))
        if not self.apq and not self.manifest.texts:
            raise PersistedQueryRefused("PersistedQueryNotSupported", NOT_SUPPORTED, 200)
        if query is None:
            text = self.manifest.text(sha256_hash)
            if text is None and self.apq:
                text = await self._registered(sha256_hash)
            return Resolved(self._allowed(_found(text), is_admin))
        if sha256_of(query) != sha256_hash:
            raise PersistedQueryRefused(
                "provided sha does not match query", HASH_MISMATCH
            )  # Apollo's words, with a code of their own
        share = self.apq and self.shared is not None and query not in self.manifest.trusted
        return Resolved(self._allowed(query, is_admin), sha256_hash if share else None)

    async def share(self, resolved: Resolved) -> None:
        """Register a text in Redis for the other instances (it prepared without errors)."""
        if resolved.share_as is not None and self.shared is not None:
            await self.shared.register(resolved.share_as, resolved.text)

    async def _registered(self, sha256_hex: str) -> str | None:
        text = self.documents.text_of_hash(sha256_hex)
        if text is None and self.shared is not None:
            text = await self.shared.text(sha256_hex)
            if text is not None and sha256_of(text) != sha256_hex:
                text = None  # not what was registered: nothing in Redis is taken on trust
        return text

    def _allowed(self, text: str, is_admin: Callable[[], bool]) -> str:
        if not self.only or text in self.manifest.trusted:
            return text
        if self.exempt_admins and is_admin():
            return text
        raise PersistedQueryRefused(
            "This server runs only the operations its applications were built with: send "
            "the document's id (`documentId`), not its text.",
            ONLY,
        )


def _found(text: str | None) -> str:
    if text is None:
        raise PersistedQueryRefused("PersistedQueryNotFound", NOT_FOUND, 200)
    return text


def admin_token(tokens: AccessTokens, access_token: str | None) -> bool:
    """Whether a valid access token was issued to an admin; never a database read."""
    if not access_token:
        return False
    try:
        return tokens.verify(access_token).admin
    except DomainError:
        return False
