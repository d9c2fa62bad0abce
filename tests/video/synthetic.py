"""Synthetic videos with known truth: LFW photos moving across frames, cuts between shots.

Each shot has a plain background of its own colour (so the cut detector sees the cut)
and actors: an LFW photo pasted at a size, moving in a straight line between two
positions while it is on screen. The truth says which identity is on screen when, so the
tracker's and the merger's answers can be checked exactly. Used by the tests and by
``benchmarks/bench_video.py``; the photos are read from ``$FACETRACE_FACES`` at run time
and never written anywhere but the video.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np
import numpy.typing as npt
from PIL import Image

RGB = npt.NDArray[np.uint8]


@dataclass(frozen=True)
class Actor:
    """One identity on screen in one shot.

    Attributes:
        name: the identity (an LFW name; two actors may share one: twins).
        photo: the LFW photo pasted (250x250; its face fills about the middle 45 %).
        start_s, end_s: when the actor is on screen, from the shot's start.
        start, end: the photo's centre at ``start_s`` and ``end_s``, as fractions of the
            frame's width and height.
        size: the pasted photo's height as a fraction of the frame's height.
    """

    name: str
    photo: Path
    start_s: float
    end_s: float
    start: tuple[float, float]
    end: tuple[float, float]
    size: float = 0.55


@dataclass(frozen=True)
class Shot:
    """A shot: its length, background colour and actors."""

    duration_s: float
    background: tuple[int, int, int]
    actors: tuple[Actor, ...]


@dataclass(frozen=True)
class Truth:
    """Who is on screen when, in video seconds: ``intervals[name]`` sorted (start, end),
    one per actor appearance (a shot's actor, or a return after leaving)."""

    intervals: dict[str, list[tuple[float, float]]]
    duration_s: float
    cuts: tuple[float, ...]

    @property
    def names(self) -> list[str]:
        return sorted(self.intervals)


def lfw_photo(faces_dir: Path, name: str, number: int = 1) -> Path:
    """The path of LFW photo ``number`` of ``name`` in the shared faces folder."""
    return faces_dir / "lfw" / "images" / name / f"{name}_{number:04d}.jpg"


def _load(photo: Path, height: int) -> RGB:
    with Image.open(photo) as im:
        rgb = im.convert("RGB")
        side = max(8, height)
        return np.asarray(rgb.resize((side, side), Image.Resampling.BILINEAR))


def _background(width: int, height: int, colour: tuple[int, int, int]) -> RGB:
    """The shot's colour with a gentle vertical gradient (flat frames are unlike video)."""
    ramp = np.linspace(0.8, 1.1, height, dtype=np.float32)[:, None, None]
    base = np.asarray(colour, dtype=np.float32)[None, None, :] * ramp
    return np.clip(np.broadcast_to(base, (height, width, 3)), 0, 255).astype(np.uint8)


def _paste(canvas: RGB, photo: RGB, cx: float, cy: float) -> None:
    h, w = photo.shape[:2]
    x1, y1 = round(cx - w / 2), round(cy - h / 2)
    sx1, sy1 = max(0, -x1), max(0, -y1)
    dx1, dy1 = max(0, x1), max(0, y1)
    dx2, dy2 = min(canvas.shape[1], x1 + w), min(canvas.shape[0], y1 + h)
    if dx2 > dx1 and dy2 > dy1:
        canvas[dy1:dy2, dx1:dx2] = photo[sy1 : sy1 + dy2 - dy1, sx1 : sx1 + dx2 - dx1]


def write_video(
    path: Path,
    shots: Sequence[Shot],
    *,
    width: int = 640,
    height: int = 360,
    fps: float = 25.0,
    codec: str = "libx264",
) -> Truth:
    """Encode the shots to ``path`` (H.264 in MP4 by default) and return the truth.

    Width and height must be even (yuv420p). Frames are drawn one at a time, so memory
    does not grow with the video's length.
    """
    photos: dict[tuple[Path, int], RGB] = {}
    intervals: dict[str, list[tuple[float, float]]] = {}
    cuts: list[float] = []
    t0 = 0.0
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream(codec, rate=round(fps))
        stream.width, stream.height = width, height
        stream.pix_fmt = "yuv420p"
        if codec == "libx264":
            stream.options = {"preset": "veryfast", "crf": "23"}
        frame_no = 0
        for shot_no, shot in enumerate(shots):
            if shot_no:
                cuts.append(t0)
            for actor in shot.actors:
                intervals.setdefault(actor.name, []).append(
                    (t0 + actor.start_s, t0 + min(actor.end_s, shot.duration_s))
                )
            background = _background(width, height, shot.background)
            n = math.ceil(shot.duration_s * fps - 1e-9)
            for i in range(n):
                t = i / fps
                canvas = background.copy()
                for actor in shot.actors:
                    if not actor.start_s <= t <= actor.end_s:
                        continue
                    side = round(actor.size * height)
                    key = (actor.photo, side)
                    if key not in photos:
                        photos[key] = _load(actor.photo, side)
                    span = max(actor.end_s - actor.start_s, 1e-6)
                    f = (t - actor.start_s) / span
                    cx = (actor.start[0] + f * (actor.end[0] - actor.start[0])) * width
                    cy = (actor.start[1] + f * (actor.end[1] - actor.start[1])) * height
                    _paste(canvas, photos[key], cx, cy)
                frame = av.VideoFrame.from_ndarray(canvas, format="rgb24")
                frame.pts = frame_no
                frame_no += 1
                for packet in stream.encode(frame):
                    container.mux(packet)
            t0 += n / fps
        for packet in stream.encode():
            container.mux(packet)
    return Truth({k: sorted(v) for k, v in intervals.items()}, duration_s=t0, cuts=tuple(cuts))


# --- the scenes the tests and the benchmark share ----------------------------------------

GREY, BLUE, GREEN, BROWN = (110, 110, 110), (60, 80, 140), (70, 120, 70), (130, 100, 70)


def two_people_cut_return(faces_dir: Path) -> list[Shot]:
    """Two people side by side, moving; a cut; the first alone (another photo of them),
    who walks out of the frame and comes back. Truth: two persons, the first seen in both
    shots (twice in the second), the second only in the first shot."""
    a, b = "Colin_Powell", "Tony_Blair"
    return [
        Shot(
            3.0,
            GREY,
            (
                Actor(a, lfw_photo(faces_dir, a, 1), 0.0, 3.0, (0.25, 0.5), (0.32, 0.45)),
                Actor(b, lfw_photo(faces_dir, b, 1), 0.0, 3.0, (0.75, 0.5), (0.68, 0.55)),
            ),
        ),
        Shot(
            4.0,
            BLUE,
            (
                Actor(a, lfw_photo(faces_dir, a, 2), 0.0, 1.2, (0.5, 0.5), (0.6, 0.5)),
                Actor(a, lfw_photo(faces_dir, a, 2), 2.8, 4.0, (0.4, 0.5), (0.5, 0.5)),
            ),
        ),
    ]


def twins(faces_dir: Path) -> list[Shot]:
    """The same photo twice in every frame: two people whatever their likeness, never one."""
    a = "Hugo_Chavez"
    photo = lfw_photo(faces_dir, a, 1)
    return [
        Shot(
            3.0,
            GREEN,
            (
                Actor(f"{a} (left)", photo, 0.0, 3.0, (0.25, 0.5), (0.3, 0.5)),
                Actor(f"{a} (right)", photo, 0.0, 3.0, (0.75, 0.5), (0.7, 0.5)),
            ),
        )
    ]


def long_720p(faces_dir: Path, *, shots: int = 3, shot_s: float = 10.0) -> list[Shot]:
    """A longer 1280x720 scene for the benchmark: in each shot three of four people walk
    across the frame, one of them leaves half-way and comes back; shots alternate colours."""
    names = ["Colin_Powell", "Tony_Blair", "Hugo_Chavez", "Jacques_Chirac"]
    colours = [GREY, BLUE, GREEN, BROWN]
    out: list[Shot] = []
    for s in range(shots):
        cast = [names[(s + i) % 4] for i in range(3)]
        photo = 1 + s
        actors = (
            Actor(cast[0], lfw_photo(faces_dir, cast[0], photo), 0.0, shot_s,
                  (0.15, 0.4), (0.35, 0.45), 0.35),
            Actor(cast[1], lfw_photo(faces_dir, cast[1], photo), 0.0, shot_s * 0.4,
                  (0.6, 0.6), (0.65, 0.55), 0.35),
            Actor(cast[1], lfw_photo(faces_dir, cast[1], photo), shot_s * 0.6, shot_s,
                  (0.65, 0.55), (0.6, 0.6), 0.35),
            Actor(cast[2], lfw_photo(faces_dir, cast[2], photo), 0.0, shot_s,
                  (0.85, 0.35), (0.85, 0.3), 0.3),
        )  # fmt: skip
        out.append(Shot(shot_s, colours[s % 4], actors))
    return out


def lfw_people(faces_dir: Path, *, min_photos: int) -> list[str]:
    """The LFW identities in the shared folder with at least ``min_photos`` photos, sorted."""
    root = faces_dir / "lfw" / "images"
    return sorted(
        p.name for p in root.iterdir() if p.is_dir() and len(list(p.glob("*.jpg"))) >= min_photos
    )


def recurring_cast(
    faces_dir: Path,
    *,
    seed: int,
    recurring: int = 4,
    appearances: int = 3,
    others: int = 3,
    shot_s: float = 2.4,
) -> list[Shot]:
    """Several people who come back, cut after cut, each time in *another* photo of them,
    between other people seen once: the merge has to join one person's appearances across
    cuts (a different picture every time) and keep everybody else apart.

    ``recurring`` identities with at least 8 LFW photos each appear ``appearances`` times
    (photos 1, 2, ... in turn); ``others`` identities appear once. Shots hold one to three
    people, side by side, walking a little; nobody is twice in one shot. The same seed
    gives the same video."""
    rng = np.random.default_rng(seed)
    pool = lfw_people(faces_dir, min_photos=8)
    chosen = [pool[i] for i in rng.choice(len(pool), recurring + others, replace=False)]
    cast = [(name, 1 + k) for name in chosen[:recurring] for k in range(appearances)]
    cast += [(name, 1) for name in chosen[recurring:]]
    order = [cast[i] for i in rng.permutation(len(cast))]
    shots_people: list[list[tuple[str, int]]] = []
    while order:
        want = int(rng.integers(1, 4))
        group: list[tuple[str, int]] = []
        rest: list[tuple[str, int]] = []
        for item in order:
            names = {n for n, _ in group}
            previous = {n for n, _ in shots_people[-1]} if shots_people else set()
            # nobody twice in one shot, nor in two shots in a row (a cut must part them)
            if len(group) < want and item[0] not in names and item[0] not in previous:
                group.append(item)
            else:
                rest.append(item)
        if not group:  # only people of the last shot are left: a shot of someone else
            group, rest = [rest[0]], rest[1:]
        shots_people.append(group)
        order = rest
    colours = [GREY, BLUE, GREEN, BROWN, (150, 80, 90), (70, 70, 40)]
    slots = {1: [0.5], 2: [0.3, 0.7], 3: [0.18, 0.5, 0.82]}
    out: list[Shot] = []
    for s, group in enumerate(shots_people):
        xs = slots[len(group)]
        size = 0.55 if len(group) < 3 else 0.45
        actors = tuple(
            Actor(name, lfw_photo(faces_dir, name, photo), 0.0, shot_s,
                  (x - 0.03, 0.5), (x + 0.03, 0.48), size)
            for (name, photo), x in zip(group, xs, strict=True)
        )  # fmt: skip
        out.append(Shot(shot_s, colours[s % len(colours)], actors))
    return out


def who(shots: Sequence[Shot], t: float, x: float, y: float, *, width: int, height: int) -> str:
    """The identity on screen at video time ``t`` whose face is at the point (x, y) in
    pixels (e.g. a key frame's face centre); "" when nobody is on screen then, or when the
    point is off the middle of every photo shown: another face in a photo's background (a
    bystander in an LFW picture is somebody else).

    A frame at a cut's exact time belongs to the shot that starts there."""
    t0 = 0.0
    for shot in shots:
        if t < t0 + shot.duration_s - 1e-6:
            best, dist, side = "", float("inf"), 0.0
            for a in shot.actors:
                rel = t - t0
                if not a.start_s - 1e-6 <= rel <= a.end_s + 1e-6:
                    continue
                f = (rel - a.start_s) / max(a.end_s - a.start_s, 1e-6)
                cx = (a.start[0] + f * (a.end[0] - a.start[0])) * width
                cy = (a.start[1] + f * (a.end[1] - a.start[1])) * height
                d = math.hypot(cx - x, cy - y)
                if d < dist:
                    best, dist, side = a.name, d, a.size * height
            # an LFW photo's own face is centred (its middle ~45 %)
            return best if dist <= 0.25 * side else ""
        t0 += shot.duration_s
    return ""
