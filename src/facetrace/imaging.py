"""Safe decode: untrusted photo or video bytes in, 8-bit RGB pixels out.

This is the first stage of the pipeline and the only one that touches raw files, so it
is where hostile or broken input is stopped: every failure is an ``ImageError`` (or
``ImageTooLarge``) naming the file and the reason, and nothing is ever written.

Limits are passed per call (``ImageLimits``) rather than set on Pillow's globals, so one
caller's limits never change another's. Pillow's own decompression-bomb guard
(``Image.MAX_IMAGE_PIXELS``, raising only above twice that value) stays in place as a
second line; we check ``width * height`` from the header ourselves before decoding.
"""

from __future__ import annotations

import functools
import hashlib
import io
import logging
import math
import stat
import threading
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
from PIL import Image, UnidentifiedImageError

from facetrace.errors import Busy, ImageError, ImageTooLarge

logger = logging.getLogger(__name__)

__all__ = [
    "DecodeBudget",
    "DecodedImage",
    "ImageHeader",
    "ImageLimits",
    "VideoFrame",
    "VideoInfo",
    "decode_image",
    "inspect_video",
    "is_video",
    "iter_video_frames",
    "load_image",
    "read_header",
]

RGBArray = npt.NDArray[np.uint8]

# Pillow format names we are willing to parse. Restricting the set keeps rarely used and
# risky plugins (EPS runs Ghostscript, for one) away from untrusted input. PPM covers
# PBM/PGM/PPM; the JPEG opener also yields "MPO" for many phone cameras' files. AVIF is
# used when this Pillow build has it.
_FORMATS = ("JPEG", "PNG", "WEBP", "BMP", "TIFF", "PPM", "GIF", "HEIF", "AVIF")

# EXIF Orientation -> the transpose that brings the image upright (the same table as
# ``PIL.ImageOps.exif_transpose``). Applied by hand so that a malformed EXIF block costs
# us the rotation, not the photo.
_ORIENTATION_TAG = 0x0112
_UPRIGHT: dict[int, Image.Transpose] = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}

_VIDEO_EXTENSIONS = frozenset(
    {
        ".3g2",
        ".3gp",
        ".avi",
        ".flv",
        ".m2ts",
        ".m4v",
        ".mkv",
        ".mov",
        ".mp4",
        ".mpeg",
        ".mpg",
        ".mts",
        ".ogv",
        ".ts",
        ".webm",
        ".wmv",
    }
)
# ISO-BMFF major brands that are still images (HEIF/AVIF), not video.
_IMAGE_BRANDS = frozenset(
    {b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"mif1", b"msf1", b"avif", b"avis"}
)
_SNIFF_BYTES = 377

_lock = threading.Lock()


@dataclass(frozen=True)
class ImageLimits:
    """Resource limits for decoding one untrusted file.

    Attributes:
        max_bytes: largest photo file accepted, in bytes.
        max_pixels: largest ``width * height`` accepted for a photo or a video frame,
            checked from the header before any pixel is decoded. Pillow independently
            refuses anything above ``2 * PIL.Image.MAX_IMAGE_PIXELS`` (about 179
            megapixels by default); that also surfaces as ``ImageTooLarge``.
        max_video_bytes: largest video file accepted, in bytes.
        max_frames: most frames ``iter_video_frames`` yields from one video; a hard cap
            on top of the per-call ``max_frames``.
    """

    max_bytes: int = 50 * 1024**2
    max_pixels: int = 80_000_000
    max_video_bytes: int = 2 * 1024**3
    max_frames: int = 10_000

    def __post_init__(self) -> None:
        for name in ("max_bytes", "max_pixels", "max_video_bytes", "max_frames"):
            if getattr(self, name) < 1:
                raise ValueError(f"ImageLimits.{name} must be at least 1")


