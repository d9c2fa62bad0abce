"""Video frames: sampling, rotation, limits and routing, on videos encoded at test time."""

from __future__ import annotations

import logging
from pathlib import Path

import av
import numpy as np
import numpy.typing as npt
import pillow_heif
import pytest
from PIL import Image

from facetrace.errors import ImageError, ImageTooLarge
from facetrace.imaging import ImageLimits, is_video, iter_video_frames

RGB = npt.NDArray[np.uint8]
FPS = 5
N_FRAMES = 10


def _marker(index: int) -> int:
    """Brightness of the block stamped into frame ``index``, so a frame shows its number."""
    return 20 + 20 * index


@pytest.fixture(scope="module")
def face(faces_dir: Path) -> RGB:
    path = faces_dir / "lfw" / "images" / "AJ_Cook" / "AJ_Cook_0001.jpg"
    with Image.open(path) as im:
        rgb = np.asarray(im.convert("RGB"))
    return np.ascontiguousarray(rgb[5:245, 25:225])  # 200 wide, 240 high, even for yuv420p


def _write_video(path: Path, face: RGB, *, rotation: int = 0) -> None:
    """Encode N_FRAMES frames of ``face`` at FPS, frame i with a 32x32 block of _marker(i)."""
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("mpeg4", rate=FPS)
        stream.width, stream.height = face.shape[1], face.shape[0]
        stream.pix_fmt = "yuv420p"
        stream.bit_rate = 2_000_000
        if rotation:
            stream.set_display_rotation(rotation)
        for i in range(N_FRAMES):
            pixels = face.copy()
            pixels[:32, :32] = _marker(i)
            frame = av.VideoFrame.from_ndarray(pixels, format="rgb24")
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


@pytest.fixture(scope="module")
def video(tmp_path_factory: pytest.TempPathFactory, face: RGB) -> Path:
    path = tmp_path_factory.mktemp("video") / "clip.mp4"
    _write_video(path, face)
    return path


def _block(pixels: RGB) -> float:
    return float(pixels[4:28, 4:28].mean())


def test_samples_one_frame_per_second(video: Path, face: RGB) -> None:
    frames = list(iter_video_frames(video))
    assert [f.index for f in frames] == [0, 5]
    assert [f.timestamp_s for f in frames] == pytest.approx([0.0, 1.0])
    for f in frames:
        assert f.pixels.shape == face.shape
        assert f.pixels.dtype == np.uint8
        assert f.pixels.flags.c_contiguous
        assert abs(_block(f.pixels) - _marker(f.index)) < 8
        diff = np.abs(f.pixels[32:].astype(np.int16) - face[32:].astype(np.int16)).mean()
        assert diff < 6


def test_sampling_interval(video: Path) -> None:
    frames = list(iter_video_frames(video, every_seconds=0.4))
    assert [f.index for f in frames] == [0, 2, 4, 6, 8]
    assert [abs(_block(f.pixels) - _marker(f.index)) < 8 for f in frames] == [True] * 5


def test_every_frame_when_interval_is_short(video: Path) -> None:
    assert [f.index for f in iter_video_frames(video, every_seconds=0.01)] == list(range(10))


def test_max_frames_per_call(video: Path) -> None:
    frames = list(iter_video_frames(video, every_seconds=0.2, max_frames=3))
    assert [f.index for f in frames] == [0, 1, 2]


def test_frame_limit_caps_and_warns(video: Path, caplog: pytest.LogCaptureFixture) -> None:
    limits = ImageLimits(max_frames=2)
    with caplog.at_level(logging.WARNING, logger="facetrace.imaging"):
        frames = list(iter_video_frames(video, every_seconds=0.2, max_frames=5, limits=limits))
    assert [f.index for f in frames] == [0, 1]
    assert "stopped after 2 frames" in caplog.text


