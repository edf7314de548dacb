"""The SSRF guard (relay.net.guard) and the delivery transport that uses it: a refused host is
never connected to, whatever name leads to it; an allowed one is connected to on the very
address that was checked, with the Host header and TLS still naming the host."""

from __future__ import annotations

import asyncio
import socket
import ssl
from collections.abc import Sequence
from ipaddress import ip_address

import httpx
import pytest

from relay.net.addresses import LOOPBACK, NetworkPolicy
from relay.net.guard import DestinationGuard, DestinationRefused, Refused, Resolved
from relay.net.transport import RelayTransport
from tests.net.transport_server import RawServer, replies, response

PUBLIC_ONLY = NetworkPolicy()
LOCAL_OK = NetworkPolicy.of(allow=LOOPBACK)


class FakeDns:
    """A resolver answering from a table, recording what it was asked."""

    def __init__(self, table: dict[str, Sequence[str]]) -> None:
        self.table = table
        self.asked: list[str] = []

    async def __call__(self, host: str, port: int) -> Sequence[str]:
        self.asked.append(host)
        if host not in self.table:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return self.table[host]


async def post(transport: RelayTransport, url: str) -> httpx.Response:
    async with asyncio.timeout(3):
        resp = await transport.handle_async_request(
            httpx.Request(
                "POST", url, content=b'{"x":1}', extensions={"timeout": {"connect": 2, "read": 2}}
            )
        )
        await resp.aread()
    return resp


# --- the guard ----------------------------------------------------------------------------


async def test_a_name_resolving_to_loopback_is_refused_and_named() -> None:
    dns = FakeDns({"hooks.example.com": ["127.0.0.1"]})
    found = await DestinationGuard(PUBLIC_ONLY, resolver=dns).resolve("hooks.example.com", 443)
    assert isinstance(found, Refused)
    assert found.message.startswith("refused: hooks.example.com resolves to a loopback address")


async def test_one_refused_address_among_several_refuses_the_name() -> None:
    dns = FakeDns({"mixed.example": ["93.184.216.34", "10.0.0.5", "2606:4700::1"]})
    found = await DestinationGuard(PUBLIC_ONLY, resolver=dns).resolve("mixed.example", 80)
    assert isinstance(found, Refused)
    assert found.refusal.address == ip_address("10.0.0.5")
    assert found.message.startswith("refused: mixed.example resolves to a private address")
    assert "10.0.0.5" not in found.message  # callers must not map internal names


async def test_public_addresses_are_kept_in_order_for_the_connection() -> None:
    dns = FakeDns({"ok.example": ["93.184.216.34", "2606:4700::1"]})
    found = await DestinationGuard(PUBLIC_ONLY, resolver=dns).resolve("ok.example", 80)
    assert found == Resolved(("93.184.216.34", "2606:4700::1"))


@pytest.mark.parametrize(
    "host", ["127.0.0.1", "::1", "[::1]", "169.254.169.254", "::ffff:10.0.0.1"]
)
async def test_ip_literals_are_judged_without_dns(host: str) -> None:
    dns = FakeDns({})
    found = await DestinationGuard(PUBLIC_ONLY, resolver=dns).resolve(host, 80)
    assert isinstance(found, Refused)
    assert dns.asked == []


@pytest.mark.parametrize(
    "url",
    [
        "http://localhost:9/hook",
        "http://LOCALHOST/x",
        "http://127.0.0.1:8000/",
        "http://2130706433/",
        "http://0x7f.1/",
        "http://127.1/",  # 127.0.0.1, spelled otherwise
        "http://10.0.0.5/",
        "http://[::1]:8080/",
        "http://[::ffff:127.0.0.1]/",
        "http://169.254.169.254/latest/meta-data/",
        "http://100.64.0.1/",
        "http://0.0.0.0:80/",
    ],
)
async def test_registration_check_refuses_what_the_system_resolves_to_non_public(url: str) -> None:
    reason = await DestinationGuard(PUBLIC_ONLY).check_url(url)
    assert reason is not None, url
    assert reason.startswith("refused: "), (url, reason)
    assert (
        await DestinationGuard(NetworkPolicy.of(allow=["0.0.0.0/0", "::/0"])).check_url(url) is None
    )


async def test_registration_check_accepts_names_that_do_not_resolve_or_take_too_long() -> None:
    async def slow(host: str, port: int) -> Sequence[str]:
        await asyncio.sleep(10)
        return ["127.0.0.1"]

    guard = DestinationGuard(PUBLIC_ONLY, resolver=FakeDns({}))
    assert await guard.check_url("https://hooks.example.com/x") is None
    slow_guard = DestinationGuard(PUBLIC_ONLY, resolver=slow, resolve_timeout=0.05)
    async with asyncio.timeout(2):
        assert await slow_guard.check_url("https://slow.example/x") is None
    public = DestinationGuard(PUBLIC_ONLY, resolver=FakeDns({"a.example": ["8.8.8.8"]}))
    assert await public.check_url("https://a.example/hook") is None


# --- the transport ------------------------------------------------------------------------


@pytest.mark.parametrize("host", ["localhost", "127.0.0.1", "[::ffff:127.0.0.1]"])
async def test_a_loopback_receiver_gets_nothing_when_loopback_is_not_allowed(host: str) -> None:
    async with RawServer(replies(response(200, b"ok"))) as server:
        transport = RelayTransport(guard=DestinationGuard(PUBLIC_ONLY))
        try:
            with pytest.raises(DestinationRefused, match="loopback address") as caught:
                await post(transport, f"http://{host}:{server.port}/hook")
        finally:
            await transport.aclose()
    assert server.conns == []
    assert server.requests == []
    # What a delivery records: an httpx error, so a failed attempt with this reason.
    assert isinstance(caught.value, httpx.ConnectError)


