"""Where HTTP tasks may go: the ``http_targets`` prefixes and the address checks (SSRF).

A Cloud Tasks HTTP task carries its own absolute URL, so anyone allowed to create tasks could
make pushd send requests into its own network: the cloud metadata service, admin ports, the
database host, pushd itself (CLOUDTASKS.md 8). pushd refuses that by default:

* at creation, the URL must start with one of the ``http_targets`` prefixes (none by
  default: HTTP tasks are refused until the operator lists where they may go). A prefix is
  compared by parts, never as text: same scheme, same host (case-insensitive), same port (the
  scheme's default when none is written) and a path under the prefix's path, so
  ``http://a.example/`` never admits ``http://a.example.evil.example/`` or
  ``http://a.example@evil.example/``;
* at every attempt, again (the settings may have changed), then the host is resolved and every
  address checked: loopback, private (RFC 1918, ULA), link-local, the metadata addresses,
  shared (CGNAT), multicast, unspecified, NAT64, 6to4 and every other address that is not
  globally routable are refused unless a prefix names that very address literally, with the
  same port (``http://127.0.0.1:8080/``); a host *name* never unlocks them, since DNS can say
  anything. The request then goes to the checked address (``Request.connect_to``), never
  resolved a second time, so a name that rebinds between the check and the connection cannot
  slip through.

Redirects are never followed (no transport follows one).
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import urllib.parse
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

#: The setting this module enforces, named in every refusal.
SETTING = "http_targets"
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
#: (host, port) -> the addresses it resolves to, as text.
Resolver = Callable[[str, int], Awaitable[list[str]]]

_DEFAULT_PORTS = {"http": 80, "https": 443}
_METADATA = frozenset(
    {ipaddress.ip_address("169.254.169.254"), ipaddress.ip_address("fd00:ec2::254")}
)
_SPECIAL_V6 = (
    (ipaddress.ip_network("64:ff9b::/96"), "NAT64"),
    (ipaddress.ip_network("64:ff9b:1::/48"), "NAT64"),
    (ipaddress.ip_network("2002::/16"), "6to4"),
)
_SHARED = ipaddress.ip_network("100.64.0.0/10")


async def system_resolver(host: str, port: int) -> list[str]:
    """The host's addresses from the system's resolver (A and AAAA)."""
    infos = await asyncio.get_running_loop().getaddrinfo(
        host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP
    )
    return [str(info[4][0]) for info in infos]


def forbidden_range(address: IPAddress) -> str | None:
    """The kind of special range ``address`` is in (``loopback``, ``private``...), or None for
    a globally routable one."""
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return forbidden_range(address.ipv4_mapped) or "IPv4-mapped"
        for network, kind in _SPECIAL_V6:
            if address in network:
                return kind
    checks = (
        (address in _METADATA, "metadata"),
        (address.is_loopback, "loopback"),
        (address.is_link_local, "link-local"),
        (address.is_multicast, "multicast"),
        (address.is_unspecified, "unspecified"),
        (isinstance(address, ipaddress.IPv4Address) and address in _SHARED, "shared (CGNAT)"),
        (address.is_private, "private"),
        (not address.is_global, "reserved"),
    )
    return next((kind for hit, kind in checks if hit), None)


def _ip(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


@dataclass(frozen=True, slots=True)
class _Parts:
    scheme: str
    host: str  # lower case, IPv6 without brackets
    port: int
    path: str


def _parts(url: str) -> _Parts | None:
    """The parts a prefix is compared on; None if ``url`` is not an http(s) URL with a host."""
    try:
        split = urllib.parse.urlsplit(url)
        port = split.port
    except ValueError:
        return None
    scheme = split.scheme.lower()
    if scheme not in _DEFAULT_PORTS or not split.hostname or "@" in split.netloc:
        return None
    return _Parts(scheme, split.hostname.lower(), port or _DEFAULT_PORTS[scheme], split.path or "/")


@dataclass(frozen=True, slots=True)
class Vetted:
    """The attempt may go: to ``address`` (connect there, never resolving the host again)."""

    address: str


@dataclass(frozen=True, slots=True)
class Refused:
    """The attempt may not go: ``kind`` is ``forbidden`` (the policy) or ``dns``."""

    kind: str
    message: str


@dataclass(frozen=True, slots=True)
class UrlPolicy:
    """The ``http_targets`` prefixes, and the resolver the attempts' checks use."""

    prefixes: tuple[str, ...] = ()
    resolver: Resolver = field(default=system_resolver, compare=False)

    def _matching(self, url: str) -> _Parts | None:
        """The parts of the first prefix ``url`` is under, or None."""
        target = _parts(url)
        if target is None:
            return None
        for prefix in self.prefixes:
            p = _parts(prefix)
            if p is None or (p.scheme, p.host, p.port) != (target.scheme, target.host, target.port):
                continue
            if target.path.startswith(p.path) or (
                p.path.endswith("/") and target.path == p.path[:-1]
            ):
                return p
        return None

    def refusal(self, url: str) -> str | None:
        """Why a task may not be created for ``url`` (naming the setting), or None."""
        if self._matching(url) is not None:
            return None
        if not self.prefixes:
            return (
                f"HTTP tasks are off: the {SETTING} setting lists no URL prefixes; add one "
                f"that {url!r} starts with (e.g. 'https://hooks.example.com/') to allow it"
            )
        return (
            f"url {url!r} starts with none of the {SETTING} prefixes "
            f"({', '.join(self.prefixes)}); pushd only sends HTTP tasks there"
        )

    def _named(self, address: IPAddress, port: int) -> bool:
        """Whether a prefix names ``address`` literally, with ``port``."""
        for prefix in self.prefixes:
            p = _parts(prefix)
            if p is not None and p.port == port and _ip(p.host) == address:
                return True
        return False

    async def vet(self, url: str) -> Vetted | Refused:
        """Check ``url`` for one attempt: under a prefix, every address of its host allowed."""
        problem = self.refusal(url)
        target = _parts(url)
        if problem is not None or target is None:
            return Refused("forbidden", problem or f"url {url!r} is not an http(s) URL")
        literal = _ip(target.host)
        if literal is not None:
            found = [literal]
        else:
            try:
                found = [
                    ipaddress.ip_address(a.split("%", 1)[0]) for a in await self._resolve(target)
                ]
            except (OSError, ValueError) as exc:
                return Refused("dns", f"cannot resolve {target.host!r}: {exc}")
            if not found:
                return Refused("dns", f"{target.host!r} has no address")
        for address in found:
            kind = forbidden_range(address)
            if kind is not None and not self._named(address, target.port):
                return Refused(
                    "forbidden",
                    f"{target.host} is {address}, a {kind} address: refused unless a "
                    f"{SETTING} prefix names that address itself (http://{_shown(address)}:"
                    f"{target.port}/)",
                )
        return Vetted(str(found[0]))

    async def _resolve(self, target: _Parts) -> Sequence[str]:
        return await self.resolver(target.host, target.port)


def _shown(address: IPAddress) -> str:
    return f"[{address}]" if address.version == 6 else str(address)
