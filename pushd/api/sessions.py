"""The web console's logins (:class:`Sessions`), which :mod:`pushd.api.auth` accepts on the
console's pages."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pushd import settings

#: The most console sessions a daemon keeps; logging in beyond it ends the oldest.
MAX_SESSIONS = 10_000


@dataclass(frozen=True, slots=True)
class Session:
    token: settings.ApiToken
    expires_us: int


class Sessions:
    """The console's logins: a random id per login, kept in this daemon's memory, that opens
    the console pages (never the API) as the token it was opened with, until it expires
    (``console_session_s``) or its holder logs out.

    The cookie carries only the id, so it is worthless once the session ends, and a restart
    ends every session. With several daemons behind one address, a browser must keep talking
    to the daemon it logged in to (or log in again): sessions are not shared through the
    store, which keeps a stolen cookie's reach to one daemon and one lifetime.
    """

    def __init__(self, lifetime_us: int) -> None:
        self.lifetime_us = lifetime_us
        self._open: dict[str, Session] = {}  # insertion order: oldest first

    def __len__(self) -> int:
        return len(self._open)

    def open(self, token: settings.ApiToken, now_us: int) -> str:
        """A new session for ``token``; its id is the cookie's value."""
        self._drop_expired(now_us)
        while len(self._open) >= MAX_SESSIONS:
            del self._open[next(iter(self._open))]
        session_id = secrets.token_hex(32)
        self._open[session_id] = Session(token, now_us + self.lifetime_us)
        return session_id

    def find(self, session_id: str | None, now_us: int) -> settings.ApiToken | None:
        """The token of the live session ``session_id``; None if unknown, ended or expired."""
        session = self._open.get(session_id or "")
        if session is None:
            return None
        if now_us >= session.expires_us:
            del self._open[session_id or ""]
            return None
        return session.token

    def close(self, session_id: str | None) -> bool:
        """End a session (logging out); whether it was open."""
        return self._open.pop(session_id or "", None) is not None

    def _drop_expired(self, now_us: int) -> None:
        expired = [k for k, s in self._open.items() if now_us >= s.expires_us]
        for key in expired:
            del self._open[key]
