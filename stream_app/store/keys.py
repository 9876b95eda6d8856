"""Redis key names (INTERFACES.md 2.2 plus documented additions)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Keys:
    prefix: str = "ps:"

    def visitor(self, visitor_id: str) -> str:
        return f"{self.prefix}visitor:{visitor_id}"

    def audience(self, persona: str) -> str:
        return f"{self.prefix}audience:{persona}"

    def audience_pattern(self) -> str:
        return f"{self.prefix}audience:*"

    def kpi(self, persona: str) -> str:
        return f"{self.prefix}kpi:{persona}"

    # Additions (documented in README, "Redis keys"):
    def user(self, user_id: str) -> str:
        """user_id -> canonical visitor_id."""
        return f"{self.prefix}user:{user_id}"

    def alias(self, visitor_id: str) -> str:
        """merged anonymous visitor_id -> canonical visitor_id."""
        return f"{self.prefix}alias:{visitor_id}"

    def aliases(self, visitor_id: str) -> str:
        """set of the ids merged into a canonical visitor (for DELETE)."""
        return f"{self.prefix}aliases:{visitor_id}"

    def worker_stats(self, worker: str) -> str:
        """hash of one worker's live counters for the dashboard (expires when it stops)."""
        return f"{self.prefix}stats:worker:{worker}"

    def discovery(self, worker: str) -> str:
        """JSON list of one worker's candidate new personas (expires when it stops)."""
        return f"{self.prefix}discovery:{worker}"

    def discovery_index(self) -> str:
        """sorted set of the workers that reported candidates, scored by expiry (epoch s)."""
        return f"{self.prefix}discovery:workers"

    def worker_stats_index(self) -> str:
        """sorted set of the workers that reported live counters, scored by expiry (epoch s):
        read instead of a SCAN of the whole keyspace, which grows with the visitors."""
        return f"{self.prefix}stats:workers"

    def identity(self, visitor_id: str) -> str:
        """hash of hashed identifiers (email_sha256, phone_sha256) for audience export."""
        return f"{self.prefix}identity:{visitor_id}"
