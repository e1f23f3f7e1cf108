"""API tickets: what a push delivery hands its handler so the handler can call ``/rpc_http``.

App Engine gives every request an API ticket (``X-AppEngine-Api-Ticket``); the SDK sends it with
each API call it makes while handling that request. pushd does the same for task requests, so a
handler wrapped by the SDK's ``wrap_wsgi_app`` can add follow-up tasks. A ticket is
``pushd1.<expiry, epoch seconds>.<MAC>``: an HMAC-SHA256 over the first two parts, valid until
its expiry. With API tokens configured, ``/rpc_http`` admits a call whose ticket is one of the
tokens or a valid ticket; without tokens it admits any ticket, as the rest of the API does.

The key is random per daemon process and never leaves it, so nobody can mint tickets: not
even a client holding every configured secret. (With PostgreSQL the daemons of one database
share one random key, kept in it, so a ticket from one is good at all; then whoever can read
the database can mint tickets.) A ticket carries no more than it needs: it acts
as a ``producer`` token (add tasks, read queue statistics), enough for a handler to add
follow-up tasks, and it cannot claim a lifetime longer than the longest dispatch deadline
allows. With SQLite, tickets do not survive a restart of the daemon that minted them.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

from pushd import clock, models

PREFIX = "pushd1"
_MAC_BYTES = 24
#: The longest a ticket may be valid: the longest dispatch deadline plus 5 minutes.
MAX_VALID_US = models.MAX_DISPATCH_DEADLINE_US + 300 * clock.US_PER_SECOND


class Tickets:
    """Mints and checks API tickets with one key."""

    def __init__(self, key: bytes | None = None, *, max_valid_us: int = MAX_VALID_US) -> None:
        self._key = key if key is not None else secrets.token_bytes(32)
        self._max_valid_us = max_valid_us
        self._last: tuple[int, str] = (-1, "")  # the last (expiry, MAC): deliveries share seconds

    def _mac(self, expiry_s: int) -> str:
        last_expiry, last_mac = self._last
        if expiry_s == last_expiry:
            return last_mac
        mac = hmac.new(self._key, f"{PREFIX}.{expiry_s}".encode(), hashlib.sha256).digest()
        text = base64.urlsafe_b64encode(mac[:_MAC_BYTES]).decode("ascii")
        self._last = (expiry_s, text)
        return text

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
        expiry_us = int(expiry) * clock.US_PER_SECOND
        return now_us < expiry_us <= now_us + self._max_valid_us + clock.US_PER_SECOND
