"""Every worker follows the compacted model topic and hot-swaps to each newer snapshot."""

from __future__ import annotations

import asyncio
import logging

from stream_app.settings import Settings
from stream_app.worker.model_holder import ModelHolder

log = logging.getLogger(__name__)
MODEL_KEY = b"persona-mapper"


class ModelSync:
    def __init__(self, settings: Settings, holder: ModelHolder) -> None:
        self.settings = settings
        self.holder = holder
        self.loaded = asyncio.Event()  # set once the topic was read up to its end at start-up

    async def run(self) -> None:
        from aiokafka import AIOKafkaConsumer, TopicPartition

        while True:
            consumer = AIOKafkaConsumer(
                bootstrap_servers=self.settings.kafka_bootstrap,
                group_id=None,
                enable_auto_commit=False,
                max_partition_fetch_bytes=16 * 1024 * 1024,
                fetch_max_bytes=64 * 1024 * 1024,
            )
            try:
                await consumer.start()
                tp = TopicPartition(self.settings.topic_models, 0)
                consumer.assign([tp])
                await consumer.seek_to_beginning(tp)
                end = (await consumer.end_offsets([tp]))[tp]
                if end == 0:
                    self.loaded.set()
                while True:
                    batches = await consumer.getmany(tp, timeout_ms=1000)
                    for msg in batches.get(tp, []):
                        if msg.key == MODEL_KEY and msg.value:
                            try:
                                self.holder.swap(msg.value)
                            except Exception:
                                log.exception(
                                    "ignoring an unreadable model snapshot at %s", msg.offset
                                )
                        if msg.offset + 1 >= end:
                            self.loaded.set()
                    if not batches and await consumer.position(tp) >= end:
                        self.loaded.set()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("model sync failed; retrying in 2s")
                await asyncio.sleep(2.0)
            finally:
                await consumer.stop()
