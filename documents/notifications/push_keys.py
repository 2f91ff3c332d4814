"""The keys of web push, in the text form browsers and push services use.

Browsers hand out a subscription's keys, and take the server's application key, as
base64url without padding: `p256dh`, the browser's P-256 public key as an uncompressed
point (65 bytes, RFC 8291), and `auth`, a 16-byte secret. The server's VAPID key pair
(RFC 8292) is a P-256 private key, kept as its 32-byte scalar in the same encoding, and
its public key as a 65-byte point: the application server key `pushManager.subscribe`
takes. The settings, the subscriptions people register and the sender read them here.
"""

from __future__ import annotations

import base64
import binascii

import regex
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

POINT_BYTES = 65
"""An uncompressed P-256 point: 0x04, then x and y of 32 bytes each."""
AUTH_SECRET_BYTES = 16
PRIVATE_KEY_BYTES = 32
_BASE64URL = regex.compile(r"[A-Za-z0-9_-]*")


def b64url_decode(text: str) -> bytes | None:
    """The bytes `text` encodes in base64url (padding optional), or None if it is not
    base64url: another alphabet, a stray character or a length no encoding has."""
    bare = text.rstrip("=")
    padded = len(bare) != len(text)
    if not _BASE64URL.fullmatch(bare) or len(bare) % 4 == 1 or (padded and len(text) % 4):
        return None
    try:
        return base64.urlsafe_b64decode(bare + "=" * (-len(bare) % 4))
    except (binascii.Error, ValueError):
        return None


def b64url_encode(raw: bytes) -> str:
    """`raw` in base64url without padding, as browsers write keys."""
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def p256_point(text: str) -> bytes | None:
    """The uncompressed P-256 point `text` encodes, or None: another length or form, or
    a point off the curve (no browser makes one, and no message could be encrypted to it)."""
    raw = b64url_decode(text)
    if raw is None or len(raw) != POINT_BYTES or raw[0] != 0x04:
        return None
    try:
        ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), raw)
    except ValueError:
        return None
    return raw


def private_key_of(text: str) -> ec.EllipticCurvePrivateKey | None:
    """The P-256 private key whose 32-byte scalar `text` encodes, or None if it encodes
    none (another length, zero, or not below the group's order)."""
    raw = b64url_decode(text)
    if raw is None or len(raw) != PRIVATE_KEY_BYTES:
        return None
    try:
        return ec.derive_private_key(int.from_bytes(raw, "big"), ec.SECP256R1())
    except ValueError:
        return None


def public_key_text(key: ec.EllipticCurvePrivateKey) -> str:
    """The application server key of `key`: its public point, uncompressed, base64url."""
    return b64url_encode(
        key.public_key().public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)
    )


def generate_private_key() -> str:
    """A new VAPID private key, as the settings and the data folder keep it."""
    key = ec.generate_private_key(ec.SECP256R1())
    return b64url_encode(key.private_numbers().private_value.to_bytes(PRIVATE_KEY_BYTES, "big"))
