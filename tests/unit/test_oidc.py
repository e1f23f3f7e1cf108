"""OIDC tokens (pushd.oidc, pushd.service.oidc) on a FakeClock over the memory store: the
exact claims, the cache, the rotation timeline, and verification by Google's own libraries
(google-auth with the v1 PEM certificates, PyJWT with the v3 JWKS) in process."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import jwt
import pytest
from google.auth import exceptions as google_exceptions
from google.auth import jwt as google_jwt

from pushd import clock, errors, oidc, settings
from pushd.service import oidc as service_oidc
from pushd.store import memory

T0 = 1_700_000_000_000_000  # FakeClock's default start, µs
T0_S = T0 // clock.US_PER_SECOND
US = clock.US_PER_SECOND
EMAIL = "sa@proj.iam.gserviceaccount.com"
AUD = "https://worker.example.com/task"


def _part(token: str, index: int) -> dict[str, Any]:
    part = token.split(".")[index]
    decoded: dict[str, Any] = json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))
    return decoded


def _minter(
    store: memory.MemoryStore | None = None, fake: clock.FakeClock | None = None
) -> tuple[service_oidc.Oidc, clock.FakeClock, memory.MemoryStore]:
    fake = fake or clock.FakeClock(T0)
    store = store or memory.MemoryStore()
    return service_oidc.Oidc(store=store, clock=fake, issuer="http://pushd.test"), fake, store


async def test_token_has_the_header_and_claims_of_a_service_account_id_token() -> None:
    minter, _, _ = _minter()
    token = await minter.token(audience=AUD, email=EMAIL)
    key = await minter.current()
    assert _part(token, 0) == {"alg": "RS256", "kid": key.kid, "typ": "JWT"}
    sub = oidc.subject(EMAIL)
    assert _part(token, 1) == {
        "iss": "http://pushd.test",
        "aud": AUD,
        "azp": sub,
        "sub": sub,
        "email": EMAIL,
        "email_verified": True,
        "iat": T0_S,
        "exp": T0_S + 3600,
    }


def test_subject_is_a_stable_21_digit_number_per_email() -> None:
    sub = oidc.subject(EMAIL)
    assert len(sub) == 21
    assert sub.isdigit()
    assert sub.startswith("1")
    assert oidc.subject(EMAIL.upper()) == sub
    assert oidc.subject("other@proj.iam.gserviceaccount.com") != sub


async def test_google_auth_verifies_with_the_v1_certs_and_rejects_another_audience() -> None:
    minter, _, _ = _minter()
    token = await minter.token(audience=AUD, email=EMAIL)
    certs = oidc.pem_certs(await minter.published())
    # verify_token(..., certs_url=...) fetches these certs and calls jwt.decode with them
    claims = google_jwt.decode(token, certs=certs, audience=AUD, clock_skew_in_seconds=10**9)
    assert claims["email"] == EMAIL
    with pytest.raises(google_exceptions.InvalidValue, match="wrong audience"):
        google_jwt.decode(
            token, certs=certs, audience="https://elsewhere", clock_skew_in_seconds=10**9
        )


async def test_pyjwt_verifies_with_the_v3_jwks() -> None:
    minter, _, _ = _minter()
    token = await minter.token(audience=AUD, email=EMAIL)
    keys = jwt.PyJWKSet.from_dict(oidc.jwks(await minter.published()))
    key = keys[_part(token, 0)["kid"]]
    assert key.algorithm_name == "RS256"
    claims = jwt.decode(
        token, key=key.key, algorithms=["RS256"], audience=AUD, options={"verify_exp": False}
    )
    assert claims["sub"] == oidc.subject(EMAIL)
    with pytest.raises(jwt.InvalidAudienceError):
        jwt.decode(
            token, key=key.key, algorithms=["RS256"], audience="x", options={"verify_exp": False}
        )


async def test_a_token_is_reused_until_five_minutes_before_it_expires() -> None:
    minter, fake, _ = _minter()
    first = await minter.token(audience=AUD, email=EMAIL)
    fake.advance((3600 - 300) * US - 1)  # 1 µs before the reuse margin starts
    assert await minter.token(audience=AUD, email=EMAIL) == first
    fake.advance(1)
    renewed = await minter.token(audience=AUD, email=EMAIL)
    assert renewed != first
    assert _part(renewed, 1)["iat"] == T0_S + 3300
    assert _part(renewed, 1)["exp"] == T0_S + 3300 + 3600
    assert await minter.mint(AUD, EMAIL) == renewed  # the delivery's minter: the same cache
    # each audience and each service account has its own token
    assert await minter.token(audience="https://other", email=EMAIL) != renewed
    assert await minter.token(audience=AUD, email="b@p.iam.gserviceaccount.com") != renewed


def test_the_cache_keeps_at_most_its_limit() -> None:
    key = oidc.Key(oidc.new_key(T0))
    cache = oidc.TokenCache(limit=2)
    for aud in ("a", "b", "c"):
        cache.token(key, issuer="i", audience=aud, email=EMAIL, now_us=T0)
    assert len(cache) == 2


async def test_rotation_signs_with_the_new_key_and_keeps_the_old_one_published() -> None:
    minter, fake, store = _minter()
    old_token = await minter.token(audience=AUD, email=EMAIL)
    old_kid = _part(old_token, 0)["kid"]
    fake.advance(10 * US)
    new_kid = await minter.rotate()
    assert new_kid != old_kid
    stored = await store.signing_keys()
    assert [(k.kid, k.retired_us) for k in stored] == [(old_kid, T0 + 10 * US), (new_kid, None)]
    new_token = await minter.token(audience=AUD, email=EMAIL)  # the cache does not hand the old
    assert _part(new_token, 0)["kid"] == new_kid
    published = [k.kid for k in await minter.published()]
    assert published == [old_kid, new_kid]
    certs = oidc.pem_certs(await minter.published())
    for token in (old_token, new_token):
        google_jwt.decode(token, certs=certs, audience=AUD, clock_skew_in_seconds=10**9)
    # published until 1 h + 15 min after it stopped signing (its last token's life and a margin)
    fake.advance(oidc.RETIRED_KEY_KEPT_S * US)
    assert [k.kid for k in await minter.published()] == [old_kid, new_kid]
    fake.advance(oidc.KEYS_REFRESH_S * US)
    assert [k.kid for k in await minter.published()] == [new_kid]
    assert [k.kid for k in await store.signing_keys()] == [new_kid]  # dropped from the store


async def test_two_minters_on_one_store_share_the_key_and_learn_of_a_rotation() -> None:
    fake = clock.FakeClock(T0)
    store = memory.MemoryStore()
    a, _, _ = _minter(store, fake)
    b, _, _ = _minter(store, fake)
    assert (await a.current()).kid == (await b.current()).kid
    kid = await a.rotate()
    assert (await b.current()).kid != kid  # b reads the keys again only after a minute
    fake.advance(oidc.KEYS_REFRESH_S * US)
    assert (await b.current()).kid == kid
    assert [k.kid for k in await b.published()] == [k.kid for k in await a.published()]


async def test_the_first_key_is_kept_when_another_is_offered_without_rotation() -> None:
    store = memory.MemoryStore()
    first, second = oidc.new_key(T0), oidc.new_key(T0)
    await store.add_signing_key(first, rotate=False)
    await store.add_signing_key(second, rotate=False)
    assert [k.kid for k in await store.signing_keys()] == [first.kid]


def test_discovery_names_the_issuer_and_the_jwks_under_the_address_reached() -> None:
    doc = oidc.discovery("https://accounts.google.com", "http://127.0.0.1:9")
    assert doc["issuer"] == "https://accounts.google.com"
    assert doc["jwks_uri"] == "http://127.0.0.1:9/oauth2/v3/certs"
    assert doc["id_token_signing_alg_values_supported"] == ["RS256"]


def test_the_certificate_is_the_same_on_every_daemon() -> None:
    stored = oidc.new_key(T0)
    assert oidc.Key(stored).certificate == oidc.Key(stored).certificate
    assert oidc.Key(stored).jwk["alg"] == "RS256"  # not "RSA256": PyJWT would drop the key


def test_the_issuer_setting(tmp_path: Path) -> None:
    path = tmp_path / "pushd.yaml"
    path.write_text("cloud_tasks:\n  oidc_issuer: https://accounts.google.com\n")
    assert settings.load(path, environ={}).cloud_tasks.oidc_issuer == "https://accounts.google.com"
    assert settings.load(None, environ={}).cloud_tasks.oidc_issuer is None


@pytest.mark.parametrize("value", ["", "two words", 5, ["x"]])
def test_a_bad_issuer_is_refused_naming_the_setting(value: object) -> None:
    with pytest.raises(errors.ConfigError) as caught:
        settings.from_mapping({"cloud_tasks": {"oidc_issuer": value}})
    assert "cloud_tasks.oidc_issuer: " in str(caught.value)
    assert "is not an issuer such as 'https://accounts.google.com'" in str(caught.value)
