"""A stand-in for the face engine where a test is about rules, not faces."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from facetrace.config import SearchMode
from facetrace.service import searches

MODEL = "fixed-model"


def _face(box: tuple[int, int, int, int], quality: float, *reasons: str) -> searches.FoundFace:
    vector = np.zeros(4, dtype=np.float32)
    vector[0] = 1.0
    return searches.FoundFace(
        box=box,
        landmarks=((0.0, 0.0),) * 5,
        detector_score=1.0,
        quality=quality,
        quality_reasons=reasons,
        vector=vector,
        model_id=MODEL,
    )


class FixedSearcher:
    """Two faces; every search returns the same two candidates. Counts model runs."""

    min_quality = 0.3
    model_id = MODEL

    def __init__(self) -> None:
        self.model_runs = 0
        self.searches = 0

    def analyse(
        self, data: bytes, *, source: str, detector: str | None = None
    ) -> searches.PhotoFaces:
        self.model_runs += 1
        return searches.PhotoFaces(
            640, 480, (_face((10, 10, 110, 110), 0.9), _face((200, 10, 300, 110), 0.2, "blur"))
        )

    def analyse_box(
        self, data: bytes, *, source: str, box: tuple[int, int, int, int]
    ) -> searches.FoundFace:
        self.model_runs += 1
        return _face(box, 0.7)

    def search_vector(
        self,
        vector: npt.NDArray[np.float32],
        *,
        collections: Sequence[str] | None,
        mode: SearchMode | None = None,
    ) -> searches.VectorResult:
        self.searches += 1

        def cand(rank: int, subject: str, score: float) -> searches.FoundCandidate:
            return searches.FoundCandidate(
                rank=rank,
                score=score,
                false_match_rate=1e-4,
                above_threshold=True,
                subject_external_id=subject,
                subject_name=subject,
                face_id=rank,
                photo_id=rank,
                box=(0, 0, 10, 10),
                quality=0.8,
                collection="c",
                legal_basis="lb",
                source_url="https://example.org",
                source_title="t",
                captured_date="2020",
            )

        return searches.VectorResult(
            0.5,
            (cand(1, "s-1", 0.8), cand(2, "s-2", 0.6)),
            mode=mode or SearchMode.IDENTIFICATION,
        )
