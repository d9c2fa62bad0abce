"""The probe-analysing worker processes (issue 10 item 2): the same faces as the pipeline in
this process, the user's errors passed back as they are, and a dead worker answered as
unavailable (then replaced) instead of a request left waiting. Real models, real LFW
photos, real processes killed with SIGKILL."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from facetrace.config import PipelineOptions
from facetrace.engine import FacePipeline
from facetrace.errors import ImageError, ImageTooLarge, InferenceUnavailable, InvalidRequest
from facetrace.imaging import DecodeBudget, ImageLimits, load_image
from facetrace.inference import InferencePool, ProbeAnalyser


@pytest.fixture(scope="module")
def options(tmp_path_factory: pytest.TempPathFactory) -> PipelineOptions:
    return PipelineOptions(cache_dir=tmp_path_factory.mktemp("models"))


@pytest.fixture()
def pool(options: PipelineOptions) -> Iterator[InferencePool]:
    p = InferencePool(options, limits=ImageLimits(max_bytes=1 << 24), workers=1)
    yield p
    p.close()


def _photo(faces_dir: Path, name: str = "Laura_Bush", i: int = 1) -> Path:
    return faces_dir / "lfw" / "images" / name / f"{name}_{i:04d}.jpg"


def test_workers_find_the_faces_this_process_finds(
    pool: InferencePool, options: PipelineOptions, faces_dir: Path
) -> None:
    photo = _photo(faces_dir)
    found = pool.analyse(photo.read_bytes(), source=photo.name)
    here = FacePipeline(options).analyse(load_image(photo).pixels)
    assert (found.width, found.height) == (250, 250)
    assert len(found.faces) == len(here) >= 1
    for a, b in zip(found.faces, here, strict=True):
        assert a.detection.box == b.detection.box
        assert a.model_id == b.model_id
        np.testing.assert_allclose(a.vector, b.vector, atol=1e-5)
    box = here[0].detection.box
    inside = pool.analyse_box(
        photo.read_bytes(), source=photo.name, box=(box.x1, box.y1, box.x2, box.y2)
    )
    assert float(inside.vector @ here[0].vector) > 0.99


def test_bad_photos_raise_the_users_error_from_the_worker(
    pool: InferencePool, faces_dir: Path
) -> None:
    with pytest.raises(ImageError, match=r"broken\.jpg") as bad:
        pool.analyse(b"not a photo at all", source="broken.jpg")
    assert not isinstance(bad.value, ImageTooLarge)
    small = InferencePool(pool.options, limits=ImageLimits(max_bytes=1000), workers=1)
    try:
        with pytest.raises(ImageTooLarge, match=r"big\.jpg"):
            small.analyse(_photo(faces_dir).read_bytes(), source="big.jpg")
    finally:
        small.close()


def test_a_dead_worker_is_a_clear_unavailable_then_the_pool_recovers(
    pool: InferencePool, faces_dir: Path
) -> None:
    photo = _photo(faces_dir).read_bytes()
    (pid,) = pool.warm()
    os.kill(pid, signal.SIGKILL)  # the only worker: the next analysis cannot be answered
    with pytest.raises(InferenceUnavailable, match="stopped unexpectedly"):
        pool.analyse(photo, source="a.jpg")
    assert pool.restarts == 1
    again = pool.analyse(photo, source="a.jpg")  # a new worker answers
    assert len(again.faces) >= 1
    assert pool.pids() and pid not in pool.pids()


def test_the_pool_has_as_many_workers_as_asked(options: PipelineOptions) -> None:
    p = InferencePool(options, limits=ImageLimits(), workers=2)
    try:
        # warm() keeps each worker busy loading models; both are started for two calls
        pids = set(p.warm()) | set(p.warm())
        assert len(p.pids()) == 2 and pids <= set(p.pids())
    finally:
        p.close()
    with pytest.raises(InferenceUnavailable, match="shut down"):
        p.analyse(b"x", source="x.jpg")


_ORPHAN_SCRIPT = """
import os
import sys
from pathlib import Path
from facetrace.config import PipelineOptions
from facetrace.imaging import ImageLimits
from facetrace.inference import InferencePool

