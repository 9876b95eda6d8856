"""The persona catalog: personas, linking rules, page categories and journey rules.

Loaded from YAML and validated with pydantic. :class:`CatalogError` lists *every*
problem with its location (``line 12: linking_rules[3].persona: unknown persona``).
"""

from __future__ import annotations

from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    field_validator,
)

PHASES = ("awareness", "consideration", "decision", "purchase", "retention")
FEATURES = (
    "device",
    "os",
    "browser",
    "channel",
    "page",
    "dwell",
    "hour",
    "day",
    "country",
    "region",
    "touch",
    "action",
    "type",
)


TOUCH_CHANNELS = (
    "email",
    "social",
    "paid_search",
    "display",
    "webinar",
    "form",
    "chat",
    "call",
    "store",
    "event",
    "other",
)
TOUCH_ACTIONS = ("impression", "click", "open", "submit", "attend", "reply", "purchase", "other")
CHANNELS = (
    "organic_search",
    "paid_search",
    "social",
    "email",
    "display",
    "referral",
    "direct",
    "other",
)
# The values the enrichment can produce, per feature (None = open-ended, e.g. os, country).
KNOWN_VALUES: dict[str, set[str]] = {
    "device": {"desktop", "mobile", "tablet", "bot", "unknown"},
    "channel": set(CHANNELS),
    "dwell": {"short", "medium", "long"},
    "hour": {"night", "morning", "afternoon", "evening"},
    "day": {"weekday", "weekend"},
    "region": {"emea", "amer", "apac", "other"},
    "touch": {f"{c}:{a}" for c in TOUCH_CHANNELS for a in TOUCH_ACTIONS},
    "action": set(TOUCH_ACTIONS),
    "type": {"page_view", "touchpoint", "feedback", "identify", "label"},
}


class CatalogError(ValueError):
    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("invalid persona catalog:\n  " + "\n  ".join(problems))


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


Condition = dict[str, list[str]]


def _check_condition(value: Condition) -> Condition:
    if not value:
        raise ValueError("needs at least one feature condition")
    for feature, values in value.items():
        if feature not in FEATURES:
            raise ValueError(f"unknown feature {feature!r}; known: {', '.join(FEATURES)}")
        if not values:
            raise ValueError(f"feature {feature!r} needs at least one value")
    return value


class PersonaDisplay(_Strict):
    """Optional content a website shows to visitors of this persona (hero banner and CTA)."""

    headline: str | None = Field(None, min_length=1, max_length=120)
    text: str | None = Field(None, min_length=1, max_length=400)
    cta: str | None = Field(None, min_length=1, max_length=40)
    cta_url: str | None = Field(None, pattern=r"^(/|https?://)\S*$")


class Persona(_Strict):
    id: str = Field(min_length=1, max_length=64, pattern=r"^[a-z0-9_\-]+$")
    name: str = Field(min_length=1)
    description: str = ""
    goals: list[str] = Field(default_factory=list)
    pain_points: list[str] = Field(default_factory=list)
    phases: list[str] = Field(default_factory=list)
    display: PersonaDisplay | None = None

    def display_content(self) -> dict[str, str]:
        """Hero content for this persona; missing fields fall back to name and description."""
        d = self.display or PersonaDisplay()
        return {
            "headline": d.headline or self.name,
            "text": d.text or self.description or self.name,
            "cta": d.cta or "Learn more",
            "cta_url": d.cta_url or "/",
        }

    @field_validator("phases")
    @classmethod
    def _phases(cls, value: list[str]) -> list[str]:
        for phase in value:
            if phase not in PHASES:
                raise ValueError(f"unknown phase {phase!r}; known: {', '.join(PHASES)}")
        return value


class LinkingRule(_Strict):
    persona: str
    when: Condition
    weight: float = Field(gt=-10, lt=10)

    _when = field_validator("when")(classmethod(lambda cls, v: _check_condition(v)))


class PageCategory(_Strict):
    pattern: str = Field(min_length=1)
    category: str = Field(min_length=1)


class JourneyRule(_Strict):
    phase: str
    when: Condition
    after: str | None = None  # the rule applies only once the visitor reached this phase

    _when = field_validator("when")(classmethod(lambda cls, v: _check_condition(v)))

    @field_validator("phase", "after")
    @classmethod
    def _phase(cls, value: str | None) -> str | None:
        if value is not None and value not in PHASES:
            raise ValueError(f"unknown phase {value!r}; known: {', '.join(PHASES)}")
        return value


