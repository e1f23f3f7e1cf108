"""The daemon's own settings: where it listens, where it stores, where webhooks go.

Sources, later ones winning: built-in defaults, the settings file (``config/pushd.yaml``), the
``PUSHD_*`` environment variables of the scalar keys (``PUSHD_PORT=9000``,
``PUSHD_SIGNING_SECRET=...``), then command-line flags (passed to :func:`load` as
``overrides``). Every rejected value is reported with the file, line, column and key, like
queue.yaml errors.

Durations accept seconds (``30``, ``0.5``) or a number with a unit ``s``/``m``/``h``/``d``
(``9d``), as ``task_age_limit`` does.
"""

from __future__ import annotations

import importlib.util
import ipaddress
import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

from pushd import durations, errors
from pushd.settings import cloud_tasks
from pushd.settings.cloud_tasks import LOCATION_ID as LOCATION_ID
from pushd.settings.cloud_tasks import PROJECT_ID as PROJECT_ID
from pushd.settings.cloud_tasks import CloudTasks as CloudTasks

DEFAULT_PORT = 8460
ENV_PREFIX = "PUSHD_"
GRPC_PORT_ENV = "PUSHD_GRPC_PORT"  # cloud_tasks.grpc_port
# App Engine target forms: service, version.service, instance.version.service (SPEC 8.2)
_TARGET_NAME = re.compile(r"^(?:(?!-)[a-z\d\-]{1,100}\.){0,2}(?!-)[a-z\d\-]{1,63}$")
ROLES = ("admin", "producer", "consumer")
DURABILITY = ("full", "normal")
EVENT_LOOPS = ("auto", "uvloop", "asyncio")
#: The HTTP clients deliveries can go through (``transport``; pushd.dispatch.make_transport).
TRANSPORTS = ("h1", "aiohttp", "pyreqwest")


@dataclass(frozen=True, slots=True, kw_only=True)
class ApiToken:
    """A bearer token for the HTTP APIs and the role it grants."""

    name: str
    token: str
    role: str = "admin"  # admin: everything; producer: add tasks; consumer: lease/delete tasks
    #: Who presents the token (an email, as in queue.yaml ``acl``); pull queues with an ``acl``
    #: admit a producer or consumer token only if its identity is listed there.
    identity: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Settings:
    """Everything the daemon needs besides queue.yaml. Every field has a working default."""

    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    #: ``sqlite:///relative/path``, ``sqlite:////absolute/path``, a bare path, or (later)
    #: ``postgresql://...``.
    database: str = "pushd.sqlite3"
    queue_yaml: str = "queue.yaml"
    #: App Engine target names (``service``, ``version.service``) -> base URL.
    targets: Mapping[str, str] = field(default_factory=dict)
    #: Where a task goes when neither queue.yaml nor the task names a known target.
    default_target: str = "http://127.0.0.1:8080"
    default_dispatch_deadline_s: float = 600.0
    #: Ceiling on requests in flight to all receivers together (idle keep-alive connections,
    #: closed after 15 s unused, are kept per receiver on top).
    max_connections: int = 256
    #: Most connections the HTTP API holds; lowered at run time to fit the open-file limit
    #: (``ulimit -n``) with room kept for ``max_connections`` deliveries and the database.
    max_api_connections: int = 1000
    #: How long an API client may take to send a request head (from connecting, or from its
    #: previous answer: an idle kept-alive connection closes after it too), and then its body.
    api_read_timeout_s: float = 30.0
    shutdown_grace_s: float = 30.0
    #: While a stop waits for deliveries in flight, how often it logs what it waits for.
    shutdown_report_s: float = 5.0
    tombstone_retention_s: float = 9 * 86400.0
    dead_letter_retention_s: float = 7 * 86400.0
    #: ``full``: every acknowledged change is fsynced before the answer (survives power loss);
    #: ``normal``: it is in the WAL before the answer (survives a crash or kill -9 of pushd, not
    #: a power cut of the machine).
    durability: str = "full"
    #: ``auto``: uvloop when it is installed (it is a dependency on Linux and macOS), else
    #: asyncio's own loop; ``uvloop`` or ``asyncio`` to choose.
    event_loop: str = "auto"
    #: The HTTP client deliveries go through (pushd.dispatch.TRANSPORTS): ``h1``, pushd's own
    #: (pushd/dispatch/h1_transport.py), and ``aiohttp`` keep every delivery rule; ``pyreqwest``
    #: (pip install pyreqwest) title-cases header names and cannot pin addresses
    #: (docs/RELIABILITY.md, "Transport seam").
    transport: str = "h1"
    auth_tokens: tuple[ApiToken, ...] = ()
    #: How long a web console login lasts; logging out ends it sooner.
    console_session_s: float = 12 * 3600.0
    #: HMAC-SHA256 secret for webhook signatures; None sends no signature.
    signing_secret: str | None = None
    log_level: str = "info"
    log_format: str = "text"  # text | json
    cloud_tasks: CloudTasks = field(default_factory=CloudTasks)
    #: URL prefixes Cloud Tasks HTTP tasks may go to (``https://hooks.example.com/``); none by
    #: default: HTTP tasks are refused (pushd.dispatch.url_policy, the SSRF rules).
    http_targets: tuple[str, ...] = ()

    def target_url(self, target: str | None) -> str:
        """Base URL for an App Engine target name, or the default target."""
        if target is not None and target in self.targets:
            return self.targets[target]
        return self.default_target


