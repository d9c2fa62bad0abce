"""Search by video: speed as a multiple of real time, and tracking against known truth.

* Real-time factor (video seconds per wall second; above 1 is faster than real time) at
  the default settings on the shared 9.2 s clip and on a 30 s 1280x720 synthetic video,
  models loaded beforehand (a warm-up video), so the figure is the steady-state cost.
* Tracking on synthetic videos made of LFW photos (tests/video/synthetic.py): identities
  present, persons reported, fragments (an identity reported as more than one person) and
  wrong merges (a person whose key frames show more than one identity).
* Template against best frame: rank-1 rate of each person's template and of its single
  best key frame, searched among the identities' other LFW photos plus 300 distractors.

Run: ``python -m benchmarks.bench_video`` (part of ``make bench``); writes BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
from tests.video.synthetic import (
    Shot,
    lfw_photo,
    long_720p,
    recurring_cast,
    twins,
    two_people_cut_return,
    who,
    write_video,
)

from benchmarks.common import faces_dir, write_section
from facetrace.config import PipelineOptions
from facetrace.engine import FacePipeline
from facetrace.imaging import load_image
from facetrace.video import VideoAnalysis, VideoOptions, analyse_video
from facetrace.video.analyse import make_finder
from facetrace.video.workers import FrameWorkers

DISTRACTORS = 300


@dataclass
class Scene:
    name: str
    shots: list[Shot]
    width: int
    height: int


def _load() -> float:
    return os.getloadavg()[0]


def _cpu_s(pids: list[int]) -> float:
    """CPU seconds (user + system) used so far by this process and ``pids``."""
    total = time.process_time()
    tick = os.sysconf("SC_CLK_TCK")
    for pid in pids:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += (int(fields[11]) + int(fields[12])) / tick
    return total


def _timed(path: Path, pipeline: FacePipeline, options: VideoOptions, finder: Any) -> Run:
    pids = finder.pids() if isinstance(finder, FrameWorkers) else []
    cpu = _cpu_s(pids)
    result = analyse_video(path, pipeline, options=options, finder=finder)
    return Run(result, _cpu_s(pids) - cpu, _load())


@dataclass
class Run:
    result: VideoAnalysis
    cpu_s: float
    load_after: float


def _truth_score(scene: Scene, result: VideoAnalysis) -> dict[str, int]:
    """Identities, persons, fragments and wrong merges of one analysed scene."""
    names = {a.name for s in scene.shots for a in s.actors}
    owners: dict[str, int] = {}
    wrong = 0
    labels: list[str] = []
    for p in result.persons:
        seen = {
            who(scene.shots, k.timestamp_s, *k.box.center, width=scene.width, height=scene.height)
            for k in p.key_frames
        } - {""}
        wrong += int(len(seen) > 1)
        label = min(seen) if seen else ""
        labels.append(label)
        owners[label] = owners.get(label, 0) + 1
    fragments = sum(n - 1 for name, n in owners.items() if name)
    return {
        "identities": len(names),
        "persons": len(result.persons),
        "fragments": fragments,
        "wrong_merges": wrong,
        "phantoms": owners.get("", 0),
        "missing": len(names - set(owners)),
    }


_VECTORS: dict[Path, Any] = {}


def _photo_vector(pipeline: FacePipeline, photo: Path) -> Any:
    if photo not in _VECTORS:
        _VECTORS[photo] = pipeline.analyse_centred(load_image(photo).pixels).vector
    return _VECTORS[photo]


def _rank1(
    pipeline: FacePipeline,
    faces: Path,
    scene: Scene,
    result: VideoAnalysis,
    *,
    gallery_photo: int = 10,
) -> tuple[int, int, int, float, float]:
    """(persons, template rank-1 hits, best-frame rank-1 hits, mean margin of the
    template, mean margin of the best frame) against a gallery of each identity's photo
    ``gallery_photo`` (never in the videos) and DISTRACTORS other LFW people. A margin is
    the score of the true identity less the best other score (above 0: rank 1). Persons
    who are nobody of the cast (a face in a photo's background) are left out."""
    base = {n.split(" (")[0] for s in scene.shots for a in s.actors for n in [a.name]}
    gallery_names = sorted(base)
    vectors = [_photo_vector(pipeline, lfw_photo(faces, n, gallery_photo)) for n in gallery_names]
    folders = sorted((faces / "lfw" / "images").iterdir())
    extra = [f for f in folders if f.name not in base][:DISTRACTORS]
    for folder in extra:
        vectors.append(_photo_vector(pipeline, sorted(folder.glob("*.jpg"))[0]))
        gallery_names.append(folder.name)
    matrix = np.stack(vectors).astype(np.float32)
    hits_t = hits_b = n = 0
    margins_t: list[float] = []
    margins_b: list[float] = []
    for p in result.persons:
        k = p.thumbnail
        truth = who(scene.shots, k.timestamp_s, *k.box.center, width=scene.width,
                    height=scene.height).split(" (")[0]  # fmt: skip
        if not truth:
            continue
        n += 1
        hits_t += int(gallery_names[int(np.argmax(matrix @ p.template))] == truth)
        hits_b += int(gallery_names[int(np.argmax(matrix @ k.face.vector))] == truth)
        true = gallery_names.index(truth)
        for vec, out in ((p.template, margins_t), (k.face.vector, margins_b)):
            scores = matrix @ vec
            out.append(float(scores[true] - np.delete(scores, true).max()))
    return n, hits_t, hits_b, float(np.mean(margins_t)), float(np.mean(margins_b))


def _joined(
    pipeline: FacePipeline, faces: Path, scene: Scene, result: VideoAnalysis, folder: Path
) -> tuple[VideoAnalysis, int, int]:
    """The analysis after the gallery join (``gallery.video.join_same_subject``) on a
    gallery of the cast's stills only (each identity's LFW photo 8, one subject each), and
    how many subjects are first above the threshold for more than one person, before and
    after: the persons a search lists twice."""
    from facetrace.gallery.directory import Gallery
    from facetrace.gallery.ingest import ingest, scan_folder
    from facetrace.gallery.video import join_same_subject

    tree = folder / "stills"
    for name in sorted({a.name.split(" (")[0] for s in scene.shots for a in s.actors}):
        (tree / name).mkdir(parents=True)
        photo = lfw_photo(faces, name, 8)
        (tree / name / photo.name).write_bytes(photo.read_bytes())
    with Gallery.open(folder / "gallery", pipeline=pipeline.options) as g:
        ingest(g, scan_folder(tree, collection="stills", legal_basis="benchmark"))

        def search(persons: list[Any]) -> list[Any]:
            return g.search_vectors(np.stack([p.template for p in persons]), k=10, fpir=0.01)

        persons = list(result.persons)
        before = search(persons)
        pairs = join_same_subject(persons, before, search)

    def twice(rows: list[Any]) -> int:
        firsts = [min(a, key=lambda c: c.rank).info.subject_id for _, a, _ in rows if a]
        return len(firsts) - len(set(firsts))

    joined = replace(result, persons=tuple(p for p, _ in pairs))
    return joined, twice(before), twice([row for _, row in pairs])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--long-s", type=float, default=10.0, help="shot length of the 720p video")
    parser.add_argument(
        "--cast-seeds", type=int, default=6, help="recurring-cast videos (seeds 1..N)"
    )
    args = parser.parse_args()
    faces = faces_dir()
    clip = faces / "video" / "short_hamilton_clip.mp4"
    tmp = Path(tempfile.mkdtemp(prefix="bench-video-"))
    pipeline = FacePipeline(PipelineOptions(cache_dir=tmp / "models"))
    options = VideoOptions()
    finder = make_finder(pipeline, options)
    scenes = [
        Scene("two people, a cut, a return (640x360, 7 s)", two_people_cut_return(faces), 640, 360),
        Scene("twins in one frame (640x360, 3 s)", twins(faces), 640, 360),
        Scene(f"4 people, 3 shots, leave and return (1280x720, {3 * args.long_s:g} s)",
              long_720p(faces, shot_s=args.long_s), 1280, 720),
    ]  # fmt: skip
    paths = []
    for i, scene in enumerate(scenes):
        path = tmp / f"scene{i}.mp4"
        write_video(path, scene.shots, width=scene.width, height=scene.height)
        paths.append(path)
    finder.warm()
    analyse_video(paths[1], pipeline, options=options, finder=finder)  # warm-up: models loaded

    speed_rows: list[tuple[str, Run]] = []
    load_before = _load()
    speed_rows.append(("shared clip, 640x360 H.264", _timed(clip, pipeline, options, finder)))
    results = []
    for scene, path in zip(scenes, paths, strict=True):
        run = _timed(path, pipeline, options, finder)
        results.append(run.result)
        if scene.width == 1280:
            speed_rows.append((f"synthetic {scene.name}", run))
            high = _timed(path, pipeline, VideoOptions(sample_fps=5.0), finder)
            speed_rows.append(("the same at 5 frames/s", high))
    casts = []
    for seed in range(1, args.cast_seeds + 1):
        shots = recurring_cast(faces, seed=seed)
        scene = Scene(f"recurring cast, seed {seed}", shots, 640, 360)
        path = tmp / f"cast{seed}.mp4"
        write_video(path, shots)
        casts.append((scene, analyse_video(path, pipeline, options=options, finder=finder)))
    finder.close()

    workers = finder.workers if isinstance(finder, FrameWorkers) else 1
    lines = [
        f"Default sampling {options.sample_fps:g} frames/s, detection at "
        f"{options.detect_pixels} pixels per frame, faces found in {workers} worker "
        f"process{'es' if workers > 1 else ''} (one per core); models loaded before timing; "
        f"1-min load average {load_before:.1f} before the runs. CPU s: the analysing "
        "process and its workers, user + system; CPU per video second does not depend "
        "on the load, so it tells what a quiet machine can do (2 cores: a real-time "
        "factor up to 2 / that).",
        "",
        "| video | duration s | sampled frames | wall s | real-time factor | CPU s "
        "| CPU s per video s | load after |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, run in speed_rows:
        res = run.result
        lines.append(
            f"| {name} | {res.info.duration_s:.1f} | {res.frames_sampled} | "
            f"{res.elapsed_s:.1f} | {res.speed:.2f}x | {run.cpu_s:.1f} | "
            f"{run.cpu_s / res.info.duration_s:.2f} | {run.load_after:.1f} |"
        )
    lines += [
        "",
        "Tracking against the truth of synthetic videos (LFW photos moving, cuts between "
        "shots); rank-1 among each identity's LFW photo 10 and "
        f"{DISTRACTORS} distractors, template against the single best key frame; margin: "
        "the true identity's score less the best other score, mean over persons:",
        "",
        "| video | identities | persons | fragments | wrong merges | phantoms | "
        "rank-1 template | rank-1 best frame | margin template | margin best frame |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for scene, res in zip(scenes, results, strict=True):
        s = _truth_score(scene, res)
        n, ht, hb, mt, mb = _rank1(pipeline, faces, scene, res)
        lines.append(
            f"| {scene.name} | {s['identities']} | {s['persons']} | {s['fragments']} | "
            f"{s['wrong_merges']} | {s['phantoms']} | {ht}/{n} | {hb}/{n} | "
            f"{mt:+.4f} | {mb:+.4f} |"
        )
    lines += [
        "",
        "Recurring cast (`tests/video/synthetic.py`, `recurring_cast`): 640x360, shots of "
        "2.4 s with one to three people; 4 identities (LFW people with 8 photos or more) "
        "come back 3 times each, each time in another of their photos (1, 2, 3), between "
        "3 people seen once; default settings. Fragments: extra persons of one identity "
        "(reported twice); bystanders: persons who are a face in the background of an LFW "
        "photo (another person, correctly kept apart, not an error); rank-1 against each "
        "identity's photo 8 and the same distractors. Joined: the same after the gallery "
        "join (`gallery.video.join_same_subject`) on a gallery of the cast's stills only "
        "(photo 8 of each identity, one subject each: the unseen-clip check's gallery); "
        "twice: subjects first above the threshold for more than one person (a character "
        "a search lists twice), before -> after the join:",
        "",
        "| video | identities | persons | fragments | wrong merges | bystanders | missing "
        "| rank-1 template | rank-1 best frame | joined: persons | fragments | wrong merges "
        "| twice |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    keys = ("identities", "fragments", "wrong_merges", "hits", "n", "j_fragments", "j_wrong")
    total = dict.fromkeys(keys, 0) | {"twice": 0, "j_twice": 0}
    for i, (scene, res) in enumerate(casts):
        s = _truth_score(scene, res)
        n, ht, hb, _, _ = _rank1(pipeline, faces, scene, res, gallery_photo=8)
        joined, twice, j_twice = _joined(pipeline, faces, scene, res, tmp / f"join{i}")
        j = _truth_score(scene, joined)
        lines.append(
            f"| {scene.name} | {s['identities']} | {s['persons']} | {s['fragments']} | "
            f"{s['wrong_merges']} | {s['phantoms']} | {s['missing']} | {ht}/{n} | {hb}/{n} | "
            f"{j['persons']} | {j['fragments']} | {j['wrong_merges']} | {twice} -> {j_twice} |"
        )
        for key in ("identities", "fragments", "wrong_merges"):
            total[key] += s[key]
        total["hits"] += ht
        total["n"] += n
        total["j_fragments"] += j["fragments"]
        total["j_wrong"] += j["wrong_merges"]
        total["twice"] += twice
        total["j_twice"] += j_twice
    if casts:
        lines.append(
            f"| all {len(casts)} | {total['identities']} | | {total['fragments']} | "
            f"{total['wrong_merges']} | | | {total['hits']}/{total['n']} | | | "
            f"{total['j_fragments']} | {total['j_wrong']} | {total['twice']} -> "
            f"{total['j_twice']} |"
        )
    write_section(
        "video",
        "Search by video: real-time factor and tracking",
        "python -m benchmarks.bench_video",
        "\n".join(lines),
    )


if __name__ == "__main__":
    main()