class Catalog(_Strict):
    version: int = 1
    name: str = "catalog"
    personas: list[Persona]
    linking_rules: list[LinkingRule] = Field(default_factory=list)
    page_categories: list[PageCategory] = Field(default_factory=list)
    journey: list[JourneyRule] = Field(default_factory=list)
    _page_cache: dict[str, str] = PrivateAttr(default_factory=dict)

    @property
    def persona_ids(self) -> list[str]:
        return [p.id for p in self.personas]

    def persona(self, persona_id: str) -> Persona | None:
        return next((p for p in self.personas if p.id == persona_id), None)

    def page_category(self, path: str) -> str:
        """Category of a URL path: the first matching pattern wins; ``other`` if none does."""
        cache = self._page_cache
        hit = cache.get(path)
        if hit is not None:
            return hit
        category = next(
            (r.category for r in self.page_categories if fnmatchcase(path, r.pattern)), "other"
        )
        if len(cache) >= 20_000:
            cache.clear()
        cache[path] = category
        return category

    # -- loading ----------------------------------------------------------------------
    @classmethod
    def load(cls, path: str | Path) -> Catalog:
        text = Path(path).read_text(encoding="utf-8")
        return cls.from_yaml(text, source=str(path))

    @classmethod
    def from_yaml(cls, text: str, source: str = "<catalog>") -> Catalog:
        try:
            node = yaml.compose(text)
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise CatalogError([f"{source}: not valid YAML: {exc}"]) from None
        if not isinstance(data, dict):
            raise CatalogError([f"{source}: the catalog must be a mapping with a 'personas' list"])
        lines = _line_index(node)
        return cls.from_dict(data, locate=lambda loc: lines.get(loc), source=source)

    @classmethod
    def from_dict(
        cls, data: dict[str, Any], locate: Any = None, source: str = "<catalog>"
    ) -> Catalog:
        problems: list[str] = []

        def where(loc: tuple[Any, ...]) -> str:
            line = None
            probe = loc
            while locate and line is None and probe:
                line = locate(probe)
                probe = probe[:-1]
            path = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in loc).lstrip(".")
            return f"{source}:{line}: {path}" if line else f"{source}: {path or '(top)'}"

        catalog = None
        try:
            catalog = cls.model_validate(data)
        except ValidationError as exc:
            for err in exc.errors(include_url=False, include_input=False):
                loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and "[" in p))
                msg = str(err["msg"]).removeprefix("Value error, ")
                problems.append(f"{where(loc)}: {msg}")
        problems += [f"{where(loc)}: {msg}" for loc, msg in _cross_checks(data)]
        if problems or catalog is None:
            raise CatalogError(problems)
        return catalog


def _line_index(node: Any, path: tuple[Any, ...] = ()) -> dict[tuple[Any, ...], int]:
    """Map each YAML path (keys and list indexes) to its 1-based line number."""
    out: dict[tuple[Any, ...], int] = {}
    if node is None:
        return out
    out[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            child = (*path, key.value)
            out[child] = key.start_mark.line + 1
            out.update({k: v for k, v in _line_index(value, child).items() if k != child})
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            out.update(_line_index(item, (*path, i)))
    return out


def _cross_checks(data: dict[str, Any]) -> list[tuple[tuple[Any, ...], str]]:
    """Checks across sections, on the raw data so they run even when fields are invalid."""
    out: list[tuple[tuple[Any, ...], str]] = []
    personas = data.get("personas")
    if isinstance(personas, list) and not personas:
        out.append((("personas",), "the catalog has no personas"))
    seen: set[str] = set()
    for i, p in enumerate(personas if isinstance(personas, list) else []):
        pid = p.get("id") if isinstance(p, dict) else None
        if isinstance(pid, str):
            if pid in seen:
                out.append((("personas", i, "id"), f"duplicate persona id {pid!r}"))
            seen.add(pid)
    rules = data.get("linking_rules")
    for i, rule in enumerate(rules if isinstance(rules, list) else []):
        persona = rule.get("persona") if isinstance(rule, dict) else None
        if isinstance(persona, str) and persona not in seen:
            out.append((("linking_rules", i, "persona"), f"unknown persona {persona!r}"))
    pages = data.get("page_categories")
    categories = {"other"} | {
        str(r["category"])
        for r in (pages if isinstance(pages, list) else [])
        if isinstance(r, dict) and "category" in r
    }
    for section in ("linking_rules", "journey"):
        items = data.get(section)
        for i, rule in enumerate(items if isinstance(items, list) else []):
            when = rule.get("when") if isinstance(rule, dict) else None
            for feature, values in (when if isinstance(when, dict) else {}).items():
                allowed = categories if feature == "page" else KNOWN_VALUES.get(feature)
                for j, value in enumerate(values if isinstance(values, list) else []):
                    if allowed is not None and value not in allowed:
                        hint = ", ".join(sorted(allowed))
                        loc = (section, i, "when", feature, j)
                        out.append((loc, f"{feature} value {value!r} never occurs; known: {hint}"))
    return out
