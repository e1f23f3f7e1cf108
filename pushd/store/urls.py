"""Database URLs: which backend a URL names, and how it is shown (a password masked)."""

from __future__ import annotations


def describe_url(url: str) -> str:
    """``url`` fit for logs and messages: a PostgreSQL password is masked."""
    scheme, sep, rest = url.partition("://")
    if sep and "@" in rest:
        credentials, _, host = rest.rpartition("@")
        user, colon, _password = credentials.partition(":")
        rest = f"{user}{':***' if colon else ''}@{host}"
    return f"{scheme}{sep}{rest}"


def is_postgres(url: str) -> bool:
    return url.startswith(("postgres://", "postgresql://"))


#: What ``--db`` may be; anything else with a ``scheme://`` is refused, not read as a folder.
SCHEMES = ("sqlite", "postgres", "postgresql", "memory")


def sqlite_path(url: str) -> str:
    """The file of a SQLite ``url`` (``sqlite:///rel``, ``sqlite:////abs`` or a bare path)."""
    if url.startswith("sqlite:///"):
        path = url.removeprefix("sqlite:///")
        return "/" + path.removeprefix("/") if url.startswith("sqlite:////") else path
    return url.removeprefix("sqlite://")
