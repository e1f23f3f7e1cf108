"""The HTTP parts of a task: relative URL, headers, form parameters and their encodings.

These are the pieces of App Engine's ``taskqueue.Task`` constructor that turn what a producer
wrote into bytes and strings (SPEC 1.5–1.7), kept apart from the rules that decide which
combination is allowed (:mod:`pushd.tasks`). Every function raises :mod:`pushd.errors` classes
only, never ``TypeError``/``ValueError``, except :func:`extract_params`, which raises
``ValueError`` exactly where App Engine's ``Task.extract_params`` does.
"""

from __future__ import annotations

import re
import urllib.parse
from collections.abc import Iterable, Mapping, Sequence

from pushd import errors

#: The header App Engine's client adds to every task: the namespace the task was added from.
NAMESPACE_HEADER = "X-AppEngine-Current-Namespace"
CONTENT_TYPE = "Content-Type"
FORM_CONTENT_TYPE = "application/x-www-form-urlencoded"
TEXT_CONTENT_TYPE = "text/plain; charset=utf-8"
#: User ``X-AppEngine-*`` headers that survive an add (SPEC 10, Q5); the rest are dropped.
KEPT_APPENGINE_HEADERS = frozenset(
    {"x-appengine-current-namespace", "x-appengine-default-namespace", "x-appengine-failfast"}
)
#: Headers that describe one connection, not the request (RFC 9110 7.6.1): forwarding them from
#: a task would tamper with the dispatcher's own connection (``Upgrade``, ``TE``, ``Connection``)
#: or leak a proxy's credentials, so a task that sets one is refused at add.
HOP_BY_HOP_HEADERS = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "upgrade",
    }
)
#: App Engine's size formula counts ``len(": \r\n")`` per header line (SPEC 1.11).
HEADER_OVERHEAD = 4

# RFC 9110 field-name token. App Engine accepts any name; pushd refuses names the dispatcher could
# not send, since such a task would otherwise fail on every attempt until it runs out of retries.
_TOKEN_RE = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_BAD_VALUE_CHARS = frozenset("\r\n\x00")
_MAX_SHOWN = 60

HeadersInput = Mapping[str, str | Sequence[str]] | Sequence[tuple[str, str]]
ParamScalar = str | bytes | int | float
ParamsInput = Mapping[str, ParamScalar | Sequence[ParamScalar]]
Headers = list[tuple[str, str]]


def show(value: object) -> str:
    """``repr(value)`` cut to a readable length for error messages."""
    text = repr(value)
    return text if len(text) <= _MAX_SHOWN else text[: _MAX_SHOWN - 3] + "..."


def utf8(text: str, field: str) -> bytes:
    """``text`` as UTF-8; lone surrogates are an :class:`errors.InvalidTaskError` naming ``field``."""
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        raise errors.InvalidTaskError(f"{field} {show(text)} is not valid Unicode") from None


# ------------------------------------------------------------------ URL (SPEC 1.5)


def split_url(url: str, *, max_path_length: int) -> tuple[str, str]:
    """Split a task's relative URL into (path, query); :class:`errors.InvalidUrlError` if bad.

    Same checks as App Engine's ``_parse_relative_url`` plus the path-length limit, with one
    deliberate difference: Python's ``urlsplit`` silently deletes tabs and newlines and strips
    leading blanks, so App Engine would store ``'/a\\nb'`` as ``'/ab'``; pushd rejects whitespace
    and control characters instead of changing the URL behind the producer's back.
    """
    if _PLAIN_URL.fullmatch(url) is not None:
        # The common case, without urlsplit: what it would find here is exactly this split.
        path, _, query = url.partition("?")
    else:
        path, query = _split_unusual_url(url)
    if len(path) > max_path_length:
        raise errors.InvalidUrlError(
            f"url path must be at most {max_path_length} characters; found {len(path)}"
        )
    if ("/." in path or "/%" in path) and remove_dot_segments(path) is None:
        raise errors.InvalidUrlError(
            f"url {show(url)} climbs above the base path of its target with '..' segments "
            "(also written %2e%2e); write the path without them"
        )
    return path, query


#: A relative URL ``urlsplit`` reads as a path and a query only, and whose every check
#: before the path's length passes: '/' then printable ASCII (no '/' right after the first),
#: no blank, control character, '#', '[' or ']'. Anything else takes the long way.
_PLAIN_URL = re.compile(r"/(?!/)[!$%&'()*+,\-./0-9:;=?@A-Z_a-z~]*")
#: A character that stops :func:`split_url` (before ``urlsplit``, which deletes some of them).
_BLANK_OR_CONTROL = re.compile(r"[\x00-\x20\x7f]")


