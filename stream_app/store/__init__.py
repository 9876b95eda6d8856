"""Serving store (Redis in production, memory in unit tests)."""

from stream_app.store.base import VisitorStore, VisitorWrite

__all__ = ["VisitorStore", "VisitorWrite"]
