"""Which addresses the relay may send webhooks to (SSRF defence, DESIGN §5): pure decisions,
no I/O. ``relay.net.guard`` resolves names and asks this module about every address.

By default only public (globally routable) addresses are allowed: loopback, private
(RFC 1918, fc00::/7), link-local (with the cloud metadata addresses), carrier-grade NAT
(100.64.0.0/10), unspecified ("this network", 0.0.0.0/8 and ::), multicast, broadcast,
reserved and every other special-purpose range Python's ``ipaddress`` knows are refused.
IPv6 forms that carry an IPv4 address are judged by that address too: IPv4-mapped
(``::ffff:127.0.0.1`` is loopback), NAT64 (``64:ff9b::a.b.c.d``), 6to4, Teredo and the
deprecated IPv4-compatible form.

The operator widens this with ``network.allow_networks`` (tests and local development allow
127.0.0.0/8 and ::1) and narrows it with ``network.deny_networks``; deny wins over allow.

A destination's host must also be a name DNS can hold (``host_name_problem``): checked when
a URL is registered and again before each lookup.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from ipaddress import (
    IPv4Address,
    IPv4Network,
    IPv6Address,
    IPv6Network,
    ip_address,
    ip_network,
)
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

IPAddress = IPv4Address | IPv6Address
IPNetwork = IPv4Network | IPv6Network

CGNAT = IPv4Network("100.64.0.0/10")
THIS_NETWORK = IPv4Network("0.0.0.0/8")
NAT64 = IPv6Network("64:ff9b::/96")
PRIVATE = (
    IPv4Network("10.0.0.0/8"),
    IPv4Network("172.16.0.0/12"),
    IPv4Network("192.168.0.0/16"),
    IPv6Network("fc00::/7"),
)
METADATA = frozenset(
    {
        IPv4Address("169.254.169.254"),  # AWS, GCP, Azure, OpenStack, DigitalOcean, ...
        IPv4Address("169.254.170.2"),  # AWS ECS task metadata
        IPv4Address("100.100.100.200"),  # Alibaba Cloud
        IPv6Address("fd00:ec2::254"),  # AWS IMDS over IPv6
    }
)
LOOPBACK = ("127.0.0.0/8", "::1")
"""What tests and local development allow (``network.allow_networks``)."""


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why one address may not be sent to."""

    address: IPAddress
    reason: str
    """A phrase: ``"a loopback address"``, ``"in network.deny_networks (203.0.113.0/24)"``."""
    denied: bool = False
    """Refused by ``network.deny_networks`` (rather than for not being public)."""

    def describe(self, host: str) -> str:
        """One line for an attempt's error or a 400, naming the host and the reason. Not the
        address a name resolved to: callers read these, and must not learn how the relay's
        network resolves internal names."""
        shown = host.strip("[]")
        where = f"{shown} is" if _same(shown, self.address) else f"{shown} resolves to"
        how = "" if self.denied else "; the operator can allow it with network.allow_networks"
        return f"refused: {where} {self.reason} (network policy{how})"


def _same(host: str, address: IPAddress) -> bool:
    try:
        return ip_address(host.split("%", 1)[0]) == address
    except ValueError:
        return False


def special_kind(a: IPAddress) -> str | None:
    """Why ``a`` is not a public address, as a phrase; None when it is public."""
    if a in METADATA:
        return "a cloud metadata address"
    if a.is_unspecified or (isinstance(a, IPv4Address) and a in THIS_NETWORK):
        return 'an unspecified ("this network") address'
    if a.is_loopback:
        return "a loopback address"
    if a.is_link_local:
        return "a link-local address"
    if isinstance(a, IPv4Address) and a in CGNAT:
        return "a carrier-grade NAT (100.64.0.0/10) address"
    if a.is_multicast:
        return "a multicast address"
    if any(a.version == n.version and a in n for n in PRIVATE):
        return "a private address"
    if isinstance(a, IPv6Address) and a.is_site_local:
        return "a site-local address"
    if a.is_reserved or a == IPv4Address("255.255.255.255"):
        return "a reserved address"
    if not a.is_global:
        return "a special-purpose (non-public) address"
    return None


