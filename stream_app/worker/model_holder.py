"""The scoring model every pipeline step reads, swapped atomically when a snapshot arrives."""

from __future__ import annotations

import logging

from models.catalog import Catalog
from models.mapper import PersonaMapper

log = logging.getLogger(__name__)


class ModelHolder:
    def __init__(self, catalog: Catalog, half_life_s: float) -> None:
        self.catalog = catalog
        self.mapper = PersonaMapper(catalog, half_life_s=half_life_s)
        self.swaps = 0

    @property
    def version(self) -> int:
        return self.mapper.version

    def swap(self, snapshot: bytes) -> bool:
        """Hot-swap to a newer snapshot; older or equal versions are ignored."""
        mapper = PersonaMapper.from_snapshot(snapshot, self.catalog)
        if mapper.version <= self.mapper.version:
            return False
        self.mapper = mapper
        self.swaps += 1
        log.info("model hot-swapped to version %d (%d labels)", mapper.version, mapper.n_labels)
        return True
