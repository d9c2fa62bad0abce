"""Decoding real photos in every supported format, mode and EXIF orientation.

Every variant is written at test time into ``tmp_path`` from one real face photo, and
decoded pixels are compared with a reference computed independently with numpy.
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Callable
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pillow_heif
import pytest
from PIL import Image

from facetrace.imaging import DecodedImage, ImageLimits, decode_image, load_image

RGB = npt.NDArray[np.uint8]


@pytest.fixture(scope="module")
def photo(faces_dir: Path) -> RGB:
    """A real face photo, cropped to 200 wide by 250 high so that rotations change shape."""
    path = faces_dir / "lfw" / "images" / "AJ_Cook" / "AJ_Cook_0001.jpg"
    with Image.open(path) as im:
        rgb = np.asarray(im.convert("RGB"))
    return np.ascontiguousarray(rgb[:, 25:225])


def _grey(photo: RGB) -> npt.NDArray[np.uint8]:
    return np.asarray(Image.fromarray(photo).convert("L"))


def _as_rgb(grey: npt.NDArray[np.uint8]) -> RGB:
    return np.repeat(grey[:, :, None], 3, axis=2)


def _save(tmp_path: Path, name: str, image: Image.Image, fmt: str, **kw: object) -> Path:
    path = tmp_path / name
    image.save(path, fmt, **kw)
    return path


def _check_array(decoded: DecodedImage, shape: tuple[int, ...]) -> None:
    assert decoded.pixels.shape == shape
    assert decoded.pixels.dtype == np.uint8
    assert decoded.pixels.flags.c_contiguous


def _mean_abs_diff(a: RGB, b: RGB) -> float:
    return float(np.abs(a.astype(np.int16) - b.astype(np.int16)).mean())


@pytest.mark.parametrize(
    ("name", "fmt", "kw"),
    [
        ("photo.png", "PNG", {}),
        ("photo.bmp", "BMP", {}),
        ("photo.tiff", "TIFF", {}),
        ("photo.ppm", "PPM", {}),
        ("photo.webp", "WEBP", {"lossless": True}),
    ],
)
def test_lossless_formats_decode_exactly(
    tmp_path: Path, photo: RGB, name: str, fmt: str, kw: dict[str, object]
) -> None:
    path = _save(tmp_path, name, Image.fromarray(photo), fmt, **kw)
    decoded = load_image(path)
    _check_array(decoded, photo.shape)
    np.testing.assert_array_equal(decoded.pixels, photo)
    assert decoded.format == fmt
    assert decoded.source == str(path)
    assert decoded.original_size == (200, 250)
    assert decoded.exif_orientation == 1
    assert decoded.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.parametrize(
    ("name", "fmt", "max_diff"),
    [("photo.jpg", "JPEG", 3.0), ("photo.heic", "HEIF", 6.0), ("photo.avif", "AVIF", 6.0)],
)
def test_lossy_formats_decode_close_to_source(
    tmp_path: Path, photo: RGB, name: str, fmt: str, max_diff: float
) -> None:
    if fmt == "HEIF":
        pillow_heif.register_heif_opener()
    path = _save(tmp_path, name, Image.fromarray(photo), fmt, quality=95)
    decoded = load_image(path)
    _check_array(decoded, photo.shape)
    assert decoded.format == fmt
    assert _mean_abs_diff(decoded.pixels, photo) < max_diff
    # Guard against a comparison that would pass for any face-like picture.
    assert _mean_abs_diff(decoded.pixels, photo[::-1]) > 4 * max_diff


def test_decode_bytes_uses_default_source_and_hashes_input(photo: RGB) -> None:
    buf = io.BytesIO()
    Image.fromarray(photo).save(buf, "PNG")
    data = buf.getvalue()
    decoded = decode_image(data)
    assert decoded.source == "<bytes>"
    assert decoded.sha256 == hashlib.sha256(data).hexdigest()
    np.testing.assert_array_equal(decoded.pixels, photo)


def _exif_reference(stored: RGB, orientation: int) -> RGB:
    """The upright picture, from the EXIF specification's wording of each value."""
    mirrored = np.fliplr(stored)
    table: dict[int, Callable[[], RGB]] = {
        1: lambda: stored,
        2: lambda: mirrored,  # mirror horizontal
        3: lambda: np.rot90(stored, 2),  # rotate 180
        4: lambda: np.flipud(stored),  # mirror vertical
        5: lambda: np.rot90(mirrored, 1),  # mirror horizontal, rotate 270 CW
        6: lambda: np.rot90(stored, -1),  # rotate 90 CW
        7: lambda: np.rot90(mirrored, -1),  # mirror horizontal, rotate 90 CW
        8: lambda: np.rot90(stored, 1),  # rotate 270 CW
    }
    return table[orientation]()


