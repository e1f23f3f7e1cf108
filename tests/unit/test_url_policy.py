"""Where HTTP tasks may go (pushd.dispatch.url_policy): the ``http_targets`` prefixes at
creation, the address checks at every attempt, with a fake resolver (no DNS)."""

from __future__ import annotations

import ipaddress

import pytest

from pushd.dispatch import url_policy
from pushd.dispatch.url_policy import Refused, UrlPolicy, Vetted


class FakeResolver:
    """Answers from a table, one answer list per call in turn (the last one repeats), and
    records every lookup: DNS that rebinds between two attempts."""

    def __init__(self, answers: dict[str, list[list[str]]]) -> None:
        self.answers = answers
        self.lookups: list[tuple[str, int]] = []

    async def __call__(self, host: str, port: int) -> list[str]:
        self.lookups.append((host, port))
        queue = self.answers[host]
        if not queue:
            raise OSError(f"no such host {host}")
        return queue.pop(0) if len(queue) > 1 else queue[0]


def policy(*prefixes: str, **answers: list[list[str]]) -> tuple[UrlPolicy, FakeResolver]:
    resolver = FakeResolver({k.replace("_", "."): v for k, v in answers.items()})
    return UrlPolicy(prefixes, resolver), resolver


@pytest.mark.parametrize(
    ("url", "allowed"),
    [
        ("https://hooks.example.com/a/b?x=1", True),
        ("https://HOOKS.example.com/a", True),  # hosts compare without case
        ("https://hooks.example.com:443/a", True),  # the scheme's default port, written
        ("https://hooks.example.com/", True),
        ("http://hooks.example.com/a", False),  # another scheme
        ("https://hooks.example.com:8443/a", False),  # another port
        ("https://hooks.example.com.evil.example/a", False),
        ("https://hooks.example.com@evil.example/a", False),  # a user name, not the host
        ("https://evil.example/https://hooks.example.com/", False),
    ],
)
def test_prefixes_compare_by_parts_not_as_text(url: str, allowed: bool) -> None:
    p, _ = policy("https://hooks.example.com/")
    assert (p.refusal(url) is None) is allowed


def test_a_prefix_path_admits_only_what_is_under_it() -> None:
    p, _ = policy("http://127.0.0.1:8080/hooks/")
    assert p.refusal("http://127.0.0.1:8080/hooks/a") is None
    assert p.refusal("http://127.0.0.1:8080/hooks") is None
    assert p.refusal("http://127.0.0.1:8080/hooksx") is not None
    assert p.refusal("http://127.0.0.1:8080/admin") is not None


def test_no_prefixes_refuses_every_http_task_naming_the_setting() -> None:
    refusal = UrlPolicy().refusal("https://hooks.example.com/")
    assert refusal is not None
    assert "http_targets" in refusal
    assert "lists no URL prefixes" in refusal
    other = UrlPolicy(("https://a.example/",)).refusal("https://b.example/")
    assert other is not None
    assert "http_targets" in other
    assert "https://a.example/" in other


@pytest.mark.parametrize(
    ("address", "kind"),
    [
        ("127.0.0.1", "loopback"),
        ("::1", "loopback"),
        ("10.1.2.3", "private"),
        ("172.16.0.1", "private"),
        ("192.168.1.1", "private"),
        ("fd12::1", "private"),  # ULA
        ("169.254.169.254", "metadata"),
        ("fd00:ec2::254", "metadata"),
        ("169.254.1.1", "link-local"),
        ("fe80::1", "link-local"),
        ("100.64.0.1", "shared (CGNAT)"),
        ("224.0.0.1", "multicast"),
        ("ff02::1", "multicast"),
        ("0.0.0.0", "unspecified"),
        ("::", "unspecified"),
        ("::ffff:127.0.0.1", "loopback"),  # IPv4-mapped: its IPv4 address decides
        ("64:ff9b::a00:1", "NAT64"),
        ("2002:a00:1::", "6to4"),
        ("192.0.2.1", "private"),  # documentation range (is_private in Python)
        ("240.0.0.1", "private"),  # reserved
        ("8.8.8.8", None),
        ("2001:4860:4860::8888", None),
    ],
)
def test_special_ranges(address: str, kind: str | None) -> None:
    assert url_policy.forbidden_range(ipaddress.ip_address(address)) == kind


