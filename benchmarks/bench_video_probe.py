"""One person of a video against their reference photo, frame by frame at the video's own
rate: is a better face or template there to be had, and what do strangers score?

Default: Barack Obama in the shared clip's audience shot (from 7 s) against
``video/obama.jpg``. Steps:

1. ``analyse_video`` at the default settings; the person whose template scores best
   against the reference is the one followed (their key frames give the box's place).
2. Every decoded frame of that person's time on screen (not only the 3/s samples): the
   face nearest the person's key-frame boxes, with its quality measurements, scored
   against the reference three ways: as the video path does it (detection at the fixed
   pixel budget, landmarks and chip from the original frame), with the landmarks and chip
   from the frame upscaled 3x (Lanczos), and with detection at 4x the pixels.
3. Templates: the analysis's own; every 3/s sample; every frame; the k best frames by
   quality at the native rate; the single best frame by quality.
4. Each score's false-match rate in the packaged table, and how many LFW strangers (one
   photo each, cached in ``.bench/lfw-first-photos.npz``) score at least as high against
   the same template: an honest check of the table for this kind of probe.
5. Impostor tails: every face and every track template of the video's persons in the
   window against the strangers, against the table (LFW photo against photo).

Run: ``python -m benchmarks.bench_video_probe [--strangers 1500]``; writes BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
from PIL import Image

from benchmarks.common import ROOT, faces_dir, write_section
from facetrace.calibration import Calibration, packaged_calibration
from facetrace.config import PipelineOptions
from facetrace.engine import FacePipeline
from facetrace.eval.embedding import embed_main_face
from facetrace.imaging import ImageLimits, iter_video_frames, load_image
from facetrace.types import BoundingBox, Detection, Face
from facetrace.video import VideoOptions, analyse_video
from facetrace.video.faces import DETECT_PIXELS, VideoFaceFinder
from facetrace.vision.embed import l2_normalise

STRANGERS = ROOT / ".bench" / "lfw-first-photos.npz"
UPSCALE = 3


def strangers(pipeline: FacePipeline, limit: int, exclude: str) -> npt.NDArray[np.float32]:
    """The first photo of each of the first ``limit`` LFW people (sorted), less ``exclude``."""
    names: list[str] = []
    vectors: list[npt.NDArray[np.float32]] = []
    if STRANGERS.exists():
        data = np.load(STRANGERS)
        names, vectors = list(data["names"]), list(data["vectors"])
    people = sorted(p for p in (faces_dir() / "lfw" / "images").iterdir() if p.is_dir())
    todo = [p for p in people[:limit] if p.name not in set(names)]
    for i, person in enumerate(todo):
        pv = embed_main_face(sorted(person.glob("*.jpg"))[0], pipeline, ImageLimits())
        if pv.vector is not None:
            names.append(person.name)
            vectors.append(pv.vector)
        if i % 250 == 249 or i == len(todo) - 1:
            STRANGERS.parent.mkdir(exist_ok=True)
            np.savez(STRANGERS, names=np.array(names), vectors=np.stack(vectors))
    wanted = {p.name for p in people[:limit]} - {exclude}
    keep = [i for i, n in enumerate(names) if n in wanted]
    return np.stack([vectors[i] for i in keep]).astype(np.float32)


@dataclass
class FrameRow:
    index: int
    timestamp_s: float
    face: Face
    up: npt.NDArray[np.float32]
    det4x: npt.NDArray[np.float32] | None


def _nearest(faces: list[Face], centre: tuple[float, float]) -> Face | None:
    if not faces:
        return None
    f = min(faces, key=lambda f: np.hypot(*np.subtract(f.detection.box.center, centre)))
    dist = np.hypot(*np.subtract(f.detection.box.center, centre))
    return f if dist < f.detection.box.width else None


def _upscaled(pipeline: FacePipeline, finder: VideoFaceFinder, px: npt.NDArray[np.uint8],
              face: Face) -> npt.NDArray[np.float32]:  # fmt: skip
    """The face's vector with landmarks and chip from the frame upscaled UPSCALE times."""
    h, w = px.shape[:2]
    big = np.asarray(
        Image.fromarray(px).resize((w * UPSCALE, h * UPSCALE), Image.Resampling.LANCZOS)
    )
    b = face.detection.box
    box = BoundingBox(b.x1 * UPSCALE, b.y1 * UPSCALE, b.x2 * UPSCALE, b.y2 * UPSCALE)
    det = Detection(
        box=box, landmarks=finder._landmarks.predict(big, box), score=face.detection.score
    )
    return pipeline.embed_detections(big, [det])[0].vector


