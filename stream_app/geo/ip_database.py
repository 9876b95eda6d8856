"""IP -> country databases that live on this machine (nothing is downloaded at run time).

- :class:`OfflineDatabase`: ``iptocc``, the Regional Internet Registries' delegation data
  compiled into its wheel (a new release every night; the version pinned in pyproject.toml
  is the data's date). Country only, ~0.2 µs per lookup.
- :class:`MmdbDatabase`: a MaxMind-format ``.mmdb`` file (GeoLite2/GeoIP2 Country or City,
  or a compatible one) that ``PERSONA_GEO_MMDB_PATH`` points to; gives the region
  (first subdivision) too when the file has it.

Private, loopback, documentation and other reserved addresses are in neither kind of
database (the RIRs never delegate them), so they are looked up like any other and found in
none; an in-house ``.mmdb`` may map private networks on purpose.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

from stream_app.geo.client_ip import IPAddress
from stream_app.geo.codes import clean_region, iso_country
from stream_app.geo.location import Location


class IpDatabase(Protocol):
    name: str

    def lookup(self, address: IPAddress) -> Location | None: ...


class OfflineDatabase:
    name = "iptocc"

    def __init__(self) -> None:
        from iptocc import country_code

        self._country_code = country_code

    def lookup(self, address: IPAddress) -> Location | None:
        country = iso_country(self._country_code(str(address)))
        return Location(country, None, source="ip") if country else None


class MmdbDatabase:
    def __init__(self, path: Path) -> None:
        import maxminddb

        if not path.is_file():
            raise FileNotFoundError(f"PERSONA_GEO_MMDB_PATH: no file at {path}")
        self._reader: Any = maxminddb.open_database(str(path))
        self.name = f"mmdb:{self._reader.metadata().database_type}"

    def lookup(self, address: IPAddress) -> Location | None:
        try:
            record = self._reader.get(address)
        except ValueError:  # an IPv6 address in an IPv4-only file
            return None
        if not isinstance(record, dict):
            return None
        country = None
        for field in ("country", "registered_country"):
            part = record.get(field)
            if isinstance(part, dict):
                country = iso_country(part.get("iso_code"))
                if country:
                    break
        if country is None:
            return None
        region = None
        subdivisions = record.get("subdivisions")
        if isinstance(subdivisions, list) and subdivisions and isinstance(subdivisions[0], dict):
            region = clean_region(subdivisions[0].get("iso_code"))
        return Location(country, region, source="ip")

    def close(self) -> None:
        self._reader.close()