async def test_dns_rebinding_is_refused_at_connect_time() -> None:
    """The registration check saw a public address; by the time of the send the name
    points at 127.0.0.1: the transport resolves again and refuses."""
    dns = FakeDns({"rebind.example": ["93.184.216.34"]})
    guard = DestinationGuard(PUBLIC_ONLY, resolver=dns)
    async with RawServer(replies(response(200, b"ok"))) as server:
        url = f"http://rebind.example:{server.port}/hook"
        assert await guard.check_url(url) is None
        dns.table["rebind.example"] = ["127.0.0.1"]
        transport = RelayTransport(guard=guard)
        try:
            with pytest.raises(
                DestinationRefused,
                match=r"rebind\.example resolves to "
                r"a loopback address",
            ):
                await post(transport, url)
        finally:
            await transport.aclose()
    assert dns.asked == ["rebind.example", "rebind.example"]
    assert server.conns == []


async def test_a_name_dressed_as_an_ip_literal_is_never_looked_up(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """ "8.8.8.8%2e.evil.test" is no IP literal: it must not pass the check as 8.8.8.8 and
    then be looked up as a name at connect time, where a wildcard record under the
    attacker's zone points it anywhere (here: the loopback receiver)."""
    loop = asyncio.get_running_loop()
    system = loop.getaddrinfo

    async def attacker_dns(host: object, *args: object, **kwargs: object) -> object:
        if isinstance(host, str) and host.endswith("evil.test"):
            host = "127.0.0.1"
        return await system(host, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(loop, "getaddrinfo", attacker_dns)
    async with RawServer(replies(response(200, b"ok"))) as server:
        transport = RelayTransport(guard=DestinationGuard(PUBLIC_ONLY, resolver=FakeDns({})))
        try:
            with pytest.raises(httpx.ConnectError, match="not a host name or an IP address"):
                await post(transport, f"http://8.8.8.8%2e.evil.test:{server.port}/hook")
        finally:
            await transport.aclose()
    assert server.conns == []


async def test_the_connection_goes_to_the_checked_address_with_the_name_as_host() -> None:
    # "receiver.test" is unknown to the system's DNS: the request can only arrive if the
    # transport connected to the address the guard checked, not to the name again.
    dns = FakeDns({"receiver.test": ["127.0.0.1"]})
    async with RawServer(replies(response(204))) as server:
        transport = RelayTransport(guard=DestinationGuard(LOCAL_OK, resolver=dns))
        try:
            resp = await post(transport, f"http://receiver.test:{server.port}/hook")
        finally:
            await transport.aclose()
    assert resp.status_code == 204
    [request] = server.requests
    assert request.header("host") == [f"receiver.test:{server.port}".encode()]
    assert request.body == b'{"x":1}'


async def test_the_next_address_is_tried_when_the_first_does_not_answer() -> None:
    with socket.socket() as closed:
        closed.bind(("127.0.0.2", 0))
        dead_port = closed.getsockname()[1]
    async with RawServer(replies(response(200, b"ok"))) as server:
        assert dead_port != server.port
        dns = FakeDns({"two.test": ["127.0.0.2", "127.0.0.1"]})
        transport = RelayTransport(guard=DestinationGuard(LOCAL_OK, resolver=dns))
        try:
            # Nothing listens on 127.0.0.2 at the server's port.
            resp = await post(transport, f"http://two.test:{server.port}/")
        finally:
            await transport.aclose()
    assert resp.status_code == 200


async def test_tls_verifies_the_certificate_for_the_name_not_the_address() -> None:
    trustme = pytest.importorskip("trustme")
    ca = trustme.CA()
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("hooks.test").configure_cert(server_ctx)
    client_ctx = ssl.create_default_context()
    ca.configure_trust(client_ctx)
    dns = FakeDns({"hooks.test": ["127.0.0.1"], "other.test": ["127.0.0.1"]})
    async with RawServer(replies(response(200, b"tls")), ssl_context=server_ctx) as server:
        transport = RelayTransport(
            verify=client_ctx, guard=DestinationGuard(LOCAL_OK, resolver=dns)
        )
        try:
            resp = await post(transport, f"https://hooks.test:{server.port}/")
            with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
                await post(transport, f"https://other.test:{server.port}/")
        finally:
            await transport.aclose()
    assert resp.content == b"tls"
    assert len(server.requests) == 1


async def test_a_transport_without_a_guard_connects_anywhere() -> None:
    """Provider calls: the operator's own base URLs, the sandbox on loopback included."""
    async with RawServer(replies(response(200, b"ok"))) as server:
        transport = RelayTransport()
        try:
            resp = await post(transport, f"http://localhost:{server.port}/")
        finally:
            await transport.aclose()
    assert resp.status_code == 200


async def test_a_redirect_is_an_answer_not_a_second_request() -> None:
    async with RawServer(replies(response(200, b"second"))) as target:
        location = ("Location", f"http://127.0.0.1:{target.port}/elsewhere")
        async with RawServer(replies(response(302, b"", location))) as first:
            transport = RelayTransport(guard=DestinationGuard(LOCAL_OK))
            try:
                resp = await post(transport, first.url + "/hook")
            finally:
                await transport.aclose()
    assert resp.status_code == 302
    assert len(first.requests) == 1
    assert target.conns == []
