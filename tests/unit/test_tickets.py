"""API tickets: minted per delivery, checked by /rpc_http, exact to the microsecond."""

from __future__ import annotations

import re

import pytest

from pushd import tickets

T0 = 1_700_000_000_000_000  # a whole second
S = 1_000_000
KEY = b"0123456789abcdef0123456789abcdef"


def test_a_minted_ticket_is_valid_and_names_its_expiry() -> None:
    ticket = tickets.Tickets(KEY).mint(now_us=T0, valid_us=10 * S)
    assert re.fullmatch(r"pushd1\.1700000010\.[A-Za-z0-9_-]{32}", ticket)
    assert tickets.Tickets(KEY).valid(ticket, now_us=T0)
    # the same key and expiry always give the same ticket
    assert tickets.Tickets(KEY).mint(now_us=T0 + 1, valid_us=10 * S - 1) == ticket


@pytest.mark.parametrize(
    ("now_us", "valid_us", "expiry_s"),
    [
        (T0, 10 * S, 1_700_000_010),  # on a second: no rounding
        (T0 + 1, 10 * S, 1_700_000_011),  # rounded up to the next whole second
        (T0 + 123_456, 5 * S, 1_700_000_006),
        (T0 - 1, 10 * S, 1_700_000_010),
    ],
)
def test_a_ticket_expires_exactly_at_its_expiry_second(
    now_us: int, valid_us: int, expiry_s: int
) -> None:
    t = tickets.Tickets(KEY)
    ticket = t.mint(now_us=now_us, valid_us=valid_us)
    assert ticket.split(".")[1] == str(expiry_s)
    assert t.valid(ticket, now_us=now_us)
    assert t.valid(ticket, now_us=now_us + valid_us - 1)  # never shorter than asked
    assert t.valid(ticket, now_us=expiry_s * S - 1)
    assert not t.valid(ticket, now_us=expiry_s * S)
    assert not t.valid(ticket, now_us=expiry_s * S + 3600 * S)


def _flip(char: str) -> str:
    return "B" if char == "A" else "A"


def test_tampered_tickets_are_rejected() -> None:
    t = tickets.Tickets(KEY)
    ticket = t.mint(now_us=T0, valid_us=10 * S)
    prefix, expiry, mac = ticket.split(".")
    later = str(int(expiry) + 3600)
    forged = [
        f"{prefix}.{expiry}.{_flip(mac[0])}{mac[1:]}",  # MAC changed
        f"{prefix}.{expiry}.{mac[:-1]}{_flip(mac[-1])}",
        f"{prefix}.{expiry}.{mac[:-1]}",  # MAC truncated
        f"{prefix}.{expiry}.{mac}A",  # MAC extended
        f"{prefix}.{expiry}.",
        f"{prefix}.{later}.{mac}",  # expiry extended under the old MAC
        f"pushd2.{expiry}.{mac}",  # another prefix
        f"PUSHD1.{expiry}.{mac}",
        f".{expiry}.{mac}",
        f"{expiry}.{mac}",
        f"{prefix}.+{expiry}.{mac}",  # not plain digits
        f"{prefix}.{expiry}.0.{mac}",
        f"{prefix}.{'9' * 13}.{mac}",  # absurdly far in the future
        f"{prefix}.{expiry}.{mac[:-1]}é",  # not ASCII: rejected, not an exception
        # The same expiry written another way: int() reads it, but mint never writes it.
        # Found in review: these were accepted (harmless, as the MAC covers the number).
        f"{prefix}.0{expiry}.{mac}",
        f"{prefix}.{expiry.translate(str.maketrans('0123456789', '٠١٢٣٤٥٦٧٨٩'))}.{mac}",
        # Found in review: "²".isdigit() but int("²") raises, so this raised ValueError
        f"{prefix}.².{mac}",
        f"{prefix}.1700000010².{mac}",
        ticket + "\n",
        "",
        "pushd1",
        "pushd1..",
    ]
    for candidate in forged:
        assert not t.valid(candidate, now_us=T0), candidate
    assert t.valid(ticket, now_us=T0)


def test_another_key_rejects_the_ticket() -> None:
    ticket = tickets.Tickets(KEY).mint(now_us=T0, valid_us=10 * S)
    assert not tickets.Tickets(KEY[:-1] + b"!").valid(ticket, now_us=T0)
    assert not tickets.Tickets(b"").valid(ticket, now_us=T0)


def test_the_default_key_is_random_per_instance() -> None:
    # found in review: a key derived from the configured secrets let a producer token holder
    # mint admin tickets; the key now never leaves the daemon
    first, second = tickets.Tickets(), tickets.Tickets()
    ticket = first.mint(now_us=T0, valid_us=S)
    assert first.valid(ticket, now_us=T0)
    assert not second.valid(ticket, now_us=T0)


def test_a_ticket_cannot_claim_more_than_the_longest_lifetime() -> None:
    # found in review: any 12-digit expiry was accepted, so a forged ticket never expired
    t = tickets.Tickets(KEY)
    longest = t.mint(now_us=T0, valid_us=tickets.MAX_VALID_US)
    assert t.valid(longest, now_us=T0)
    too_long = t.mint(now_us=T0, valid_us=tickets.MAX_VALID_US + 2 * S)
    assert not t.valid(too_long, now_us=T0)
    assert t.valid(too_long, now_us=T0 + 2 * S)  # in range once time has caught up