@dataclass(frozen=True, eq=False)
class DecodedImage:
    """A decoded, upright photo. Compared by identity (arrays have no single truth value).

    Attributes:
        pixels: RGB image, shape (height, width, 3), dtype uint8, C-contiguous, upright
            (EXIF orientation already applied). A fresh array the caller may modify.
        source: the name used in errors and logs (a path, or ``"<bytes>"``).
        format: Pillow's format name, e.g. ``"JPEG"``, ``"PNG"``, ``"HEIF"``, ``"MPO"``.
        original_size: (width, height) as stored in the file, before EXIF rotation. For
            HEIF, whose decoder applies the container's rotation itself, the decoded size.
        exif_orientation: EXIF Orientation tag 1-8 as found in the file (already applied
            to ``pixels``); 1 when absent or invalid.
        sha256: lowercase hex SHA-256 of the raw file bytes (the gallery's photo id).
        scale: ``pixels`` side / the upright photo's side: 1.0, or 1/2, 1/4 or 1/8 when a
            photo was decoded reduced (``decode_image``'s ``max_decoded_pixels``).
            Coordinates found in ``pixels`` are divided by it to be the photo's own.
        photo_size: (width, height) of the upright photo at its own size (see
            :attr:`upright_size`).
    """

    pixels: RGBArray
    source: str
    format: str
    original_size: tuple[int, int]
    exif_orientation: int
    sha256: str
    scale: float = 1.0
    photo_size: tuple[int, int] | None = None

    @property
    def upright_size(self) -> tuple[int, int]:
        """(width, height) of the upright photo at its own size (``pixels``' own size
        divided by ``scale``, without its rounding)."""
        if self.photo_size is not None:
            return self.photo_size
        h, w = self.pixels.shape[:2]
        return int(w), int(h)


@dataclass(frozen=True)
class ImageHeader:
    """What a photo's header says, read without decoding a pixel (:func:`read_header`).

    Attributes:
        width, height: the stored size in pixels (before EXIF rotation).
        format: Pillow's format name.
        decoded_pixels: ``width * height`` as decoded with the same
            ``max_decoded_pixels`` given to :func:`decode_image` (a JPEG can be decoded
            at 1/2, 1/4 or 1/8 of its side): what decoding it will hold in memory.
    """

    width: int
    height: int
    format: str
    decoded_pixels: int


def _draft_size(width: int, height: int, max_decoded_pixels: int | None) -> tuple[int, int] | None:
    """The size to ask a JPEG decoder for, or None to decode it whole: the decoder then
    picks the smallest of 1/1, 1/2, 1/4, 1/8 of the side that still holds at least
    ``max_decoded_pixels`` (so nothing a detector working at that area needs is lost)."""
    if max_decoded_pixels is None or width * height <= max_decoded_pixels:
        return None
    f = math.sqrt(max_decoded_pixels / (width * height))
    return max(1, math.ceil(width * f)), max(1, math.ceil(height * f))


def _open(data: bytes, source: str, limits: ImageLimits) -> Image.Image:
    """The image opened (header read, no pixel decoded), size checked against the limits."""
    if not data:
        raise ImageError(source, "empty file")
    if len(data) > limits.max_bytes:
        raise ImageTooLarge(
            source, f"file is {len(data)} bytes, over the limit of {limits.max_bytes} bytes"
        )
    formats = _open_formats()
    try:
        image = Image.open(io.BytesIO(data), formats=formats)
    except Image.DecompressionBombError as exc:
        raise ImageTooLarge(source, f"decompression bomb refused by Pillow ({exc})") from exc
    except UnidentifiedImageError as exc:
        raise ImageError(source, f"not a supported image (formats: {', '.join(formats)})") from exc
    except Exception as exc:  # any parser failure on hostile bytes is the file's fault
        raise ImageError(source, f"unreadable image header ({exc})") from exc
    width, height = image.size
    if width < 1 or height < 1:
        image.close()
        raise ImageError(source, f"image has a zero dimension ({width}x{height})")
    if width * height > limits.max_pixels:
        image.close()
        raise ImageTooLarge(
            source,
            f"{width}x{height} is {width * height} pixels, over the limit of {limits.max_pixels}",
        )
    return image


def _reduced(image: Image.Image, max_decoded_pixels: int) -> Image.Image:
    """``image`` reduced by the largest whole factor that keeps at least
    ``max_decoded_pixels`` (box filter), or itself when it is small enough or its mode
    cannot be reduced."""
    w, h = image.size
    factor = 1
    while math.ceil(w / (factor + 1)) * math.ceil(h / (factor + 1)) >= max_decoded_pixels:
        factor += 1
    if factor == 1:
        return image
    try:
        return image.reduce(factor)
    except ValueError:  # a mode Pillow does not reduce (P, 1): keep it whole
        return image


def _drafts(image: Image.Image) -> bool:
    return (image.format or "") in ("JPEG", "MPO")


