"""``facetrace group FOLDER`` on real photos: the report, the sheets, bad input."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import pytest
from PIL import Image
from typer.testing import CliRunner

from facetrace.cli.main import app

runner = CliRunner()
JOLIE = ["img1.jpg", "img2.jpg", "img4.jpg"]  # webphotos13 id01
OTHER = ["img26.jpg", "img27.jpg", "img28.jpg"]  # webphotos13 id02


@pytest.fixture(scope="module")
def folder(faces_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("unsorted")
    ids = faces_dir / "webphotos13" / "identities"
    for name in JOLIE:
        shutil.copy(ids / "id01" / name, root / f"a_{name}")
    (root / "more").mkdir()
    for name in OTHER:
        shutil.copy(ids / "id02" / name, root / "more" / f"b_{name}")
    (root / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    Image.new("RGB", (200, 200), (90, 120, 160)).save(root / "sky.png")
    (root / "notes.txt").write_text("not a photo")
    return root


def test_group_writes_csv_json_and_a_sheet_per_group(folder: Path, tmp_path: Path) -> None:
    out = tmp_path / "report"
    args = ["--data", str(tmp_path / "d"), "group", str(folder), "--out", str(out)]
    res = runner.invoke(app, [*args, "--workers", "1"])
    assert res.exit_code == 0, res.stderr
    assert "2 groups of 2 or more" in res.stdout
    assert "broken.jpg" in res.stderr and "sky.png" in res.stderr
    with (out / "groups.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    group_of = {r["photo"]: r["group"] for r in rows}
    assert {group_of[f"a_{n}"] for n in JOLIE} != {group_of[f"more/b_{n}"] for n in OTHER}
    assert len({group_of[f"a_{n}"] for n in JOLIE}) == 1
    assert len({group_of[f"more/b_{n}"] for n in OTHER}) == 1
    report = json.loads((out / "groups.json").read_text())
    assert report["algorithm"] == "average" and report["false_match_rate"] == 5e-5
    assert 0.9 < report["threshold"] < 1
    assert {s["photo"] for s in report["skipped"]} == {"broken.jpg", "sky.png"}
    for g in report["groups"]:
        if g["size"] >= 2:
            with Image.open(out / g["sheet"]) as sheet:
                assert sheet.width >= 3 * 128 and sheet.height > 128


@pytest.mark.parametrize(
    "args",
    [["--fmr", "2"], ["--fmr", "0"], ["--algorithm", "kmeans"], ["--min-quality", "1.5"]],
)
def test_bad_options_are_refused_before_any_work(
    folder: Path, tmp_path: Path, args: list[str]
) -> None:
    out = tmp_path / "report"
    res = runner.invoke(
        app, ["--data", str(tmp_path / "d"), "group", str(folder), "--out", str(out), *args]
    )
    assert res.exit_code == 1
    assert "error:" in res.stderr
    assert not out.exists()


def test_a_folder_without_photos_is_refused(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    for target in (tmp_path / "empty", tmp_path / "missing"):
        res = runner.invoke(app, ["--data", str(tmp_path / "d"), "group", str(target)])
        assert res.exit_code == 1
        assert "error:" in res.stderr


def test_a_long_caption_keeps_its_end_the_face_number() -> None:
    """Faces of one group photo differ only in their number, at the end of the caption:
    a caption too long for its tile is shortened in the middle."""
    from PIL import ImageDraw

    from facetrace.grouping.sheet import THUMB, _font, fit_caption

    draw = ImageDraw.Draw(Image.new("RGB", (10, 10)))
    font = _font(11)
    names = [fit_caption(draw, f"selfie-many-people.jpg #{i}", font, THUMB) for i in (3, 4)]
    assert names[0] != names[1]
    assert all(n.endswith(f"#{i}") and "…" in n for n, i in zip(names, (3, 4), strict=True))
    assert all(draw.textlength(n, font=font) <= THUMB for n in names)
    assert fit_caption(draw, "img1.jpg", font, THUMB) == "img1.jpg"
