"""Bad input: every refusal is a typed error naming the file, and nothing is written."""

from __future__ import annotations

import io
import os
import struct
import sys
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from facetrace.errors import ImageError, ImageTooLarge
from facetrace.imaging import ImageLimits, decode_image, load_image


@pytest.fixture(scope="module")
def jpeg_bytes(faces_dir: Path) -> bytes:
    return (faces_dir / "lfw" / "images" / "AJ_Cook" / "AJ_Cook_0001.jpg").read_bytes()


@pytest.fixture(scope="module")
def png_bytes(jpeg_bytes: bytes) -> bytes:
    buf = io.BytesIO()
    Image.open(io.BytesIO(jpeg_bytes)).save(buf, "PNG")
    return buf.getvalue()


def _png_header_only(width: int, height: int, *, bit_depth: int = 1) -> bytes:
    """A PNG whose IHDR declares ``width`` x ``height`` but carries (almost) no pixels."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        crc = zlib.crc32(kind + body)
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc)

    ihdr = struct.pack(">IIBBBBB", width, height, bit_depth, 0, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 1024)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def _refused(path: Path, error: type[ImageError], limits: ImageLimits | None = None) -> str:
    """Load ``path``, expect exactly ``error``, check the message and that nothing was written."""
    before = sorted(p.name for p in path.parent.iterdir())
    with pytest.raises(error) as info:
        load_image(path, limits=limits or ImageLimits())
    assert type(info.value) is error
    assert info.value.source == str(path)
    assert str(info.value).startswith(f"{path}: ")
    assert path.name in str(info.value)
    assert sorted(p.name for p in path.parent.iterdir()) == before
    return info.value.reason


def test_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "empty.jpg"
    path.write_bytes(b"")
    assert "empty" in _refused(path, ImageError)
    with pytest.raises(ImageError, match="empty"):
        decode_image(b"", source="upload.jpg")


def test_text_named_jpg(tmp_path: Path) -> None:
    path = tmp_path / "notes.jpg"
    path.write_text("This is not a photo.\n" * 20)
    assert "not a supported image" in _refused(path, ImageError)


def test_pdf(tmp_path: Path) -> None:
    path = tmp_path / "scan.pdf"
    path.write_bytes(b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer\n%%EOF\n")
    _refused(path, ImageError)


def test_zip_holding_a_photo(tmp_path: Path, jpeg_bytes: bytes) -> None:
    path = tmp_path / "photos.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("face.jpg", jpeg_bytes)
    _refused(path, ImageError)


def test_random_bytes(tmp_path: Path) -> None:
    path = tmp_path / "noise.png"
    path.write_bytes(np.random.default_rng(0).bytes(4096))
    _refused(path, ImageError)


def test_unsupported_format_is_not_parsed(tmp_path: Path, jpeg_bytes: bytes) -> None:
    # Pillow reads ICO, but it is not on our list of formats for untrusted input.
    path = tmp_path / "icon.ico"
    Image.open(io.BytesIO(jpeg_bytes)).save(path, "ICO")
    with Image.open(path) as check:
        assert check.format == "ICO"
    assert "not a supported image" in _refused(path, ImageError)


def test_truncated_jpeg(tmp_path: Path, jpeg_bytes: bytes) -> None:
    path = tmp_path / "half.jpg"
    path.write_bytes(jpeg_bytes[: len(jpeg_bytes) // 2])
    assert "truncated or corrupt" in _refused(path, ImageError)


def test_truncated_png(tmp_path: Path, png_bytes: bytes) -> None:
    path = tmp_path / "half.png"
    path.write_bytes(png_bytes[: len(png_bytes) // 2])
    assert "truncated or corrupt" in _refused(path, ImageError)


def test_corrupt_bytes_in_the_middle_of_a_png(tmp_path: Path, png_bytes: bytes) -> None:
    data = bytearray(png_bytes)
    middle = len(data) // 2
    data[middle : middle + 64] = np.random.default_rng(1).bytes(64)
    path = tmp_path / "corrupt.png"
    path.write_bytes(bytes(data))
    assert "truncated or corrupt" in _refused(path, ImageError)


def test_corrupt_jpeg_tables(tmp_path: Path, jpeg_bytes: bytes) -> None:
    # A broken marker segment in the middle. (Garbage inside the entropy-coded scan data
    # is concealed by libjpeg and cannot be detected through Pillow.)
    data = bytearray(jpeg_bytes)
    middle = len(data) // 2
    data[middle : middle + 64] = b"\xff\xc4" + bytes(62)
    path = tmp_path / "corrupt.jpg"
    path.write_bytes(bytes(data))
    assert "truncated or corrupt" in _refused(path, ImageError)


def test_decompression_bomb_over_pillow_limit(tmp_path: Path) -> None:
    path = tmp_path / "bomb.png"
    path.write_bytes(_png_header_only(100_000, 100_000))
    assert path.stat().st_size < 200
    _refused(path, ImageTooLarge)


def test_pixel_limit_checked_from_header_before_decoding(tmp_path: Path) -> None:
    # 81 megapixels: over our default limit but under Pillow's own bomb threshold, so
    # only our header check can refuse it; decoding would have failed as truncated.
    assert Image.MAX_IMAGE_PIXELS is not None
    assert Image.MAX_IMAGE_PIXELS > 9000 * 9000
    path = tmp_path / "big.png"
    path.write_bytes(_png_header_only(9000, 9000))
    assert "over the limit of 80000000" in _refused(path, ImageTooLarge)


def test_pixel_limit_on_a_real_photo(tmp_path: Path, png_bytes: bytes) -> None:
    path = tmp_path / "face.png"
    path.write_bytes(png_bytes)
    assert "62500 pixels" in _refused(path, ImageTooLarge, ImageLimits(max_pixels=62_499))
    assert load_image(path, limits=ImageLimits(max_pixels=62_500)).pixels.shape == (250, 250, 3)


def test_byte_limit(tmp_path: Path, jpeg_bytes: bytes) -> None:
    path = tmp_path / "face.jpg"
    path.write_bytes(jpeg_bytes)
    small = ImageLimits(max_bytes=len(jpeg_bytes) - 1)
    assert "over the limit" in _refused(path, ImageTooLarge, small)
    with pytest.raises(ImageTooLarge, match=r"upload\.jpg"):
        decode_image(jpeg_bytes, source="upload.jpg", limits=small)


def test_huge_sparse_file_refused_by_size(tmp_path: Path) -> None:
    path = tmp_path / "huge.jpg"
    with path.open("wb") as f:
        f.truncate(10 * 1024**3)  # sparse: no disk used, never read
    assert "over the limit" in _refused(path, ImageTooLarge)


def test_zero_dimension(tmp_path: Path) -> None:
    path = tmp_path / "zero.png"
    path.write_bytes(_png_header_only(0, 10, bit_depth=8))
    _refused(path, ImageError)


def test_directory(tmp_path: Path) -> None:
    path = tmp_path / "folder.jpg"
    path.mkdir()
    assert "directory" in _refused(path, ImageError)


def test_missing_path(tmp_path: Path) -> None:
    assert "no such file" in _refused(tmp_path / "gone.jpg", ImageError)


@pytest.mark.skipif(sys.platform == "win32", reason="FIFOs are POSIX")
def test_fifo_is_not_read(tmp_path: Path) -> None:
    path = tmp_path / "pipe.jpg"
    os.mkfifo(path)
    assert "not a regular file" in _refused(path, ImageError)


@pytest.mark.parametrize("field", ["max_bytes", "max_pixels", "max_video_bytes", "max_frames"])
def test_limits_must_be_positive(field: str) -> None:
    with pytest.raises(ValueError, match=field):
        ImageLimits(**{field: 0})
