"""Token buckets and the limit each replica enforces (kernel.ratelimit), with times passed in."""

from __future__ import annotations

import math

from kernel.ratelimit import Buckets, KeyControls, Limit, effective_limit


def test_a_bucket_grants_its_burst_then_refills_at_its_rate() -> None:
    buckets, limit = Buckets(), Limit(rate=10, burst=100)
    assert buckets.take(1, 100, limit, now=0.0) == 0.0
    assert buckets.take(1, 5, limit, now=0.0) == 0.5  # 5 tokens at 10 a second: retry in half a second
    assert buckets.take(1, 5, limit, now=0.5) == 0.0
    assert buckets.take(2, 100, limit, now=0.5) == 0.0  # another key, its own bucket
    assert buckets.take(1, 101, limit, now=99.0) == math.inf  # more than a whole bucket: never
    assert buckets.take(1, 1000, Limit(rate=0, burst=1), now=0.0) == 0.0  # rate 0: unlimited


def test_a_refused_call_takes_nothing_and_the_bucket_never_overfills() -> None:
    buckets, limit = Buckets(), Limit(rate=1, burst=10)
    assert buckets.take(1, 10, limit, now=0.0) == 0.0
    assert buckets.take(1, 4, limit, now=2.0) == 2.0  # 2 tokens there, 4 asked: nothing taken
    assert buckets.take(1, 4, limit, now=4.0) == 0.0
    assert buckets.take(1, 10, limit, now=1000.0) == 0.0  # refilled to 10, not 1000


def test_the_limit_is_the_keys_own_or_the_default_divided_among_replicas() -> None:
    default = effective_limit(KeyControls(), default_rate=200, default_burst=2000, replicas=4)
    assert (default.rate, default.burst) == (50, 500)
    own = effective_limit(KeyControls(rate_per_s=10, burst=30), default_rate=200, default_burst=2000, replicas=1)
    assert (own.rate, own.burst) == (10, 30)


def test_buckets_stay_bounded_under_many_keys() -> None:
    buckets, limit = Buckets(max_keys=100), Limit(rate=1, burst=5)
    for key_id in range(1000):
        buckets.take(key_id, 1, limit, now=float(key_id))
    assert len(buckets._buckets) <= 100
