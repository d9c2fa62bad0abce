import pytest

from facetrace.types import BoundingBox


def test_box_rejects_empty() -> None:
    with pytest.raises(ValueError):
        BoundingBox(10, 10, 10, 20)


def test_box_geometry() -> None:
    box = BoundingBox(0, 0, 40, 20)
    assert (box.width, box.height, box.area, box.center) == (40, 20, 800, (20.0, 10.0))