def _jpeg_with_orientation(photo: RGB, orientation: int | None) -> bytes:
    exif = Image.Exif()
    if orientation is not None:
        exif[0x0112] = orientation
    buf = io.BytesIO()
    Image.fromarray(photo).save(buf, "JPEG", quality=95, exif=exif.tobytes())
    return buf.getvalue()


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_is_applied(tmp_path: Path, photo: RGB, orientation: int) -> None:
    # The same encoder on the same pixels gives the same scan data, so the stored
    # picture is exactly what an untagged copy decodes to.
    stored = decode_image(_jpeg_with_orientation(photo, None)).pixels
    path = tmp_path / f"orientation{orientation}.jpg"
    path.write_bytes(_jpeg_with_orientation(photo, orientation))
    decoded = load_image(path)
    assert decoded.exif_orientation == orientation
    assert decoded.original_size == (200, 250)
    expected = _exif_reference(stored, orientation)
    _check_array(decoded, expected.shape)
    np.testing.assert_array_equal(decoded.pixels, expected)


@pytest.mark.parametrize("bad", [0, 9, 300])
def test_invalid_exif_orientation_is_ignored(photo: RGB, bad: int) -> None:
    stored = decode_image(_jpeg_with_orientation(photo, None)).pixels
    decoded = decode_image(_jpeg_with_orientation(photo, bad), source="odd.jpg")
    assert decoded.exif_orientation == 1
    np.testing.assert_array_equal(decoded.pixels, stored)


def test_heic_orientation_applied_once(tmp_path: Path, photo: RGB) -> None:
    pillow_heif.register_heif_opener()
    exif = Image.Exif()
    exif[0x0112] = 6
    path = _save(
        tmp_path, "turned.heic", Image.fromarray(photo), "HEIF", quality=95, exif=exif.tobytes()
    )
    decoded = load_image(path)
    assert decoded.exif_orientation == 6
    expected = np.rot90(photo, -1)
    _check_array(decoded, expected.shape)
    assert _mean_abs_diff(decoded.pixels, expected) < 6.0


def test_cmyk_jpeg(tmp_path: Path, photo: RGB) -> None:
    path = _save(tmp_path, "cmyk.jpg", Image.fromarray(photo).convert("CMYK"), "JPEG", quality=95)
    decoded = load_image(path)
    _check_array(decoded, photo.shape)
    assert _mean_abs_diff(decoded.pixels, photo) < 4.0


def test_greyscale_pgm(tmp_path: Path, photo: RGB) -> None:
    grey = _grey(photo)
    path = _save(tmp_path, "grey.pgm", Image.fromarray(grey), "PPM")
    decoded = load_image(path)
    _check_array(decoded, photo.shape)
    np.testing.assert_array_equal(decoded.pixels, _as_rgb(grey))


def test_shared_att_pgm(faces_dir: Path) -> None:
    decoded = load_image(faces_dir / "att_orl" / "s1" / "1.pgm")
    _check_array(decoded, (112, 92, 3))
    assert decoded.format == "PPM"
    assert np.array_equal(decoded.pixels[..., 0], decoded.pixels[..., 2])


@pytest.mark.parametrize(
    ("name", "fmt", "dtype"),
    [
        ("grey16.png", "PNG", np.dtype("<u2")),  # opens as I;16
        ("grey16be.tiff", "TIFF", np.dtype(">u2")),  # opens as I;16B
        ("grey16.pgm", "PPM", np.dtype("<u2")),  # opens as I (32-bit, 0-65535)
    ],
)
def test_16_bit_greyscale_is_scaled_not_clipped(
    tmp_path: Path, photo: RGB, name: str, fmt: str, dtype: np.dtype[np.uint16]
) -> None:
    grey = _grey(photo)
    deep = (grey.astype(np.uint16) * 257).astype(dtype)  # 255 -> 65535
    path = _save(tmp_path, name, Image.fromarray(deep), fmt)
    decoded = load_image(path)
    _check_array(decoded, photo.shape)
    np.testing.assert_array_equal(decoded.pixels, _as_rgb(grey))


def test_float_tiff_in_unit_range(tmp_path: Path, photo: RGB) -> None:
    grey = _grey(photo)
    path = _save(tmp_path, "float.tiff", Image.fromarray(grey.astype(np.float32) / 255), "TIFF")
    decoded = load_image(path)
    np.testing.assert_array_equal(decoded.pixels, _as_rgb(grey))