def _template(
    vectors: list[npt.NDArray[np.float32]], weights: list[float] | None = None
) -> npt.NDArray[np.float32]:
    v = l2_normalise(np.stack(vectors).astype(np.float32))
    w = np.ones(len(v)) if weights is None else np.maximum(0.05, np.array(weights))
    return l2_normalise((w[:, None] * v).sum(axis=0, keepdims=True))[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--video", type=Path, default=None)
    parser.add_argument("--reference", type=Path, default=None)
    parser.add_argument(
        "--name",
        default="Barack_Obama",
        help="the reference's LFW name (left out of the strangers)",
    )
    parser.add_argument(
        "--after", type=float, default=7.0, help="look at persons first seen after this time (s)"
    )
    parser.add_argument("--strangers", type=int, default=1500)
    args = parser.parse_args()
    video = args.video or faces_dir() / "video" / "short_hamilton_clip.mp4"
    reference = args.reference or faces_dir() / "video" / "obama.jpg"
    started = time.monotonic()
    pipeline = FacePipeline(PipelineOptions(cache_dir=Path(tempfile.mkdtemp()) / "models"))
    cal = packaged_calibration(pipeline.descriptor.calibration_name)
    assert isinstance(cal, Calibration)
    ref = max(
        pipeline.analyse(load_image(reference).pixels), key=lambda f: f.detection.box.area
    ).vector
    others = strangers(pipeline, args.strangers, args.name)
    analysis = analyse_video(video, pipeline, options=VideoOptions(workers=1))
    window = [p for p in analysis.persons if p.intervals[0][0] >= args.after]
    person = max(window, key=lambda p: float(p.template @ ref))
    # from the person's first sample (a frame before it may be of the shot before the cut)
    start, end = person.intervals[0][0], person.intervals[-1][1] + 0.5
    centres = {id(p): np.mean([k.box.center for k in p.key_frames], axis=0) for p in window}
    finder = VideoFaceFinder(pipeline, threads=1)
    finder4 = VideoFaceFinder(pipeline, threads=1, detect_pixels=4 * DETECT_PIXELS)
    rows: list[FrameRow] = []
    window_faces: dict[int, list[npt.NDArray[np.float32]]] = {id(p): [] for p in window}
    # every frame, timed as the analysis times them (from the first decoded frame)
    every = iter_video_frames(video, every_seconds=1e-4, limits=ImageLimits(max_frames=10**6))
    for vf in every:
        if not start <= vf.timestamp_s <= end:
            continue
        index, ts, px = vf.index, vf.timestamp_s, vf.pixels
        faces = pipeline.embed_detections(px, finder.detect(px))
        for p in window:
            f = _nearest(faces, tuple(centres[id(p)]))
            if f is not None:
                window_faces[id(p)].append(f.vector)
        face = _nearest(faces, tuple(centres[id(person)]))
        if face is None:
            continue
        f4 = _nearest(pipeline.embed_detections(px, finder4.detect(px)), face.detection.box.center)
        rows.append(FrameRow(index, ts, face, _upscaled(pipeline, finder, px, face),
                             None if f4 is None else f4.vector))  # fmt: skip

    def line(label: str, t: npt.NDArray[np.float32]) -> str:
        s = float(t @ ref)
        above = int((others @ t >= s).sum())
        return (f"| {label} | {s:.4f} | {cal.false_match_rate(s):.1e} | {above} of {len(others)} "
                f"({above / len(others):.1e}) | {float((others @ t).max()):.4f} |")  # fmt: skip

    base = [r.face.vector for r in rows]
    q = [float(r.face.quality.score) for r in rows]
    samples = {round(k.timestamp_s, 3) for k in person.key_frames}
    rate = analysis.sample_fps
    sampled = [r for r in rows if any(abs(r.timestamp_s - m / rate) < 0.5 / 29.97 for m in
                                      range(int(start * rate), int(end * rate) + 2))]  # fmt: skip
    by_q = sorted(range(len(rows)), key=lambda i: -q[i])
    thr = cal.threshold_for_fpir(0.01, 44)
    lines = [
        f"{video.name}, the person of the audience shot best matching `{reference.name}` "
        f"({len(rows)} decoded frames, {rows[0].timestamp_s:.2f}-{rows[-1].timestamp_s:.2f} s; "
        f"{len(sampled)} of them are 3/s samples; key frames at "
        f"{', '.join(f'{t:.2f}' for t in sorted(samples))} s). Identification threshold at "
        f"FPIR 1 %: {thr:.4f} for 44 subjects, {cal.threshold_for_fpir(0.01, 300):.4f} for 300, "
        f"{cal.threshold_for_fpir(0.01, 1000):.4f} for 1,000, "
        f"{cal.threshold_for_fpir(0.01, 5749):.4f} for all 5,749 LFW people.",
        "",
        "Per frame (score against the reference):",
        "",
        "| frames | as the video path (median / max) | chip from the frame upscaled 3x | "
        "detection at 4x pixels | face width px | yaw ratio | sharpness | brightness | quality |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    up = [float(r.up @ ref) for r in rows]
    d4 = [float(r.det4x @ ref) for r in rows if r.det4x is not None]
    sc = [float(v @ ref) for v in base]
    det = [r.face.quality.details for r in rows]
    spans = []
    for k in ("width_px", "yaw", "sharpness", "brightness"):
        lo, hi = min(d[k] for d in det), max(d[k] for d in det)
        spans.append(f"{lo:.2f}-{hi:.2f}" if k == "yaw" else f"{lo:.0f}-{hi:.0f}")
    lines.append(
        f"| {len(rows)} | {np.median(sc):.4f} / {max(sc):.4f} | "
        f"{np.median(up):.4f} / {max(up):.4f} | {np.median(d4):.4f} / {max(d4):.4f} | "
        + " | ".join(spans)
        + f" | {min(q):.3f}-{max(q):.3f} |"
    )
    r_best = int(np.argmax(sc))
    lines.append(
        f"\nBest frame by score: {rows[r_best].index} at {rows[r_best].timestamp_s:.2f} s "
        f"({sc[r_best]:.4f}); Spearman correlation of quality and score over the frames: "
        f"{np.corrcoef(np.argsort(np.argsort(q)), np.argsort(np.argsort(sc)))[0, 1]:.2f}.\n"
    )
    lines += [
        "Templates (strangers: LFW people, one photo each, scoring at least as high against "
        "the same template; the table's FMR is what a search reports):",
        "",
        "| template | score | table FMR | strangers at or above | best stranger |",
        "|---|---|---|---|---|",
        line(f"the analysis's own ({len(person.key_frames)} key frames)", person.template),
        line(f"every 3/s sample ({len(sampled)})", _template([r.face.vector for r in sampled])),
        line(f"every frame ({len(rows)})", _template(base)),
        line(f"every frame, chips upscaled 3x ({len(rows)})", _template([r.up for r in rows])),
    ]
    for n_best in (3, 5, 10, 20):
        pick = by_q[:n_best]
        lines.append(
            line(
                f"{n_best} best frames by quality, native rate",
                _template([base[i] for i in pick], [q[i] for i in pick]),
            )
        )
        lines.append(
            line(
                f"{n_best} best by quality, chips upscaled 3x",
                _template([rows[i].up for i in pick], [q[i] for i in pick]),
            )
        )
    lines.append(line(f"single best frame by quality ({rows[by_q[0]].index})", base[by_q[0]]))
    lines.append(
        line(f"single best frame by score, an oracle ({rows[r_best].index})", base[r_best])
    )
    # impostor tails of this kind of probe
    faces_all = np.stack([v for vs in window_faces.values() for v in vs])
    templates = np.stack([_template(vs) for vs in window_faces.values() if vs])
    fr = (others @ faces_all.T).ravel()
    tm = (others @ templates.T).ravel()
    lines += [
        "",
        f"Impostor tails: the {len(window)} persons of the shot ({len(faces_all)} frames' faces, "
        f"{len(templates)} all-frame templates) against the same strangers, beside the "
        "packaged table (LFW photo against photo):",
        "",
        "| score | video faces | video templates | table |",
        "|---|---|---|---|",
    ]
    for x in (0.90, 0.92, 0.928, 0.935, 0.938):
        lines.append(
            f"| {x} | {(fr >= x).mean():.1e} | {(tm >= x).mean():.1e} "
            f"({int((tm >= x).sum())} pairs) | {cal.false_match_rate(x):.1e} |"
        )
    lines.append(f"\n({time.monotonic() - started:.0f} s in all)")
    write_section(
        "video-probe",
        "Search by video: one person frame by frame against their reference",
        "python -m benchmarks.bench_video_probe",
        "\n".join(lines),
    )
    print("\n".join(lines))


if __name__ == "__main__":
    main()
