"""``facetrace search`` in both modes: the gallery's choice by size (here: a configured
size of 3 subjects), --mode per search, the mode in the text output, in --json and in the
audit entry, and a bad --mode refused."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
from typer.testing import CliRunner

from facetrace.cli.main import app
from tests.galleries import DISTRACTORS, ENROLLED

runner = CliRunner()
SUBJECTS = len(ENROLLED) + len(DISTRACTORS)


def run(data: Path, *args: str) -> tuple[int, str, str]:
    res = runner.invoke(app, ["--data", str(data), *args])
    return res.exit_code, res.stdout, res.stderr


def _audited_modes(data: Path) -> list[str]:
    db = sqlite3.connect(data / "facetrace.db")
    rows = db.execute("SELECT detail FROM audit_entry WHERE action = 'search' ORDER BY seq")
    modes = [json.loads(d).get("mode") for (d,) in rows.fetchall()]
    db.close()
    return modes


def test_search_says_its_mode(
    gallery_dir: Path, probe_of: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    probe = str(probe_of[ENROLLED[0]])
    # a small gallery, far below the size derived from the packaged table: identification
    code, out, _ = run(gallery_dir, "search", probe, "--json", "--force")
    assert code == 0, out
    res = json.loads(out)
    assert res["mode"] == "identification" and res["faces"][0]["mode"] == "identification"
    assert res["mode_choice"]["chosen_by"] == "gallery size"
    assert res["mode_choice"]["switch_source"] == "calibration"
    assert res["mode_choice"]["investigation_from"] > SUBJECTS
    # past the configured size: investigation, every subject listed up to -k
    monkeypatch.setenv("FACETRACE_SEARCH__INVESTIGATION_FROM_SUBJECTS", "3")
    code, out, _ = run(gallery_dir, "search", probe, "--json", "--force", "-k", "6")
    face = json.loads(out)["faces"][0]
    assert face["mode"] == "investigation" and len(face["candidates"]) == 6
    assert face["below_threshold"] == [] and not face["no_candidate"]
    assert any(not c["above_threshold"] for c in face["candidates"])  # listed all the same
    assert all(c["false_match_rate"] > 0 for c in face["candidates"])
    code, out, err = run(gallery_dir, "search", probe, "--force", "-k", "6")
    assert code == 0
    assert "mode: investigation" in out and f"gallery of {SUBJECTS} subjects" in out
    assert "(below threshold)" not in out and "no threshold" in " ".join(err.split())
    # asked per search
    code, out, _ = run(gallery_dir, "search", probe, "--force", "--mode", "identification")
    assert code == 0 and "mode: identification" in out and "as asked (--mode)" in out
    assert _audited_modes(gallery_dir) == [
        "identification",
        "investigation",
        "investigation",
        "identification",
    ]
    code, _, err = run(gallery_dir, "search", probe, "--mode", "maybe")
    assert code != 0 and "mode" in err
    assert len(_audited_modes(gallery_dir)) == 4  # nothing recorded


def test_calibrate_measures_the_mated_curve(faces_dir: Path, tmp_path: Path) -> None:
    """The operator's own table carries the miss rate that sizes the switch to the
    investigation mode: same-person pairs of the labelled set."""
    root = tmp_path / "att"
    for s in sorted((faces_dir / "att_orl").iterdir())[:12]:
        (root / s.name).mkdir(parents=True)
        for p in sorted(s.glob("*.pgm"))[:5]:
            (root / s.name / p.name).symlink_to(p)
    table = tmp_path / "table.json"
    code, out, err = run(
        tmp_path / "d", "calibrate", "--images", str(root), "--output", str(table),
        "--workers", "1", "--json",
    )  # fmt: skip
    assert code == 0, err
    summary = json.loads(out)
    assert summary["mated_pairs"] == 12 * 10
    data = json.loads(table.read_text())
    assert len(data["mated"]) == 101 and "120 same-person pairs" in data["mated_source"]
    fnir = [f for _, f in data["mated"]]
    assert fnir[0] == 0 and fnir[-1] == 1 and fnir == sorted(fnir)