def read_header(
    data: bytes,
    *,
    source: str = "<bytes>",
    limits: ImageLimits = ImageLimits(),
    max_decoded_pixels: int | None = None,
) -> ImageHeader:
    """A photo's size and format from its header, checked against ``limits`` as
    :func:`decode_image` would, without decoding it: what admission control needs before
    it lets the decode start. Raises what :func:`decode_image` raises for the header."""
    with _open(data, source, limits) as image:
        width, height = image.size
        draft = _draft_size(width, height, max_decoded_pixels) if _drafts(image) else None
        if draft is not None:
            image.draft(None, draft)  # sets the reduced size; decodes nothing
        decoded = image.size
        return ImageHeader(width, height, image.format or "unknown", decoded[0] * decoded[1])


@dataclass(frozen=True, eq=False)
class VideoFrame:
    """One sampled, upright video frame.

    Attributes:
        pixels: RGB image, shape (height, width, 3), dtype uint8, C-contiguous, with the
            container's display rotation applied.
        index: 0-based position of the frame among all decoded frames of the stream
            (not the count of frames yielded).
        timestamp_s: presentation time in seconds, counted from the first decoded frame.
    """

    pixels: RGBArray
    index: int
    timestamp_s: float


def decode_image(
    data: bytes,
    *,
    source: str = "<bytes>",
    limits: ImageLimits = ImageLimits(),
    max_decoded_pixels: int | None = None,
) -> DecodedImage:
    """Decode one photo from memory into upright 8-bit RGB.

    Only the first frame of animated or multi-page files is used. Transparent pixels are
    composited onto white: the colour under a fully transparent pixel is arbitrary (often
    black), and white is what most viewers show, so faces keep a sensible outline.

    Args:
        data: the complete file contents.
        source: name of the file for error messages and logs.
        limits: size limits; ``max_bytes`` and ``max_pixels`` apply.
        max_decoded_pixels: when set, a JPEG larger than this is decoded reduced (by
            libjpeg, at 1/2, 1/4 or 1/8 of its side, the smallest that keeps at least
            this area), so a 79-megapixel photo costs a quarter of the memory and time;
            another format is decoded whole and reduced by a whole factor (box filter)
            before its RGB copy is made. ``scale`` says by how much.

    Returns:
        The decoded image with its format, original size, orientation and SHA-256.

    Raises:
        ImageTooLarge: ``data`` exceeds ``limits.max_bytes`` or the header declares more
            than ``limits.max_pixels`` pixels (or more than Pillow's bomb limit).
        ImageError: empty input, an unsupported or unrecognised format, truncated or
            corrupt data, a zero dimension, or a colour mode that cannot become RGB.
    """
    image = _open(data, source, limits)
    digest = hashlib.sha256(data).hexdigest()
    with image:
        width, height = image.size
        draft = _draft_size(width, height, max_decoded_pixels) if _drafts(image) else None
        if draft is not None:
            image.draft(None, draft)  # decoded reduced by the JPEG decoder itself
        file_format = image.format or "unknown"
        # Decode fully before anything else reads the file: some plugins (PNG's getexif)
        # load on demand, and a failure swallowed there leaves a half-decoded image.
        try:
            image.load()
        except Exception as exc:  # decoders raise OSError, ValueError, struct.error, ...
            raise ImageError(source, f"truncated or corrupt image data ({exc})") from exc
        mode = image.mode
        orientation = _exif_orientation(image, source)
        to_apply = orientation
        # pillow-heif applies the HEIF container's rotation/mirroring while decoding and
        # resets the EXIF tag to 1; it keeps the tag as found, which we report but do not
        # apply a second time.
        heif_orientation = image.info.get("original_orientation")
        if file_format == "HEIF" and heif_orientation in _UPRIGHT:
            orientation, to_apply = int(heif_orientation), 1
        if draft is None and max_decoded_pixels is not None:
            # not a JPEG: decoded whole, then reduced before the RGB copy is made
            image = _reduced(image, max_decoded_pixels)
        decoded_side = image.size[0]  # after the draft or the reduction, before rotation
        # upright at its own size: HEIF's decoder has rotated it already (to_apply 1)
        photo_size = (height, width) if to_apply in (5, 6, 7, 8) else (width, height)
        try:
            pixels = _to_rgb_array(image)
        except Exception as exc:  # e.g. a TIFF colour space Pillow cannot convert
            raise ImageError(source, f"cannot convert mode {mode} to RGB ({exc})") from exc

    if to_apply in _UPRIGHT:
        pixels = _transpose(pixels, _UPRIGHT[to_apply])
    logger.debug(
        "decoded %s: %s %dx%d mode=%s orientation=%d",
        source,
        file_format,
        width,
        height,
        mode,
        orientation,
    )
    return DecodedImage(
        pixels=pixels,
        source=source,
        format=file_format,
        original_size=(width, height),
        exif_orientation=orientation,
        sha256=digest,
        scale=decoded_side / width,
        photo_size=photo_size,
    )


