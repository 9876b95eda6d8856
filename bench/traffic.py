"""Background traffic for a latency measurement, at a fixed rate, in a process of its own.

    .venv/bin/python bench/traffic.py --bootstrap 127.0.0.1:9092 --topic T --rate 5000 \
        --seconds 20 --input events.jsonl

``events.jsonl`` holds one pre-encoded event a line (``visitor_id`` is the key). The load
generator shares the 2 cores with the worker, Kafka and Redis, so it must cost as little as
it can: kafka-python's producer took 80-90% of a core for 7,000 events/s and competed with
the worker it measured. Here every 2 ms the events due are appended to one aiokafka record
batch per partition (keys placed by Kafka's default murmur2 partitioner, as any client
would) and sent with ``acks=all``; each record's timestamp is taken when it is appended.
Prints one JSON line: events sent, seconds, CPU seconds used.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
import warnings
from collections import defaultdict
from typing import Any

warnings.filterwarnings("ignore", category=DeprecationWarning)

import orjson  # noqa: E402
from aiokafka import AIOKafkaProducer  # noqa: E402
from aiokafka.partitioner import DefaultPartitioner  # noqa: E402


def load(path: str) -> list[tuple[bytes, bytes]]:
    with open(path, "rb") as f:
        return [(orjson.loads(line)["visitor_id"].encode(), line.rstrip(b"\n")) for line in f]


async def run(args: argparse.Namespace, events: list[tuple[bytes, bytes]]) -> dict[str, float]:
    producer = AIOKafkaProducer(bootstrap_servers=args.bootstrap, acks="all", linger_ms=0)
    await producer.start()
    try:
        partitions = sorted(await producer.partitions_for(args.topic))
        place = DefaultPartitioner()
        pending: list[asyncio.Future[object]] = []
        cpu0, start = time.process_time(), time.perf_counter()
        sent = 0
        while (now := time.perf_counter()) - start < args.seconds and sent < len(events):
            due = min(int((now - start) * args.rate), len(events))
            if due > sent:
                batches: dict[int, Any] = defaultdict(producer.create_batch)
                for key, value in events[sent:due]:
                    p = place(key, partitions, partitions)
                    if batches[p].append(key=key, value=value, timestamp=None) is None:
                        # full (the producer's max batch size): send it, start another
                        pending.append(
                            await producer.send_batch(batches.pop(p), args.topic, partition=p)
                        )
                        batches[p].append(key=key, value=value, timestamp=None)
                sent = due
                for p, batch in batches.items():
                    pending.append(await producer.send_batch(batch, args.topic, partition=p))
                pending = [f for f in pending if not f.done()]
            await asyncio.sleep(0.002)
        await asyncio.gather(*pending)
        elapsed = time.perf_counter() - start
        return {"sent": sent, "seconds": elapsed, "cpu_s": time.process_time() - cpu0}
    finally:
        await producer.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--topic", required=True)
    parser.add_argument("--rate", type=float, required=True, help="events per second")
    parser.add_argument("--seconds", type=float, required=True)
    parser.add_argument("--input", required=True, help="one JSON event a line")
    args = parser.parse_args()
    print(json.dumps(asyncio.run(run(args, load(args.input)))), flush=True)


if __name__ == "__main__":
    main()
