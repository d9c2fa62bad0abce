"""Evaluation protocols: the LFW pairs protocol and open-set 1:N, on small real sets."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from facetrace.cli.main import app
from facetrace.config import DetectorKind, PipelineOptions
from facetrace.errors import ManifestError
from facetrace.eval.embedding import embed_photos
from facetrace.eval.identify import evaluate_identify, fnir_at_fpir, split
from facetrace.eval.lfw import best_threshold, fold_accuracies, read_pairs
from facetrace.scoring.asnorm import Cohort, save_cohort
from facetrace.vision.models import DLIB_RESNET_V1

runner = CliRunner()


def test_best_threshold_separates_clean_data() -> None:
    scores = np.array([0.1, 0.2, 0.3, 0.7, 0.8, 0.9])
    same = np.array([False, False, False, True, True, True])
    t = best_threshold(scores, same)
    assert 0.3 < t < 0.7


def test_fold_threshold_comes_from_other_folds() -> None:
    # fold 0 alone would want a threshold near 0.5; the others force 0.85
    scores = np.array([0.9, 0.95, 0.8, 0.7, 0.9, 0.95, 0.8, 0.7, 0.6, 0.4])
    same = np.array([True, True, False, False, True, True, False, False, True, False])
    folds = np.array([1, 1, 1, 1, 2, 2, 2, 2, 0, 0])
    accs, thresholds = fold_accuracies(scores, same, folds)
    assert thresholds[0] == pytest.approx(0.85)
    assert accs[0] == 0.5


def test_fnir_at_fpir() -> None:
    nonmated = np.linspace(0.0, 0.99, 100)
    mated = np.array([0.995, 0.999, 0.5, -np.inf])
    fnir, t = fnir_at_fpir(mated, nonmated, 0.01)
    assert t is not None and 0.98 < t <= 0.99
    assert fnir == 0.5
    assert fnir_at_fpir(mated, nonmated, 0.001) == (None, None)


def _write_pairs(path: Path, folds: list[tuple[list[str], list[str]]]) -> None:
    n = len(folds[0][0])
    path.write_text(f"{len(folds)}\t{n}\n" + "".join("".join(s + d) for s, d in folds))


def test_pairs_file_errors_name_the_line(tmp_path: Path) -> None:
    p = tmp_path / "pairs.txt"
    p.write_text("1\t1\nA\t1\t2\nB\t1\n")
    with pytest.raises(ManifestError, match=r"pairs\.txt:3"):
        read_pairs(p, tmp_path)
    p.write_text("two folds\n")
    with pytest.raises(ManifestError, match="header"):
        read_pairs(p, tmp_path)
    p.write_text("1\t2\nA\t1\t2\n")
    with pytest.raises(ManifestError, match="expected 4"):
        read_pairs(p, tmp_path)


def test_eval_lfw_cli_on_a_small_real_pairs_file(faces_dir: Path, tmp_path: Path) -> None:
    lfw = faces_dir / "lfw"
    _, pairs = read_pairs(lfw / "pairs.txt", lfw / "images")
    same = [p for p in pairs if p.same and p.fold == 0][:4]
    diff = [p for p in pairs if not p.same and p.fold == 0][:4]

    def line(p: object) -> str:
        a, b = Path(p.a), Path(p.b)  # type: ignore[attr-defined]
        na, ia = a.parent.name, int(a.stem.rsplit("_", 1)[1])
        nb, ib = b.parent.name, int(b.stem.rsplit("_", 1)[1])
        return f"{na}\t{ia}\t{ib}\n" if na == nb else f"{na}\t{ia}\t{nb}\t{ib}\n"

    folds = [([line(p) for p in same[:2]], [line(p) for p in diff[:2]]),
             ([line(p) for p in same[2:]], [line(p) for p in diff[2:]])]  # fmt: skip
    small = tmp_path / "pairs.txt"
    _write_pairs(small, folds)
    res = runner.invoke(
        app,
        ["--data", str(tmp_path / "d"), "eval", "lfw", "--pairs", str(small),
         "--images", str(lfw / "images"), "--json", "--workers", "1"],
    )  # fmt: skip
    assert res.exit_code == 0, res.stderr
    out = json.loads(res.stdout)
    assert out["folds"] == 2 and out["pairs"] == 8
    assert 0.5 <= out["accuracy"] <= 1.0
    assert len(out["fold_accuracies"]) == 2
    assert out["no_face_detected"] >= 0


def test_identify_split_rules(tmp_path: Path) -> None:
    for name, n in [("solo", 1), *[(f"multi{i}", 3) for i in range(8)]]:
        (tmp_path / name).mkdir()
        for j in range(n):
            (tmp_path / name / f"{j}.jpg").write_bytes(b"x")
    gallery, probes = split(tmp_path, seed=0)
    names = {g for g, _ in gallery}
    assert "solo" in names  # single-photo subjects are distractors
    held_out = {n for n, _, mated in probes if not mated}
    enrolled = {n for n, _, mated in probes if mated}
    assert held_out and enrolled and not held_out & names
    assert enrolled <= names
    assert all(p.name != "0.jpg" for _, p, _ in probes)  # first photo is the enrolled one
    assert split(tmp_path, seed=0) == (gallery, probes)
    assert split(tmp_path, seed=1) != (gallery, probes)


def test_identify_split_enrols_several_photos_on_fixed_probes(tmp_path: Path) -> None:
    for name, n in [("solo", 1), ("pair", 2), *[(f"multi{i}", 5) for i in range(8)]]:
        (tmp_path / name).mkdir()
        for j in range(n):
            (tmp_path / name / f"{j}.jpg").write_bytes(b"x")
    one, probes1 = split(tmp_path, enrol=1, probe_from=3)
    three, probes3 = split(tmp_path, enrol=3, probe_from=3)
    assert probes1 == probes3  # the same probes: only the gallery differs
    assert {p.name for _, p, _ in probes3} == {"3.jpg", "4.jpg"}
    enrolled = {n for n, _, mated in probes3 if mated}
    for name in enrolled:
        assert sum(1 for g, _ in three if g == name) == 3
        assert sum(1 for g, _ in one if g == name) == 1
    # subjects with too few photos are distractors with up to `enrol` photos
    assert sum(1 for g, _ in three if g == "pair") == 2
    with pytest.raises(ValueError, match="probe_from"):
        split(tmp_path, enrol=3, probe_from=2)


def test_identify_on_att_subset(faces_dir: Path, tmp_path: Path) -> None:
    root = tmp_path / "att"
    for s in sorted((faces_dir / "att_orl").iterdir())[:6]:
        (root / s.name).mkdir(parents=True)
        for p in sorted(s.glob("*.pgm"))[:3]:
            (root / s.name / p.name).symlink_to(p)
    res = evaluate_identify(root, options=PipelineOptions(), workers=1)
    assert res["mated_probes"] + res["nonmated_probes"] == 12
    assert res["rank1"] is not None and 0 <= res["rank1"] <= res["rank10"] <= 1
    assert "fnir_at_fpir_0.01" in res
    # the gallery's own search answered, and its own thresholds are checked on the probes
    assert res["search"] == "gallery"
    g = res["gallery_threshold"]["0.01"]
    assert 0 <= g["measured_fpir"] <= 1 and 0 <= g["fnir"] <= 1 and g["threshold"] > 0


def test_eval_identify_cli_scores_as_the_gallery_does(
    faces_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "att"
    for s in sorted((faces_dir / "att_orl").iterdir())[:6]:
        (root / s.name).mkdir(parents=True)
        for p in sorted(s.glob("*.pgm"))[:4]:
            (root / s.name / p.name).symlink_to(p)

    def run(*extra: str) -> dict:
        res = runner.invoke(
            app,
            ["--data", str(tmp_path / "d"), "eval", "identify", "--images", str(root),
             "--json", "--workers", "1", *extra],
        )  # fmt: skip
        assert res.exit_code == 0, res.output
        return dict(json.loads(res.stdout))

    monkeypatch.setenv("FACETRACE_SEARCH__SCORE", "asnorm")
    refused = runner.invoke(app, ["eval", "identify", "--images", str(root)])
    assert refused.exit_code == 1 and "--cohort" in refused.output  # none ships
    # a cohort of other people (AT&T subjects not in the evaluated set)
    others = [sorted(s.glob("*.pgm"))[0] for s in sorted((faces_dir / "att_orl").iterdir())[6:30]]
    vecs = [e.vector for e in embed_photos(others, options=PipelineOptions())]
    cohort_file = tmp_path / "cohort.npz"
    save_cohort(
        Cohort(DLIB_RESNET_V1.model_id, np.stack([v for v in vecs if v is not None]), top_k=10),
        cohort_file,
    )
    default = run("--enrol", "2", "--templates", "--cohort", str(cohort_file))
    assert default["score"] == "as-norm" and default["cohort"]["top_k"] == 10
    assert default["subjects_by_enrolled_photos"] == {"2": default["gallery_size"]}
    assert default["templated_subjects"] == default["gallery_size"]
    monkeypatch.setenv("FACETRACE_SEARCH__SCORE", "cosine")
    plain = run("--enrol", "1", "--probe-from", "2")
    assert plain["score"] == "cosine" and plain["cohort"] is None
    assert plain["mated_probes"] == default["mated_probes"]  # the same probes
    bad = runner.invoke(app, ["eval", "identify", "--images", str(root), "--enrol", "3",
                              "--probe-from", "2"])  # fmt: skip
    assert bad.exit_code == 1 and "--probe-from" in bad.output


def test_the_subject_is_the_centre_face_even_when_the_detector_found_only_a_bystander(
    faces_dir: Path,
) -> None:
    # Tung_Chee-hwa_0001: HOG finds only the bystander at the left edge (the subject in
    # the centre is turned); before, that face stood for Tung Chee-hwa and both of the
    # photo's LFW pairs failed (cosine 0.81 against his photos 2 and 8)
    from facetrace.engine import FacePipeline
    from facetrace.eval.embedding import embed_main_face
    from facetrace.imaging import ImageLimits

    folder = faces_dir / "lfw" / "images" / "Tung_Chee-hwa"
    # with HOG alone eval asks the CNN for the centre face; auto itself now asks the CNN
    # when HOG's one face is cut by the edge, so the subject is found as detected
    hog = FacePipeline(PipelineOptions(detector=DetectorKind.HOG))
    by_centre = embed_main_face(folder / "Tung_Chee-hwa_0001.jpg", hog, ImageLimits())
    assert by_centre.how == "centre-cnn"
    pipeline = FacePipeline(PipelineOptions())
    first = embed_main_face(folder / "Tung_Chee-hwa_0001.jpg", pipeline, ImageLimits())
    assert first.how == "detected"
    assert float(np.dot(first.vector, by_centre.vector)) > 0.95
    for other in ("Tung_Chee-hwa_0002.jpg", "Tung_Chee-hwa_0008.jpg"):
        mate = embed_main_face(folder / other, pipeline, ImageLimits())
        assert mate.how == "detected"
        assert float(np.dot(first.vector, mate.vector)) > 0.9
