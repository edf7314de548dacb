"""Resolving a destination's host and checking every address against the network policy
(``relay.net.addresses``), at registration and again at connect time.

At connect time the transport connects only to the addresses checked here, never to the name
again, so a name that resolves to a public address for the registration check and to
127.0.0.1 a moment later (DNS rebinding) is still refused. A name with several addresses is
refused when any of them is: the attacker chooses which one a client tries.
"""

from __future__ import annotations

import asyncio
import functools
import socket
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from ipaddress import ip_address

import httpx

from relay.errors import RelayError
from relay.net.addresses import IPAddress, NetworkPolicy, Refusal, host_name_problem

Resolver = Callable[[str, int], Awaitable[Sequence[str]]]
"""``(host, port)`` → the addresses it resolves to, as text (IPv6 with a ``%zone`` kept)."""


_LOOKUPS = ThreadPoolExecutor(max_workers=8, thread_name_prefix="relay-dns")
"""Destination lookups get threads of their own: a caller registering names on a zone that
never answers ties up these (each for as long as the system resolver waits), never the
event loop's default pool that provider calls and the database's reconnects resolve in."""


async def system_resolver(host: str, port: int) -> Sequence[str]:
    infos = await asyncio.get_running_loop().run_in_executor(
        _LOOKUPS,
        functools.partial(
            socket.getaddrinfo, host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP
        ),
    )
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


@dataclass(frozen=True, slots=True)
class Resolved:
    """Every address of a host, all allowed: the ones to connect to, in order."""

    addresses: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Refused:
    host: str
    refusal: Refusal

    @property
    def message(self) -> str:
        return self.refusal.describe(self.host)


class DestinationRefused(RelayError, httpx.ConnectError):
    """Raised by the delivery transport (``relay.net.transport``) instead of connecting to
    an address the policy forbids. It is an ``httpx.ConnectError`` so that the delivery
    engine records it as the failed attempt it is, with the reason, like any other
    connection that could not be made."""


class DestinationGuard:
    def __init__(
        self,
        policy: NetworkPolicy | None = None,
        *,
        resolver: Resolver = system_resolver,
        resolve_timeout: float = 5.0,
    ) -> None:
        """The default policy allows public addresses only."""
        self.policy = policy or NetworkPolicy()
        self._resolve = resolver
        self._timeout = resolve_timeout

    async def resolve(self, host: str, port: int) -> Resolved | Refused:
        """Resolve ``host`` (an IP literal is itself) and check every address. A host that
        does not resolve, or is no name DNS could hold, raises ``OSError``
        (``socket.gaierror``): a delivery records it as a failed attempt, never a crash."""
        if "%" in host:
            # No zone ids or escapes in a destination's host: "8.8.8.8%2e.evil.test" is no
            # IP literal, and must not pass for one.
            raise socket.gaierror(f"{host!r} is not a host name or an IP address")
        literal = _literal(host)
        if literal is None:
            problem = host_name_problem(host)
            if problem is not None:  # (registered before names were checked)
                raise socket.gaierror(f"the destination {problem}")
            try:
                texts: Sequence[str] = await self._resolve(host, port)
            except UnicodeError as exc:  # the resolver's IDNA step: no such name either
                raise socket.gaierror(f"{host[:80]} is not a valid host name ({exc})") from None
        else:
            texts = (str(literal),)
        if not texts:
            raise socket.gaierror(f"{host} resolves to no address")
        addresses = [_address(text) for text in texts]
        for address in addresses:
            refusal = self.policy.refusal(address)
            if refusal is not None:
                return Refused(host, refusal)
        # The checked addresses, written as addresses: what the transport connects to
        # (numerically, never resolved again).
        return Resolved(tuple(dict.fromkeys(str(a) for a in addresses)))

    async def check_url(self, url: str) -> str | None:
        """Registration: why ``url`` may not be a destination, or None. A name that does
        not resolve now (or not within ``resolve_timeout``) is accepted: DNS may not be set
        up yet, and every connection is checked again anyway."""
        parsed = httpx.URL(url)
        host = parsed.raw_host.decode("ascii")
        port = parsed.port or (443 if parsed.scheme == "https" else 80)
        try:
            async with asyncio.timeout(self._timeout):
                found = await self.resolve(host, port)
        except (OSError, TimeoutError, ValueError):  # ValueError: getaddrinfo, IDNA
            return None
        return found.message if isinstance(found, Refused) else None


def _literal(host: str) -> IPAddress | None:
    """``host`` as an IP address when it is one, whole; None for a name."""
    try:
        return ip_address(host.strip("[]"))
    except ValueError:
        return None


def _address(text: str) -> IPAddress:
    # A resolver's IPv6 link-local answer carries its zone ("fe80::1%eth0"); the zone says
    # which interface, not which address.
    return ip_address(text.split("%", 1)[0])
