"""The evaluation's figures: DET and CMC curves as PNG and SVG beside its JSON, one line
per lever, and clear refusals of outputs that cannot be written."""

from __future__ import annotations

import json
import os
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from facetrace.cli.main import app
from facetrace.errors import InvalidRequest
from facetrace.eval.curves import cmc, identification_det, verification_det
from facetrace.eval.lfw import read_pairs
from facetrace.eval.plots import check_output, write_figures

runner = CliRunner()
PNG = b"\x89PNG\r\n\x1a\n"
SVG = "{http://www.w3.org/2000/svg}"


def _lever_lines(svg: Path) -> list[str]:
    """The ids of the SVG's lever lines (``<g id="lever-N">`` holding a path)."""
    root = ET.parse(svg).getroot()  # raises on a file that is not XML
    assert root.tag == f"{SVG}svg"
    return sorted(
        g.get("id", "")
        for g in root.iter(f"{SVG}g")
        if g.get("id", "").startswith("lever-") and g.find(f"{SVG}path") is not None
    )


def test_identification_det_and_cmc_from_scores() -> None:
    nonmated = np.array([0.9, 0.5, 0.4, 0.3])
    mated = np.array([0.95, 0.6, 0.45, -np.inf])
    fpir, fnir = identification_det(mated, nonmated)
    assert fpir == (0.25, 0.5, 0.75, 1.0)  # thresholds 0.9, 0.5, 0.4, 0.3
    assert fnir == (0.75, 0.5, 0.25, 0.25)  # the mate not in the list is always missed
    assert cmc(np.array([0, 1, 1, 10**9]), 3) == (0.25, 0.75, 0.75)
    fmr, fnmr = verification_det(
        np.array([0.9, 0.2, 0.8, 0.1]), np.array([True, False, True, False])
    )
    assert fmr == (0.5, 1.0) and fnmr == (0.0, 0.0)
    assert identification_det(mated, np.array([])) == ((), ())


def test_figures_have_one_line_per_lever(tmp_path: Path) -> None:
    def lever(label: str, shift: float, configured: bool = False) -> dict[str, object]:
        return {
            "label": label,
            "configured": configured,
            "rank1": 0.9 + shift,
            "fnir_at_fpir_0.01": 0.5 - shift,
            "det": {
                "false_positive": [0.001, 0.01, 0.1, 1.0],
                "false_negative": [0.6 - shift, 0.5 - shift, 0.2, 0.0],
            },
            "cmc": [0.9 + shift, 0.95, 0.97],
        }

    result = {
        "protocol": "open-set-1:N",
        "mated_probes": 100,
        "levers": [
            lever("cosine, faces only", 0.0),
            lever("templates", 0.05, True),
            lever("AS-norm", 0.02),
        ],
    }
    written = write_figures(result, tmp_path / "run.json", title="test")
    names = sorted(p.name for p in written)
    assert names == ["run-cmc.png", "run-cmc.svg", "run-det.png", "run-det.svg"]
    for path in written:
        if path.suffix == ".png":
            assert path.read_bytes()[:8] == PNG and path.stat().st_size > 5000
        else:
            assert _lever_lines(path) == ["lever-0", "lever-1", "lever-2"]
    text = (tmp_path / "run-det.svg").read_text()
    # legends name each lever; the log axes are labelled in words
    assert "templates (as run)" in text or "templates" in text
    assert not list(tmp_path.glob(".*.tmp"))
    # a 1:1 result: a DET only
    one = write_figures(
        {"protocol": "lfw-pairs", "pairs": 8, "levers": [{**lever("cosine", 0.0), "cmc": []}]},
        tmp_path / "lfw.json",
        title="pairs",
    )
    assert sorted(p.name for p in one) == ["lfw-det.png", "lfw-det.svg"]
    assert _lever_lines(tmp_path / "lfw-det.svg") == ["lever-0"]


