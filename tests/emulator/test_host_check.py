"""Which Host and Origin headers the emulator answers (the attack table covers the refusals
over HTTP; this pins the rules themselves)."""

from __future__ import annotations

import pytest

from airflow_provider_dune.emulator.host_check import AllowedHosts, host_name


@pytest.mark.parametrize(
    ("header", "name"),
    [
        ("127.0.0.1:8089", "127.0.0.1"),
        ("[::1]:8089", "::1"),
        ("[::1]", "::1"),
        ("LocalHost", "localhost"),
        ("example.com.:80", "example.com"),
        ("dune-emulator", "dune-emulator"),
    ],
)
def test_host_name_reads_the_name_of_a_host_header(header, name):
    assert host_name(header) == name


@pytest.mark.parametrize(
    ("bound", "extra", "host", "allowed"),
    [
        ("127.0.0.1", (), "127.0.0.1:8089", True),
        ("127.0.0.1", (), "localhost:9999", True),  # the port is not checked: forwarding works
        ("127.0.0.1", (), "[::1]:8089", True),
        ("127.0.0.1", (), "rebind.attacker.test:8089", False),
        ("127.0.0.1", (), "10.0.0.5:8089", False),
        ("127.0.0.1", ("dune-emulator",), "dune-emulator:8089", True),
        ("0.0.0.0", (), "192.168.1.20:8089", True),  # any address of the machine
        ("0.0.0.0", (), "my-laptop.local:8089", False),  # a name could be a rebinding one
        ("192.168.1.20", (), "192.168.1.20:8089", True),
        ("192.168.1.20", (), "192.168.1.21:8089", False),
    ],
)
def test_host_header_must_name_the_emulator(bound, extra, host, allowed):
    assert (AllowedHosts(bound, extra).refusal({"Host": host}) is None) is allowed


@pytest.mark.parametrize(
    ("headers", "allowed"),
    [
        ({}, True),  # requests, aiohttp, curl
        ({"Origin": "http://127.0.0.1:8089"}, True),
        ({"Origin": "http://127.0.0.1:3000"}, False),
        ({"Origin": "https://attacker.test"}, False),
        ({"Origin": "null"}, False),
        ({"Sec-Fetch-Site": "same-origin"}, True),
        ({"Sec-Fetch-Site": "none"}, True),  # typed into the address bar
        ({"Sec-Fetch-Site": "same-site"}, False),
        ({"Sec-Fetch-Site": "cross-site"}, False),
    ],
)
def test_browser_requests_from_other_origins_are_refused(headers, allowed):
    refusal = AllowedHosts("127.0.0.1").refusal({"Host": "127.0.0.1:8089", **headers})
    assert (refusal is None) is allowed
