"""The ``cloud_tasks:`` block of the settings: the Cloud Tasks API's listener, issuer, token,
and the projects and locations it answers for (re-exported by :mod:`pushd.settings`)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pushd.settings import _Issues

#: Cloud Tasks' PROJECT_ID and LOCATION_ID alphabets (pushd.cloudtasks.names parses with them).
PROJECT_ID = r"[A-Za-z0-9\-:.]{1,100}"
LOCATION_ID = r"[A-Za-z0-9_-]{1,100}"


@dataclass(frozen=True, slots=True, kw_only=True)
class CloudTasks:
    """The Cloud Tasks API (``cloud_tasks:``): REST is always served under ``/v2/`` and
    ``/v2beta3/`` on the API port; ``grpc_port`` (also ``--grpc-port``, ``PUSHD_GRPC_PORT``)
    turns the gRPC listener on at the daemon's host (0 picks a free port); ``oidc_issuer`` is
    the ``iss`` of the OIDC tokens pushd mints (default: the daemon's URL; receivers that only
    accept Google's issuer need ``https://accounts.google.com``); ``projects`` and ``locations``,
    when given, are the only ones the API answers for (empty: any, as Google's emulators do)."""

    grpc_port: int | None = None
    oidc_issuer: str | None = None
    #: Sent as ``Authorization: Bearer <it>`` with HTTP tasks that ask for an ``oauth_token``
    #: (pushd mints no OAuth tokens); None sends them without Authorization.
    oauth_token: str | None = None
    projects: tuple[str, ...] = ()
    locations: tuple[str, ...] = ()


def _port(value: object) -> int | None:
    """A TCP port given as a whole number or its digits; None if it is not one."""
    if isinstance(value, bool) or not isinstance(value, int | str):
        return None
    if not str(value).strip().isdigit() or not 0 <= int(value) <= 65535:
        return None
    return int(value)


def parse(value: Mapping[Any, Any], issues: _Issues) -> dict[str, Any]:
    """The ``cloud_tasks`` keys given (applied over the current values by
    :func:`pushd.settings.from_mapping`)."""
    out: dict[str, Any] = {}
    for key, item in value.items():
        path = f"cloud_tasks.{key}"
        if key == "oidc_issuer":
            _oidc_issuer(item, path, issues, out)
        elif key in _CLOUD_TASKS_IDS:
            out[key] = _ids(item, path, _CLOUD_TASKS_IDS[key], issues)
        elif key == "oauth_token":
            if item is not None and not isinstance(item, str):
                issues.add(path, f"{item!r} is not a string")
            else:
                out[key] = item
        elif key != "grpc_port":
            issues.add(path, f"unknown setting {key!r}; known: {', '.join(_CLOUD_TASKS_KEYS)}")
        elif item is None:
            out[key] = None
        elif _port(item) is None:
            issues.add(path, f"{item!r} is not a TCP port (0-65535)")
        else:
            out[key] = _port(item)
    return out


_CLOUD_TASKS_IDS = {
    "projects": (re.compile(PROJECT_ID), "a project ID such as 'my-project' ([A-Za-z0-9-:.])"),
    "locations": (re.compile(LOCATION_ID), "a location ID such as 'us-central1' ([A-Za-z0-9_-])"),
}
_CLOUD_TASKS_KEYS = ("grpc_port", "locations", "oauth_token", "oidc_issuer", "projects")


def _ids(
    item: object, path: str, rule: tuple[re.Pattern[str], str], issues: _Issues
) -> tuple[str, ...]:
    """``cloud_tasks.projects`` or ``.locations``: a list of IDs (empty or null: any)."""
    if item is None:
        return ()
    if not isinstance(item, list):
        issues.add(path, f"must be a list of IDs, each {rule[1]}")
        return ()
    out: list[str] = []
    for i, entry in enumerate(item):
        if not isinstance(entry, str) or not rule[0].fullmatch(entry):
            issues.add(f"{path}[{i}]", f"{entry!r} is not {rule[1]}, 1 to 100 characters")
        elif entry not in out:
            out.append(entry)
    return tuple(out)


def _oidc_issuer(item: object, path: str, issues: _Issues, out: dict[str, Any]) -> None:
    """``cloud_tasks.oidc_issuer``: a URL such as ``https://accounts.google.com`` (or None)."""
    if item is None:
        out["oidc_issuer"] = None
    elif not isinstance(item, str) or not item.strip() or any(c.isspace() for c in item):
        issues.add(path, f"{item!r} is not an issuer such as 'https://accounts.google.com'")
    else:
        out["oidc_issuer"] = item
