"""The OIDC signing keys as every API and delivery sees them: one current key signs, the keys
still needed are published, and both come from the store so every daemon of one store agrees.

The first use makes the first key (RSA generation runs off the event loop); a key made at
the same moment by another daemon on the same PostgreSQL loses (the store keeps one current
key) and both go on with the stored one. :meth:`Oidc.rotate` makes a new key sign from then
on; the old one stays published for :data:`oidc.RETIRED_KEY_KEPT_S` (its last token's
lifetime and a margin) and is then dropped. Each daemon re-reads the keys every
:data:`oidc.KEYS_REFRESH_S` (on the monotonic clock), so a rotation made by another daemon
reaches its tokens and its published keys within that.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

import anyio

from pushd import logs, oidc

if TYPE_CHECKING:
    from pushd import clock, models
    from pushd.store import base

US = 1_000_000


class Oidc:
    """Mints ID tokens with the store's current key and lists the keys to publish."""

    def __init__(
        self, *, store: base.SigningKeys, clock: clock.Clock, issuer: str | None = None
    ) -> None:
        self._store = store
        self._clock = clock
        #: ``iss`` of every token; the daemon sets its own URL when the settings name none.
        self.issuer = issuer or "http://127.0.0.1"
        self._keys: dict[str, oidc.Key] = {}  # loaded, by kid (certificates computed once)
        self._stored: list[models.SigningKey] = []
        self._read_at_us: int | None = None  # monotonic
        self._lock = asyncio.Lock()
        self._cache = oidc.TokenCache()

    async def token(self, *, audience: str, email: str) -> str:
        """An ID token for ``email`` with ``aud`` ``audience``: cached while it has more than
        :data:`oidc.REUSE_MARGIN_S` left, else signed now by the current key."""
        current = await self.current()
        now_us = self._clock.now_us()
        return self._cache.token(
            current, issuer=self.issuer, audience=audience, email=email, now_us=now_us
        )

    async def mint(self, audience: str, email: str) -> str:
        """:meth:`token` with positional arguments: the delivery's minter (the ``Authorization``
        of an HTTP task with an ``oidc_token``, at each attempt)."""
        return await self.token(audience=audience, email=email)

    async def current(self) -> oidc.Key:
        """The key that signs now (made on first use)."""
        await self.refresh()
        return self._load(self._stored[-1])

    async def published(self) -> list[oidc.Key]:
        """The keys a receiver needs: the current one and those retired too recently for
        every token they signed to have expired, oldest first."""
        await self.refresh()
        cutoff = self._cutoff_us()
        return [
            self._load(k) for k in self._stored if k.retired_us is None or k.retired_us >= cutoff
        ]

    async def rotate(self) -> str:
        """A new key signs from now on; returns its kid. The old one stays published."""
        async with self._lock:
            key = await anyio.to_thread.run_sync(oidc.new_key, self._clock.now_us())
            await self._store.add_signing_key(key, rotate=True)
            logs.event("oidc_key_rotated", kid=key.kid)
            await self._read()
        return key.kid

    async def refresh(self, *, force: bool = False) -> None:
        """Read the keys again if they were read over :data:`oidc.KEYS_REFRESH_S` ago (or
        ``force``), making the first key if the store holds none and dropping expired ones."""
        async with self._lock:
            if force or self._stale():
                await self._read()

    def _stale(self) -> bool:
        if self._read_at_us is None or not self._stored:
            return True
        return self._clock.monotonic_us() - self._read_at_us >= oidc.KEYS_REFRESH_S * US

    async def _read(self) -> None:
        stored = await self._store.signing_keys()
        if not any(k.retired_us is None for k in stored):
            key = await anyio.to_thread.run_sync(oidc.new_key, self._clock.now_us())
            await self._store.add_signing_key(key, rotate=False)
            stored = await self._store.signing_keys()
            if any(k.kid == key.kid for k in stored):
                logs.event("oidc_key_created", kid=key.kid)
        cutoff = self._cutoff_us()
        if any(k.retired_us is not None and k.retired_us < cutoff for k in stored):
            dropped = await self._store.drop_signing_keys(retired_before_us=cutoff)
            if dropped:
                logs.event("oidc_keys_dropped", keys=dropped)
            stored = await self._store.signing_keys()
        self._stored = stored
        self._keys = {k.kid: v for k in stored if (v := self._keys.get(k.kid)) is not None}
        self._read_at_us = self._clock.monotonic_us()

    def _cutoff_us(self) -> int:
        return self._clock.now_us() - oidc.RETIRED_KEY_KEPT_S * US

    def _load(self, stored: models.SigningKey) -> oidc.Key:
        key = self._keys.get(stored.kid)
        if key is None:
            key = self._keys[stored.kid] = oidc.Key(stored)
        return key
