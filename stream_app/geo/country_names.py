"""Country names (as Segment's ``context.location.country`` carries them) -> ISO alpha-2.

Built once from pycountry: each country's name, official name, common name and alpha-3
code, plus the everyday English forms that differ from ISO's ("USA", "UK", "Russia" ...).
Matching ignores case, surrounding space and a leading "the".
"""

from __future__ import annotations

import pycountry

from stream_app.geo.codes import iso_country

_EVERYDAY = {
    "usa": "US",
    "u.s.": "US",
    "u.s.a.": "US",
    "america": "US",
    "united states of america": "US",
    "uk": "GB",
    "u.k.": "GB",
    "great britain": "GB",
    "britain": "GB",
    "england": "GB",
    "scotland": "GB",
    "wales": "GB",
    "northern ireland": "GB",
    "russia": "RU",
    "czech republic": "CZ",
    "turkey": "TR",
    "ivory coast": "CI",
    "cote d'ivoire": "CI",
    "macedonia": "MK",
    "holland": "NL",
    "the netherlands": "NL",
    "vatican": "VA",
    "vatican city": "VA",
    "brunei": "BN",
    "cape verde": "CV",
    "swaziland": "SZ",
    "burma": "MM",
    "palestine": "PS",
    "micronesia": "FM",
    "hong kong sar": "HK",
    "macau": "MO",
    "korea": "KR",
    "republic of korea": "KR",
    "democratic republic of the congo": "CD",
    "dr congo": "CD",
    "republic of the congo": "CG",
    "congo-brazzaville": "CG",
    "congo-kinshasa": "CD",
    "east timor": "TL",
    "uae": "AE",
}


def _key(name: str) -> str:
    key = " ".join(name.strip().lower().split())
    return key[4:] if key.startswith("the ") else key


def _build() -> dict[str, str]:
    table: dict[str, str] = {}
    for country in pycountry.countries:
        code = country.alpha_2
        for attr in ("name", "official_name", "common_name", "alpha_3"):
            value = getattr(country, attr, None)
            if isinstance(value, str):
                table.setdefault(_key(value), code)
    for name, code in _EVERYDAY.items():
        table[_key(name)] = code
    return table


_BY_NAME = _build()


def country_code_of(value: object) -> str | None:
    """An ISO alpha-2 code from a code ("de"), an alpha-3 code ("DEU") or a name ("Germany")."""
    if not isinstance(value, str):
        return None
    code = iso_country(value.strip())
    if code is not None:
        return code
    return _BY_NAME.get(_key(value)) if len(value) <= 80 else None