def load_image(path: str | Path, *, limits: ImageLimits = ImageLimits()) -> DecodedImage:
    """Read and decode one photo file, checking its size before reading it.

    Args:
        path: the photo file. Its string form names it in errors.
        limits: size limits; ``max_bytes`` is checked against the file size first.

    Returns:
        The decoded image (see ``decode_image``); ``source`` is ``str(path)``.

    Raises:
        ImageTooLarge: the file is over ``limits.max_bytes`` or has too many pixels.
        ImageError: a missing path, a directory or other non-regular file, an empty or
            unreadable file, or anything ``decode_image`` refuses.
    """
    source = str(path)
    data = _read_bounded(Path(path), source, limits.max_bytes)
    return decode_image(data, source=source, limits=limits)


def is_video(path: str | Path) -> bool:
    """Tell whether a file should go to ``iter_video_frames`` rather than ``load_image``.

    Args:
        path: the file. It need not exist; the extension alone then decides.

    Returns:
        True when the extension is a known video extension or the first bytes carry a
        video container signature (MP4/MOV, Matroska/WebM, AVI, MPEG-PS/TS, FLV, ASF).
        HEIF and AVIF stills (ISO-BMFF with an image brand) are not video.
    """
    p = Path(path)
    if p.suffix.lower() in _VIDEO_EXTENSIONS:
        return True
    try:
        with p.open("rb") as f:
            head = f.read(_SNIFF_BYTES)
    except OSError:
        return False
    return _looks_like_video(head)


@dataclass(frozen=True)
class VideoInfo:
    """What a video's container says, checked by :func:`inspect_video`.

    Attributes:
        source: the name used in errors.
        duration_s: length in seconds (from the container or stream header; when neither
            says, frames / rate).
        fps: average frame rate (0 when unknown).
        width, height: frame size in pixels, before display rotation.
        codec: the video codec's FFmpeg name, e.g. ``"h264"``.
        size_bytes: the file's size.
    """

    source: str
    duration_s: float
    fps: float
    width: int
    height: int
    codec: str
    size_bytes: int


def inspect_video(
    path: str | Path,
    *,
    limits: ImageLimits = ImageLimits(),
    max_duration_s: float | None = None,
) -> VideoInfo:
    """Check a video before any work is spent on it, and describe it.

    Opens the container, finds the first video stream, checks that its codec can be
    decoded here and decodes its first frame, and checks size and duration limits.

    Args:
        path: the video file. Its string form names it in errors.
        limits: ``max_video_bytes`` for the file and ``max_pixels`` per frame.
        max_duration_s: the longest video accepted, in seconds (``None``: no limit).

    Returns:
        The :class:`VideoInfo`.

    Raises:
        ImageTooLarge: the file is bigger, a frame larger or the video longer than allowed.
        ImageError: with one of these reasons: not a video, a truncated or damaged video,
            no video stream, an unsupported codec, no decodable frame.
    """
    import av  # imported on first use: PyAV loads the FFmpeg libraries

    source = str(path)
    p = Path(path)
    _check_regular_file(p, source, limits.max_video_bytes)
    size = p.stat().st_size
    try:
        with p.open("rb") as f:
            head = f.read(_SNIFF_BYTES)
    except OSError as exc:
        raise ImageError(source, f"cannot be read ({exc.strerror or exc})") from exc
    try:
        container = av.open(str(p), mode="r")
    except Exception as exc:  # FFmpeg reports bad input through many error classes
        if _looks_like_video(head):
            raise ImageError(source, f"the video is truncated or damaged ({exc})") from exc
        raise ImageError(source, "not a video (no known video container)") from exc
    with container:
        if not container.streams.video:
            raise ImageError(source, "no video stream (the file holds no pictures)")
        stream = container.streams.video[0]
        ctx = stream.codec_context
        name = getattr(getattr(ctx, "codec", None), "name", None) or "unknown"
        if ctx is None or not _can_decode(name):
            raise ImageError(source, f"unsupported video codec {name!r}")
        width, height = int(ctx.width or 0), int(ctx.height or 0)
        if width and height:
            _check_frame_pixels(width, height, source, limits)
        fps = float(stream.average_rate or stream.guessed_rate or 0)
        duration = 0.0
        if container.duration:
            duration = float(container.duration) / 1_000_000
        elif stream.duration and stream.time_base:
            duration = float(stream.duration * stream.time_base)
        elif stream.frames and fps:
            duration = stream.frames / fps
        if max_duration_s is not None and duration > max_duration_s:
            raise ImageTooLarge(
                source,
                f"the video is {duration:.0f} s long, over the limit of {max_duration_s:.0f} s",
            )
        try:
            first = next(container.decode(stream), None)
        except Exception as exc:
            raise ImageError(source, f"the video is truncated or damaged ({exc})") from exc
        if first is None:
            raise ImageError(source, "the video has no decodable frame")
        if not (width and height):
            width, height = first.width, first.height
            _check_frame_pixels(width, height, source, limits)
    return VideoInfo(source, duration, fps, width, height, name, size)


