"""The trainer exposes its model's drift flags for the metrics hook."""

from __future__ import annotations

from pathlib import Path

from models.catalog import Catalog
from models.evaluation import replay
from models.worlds import World
from stream_app.worker.model_holder import ModelHolder
from stream_app.worker.trainer import Trainer

CATALOG = Path(__file__).resolve().parents[3] / "models" / "catalogs" / "b2b_saas.yaml"


def test_drift_is_empty_before_labels_then_flags_per_persona() -> None:
    catalog = Catalog.load(CATALOG)
    holder = ModelHolder(catalog, half_life_s=604800.0)
    trainer = Trainer(holder, every_labels=50, every_s=10.0)
    assert trainer.drift() == {}
    examples = [
        {"state": replay(holder.mapper, v.events), "persona": v.persona, "weight": 1.0}
        for v in World(catalog, seed=2).visitors(20)
    ]
    trainer.learn(examples)
    flags = trainer.drift()
    assert set(flags) == {"log_loss", "persona_mix"}
    assert set(flags["persona_mix"]) == set(catalog.persona_ids)
    assert set(flags["log_loss"]) == {"all", *catalog.persona_ids}
    assert trainer.pending == 20
