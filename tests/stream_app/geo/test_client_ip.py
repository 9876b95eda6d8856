"""The trusted-proxy rule: X-Forwarded-For counts only as far as trusted proxies wrote it."""

from __future__ import annotations

import ipaddress

import pytest

from stream_app.geo.client_ip import TrustedProxies, parse_ip

ip = ipaddress.ip_address


def test_without_trusted_proxies_the_peer_is_the_client() -> None:
    proxies = TrustedProxies([])
    assert proxies.client_ip("203.0.113.7", "8.8.8.8") == ip("203.0.113.7")


def test_an_untrusted_peer_cannot_claim_an_address_with_x_forwarded_for() -> None:
    proxies = TrustedProxies(["10.0.0.0/8"])
    # The peer is not one of our proxies: whatever it writes in XFF is ignored.
    assert proxies.client_ip("198.51.100.9", "8.8.8.8") == ip("198.51.100.9")


def test_behind_a_trusted_proxy_the_right_hop_is_the_client() -> None:
    proxies = TrustedProxies(["10.0.0.0/8"])
    # The client wrote "1.2.3.4" itself; the proxy appended the address it saw.
    assert proxies.client_ip("10.1.2.3", "1.2.3.4, 81.2.69.142") == ip("81.2.69.142")


def test_a_chain_of_trusted_proxies_is_walked_from_the_right() -> None:
    proxies = TrustedProxies(["10.0.0.0/8", "192.0.2.10"])
    xff = "6.6.6.6, 81.2.69.142, 192.0.2.10"
    assert proxies.client_ip("10.0.0.5", xff) == ip("81.2.69.142")
    # Every hop trusted: the left-most one is as far as we can see.
    assert proxies.client_ip("10.0.0.5", "10.9.9.9") == ip("10.9.9.9")


def test_garbage_from_a_trusted_proxy_gives_no_address() -> None:
    proxies = TrustedProxies(["10.0.0.0/8"])
    assert proxies.client_ip("10.0.0.5", "1.2.3.4, not-an-ip") is None
    assert proxies.client_ip("10.0.0.5", "") == ip("10.0.0.5")


def test_addresses_with_ports_brackets_and_v4_mapped_v6() -> None:
    assert parse_ip("203.0.113.7:443") == ip("203.0.113.7")
    assert parse_ip("[2001:db8::1]:443") == ip("2001:db8::1")
    assert parse_ip("2001:db8::1") == ip("2001:db8::1")
    assert parse_ip("::ffff:81.2.69.142") == ip("81.2.69.142")
    assert parse_ip("testclient") is None and parse_ip(None) is None


def test_a_bad_trusted_proxy_entry_is_an_error_at_start_up() -> None:
    with pytest.raises(ValueError, match="not an address or CIDR"):
        TrustedProxies(["10.0.0.0/33"])
