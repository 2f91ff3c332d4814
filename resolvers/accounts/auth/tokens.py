"""Access tokens (signed JWTs) and opaque secret tokens (refresh, e-mail links)."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

import jwt
from beanie import PydanticObjectId
from bson import ObjectId
from bson.errors import InvalidId

from documents.clock import utcnow
from documents.errors import DomainError, ErrorCode

ALGORITHM = "HS256"
REQUIRED_CLAIMS = ["exp", "iat", "iss", "aud", "sub", "jti", "sid"]
# Tolerated clock difference between the API instances that issue and check a token.
LEEWAY = timedelta(seconds=10)


@dataclass(frozen=True, slots=True)
class AccessClaims:
    user_id: ObjectId
    session_id: ObjectId
    token_id: str
    expires_at: datetime
    admin: bool = False
    """Whether the account held the admin role when the token was issued (the `adm` claim).
    Only for decisions a stale role cannot turn into access (schema/persisted/policy.py:
    which documents a request may send); every field still authorises the account as it is
    now."""


@dataclass(frozen=True, slots=True)
class IssuedToken:
    token: str
    expires_at: datetime


class AccessTokens:
    def __init__(self, secret: str, issuer: str, audience: str, ttl: timedelta) -> None:
        self._secret = secret
        self._issuer = issuer
        self._audience = audience
        self._ttl = ttl

    def issue(self, user_id: ObjectId, session_id: ObjectId, *, admin: bool = False) -> IssuedToken:
        now = utcnow()
        expires_at = now + self._ttl
        claims: dict[str, object] = {
            "iss": self._issuer,
            "aud": self._audience,
            "sub": str(user_id),
            "sid": str(session_id),
            "jti": uuid.uuid4().hex,
            "iat": now,
            "exp": expires_at,
        }
        if admin:
            claims["adm"] = True
        return IssuedToken(jwt.encode(claims, self._secret, algorithm=ALGORITHM), expires_at)

    def derived_key(self, label: bytes) -> bytes:
        """A key of its own for another use of the signing secret (HMAC-SHA256 of `label`
        under it): knowing it tells nothing of the secret or of the other uses' keys."""
        return hmac.digest(self._secret.encode(), label, hashlib.sha256)

    def verify(self, token: str) -> AccessClaims:
        try:
            claims = jwt.decode(
                token,
                self._secret,
                # Pinned: never let the token choose its algorithm ("none", RS/HS confusion).
                algorithms=[ALGORITHM],
                audience=self._audience,
                issuer=self._issuer,
                leeway=LEEWAY,
                options={"require": REQUIRED_CLAIMS},
            )
        except jwt.ExpiredSignatureError as error:
            raise DomainError(ErrorCode.TOKEN_EXPIRED, "The access token has expired.") from error
        except jwt.InvalidTokenError as error:
            raise DomainError(ErrorCode.INVALID_TOKEN, "The access token is not valid.") from error
        try:
            # PydanticObjectId, not ObjectId: Beanie's `get` validates it without extra work.
            return AccessClaims(
                user_id=PydanticObjectId(claims["sub"]),
                session_id=PydanticObjectId(claims["sid"]),
                token_id=str(claims["jti"]),
                expires_at=datetime.fromtimestamp(claims["exp"], tz=utcnow().tzinfo),
                admin=claims.get("adm") is True,
            )
        except (InvalidId, TypeError) as error:
            raise DomainError(ErrorCode.INVALID_TOKEN, "The access token is not valid.") from error


def new_secret() -> tuple[str, str]:
    """A fresh unguessable token and the digest under which it is stored."""
    token = secrets.token_urlsafe(32)
    return token, digest(token)


def digest(token: str) -> str:
    # A fast hash suffices: the tokens carry 256 random bits, nothing to brute-force.
    return hashlib.sha256(token.encode()).hexdigest()
