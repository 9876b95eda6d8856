"""IP -> country: the offline database in the iptocc wheel, and a MaxMind .mmdb file."""

from __future__ import annotations

import ipaddress
import time
from pathlib import Path

import pytest

from stream_app.geo.ip_database import MmdbDatabase, OfflineDatabase
from stream_app.geo.locate import Locator

ip = ipaddress.ip_address


@pytest.mark.parametrize(
    ("address", "country"),
    [
        # Public, long-standing allocations (RIR data): Google, APNIC/Cloudflare, RIPE NCC.
        ("8.8.8.8", "US"),
        ("1.1.1.1", "AU"),
        ("193.0.6.139", "NL"),
        ("2001:4860:4860::8888", "US"),
    ],
)
def test_public_test_ips_through_the_offline_database(address: str, country: str) -> None:
    found = OfflineDatabase().lookup(ip(address))
    assert found is not None
    assert (found.country, found.source) == (country, "ip")


@pytest.mark.parametrize(
    "address",
    ["10.1.2.3", "127.0.0.1", "192.168.0.9", "203.0.113.9", "::1", "fe80::1", "2001:db8::1"],
)
def test_private_and_reserved_addresses_have_no_country(address: str) -> None:
    assert OfflineDatabase().lookup(ip(address)) is None


def test_the_offline_lookup_is_cheap() -> None:
    db = OfflineDatabase()
    addresses = [ip(f"{a}.{b}.7.9") for a in range(1, 224) for b in range(0, 256, 16)]
    started = time.perf_counter()
    for address in addresses:
        db.lookup(address)
    per_lookup_us = (time.perf_counter() - started) / len(addresses) * 1e6
    assert per_lookup_us < 50, f"{per_lookup_us:.1f} µs per lookup"


def write_mmdb(path: Path) -> None:
    from mmdb_writer import MMDBWriter
    from netaddr import IPSet

    writer = MMDBWriter(ip_version=6, database_type="Test-City", ipv4_compatible=True)
    writer.insert_network(
        IPSet(["81.2.69.0/24"]),
        {"country": {"iso_code": "GB"}, "subdivisions": [{"iso_code": "ENG"}]},
    )
    writer.insert_network(
        IPSet(["2a00:1450:4001::/48"]), {"registered_country": {"iso_code": "SE"}}
    )
    writer.insert_network(IPSet(["203.0.113.0/24"]), {"country": {"iso_code": "XX"}})
    writer.to_db_file(str(path))


def test_an_mmdb_file_gives_country_and_region(tmp_path: Path) -> None:
    path = tmp_path / "test-city.mmdb"
    write_mmdb(path)
    db = MmdbDatabase(path)
    try:
        assert db.name == "mmdb:Test-City"
        found = db.lookup(ip("81.2.69.142"))
        assert found is not None and (found.country, found.region) == ("GB", "ENG")
        found = db.lookup(ip("2a00:1450:4001::5"))
        assert found is not None and (found.country, found.region) == ("SE", None)
        assert db.lookup(ip("2001:db8:1::5")) is None  # not in the file
        assert db.lookup(ip("8.8.8.8")) is None  # not in the file
        assert db.lookup(ip("203.0.113.5")) is None  # in the file as "XX": no country
    finally:
        db.close()


def test_the_mmdb_setting_replaces_the_offline_database(tmp_path: Path) -> None:
    from stream_app.settings import Settings

    path = tmp_path / "test-city.mmdb"
    write_mmdb(path)
    locator = Locator.from_settings(Settings(geo_mmdb_path=path))
    assert isinstance(locator.database, MmdbDatabase)
    found = locator.locate_request({}, "81.2.69.142")
    assert found is not None and (found.country, found.region) == ("GB", "ENG")
    with pytest.raises(FileNotFoundError, match="PERSONA_GEO_MMDB_PATH"):
        Locator.from_settings(Settings(geo_mmdb_path=tmp_path / "missing.mmdb"))


def test_ip_lookup_can_be_turned_off() -> None:
    from stream_app.settings import Settings

    locator = Locator.from_settings(Settings(geo_ip_lookup=False))
    assert locator.database is None
    assert locator.locate_request({}, "8.8.8.8") is None