_SCALARS: dict[str, type] = {
    f.name: t
    for f in fields(Settings)
    if (
        t := {
            "str": str,
            "int": int,
            "float": float,
            "str | None": str,
        }.get(str(f.type))
    )
}


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and loopback addresses (127.0.0.0/8, ::1)."""
    if host.lower() in ("localhost", "localhost."):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def parse_duration_s(value: object) -> float:
    """``30`` / ``0.5`` / ``"90s"`` / ``"15m"`` / ``"9d"`` -> seconds; ValueError if not that."""
    if isinstance(value, bool):
        raise ValueError("is a boolean, not a duration")
    if isinstance(value, int | float):
        seconds = float(value)
    else:
        found = durations.seconds(str(value), loose=True)
        if found is None:
            raise ValueError(f"{value!r} is not a duration such as 30, 90s, 15m, 12h or 9d")
        seconds = found
    if seconds < 0:
        raise ValueError(f"{value!r} is negative")
    return seconds


class _Issues:
    def __init__(self, file: str, marks: Mapping[str, tuple[int, int]]) -> None:
        self.file, self.marks, self.found = file, marks, list[errors.ConfigIssue]()

    def add(self, path: str, message: str) -> None:
        line, col = self.marks.get(path, self.marks.get(path.split(".")[0], (0, 0)))
        self.found.append(errors.ConfigIssue(self.file, line, col, path, message))


def _marks(node: yaml.Node | None, prefix: str = "") -> dict[str, tuple[int, int]]:
    """Key path -> (line, column), 1-based, for every mapping key under ``node``."""
    out: dict[str, tuple[int, int]] = {}
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            path = f"{prefix}{key_node.value}"
            out[path] = (key_node.start_mark.line + 1, key_node.start_mark.column + 1)
            out.update(_marks(value_node, path + "."))
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            path = f"{prefix.rstrip('.')}[{i}]"
            out[path] = (item.start_mark.line + 1, item.start_mark.column + 1)
            out.update(_marks(item, path + "."))
    return out


def _check_url(value: str) -> str | None:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return f"{value!r} is not an http:// or https:// base URL"
    if parts.query or parts.fragment:
        return f"{value!r} must not have a query or fragment"
    return None


def _coerce(name: str, value: Any, issues: _Issues) -> Any:
    """Validate one key; returns the cleaned value or None after recording an issue."""
    kind = _SCALARS.get(name)
    if name.endswith("_s"):
        try:
            return parse_duration_s(value)
        except ValueError as exc:
            issues.add(name, str(exc))
            return None
    if kind is int:
        if isinstance(value, bool) or not isinstance(value, int | str):
            issues.add(name, f"{value!r} is not an integer")
            return None
        try:
            return int(value)
        except ValueError:
            issues.add(name, f"{value!r} is not an integer")
            return None
    if kind is str:
        if value is None and name == "signing_secret":
            return None
        if not isinstance(value, str | int | float) or isinstance(value, bool):
            issues.add(name, f"{value!r} is not a string")
            return None
        return str(value)
    return value


def _build(raw: Mapping[str, Any], issues: _Issues) -> dict[str, Any]:
    known = {f.name for f in fields(Settings)}
    clean: dict[str, Any] = {}
    for name, value in raw.items():
        if name not in known:
            issues.add(str(name), f"unknown setting {name!r}; known: {', '.join(sorted(known))}")
            continue
        if name == "targets":
            clean[name] = _targets(value, issues)
        elif name == "auth_tokens":
            clean[name] = _tokens(value, issues)
        elif name == "cloud_tasks":
            shape = "must be a mapping such as {grpc_port: 8461}"
            clean[name] = cloud_tasks.parse(_mapping(value, issues, name, shape), issues)
        elif name == "http_targets":
            clean[name] = _http_targets(value, issues)
        else:
            clean[name] = _coerce(name, value, issues)
    return {k: v for k, v in clean.items() if v is not None or k == "signing_secret"}


def _mapping(value: Any, issues: _Issues, key: str, shape: str) -> Mapping[Any, Any]:
    """The mapping a section holds; empty when absent, or when it is not one (told to ``issues``)."""
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        issues.add(key, shape)
        return {}
    return value


def _targets(value: Any, issues: _Issues) -> dict[str, str]:
    shape = "must map target names (service or version.service) to base URLs"
    out = {}
    for name, url in _mapping(value, issues, "targets", shape).items():
        path = f"targets.{name}"
        if not isinstance(name, str) or not _TARGET_NAME.match(name):
            issues.add(path, f"{name!r} is not a target name like 'worker' or 'v2.worker'")
        elif not isinstance(url, str):
            issues.add(path, f"{url!r} is not a URL")
        elif problem := _check_url(url):
            issues.add(path, problem)
        else:
            out[name] = url.rstrip("/")
    return out


def _tokens(value: Any, issues: _Issues) -> tuple[ApiToken, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        issues.add("auth_tokens", "must be a list of {name, token, role} entries")
        return ()
    out = []
    for i, entry in enumerate(value):
        path = f"auth_tokens[{i}]"
        if not isinstance(entry, Mapping) or not isinstance(entry.get("token"), str):
            issues.add(path, "needs at least a string 'token'")
            continue
        unknown = set(entry) - {"name", "token", "role", "identity"}
        if unknown:
            issues.add(path, f"unknown key(s) {', '.join(sorted(map(str, unknown)))}")
            continue
        role = entry.get("role", "admin")
        if role not in ROLES:
            issues.add(f"{path}.role", f"{role!r} is not one of {', '.join(ROLES)}")
            continue
        if len(entry["token"]) < 16:
            issues.add(f"{path}.token", "is shorter than 16 characters; use a long random token")
            continue
        identity = entry.get("identity")
        if identity is not None and (not isinstance(identity, str) or not identity.strip()):
            issues.add(f"{path}.identity", "must be an email address or other non-empty name")
            continue
        out.append(
            ApiToken(
                name=str(entry.get("name", f"token{i}")),
                token=entry["token"],
                role=role,
                identity=identity.strip() if identity else None,
            )
        )
    return tuple(out)


def _http_targets(value: Any, issues: _Issues) -> tuple[str, ...]:
    """``http_targets``: a list of http(s) URL prefixes (pushd.dispatch.url_policy)."""
    if value is None:
        return ()
    if not isinstance(value, list):
        issues.add(
            "http_targets", "must be a list of URL prefixes such as https://hooks.example.com/"
        )
        return ()
    out = []
    for i, item in enumerate(value):
        problem = (
            f"{item!r} is not a string" if not isinstance(item, str) else check_http_target(item)
        )
        if problem:
            issues.add(f"http_targets[{i}]", problem)
        else:
            out.append(item)
    return tuple(out)


def check_http_target(prefix: str) -> str | None:
    """Why ``prefix`` cannot be an ``http_targets`` entry: an http(s) URL with a host, no user
    name, query or fragment."""
    try:
        parts = urlsplit(prefix)
        parts.port  # noqa: B018 (raises for a bad port)
    except ValueError as exc:
        return f"{prefix!r} cannot be parsed: {exc}"
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        return f"{prefix!r} is not an http:// or https:// URL with a host"
    if "@" in parts.netloc:
        return f"{prefix!r} must not carry a user name or password"
    if parts.query or parts.fragment:
        return f"{prefix!r} must not have a query or fragment"
    return None


#: Settings with a range: (name, least, most, the issue outside it). Tasks' own deadlines
#: follow App Engine (15 s to 24 h); the daemon's default may be shorter, since it is also how
#: soon a task claimed by a crashed daemon runs again.
_RANGES: tuple[tuple[str, float, float, str], ...] = (
    ("default_dispatch_deadline_s", 1, 86400, "must be between 1s and 24h"),
    ("console_session_s", 60, 30 * 86400, "must be between 1m and 30d"),
    ("shutdown_report_s", 0.1, 3600, "must be between 0.1s and 1h"),
    ("max_connections", 1, math.inf, "must be at least 1"),
    ("max_api_connections", 1, math.inf, "must be at least 1"),
    ("api_read_timeout_s", 0.1, 3600, "must be between 0.1s and 1h"),
)


def _validate(settings: Settings, issues: _Issues) -> None:
    """The checks of the settings as a whole, each issue in the order of the keys."""
    _validate_listening(settings, issues)
    for name, least, most, issue in _RANGES:
        if not least <= getattr(settings, name) <= most:
            issues.add(name, issue)
    _validate_choices(settings, issues)


def _validate_listening(settings: Settings, issues: _Issues) -> None:
    """Where the daemon listens and delivers: the port, an open host, the default target."""
    if not 0 <= settings.port <= 65535:
        issues.add("port", f"{settings.port} is not a TCP port (0-65535)")
    if not settings.auth_tokens and not is_loopback(settings.host):
        issues.add(
            "host",
            f"{settings.host!r} is not a loopback address and no auth_tokens are set, so anyone "
            "who reaches it could add, read and delete tasks; add auth_tokens (see "
            "config/pushd.yaml.example) or listen on 127.0.0.1",
        )
    grpc_port = settings.cloud_tasks.grpc_port
    if grpc_port is not None and grpc_port != 0 and grpc_port == settings.port:
        issues.add("cloud_tasks.grpc_port", f"{grpc_port} is the API's port too; choose another")
    if problem := _check_url(settings.default_target):
        issues.add("default_target", problem)


def _validate_choices(settings: Settings, issues: _Issues) -> None:
    """The settings that name one of a few choices, and the signing secret's length."""
    if settings.durability not in DURABILITY:
        issues.add("durability", f"{settings.durability!r} is not one of {', '.join(DURABILITY)}")
    if settings.event_loop not in EVENT_LOOPS:
        issues.add("event_loop", f"{settings.event_loop!r} is not one of {', '.join(EVENT_LOOPS)}")
    elif settings.event_loop == "uvloop" and importlib.util.find_spec("uvloop") is None:
        issues.add("event_loop", "uvloop is not installed: pip install uvloop, or event_loop: auto")
    if settings.transport not in TRANSPORTS:
        issues.add("transport", f"{settings.transport!r} is not one of {', '.join(TRANSPORTS)}")
    elif settings.transport == "pyreqwest" and importlib.util.find_spec("pyreqwest") is None:
        issues.add("transport", "pyreqwest is not installed: pip install pyreqwest")
    if settings.log_format not in ("text", "json"):
        issues.add("log_format", f"{settings.log_format!r} is not text or json")
    if settings.log_level.lower() not in ("debug", "info", "warning", "error"):
        issues.add("log_level", f"{settings.log_level!r} is not debug, info, warning or error")
    if settings.signing_secret is not None and len(settings.signing_secret) < 16:
        issues.add("signing_secret", "is shorter than 16 characters; use a long random secret")