def _split_unusual_url(url: str) -> tuple[str, str]:
    """(path, query) of a URL :data:`_PLAIN_URL` does not match, checked in App Engine's order."""
    if _BLANK_OR_CONTROL.search(url) is not None:
        raise errors.InvalidUrlError(
            f"url {show(url)} must not contain whitespace or control characters"
        )
    utf8(url, "url")
    try:
        scheme, netloc, path, query, fragment = urllib.parse.urlsplit(url)
    except ValueError as exc:  # e.g. "//[::1" (an unterminated IPv6 host)
        raise errors.InvalidUrlError(f"url {show(url)} cannot be parsed: {exc}") from None
    if scheme or netloc:
        raise errors.InvalidUrlError(
            f"url {show(url)} must be relative: it cannot have a scheme or host"
        )
    if fragment:
        raise errors.InvalidUrlError(f"url {show(url)} cannot have a #fragment")
    if not path.startswith("/"):
        raise errors.InvalidUrlError(f"url {show(url)} must have a path starting with '/'")
    return path, query


_DOT = re.compile(r"%2e", re.IGNORECASE)


def remove_dot_segments(path: str) -> str | None:
    """``path`` with its ``.`` and ``..`` segments resolved (RFC 3986 5.2.4), or None when a
    ``..`` climbs above its first ``/``.

    The dispatcher appends a task's path to its target's base URL and the HTTP client then
    resolves dot-segments, percent-encoded ones (``%2e``) included, so a path that climbs
    above its root would be delivered outside the base (``http://h/app`` + ``/../admin`` is
    ``http://h/admin``). Segments are compared with ``%2e`` decoded, as the client does.
    """
    kept: list[str] = []
    segments = path.split("/")[1:]
    for i, segment in enumerate(segments):
        dots = _DOT.sub(".", segment)
        last = i == len(segments) - 1
        if dots == ".":
            if last:
                kept.append("")
        elif dots == "..":
            if not kept:
                return None
            kept.pop()
            if last:
                kept.append("")
        else:
            kept.append(segment)
    return "/" + "/".join(kept)


# ------------------------------------------------------------------ headers (SPEC 1.6, 3.3)


def normalize_headers(headers: object) -> Headers:
    """The producer's headers as an ordered list of (name, value) pairs.

    A mapping behaves like App Engine's case-insensitive dict: names that differ only in case
    replace each other (the last one wins and moves to the end), and a sequence value repeats the
    header. A sequence of pairs is taken as given, repeats included, like the repeated ``header``
    entries of App Engine's add RPC (App Engine's *client* would collapse them like a mapping).
    """
    if headers is None:
        return []
    pairs: Headers = []
    if isinstance(headers, Mapping):
        for name, value in headers.items():
            _check_header_name(name)
            lowered = name.lower()
            pairs = [(k, v) for k, v in pairs if k.lower() != lowered]
            values = [value] if isinstance(value, str) else value
            if not isinstance(values, Sequence) or isinstance(values, bytes):
                raise errors.InvalidTaskError(
                    f"header {name!r} must be a string or a sequence of strings; got {show(value)}"
                )
            pairs.extend((name, _check_header_value(name, v)) for v in values)
        return pairs
    if isinstance(headers, Sequence) and not isinstance(headers, str | bytes):
        for item in headers:
            if not isinstance(item, tuple | list) or len(item) != 2:
                raise errors.InvalidTaskError(
                    f"headers must be a mapping or a sequence of (name, value) pairs; got {show(item)}"
                )
            name, value = item
            _check_header_name(name)
            pairs.append((name, _check_header_value(name, value)))
        return pairs
    raise errors.InvalidTaskError(
        f"headers must be a mapping or a sequence of (name, value) pairs; got {show(headers)}"
    )


def _check_header_name(name: object) -> None:
    if not isinstance(name, str) or not _TOKEN_RE.fullmatch(name):
        raise errors.InvalidTaskError(f"header name {show(name)} is not a valid HTTP field name")
    if name.lower() in HOP_BY_HOP_HEADERS:
        raise errors.InvalidTaskError(
            f"header {name!r} is a hop-by-hop header: it describes one HTTP connection, so a "
            "task cannot carry it to its handler; remove it"
        )


def _check_header_value(name: str, value: object) -> str:
    if not isinstance(value, str):
        raise errors.InvalidTaskError(f"header {name!r} value must be a string; got {show(value)}")
    if _BAD_VALUE_CHARS.intersection(value):
        raise errors.InvalidTaskError(
            f"header {name!r} value {show(value)} must not contain CR, LF or NUL"
        )
    utf8(value, f"header {name!r} value")
    return value