def _can_decode(codec_name: str) -> bool:
    """Whether this FFmpeg build has a decoder for ``codec_name``."""
    import av

    try:
        av.codec.Codec(codec_name, "r")
    except Exception:
        return False
    return True


def iter_video_frames(
    path: str | Path,
    *,
    every_seconds: float = 1.0,
    max_frames: int | None = None,
    limits: ImageLimits = ImageLimits(),
) -> Iterator[VideoFrame]:
    """Sample upright RGB frames from a video, one per ``every_seconds``.

    The file is checked (exists, regular, size) when this is called; decoding happens
    lazily as the iterator is consumed, and decoding errors surface from ``next()``.
    The first frame is always sampled; after that, the first frame at or after each
    multiple of ``every_seconds`` from the start. The container's display rotation
    (phones record portrait video sideways) is applied.

    Args:
        path: the video file. Its string form names it in errors.
        every_seconds: sampling interval in seconds, > 0.
        max_frames: most frames to yield; ``None`` means ``limits.max_frames``. Never more
            than ``limits.max_frames``; when that cap stops sampling early a warning is
            logged, since faces in the rest of the video are then not seen.
        limits: ``max_video_bytes`` for the file, ``max_pixels`` per frame,
            ``max_frames`` as a hard cap.

    Returns:
        An iterator of ``VideoFrame`` in presentation order.

    Raises:
        ValueError: ``every_seconds`` is not a positive finite number or ``max_frames``
            is below 1.
        ImageTooLarge: the file or a frame exceeds the limits.
        ImageError: a missing, empty or unreadable file, no video stream, or corrupt
            video data.
    """
    if not (math.isfinite(every_seconds) and every_seconds > 0):
        raise ValueError(f"every_seconds must be a positive number, got {every_seconds!r}")
    if max_frames is not None and max_frames < 1:
        raise ValueError(f"max_frames must be at least 1, got {max_frames}")
    source = str(path)
    p = Path(path)
    _check_regular_file(p, source, limits.max_video_bytes)
    wanted = limits.max_frames if max_frames is None else max_frames
    cap = min(wanted, limits.max_frames)
    return _video_frames(p, source, every_seconds, cap, capped=wanted > cap, limits=limits)


def _video_frames(
    path: Path,
    source: str,
    every_seconds: float,
    cap: int,
    *,
    capped: bool,
    limits: ImageLimits,
) -> Iterator[VideoFrame]:
    """Decode ``path`` and yield the sampled frames; the generator behind the public call."""
    import av  # imported on first use: PyAV loads the FFmpeg libraries

    try:
        container = av.open(str(path), mode="r")
    except Exception as exc:  # FFmpeg reports bad input through many error classes
        raise ImageError(source, f"not a readable video ({exc})") from exc
    with container:
        if not container.streams.video:
            raise ImageError(source, "no video stream")
        stream = container.streams.video[0]
        _check_frame_pixels(stream.codec_context.width, stream.codec_context.height, source, limits)
        rate = float(stream.average_rate or stream.guessed_rate or 0) or None
        yielded = 0
        start: float | None = None
        next_time = 0.0
        index = -1
        try:
            for frame in container.decode(stream):
                index += 1
                if frame.time is not None:
                    t = float(frame.time)
                elif rate:
                    t = index / rate
                else:
                    t = float(index)
                if start is None:
                    start = t
                t -= start
                # A tolerance of a microsecond absorbs time-base rounding (0.19999... s).
                if t + 1e-6 < next_time:
                    continue
                if yielded >= cap:
                    if capped:
                        logger.warning(
                            "%s: stopped after %d frames (limit); later frames not sampled",
                            source,
                            cap,
                        )
                    return
                _check_frame_pixels(frame.width, frame.height, source, limits)
                pixels = np.ascontiguousarray(frame.to_ndarray(format="rgb24"), dtype=np.uint8)
                pixels = _apply_rotation(pixels, frame.rotation)
                yield VideoFrame(pixels=pixels, index=index, timestamp_s=t)
                yielded += 1
                next_time = (math.floor((t + 1e-6) / every_seconds) + 1) * every_seconds
        except ImageError:
            raise
        except Exception as exc:
            raise ImageError(source, f"corrupt video data after frame {index} ({exc})") from exc
        if index < 0:
            raise ImageError(source, "video has no decodable frames")
        logger.debug("%s: sampled %d of %d frames", source, yielded, index + 1)


