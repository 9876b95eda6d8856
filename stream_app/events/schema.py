"""Native events, exactly as INTERFACES.md section 1.1 states them (pydantic v2).

Integer fields are strict (``"5"`` and ``true`` are not integers). Unknown top-level
fields are ignored and not forwarded, so producers can add fields without breaking.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StrictFloat,
    StrictInt,
    StringConstraints,
    ValidationInfo,
    field_validator,
    model_validator,
)

MAX_FUTURE = timedelta(hours=24)
Id = Annotated[str, StringConstraints(min_length=1, max_length=128)]
Text = Annotated[str, StringConstraints(max_length=2048)]


def _http_url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError("must be an absolute http or https URL")
    return value


def _url_or_empty(value: str) -> str:
    return value if value == "" else _http_url(value)


HttpUrl = Annotated[str, StringConstraints(max_length=8192), AfterValidator(_http_url)]
UrlOrEmpty = Annotated[str, StringConstraints(max_length=8192), AfterValidator(_url_or_empty)]


class Context(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    user_agent: Annotated[str, StringConstraints(max_length=1024)] | None = None
    ip: Annotated[str, StringConstraints(max_length=64)] | None = None
    locale: Annotated[str, StringConstraints(max_length=35)] | None = None
    country: str | None = None
    region: Annotated[str, StringConstraints(max_length=128)] | None = None
    city: Annotated[str, StringConstraints(max_length=128)] | None = None

    @field_validator("country", mode="before")
    @classmethod
    def _country(cls, value: Any) -> Any:
        if value is None:
            return None
        if (
            not isinstance(value, str)
            or len(value) != 2
            or not value.isalpha()
            or not value.isascii()
        ):
            raise ValueError("must be an ISO 3166-1 alpha-2 country code like 'DE'")
        return value.upper()


class EventBase(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    event_id: Id
    visitor_id: Id
    user_id: Id | None = None
    ts: AwareDatetime
    context: Context | None = None

    @field_validator("ts")
    @classmethod
    def _not_far_future(cls, value: datetime, info: ValidationInfo) -> datetime:
        now = (info.context or {}).get("now") or datetime.now(UTC)
        if value - now > MAX_FUTURE:
            raise ValueError("must not be more than 24 hours in the future")
        return value.astimezone(UTC)


class PageView(EventBase):
    type: Literal["page_view"]
    url: HttpUrl
    referrer: UrlOrEmpty | None = None
    title: Text | None = None
    dwell_ms: Annotated[StrictInt, Field(ge=0, le=86_400_000)] | None = None


class Touchpoint(EventBase):
    type: Literal["touchpoint"]
    channel: Literal[
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
    ]
    action: Literal["impression", "click", "open", "submit", "attend", "reply", "purchase", "other"]
    name: Text | None = None
    campaign: Text | None = None
    value: StrictFloat | None = None  # strict float still accepts integers, not "10" or true


SCORE_RANGES = {"nps": (0, 10), "csat": (1, 5), "ces": (1, 7)}


class Feedback(EventBase):
    type: Literal["feedback"]
    kind: Literal["nps", "csat", "ces"]
    score: StrictInt
    touchpoint: Text | None = None
    comment: Annotated[str, StringConstraints(max_length=2000)] | None = None

    @model_validator(mode="after")
    def _score_in_range(self) -> Feedback:
        low, high = SCORE_RANGES[self.kind]
        if not low <= self.score <= high:
            raise ValueError(f"score: {self.kind} score must be an integer from {low} to {high}")
        return self


class Identify(EventBase):
    type: Literal["identify"]
    user_id: Id
    traits: dict[str, Any] = Field(default_factory=dict)


class Label(EventBase):
    type: Literal["label"]
    persona: Id
    source: Literal["survey", "crm", "onboarding", "manual"]
    weight: Annotated[StrictFloat, Field(gt=0, le=1)] = 1.0


EVENT_TYPES: dict[str, type[EventBase]] = {
    "page_view": PageView,
    "touchpoint": Touchpoint,
    "feedback": Feedback,
    "identify": Identify,
    "label": Label,
}
