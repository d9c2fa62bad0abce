"""A stand-in for the face engine where a test is about rules, not faces."""

from __future__ import annotations

from collections.abc import Sequence

from facetrace.service import searches


class FixedSearcher:
    """Two faces; every search returns the same two candidates."""

    def find_faces(self, data: bytes, *, source: str) -> tuple[int, int, list[searches.ProbeFace]]:
        return (
            640,
            480,
            [
                searches.ProbeFace(0, (10, 10, 110, 110), 0.9),
                searches.ProbeFace(1, (200, 10, 300, 110), 0.4, ("blur",)),
            ],
        )

    def search_face(
        self, data: bytes, *, source: str, face: int, force: bool, collections: Sequence[str] | None
    ) -> searches.FaceResult:
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

        probe_face = self.find_faces(data, source=source)[2][face]
        return searches.FaceResult(probe_face, 0.5, (cand(1, "s-1", 0.8), cand(2, "s-2", 0.6)))
