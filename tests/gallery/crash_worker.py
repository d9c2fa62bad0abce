"""Child process for the crash test: writes to a gallery until it is killed.

Usage: ``python crash_worker.py DATA_DIR SEED MODE`` (SQL in ``$FACETRACE_CRASH_DATABASE_URL``
when set, else SQLite in DATA_DIR). Prints ``ready`` once the gallery
is open and ``writing`` after its tenth add, then writes as fast as it can until the
parent kills it with SIGKILL. MODE
``mixed`` adds photos (random unit vectors), deletes some (each delete saves the
index) and saves the index; ``adds`` only adds, so the saved index is always behind.
``torn`` adds ten photos, then SIGKILLs itself inside the eleventh's index write, after
SQL committed it and before the index got it: the one moment a Milvus server (which
keeps every write it acknowledged) is left behind SQL, hit for certain.
``templates`` adds batches of photos of a few subjects (vectors close to each subject's
own, so each subject has a template that every batch rewrites) and deletes some.
``reuse`` adds ten photos, deletes the newest (the face with the highest id), saves the
index, adds one photo and SIGKILLs itself before any further save: the moment where a
reused face id (SQLite gave the next face the deleted one's id, at or below the saved
watermark) would leave that face out of the repaired index.
"""

from __future__ import annotations

import hashlib
import os
import random
import signal
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
from sqlalchemy import select

from facetrace.gallery.directory import Gallery, NewPhoto
from facetrace.store.models import Photo
from facetrace.store.repo import PhotoRecord
from facetrace.types import BoundingBox, Detection, Face, Landmarks, Provenance, Quality


def fake_face(rng: np.random.Generator, model_id: str) -> Face:
    """A face with a random unit vector: the index only sees vectors."""
    vec = rng.standard_normal(128).astype(np.float32)
    return Face(
        detection=Detection(
            box=BoundingBox(10, 10, 90, 90),
            landmarks=Landmarks.from_array(np.full((5, 2), 50.0)),
            score=1.0,
        ),
        quality=Quality(score=1.0),
        vector=vec / np.linalg.norm(vec),
        model_id=model_id,
    )


def add_random_photo(g: Gallery, rng: np.random.Generator, tag: str) -> str:
    sha = hashlib.sha256(tag.encode()).hexdigest()
    g.add_photo(
        sha256=sha,
        width=100,
        height=100,
        faces=[fake_face(rng, g.descriptor.model_id)],
        subject_face=0,
        record=PhotoRecord(subject_id=f"s-{tag}", provenance=Provenance(collection="crash")),
    )
    return sha


def near_face(rng: np.random.Generator, base: np.ndarray, model_id: str) -> Face:
    """A face whose vector is ``base`` plus a little noise (one person's photos)."""
    face = fake_face(rng, model_id)
    vec = base + 0.15 * face.vector
    return replace(face, vector=(vec / np.linalg.norm(vec)).astype(np.float32))


def add_subject_batch(g: Gallery, rng: np.random.Generator, bases: np.ndarray, tag: str) -> None:
    """One batch of four photos, each of one of the few subjects."""
    photos = []
    for j in range(4):
        who = int(rng.integers(len(bases)))
        photos.append(
            NewPhoto(
                sha256=hashlib.sha256(f"{tag}-{j}".encode()).hexdigest(),
                width=100,
                height=100,
                faces=[near_face(rng, bases[who], g.descriptor.model_id)],
                subject_face=0,
                record=PhotoRecord(
                    subject_id=f"t-{who}", provenance=Provenance(collection="crash")
                ),
            )
        )
    g.add_photos(photos)


def templates_loop(g: Gallery, rng: np.random.Generator, pick: random.Random, seed: int) -> None:
    bases = np.random.default_rng(99).standard_normal((5, 128)).astype(np.float32)
    bases /= np.linalg.norm(bases, axis=1, keepdims=True)
    n = 0
    while True:
        if n == 10:
            print("writing", flush=True)
        if pick.random() < 0.8:
            add_subject_batch(g, rng, bases, f"{seed}-{n}")
        else:
            with g.session() as s:
                photos = list(s.scalars(select(Photo.id).order_by(Photo.id.desc()).limit(20)))
            if photos:
                g.delete_photo(str(pick.choice(photos)))
        n += 1


def reuse_then_die(g: Gallery, rng: np.random.Generator, seed: int) -> None:
    newest = ""
    for n in range(10):
        newest = add_random_photo(g, rng, f"{seed}-{n}")
    print("writing", flush=True)
    g.delete_photo(newest)  # the face with the highest id
    g.save_index()  # the saved watermark is that deleted face's id
    add_random_photo(g, rng, f"{seed}-after")
    os.kill(os.getpid(), signal.SIGKILL)


def main() -> None:
    data, seed, mode = Path(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
    rng = np.random.default_rng(seed)
    pick = random.Random(seed)
    g = Gallery.open(data, database_url=os.environ.get("FACETRACE_CRASH_DATABASE_URL"))
    print("ready", flush=True)
    if mode == "templates":
        templates_loop(g, rng, pick, seed)
    if mode == "reuse":
        reuse_then_die(g, rng, seed)
    added: list[str] = []
    n = 0
    while True:
        if n == 10:  # the parent's random delay starts once writing is under way
            print("writing", flush=True)
            if mode == "torn":
                die = lambda *_, **__: os.kill(os.getpid(), signal.SIGKILL)  # noqa: E731
                g.index.add = die  # type: ignore[method-assign]
        op = pick.random()
        if mode in ("adds", "torn") or op < 0.5 or not added:
            added.append(add_random_photo(g, rng, f"{seed}-{n}"))
            n += 1
        elif op < 0.7:
            g.delete_photo(added.pop(pick.randrange(len(added))))
        else:
            g.save_index()


if __name__ == "__main__":
    main()