def test_unwritable_outputs_are_refused_before_anything_runs(tmp_path: Path) -> None:
    with pytest.raises(InvalidRequest, match="does not exist"):
        check_output(tmp_path / "missing" / "e.json", with_cmc=True)
    with pytest.raises(InvalidRequest, match="is a folder"):
        check_output(tmp_path, with_cmc=True)
    (tmp_path / "e-det.svg").mkdir()
    with pytest.raises(InvalidRequest, match=r"e-det\.svg: is a folder"):
        check_output(tmp_path / "e.json", with_cmc=False)
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        if not os.access(locked, os.W_OK):  # root may write anywhere
            with pytest.raises(InvalidRequest, match="cannot be written"):
                check_output(locked / "e.json", with_cmc=True)
    finally:
        locked.chmod(0o700)


def test_eval_identify_writes_json_and_figures_per_lever(faces_dir: Path, tmp_path: Path) -> None:
    root = tmp_path / "att"
    for s in sorted((faces_dir / "att_orl").iterdir())[:8]:
        (root / s.name).mkdir(parents=True)
        for p in sorted(s.glob("*.pgm"))[:4]:
            (root / s.name / p.name).symlink_to(p)
    out = tmp_path / "out" / "att.json"
    base = [
        "--data",
        str(tmp_path / "d"),
        "eval",
        "identify",
        "--images",
        str(root),
        "--workers",
        "1",
    ]
    refused = runner.invoke(app, [*base, "--enrol", "2", "--output", str(out)])
    assert refused.exit_code != 0 and "does not exist" in refused.output
    assert not out.parent.exists()
    out.parent.mkdir()
    res = runner.invoke(app, [*base, "--enrol", "2", "--templates", "--output", str(out)])
    assert res.exit_code == 0, res.output
    data = json.loads(out.read_text())
    labels = [lv["label"] for lv in data["levers"]]
    assert labels == ["cosine, faces only", "templates"]
    assert [lv["configured"] for lv in data["levers"]] == [False, True]
    assert data["levers"][1]["rank1"] == data["rank1"]  # the configured line is the result
    assert all(len(lv["cmc"]) == 10 for lv in data["levers"])
    assert all(
        len(lv["det"]["false_positive"]) == len(lv["det"]["false_negative"]) > 0
        for lv in data["levers"]
    )
    for kind in ("det", "cmc"):
        assert (out.parent / f"att-{kind}.png").read_bytes()[:8] == PNG
        assert _lever_lines(out.parent / f"att-{kind}.svg") == ["lever-0", "lever-1"]
    assert "each configuration on the same probes" in res.stdout
    assert "wrote" in res.output


def test_eval_lfw_writes_a_det(faces_dir: Path, tmp_path: Path) -> None:
    lfw = faces_dir / "lfw"
    _, pairs = read_pairs(lfw / "pairs.txt", lfw / "images")
    same = [p for p in pairs if p.same and p.fold == 0][:4]
    diff = [p for p in pairs if not p.same and p.fold == 0][:4]

    def line(a: str, b: str) -> str:
        pa, pb = Path(a), Path(b)
        na, ia = pa.parent.name, int(pa.stem.rsplit("_", 1)[1])
        nb, ib = pb.parent.name, int(pb.stem.rsplit("_", 1)[1])
        return f"{na}\t{ia}\t{ib}\n" if na == nb else f"{na}\t{ia}\t{nb}\t{ib}\n"

    small = tmp_path / "pairs.txt"
    folds = [same[:2] + diff[:2], same[2:] + diff[2:]]
    small.write_text("2\t2\n" + "".join(line(p.a, p.b) for fold in folds for p in fold))
    out = tmp_path / "lfw.json"
    res = runner.invoke(
        app,
        ["--data", str(tmp_path / "d"), "eval", "lfw", "--pairs", str(small),
         "--images", str(lfw / "images"), "--workers", "1", "--json", "-o", str(out)],
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["levers"][0]["label"] == "cosine"
    assert json.loads(out.read_text())["pairs"] == 8
    assert (tmp_path / "lfw-det.png").read_bytes()[:8] == PNG
    assert _lever_lines(tmp_path / "lfw-det.svg") == ["lever-0"]
    assert not (tmp_path / "lfw-cmc.svg").exists()  # pairs have no ranks
