"""OIDC ID tokens as Cloud Tasks sends them with an ``http_request``'s ``oidc_token``: minted
with pushd's own keys, and the keys as Google publishes its own.

Cloud Tasks adds ``Authorization: Bearer <JWT>``, a Google-signed ID token for a service
account. pushd cannot sign for Google, so it signs with RSA keys of its own (kept in the store,
:class:`models.SigningKey`) and publishes them in Google's three formats:
:func:`pem_certs` (``/oauth2/v1/certs``: kid -> self-signed X.509 certificate),
:func:`jwks` (``/oauth2/v3/certs``) and :func:`discovery` (``/.well-known/openid-configuration``).
A receiver pointed at those URLs (``google.oauth2.id_token.verify_token(..., certs_url=...)``,
Node's ``OAuth2Client`` with ``endpoints``) accepts pushd's tokens exactly as Google's; one
pointed at Google's never does (no kid matches), so an issuer of ``https://accounts.google.com``
fools nobody who checks the signature.

The token has the shape of a service account's ID token: header ``{alg: RS256, kid, typ: JWT}``,
claims ``iss``, ``aud``, ``azp`` and ``sub`` (a stable numeric id derived from the email, as
Google's unique ids are numeric), ``email``, ``email_verified``, ``iat`` and ``exp = iat + 1 h``.
This module is pure: no store, no clock; times are passed in (µs, as everywhere in pushd).
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import Any, TypedDict

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID

from pushd import clock, models

#: How long a token is valid, as Google's ID tokens are.
TOKEN_LIFETIME_S = 3600
#: A cached token is used until this long before it expires, so that a receiver whose clock
#: runs a little fast, or a delivery that takes its whole deadline, still sees it valid.
REUSE_MARGIN_S = 300
#: A retired key stays published this long after it stopped signing: its last token's lifetime
#: plus a margin for daemons sharing the store that learn of a rotation late (they read the keys
#: again every :data:`KEYS_REFRESH_S`) and for receivers that cache the published keys.
RETIRED_KEY_KEPT_S = TOKEN_LIFETIME_S + 900
#: How often a daemon re-reads the keys from the store (another daemon may have rotated them).
KEYS_REFRESH_S = 60
#: How long receivers may cache the published keys (``Cache-Control: public, max-age``).
#: Google says ~6 h; pushd's keys may rotate at any moment, and a new key is only useful to a
#: receiver once it has fetched it, so receivers are asked to fetch again within 5 minutes.
CERTS_MAX_AGE_S = 300
#: The most cached tokens (distinct audience and service account pairs) kept.
MAX_CACHED = 10_000
RSA_BITS = 2048
_CERT_VALID = datetime.timedelta(days=3650)


class JwkJSON(TypedDict):
    """One public key of ``/oauth2/v3/certs``."""

    kty: str
    alg: str
    use: str
    kid: str
    n: str
    e: str


class JwksJSON(TypedDict):
    """``/oauth2/v3/certs``: the keys OIDC tokens are signed with, as a JWK set."""

    keys: list[JwkJSON]


class DiscoveryJSON(TypedDict):
    """``/.well-known/openid-configuration`` of pushd as an issuer of ID tokens."""

    issuer: str
    jwks_uri: str
    response_types_supported: list[str]
    subject_types_supported: list[str]
    id_token_signing_alg_values_supported: list[str]
    claims_supported: list[str]


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _int_b64url(value: int) -> str:
    return _b64url(value.to_bytes((value.bit_length() + 7) // 8, "big"))


def _json(value: Mapping[str, Any]) -> bytes:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def new_key(now_us: int) -> models.SigningKey:
    """A fresh RSA-2048 signing key, made at ``now_us``; its kid is derived from its public key
    (a new key, a new kid). Slow (tens of ms): run it off the event loop."""
    private = rsa.generate_private_key(public_exponent=65537, key_size=RSA_BITS)
    pem = private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return models.SigningKey(kid=kid_of(private.public_key()), pem=pem, created_us=now_us)


def kid_of(public: rsa.RSAPublicKey) -> str:
    """The key id: 40 hex digits of the SHA-256 of the public key (Google's are 40 hex too)."""
    der = public.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return hashlib.sha256(der).hexdigest()[:40]


def subject(email: str) -> str:
    """A service account's stable numeric id (``sub`` and ``azp``): 21 digits derived from its
    email, as Google's unique ids are 21-digit numbers."""
    digest = hashlib.sha256(email.strip().lower().encode("utf-8")).digest()
    return "1" + str(int.from_bytes(digest[:16], "big") % 10**20).zfill(20)


def claims(*, issuer: str, audience: str, email: str, now_us: int) -> dict[str, Any]:
    """The claims of a service account's ID token issued at ``now_us`` (whole seconds)."""
    iat = now_us // clock.US_PER_SECOND
    sub = subject(email)
    return {
        "iss": issuer,
        "aud": audience,
        "azp": sub,
        "sub": sub,
        "email": email,
        "email_verified": True,
        "iat": iat,
        "exp": iat + TOKEN_LIFETIME_S,
    }


class Key:
    """One stored key, loaded: it signs (if current) and is published (until dropped)."""

    def __init__(self, stored: models.SigningKey) -> None:
        self.stored = stored
        loaded = serialization.load_pem_private_key(stored.pem, password=None)
        if not isinstance(loaded, rsa.RSAPrivateKey):
            raise ValueError(f"signing key {stored.kid!r} is not an RSA key")
        self._private = loaded

    @property
    def kid(self) -> str:
        return self.stored.kid

    def sign(self, payload: Mapping[str, Any]) -> str:
        """``payload`` as a compact RS256 JWT with this key's kid."""
        header = {"alg": "RS256", "kid": self.kid, "typ": "JWT"}
        signing_input = f"{_b64url(_json(header))}.{_b64url(_json(payload))}".encode("ascii")
        signature = self._private.sign(signing_input, padding.PKCS1v15(), hashes.SHA256())
        return f"{signing_input.decode('ascii')}.{_b64url(signature)}"

    @cached_property
    def certificate(self) -> str:
        """A self-signed X.509 certificate over the public key, in PEM (Google's v1 format).

        Verifiers only take the public key out of it; it is valid from the key's creation for
        ten years and made the same on every daemon (serial and dates come from the key)."""
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"pushd oidc {self.kid}")])
        start = clock.EPOCH + datetime.timedelta(microseconds=self.stored.created_us)
        start = start.replace(microsecond=0)
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(self._private.public_key())
            .serial_number(int(self.kid[:30], 16) or 1)
            .not_valid_before(start)
            .not_valid_after(start + _CERT_VALID)
            .sign(self._private, hashes.SHA256())
        )
        return cert.public_bytes(serialization.Encoding.PEM).decode("ascii")

    @cached_property
    def jwk(self) -> JwkJSON:
        """The public key as a JWK (Google's v3 format). ``alg`` is ``RS256``: PyJWT ignores a
        key whose alg it does not know (an emulator's ``RSA256`` left it with no usable key)."""
        numbers = self._private.public_key().public_numbers()
        return {
            "kty": "RSA",
            "alg": "RS256",
            "use": "sig",
            "kid": self.kid,
            "n": _int_b64url(numbers.n),
            "e": _int_b64url(numbers.e),
        }


