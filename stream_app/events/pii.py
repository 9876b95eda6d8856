"""E-mail and phone traits are normalised and SHA-256 hashed at the edge.

E-mail: trimmed and lower-cased. Phone: spaces, dashes, dots and parentheses removed, a
leading ``+`` kept, then 6 to 15 ASCII digits. The hash is the hex SHA-256 of the
normalised value. Error messages never contain the raw value.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any

_PHONE_STRIP = re.compile(r"[\s\-().]")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_PHONE = re.compile(r"^\+?[0-9]{6,15}$")


def normalise_email(value: str) -> str:
    return value.strip().lower()


def normalise_phone(value: str) -> str:
    return _PHONE_STRIP.sub("", value.strip())


def sha256_hex(value: str) -> str:
    return hashlib.sha256(value.encode("utf-8")).hexdigest()


def hash_traits(
    traits: dict[str, Any], *, enabled: bool = True
) -> tuple[dict[str, Any], list[tuple[str, str]]]:
    """Return traits with ``email``/``phone`` replaced by ``*_sha256``, and field errors.

    Error messages never echo the raw value.
    """
    out = dict(traits)
    errors: list[tuple[str, str]] = []
    email = out.pop("email", None) if enabled else out.get("email")
    if email is not None:
        if not isinstance(email, str) or not _EMAIL.match(normalise_email(email)):
            errors.append(("traits.email", "must be an e-mail address like name@example.com"))
        elif enabled:
            out["email_sha256"] = sha256_hex(normalise_email(email))
    phone = out.pop("phone", None) if enabled else out.get("phone")
    if phone is not None:
        if not isinstance(phone, str) or not _PHONE.match(normalise_phone(phone)):
            errors.append(
                ("traits.phone", "must be a phone number of 6 to 15 digits, optionally with +")
            )
        elif enabled:
            out["phone_sha256"] = sha256_hex(normalise_phone(phone))
    return out, errors