@functools.cache
def _open_formats() -> tuple[str, ...]:
    """Register pillow-heif's opener once, on first decode; the formats we let Pillow try."""
    with _lock:
        import pillow_heif

        pillow_heif.register_heif_opener()
        Image.init()
        return tuple(name for name in _FORMATS if name in Image.OPEN)


def _read_bounded(path: Path, source: str, max_bytes: int) -> bytes:
    """Read a regular file whole, refusing it by ``stat`` before reading when too big."""
    _check_regular_file(path, source, max_bytes)
    try:
        with path.open("rb") as f:
            # Read one byte past the limit: the file may have grown since stat().
            data = f.read(max_bytes + 1)
    except PermissionError as exc:
        raise ImageError(source, "permission denied") from exc
    except OSError as exc:
        raise ImageError(source, f"cannot read file ({exc.strerror or exc})") from exc
    if len(data) > max_bytes:
        raise ImageTooLarge(source, f"file is over the limit of {max_bytes} bytes")
    if not data:
        raise ImageError(source, "empty file")
    return data


def _check_regular_file(path: Path, source: str, max_bytes: int) -> None:
    """Refuse missing paths, directories, devices/FIFOs, empty and oversized files."""
    try:
        st = path.stat()
    except FileNotFoundError as exc:
        raise ImageError(source, "no such file") from exc
    except PermissionError as exc:
        raise ImageError(source, "permission denied") from exc
    except OSError as exc:
        raise ImageError(source, f"cannot access file ({exc.strerror or exc})") from exc
    if stat.S_ISDIR(st.st_mode):
        raise ImageError(source, "is a directory, not a file")
    if not stat.S_ISREG(st.st_mode):
        raise ImageError(source, "not a regular file")
    if st.st_size == 0:
        raise ImageError(source, "empty file")
    if st.st_size > max_bytes:
        raise ImageTooLarge(
            source, f"file is {st.st_size} bytes, over the limit of {max_bytes} bytes"
        )


def _exif_orientation(image: Image.Image, source: str) -> int:
    """EXIF Orientation 1-8, or 1 when absent or unreadable (bad EXIF must not cost the photo)."""
    try:
        value = image.getexif().get(_ORIENTATION_TAG, 1)
    except Exception as exc:
        logger.warning("%s: unreadable EXIF ignored (%s)", source, exc)
        return 1
    if isinstance(value, int) and 1 <= value <= 8:
        return value
    logger.warning("%s: invalid EXIF orientation %r ignored", source, value)
    return 1


def _to_rgb_array(image: Image.Image) -> RGBArray:
    """Convert a loaded image of any Pillow mode to an (h, w, 3) uint8 C-contiguous array."""
    mode = image.mode
    if mode == "RGB":
        rgb = np.asarray(image, dtype=np.uint8)
    elif mode in ("L", "1"):
        rgb = _grey_to_rgb(np.asarray(image.convert("L"), dtype=np.uint8))
    elif mode in ("I", "I;16", "I;16L", "I;16B", "I;16N"):
        # 16-bit files arrive as I;16* or (PGM, some TIFF) as 32-bit I on a 0-65535 scale.
        rgb = _grey_to_rgb(_scale_to_uint8(np.asarray(image), full_scale=65535.0))
    elif mode == "F":
        rgb = _grey_to_rgb(_scale_to_uint8(np.asarray(image), full_scale=1.0))
    elif mode in ("RGBA", "LA", "PA", "RGBa", "La") or (
        mode == "P" and "transparency" in image.info
    ):
        rgb = _composite_on_white(np.asarray(image.convert("RGBA"), dtype=np.uint8))
    else:  # P, CMYK, YCbCr, HSV, RGBX, LAB...: Pillow's own conversion
        rgb = np.asarray(image.convert("RGB"), dtype=np.uint8)
    return np.ascontiguousarray(rgb, dtype=np.uint8)


