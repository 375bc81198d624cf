"""Where upload slots point: the operator's address when one is configured, otherwise https, which Dino and
Conversations require."""

from __future__ import annotations

import pytest

from sakari.modules.upload import choose_base_url


@pytest.mark.parametrize(
    "public_url, http_tls, http_port, https_port, expected",
    [
        # The quick start: plain HTTP for the browser on 5280, uploads over TLS on 5281.
        ("", False, 5280, 5281, "https://localhost:5281"),
        # A TLS-terminating proxy in front: the address it serves, whatever the ports.
        ("https://chat.example.org/", False, 5280, 5281, "https://chat.example.org"),
        # The operator asked for plain HTTP links by naming a plain address.
        ("http://intranet.example:8080", False, 5280, 5281, "http://intranet.example:8080"),
        # TLS on the HTTP port itself (http.tls): that port, as before the HTTPS port existed.
        ("", True, 5280, 5281, "https://localhost:5280"),
        ("", True, 0, 5281, "https://localhost:5281"),
        # The HTTPS port closed and no TLS anywhere: plain HTTP is all there is.
        ("", False, 5280, 0, "http://localhost:5280"),
    ],
)
def test_slot_addresses_follow_the_operators_settings_and_prefer_https(public_url, http_tls, http_port, https_port, expected):
    assert choose_base_url("localhost", public_url, http_tls, http_port, https_port) == expected
