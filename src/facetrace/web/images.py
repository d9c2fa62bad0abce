"""Images for the evidence views: face crops, whole photos, and faces aligned for the
side-by-side comparison (eyes level, the same distance apart, so both faces are at the
same scale). Served only to users who may see the case or the gallery; never cached by
the browser."""

from __future__ import annotations

import io
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from pathlib import Path

import numpy as np
import numpy.typing as npt
from fastapi import APIRouter
from fastapi.responses import Response
from PIL import Image

from facetrace.errors import ImageError, NotFound
from facetrace.fields import Id, Index
from facetrace.imaging import DecodedImage, decode_image
from facetrace.server.deps import CurrentActor, Db, State
from facetrace.server.state import ServiceState
from facetrace.service import collections, searches, videos
from facetrace.service.videos import KeyFrame
from facetrace.store.service_models import Probe, ProbeFaceRow
from facetrace.types import Landmarks
from facetrace.vision.align import similarity_transform

router = APIRouter()

HEADERS = {"Cache-Control": "no-store"}
WHOLE_MAX = 1600  # longest side of a whole photo as served
ALIGNED_SIZES = (240, 360, 480, 720, 960)

# Where the eye centres and the base of the nose land in an aligned view of side 1:
# the eyes 0.2 apart, level, at 40 % of the height, so the whole head fits with ears.
VIEW_TEMPLATE = np.array([[0.4, 0.4], [0.6, 0.4], [0.5, 0.55]], dtype=np.float64)
BOX_WIDTH_SHARE = 0.36  # without landmarks: the face box spans this share of the view


def _jpeg(image: Image.Image, *, max_side: int | None = None) -> Response:
    if max_side:
        image.thumbnail((max_side, max_side))
    out = io.BytesIO()
    image.convert("RGB").save(out, format="JPEG", quality=90)
    return Response(out.getvalue(), media_type="image/jpeg", headers=HEADERS)


def _crop(pixels: npt.NDArray[np.uint8], box: Sequence[int] | None, size: int = 220) -> Response:
    image = Image.fromarray(pixels)
    if box:
        x1, y1, x2, y2 = (int(v) for v in box)
        m = int(0.35 * max(x2 - x1, y2 - y1))
        image = image.crop(
            (max(0, x1 - m), max(0, y1 - m), min(image.width, x2 + m), min(image.height, y2 + m))
        )
    return _jpeg(image, max_side=size)


def aligned_view(
    pixels: npt.NDArray[np.uint8],
    *,
    box: Sequence[float],
    landmarks: Sequence[Sequence[float]] | None,
    size: int,
) -> Image.Image:
    """A ``size`` x ``size`` view of one face, rotated so the eyes are level and scaled
    so they sit at a fixed distance (dlib's five ``landmarks``, (x, y) pixels, in its
    part order). Without landmarks the face ``box`` (x1, y1, x2, y2) is centred and
    scaled to a fixed width instead. Two views of one size show faces at one scale."""
    image = Image.fromarray(pixels)
    if landmarks is not None and len(landmarks) == 5:
        lm = Landmarks.from_array(landmarks)
        src = np.array([lm.right_eye, lm.left_eye, lm.nose], dtype=np.float64)
        forward = similarity_transform(src, VIEW_TEMPLATE * size)
    else:
        x1, y1, x2, y2 = (float(v) for v in box)
        scale = BOX_WIDTH_SHARE * size / max(x2 - x1, 1.0)
        cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
        forward = np.array(
            [[scale, 0.0, size / 2 - scale * cx], [0.0, scale, size / 2 - scale * cy]]
        )
    # PIL wants the inverse map (output pixel -> input pixel).
    full = np.vstack([forward, [0.0, 0.0, 1.0]])
    inv = np.linalg.inv(full)[:2].reshape(-1)
    return image.transform(
        (size, size),
        Image.Transform.AFFINE,
        tuple(float(v) for v in inv),
        resample=Image.Resampling.BICUBIC,
        fillcolor=(235, 238, 242),
    )


