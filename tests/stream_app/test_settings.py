"""Settings: every PERSONA_* variable is documented, read from the environment, frozen."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from pydantic import ValidationError

from stream_app.settings import Settings

README = Path(__file__).resolve().parents[2] / "README.md"


def test_every_setting_is_in_the_readme_configuration_table() -> None:
    documented = set(re.findall(r"^\| `(PERSONA_[A-Z0-9_]+)` \|", README.read_text(), re.M))
    names = {f"PERSONA_{name.upper()}" for name in Settings.model_fields}
    assert names - documented == set(), "settings missing from README's configuration table"
    assert documented - names == set(), "README documents settings that do not exist"


def test_batch_settings_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PERSONA_BATCH_WITHIN_MS", "20")
    monkeypatch.setenv("PERSONA_BATCH_MAX_EVENTS", "250")
    s = Settings()
    assert (s.batch_within_ms, s.batch_max_events) == (20, 250)


def test_settings_are_validated_and_frozen(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PERSONA_BATCH_WITHIN_MS", "0")
    with pytest.raises(ValidationError, match="batch_within_ms"):
        Settings()
    monkeypatch.delenv("PERSONA_BATCH_WITHIN_MS")
    with pytest.raises(ValidationError):
        Settings().batch_max_events = 5  # type: ignore[misc]
