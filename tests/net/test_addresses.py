"""The network policy (relay.net.addresses): which addresses webhooks may go to, and its config
section."""

from __future__ import annotations

import re
from ipaddress import ip_address
from pathlib import Path

import pytest

from relay.config.settings import Settings
from relay.errors import ConfigError
from relay.net.addresses import LOOPBACK, NetworkPolicy, NetworkSettings

EXAMPLE = Path(__file__).resolve().parents[2] / "config.example.yaml"

REFUSED = [
    # (address, the phrase the refusal gives)
    ("127.0.0.1", "a loopback address"),
    ("127.255.255.254", "a loopback address"),
    ("::1", "a loopback address"),
    ("10.0.0.5", "a private address"),
    ("172.16.0.1", "a private address"),
    ("172.31.255.255", "a private address"),
    ("192.168.1.1", "a private address"),
    ("fd12:3456::1", "a private address"),
    ("fc00::1", "a private address"),
    ("169.254.169.254", "a cloud metadata address"),
    ("169.254.170.2", "a cloud metadata address"),
    ("fd00:ec2::254", "a cloud metadata address"),
    ("100.100.100.200", "a cloud metadata address"),
    ("169.254.1.1", "a link-local address"),
    ("fe80::1", "a link-local address"),
    ("100.64.0.1", "a carrier-grade NAT (100.64.0.0/10) address"),
    ("100.127.255.254", "a carrier-grade NAT (100.64.0.0/10) address"),
    ("0.0.0.0", 'an unspecified ("this network") address'),
    ("0.1.2.3", 'an unspecified ("this network") address'),
    ("::", 'an unspecified ("this network") address'),
    ("224.0.0.1", "a multicast address"),
    ("239.255.255.250", "a multicast address"),
    ("ff02::1", "a multicast address"),
    ("255.255.255.255", "a reserved address"),
    ("240.0.0.1", "a reserved address"),
    ("fec0::1", "a site-local address"),
    ("192.0.2.10", "a special-purpose (non-public) address"),  # documentation
    ("198.18.0.1", "a special-purpose (non-public) address"),  # benchmarking
    ("192.0.0.1", "a special-purpose (non-public) address"),
    ("2001:db8::1", "a special-purpose (non-public) address"),
    # IPv6 forms carrying an IPv4 address are judged by it.
    ("::ffff:127.0.0.1", "a loopback address (127.0.0.1 in IPv6 form)"),
    ("::ffff:10.0.0.1", "a private address (10.0.0.1 in IPv6 form)"),
    ("::ffff:169.254.169.254", "a cloud metadata address (169.254.169.254 in IPv6 form)"),
    ("64:ff9b::a9fe:a9fe", "a cloud metadata address (169.254.169.254 in IPv6 form)"),
    ("64:ff9b::7f00:1", "a loopback address (127.0.0.1 in IPv6 form)"),
    ("2002:a00:1::", "a private address (10.0.0.1 in IPv6 form)"),
    ("::7f00:1", "a reserved address"),  # IPv4-compatible, deprecated
    ("64:ff9b:1::1", "a reserved address"),  # local-use NAT64
]

PUBLIC = [
    "8.8.8.8",
    "1.1.1.1",
    "93.184.216.34",
    "100.63.255.255",
    "100.128.0.0",
    "172.15.255.255",
    "172.32.0.0",
    "169.255.0.1",
    "2606:4700:4700::1111",
    "2a00:1450:4001::200e",
    "::ffff:8.8.8.8",
    "64:ff9b::808:808",
]


@pytest.mark.parametrize(("address", "reason"), REFUSED)
def test_the_default_policy_refuses_every_non_public_range(address: str, reason: str) -> None:
    refusal = NetworkPolicy().refusal(ip_address(address))
    assert refusal is not None, address
    assert refusal.reason == reason
    assert refusal.describe(address) == (
        f"refused: {address} is {reason} (network policy; the operator can allow it with "
        "network.allow_networks)"
    )


