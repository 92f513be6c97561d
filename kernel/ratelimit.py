"""Per-key admission state, pure: token buckets and the cached controls of each key.

A key's bucket holds at most ``burst`` tokens and refills at ``rate`` tokens a second; a request
costs one token and a lookup batch one per item. Buckets are kept in each replica's memory, not
in PostgreSQL: a shared bucket would cost a database round trip on every request, the very cost a
limit is there to bound. With several replicas behind one balancer each enforces its share,
``rate / HASHGUARD_RATE_REPLICAS`` (and the burst likewise), so a key gets at most its whole rate
across the fleet; an uneven balancer gives it somewhat less, never more.

Times are passed in (``now``, monotonic seconds), so the rules are tested without a clock.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field


@dataclass(frozen=True, kw_only=True, slots=True)
class KeyControls:
    """What is set on one key beside its role: distances shown, its own limit, a suspension."""

    distances: bool = False
    rate_per_s: float | None = None  # None: the settings' default
    burst: int | None = None
    suspended: bool = False
    suspended_reason: str | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class Limit:
    """Tokens a second and bucket size; ``rate == 0`` means unlimited."""

    rate: float
    burst: float

    @property
    def unlimited(self) -> bool:
        return self.rate <= 0


def effective_limit(controls: KeyControls, *, default_rate: float, default_burst: int, replicas: int) -> Limit:
    """The limit this replica enforces for a key: its own or the default, divided among the replicas."""
    rate = controls.rate_per_s if controls.rate_per_s is not None else default_rate
    burst = controls.burst if controls.burst is not None else default_burst
    share = max(1, replicas)
    return Limit(rate=rate / share, burst=max(1.0, burst / share))


@dataclass(slots=True)
class Bucket:
    tokens: float
    at: float


@dataclass(slots=True)
class Buckets:
    """One token bucket per key id. Bounded: when it grows past ``max_keys`` the full (idle) buckets go."""

    max_keys: int = 100_000
    _buckets: dict[int, Bucket] = field(default_factory=dict)

    def take(self, key_id: int, cost: float, limit: Limit, now: float) -> float:
        """Take ``cost`` tokens; 0.0 when granted, else the seconds until they would be there (nothing taken).

        A cost larger than the whole bucket can never be granted: ``math.inf``.
        """
        if limit.unlimited or cost <= 0:
            return 0.0
        if cost > limit.burst:
            return math.inf
        bucket = self._buckets.get(key_id)
        if bucket is None:
            if len(self._buckets) >= self.max_keys:
                self._evict_full(limit, now)
            bucket = self._buckets[key_id] = Bucket(tokens=limit.burst, at=now)
        else:
            bucket.tokens = min(limit.burst, bucket.tokens + max(0.0, now - bucket.at) * limit.rate)
            bucket.at = now
        if bucket.tokens >= cost:
            bucket.tokens -= cost
            return 0.0
        return (cost - bucket.tokens) / limit.rate

    def _evict_full(self, limit: Limit, now: float) -> None:
        full = [k for k, b in self._buckets.items() if b.tokens + (now - b.at) * limit.rate >= limit.burst]
        for key_id in full or list(self._buckets)[: len(self._buckets) // 2]:
            del self._buckets[key_id]


@dataclass(slots=True)
class ControlsCache:
    """Each key's controls for ``ttl`` seconds, so a request does not read them every time."""

    ttl: float
    max_keys: int = 10_000
    _entries: dict[int, tuple[float, KeyControls]] = field(default_factory=dict)

    def get(self, key_id: int, now: float) -> KeyControls | None:
        entry = self._entries.get(key_id)
        return entry[1] if entry is not None and entry[0] > now else None

    def put(self, key_id: int, controls: KeyControls, now: float) -> None:
        if len(self._entries) >= self.max_keys:
            self._entries.clear()
        if self.ttl > 0:
            self._entries[key_id] = (now + self.ttl, controls)

    def forget(self, key_id: int) -> None:
        self._entries.pop(key_id, None)


@dataclass(slots=True)
class KeyGuard:
    """The admission state the HTTP edge keeps per process: controls cache and buckets."""

    controls: ControlsCache
    buckets: Buckets = field(default_factory=Buckets)
