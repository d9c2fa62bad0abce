"""A stand-in for the face engine where a test is about rules, not faces: a probe
analyser that finds the same two faces in any photo, and a gallery that proposes the same
two candidates for any vector. The search itself (scope, mode, the candidates kept) is the
service's own code, :func:`facetrace.service.searches.search_vector`."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from facetrace.calibration import Calibration, ModeChoice, ModePolicy, choose_mode
from facetrace.config import SearchMode
from facetrace.gallery.directory import Candidate
from facetrace.index.base import Selector
from facetrace.inference import Analysis
from facetrace.service import searches
from facetrace.store.repo import FaceInfo
from facetrace.types import (
    BoundingBox,
    Detection,
    Face,
    Landmarks,
    Provenance,
    Quality,
    QualityReason,
)

MODEL = "fixed-model"


def face(
    box: tuple[int, int, int, int],
    quality: float,
    *reasons: QualityReason,
    vector: npt.NDArray[np.float32] | None = None,
    model_id: str = MODEL,
) -> Face:
    """An engine face (five landmarks at the origin); its vector ``vector``, default the
    first axis of 4 dimensions."""
    if vector is None:
        vector = np.eye(1, 4, dtype=np.float32)[0]
    return Face(
        detection=Detection(
            box=BoundingBox(*box), landmarks=Landmarks.from_array(np.zeros((5, 2))), score=1.0
        ),
        quality=Quality(score=quality, reasons=reasons),
        vector=vector,
        model_id=model_id,
    )


class FixedAnalyser:
    """Two faces in every photo (the second of low quality), both with the first axis of
    ``dim`` dimensions as vector, of ``model_id``; counts model runs."""

    def __init__(self, model_id: str = MODEL, dim: int = 4) -> None:
        self.model_runs = 0
        self.model_id = model_id
        self.vector = np.eye(1, dim, dtype=np.float32)[0]

    def _face(self, box: tuple[int, int, int, int], quality: float, *why: QualityReason) -> Face:
        return face(box, quality, *why, vector=self.vector, model_id=self.model_id)

    def analyse(self, data: bytes, *, source: str, detector: str | None = None) -> Analysis:
        self.model_runs += 1
        return Analysis(
            640,
            480,
            (
                self._face((10, 10, 110, 110), 0.9),
                self._face((200, 10, 300, 110), 0.2, QualityReason.BLURRED),
            ),
        )

    def analyse_box(self, data: bytes, *, source: str, box: tuple[int, int, int, int]) -> Face:
        self.model_runs += 1
        return self._face(box, 0.7)


@dataclass(frozen=True)
class _Descriptor:
    model_id: str = MODEL
    verify_threshold: float = 0.5


class FixedGallery:
    """Every search proposes the same two subjects, both above the threshold; counts
    searches and keeps the last selector it was given. No calibration."""

    descriptor = _Descriptor()

    def __init__(self) -> None:
        self.searches = 0
        self.selectors: list[Selector | None] = []

    def subject_count(self) -> int:
        return 2

    def calibration(self) -> Calibration | None:
        return None

    def choose_mode(
        self,
        requested: SearchMode | None,
        *,
        policy: ModePolicy,
        fpir: float,
        n_subjects: int | None = None,
    ) -> ModeChoice:
        return choose_mode(None, policy=policy, requested=requested, fpir=fpir, gallery_subjects=2)

    def search_vectors(
        self,
        vectors: npt.NDArray[np.float32],
        *,
        k: int = 10,
        fpir: float = 0.01,
        selector: Selector | None = None,
        include_below: bool = False,
        templates: bool = True,
    ) -> list[tuple[float, list[Candidate], list[Candidate]]]:
        self.searches += 1
        self.selectors.append(selector)

        def cand(rank: int, subject: str, score: float) -> Candidate:
            info = FaceInfo(
                face_id=rank,
                subject_id=rank,
                subject_external_id=subject,
                subject_name=subject,
                photo_id=rank,
                photo_sha256="0" * 64,
                photo_path=f"{subject}.jpg",
                provenance=Provenance("c", "lb", "https://example.org", "t", "2020"),
                box=(0, 0, 10, 10),
                quality=0.8,
            )
            return Candidate(
                rank=rank,
                score=score,
                false_match_rate=1e-4,
                gallery_fpir=2e-4,
                above_threshold=True,
                info=info,
            )

        return [(0.5, [cand(1, "s-1", 0.8), cand(2, "s-2", 0.6)], []) for _ in vectors]


def fixed_searcher() -> searches.Searcher:
    """The service's searcher on the fixed analyser and gallery (``.analyser.model_runs``
    and ``.gallery.searches`` count what ran)."""
    return searches.Searcher(gallery=FixedGallery(), analyser=FixedAnalyser(), min_quality=0.3)


def fixed_result(mode: SearchMode | None = None) -> searches.VectorResult:
    """The answer a search of the fixed gallery gives (two candidates)."""
    return searches.search_vector(
        fixed_searcher(), np.ones(4, dtype=np.float32), scope=None, mode=mode
    )


def fixed_faces() -> searches.PhotoFaces:
    """The two faces the fixed analyser finds in any photo, as a probe keeps them."""
    return searches.photo_faces(FixedAnalyser().analyse(b"", source="p.jpg"))


def model_runs(searcher: searches.Searcher) -> int:
    """Photos the fixed analyser of ``searcher`` analysed."""
    assert isinstance(searcher.analyser, FixedAnalyser)
    return searcher.analyser.model_runs


def searches_run(searcher: searches.Searcher) -> int:
    """Searches the gallery of ``searcher`` answered (a fixed or a counting gallery)."""
    return int(searcher.gallery.searches)  # type: ignore[attr-defined]
