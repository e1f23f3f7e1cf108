"""OIDC tokens against a real daemon on its SQLite file (and two on one PostgreSQL): the keys
it publishes, checked by Google's own verifiers, in Python (google-auth ``verify_token`` with
``certs_url`` at /oauth2/v1/certs and /oauth2/v3/certs) and in Node (google-auth-library's
``OAuth2Client.verifyIdToken`` with ``endpoints`` and ``issuers``).

Here the token is minted by the same code a delivery calls (:class:`pushd.service.oidc.Oidc`)
in this process on the daemon's own database file while the daemon is stopped (it holds the
file's lock while it runs); the daemon then restarts on that file and must publish the key that
signed it. Tokens delivered with ``http_request`` tasks: tests/integration/test_cloudtasks_http.py.
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import jwt
import pytest
from google.auth import exceptions as google_exceptions
from google.auth.transport import requests as google_requests
from google.oauth2 import id_token

from pushd import clock
from pushd.service import oidc as service_oidc
from pushd.store import open_store
from tests.conftest import fresh_database
from tests.integration.harness import Daemon, api
from tests.integration.test_cloudtasks_node import node_client as node_client
from tests.processes import free_port

if TYPE_CHECKING:
    import aiohttp

    from tests.integration.conftest import StartDaemon
    from tests.integration.harness import Receiver

QUEUE_YAML = "queue:\n- name: jobs\n  rate: 5/s\n"
EMAIL = "tasks@proj.iam.gserviceaccount.com"
AUD = "https://worker.example.com/tasks/run"
GOOGLE = "https://accounts.google.com"


async def mint(db: Path, issuer: str, audience: str = AUD) -> str:
    """A token from the daemon's database file, as a delivery mints one (the daemon stopped)."""
    store = await open_store(str(db))
    try:
        minter = service_oidc.Oidc(store=store, clock=clock.SystemClock(), issuer=issuer)
        return await minter.token(audience=audience, email=EMAIL)
    finally:
        await store.close()


def verify(token: str, certs_url: str, audience: str = AUD) -> dict[str, Any]:
    """google-auth's verifier, as a receiver calls it (blocking: run it in a thread)."""
    claims: dict[str, Any] = id_token.verify_token(
        token, google_requests.Request(), audience=audience, certs_url=certs_url
    )
    return claims


async def kids(session: aiohttp.ClientSession, daemon: Daemon) -> list[str]:
    status, body = await api(session, daemon, "GET", "/oauth2/v3/certs")
    assert status == 200, body
    return [key["kid"] for key in body["keys"]]


async def restart(daemon: Daemon) -> Daemon:
    assert await daemon.stop() == 0
    return await daemon.start()


