"""``facetrace group FOLDER``: which photos of an unlabelled folder show the same person?

Every face of every photo is found and embedded (in a process pool), the faces are
grouped on their neighbour graph at the calibrated threshold, and the report is
written: ``groups.csv`` (one row per face), ``groups.json`` (the groups, the threshold
and how it was set, the photos skipped and why) and a contact sheet per group of two
or more faces under ``sheets/``. Faces below the minimum quality are listed but not
grouped: a blurred or tiny face matches strangers too easily.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from facetrace.calibration import Calibration, packaged_calibration
from facetrace.config import PipelineOptions
from facetrace.engine import FacePipeline
from facetrace.errors import FacetraceError, InvalidRequest
from facetrace.gallery.ingest import IMAGE_SUFFIXES
from facetrace.grouping.cluster import (
    DEFAULT_ALGORITHM,
    DEFAULT_STRANGER_PAIR_SHARE,
    Algorithm,
    algorithm,
    cluster_for_precision,
)
from facetrace.grouping.graph import DEFAULT_K, edge_threshold, fmr_for_size, neighbour_graph
from facetrace.grouping.sheet import Tile, contact_sheet, face_thumbnail, save_sheet
from facetrace.imaging import ImageLimits, load_image
from facetrace.pool import map_photos

log = logging.getLogger(__name__)

#: The default target false-match rate of a grouping edge (BENCHMARKS.md, "Grouping"):
#: the loosest threshold grouping uses; a set with few true pairs gets a stricter one
#: (:func:`~facetrace.grouping.cluster.cluster_for_precision`).
DEFAULT_FMR = 5e-5
DEFAULT_MIN_QUALITY = 0.3

Progress = Callable[[str, int, int], None]


@dataclass(frozen=True, slots=True)
class FoundFace:
    """One face of a photo: where it is, how good it is, its vector and thumbnail."""

    photo: str
    face: int
    box: tuple[int, int, int, int]
    quality: float
    vector: npt.NDArray[np.float32]
    thumbnail: bytes


@dataclass(frozen=True, slots=True)
class PhotoFaces:
    """What one photo gave: its faces, or the reason it gave none."""

    photo: str
    faces: tuple[FoundFace, ...] = ()
    error: str = ""


def scan_photos(folder: Path) -> list[Path]:
    """Every photo file under ``folder`` (recursively), sorted; raises on a bad folder."""
    if not folder.is_dir():
        raise InvalidRequest(f"{folder} is not a folder")
    found = sorted(
        p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
    )
    if not found:
        raise InvalidRequest(f"{folder} holds no photos ({', '.join(sorted(IMAGE_SUFFIXES))})")
    return found


def analyse_photo(
    item: tuple[Path, str], pipeline: FacePipeline, limits: ImageLimits
) -> PhotoFaces:
    """Every face of one photo (run in a pool worker); errors come back as a reason."""
    path, name = item
    try:
        pixels = load_image(path, limits=limits).pixels
        faces = pipeline.analyse(pixels)
    except FacetraceError as exc:
        return PhotoFaces(name, error=str(exc))
    if not faces:
        return PhotoFaces(name, error="no face found")
    return PhotoFaces(
        name,
        tuple(
            FoundFace(
                photo=name,
                face=i,
                box=tuple(f.detection.box.as_list()),  # type: ignore[arg-type]
                quality=float(f.quality.score),
                vector=f.vector,
                thumbnail=face_thumbnail(pixels, f.detection.box),
            )
            for i, f in enumerate(faces)
        ),
    )


@dataclass
class GroupReport:
    """The result of grouping a folder.

    ``faces`` are the grouped faces, ``labels[i]`` the group (1-based, 1 the largest)
    of ``faces[i]``; ``low_quality`` faces were found but not grouped; ``skipped``
    photos gave no face (photo, reason).
    """

    folder: str
    model: str
    algorithm: str
    fmr: float
    threshold: float
    calibration: str
    faces: list[FoundFace]
    labels: npt.NDArray[np.int64]
    low_quality: list[FoundFace] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)

    def groups(self) -> list[list[int]]:
        """Face positions per group, group 1 first."""
        out: list[list[int]] = [[] for _ in range(int(self.labels.max()) if self.faces else 0)]
        for i, g in enumerate(self.labels.tolist()):
            out[g - 1].append(i)
        return out

    def summary(self) -> dict[str, Any]:
        """Counts for the command's last line and the JSON."""
        sizes = [len(g) for g in self.groups()]
        return {
            "photos": len({f.photo for f in self.faces + self.low_quality}) + len(self.skipped),
            "faces": len(self.faces) + len(self.low_quality),
            "grouped_faces": len(self.faces),
            "groups": sum(1 for s in sizes if s >= 2),
            "faces_in_groups": sum(s for s in sizes if s >= 2),
            "alone": sum(1 for s in sizes if s == 1),
            "low_quality": len(self.low_quality),
            "skipped_photos": len(self.skipped),
        }

    def as_dict(self, sheets: dict[int, str] | None = None) -> dict[str, Any]:
        """The JSON report (``sheets``: group -> contact sheet path, when written)."""
        sheets = sheets or {}

        def face(f: FoundFace) -> dict[str, Any]:
            return {"photo": f.photo, "face": f.face, "box": list(f.box),
                    "quality": round(f.quality, 4)}  # fmt: skip

        return {
            "folder": self.folder,
            "model": self.model,
            "algorithm": self.algorithm,
            "false_match_rate": self.fmr,
            # what the threshold was set for: the target, made stricter for large sets
            "pair_false_match_rate": fmr_for_size(self.fmr, len(self.faces)),
            # and stricter where the table expects more of the grouped pairs to be strangers
            "max_stranger_pair_share": DEFAULT_STRANGER_PAIR_SHARE,
            "threshold": round(self.threshold, 4),
            "calibration": self.calibration,
            "summary": self.summary(),
            "seconds": {k: round(v, 2) for k, v in self.seconds.items()},
            "groups": [
                {
                    "group": g,
                    "size": len(members),
                    "sheet": sheets.get(g),
                    "faces": [face(self.faces[i]) for i in members],
                }
                for g, members in enumerate(self.groups(), start=1)
            ],
            "low_quality": [face(f) for f in self.low_quality],
            "skipped": [{"photo": p, "reason": r} for p, r in self.skipped],
        }


