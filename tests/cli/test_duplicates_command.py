"""``facetrace duplicates``: list, merge, undo, different, on a planted gallery."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from facetrace.cli.main import app
from facetrace.gallery.directory import Gallery
from tests.galleries import COPIED, OTHER_PHOTO, subject_id

runner = CliRunner()


def run(data: Path, *args: str) -> tuple[int, str, str]:
    res = runner.invoke(app, ["--data", str(data), "duplicates", *args])
    return res.exit_code, res.stdout, res.stderr


def _pairs(data: Path) -> set[frozenset[str]]:
    code, out, err = run(data, "--json")
    assert code == 0, err
    return {frozenset((p["a"]["external_id"], p["b"]["external_id"])) for p in json.loads(out)}


def test_list_merge_undo_and_different_from_the_shell(planted_dir: Path) -> None:
    with Gallery.open(planted_dir) as g, g.session() as s:
        ids = {
            n: subject_id(s, n) for n in (COPIED, f"R-{COPIED}", OTHER_PHOTO, f"R-{OTHER_PHOTO}")
        }
    other = frozenset((OTHER_PHOTO, f"R-{OTHER_PHOTO}"))
    copied = frozenset((COPIED, f"R-{COPIED}"))
    assert {other, copied} <= _pairs(planted_dir)
    code, out, _ = run(planted_dir)
    assert code == 0 and f"R-{COPIED}" in out
    code, out, _ = run(planted_dir, "--collection", "lfw", "--json")
    assert code == 0 and json.loads(out) == []
    # a merge needs a reason, and known subjects
    code, _, err = run(planted_dir, "merge", str(ids[f"R-{OTHER_PHOTO}"]), str(ids[OTHER_PHOTO]))
    assert code == 1 and "error:" in err
    code, _, err = run(planted_dir, "merge", "99999", str(ids[OTHER_PHOTO]), "--note", "x")
    assert code == 1 and "no subject" in err
    code, out, err = run(
        planted_dir,
        "merge",
        str(ids[f"R-{OTHER_PHOTO}"]),
        str(ids[OTHER_PHOTO]),
        "--note",
        "same registry photo",
    )
    assert code == 0, err
    merge = json.loads(out)
    assert merge["photos_moved"] == 1
    assert other not in _pairs(planted_dir)
    code, out, _ = run(planted_dir, "merges")
    assert json.loads(out)[0]["note"] == "same registry photo"
    code, out, err = run(planted_dir, "undo", str(merge["merge"]), "--note", "wrong man")
    assert code == 0, err
    assert other in _pairs(planted_dir)
    code, _, err = run(
        planted_dir, "different", str(ids[COPIED]), str(ids[f"R-{COPIED}"]), "--note", "twins"
    )
    assert code == 0, err
    assert copied not in _pairs(planted_dir) and other in _pairs(planted_dir)