def _grey_to_rgb(grey: npt.NDArray[np.uint8]) -> RGBArray:
    return np.repeat(grey[:, :, np.newaxis], 3, axis=2)


def _scale_to_uint8(values: npt.NDArray[np.generic], *, full_scale: float) -> npt.NDArray[np.uint8]:
    """Map high-depth grey to 0-255 by scaling, never clipping.

    Values within [0, full_scale] (65535 for 16-bit, 1.0 for float) scale linearly so
    that full_scale becomes 255; anything else (signed or out-of-range data) is stretched
    from its own minimum to its maximum. NaN becomes 0.
    """
    v = np.asarray(values, dtype=np.float64)
    finite = np.isfinite(v)
    if not finite.any():
        return np.zeros(v.shape, dtype=np.uint8)
    lo = float(v[finite].min())
    hi = float(v[finite].max())
    if lo >= 0.0 and hi <= full_scale:
        offset, scale = 0.0, 255.0 / full_scale
    elif hi > lo:
        offset, scale = lo, 255.0 / (hi - lo)
    else:
        offset, scale = lo, 0.0
    out = np.where(finite, (v - offset) * scale, 0.0)
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def _composite_on_white(rgba: npt.NDArray[np.uint8]) -> RGBArray:
    """Blend straight-alpha RGBA over a white background."""
    colour = rgba[:, :, :3].astype(np.float32)
    alpha = rgba[:, :, 3:4].astype(np.float32) / 255.0
    blended = colour * alpha + 255.0 * (1.0 - alpha)
    return np.rint(blended).astype(np.uint8)


def _transpose(pixels: RGBArray, method: Image.Transpose) -> RGBArray:
    """Apply one of Pillow's transposes to an (h, w, 3) array."""
    turned = Image.fromarray(pixels, mode="RGB").transpose(method)
    return np.ascontiguousarray(np.asarray(turned, dtype=np.uint8))


def _apply_rotation(pixels: RGBArray, degrees: float) -> RGBArray:
    """Rotate counter-clockwise by ``degrees`` (a multiple of 90) as a display matrix asks."""
    quarter_turns = round(degrees / 90.0) % 4
    if quarter_turns == 0:
        return pixels
    return np.ascontiguousarray(np.rot90(pixels, k=quarter_turns))


def _check_frame_pixels(width: int, height: int, source: str, limits: ImageLimits) -> None:
    if width * height > limits.max_pixels:
        raise ImageTooLarge(
            source,
            f"video frame {width}x{height} is {width * height} pixels, "
            f"over the limit of {limits.max_pixels}",
        )


def looks_like_video(head: bytes, filename: str = "") -> bool:
    """Tell from an upload's first bytes (a few KB) and its name whether it is a video:
    a video container signature, or a video extension. HEIF and AVIF stills are not.

    >>> mp4, jpeg = b"\\x00\\x00\\x00\\x18ftypmp42" + bytes(8), b"\\xff\\xd8\\xff"
    >>> looks_like_video(mp4), looks_like_video(jpeg), looks_like_video(jpeg, "a.MOV")
    (True, False, True)
    """
    return Path(filename).suffix.lower() in _VIDEO_EXTENSIONS or _looks_like_video(head)


def _looks_like_video(head: bytes) -> bool:
    """Video container signatures in the first bytes of a file."""
    if len(head) >= 12 and head[4:8] == b"ftyp":
        return head[8:12] not in _IMAGE_BRANDS
    return (
        head.startswith(b"\x1a\x45\xdf\xa3")  # Matroska / WebM (EBML)
        or (head.startswith(b"RIFF") and head[8:12] == b"AVI ")
        or head.startswith(b"\x00\x00\x01\xba")  # MPEG program stream
        or head.startswith(b"\x00\x00\x01\xb3")  # MPEG-1/2 video sequence header
        or head.startswith(b"FLV\x01")
        or head.startswith(b"\x30\x26\xb2\x75\x8e\x66\xcf\x11")  # ASF / WMV
        # MPEG transport stream: a 0x47 sync byte every 188 bytes (one byte alone is
        # also how "GIF" starts, hence three).
        or (len(head) > 376 and head[0] == head[188] == head[376] == 0x47)
    )


