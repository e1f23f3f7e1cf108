"""The OIDC keys pushd signs Cloud Tasks' ID tokens with, where Google publishes its own, and
the operator's rotation (see :mod:`pushd.oidc` and :mod:`pushd.service.oidc`).

``/oauth2/v1/certs`` (kid -> PEM certificate), ``/oauth2/v3/certs`` (JWKS) and
``/.well-known/openid-configuration`` are open without a token: they are public keys, and a
receiver verifying a token has no pushd token to present. ``POST /api/v1/oidc/rotate``
(``pushdctl oidc-rotate``) is for admins.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, TypedDict

from pushd import oidc
from pushd.api import auth
from pushd.api import errors as api_errors
from pushd.api.keys import service_of

if TYPE_CHECKING:
    from aiohttp import web

#: As Google's certs answers: cacheable by anyone, for :data:`oidc.CERTS_MAX_AGE_S`.
CACHE_CONTROL = f"public, max-age={oidc.CERTS_MAX_AGE_S}, must-revalidate, no-transform"


class RotatedJSON(TypedDict):
    """The key that signs from now on, and every key published now (oldest first)."""

    kid: str
    published: list[str]


def _public(body: object) -> web.Response:
    response = api_errors.json_response(body)
    response.headers["Cache-Control"] = CACHE_CONTROL
    return response


async def pem_certs(request: web.Request) -> web.Response:
    return _public(oidc.pem_certs(await service_of(request).oidc.published()))


async def jwks(request: web.Request) -> web.Response:
    return _public(oidc.jwks(await service_of(request).oidc.published()))


async def discovery(request: web.Request) -> web.Response:
    """The issuer's configuration; its ``jwks_uri`` is at the address the caller reached."""
    base_url = f"{request.scheme}://{request.host}"
    return _public(oidc.discovery(service_of(request).oidc.issuer, base_url))


async def rotate(request: web.Request) -> web.Response:
    """A new key signs from now on; the old ones stay published until their tokens expire."""
    svc = service_of(request).oidc
    kid = await svc.rotate()
    published = [key.kid for key in await svc.published()]
    return api_errors.json_response(RotatedJSON(kid=kid, published=published))


ROUTES: tuple[auth.Route, ...] = (
    ("GET", "/oauth2/v1/certs", pem_certs, auth.Action.OPEN),
    ("GET", "/oauth2/v3/certs", jwks, auth.Action.OPEN),
    ("GET", "/.well-known/openid-configuration", discovery, auth.Action.OPEN),
    ("POST", "/api/v1/oidc/rotate", rotate, auth.Action.ADMIN),
)
