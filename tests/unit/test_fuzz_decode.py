"""Fuzzing decode-and-hash (a fixed, derandomized number of inputs; long runs: ``python -m benchmarks.fuzz``).

Every mutated file must end in a hash or a 4xx error on both hashing paths: never another
exception (a 500), never a verdict computed from pixels the file did not hold.
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from benchmarks.fuzz import KINDS, VIDEO_CODES, header_fields, mutate, outcome, seeds, video_outcome, video_seeds
from detector.decode import HashingPath

SEEDS = seeds()
OPS = st.lists(
    st.tuples(st.sampled_from(KINDS), st.floats(0, 1, exclude_max=True), st.integers(0, 2**32 - 1)), min_size=1, max_size=4
)


def test_every_seed_hashes_on_both_paths_and_has_header_fields() -> None:
    for name, data in SEEDS.items():
        assert [outcome(data, path) for path in (HashingPath.FAST, HashingPath.REFERENCE)] == ["hash", "hash"], name
        assert header_fields(data), name


@settings(max_examples=120, derandomize=True, deadline=None, database=None)
@given(name=st.sampled_from(sorted(SEEDS)), ops=OPS)
def test_mutated_files_end_in_a_hash_or_a_4xx(name: str, ops: list[tuple[str, float, int]]) -> None:
    data = mutate(SEEDS[name], ops)
    for path in (HashingPath.FAST, HashingPath.REFERENCE):
        assert outcome(data, path) in {"hash", "corrupt_media", "image_too_large", "unsupported_media_type"}


VIDEO_SEEDS = video_seeds()


def test_every_video_seed_hashes() -> None:
    for name, data in VIDEO_SEEDS.items():
        assert video_outcome(data) == "hash", name


@settings(max_examples=40, derandomize=True, deadline=None, database=None)
@given(name=st.sampled_from(sorted(VIDEO_SEEDS)), ops=OPS)
def test_mutated_videos_end_in_a_hash_or_a_4xx(name: str, ops: list[tuple[str, float, int]]) -> None:
    # Each input decodes in its own worker process (as in the service), within a 10 s wall-time limit.
    assert video_outcome(mutate(VIDEO_SEEDS[name], ops), wall_s=10.0) in VIDEO_CODES