def group_faces(
    faces: Sequence[FoundFace],
    *,
    calibration: Calibration | None,
    fallback_threshold: float,
    fmr: float = DEFAULT_FMR,
    method: Algorithm | str = DEFAULT_ALGORITHM,
    k: int = DEFAULT_K,
) -> tuple[npt.NDArray[np.int64], float]:
    """Group faces: (labels 1-based, group 1 the largest; the score threshold used).

    The threshold is the score of the per-pair false-match rate
    :func:`~facetrace.grouping.graph.fmr_for_size` gives for ``fmr`` and this many faces
    (``fmr`` itself up to the size of the set it was validated on), raised where the
    table expects more than :data:`~facetrace.grouping.cluster.DEFAULT_STRANGER_PAIR_SHARE`
    of the grouped pairs to be strangers."""
    floor = edge_threshold(calibration, fmr_for_size(fmr, len(faces)), fallback=fallback_threshold)
    if not faces:
        return np.empty(0, dtype=np.int64), floor
    vectors = np.stack([f.vector for f in faces]).astype(np.float32)
    graph = neighbour_graph(vectors, min_score=floor, k=k)
    labels, threshold = cluster_for_precision(
        graph, method, floor=floor, calibration=calibration, vectors=vectors
    )
    return labels + 1, threshold