def from_mapping(
    raw: Mapping[str, Any],
    *,
    file: str = "<settings>",
    marks: Mapping[str, tuple[int, int]] | None = None,
    base: Settings | None = None,
) -> Settings:
    """Apply ``raw`` on top of ``base`` (defaults if None); raise ConfigError listing every issue."""
    issues = _Issues(file, marks or {})
    clean = _build(raw, issues)
    if issues.found:
        raise errors.ConfigError(issues.found)
    start = base or Settings()
    if "cloud_tasks" in clean:
        clean["cloud_tasks"] = replace(start.cloud_tasks, **clean["cloud_tasks"])
    settings = replace(start, **clean)
    _validate(settings, issues)
    if issues.found:
        raise errors.ConfigError(issues.found)
    return settings


def load_file(path: str | Path, base: Settings | None = None) -> Settings:
    """Read a settings YAML file; errors name the file, line, column and key."""
    name = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise errors.ConfigError(
            [errors.ConfigIssue(name, 0, 0, "", f"cannot read the settings file: {exc}")]
        ) from None
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line, col = (mark.line + 1, mark.column + 1) if mark else (0, 0)
        problem = getattr(exc, "problem", None) or str(exc)
        raise errors.ConfigError(
            [errors.ConfigIssue(name, line, col, "", f"not valid YAML: {problem}")]
        ) from None
    if raw is None:
        return base or Settings()
    if not isinstance(raw, Mapping):
        raise errors.ConfigError(
            [errors.ConfigIssue(name, 1, 1, "", "must be a mapping of setting: value")]
        )
    return from_mapping(raw, file=name, marks=_marks(node), base=base)


def from_env(environ: Mapping[str, str], base: Settings | None = None) -> Settings:
    """Apply ``PUSHD_<KEY>`` variables for the scalar settings (``PUSHD_PORT``...)."""
    raw: dict[str, Any] = {
        name: environ[ENV_PREFIX + name.upper()]
        for name in _SCALARS
        if ENV_PREFIX + name.upper() in environ
    }
    if GRPC_PORT_ENV in environ:
        raw["cloud_tasks"] = {"grpc_port": environ[GRPC_PORT_ENV]}
    return from_mapping(raw, file="environment", base=base) if raw else (base or Settings())


def load(
    path: str | Path | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> Settings:
    """Defaults < settings file < ``PUSHD_*`` environment < ``overrides`` (command-line flags)."""
    settings = load_file(path) if path is not None else Settings()
    settings = from_env(os.environ if environ is None else environ, settings)
    given = {k: v for k, v in (overrides or {}).items() if v is not None}
    return from_mapping(given, file="command line", base=settings) if given else settings