def embedded_ipv4(a: IPv6Address) -> IPv4Address | None:
    """The IPv4 address an IPv6 address carries (mapped, NAT64, 6to4, Teredo client,
    IPv4-compatible), else None."""
    if a.ipv4_mapped is not None:
        return a.ipv4_mapped
    if a in NAT64:
        return IPv4Address(int(a) & 0xFFFF_FFFF)
    if a.sixtofour is not None:
        return a.sixtofour
    if a.teredo is not None:
        return a.teredo[1]
    if int(a) >> 32 == 0 and int(a) > 1:  # ::a.b.c.d, deprecated IPv4-compatible
        return IPv4Address(int(a))
    return None


def _views(a: IPAddress) -> tuple[IPAddress, ...]:
    """The addresses to judge for ``a``: a mapped or NAT64 address is only a way to reach
    its IPv4 address, so that alone is judged; a tunnel address is judged as both."""
    if isinstance(a, IPv4Address):
        return (a,)
    inner = embedded_ipv4(a)
    if inner is None:
        return (a,)
    if a.ipv4_mapped is not None or a in NAT64:
        return (inner,)
    return (a, inner)


@dataclass(frozen=True, slots=True)
class NetworkPolicy:
    allow: tuple[IPNetwork, ...] = ()
    deny: tuple[IPNetwork, ...] = ()

    @classmethod
    def of(cls, allow: Iterable[str] = (), deny: Iterable[str] = ()) -> NetworkPolicy:
        return cls(tuple(ip_network(n) for n in allow), tuple(ip_network(n) for n in deny))

    def refusal(self, address: IPAddress) -> Refusal | None:
        """None when the relay may connect to ``address``, else why not."""
        for view in _views(address):
            for net in self.deny:
                if net.version == view.version and view in net:
                    return Refusal(
                        address,
                        _inner(f"in network.deny_networks ({net})", view, address),
                        denied=True,
                    )
            if any(net.version == view.version and view in net for net in self.allow):
                continue
            kind = special_kind(view)
            if kind is not None:
                return Refusal(address, _inner(kind, view, address))
        return None


def _inner(reason: str, view: IPAddress, address: IPAddress) -> str:
    return reason if view == address else f"{reason} ({view} in IPv6 form)"


# --- host names --------------------------------------------------------------------------------

MAX_NAME_CHARS = 253
MAX_LABEL_CHARS = 63


def host_name_problem(host: str) -> str | None:
    """Why ``host`` cannot be looked up in DNS, as a phrase; None when it can (or when it is
    an IP literal, which is not looked up). ``host`` is as httpx gives it: international
    names already IDNA-encoded to ASCII, which is where a label's 63 bytes are counted.

    Only the lengths and empty labels: what the system resolver's IDNA step refuses with a
    ``UnicodeError`` (not the ``OSError`` of a name that does not resolve) and RFC 1035's
    limits. Characters are left to DNS: ``_`` is common in real names."""
    if _is_ip(host):
        return None
    name = host[:-1] if host.endswith(".") else host
    if not name:
        return "has an empty host name"
    if len(name) > MAX_NAME_CHARS:
        return f"has a host name of {len(name)} characters; DNS allows at most {MAX_NAME_CHARS}"
    for label in name.split("."):
        if not label:
            return "has an empty label in its host name (two dots in a row, or a leading dot)"
        if len(label) > MAX_LABEL_CHARS:
            return (
                f"has a host name label of {len(label)} characters "
                f"({label[:20]}...); DNS allows at most {MAX_LABEL_CHARS}"
            )
    return None


def _is_ip(host: str) -> bool:
    try:
        ip_address(host.strip("[]").split("%", 1)[0])
    except ValueError:
        return False
    return True


# --- the configuration section ---------------------------------------------------------------


def _network(value: str) -> str:
    try:
        ip_network(value)
    except ValueError as exc:
        raise ValueError(
            f"{value!r} is not a network such as 10.0.0.0/8, 127.0.0.1 or ::1 ({exc})"
        ) from None
    return value


Networks = tuple[Annotated[str, AfterValidator(_network)], ...]


class NetworkSettings(BaseModel):
    """``network:``: where webhooks may go (the destinations' SSRF policy). Provider base URLs
    are the operator's own and are not subject to it."""

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)

    allow_networks: Networks = ()
    """Networks allowed although not public, e.g. ``127.0.0.0/8`` for a local receiver."""
    deny_networks: Networks = ()
    """Networks refused although public; wins over ``allow_networks``."""
    resolve_timeout: float = Field(default=5.0, gt=0)
    """Seconds a registration waits for DNS before accepting a URL it could not check
    (the check at connect time still applies)."""

    def policy(self) -> NetworkPolicy:
        return NetworkPolicy.of(self.allow_networks, self.deny_networks)
