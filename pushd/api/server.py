"""Serving an aiohttp application on a host and port, and learning the port it got."""

from __future__ import annotations

from aiohttp import web


class Server:
    """A started HTTP server; ``url`` is where it listens (port 0 picks a free one)."""

    def __init__(self, runner: web.AppRunner, url: str) -> None:
        self._runner = runner
        self.url = url
        self._stopped = False

    @classmethod
    async def start(
        cls, app: web.Application, host: str, port: int, *, shutdown_timeout_s: float = 5.0
    ) -> Server:
        runner = web.AppRunner(
            app, access_log=None, handle_signals=False, shutdown_timeout=shutdown_timeout_s
        )
        await runner.setup()
        try:
            site = web.TCPSite(runner, host, port, reuse_address=True)
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        bound = runner.addresses[0]
        shown = f"[{bound[0]}]" if ":" in str(bound[0]) else bound[0]
        return cls(runner, f"http://{shown}:{bound[1]}")

    async def stop(self) -> None:
        if not self._stopped:
            self._stopped = True
            await self._runner.cleanup()