def test_signed_32_bit_tiff_is_stretched(tmp_path: Path, photo: RGB) -> None:
    grey = _grey(photo)
    signed = grey.astype(np.int32) * 1000 - 100_000  # negative values: not a 16-bit scale
    path = _save(tmp_path, "signed.tiff", Image.fromarray(signed), "TIFF")
    lo, hi = int(grey.min()), int(grey.max())
    expected = np.rint((grey.astype(np.float64) - lo) * 255 / (hi - lo)).astype(np.uint8)
    # Within one step: float rounding of exact halves may differ.
    np.testing.assert_allclose(
        load_image(path).pixels.astype(np.int16), _as_rgb(expected).astype(np.int16), atol=1
    )


@pytest.mark.parametrize(("name", "fmt"), [("bits.png", "PNG"), ("bits.pbm", "PPM")])
def test_one_bit(tmp_path: Path, photo: RGB, name: str, fmt: str) -> None:
    bits = Image.fromarray(photo).convert("1")
    path = _save(tmp_path, name, bits, fmt)
    decoded = load_image(path)
    expected = np.where(np.asarray(bits), 255, 0).astype(np.uint8)
    np.testing.assert_array_equal(decoded.pixels, _as_rgb(expected))
    assert set(np.unique(decoded.pixels)) == {0, 255}


def test_rgba_png_is_composited_on_white(tmp_path: Path, photo: RGB) -> None:
    alpha = np.full(photo.shape[:2], 255, dtype=np.uint8)
    alpha[:, :50] = 0
    alpha[:, 50:100] = 128
    rgba = np.dstack([photo, alpha])
    path = _save(tmp_path, "alpha.png", Image.fromarray(rgba), "PNG")
    decoded = load_image(path).pixels
    assert (decoded[:, :50] == 255).all()
    half = photo[:, 50:100].astype(np.float64) * 128 / 255 + 255 * 127 / 255
    assert np.abs(decoded[:, 50:100].astype(np.float64) - half).max() <= 1.0
    np.testing.assert_array_equal(decoded[:, 100:], photo[:, 100:])


def test_grey_alpha_png(tmp_path: Path, photo: RGB) -> None:
    grey = _grey(photo)
    alpha = np.full(grey.shape, 255, dtype=np.uint8)
    alpha[:40] = 0
    path = _save(tmp_path, "la.png", Image.fromarray(np.dstack([grey, alpha]), "LA"), "PNG")
    decoded = load_image(path).pixels
    assert (decoded[:40] == 255).all()
    np.testing.assert_array_equal(decoded[40:], _as_rgb(grey)[40:])


def test_palette_gif_with_transparency(tmp_path: Path, photo: RGB) -> None:
    palette_image = Image.fromarray(photo).quantize(colors=255)
    indices = np.asarray(palette_image).copy()
    indices[:40, :40] = 255  # the one index left free, made transparent
    gif = Image.fromarray(indices, "P")
    gif.putpalette(palette_image.getpalette() or [])
    path = _save(tmp_path, "palette.gif", gif, "GIF", transparency=255)
    decoded = load_image(path)
    assert decoded.format == "GIF"
    pixels = decoded.pixels
    assert (pixels[:40, :40] == 255).all()
    expected = np.asarray(palette_image.convert("RGB"))
    np.testing.assert_array_equal(pixels[40:], expected[40:])
    np.testing.assert_array_equal(pixels[:, 40:], expected[:, 40:])


def test_animated_gif_takes_first_frame(tmp_path: Path, photo: RGB) -> None:
    first = Image.fromarray(photo).quantize(colors=64)
    second = Image.fromarray(255 - photo).quantize(colors=64)
    path = tmp_path / "animated.gif"
    first.save(path, "GIF", save_all=True, append_images=[second], duration=100)
    with Image.open(path) as check:
        assert getattr(check, "n_frames", 1) == 2
    decoded = load_image(path)
    np.testing.assert_array_equal(decoded.pixels, np.asarray(first.convert("RGB")))


def test_limits_are_per_call(photo: RGB) -> None:
    buf = io.BytesIO()
    Image.fromarray(photo).save(buf, "PNG")
    exact = ImageLimits(max_bytes=len(buf.getvalue()), max_pixels=200 * 250)
    assert decode_image(buf.getvalue(), limits=exact).pixels.shape == photo.shape
    assert ImageLimits().max_pixels == 80_000_000