def has_header(headers: Headers, name: str) -> bool:
    # A loop, not any(<generator>): this runs a few times for every task added.
    lowered = name.lower()
    for k, _ in headers:  # noqa: SIM110
        if k.lower() == lowered:
            return True
    return False


def set_default_header(headers: Headers, name: str, value: str) -> None:
    """Append ``name: value`` unless a header of that name (any case) is present."""
    if not has_header(headers, name):
        headers.append((name, value))


def kept_headers(headers: Headers) -> tuple[tuple[str, str], ...]:
    """The headers that are stored: user ``X-AppEngine-*`` headers dropped except Q5's three."""
    kept = []
    for k, v in headers:
        lowered = k.lower()
        if not lowered.startswith("x-appengine-") or lowered in KEPT_APPENGINE_HEADERS:
            kept.append((k, v))
    return tuple(kept)


# ------------------------------------------------------------------ params (SPEC 1.7)


def encode_params(params: object) -> str:
    """``urlencode`` over the flattened params, as App Engine's ``_flatten_params`` does.

    Keys and str values are UTF-8; bytes values are taken as they are; numbers become ``str(n)``
    (so ``True`` is ``'True'``, like App Engine); a list or tuple value repeats the key.
    App Engine also turns ``None`` and nested lists into their ``str()``; pushd refuses them.
    """
    if not isinstance(params, Mapping):
        raise errors.InvalidTaskError(f"params must be a mapping; got {show(params)}")
    flat: list[tuple[bytes, bytes]] = []
    for key, value in params.items():
        if isinstance(key, bytes):
            key_bytes = key
        elif isinstance(key, str):
            key_bytes = utf8(key, "params key")
        else:
            raise errors.InvalidTaskError(f"params key {show(key)} must be a string")
        if isinstance(value, list | tuple):
            flat.extend((key_bytes, _param_bytes(key, v)) for v in value)
        else:
            flat.append((key_bytes, _param_bytes(key, value)))
    return urllib.parse.urlencode(flat)


def _param_bytes(key: object, value: object) -> bytes:
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return utf8(value, f"params[{key!r}]")
    if isinstance(value, int | float):
        return str(value).encode("ascii")
    raise errors.InvalidTaskError(
        f"params[{key!r}] must be str, bytes, a number or a list of them; got {show(value)}"
    )


def extract_params(form: bytes | str) -> dict[str, bytes | list[bytes]]:
    """Parse ``application/x-www-form-urlencoded`` data as App Engine's ``extract_params`` does.

    ``parse_qsl(keep_blank_values=True, strict_parsing=True)``: malformed data raises
    ``ValueError``; a key seen once maps to its value, a repeated key to the list of values.
    Values are the exact percent-decoded bytes and keys are decoded as UTF-8. (App Engine returns
    bytes keys when it parses a payload and str keys when it parses a URL, and fails with
    ``UnicodeEncodeError`` on a payload whose values decode to non-ASCII characters.)
    """
    raw = form.encode("utf-8") if isinstance(form, str) else form
    if not raw:
        return {}
    # Latin-1 maps every byte to one character and back, so percent-decoded bytes survive intact.
    pairs = urllib.parse.parse_qsl(
        raw.decode("ascii" if isinstance(form, bytes) else "latin-1"),
        keep_blank_values=True,
        strict_parsing=True,
        encoding="latin-1",
    )
    grouped: dict[str, list[bytes]] = {}
    for key, value in pairs:
        grouped.setdefault(key.encode("latin-1").decode("utf-8"), []).append(
            value.encode("latin-1")
        )
    return {k: v[0] if len(v) == 1 else v for k, v in grouped.items()}


# ------------------------------------------------------------------ size (SPEC 1.11)


def task_size(
    *, method: str, payload: bytes, relative_url: str, headers: Iterable[tuple[str, str]]
) -> int:
    """App Engine's task size: the number compared with the 100 KiB / 1 MiB limits.

    ``len(method) + len(payload) + len(relative_url) + Σ (len(name) + len(value) + 4)`` with
    header names and values counted in UTF-8 bytes and the URL in characters, where
    ``relative_url`` leaves out the ``/_ah/queue/<queue>`` prefix of a default-URL task.
    """
    return len(method) + len(payload) + len(relative_url) + headers_size(headers)


def headers_size(headers: Iterable[tuple[str, str]]) -> int:
    """The headers' part of :func:`task_size`."""
    size = 0
    for k, v in headers:
        size += len(k.encode("utf-8")) + len(v.encode("utf-8")) + HEADER_OVERHEAD
    return size
