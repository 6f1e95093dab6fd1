"""Which address a request is counted against, with and without trusted proxies."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from auth_service.core.client_ip import ClientIp
from auth_service.core.config import Settings


def scope(peer: str | None, *forwarded: str) -> dict[str, object]:
    return {
        "client": (peer, 1234) if peer else None,
        "headers": [(b"x-forwarded-for", value.encode()) for value in forwarded],
    }


@pytest.mark.parametrize(
    ("trusted", "peer", "forwarded", "expected"),
    [
        # Nobody trusted (the default): the header is noise.
        ([], "203.0.113.9", ["198.51.100.1"], "203.0.113.9"),
        # Not from the proxy: a spoofed header is ignored.
        (["10.0.0.0/8"], "203.0.113.9", ["198.51.100.1"], "203.0.113.9"),
        # From the proxy: the right-most address it did not vouch for.
        (["10.0.0.0/8"], "10.0.0.2", ["6.6.6.6, 198.51.100.1"], "198.51.100.1"),
        (["10.0.0.0/8"], "10.0.0.2", ["6.6.6.6", "198.51.100.1, 10.0.0.7"], "198.51.100.1"),
        # Garbage stops the walk: the last good hop counts.
        (["10.0.0.0/8"], "10.0.0.2", ["not-an-ip"], "10.0.0.2"),
        (["10.0.0.0/8"], "10.0.0.2", ["198.51.100.1:4431"], "198.51.100.1"),
        # Only proxies in the chain: the left-most of them.
        (["10.0.0.0/8"], "10.0.0.2", ["10.0.0.5"], "10.0.0.5"),
        (["10.0.0.0/8"], "10.0.0.2", [], "10.0.0.2"),
        # An IPv6 client is counted by its /64.
        ([], "2001:db8:1:2:3:4:5:6", [], "2001:db8:1:2::/64"),
        (["::1/128"], "::1", ["[2001:db8::1]:443"], "2001:db8::/64"),
        ([], None, [], "unknown"),
    ],
)
def test_client_address(
    trusted: list[str], peer: str | None, forwarded: list[str], expected: str
) -> None:
    assert ClientIp(trusted)(scope(peer, *forwarded)) == expected


def test_a_bad_proxy_list_is_a_configuration_error() -> None:
    with pytest.raises(ValueError, match="does not appear to be"):
        ClientIp(["not a network"])


def test_the_abuse_settings_are_read_and_checked_at_startup(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AUTH_TRUSTED_PROXIES", "127.0.0.1, 10.0.0.0/8")
    monkeypatch.setenv("AUTH_RATE_LIMIT_LOGIN_PER_IP", "3/minute;10/hour")
    monkeypatch.setenv("AUTH_RATE_LIMIT_STORAGE_URL", "redis://redis:6379/0")
    settings = Settings()
    assert settings.trusted_proxies == ["127.0.0.1", "10.0.0.0/8"]
    assert settings.rate_limit_login_per_ip == "3/minute;10/hour"
    assert settings.rate_limit_fail_closed is True
    for variable, bad in (
        ("AUTH_TRUSTED_PROXIES", "the gateway"),
        ("AUTH_RATE_LIMIT_LOGIN_PER_IP", "often"),
        ("AUTH_RATE_LIMIT_STORAGE_URL", "memcached://cache:11211"),
    ):
        with monkeypatch.context() as patch:
            patch.setenv(variable, bad)
            with pytest.raises(ValidationError):
                Settings()
