"""The unit of work a hashing worker process runs: bytes in, one hash per tool out.

It is a module-level function over plain, picklable values so ``HashPool`` can run it in a
thread or send it to a worker process (``HASHGUARD_HASH_POOL``). Matching is not part of it on purpose: the match snapshot lives in the
service process's memory and is far too large to ship per scan.
"""

from __future__ import annotations

from dataclasses import dataclass

from detector.decode import DEFAULT_DECODE_BUDGET, HashingPath, Media
from detector.tools.base import HashResult, HashTool


@dataclass(frozen=True, kw_only=True, slots=True)
class HashJob:
    """One upload to hash with ``tools`` (tool objects pickle by class, so plug-ins travel too)."""

    data: bytes
    max_pixels: int
    hashing: HashingPath
    tools: tuple[HashTool, ...]
    memory_budget: int = DEFAULT_DECODE_BUDGET  # HASHGUARD_DECODE_MEMORY_MB, in bytes
    # Query variants to compute (HASHGUARD_QUERY_VARIANTS, detector.variants); each tool computes those it supports.
    variants: tuple[str, ...] = ()


def hash_upload(job: HashJob) -> dict[str, HashResult]:
    """Decode once and hash with every tool; raises the decode stage's 4xx errors."""
    media = Media(data=job.data, max_pixels=job.max_pixels, hashing=job.hashing, memory_budget=job.memory_budget)
    # Decode first even if only exact tools have lists: an upload that is not a readable
    # image gets its 4xx here instead of a verdict computed on bytes we could not check.
    media.decode()
    if job.variants:
        return {tool.name: tool.hash_variants(media, job.variants) for tool in job.tools}
    return {tool.name: tool.hash(media) for tool in job.tools}


def prepare_worker() -> None:
    """Prepare a process to hash: one BLAS thread, hashing modules imported.

    The pool already runs one job per CPU; OpenBLAS's own threads on top of that only
    contend (a 64x375 matrix product took 40 ms instead of 0.7 ms with two BLAS threads on
    a busy 2-core machine). Only BLAS is limited: other thread pools (numba's, for the index)
    are not ours to set. Importing the tools here moves their import cost to start-up.
    """
    from threadpoolctl import threadpool_limits

    import detector.tools.imagehashes
    import detector.tools.pdq  # noqa: F401

    threadpool_limits(limits=1, user_api="blas")
