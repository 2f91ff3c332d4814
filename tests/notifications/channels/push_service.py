"""A browser's push service on loopback, doing what the real ones do with our messages.

Stored endpoints must be https URLs of public hosts, so the test's service answers as
`push.example.com` on port 443 without any rule being bent for tests: it serves TLS
with a certificate of a certificate authority made for the test, and the sender's
aiohttp connector resolves that one name to the loopback port and trusts that one
authority (`PushService.connect`). The server's own code, its link checks and its TLS
verification run as they do in production; nothing leaves the machine.

For each message it checks the VAPID header (RFC 8292): an ES256 JWT signed with the key
in `k`, for the push service's origin, expiring within 24 hours, with a contact. Then
it decrypts the body (RFC 8291, aes128gcm) with the browser's private key and auth
secret, which the test's `Browser` made and only it knows, as a real browser would.
"""

from __future__ import annotations

import json
import secrets
import socket
import ssl
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import http_ece
import jwt
from aiohttp.abc import AbstractResolver, ResolveResult
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from documents.notifications.push_keys import b64url_decode, b64url_encode

PUSH_HOST = "push.example.com"
ORIGIN = f"https://{PUSH_HOST}"
MOST_CLAIMS_LIFETIME = 24 * 3600


@dataclass(frozen=True)
class Browser:
    """One browser's subscription: its key pair and auth secret, made here as a browser
    makes them, and the endpoint its push service gave it."""

    token: str
    private_key: ec.EllipticCurvePrivateKey
    auth: bytes

    @classmethod
    def new(cls) -> Browser:
        return cls(
            secrets.token_urlsafe(12),
            ec.generate_private_key(ec.SECP256R1()),
            secrets.token_bytes(16),
        )

    @property
    def endpoint(self) -> str:
        return f"{ORIGIN}/push/{self.token}"

    @property
    def p256dh(self) -> str:
        raw = self.private_key.public_key().public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        )
        return b64url_encode(raw)

    def subscription(self) -> dict[str, Any]:
        """What `subscription.toJSON()` gives the web app."""
        return {
            "endpoint": self.endpoint,
            "expirationTime": None,
            "keys": {"p256dh": self.p256dh, "auth": b64url_encode(self.auth)},
        }


@dataclass(frozen=True)
class Received:
    """A message the push service took, verified and decrypted."""

    token: str
    claims: dict[str, Any]
    signing_key: str
    """The `k` of the VAPID header: the application server key it was signed with."""
    headers: dict[str, str]
    message: dict[str, Any]


@dataclass
class PushService:
    port: int
    authority: ssl.SSLContext
    """Trusts the test's certificate authority alone."""
    browsers: dict[str, Browser] = field(default_factory=dict)
    answers: dict[str, int] = field(default_factory=dict)
    """The status a browser's endpoint answers with; 201 unless set."""
    received: list[Received] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)
    """Why messages were refused: a bad signature or claims, undecryptable content."""

    def browser(self) -> Browser:
        made = Browser.new()
        self.browsers[made.token] = made
        return made

    def connect(self) -> aiohttp.BaseConnector:
        """The sender's connector: `push.example.com:443` is this service."""
        return aiohttp.TCPConnector(resolver=_Loopback(self.port), ssl=self.authority)

    async def push(self, request: Request) -> Response:
        browser = self.browsers.get(request.path_params["token"])
        if browser is None:
            return Response(status_code=404)
        try:
            received = _verified(request, browser, await request.body())
        except Exception as error:
            self.refused.append(f"{browser.token}: {type(error).__name__}: {error}")
            return Response(status_code=400)
        self.received.append(received)
        return Response(status_code=self.answers.get(browser.token, 201))


def _verified(request: Request, browser: Browser, body: bytes) -> Received:
    scheme, _, parameters = request.headers["authorization"].partition(" ")
    assert scheme.lower() == "vapid", scheme
    values = dict(part.strip().split("=", 1) for part in parameters.split(","))
    point = b64url_decode(values["k"])
    assert point is not None
    signer = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), point)
    claims: dict[str, Any] = jwt.decode(
        values["t"],
        signer,
        algorithms=["ES256"],
        audience=ORIGIN,
        options={"require": ["aud", "exp", "sub"]},
    )
    assert claims["exp"] <= time.time() + MOST_CLAIMS_LIFETIME, claims
    assert claims["sub"], claims
    assert request.headers["content-encoding"] == "aes128gcm"
    plain = http_ece.decrypt(
        body, private_key=browser.private_key, auth_secret=browser.auth, version="aes128gcm"
    )
    return Received(
        token=browser.token,
        claims=claims,
        signing_key=values["k"],
        headers=dict(request.headers),
        message=json.loads(plain),
    )


class _Loopback(AbstractResolver):
    """Resolves the test's push service, and nothing else, to its loopback port."""

    def __init__(self, port: int) -> None:
        self.port = port

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        if (host, port) != (PUSH_HOST, 443):
            raise OSError(f"{host}:{port} is not the test's push service")
        return [
            ResolveResult(
                hostname=host,
                host="127.0.0.1",
                port=self.port,
                family=socket.AF_INET,
                proto=0,
                flags=socket.AI_NUMERICHOST,
            )
        ]

    async def close(self) -> None:
        return None


def app(service: PushService) -> Starlette:
    return Starlette(routes=[Route("/push/{token}", service.push, methods=["POST"])])


@dataclass(frozen=True)
class Certificates:
    authority: Path
    certificate: Path
    key: Path


def certificates(folder: Path) -> Certificates:
    """A certificate authority made for the test, and its certificate for PUSH_HOST."""
    now = datetime.now(UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "gigql test push CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage(cert_sign=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    leaf = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, PUSH_HOST)]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(PUSH_HOST)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(cert_sign=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False
        )
        .sign(ca_key, hashes.SHA256())
    )
    made = Certificates(folder / "ca.pem", folder / "push.pem", folder / "push-key.pem")
    made.authority.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    made.certificate.write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
    made.key.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return made


def _key_usage(*, cert_sign: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=not cert_sign,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=cert_sign,
        crl_sign=cert_sign,
        encipher_only=False,
        decipher_only=False,
    )
