"""API tickets: what a push delivery hands its handler so the handler can call ``/rpc_http``.

App Engine gives every request an API ticket (``X-AppEngine-Api-Ticket``); the SDK sends it with
each API call it makes while handling that request. pushd does the same for task requests, so a
handler wrapped by the SDK's ``wrap_wsgi_app`` can add follow-up tasks. A ticket is
``pushd1.<expiry, epoch seconds>.<MAC>``: an HMAC-SHA256 over the first two parts, valid until
its expiry. With API tokens configured, ``/rpc_http`` admits a call whose ticket is one of the
tokens or a valid ticket; without tokens it admits any ticket, as the rest of the API does.

The key derives from the configured secrets (the signing secret and the tokens), so every
daemon sharing one configuration accepts the tickets of the others and a restart keeps the
tickets already handed out valid; without any secret it is random per process.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from collections.abc import Iterable

from pushd import clock

PREFIX = "pushd1"
_MAC_BYTES = 24


def derive_key(material: Iterable[str]) -> bytes:
    """A ticket key from configuration secrets; random when there are none."""
    parts = sorted(material)
    if not parts:
        return secrets.token_bytes(32)
    digest = hashlib.sha256(b"pushd api tickets\x00")
    for part in parts:
        digest.update(part.encode("utf-8", "surrogatepass") + b"\x00")
    return digest.digest()


class Tickets:
    """Mints and checks API tickets with one key."""

    def __init__(self, key: bytes) -> None:
        self._key = key

    def _mac(self, expiry_s: int) -> str:
        mac = hmac.new(self._key, f"{PREFIX}.{expiry_s}".encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(mac[:_MAC_BYTES]).decode("ascii")

    def mint(self, *, now_us: int, valid_us: int) -> str:
        """A ticket valid from ``now_us`` for ``valid_us`` (rounded up to a whole second)."""
        expiry_s = -(-(now_us + valid_us) // clock.US_PER_SECOND)
        return f"{PREFIX}.{expiry_s}.{self._mac(expiry_s)}"

    def valid(self, ticket: str, *, now_us: int) -> bool:
        """Whether ``ticket`` was minted with this key and has not expired at ``now_us``."""
        prefix, _, rest = ticket.partition(".")
        expiry, _, mac = rest.partition(".")
        # only the form mint writes: ASCII digits without a leading zero ("²".isdigit() too)
        if prefix != PREFIX or not expiry.isascii() or not expiry.isdigit() or len(expiry) > 12:
            return False
        if str(int(expiry)) != expiry:
            return False
        if not hmac.compare_digest(mac.encode("ascii", "replace"), self._mac(int(expiry)).encode()):
            return False
        return now_us < int(expiry) * clock.US_PER_SECOND