def test_display_rotation_is_applied(tmp_path: Path, face: RGB) -> None:
    path = tmp_path / "portrait.mp4"
    _write_video(path, face, rotation=-90)  # what phones write for portrait video
    frame = next(iter_video_frames(path))
    expected = np.rot90(face, -1)  # displayed turned 90 degrees clockwise
    assert frame.pixels.shape == expected.shape
    assert frame.pixels.flags.c_contiguous
    # The marker block moves from the top-left to the top-right corner.
    assert abs(float(frame.pixels[4:28, -28:-4].mean()) - _marker(0)) < 8
    body = np.abs(frame.pixels[:, :-32].astype(np.int16) - expected[:, :-32].astype(np.int16))
    assert body.mean() < 6


def test_pixel_limit_per_frame(video: Path) -> None:
    with pytest.raises(ImageTooLarge, match=r"clip\.mp4"):
        list(iter_video_frames(video, limits=ImageLimits(max_pixels=200 * 240 - 1)))


def test_file_size_limit_checked_at_call(video: Path) -> None:
    with pytest.raises(ImageTooLarge, match=r"clip\.mp4"):
        iter_video_frames(video, limits=ImageLimits(max_video_bytes=100))


@pytest.mark.parametrize(
    ("name", "content", "reason"),
    [
        ("notes.mp4", b"This is not a video.\n" * 50, "not a readable video"),
        ("empty.mp4", b"", "empty file"),
    ],
)
def test_bad_video_files(tmp_path: Path, name: str, content: bytes, reason: str) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(ImageError, match=reason) as info:
        list(iter_video_frames(path))
    assert info.value.source == str(path)


def test_missing_video_fails_at_call(tmp_path: Path) -> None:
    with pytest.raises(ImageError, match="no such file"):
        iter_video_frames(tmp_path / "gone.mp4")


def test_audio_only_file_has_no_video_stream(tmp_path: Path) -> None:
    path = tmp_path / "voice.wav"
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("pcm_s16le", rate=8000)
        samples = np.zeros((1, 800), dtype=np.int16)
        frame = av.AudioFrame.from_ndarray(samples, format="s16", layout="mono")
        frame.sample_rate = 8000
        for packet in stream.encode(frame):
            container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    with pytest.raises(ImageError, match="no video stream"):
        list(iter_video_frames(path))


def test_still_image_opens_as_one_frame(tmp_path: Path, face: RGB) -> None:
    # FFmpeg opens a PNG as a one-frame "video"; we just yield that frame.
    path = tmp_path / "still.png"
    Image.fromarray(face).save(path)
    frames = list(iter_video_frames(path))
    assert len(frames) == 1
    np.testing.assert_array_equal(frames[0].pixels, face)


@pytest.mark.parametrize("every", [0.0, -1.0, float("nan"), float("inf")])
def test_bad_interval(video: Path, every: float) -> None:
    with pytest.raises(ValueError, match="every_seconds"):
        iter_video_frames(video, every_seconds=every)


def test_bad_max_frames(video: Path) -> None:
    with pytest.raises(ValueError, match="max_frames"):
        iter_video_frames(video, max_frames=0)


def test_is_video(tmp_path: Path, video: Path, face: RGB) -> None:
    assert is_video(video)
    disguised = tmp_path / "clip.bin"
    disguised.write_bytes(video.read_bytes())
    assert is_video(disguised)  # by signature
    assert is_video(tmp_path / "not-yet.mov")  # by extension alone
    assert not is_video(tmp_path / "not-yet.jpg")

    pillow_heif.register_heif_opener()
    for name, fmt in [("a.jpg", "JPEG"), ("a.gif", "GIF"), ("a.heic", "HEIF"), ("a.png", "PNG")]:
        path = tmp_path / name
        Image.fromarray(face).save(path, fmt)
        assert not is_video(path), name
    ts = tmp_path / "capture.dat"
    ts.write_bytes((b"\x47" + bytes(187)) * 3)
    assert is_video(ts)
