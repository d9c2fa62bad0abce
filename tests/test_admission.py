"""Admission control for decoding (issue 11, item 4): the pixels in flight and the photos
decoded at once are bounded, counted from the header before a byte is decoded, and a
large JPEG is decoded reduced when the detector needs no more."""

from __future__ import annotations

import io
import threading
from pathlib import Path

import pytest
from PIL import Image

from facetrace.config import PipelineOptions
from facetrace.engine import FacePipeline
from facetrace.errors import Busy, ImageTooLarge
from facetrace.imaging import DecodeBudget, ImageLimits, decode_image, read_header
from facetrace.inference import InferencePool

SIDE = 8900  # 79.2 megapixels: within the default 80 MP limit


def big_jpeg(side: int = SIDE) -> bytes:
    """A ``side`` x ``side`` JPEG (an even grey with a darker square: about 1 MB)."""
    image = Image.new("RGB", (side, side), (128, 120, 110))
    image.paste((40, 40, 40), (side // 4, side // 4, side // 2, side // 2))
    out = io.BytesIO()
    image.save(out, format="JPEG", quality=80)
    return out.getvalue()


@pytest.fixture(scope="module")
def jpeg() -> bytes:
    return big_jpeg()


def test_a_large_jpeg_is_decoded_reduced_to_the_detectors_size(jpeg: bytes) -> None:
    header = read_header(jpeg, max_decoded_pixels=16_000_000)
    assert (header.width, header.height, header.format) == (SIDE, SIDE, "JPEG")
    assert header.decoded_pixels == 4450 * 4450, "1/2 of the side: at least 16 MP kept"
    image = decode_image(jpeg, max_decoded_pixels=16_000_000)
    assert image.pixels.shape == (4450, 4450, 3) and image.scale == 0.5
    assert image.original_size == (SIDE, SIDE)
    # the dark square is where it was, in the reduced coordinates
    assert image.pixels[SIDE // 8 * 3 // 2, SIDE // 8 * 3 // 2].max() < 60
    assert read_header(jpeg).decoded_pixels == SIDE * SIDE, "whole without a bound"


def test_a_png_counts_whole_and_is_reduced_after_decoding() -> None:
    out = io.BytesIO()
    Image.new("RGB", (3000, 2000), (1, 2, 3)).save(out, format="PNG")
    # its decoder holds the whole photo for a moment: that is what the budget counts
    assert read_header(out.getvalue(), max_decoded_pixels=1_000_000).decoded_pixels == 6_000_000
    image = decode_image(out.getvalue(), max_decoded_pixels=1_000_000)
    assert image.pixels.shape == (1000, 1500, 3) and image.scale == 0.5
    assert image.upright_size == (3000, 2000)
    with pytest.raises(ImageTooLarge, match="over the limit"):
        read_header(out.getvalue(), limits=ImageLimits(max_pixels=5_000_000))


def test_faces_of_a_reduced_photo_come_back_in_its_own_coordinates(
    faces_dir: Path, tmp_path: Path
) -> None:
    """A face photo enlarged to 5000 x 5000 (a 25 MP JPEG), analysed with the detector
    at 4 MP: decoded at 1/2, yet the boxes are where the whole photo has them, in this
    process and in a worker process."""
    photo = faces_dir / "lfw" / "images" / "Laura_Bush" / "Laura_Bush_0001.jpg"
    big = io.BytesIO()
    Image.open(photo).convert("RGB").resize((5000, 5000), Image.Resampling.BICUBIC).save(
        big, format="JPEG", quality=90
    )
    data = big.getvalue()
    options = PipelineOptions(cache_dir=tmp_path / "models", max_detect_pixels=4_000_000)
    pipeline = FacePipeline(options)
    whole = pipeline.analyse(decode_image(data).pixels)[0].detection.box
    reduced = decode_image(data, max_decoded_pixels=4_000_000)
    assert reduced.scale == 0.5 and reduced.upright_size == (5000, 5000)
    here = pipeline.analyse(reduced.pixels)[0].detection.box
    assert all(abs(a / 0.5 - b) <= 40 for a, b in zip(here.as_list(), whole.as_list(), strict=True))
    pool = InferencePool(
        options, limits=ImageLimits(max_bytes=1 << 25), workers=1, max_decoded_pixels=4_000_000
    )
    try:
        found = pool.analyse(data, source="big.jpg")
        box = found.faces[0].detection.box
        assert (found.width, found.height) == (5000, 5000)
        assert all(abs(a - b) <= 40 for a, b in zip(box.as_list(), whole.as_list(), strict=True))
        inside = pool.analyse_box(data, source="big.jpg", box=tuple(whole.as_list()))
        assert float(inside.vector @ found.faces[0].vector) > 0.95
    finally:
        pool.close()


def test_the_budget_bounds_pixels_and_photos_in_flight() -> None:
    budget = DecodeBudget(max_pixels=100, max_photos=2, max_waiting=10, timeout=60)
    hold = threading.Event()
    admitted: list[int] = []
    lock = threading.Lock()

    def work(n: int) -> None:
        with budget.admit(n):
            with lock:
                admitted.append(n)
                photos, pixels = budget.in_flight
                assert photos <= 2 and pixels <= 100
            hold.wait(60)

    threads = [threading.Thread(target=work, args=(n,), daemon=True) for n in (60, 30, 30, 90)]
    for t in threads:
        t.start()
    for _ in range(200):  # wait for the first two to be admitted (not a timing assertion)
        if budget.in_flight[0] == 2:
            break
        threading.Event().wait(0.05)
    assert budget.in_flight == (2, 90) and admitted == [60, 30]
    hold.set()
    for t in threads:
        t.join(60)
    assert sorted(admitted) == [30, 30, 60, 90]
    assert budget.peak_pixels <= 100 and budget.in_flight == (0, 0)


def test_a_photo_larger_than_the_budget_runs_alone() -> None:
    budget = DecodeBudget(max_pixels=100, max_photos=4, max_waiting=0)
    with budget.admit(500):
        assert budget.in_flight == (1, 100), "counted as the whole budget"
        with pytest.raises(Busy), budget.admit(1):  # no room, and no waiting allowed
            pass
    assert budget.in_flight == (0, 0)


def test_a_full_queue_or_a_long_wait_is_busy_not_a_hang() -> None:
    budget = DecodeBudget(max_pixels=10, max_photos=1, max_waiting=1, timeout=0.2)
    hold = threading.Event()
    holder = threading.Thread(target=lambda: _hold(budget, hold), daemon=True)
    holder.start()
    while budget.in_flight[0] == 0:
        threading.Event().wait(0.01)
    with pytest.raises(Busy, match="busy"), budget.admit(5):  # waited its timeout in line
        pass
    waiter = threading.Thread(target=lambda: _try(budget), daemon=True)
    waiter.start()
    while not budget._queue:  # the one place in the queue is taken
        threading.Event().wait(0.01)
    with pytest.raises(Busy, match="1 waiting"), budget.admit(5):
        pass
    hold.set()
    holder.join(10)
    waiter.join(10)


def _hold(budget: DecodeBudget, hold: threading.Event) -> None:
    with budget.admit(10):
        hold.wait(30)


def _try(budget: DecodeBudget) -> None:
    try:
        with budget.admit(5):
            pass
    except Busy:
        pass
