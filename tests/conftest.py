"""Fixtures shared by every test area: settings and the real-service guards.

Tests that need Kafka or Redis use ``kafka_bootstrap`` / ``redis_url``. When the
service does not answer, they FAIL with a message saying how to start it; they
never skip. ``bash deploy/local/test.sh`` starts both before running pytest.
"""

from __future__ import annotations

import asyncio
import uuid
import warnings

import pytest

from stream_app.settings import Settings

warnings.filterwarnings("ignore", category=DeprecationWarning, module="kafka")

HOW_TO_START = (
    "start it with `bash deploy/local/infra.sh start` (the README test command does this)"
)


@pytest.fixture(scope="session")
def base_settings() -> Settings:
    return Settings()


@pytest.fixture(scope="session")
def redis_url(base_settings: Settings) -> str:
    import redis

    url = base_settings.redis_url.get_secret_value()
    client = redis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=2)
    try:
        client.ping()
    except Exception as exc:
        pytest.fail(f"Redis is not reachable at {url} ({exc!r}); {HOW_TO_START}", pytrace=False)
    finally:
        client.close()
    return url


@pytest.fixture(scope="session")
def kafka_bootstrap(base_settings: Settings) -> str:
    from stream_app.topics import kafka_answers

    bootstrap = base_settings.kafka_bootstrap
    if not asyncio.run(kafka_answers(bootstrap, timeout_s=10.0)):
        pytest.fail(f"Kafka is not reachable at {bootstrap}; {HOW_TO_START}", pytrace=False)
    return bootstrap


@pytest.fixture
def unique() -> str:
    """A short unique token for topic names, consumer groups and key prefixes."""
    return uuid.uuid4().hex[:10]