def group_folder(
    folder: Path,
    *,
    options: PipelineOptions,
    workers: int = 1,
    fmr: float = DEFAULT_FMR,
    method: str = DEFAULT_ALGORITHM.value,
    min_quality: float = DEFAULT_MIN_QUALITY,
    k: int = DEFAULT_K,
    limits: ImageLimits | None = None,
    progress: Progress | None = None,
) -> GroupReport:
    """Find, embed and group every face under ``folder`` (see the module docstring).

    Raises :class:`InvalidRequest` for a folder without photos, an unknown algorithm
    or a false-match rate outside (0, 1), before any photo is read.
    """
    chosen = algorithm(method)
    if not 0 < fmr < 1:
        raise InvalidRequest(f"the target false-match rate must be in (0, 1), got {fmr}")
    if not 0 <= min_quality <= 1:
        raise InvalidRequest(f"the minimum quality must be in [0, 1], got {min_quality}")
    paths = scan_photos(folder)
    pipeline = FacePipeline(options)  # cheap: models load on the first photo
    descriptor = pipeline.descriptor
    calibration = packaged_calibration(descriptor.calibration_name or "")
    if calibration is None:
        log.warning(
            "model %s has no calibration table: grouping at its verification threshold %.3f, "
            "an uncalibrated number",
            descriptor.model_id,
            descriptor.verify_threshold,
        )
    start = time.perf_counter()
    items = [(p, str(p.relative_to(folder))) for p in paths]
    found: list[PhotoFaces] = []
    for got in map_photos(
        analyse_photo,
        items,
        options=options,
        limits=limits or ImageLimits(),
        workers=workers,
        inline=pipeline,
    ):
        found.append(got)
        if progress is not None:
            progress("faces", len(found), len(items))
    analysed = time.perf_counter()
    faces = [f for p in found for f in p.faces if f.quality >= min_quality]
    low = [f for p in found for f in p.faces if f.quality < min_quality]
    labels, threshold = group_faces(
        faces,
        calibration=calibration,
        fallback_threshold=descriptor.verify_threshold,
        fmr=fmr,
        method=chosen,
        k=k,
    )
    done = time.perf_counter()
    return GroupReport(
        folder=str(folder),
        model=descriptor.model_id,
        algorithm=chosen.value,
        fmr=fmr,
        threshold=threshold,
        calibration=calibration.source if calibration is not None else "none",
        faces=faces,
        labels=labels,
        low_quality=low,
        skipped=[(p.photo, p.error) for p in found if p.error],
        seconds={"faces": analysed - start, "grouping": done - analysed},
    )


CSV_FIELDS = ("group", "group_size", "photo", "face", "x1", "y1", "x2", "y2", "quality")


def write_report(report: GroupReport, out: Path, *, sheets: bool = True) -> dict[str, Path]:
    """Write ``groups.csv``, ``groups.json`` and the contact sheets into ``out``.

    Returns the paths written (``csv``, ``json``, ``sheets``). Files appear complete or
    not at all (each is written to a temporary name, then renamed).
    """
    out.mkdir(parents=True, exist_ok=True)
    groups = report.groups()
    sheet_paths: dict[int, str] = {}
    if sheets:
        width = max(3, len(str(len(groups))))
        for g, members in enumerate(groups, start=1):
            if len(members) < 2:
                continue
            name = f"sheets/group-{g:0{width}d}.jpg"
            tiles = [Tile(report.faces[i].thumbnail, _caption(report.faces[i])) for i in members]
            save_sheet(contact_sheet(f"group {g}: {len(members)} faces", tiles), out / name)
            sheet_paths[g] = name
        alone = [members[0] for members in groups if len(members) == 1]
        if alone:
            tiles = [Tile(report.faces[i].thumbnail, _caption(report.faces[i])) for i in alone]
            save_sheet(contact_sheet(f"{len(alone)} faces alone", tiles), out / "sheets/alone.jpg")
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(CSV_FIELDS)
    for g, members in enumerate(groups, start=1):
        for i in members:
            f = report.faces[i]
            writer.writerow([g, len(members), f.photo, f.face, *f.box, round(f.quality, 4)])
    for f in report.low_quality:
        writer.writerow(["", "", f.photo, f.face, *f.box, round(f.quality, 4)])
    _write_text(out / "groups.csv", buf.getvalue())
    _write_text(out / "groups.json", json.dumps(report.as_dict(sheet_paths), indent=2) + "\n")
    return {"csv": out / "groups.csv", "json": out / "groups.json", "sheets": out / "sheets"}


def _caption(face: FoundFace) -> str:
    name = Path(face.photo).name
    return f"{name} #{face.face}" if face.face else name


def _write_text(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)
