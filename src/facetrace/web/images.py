"""Face crops for the results page: the probe face and the candidates' reference faces.
Served only to users who may see the case or the gallery; never cached by the browser."""

from __future__ import annotations

import io
from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import Response
from PIL import Image

from facetrace.errors import ImageError, NotFound
from facetrace.imaging import decode_image
from facetrace.server.deps import CurrentActor, Db, State
from facetrace.service import collections, searches

router = APIRouter()

HEADERS = {"Cache-Control": "no-store"}


def _crop(pixels: object, box: list[int] | tuple[int, ...] | None, size: int = 220) -> bytes:
    image = Image.fromarray(pixels)  # type: ignore[arg-type]
    if box:
        x1, y1, x2, y2 = (int(v) for v in box)
        m = int(0.35 * max(x2 - x1, y2 - y1))
        image = image.crop(
            (max(0, x1 - m), max(0, y1 - m), min(image.width, x2 + m), min(image.height, y2 + m))
        )
    image.thumbnail((size, size))
    out = io.BytesIO()
    image.save(out, format="JPEG", quality=88)
    return out.getvalue()


@router.get("/probes/{probe_id}/faces/{index}.jpg")
def probe_face(probe_id: int, index: int, actor: CurrentActor, db: Db) -> Response:
    """The crop of one face of a probe (or the whole photo for index -1)."""
    probe = searches.get_probe(db, actor=actor, probe_id=probe_id)
    if probe.data is None:
        raise NotFound("the probe photo was deleted at the end of its retention period")
    image = decode_image(probe.data, source=probe.filename)
    box = None
    if index >= 0:
        if index >= len(probe.faces):
            raise NotFound(f"no face {index}")
        box = probe.faces[index].box
    return Response(
        _crop(image.pixels, box, 220 if box else 640), media_type="image/jpeg", headers=HEADERS
    )


@router.get("/photos/{photo_id}/face.jpg")
def reference_face(photo_id: int, actor: CurrentActor, db: Db, state: State) -> Response:
    """The subject face of a gallery photo."""
    photo = collections.get_photo(db, actor=actor, photo_id=photo_id)
    face = collections.subject_face(db, photo_id=photo.id)
    path = Path(photo.path)
    try:
        image = decode_image(path.read_bytes(), source=path.name)
    except (OSError, ImageError) as exc:
        raise NotFound("the reference photo file is no longer available") from exc
    box = [face.x1, face.y1, face.x2, face.y2] if face else None
    return Response(_crop(image.pixels, box), media_type="image/jpeg", headers=HEADERS)
