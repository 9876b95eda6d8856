"""The served OpenAPI, made to say what the API really does.

FastAPI's generated document is completed from one table per route (:data:`ROUTE_DOCS`) and
the access policy (``auth.ROUTE_POLICIES``):

- request bodies: the native events from the pydantic models (``events/schema.py``), the
  Segment shapes (``events/segment_docs.py``), the catalog's personas as the label enum;
- every status code a route answers, with its content type: 401 (and ``WWW-Authenticate``)
  and 403 from the policy, 429 (and ``Retry-After``) on rate-limited routes, 400 instead of
  FastAPI's 422 (the API answers invalid parameters with 400);
- the security schemes: ``Authorization: Bearer``, Basic (key as username), ``?writeKey=``
  (write keys only).

``tests/integration/test_fuzz.py`` runs schemathesis over the result against the real API.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from models.catalog import Catalog
from stream_app.api.auth import Role, policy_of
from stream_app.api.methods import AllowedMethods
from stream_app.events import segment_docs
from stream_app.events.schema import EVENT_ADAPTER, ID_PATTERN
from stream_app.settings import Settings

JSON = "application/json"
REF = "#/components/schemas/{model}"


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


ERROR: dict[str, Any] = {
    "type": "object",
    "required": ["error"],
    "properties": {"error": {"type": "string"}},
}
COLLECT_RESULT: dict[str, Any] = {
    "type": "object",
    "required": ["accepted", "rejected"],
    "properties": {
        "accepted": {"type": "integer", "minimum": 0},
        "rejected": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["index", "errors"],
                "properties": {
                    "index": {"type": "integer"},
                    "event_id": {"type": ["string", "null"]},
                    "errors": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "required": ["field", "message"],
                            "properties": {
                                "field": {"type": "string"},
                                "message": {"type": "string"},
                            },
                        },
                    },
                },
            },
        },
    },
}
OBJECT: dict[str, Any] = {"type": "object"}


def _json(schema: dict[str, Any]) -> dict[str, Any]:
    return {JSON: {"schema": schema}}


@dataclass(frozen=True)
class Doc:
    """What a route answers, beyond what the access policy adds."""

    responses: dict[str, tuple[str, dict[str, Any]]] = field(default_factory=dict)
    body: str | None = None  # a components schema name


def _collect(body: str) -> Doc:
    return Doc(
        {
            "202": ("Accepted: at least one event went to Kafka", _json(_ref("CollectResult"))),
            "400": (
                "Every event refused (with the field and why), or a body that is not JSON",
                _json({"anyOf": [_ref("CollectResult"), _ref("Error")]}),
            ),
            "413": ("Body or batch too large", _json(_ref("Error"))),
            "415": ("Not application/json (or text/plain JSON)", _json(_ref("Error"))),
            "503": ("Kafka did not acknowledge: nothing accepted, retry", _json(OBJECT)),
        },
        body,
    )


STORE_DOWN = ("Redis unavailable", _json(_ref("Error")))
ROUTE_DOCS: dict[tuple[str, str], Doc] = {
    ("GET", "/healthz"): Doc({"200": ("Alive", _json(OBJECT))}),
    ("GET", "/readyz"): Doc(
        {"200": ("Kafka and Redis answer", _json(OBJECT)), "503": ("Not ready", _json(OBJECT))}
    ),
    ("GET", "/metrics"): Doc(
        {"200": ("Prometheus text format", {"text/plain": {"schema": {"type": "string"}}})}
    ),
    ("GET", "/tracker.js"): Doc(
        {"200": ("The browser tracker", {"text/javascript": {"schema": {"type": "string"}}})}
    ),
    ("POST", "/v1/events"): _collect("NativeBody"),
    ("POST", "/v1/batch"): _collect("SegmentBatch"),
    ("POST", "/v1/page"): _collect("SegmentPage"),
    ("POST", "/v1/track"): _collect("SegmentTrack"),
    ("POST", "/v1/identify"): _collect("SegmentIdentify"),
    ("GET", "/v1/visitors/{visitor_id}"): Doc(
        {
            "200": ("The lookup JSON (INTERFACES 2.1)", _json(OBJECT)),
            "404": (
                "Unknown visitor (also: a user id asked with a write key)",
                _json(_ref("Error")),
            ),
            "503": STORE_DOWN,
        }
    ),
    ("DELETE", "/v1/visitors/{visitor_id}"): Doc(
        {
            "200": ("Forget requests sent", _json(OBJECT)),
            "503": ("Kafka or Redis unavailable: not forgotten, retry", _json(_ref("Error"))),
        }
    ),
    ("GET", "/v1/personas"): Doc(
        {"200": ("The catalog with live numbers", _json(OBJECT)), "503": STORE_DOWN}
    ),
    ("GET", "/v1/audiences/{persona}"): Doc(
        {
            "200": (
                "The audience: CSV (default) or JSON (format=json)",
                {"text/csv": {"schema": {"type": "string"}}, **_json(OBJECT)},
            ),
            "400": ("Invalid query parameter", _json(_ref("ParameterErrors"))),
            "404": ("Unknown persona (the known ones are listed)", _json(_ref("Error"))),
            "503": STORE_DOWN,
        }
    ),
    ("GET", "/v1/stats"): Doc({"200": ("Live numbers", _json(OBJECT)), "503": STORE_DOWN}),
    ("GET", "/dashboard"): Doc(
        {"200": ("The dashboard page", {"text/html": {"schema": {"type": "string"}}})}
    ),
}

SECURITY_SCHEMES = {
    "bearer": {"type": "http", "scheme": "bearer", "description": "any key"},
    "basic": {
        "type": "http",
        "scheme": "basic",
        "description": "any key as the username (Segment clients); the password is ignored",
    },
    "writeKey": {
        "type": "apiKey",
        "in": "query",
        "name": "writeKey",
        "description": "write keys only (beacons); a secret key here counts as a write key",
    },
}


def native_schemas() -> dict[str, Any]:
    """The native event schemas (from the pydantic models) and the request body of /v1/events."""
    event = EVENT_ADAPTER.json_schema(ref_template=REF)
    schemas: dict[str, Any] = dict(event.pop("$defs"))
    schemas["NativeEvent"] = event
    return schemas


def build_components(catalog: Catalog, settings: Settings) -> dict[str, Any]:
    schemas = native_schemas()
    schemas["Label"]["properties"]["persona"] = {"type": "string", "enum": catalog.persona_ids}
    personas = list(catalog.persona_ids)
    schemas["NativeBody"] = {
        "description": "one native event, or a batch {events: [...]}",
        "oneOf": [
            _ref("NativeEvent"),
            {
                "type": "object",
                "required": ["events"],
                "additionalProperties": False,
                "properties": {
                    "events": {
                        "type": "array",
                        "maxItems": settings.max_batch_events,
                        "items": _ref("NativeEvent"),
                    }
                },
            },
        ],
    }
    schemas["SegmentPage"] = segment_docs.PAGE
    schemas["SegmentTrack"] = segment_docs.track(personas)
    schemas["SegmentIdentify"] = segment_docs.IDENTIFY
    schemas["SegmentBatch"] = segment_docs.batch(personas, settings.max_batch_events)
    schemas["Error"] = ERROR
    schemas["CollectResult"] = COLLECT_RESULT
    schemas["ParameterErrors"] = {
        "type": "object",
        "required": ["error", "errors"],
        "properties": {"error": {"type": "string"}, "errors": {"type": "array"}},
    }
    return {"schemas": schemas, "securitySchemes": SECURITY_SCHEMES}


def _access_responses(method: str, path: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    policy = policy_of(method, path)
    if policy.role is None:
        return {}, []
    challenge = {"WWW-Authenticate": {"schema": {"type": "string"}}}
    responses: dict[str, Any] = {
        "401": {
            "description": "No key, or an unknown key",
            "headers": challenge,
            "content": _json(_ref("Error")),
        }
    }
    security: list[dict[str, Any]] = [{"bearer": []}, {"basic": []}]
    if policy.role > Role.WRITE:
        responses["403"] = {
            "description": f"The key lacks the {policy.role.name.lower()} role",
            "content": _json(_ref("Error")),
        }
    else:
        security.append({"writeKey": []})
    if policy.limited:
        responses["429"] = {
            "description": "Rate limited (per client IP and per key)",
            "headers": {"Retry-After": {"schema": {"type": "string", "pattern": "^[0-9]+$"}}},
            "content": _json(_ref("Error")),
        }
    return responses, security


def _share_ids(node: Any) -> Any:
    """Every id schema (its pattern is ~2,000 characters) as one ``$ref`` to ``Id``."""
    if isinstance(node, dict):
        if node.get("pattern") == ID_PATTERN and node.get("type") == "string":
            return _ref("Id")
        return {k: _share_ids(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_share_ids(v) for v in node]
    return node


def complete(schema: dict[str, Any], catalog: Catalog, settings: Settings) -> dict[str, Any]:
    """Fill in bodies, statuses, content types and security (in place; returns it)."""
    components = schema.setdefault("components", {})
    built = build_components(catalog, settings)
    components.setdefault("schemas", {}).update(_share_ids(built["schemas"]))
    components["schemas"]["Id"] = {
        "type": "string",
        "minLength": 1,
        "maxLength": 128,
        "pattern": ID_PATTERN,
        "description": "printable Unicode (str.isprintable): no control, format, surrogate, "
        "private-use or unassigned code points, no separators but the space",
    }
    components["securitySchemes"] = built["securitySchemes"]
    for name in ("HTTPValidationError", "ValidationError"):
        components["schemas"].pop(name, None)
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            key = (method.upper(), path)
            doc = ROUTE_DOCS.get(key, Doc())
            access, security = _access_responses(*key)
            responses = {
                status: {"description": text, "content": content}
                for status, (text, content) in doc.responses.items()
            }
            operation["responses"] = {**responses, **access}
            for parameter in operation.get("parameters", []):
                if parameter["name"] == "persona" and parameter["in"] == "path":
                    parameter["schema"] = {"type": "string", "enum": catalog.persona_ids}
            operation["security"] = security
            if doc.body:
                operation["requestBody"] = {"required": True, "content": _json(_ref(doc.body))}
    return schema


def install_openapi(app: FastAPI, catalog: Catalog, settings: Settings) -> None:
    """Serve the completed document at /openapi.json (built once, on first request)."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            base = get_openapi(
                title=app.title,
                version=app.version,
                description=app.description,
                routes=app.routes,
            )
            app.openapi_schema = complete(base, catalog, settings)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    app.add_middleware(AllowedMethods, paths=lambda: openapi()["paths"])
