"""Face detectors: faces found, faces only one detector found, and cost per photo.

Runs dlib's HOG, dlib's CNN (MMOD, on ONNX Runtime) and ``auto`` (HOG first, the CNN
where it pays; :mod:`facetrace.vision.detect`) over

* ``webphotos13/multi_face`` (3 group photos; the faces in them counted by eye:
  :data:`MULTI_FACE_TRUTH`),
* the 61 labelled ``webphotos13`` photos (full-size web photos, mostly one face),
* a fixed LFW sample (every ``len/N``-th photo in name order; 250x250 crops whose
  centred face is the labelled one: "centre found" counts a box over the centre).

A face found by one detector and by neither other one is drawn into a contact sheet
(``--sheets DIR``) so it can be judged by eye: that is how the false detections in
BENCHMARKS.md were counted. Times are per photo after one warm-up photo, detection only
(landmarks included, no embedding), one process, on a machine shared with others (the
load average is recorded).

Run: ``python -m benchmarks.bench_detect`` (part of ``make bench``); writes BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image, ImageDraw

from benchmarks.common import faces_dir, write_section
from facetrace.imaging import load_image
from facetrace.types import BoundingBox
from facetrace.vision.detect import make_detector, overlap

DETECTORS = ("hog", "cnn", "auto")
# Faces a person can recognise in each group photo (counted by eye, cut faces included
# when the eyes and nose are in the photo).
MULTI_FACE_TRUTH = {"couple.jpg": 2, "img11_reflection.jpg": 1, "selfie-many-people.jpg": 7}


@dataclass
class Tally:
    photos: int = 0
    faces: int = 0
    with_face: int = 0
    centre: int = 0
    seconds: list[float] = field(default_factory=list)
    per_photo: dict[str, list[list[int]]] = field(default_factory=dict)


def _photos(root: Path, lfw_n: int) -> dict[str, list[Path]]:
    web = root / "webphotos13"
    lfw = sorted((root / "lfw" / "images").glob("*/*.jpg"))
    step = max(1, len(lfw) // max(1, lfw_n))
    return {
        "multi_face": sorted((web / "multi_face").glob("*.jpg")),
        "webphotos13": sorted((web / "identities").glob("*/*.jpg")),
        "lfw": lfw[::step][:lfw_n],
    }


def _covers_centre(box: BoundingBox, w: int, h: int) -> bool:
    return box.x1 <= w / 2 <= box.x2 and box.y1 <= h / 2 <= box.y2


def run(sets: dict[str, list[Path]], detectors: list[str], cache: Path) -> dict[str, Tally]:
    made = {k: make_detector(k, cache_dir=cache) for k in detectors}
    warm = load_image(next(p for ps in sets.values() for p in ps)).pixels
    for d in made.values():
        d.detect(warm)
    tallies: dict[str, Tally] = {}
    for set_name, paths in sets.items():
        for path in paths:
            pixels = load_image(path).pixels
            h, w = pixels.shape[:2]
            for kind, det in made.items():
                t = tallies.setdefault(f"{set_name}/{kind}", Tally())
                start = time.perf_counter()
                found = det.detect(pixels)
                t.seconds.append(time.perf_counter() - start)
                t.photos += 1
                t.faces += len(found)
                t.with_face += bool(found)
                t.centre += any(_covers_centre(f.box, w, h) for f in found)
                t.per_photo[str(path)] = [f.box.as_list() for f in found]
    return tallies


def lonely(tallies: dict[str, Tally], set_name: str, kind: str) -> list[tuple[str, list[int]]]:
    """Boxes ``kind`` found that no other detector found."""
    mine = tallies[f"{set_name}/{kind}"].per_photo
    others = [t.per_photo for k, t in tallies.items() if k.startswith(set_name + "/")]
    out = []
    for path, boxes in mine.items():
        for b in boxes:
            box = BoundingBox(*b)
            seen = sum(
                any(overlap(box, BoundingBox(*o)) >= 0.5 for o in other.get(path, []))
                for other in others
            )
            if seen <= 1:  # only itself
                out.append((path, b))
    return out


def contact_sheet(items: list[tuple[str, list[int]]], out: Path) -> None:
    """Crops (1.6x the box) of the given detections, 8 a row, numbered."""
    cell = 128
    rows = max(1, (len(items) + 7) // 8)
    sheet = Image.new("RGB", (8 * cell, rows * (cell + 14)), "white")
    draw = ImageDraw.Draw(sheet)
    for i, (path, b) in enumerate(items):
        image = Image.fromarray(load_image(path).pixels)
        cx, cy = (b[0] + b[2]) / 2, (b[1] + b[3]) / 2
        half = 0.8 * max(b[2] - b[0], b[3] - b[1])
        crop = image.crop((int(cx - half), int(cy - half), int(cx + half), int(cy + half)))
        crop = crop.resize((cell, cell))
        x, y = (i % 8) * cell, (i // 8) * (cell + 14)
        sheet.paste(crop, (x, y))
        draw.text((x + 2, y + cell), f"{i} {Path(path).name[:16]}", fill="black")
    out.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(out)


def table(tallies: dict[str, Tally], detectors: list[str]) -> str:
    lines = [
        "| set | detector | photos | faces found | photos with a face | LFW: centre face found "
        "| found by this detector alone | ms/photo (median) | ms/photo (mean) |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for key, t in tallies.items():
        set_name, kind = key.split("/")
        alone = len(lonely(tallies, set_name, kind)) if len(detectors) > 1 else 0
        centre = f"{t.centre}" if set_name == "lfw" else ""
        lines.append(
            f"| {set_name} | {kind} | {t.photos} | {t.faces} | {t.with_face} | {centre} | "
            f"{alone} | {1000 * statistics.median(t.seconds):.0f} | "
            f"{1000 * statistics.fmean(t.seconds):.0f} |"
        )
    return "\n".join(lines)


def multi_face_table(tallies: dict[str, Tally], detectors: list[str]) -> str:
    lines = ["| photo | faces (by eye) | " + " | ".join(detectors) + " |"]
    lines.append("|---|---:|" + "---:|" * len(detectors))
    for name, truth in MULTI_FACE_TRUTH.items():
        counts = []
        for kind in detectors:
            per = tallies[f"multi_face/{kind}"].per_photo
            counts.append(str(next((len(v) for k, v in per.items() if k.endswith(name)), "-")))
        lines.append(f"| {name} | {truth} | " + " | ".join(counts) + " |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--detectors", default=",".join(DETECTORS))
    ap.add_argument("--lfw", type=int, default=200, help="LFW photos in the sample")
    ap.add_argument("--sets", default="multi_face,webphotos13,lfw")
    ap.add_argument("--cache", type=Path, default=Path(".bench/models"))
    ap.add_argument("--sheets", type=Path, default=None, help="write lonely-face sheets here")
    ap.add_argument("--json", type=Path, default=None, help="write per-photo boxes here")
    ap.add_argument("--no-write", action="store_true", help="do not update BENCHMARKS.md")
    args = ap.parse_args()
    detectors = [d for d in args.detectors.split(",") if d]
    wanted = set(args.sets.split(","))
    sets = {k: v for k, v in _photos(faces_dir(), args.lfw).items() if k in wanted}
    load0 = os.getloadavg()[0]
    tallies = run(sets, detectors, args.cache)
    load1 = os.getloadavg()[0]
    body = table(tallies, detectors)
    if "multi_face" in sets:
        body = multi_face_table(tallies, detectors) + "\n\n" + body
    body += f"\n\nLoad average {load0:.1f} at the start, {load1:.1f} at the end (2 cores).\n"
    print(body)
    if args.sheets is not None:
        for key in tallies:
            set_name, kind = key.split("/")
            items = lonely(tallies, set_name, kind)
            if items:
                contact_sheet(items, args.sheets / f"{set_name}-{kind}-alone.png")
                print(f"{key}: {len(items)} alone -> {args.sheets}/{set_name}-{kind}-alone.png")
    if args.json is not None:
        args.json.write_text(json.dumps({k: t.per_photo for k, t in tallies.items()}, indent=1))
    if not args.no_write:
        write_section(
            "detect",
            "Face detectors (HOG, CNN, auto)",
            "python -m benchmarks.bench_detect",
            body + "\n" + (__doc__ or "").split("\n\n", 1)[1].split("Run:")[0],
        )


if __name__ == "__main__":
    main()