def _size(value: int) -> int:
    """The nearest allowed view size (a fixed set, so no one asks for a huge image)."""
    return min(ALIGNED_SIZES, key=lambda s: abs(s - value))


@contextmanager
def _decoded(state: ServiceState, data: bytes, source: str) -> Iterator[DecodedImage]:
    """A stored photo decoded inside the service's decode budget (as a search's is), a
    large JPEG at the detector's size (``scale`` < 1: stored boxes and landmarks are
    multiplied by it): a page of crops of a 79-megapixel probe cannot take the memory
    that the budget keeps for searches."""
    with state.decode_budget.decoding(
        data, source=source, max_decoded_pixels=state.analyser.max_decoded_pixels
    ) as image:
        yield image


def _scaled(values: Sequence[float], scale: float) -> list[float]:
    return [float(v) * scale for v in values]


def _probe_photo(db: Db, actor: CurrentActor, probe_id: Id, view: str) -> Probe:
    probe = searches.view_probe_image(db, actor=actor, probe_id=probe_id, view=view)
    if probe.kind == "video":
        raise NotFound("a probe video has no single photo: see its persons' key frames")
    if probe.data is None:
        raise NotFound("the probe photo was deleted at the end of its retention period")
    return probe


def _probe_face_of(probe: Probe, index: int) -> ProbeFaceRow:
    if not 0 <= index < len(probe.faces):
        raise NotFound(f"the probe photo has no face number {index + 1}")
    return probe.faces[index]


def _key_frame(db: Db, actor: CurrentActor, probe_id: Id, index: int, frame: int) -> KeyFrame:
    """Key frame ``frame`` of person ``index`` of a video probe (its crop of the original
    frame); gone with the video at the end of the retention period. Audited as a view
    of the probe unless a page just viewed lists it."""
    probe = searches.view_probe_image(db, actor=actor, probe_id=probe_id, view="key frame")
    if probe.data is None:
        raise NotFound("the probe video was deleted at the end of its retention period")
    frames = videos.key_frames(_probe_face_of(probe, index).extra or {})
    if not 0 <= frame < len(frames) or not frames[frame].jpeg:
        raise NotFound(f"person {index + 1} has no key frame number {frame + 1}")
    return frames[frame]


def _is_track(db: Db, actor: CurrentActor, probe_id: Id, index: int) -> bool:
    probe = searches.get_probe(db, actor=actor, probe_id=probe_id)
    return probe.kind == "video" and 0 <= index < len(probe.faces)


@router.get("/probes/{probe_id}/faces/{index}/frames/{frame}.jpg")
def probe_key_frame(
    probe_id: Id, index: Index, frame: Index, actor: CurrentActor, db: Db
) -> Response:
    """Key frame ``frame`` (0 = the best) of person ``index`` of a video probe, as cut
    from the original video's frame when it was analysed."""
    return Response(
        _key_frame(db, actor, probe_id, index, frame).jpeg, media_type="image/jpeg", headers=HEADERS
    )


@router.get("/probes/{probe_id}/faces/{index}.jpg")
def probe_face(probe_id: Id, index: Index, actor: CurrentActor, db: Db, state: State) -> Response:
    """The crop of one face of a probe (or the whole photo, smaller, for index -1); for
    a video's person, their best key frame."""
    if _is_track(db, actor, probe_id, index):
        return probe_key_frame(probe_id, index, 0, actor, db)
    probe = _probe_photo(db, actor, probe_id, "face")
    box = None if index < 0 else _probe_face_of(probe, index).box
    with _decoded(state, bytes(probe.data or b""), probe.filename) as image:
        if box is None:
            return _crop(image.pixels, None, 640)
        return _crop(image.pixels, [round(v) for v in _scaled(box, image.scale)])


@router.get("/probes/{probe_id}/photo.jpg")
def probe_photo(probe_id: Id, actor: CurrentActor, db: Db, state: State) -> Response:
    """The whole probe photo, upright, its longest side at most 1600 pixels."""
    probe = _probe_photo(db, actor, probe_id, "photo")
    with _decoded(state, bytes(probe.data or b""), probe.filename) as image:
        return _jpeg(Image.fromarray(image.pixels), max_side=WHOLE_MAX)


