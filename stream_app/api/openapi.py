"""The served OpenAPI, made to say what the API really does (placeholder, filled below)."""

from __future__ import annotations

from fastapi import FastAPI


def install_openapi(app: FastAPI) -> None:
    return None