async def test_published_keys_verify_a_token_after_a_restart_and_a_rotation(
    start_daemon: StartDaemon, session: aiohttp.ClientSession, tmp_path: Path
) -> None:
    settings = tmp_path / "pushd.yaml"
    settings.write_text(f"cloud_tasks:\n  oidc_issuer: {GOOGLE}\n")
    daemon = await start_daemon(QUEUE_YAML, extra_args=["--settings", str(settings)])
    assert " listening " in f" {daemon.log[0]} "  # still the first line
    (kid,) = await kids(session, daemon)  # the first use makes the key
    assert len(daemon.events("oidc_key_created")) == 1
    async with session.get(daemon.url + "/oauth2/v1/certs") as resp:
        assert resp.headers["Cache-Control"] == "public, max-age=300, must-revalidate, no-transform"
        pem = await resp.json()
    assert list(pem) == [kid]
    assert pem[kid].startswith("-----BEGIN CERTIFICATE-----\n")
    status, discovery = await api(session, daemon, "GET", "/.well-known/openid-configuration")
    assert status == 200
    assert discovery["issuer"] == GOOGLE
    assert discovery["jwks_uri"] == daemon.url + "/oauth2/v3/certs"
    assert discovery["id_token_signing_alg_values_supported"] == ["RS256"]

    assert await daemon.stop() == 0
    assert daemon.db is not None
    token = await mint(daemon.db, GOOGLE)
    daemon = await daemon.start()
    assert await kids(session, daemon) == [kid]  # the restart kept the key
    assert len(daemon.events("oidc_key_created")) == 1  # the log holds both runs

    # the PEM certificates go through google-auth's own RSA verifier, the JWKS through PyJWT
    refusals = {
        "/oauth2/v1/certs": (google_exceptions.InvalidValue, "wrong audience"),
        "/oauth2/v3/certs": (jwt.InvalidAudienceError, "Audience doesn't match"),
    }
    for certs, (refused, why) in refusals.items():
        claims = await asyncio.to_thread(verify, token, daemon.url + certs)
        assert claims["email"] == EMAIL
        assert claims["iss"] == GOOGLE
        assert claims["exp"] - claims["iat"] == 3600
        with pytest.raises(refused, match=why):
            await asyncio.to_thread(verify, token, daemon.url + certs, "https://elsewhere/")

    status, rotated = await api(session, daemon, "POST", "/api/v1/oidc/rotate")
    assert status == 200, rotated
    assert rotated["kid"] != kid
    assert rotated["published"] == [kid, rotated["kid"]]
    daemon = await restart(daemon)
    assert await kids(session, daemon) == [kid, rotated["kid"]]
    # the token of the retired key is still accepted, and the new key signs from now on
    await asyncio.to_thread(verify, token, daemon.url + "/oauth2/v1/certs")
    assert await daemon.stop() == 0
    new_token = await mint(daemon.db, GOOGLE)
    daemon = await daemon.start()
    claims = await asyncio.to_thread(verify, new_token, daemon.url + "/oauth2/v3/certs")
    assert claims["sub"] == claims["azp"]
    assert len(claims["sub"]) == 21


async def test_pushdctl_rotates_the_key(
    start_daemon: StartDaemon, session: aiohttp.ClientSession
) -> None:
    daemon = await start_daemon(QUEUE_YAML)
    (first,) = await kids(session, daemon)
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "pushd",
        "oidc-rotate",
        "--server",
        daemon.url,
        "--json",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 0, err.decode()
    answer = json.loads(out)
    assert answer["published"] == [first, answer["kid"]]
    assert await kids(session, daemon) == [first, answer["kid"]]
    assert daemon.events("oidc_key_rotated")


@pytest.mark.timeout(300)  # the first run installs the Node packages
async def test_node_oauth2client_accepts_the_token(
    start_daemon: StartDaemon, session: aiohttp.ClientSession, node_client: Path
) -> None:
    # a fixed port: the default issuer is the daemon's URL, the same after the restart
    daemon = await start_daemon(QUEUE_YAML, extra_args=["--port", str(free_port())])
    status, discovery = await api(session, daemon, "GET", "/.well-known/openid-configuration")
    assert status == 200
    issuer = discovery["issuer"]
    assert issuer == daemon.url
    assert await daemon.stop() == 0
    assert daemon.db is not None
    token = await mint(daemon.db, issuer)
    daemon = await daemon.start()
    proc = await asyncio.create_subprocess_exec(
        "node",
        str(node_client / "verify_oidc.js"),
        daemon.url,
        daemon.url,
        token,
        AUD,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, err.decode()
    seen = json.loads(out)
    assert "error" not in seen["accepted"], seen
    assert seen["accepted"]["payload"]["email"] == EMAIL
    assert seen["accepted"]["payload"]["aud"] == AUD
    assert "Wrong recipient" in seen["wrongAudience"]["error"]
    assert "Invalid issuer" in seen["defaultIssuers"]["error"]


async def test_daemons_on_one_postgresql_publish_one_key(
    pg_server: Any, tmp_path: Path, receiver: Receiver, session: aiohttp.ClientSession
) -> None:
    url = await fresh_database(pg_server)
    daemons = [
        Daemon(tmp_path, QUEUE_YAML, default_target=receiver.url, db_url=url) for _ in range(2)
    ]
    try:
        await asyncio.gather(*(d.start() for d in daemons))
        # both asked at once: both may make a key, one is stored and both publish it
        first, second = await asyncio.gather(*(kids(session, d) for d in daemons))
        assert first == second
        assert len(first) == 1
        assert len([line for d in daemons for line in d.events("oidc_key_created")]) == 1
    finally:
        for d in daemons:
            await d.kill()
