"""The OIDC signing keys in every store (memory, SQLite, PostgreSQL): one current key, kept
across a reopen, a rotation retiring the current one, expired keys dropped."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from pushd import models
from pushd.store import base, open_store
from tests.conftest import fresh_database

T0 = 1_700_000_000_000_000
HOUR = 3600 * 1_000_000


async def _url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "postgres":
        return await fresh_database(request.getfixturevalue("pg_server"))
    return "memory:" if request.param == "memory" else str(tmp_path / "pushd.sqlite3")


@pytest.fixture(params=["memory", "sqlite", "postgres"])
async def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    return await _url(request, tmp_path)


@pytest.fixture(params=["sqlite", "postgres"])
async def durable_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    return await _url(request, tmp_path)


@pytest.fixture
async def store(url: str) -> AsyncIterator[base.Store]:
    s = await open_store(url)
    yield s
    await s.close()


def key(kid: str, created_us: int = T0) -> models.SigningKey:
    return models.SigningKey(kid=kid, pem=f"pem of {kid}".encode(), created_us=created_us)


async def test_the_first_key_stays_current_when_another_comes_without_rotation(
    store: base.Store,
) -> None:
    assert await store.signing_keys() == []
    await store.add_signing_key(key("a"), rotate=False)
    await store.add_signing_key(key("b"), rotate=False)  # another daemon, starting at once
    assert await store.signing_keys() == [key("a")]


async def test_rotation_retires_the_current_key_and_drop_removes_expired_ones(
    store: base.Store,
) -> None:
    await store.add_signing_key(key("a"), rotate=False)
    await store.add_signing_key(key("b", T0 + HOUR), rotate=True)
    await store.add_signing_key(key("c", T0 + 2 * HOUR), rotate=True)
    assert await store.signing_keys() == [
        models.SigningKey(kid="a", pem=b"pem of a", created_us=T0, retired_us=T0 + HOUR),
        models.SigningKey(kid="b", pem=b"pem of b", created_us=T0 + HOUR, retired_us=T0 + 2 * HOUR),
        key("c", T0 + 2 * HOUR),
    ]
    assert await store.drop_signing_keys(retired_before_us=T0 + 2 * HOUR) == 1
    assert [k.kid for k in await store.signing_keys()] == ["b", "c"]
    assert await store.drop_signing_keys(retired_before_us=T0 + 9 * HOUR) == 1
    assert await store.drop_signing_keys(retired_before_us=T0 + 9 * HOUR) == 0
    assert await store.signing_keys() == [key("c", T0 + 2 * HOUR)]  # the current one stays


async def test_keys_survive_a_reopen(durable_url: str) -> None:
    url = durable_url
    s = await open_store(url)
    try:
        await s.add_signing_key(key("a"), rotate=False)
    finally:
        await s.close()
    s = await open_store(url)
    try:
        assert await s.signing_keys() == [key("a")]
    finally:
        await s.close()
