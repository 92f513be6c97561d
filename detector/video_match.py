"""vPDQ matching against every listed video at once, on the exact Hamming index over all listed frames.

Each listed video's frames are prepared as vPDQ prepares them (quality filter, identical hashes
once: ``detector.video_frames.prepare``) and put in one ``HammingIndex`` whose ids are frame
positions; ``owners`` maps a position back to its video. A query video's prepared frames are
searched in one batch at the PDQ distance; per listed video we then count the distinct query
frames that found one of its frames and the distinct frames of it that were found. The shares are
those counts over each side's prepared frame count, exactly what a brute-force vPDQ comparison of
the query with every listed video gives (``detector.video_frames.compare`` is the oracle the tests
hold it to), at the cost of one frame-level index search per query frame: a list of 10,000,000
frames answers like a 10,000,000-entry PDQ list, times the query's frames.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from detector.index import HammingIndex
from detector.video_frames import PDQ_BYTES, MatchParams, codes_and_quality, prepare


@dataclass(frozen=True, kw_only=True, slots=True)
class VideoHit:
    """A listed video the query matched: its position among the indexed videos and the vPDQ shares."""

    video: int
    query_share: float  # percent of the query's counted frames that matched a frame of this video
    index_share: float  # percent of this video's counted frames that some query frame matched
    matched_frames: int
    distance: int  # nearest frame pair


@dataclass(frozen=True, kw_only=True, slots=True)
class VideoIndex:
    """Every listed video's prepared frames, indexed together. Immutable; build with ``build``."""

    frames: HammingIndex
    owners: npt.NDArray[np.int64]  # frame position -> video position
    counted: npt.NDArray[np.int64]  # video position -> prepared frame count (0: nothing passes the filter)
    quality: int  # the quality filter the listed frames were prepared with

    @classmethod
    def build(cls, values: Sequence[bytes], quality: int) -> VideoIndex:
        """Index packed frame lists (``detector.video_frames.pack``), one per video, in position order."""
        parts: list[npt.NDArray[np.uint8]] = []
        counts = np.zeros(len(values), dtype=np.int64)
        for position, value in enumerate(values):
            kept = prepare(*codes_and_quality(value), quality)
            counts[position] = kept.shape[0]
            parts.append(kept)
        codes = np.concatenate(parts) if parts else np.empty((0, PDQ_BYTES), dtype=np.uint8)
        owners = np.repeat(np.arange(len(values), dtype=np.int64), counts)
        return cls(frames=HammingIndex.build(codes), owners=owners, counted=counts, quality=quality)

    def __len__(self) -> int:
        return int(self.counted.shape[0])

    @property
    def frame_count(self) -> int:
        return int(self.owners.shape[0])

    def search(self, query: bytes, distance: int, quality: int | None = None) -> list[VideoHit]:
        """Every listed video sharing at least one frame with ``query`` within ``distance``, with both shares.

        Thresholds on the shares are the caller's (they may differ per list): nothing is cut here
        but videos with no frame in common. ``quality`` filters the query's frames (default: the
        index's own filter).
        """
        q = prepare(*codes_and_quality(query), self.quality if quality is None else quality)
        if q.shape[0] == 0 or self.frame_count == 0:
            return []
        found = self.frames.search_batch(q, distance)
        query_hits: dict[int, int] = {}
        listed_frames: dict[int, set[int]] = {}
        nearest: dict[int, int] = {}
        for hits in found:
            seen: set[int] = set()
            for position, d in hits:
                video = int(self.owners[position])
                listed_frames.setdefault(video, set()).add(int(position))
                if d < nearest.get(video, distance + 1):
                    nearest[video] = int(d)
                if video not in seen:
                    seen.add(video)
                    query_hits[video] = query_hits.get(video, 0) + 1
        total = q.shape[0]
        out = [
            VideoHit(
                video=video,
                query_share=100.0 * count / total,
                index_share=100.0 * len(listed_frames[video]) / int(self.counted[video]),
                matched_frames=count,
                distance=nearest[video],
            )
            for video, count in query_hits.items()
        ]
        out.sort(key=lambda h: (-h.query_share, -h.index_share, h.video))
        return out


def passes(hit: VideoHit, params: MatchParams) -> bool:
    """Whether a hit reaches the query and index shares (the distance was applied by the search)."""
    return hit.query_share >= params.query_share and hit.index_share >= params.index_share and hit.matched_frames > 0