@pytest.mark.parametrize("address", PUBLIC)
def test_public_addresses_are_allowed(address: str) -> None:
    assert NetworkPolicy().refusal(ip_address(address)) is None


def test_a_refusal_names_the_host_and_the_address_it_resolved_to() -> None:
    refusal = NetworkPolicy().refusal(ip_address("127.0.0.1"))
    assert refusal is not None
    assert refusal.describe("localhost").startswith(
        "refused: localhost resolves to a loopback address"
    )
    assert refusal.describe("127.0.0.1").startswith("refused: 127.0.0.1 is a loopback")


def test_allowed_networks_open_exactly_those_networks() -> None:
    policy = NetworkPolicy.of(allow=[*LOOPBACK, "10.20.0.0/16"])
    for allowed in ("127.0.0.1", "127.1.2.3", "::1", "::ffff:127.0.0.1", "10.20.5.5", "8.8.8.8"):
        assert policy.refusal(ip_address(allowed)) is None, allowed
    for refused in ("10.21.0.1", "192.168.0.1", "169.254.169.254", "::2", "fe80::1"):
        assert policy.refusal(ip_address(refused)) is not None, refused


def test_denied_networks_win_over_allowed_and_public() -> None:
    policy = NetworkPolicy.of(
        allow=["10.0.0.0/8"], deny=["10.9.0.0/16", "203.0.113.0/24", "2606:4700::/32"]
    )
    assert policy.refusal(ip_address("10.1.1.1")) is None
    for address, net in (
        ("10.9.1.1", "10.9.0.0/16"),
        ("203.0.113.7", "203.0.113.0/24"),
        ("2606:4700::1", "2606:4700::/32"),
        ("::ffff:203.0.113.7", "203.0.113.0/24"),
    ):
        refusal = policy.refusal(ip_address(address))
        assert refusal is not None, address
        assert refusal.denied
        assert f"in network.deny_networks ({net})" in refusal.reason
        assert "allow_networks" not in refusal.describe(address)


# --- configuration ------------------------------------------------------------------------------


def test_the_default_settings_allow_public_addresses_only() -> None:
    settings = Settings()
    assert settings.network == NetworkSettings()
    assert settings.network.policy() == NetworkPolicy()


def test_network_settings_parse_into_a_policy() -> None:
    settings = Settings.from_mapping(
        {
            "network": {
                "allow_networks": ["127.0.0.0/8", "::1", "10.0.0.5"],
                "deny_networks": ["${DENY}"],
                "resolve_timeout": "2.5",
            }
        },
        env={"DENY": "8.8.8.0/24"},
    )
    policy = settings.network.policy()
    assert policy.refusal(ip_address("10.0.0.5")) is None
    assert policy.refusal(ip_address("10.0.0.6")) is not None
    assert policy.refusal(ip_address("8.8.8.8")) is not None
    assert settings.network.resolve_timeout == 2.5
    assert Settings.from_mapping({"network": None}, env={}).network == NetworkSettings()


@pytest.mark.parametrize(
    ("section", "path"),
    [
        ({"allow_networks": ["localhost"]}, "network.allow_networks.0"),
        ({"allow_networks": ["127.0.0.1/8"]}, "network.allow_networks.0"),  # host bits set
        ({"deny_networks": ["10.0.0.0/8", "10.0.0.0/33"]}, "network.deny_networks.1"),
        ({"resolve_timeout": 0}, "network.resolve_timeout"),
        ({"allow": ["10.0.0.0/8"]}, "network.allow"),
    ],
)
def test_bad_network_settings_name_the_key(section: dict[str, object], path: str) -> None:
    with pytest.raises(ConfigError) as caught:
        Settings.from_mapping({"network": section}, env={})
    assert caught.value.path == path


def test_the_example_file_documents_the_network_and_limit_keys() -> None:
    text = EXAMPLE.read_text(encoding="utf-8")
    keys = set(re.findall(r"^\s*#?\s*([a-z_]+):", text, re.MULTILINE))
    assert {
        "network",
        *NetworkSettings.model_fields,
        "auth_failures_per_minute",
        "auth_failure_burst",
    } <= keys