if __name__ == "__main__":
    options = PipelineOptions(cache_dir=Path(sys.argv[1]))
    pool = InferencePool(options, limits=ImageLimits(), workers=2)
    photo = Path(sys.argv[2])
    pool.analyse(photo.read_bytes(), source=photo.name)  # the pool is up, models loaded
    me = str(os.getpid())
    kids = [
        p.name for p in Path("/proc").iterdir()
        if p.name.isdigit() and (p / "stat").exists()
        and (p / "stat").read_text().rsplit(")", 1)[1].split()[1] == me
    ]
    print(" ".join(kids), flush=True)
    sys.stdin.readline()  # killed here
"""


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


def test_workers_end_when_the_service_is_killed(
    tmp_path: Path, options: PipelineOptions, faces_dir: Path
) -> None:
    """A service killed with kill -9 leaves no analysing workers behind with their models
    loaded (a pool's workers hold both ends of its queue and would wait forever)."""
    import subprocess
    import sys
    import time

    script = tmp_path / "owner.py"
    script.write_text(_ORPHAN_SCRIPT)
    owner = subprocess.Popen(
        [sys.executable, str(script), str(options.cache_dir), str(_photo(faces_dir))],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    pids: list[int] = []
    try:
        assert owner.stdout is not None
        pids = [int(p) for p in owner.stdout.readline().split()]
        workers = [p for p in pids if _alive(p)]
        assert len(workers) >= 2  # the two workers (and the resource tracker)
        owner.kill()
        owner.wait()
        deadline = time.monotonic() + 60  # a bound for a busy machine, not a speed check
        while any(_alive(p) for p in pids) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not any(_alive(p) for p in pids), [p for p in pids if _alive(p)]
    finally:
        owner.kill()
        for p in pids:
            if _alive(p):
                os.kill(p, signal.SIGKILL)


def test_the_service_analyser_gives_the_same_faces_on_workers_and_in_process(
    options: PipelineOptions, faces_dir: Path
) -> None:
    """The state's ProbeAnalyser (what searches.py's FaceAnalyser is in the service): one
    worker process or this process, the same faces and box embedding, inside the decode
    budget; an unknown detector is refused before anything decodes; once closed (the
    service stopping) no worker is started again."""
    pipeline = FacePipeline(options)
    budget = DecodeBudget(max_pixels=100_000_000, max_photos=2)
    limits = ImageLimits(max_bytes=1 << 24)
    here = ProbeAnalyser(lambda: pipeline, limits=limits, budget=budget)
    there = ProbeAnalyser(lambda: pipeline, limits=limits, budget=budget, workers=1)
    data = _photo(faces_dir).read_bytes()
    try:
        assert here.pool() is None
        a, b = here.analyse(data, source="a.jpg"), there.analyse(data, source="a.jpg")
        assert (a.width, a.height) == (b.width, b.height) == (250, 250)
        assert [f.detection.box for f in a.faces] == [f.detection.box for f in b.faces]
        np.testing.assert_allclose(a.faces[0].vector, b.faces[0].vector, atol=1e-5)
        box = a.faces[0].detection.box
        drawn = (box.x1, box.y1, box.x2, box.y2)
        inside = here.analyse_box(data, source="a.jpg", box=drawn)
        assert (
            float(inside.vector @ there.analyse_box(data, source="a.jpg", box=drawn).vector) > 0.99
        )
        with pytest.raises(InvalidRequest):
            here.analyse(b"not decoded", source="b.jpg", detector="sift")
    finally:
        there.close()
        here.close()
    with pytest.raises(InferenceUnavailable):
        there.analyse(data, source="a.jpg")
