"""JSON values: bytes <-> JSON, base64, RFC 3339 times, and the checks every decoder shares."""

from __future__ import annotations

import base64
import datetime
import re
from collections.abc import Mapping

import orjson

from pushd import errors

#: Largest request body the APIs read: the App Engine stub's ``MAX_REQUEST_SIZE`` (32 MiB).
MAX_REQUEST_BYTES = 32 << 20
INT32_MAX = 2**31 - 1
INT64_MAX = 2**63 - 1
_RFC3339 = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})[Tt ]([0-9]{2}):([0-9]{2}):([0-9]{2})"
    r"(?:\.([0-9]+))?(?:([Zz])|([+-])([0-9]{2}):([0-9]{2}))?"
)


def loads(body: bytes) -> object:
    """The JSON value in ``body``; :class:`errors.Error` (INVALID_REQUEST) if it is not JSON."""
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise errors.Error(f"the request body is not valid JSON: {exc}") from None


def dumps(value: object) -> bytes:
    return orjson.dumps(value)


def b64encode(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def b64decode(text: str, field: str) -> bytes:
    """Standard or URL-safe base64, padding optional; :class:`errors.InvalidTaskError` if bad."""
    cleaned = text.replace("-", "+").replace("_", "/").rstrip("=")
    try:
        return base64.b64decode(cleaned + "=" * (-len(cleaned) % 4), validate=True)
    except ValueError:  # binascii.Error, or non-ASCII text
        raise errors.InvalidTaskError(f"{field} is not valid base64") from None


def parse_rfc3339(text: str, field: str = "time") -> datetime.datetime:
    """``2024-05-01T12:00:00.5Z`` and the like as an aware datetime; no offset means UTC.

    Fractions finer than a microsecond are cut off. :class:`errors.InvalidTaskError` if bad.
    """
    match = _RFC3339.fullmatch(text)
    bad = errors.InvalidTaskError(
        f"{field} {text[:60]!r} is not an RFC 3339 time such as 2024-05-01T12:00:00Z"
    )
    if match is None:
        raise bad
    year, month, day, hour, minute, second, fraction, zulu, sign, off_h, off_m = match.groups()
    tz = datetime.UTC
    if sign is not None and not zulu:
        offset = datetime.timedelta(hours=int(off_h), minutes=int(off_m))
        try:
            tz = datetime.timezone(-offset if sign == "-" else offset)
        except ValueError:
            raise bad from None
    micro = int((fraction or "0")[:6].ljust(6, "0"))
    try:
        return datetime.datetime(
            int(year), int(month), int(day), int(hour), int(minute), int(second), micro, tz
        )
    except ValueError:
        raise bad from None


def kind(value: object) -> str:
    names = {dict: "an object", list: "a list", str: "a string", bool: "a boolean"}
    if value is None:
        return "null"
    return names.get(type(value), "a number")


def as_number(value: object) -> int | float | None:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return value
    return None


def check_fields(
    obj: Mapping[str, object], known: tuple[str, ...], field: str, error: type[errors.Error]
) -> None:
    for key in obj:
        if key not in known:
            raise error(f"{field}: unknown field {key!r}; known fields: {', '.join(known)}")
