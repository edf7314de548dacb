"""Host names DNS cannot hold (issue 11, item 9b): a 70-character label used to be accepted at
registration and then fail every attempt with a ``UnicodeError`` traceback from the system
resolver's IDNA step. ``host_name_problem`` names what is wrong; the guard refuses such a
name with the ``OSError`` of a name that does not resolve, which the delivery transport turns
into an ``httpx.ConnectError`` (a failed attempt, recorded, no traceback)."""

from __future__ import annotations

import asyncio
import socket

import httpx
import pytest

from relay.net.addresses import LOOPBACK, NetworkPolicy, host_name_problem
from relay.net.guard import DestinationGuard
from relay.net.transport import RelayTransport

LABEL_63 = "a" * 63
LABEL_64 = "b" * 64
LABEL_70 = "c" * 70
LONG_NAME = ".".join(["d" * 60] * 4) + "." + "d" * 20  # 264 characters, each label fine


@pytest.mark.parametrize(
    "host",
    [
        "example.com",
        "example.com.",  # the root's dot
        f"{LABEL_63}.example.com",
        "_acme-challenge.example.com",  # left to DNS
        "xn--bcher-kva.example",  # what httpx makes of bücher.example
        ".".join(["e" * 63] * 3) + "." + "f" * 61,  # 253 characters
        "localhost",
        "127.0.0.1",
        "::1",
        "[2001:db8::1]",
    ],
)
def test_names_dns_can_hold_pass(host: str) -> None:
    assert host_name_problem(host) is None


@pytest.mark.parametrize(
    ("host", "phrase"),
    [
        (f"{LABEL_70}.example.com", "label of 70 characters"),
        (f"{LABEL_64}.example.com", "label of 64 characters"),
        (f"x.{LABEL_64}", "label of 64 characters"),
        (LONG_NAME, "host name of 264 characters"),
        ("a..example.com", "empty label"),
        (".example.com", "empty label"),
        ("", "empty host name"),
        (".", "empty host name"),
    ],
)
def test_names_dns_cannot_hold_are_named(host: str, phrase: str) -> None:
    problem = host_name_problem(host)
    assert problem is not None
    assert phrase in problem, problem


def test_the_system_resolver_fails_such_a_name_with_a_unicode_error() -> None:
    """Why the guard checks first: what getaddrinfo raises is no OSError."""
    with pytest.raises(UnicodeError):
        socket.getaddrinfo(f"{LABEL_70}.example.com", 80)


async def test_the_guard_refuses_it_as_a_name_that_does_not_resolve() -> None:
    asked: list[str] = []

    async def resolver(host: str, port: int) -> list[str]:
        asked.append(host)
        return ["93.184.216.34"]

    guard = DestinationGuard(resolver=resolver)
    with pytest.raises(OSError, match="label of 70 characters"):
        await guard.resolve(f"{LABEL_70}.example.com", 443)
    assert asked == []  # never looked up
    # And the registration check (which accepts names that do not resolve) stays quiet.
    assert await guard.check_url(f"https://{LABEL_70}.example.com/hook") is None


async def test_a_resolver_unicode_error_is_an_oserror_too() -> None:
    # Whatever else the resolver's IDNA step refuses surfaces the same way.

    async def refusing(host: str, port: int) -> list[str]:
        raise UnicodeError("label empty or too long")

    guard = DestinationGuard(resolver=refusing)
    with pytest.raises(OSError, match="not a valid host name"):
        await guard.resolve("example.com", 443)


async def test_the_delivery_transport_fails_the_attempt_with_a_connect_error() -> None:
    transport = RelayTransport(guard=DestinationGuard(NetworkPolicy.of(allow=LOOPBACK)))
    try:
        async with asyncio.timeout(5):
            with pytest.raises(httpx.ConnectError, match="label of 70 characters"):
                await transport.handle_async_request(
                    httpx.Request("POST", f"http://{LABEL_70}.example.com/hook", content=b"{}")
                )
    finally:
        await transport.aclose()