@router.get("/probes/{probe_id}/faces/{index}/aligned.jpg")
def probe_aligned(
    probe_id: Id,
    index: Index,
    actor: CurrentActor,
    db: Db,
    state: State,
    size: int = 480,
    frame: int = 0,
) -> Response:
    """One probe face aligned for comparison (see :func:`aligned_view`); for a video's
    person, key frame ``frame`` (0 = the best)."""
    if _is_track(db, actor, probe_id, index):
        k = _key_frame(db, actor, probe_id, index, max(frame, 0))
        crop = decode_image(k.jpeg, source="key frame").pixels
        if k.crop_box is None:  # a row kept before crops were placed: its middle half
            h, w = crop.shape[:2]
            box: tuple[float, ...] = (w / 4, h / 4, 3 * w / 4, 3 * h / 4)
            ox = oy = 0
        else:
            ox, oy = k.crop_box[:2]
            box = (k.box[0] - ox, k.box[1] - oy, k.box[2] - ox, k.box[3] - oy)
        lms = [(x - ox, y - oy) for x, y in k.landmarks] if k.crop_box else None
        return _jpeg(aligned_view(crop, box=box, landmarks=lms or None, size=_size(size)))
    probe = _probe_photo(db, actor, probe_id, "aligned")
    face = _probe_face_of(probe, index)
    with _decoded(state, bytes(probe.data or b""), probe.filename) as image:
        view = aligned_view(
            image.pixels,
            box=_scaled(face.box, image.scale),
            landmarks=[_scaled(p, image.scale) for p in face.landmarks] if face.landmarks else None,
            size=_size(size),
        )
    return _jpeg(view)


@contextmanager
def _reference(
    db: Db, actor: CurrentActor, state: ServiceState, photo_id: Id, view: str
) -> Iterator[DecodedImage]:
    photo = collections.get_photo(db, actor=actor, photo_id=photo_id, view=view)
    path = Path(photo.path)
    with ExitStack() as stack:
        try:
            image = stack.enter_context(_decoded(state, path.read_bytes(), path.name))
        except (OSError, ImageError) as exc:
            raise NotFound("the reference photo file is no longer available") from exc
        yield image


@router.get("/photos/{photo_id}/face.jpg")
def reference_face(photo_id: Id, actor: CurrentActor, db: Db, state: State) -> Response:
    """The subject face of a gallery photo."""
    with _reference(db, actor, state, photo_id, "face") as image:
        face = collections.subject_face(db, actor=actor, photo_id=photo_id)
        box = [face.x1, face.y1, face.x2, face.y2] if face else None
        return _crop(image.pixels, [round(v) for v in _scaled(box, image.scale)] if box else None)


@router.get("/photos/{photo_id}/photo.jpg")
def reference_photo(photo_id: Id, actor: CurrentActor, db: Db, state: State) -> Response:
    """The whole reference photo, upright, its longest side at most 1600 pixels."""
    with _reference(db, actor, state, photo_id, "photo") as image:
        return _jpeg(Image.fromarray(image.pixels), max_side=WHOLE_MAX)


@router.get("/photos/{photo_id}/aligned.jpg")
def reference_aligned(
    photo_id: Id, actor: CurrentActor, db: Db, state: State, size: int = 480
) -> Response:
    """The subject face of a gallery photo aligned for comparison."""
    with _reference(db, actor, state, photo_id, "aligned") as image:
        face = collections.subject_face(db, actor=actor, photo_id=photo_id)
        if face is None:
            h, w = image.pixels.shape[:2]
            box: list[float] = [0, 0, w, h]
            landmarks = None
        else:
            box = _scaled([face.x1, face.y1, face.x2, face.y2], image.scale)
            landmarks = [_scaled(p, image.scale) for p in face.landmarks or []] or None
        view = aligned_view(image.pixels, box=box, landmarks=landmarks, size=_size(size))
    return _jpeg(view)
