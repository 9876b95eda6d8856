"""Errors raised by the models package."""

from __future__ import annotations


class UnknownPersonaError(ValueError):
    """A label named a persona that is not in the catalog."""

    def __init__(self, persona: str, known: list[str]) -> None:
        self.persona = persona
        super().__init__(f"unknown persona {persona!r}; the catalog has: {', '.join(known)}")