class DecodeBudget:
    """Admission control for photo work: at most ``max_photos`` photos decoded or being
    analysed at once, holding at most ``max_pixels`` decoded pixels together, in the
    order they asked. Pixels are counted from the header (:func:`read_header`) before a
    byte is decoded, and held until the caller's work on them ends, so the memory that
    decoded photos take is bounded whatever mix of allowed uploads arrives: a photo
    larger than the whole budget waits until it can run alone.

    A request that finds ``max_waiting`` others queued, or is not admitted within
    ``timeout`` seconds, is refused with :class:`~facetrace.errors.Busy` (a 503 with
    Retry-After) rather than holding a server thread indefinitely.
    """

    def __init__(
        self, *, max_pixels: int, max_photos: int, max_waiting: int = 16, timeout: float = 60.0
    ) -> None:
        if max_pixels < 1 or max_photos < 1 or max_waiting < 0:
            raise ValueError("DecodeBudget needs max_pixels and max_photos of at least 1")
        self.max_pixels = max_pixels
        self.max_photos = max_photos
        self.max_waiting = max_waiting
        self.timeout = timeout
        self._cond = threading.Condition()
        self._pixels = 0
        self._photos = 0
        self._queue: deque[object] = deque()
        self.peak_pixels = 0
        """The most pixels ever held at once (for benchmarks and tests)."""

    @property
    def in_flight(self) -> tuple[int, int]:
        """(photos, pixels) admitted now."""
        with self._cond:
            return self._photos, self._pixels

    @contextmanager
    def admit(self, pixels: int, *, source: str = "<bytes>") -> Iterator[None]:
        """Hold ``pixels`` of the budget (and one photo) for the ``with`` block."""
        weight = max(1, min(int(pixels), self.max_pixels))
        ticket = object()
        with self._cond:
            immediate = not self._queue and self._fits(weight)
            if not immediate and len(self._queue) >= self.max_waiting:
                raise Busy(
                    f"{source}: the service is busy with other photos "
                    f"({len(self._queue)} waiting); try again shortly"
                )
            self._queue.append(ticket)
            try:
                admitted = self._cond.wait_for(
                    lambda: self._queue[0] is ticket and self._fits(weight), self.timeout
                )
            finally:
                self._queue.remove(ticket)
                self._cond.notify_all()  # the next in line may fit now
            if not admitted:
                raise Busy(f"{source}: the service is busy with other photos; try again shortly")
            self._pixels += weight
            self._photos += 1
            self.peak_pixels = max(self.peak_pixels, self._pixels)
        try:
            yield
        finally:
            with self._cond:
                self._pixels -= weight
                self._photos -= 1
                self._cond.notify_all()

    def _fits(self, weight: int) -> bool:
        return self._photos < self.max_photos and self._pixels + weight <= self.max_pixels

    @contextmanager
    def admitting(
        self,
        data: bytes,
        *,
        source: str = "<bytes>",
        limits: ImageLimits = ImageLimits(),
        max_decoded_pixels: int | None = None,
    ) -> Iterator[ImageHeader]:
        """Read the header and hold room for the photo's decoded pixels for the ``with``
        block, in which the caller (or a worker process it waits for) decodes and
        analyses it with the same ``max_decoded_pixels``. Refusals of the header (too
        large, not an image) come before any wait."""
        header = read_header(
            data, source=source, limits=limits, max_decoded_pixels=max_decoded_pixels
        )
        with self.admit(header.decoded_pixels, source=source):
            yield header

    @contextmanager
    def decoding(
        self,
        data: bytes,
        *,
        source: str = "<bytes>",
        limits: ImageLimits = ImageLimits(),
        max_decoded_pixels: int | None = None,
    ) -> Iterator[DecodedImage]:
        """Read the header, wait for room in the budget, decode (see
        :func:`decode_image`) and hold the room while the ``with`` block uses the
        pixels. Refusals of the header (too large, not an image) come before any wait."""
        with self.admitting(
            data, source=source, limits=limits, max_decoded_pixels=max_decoded_pixels
        ):
            yield decode_image(
                data, source=source, limits=limits, max_decoded_pixels=max_decoded_pixels
            )
