"""The shortcuts of the add path (issue 18) decide exactly what the long way decides.

Every task added goes through :func:`encoding.split_url` and :func:`wire.decode_task`; both
skip work for the common case (a plain URL, a task of a few fields). These properties compare
the shortcut with the long way on inputs built from the characters that matter.
"""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pushd import encoding, errors, models, wire

#: Pieces that decide how a URL splits or fails: separators, dot segments (also escaped),
#: brackets, blanks, controls, non-ASCII, and ordinary characters.
URL_PIECES = [*"/?#.%:@[]az09-_~ \t\n\x00\x7f\u00e9\ud800", "..", "%2e", "%2E%2e", "//"]
URLS = st.lists(st.sampled_from(URL_PIECES), max_size=10).map("".join)


def outcome(fn: object, *args: object, **kw: object) -> tuple[str, object]:
    try:
        return "ok", fn(*args, **kw)  # type: ignore[operator]
    except errors.Error as exc:
        return type(exc).__name__, str(exc)


def long_way(url: str, max_path_length: int) -> tuple[str, str]:
    """split_url without its shortcuts: urlsplit and every check, dot segments always."""
    path, query = encoding._split_unusual_url(url)
    if len(path) > max_path_length:
        raise errors.InvalidUrlError(
            f"url path must be at most {max_path_length} characters; found {len(path)}"
        )
    if encoding.remove_dot_segments(path) is None:
        raise errors.InvalidUrlError(
            f"url {encoding.show(url)} climbs above the base path of its target with '..' "
            "segments (also written %2e%2e); write the path without them"
        )
    return path, query


@settings(max_examples=3000, deadline=None)
@given(
    URLS.map(lambda s: "/" + s) | URLS,
    st.sampled_from([4, 8, models.MAX_URL_LENGTH]),
)
def test_split_url_decides_what_urlsplit_and_every_check_decide(url: str, limit: int) -> None:
    assert outcome(encoding.split_url, url, max_path_length=limit) == outcome(long_way, url, limit)


@pytest.mark.parametrize(
    "url",
    [
        *("/a/b?c=d", "/", "/?", "/a:b", "/a?b?c", "/%41", "/a/./b", "/a/%2E%2e/b"),
        *("/../x", "/%2e%2e/x", "/a/%2E./../x", "//h/x", "/a#b", "/a b", "/é"),
    ],
)
def test_split_url_examples(url: str) -> None:
    assert outcome(encoding.split_url, url, max_path_length=100) == outcome(long_way, url, 100)


#: One wrong value per field of a task object; TASK_ORDER is the order the fields are checked.
BAD = {
    "payload": 1,
    "payload_base64": 1,
    "method": 1,
    "name": 1,
    "url": 1,
    "headers": 1,
    "params": 1,
    "countdown": "soon",
    "eta": [],
    "eta_us": "x",
    "retry_options": 1,
    "target": 1,
    "tag": 1,
    "dispatch_deadline": "x",
    "dispatch_deadline_us": "x",
    "namespace": 1,
}
TASK_ORDER = list(BAD)


@pytest.mark.parametrize(("first", "second"), list(itertools.combinations(TASK_ORDER, 2)))
def test_the_first_bad_field_in_order_is_the_error(first: str, second: str) -> None:
    """Fields are checked in a fixed order whatever the object's own order, given or not."""
    obj = {second: BAD[second], first: BAD[first]}
    with pytest.raises(errors.Error) as caught:
        wire.decode_task(obj, default_method="POST", where="tasks[3]")
    if {first, second} == {"payload", "payload_base64"}:
        assert "give payload or payload_base64, not both" in str(caught.value)
    else:
        assert str(caught.value).startswith(f"tasks[3].{first} "), str(caught.value)


def test_null_fields_are_absent_and_common_fields_need_nothing_else() -> None:
    got = wire.decode_task(
        {"name": "n", "url": "/u", "payload": "p", "headers": None, "namespace": None},
        default_method="POST",
    )
    assert got == wire.decode_task(
        {"name": "n", "url": "/u", "payload": "p"}, default_method="POST"
    )
    assert (got.name, got.method, got.url, got.payload, got.namespace) == (
        "n",
        "POST",
        "/u",
        "p",
        "",
    )
    assert (got.headers, got.params, got.eta_us, got.tag, got.target) == (None,) * 5


def test_an_unknown_field_is_named() -> None:
    with pytest.raises(errors.InvalidTaskError, match="unknown field 'colour'"):
        wire.decode_task({"name": "n", "colour": "red"}, default_method="POST")