async def test_a_public_host_goes_to_the_address_checked() -> None:
    p, resolver = policy("https://hooks.example.com/", hooks_example_com=[["93.184.216.34"]])
    assert await p.vet("https://hooks.example.com/a") == Vetted("93.184.216.34")
    assert resolver.lookups == [("hooks.example.com", 443)]


async def test_a_name_resolving_to_loopback_is_refused_though_its_prefix_is_listed() -> None:
    """``localhost`` in http_targets does not unlock 127.0.0.1: only a prefix naming the
    address itself does (DNS can say anything)."""
    p, _ = policy("http://localhost:8080/", localhost=[["127.0.0.1"]])
    refused = await p.vet("http://localhost:8080/a")
    assert isinstance(refused, Refused)
    assert refused.kind == "forbidden"
    assert "127.0.0.1, a loopback address" in refused.message
    assert "http://127.0.0.1:8080/" in refused.message


async def test_a_prefix_naming_the_address_literally_allows_it() -> None:
    p, resolver = policy("http://127.0.0.1:8080/", "http://[::1]:8080/")
    assert await p.vet("http://127.0.0.1:8080/a") == Vetted("127.0.0.1")
    assert await p.vet("http://[::1]:8080/a") == Vetted("::1")
    assert resolver.lookups == []  # an address is never resolved


async def test_a_literal_prefix_also_unlocks_a_name_resolving_to_it_on_that_port_only() -> None:
    p, _ = policy(
        "http://127.0.0.1:8080/",
        "http://localhost:8080/",
        "http://localhost:9090/",
        localhost=[["127.0.0.1"]],
    )
    assert await p.vet("http://localhost:8080/a") == Vetted("127.0.0.1")
    refused = await p.vet("http://localhost:9090/a")
    assert isinstance(refused, Refused)
    assert refused.kind == "forbidden"


async def test_every_address_of_a_name_is_checked() -> None:
    p, _ = policy("https://mixed.example/", mixed_example=[["93.184.216.34", "10.0.0.5"]])
    refused = await p.vet("https://mixed.example/")
    assert isinstance(refused, Refused)
    assert "10.0.0.5, a private address" in refused.message


async def test_dns_rebinding_each_attempt_resolves_again_and_connects_where_it_checked() -> None:
    """A name that answers a public address at one attempt and the metadata address at the
    next: the second attempt is refused, and the first went to the address it checked (the
    transport connects there, never resolving the name itself)."""
    p, resolver = policy(
        "https://rebind.example/",
        rebind_example=[["93.184.216.34"], ["169.254.169.254"], ["93.184.216.35"]],
    )
    assert await p.vet("https://rebind.example/x") == Vetted("93.184.216.34")
    second = await p.vet("https://rebind.example/x")
    assert isinstance(second, Refused)
    assert "169.254.169.254, a metadata address" in second.message
    assert await p.vet("https://rebind.example/x") == Vetted("93.184.216.35")
    assert len(resolver.lookups) == 3


async def test_an_unresolvable_host_is_a_dns_failure() -> None:
    p, _ = policy("https://gone.example/", gone_example=[])
    refused = await p.vet("https://gone.example/")
    assert isinstance(refused, Refused)
    assert refused.kind == "dns"
    assert "gone.example" in refused.message


async def test_a_url_no_longer_under_a_prefix_is_refused_at_the_attempt() -> None:
    """The settings changed since the task was created: every attempt checks again."""
    p, resolver = policy("https://other.example/")
    refused = await p.vet("https://hooks.example.com/a")
    assert isinstance(refused, Refused)
    assert "http_targets" in refused.message
    assert resolver.lookups == []