def pem_certs(keys: list[Key]) -> dict[str, str]:
    """``/oauth2/v1/certs``: {kid: PEM certificate}."""
    return {key.kid: key.certificate for key in keys}


def jwks(keys: list[Key]) -> JwksJSON:
    """``/oauth2/v3/certs``: a JWK set."""
    return {"keys": [key.jwk for key in keys]}


def discovery(issuer: str, base_url: str) -> DiscoveryJSON:
    """``/.well-known/openid-configuration`` of an issuer that only signs ID tokens; its URLs
    are under ``base_url``, the address the receiver reached pushd at."""
    return {
        "issuer": issuer,
        "jwks_uri": f"{base_url}/oauth2/v3/certs",
        "response_types_supported": ["id_token"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "claims_supported": ["aud", "azp", "email", "email_verified", "exp", "iat", "iss", "sub"],
    }


@dataclass(frozen=True, slots=True)
class Cached:
    """A minted token, kept to be handed out again until shortly before it expires."""

    token: str
    kid: str
    exp_s: int


class TokenCache:
    """Tokens per (issuer, audience, email), so a delivery does not sign each time: one is
    reused while it has more than :data:`REUSE_MARGIN_S` left and was signed by the current
    key (after a rotation the next delivery gets a token of the new key)."""

    def __init__(self, *, limit: int = MAX_CACHED) -> None:
        self._tokens: dict[tuple[str, str, str], Cached] = {}
        self._limit = limit

    def token(self, key: Key, *, issuer: str, audience: str, email: str, now_us: int) -> str:
        """A token for ``audience`` and ``email``, signed by ``key``: cached, or minted now."""
        now_s = now_us // clock.US_PER_SECOND
        found = self._tokens.get((issuer, audience, email))
        if found is not None and found.kid == key.kid and now_s < found.exp_s - REUSE_MARGIN_S:
            return found.token
        payload = claims(issuer=issuer, audience=audience, email=email, now_us=now_us)
        token = key.sign(payload)
        if len(self._tokens) >= self._limit:  # the oldest entry goes (dicts keep insertion order)
            del self._tokens[next(iter(self._tokens))]
        self._tokens.pop((issuer, audience, email), None)
        self._tokens[(issuer, audience, email)] = Cached(token, key.kid, payload["exp"])
        return token

    def __len__(self) -> int:
        return len(self._tokens)
