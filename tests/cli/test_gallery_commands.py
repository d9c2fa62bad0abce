"""The command line, driven through Typer's runner against real galleries and photos."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from PIL import Image
from typer.testing import CliRunner

from facetrace.cli.main import app
from tests.galleries import DISTRACTORS, ENROLLED

runner = CliRunner()


def run(data: Path, *args: str) -> tuple[int, str, str]:
    res = runner.invoke(app, ["--data", str(data), *args])
    return res.exit_code, res.stdout, res.stderr


def test_status_json_keys(gallery_dir: Path) -> None:
    code, out, _ = run(gallery_dir, "status", "--json")
    assert code == 0
    info = json.loads(out)
    assert info["subjects"] == len(ENROLLED) + len(DISTRACTORS)
    assert info["photos"] == 2 * len(ENROLLED) + len(DISTRACTORS)
    assert info["faces"] >= info["photos"]
    assert info["index"]["kind"] == "flat"


def test_status_on_empty_data_dir(tmp_path: Path) -> None:
    code, out, _ = run(tmp_path / "new", "status", "--json")
    assert code == 0
    assert json.loads(out)["faces"] == 0


def test_search_json_and_table(gallery_dir: Path, probe_of: dict[str, Path]) -> None:
    name = ENROLLED[0]
    code, out, _ = run(gallery_dir, "search", str(probe_of[name]), "--json", "--force")
    assert code == 0, out
    res = json.loads(out)
    top = res["faces"][0]
    assert not top["no_candidate"]
    first = top["candidates"][0]
    assert first["subject"]["id"] == name
    assert first["provenance"]["collection"] == "lfw"
    assert 0 < first["false_match_rate"] < 1
    code, out, err = run(gallery_dir, "search", str(probe_of[name]), "--force")
    assert code == 0
    assert name in out
    assert "not identifications" in err


def test_search_face_number_out_of_range(gallery_dir: Path, probe_of: dict[str, Path]) -> None:
    code, _, err = run(gallery_dir, "search", str(probe_of[ENROLLED[0]]), "--face", "7")
    assert code == 1
    assert "face 7" in err


def test_verify_photo_vs_subject(gallery_dir: Path, probe_of: dict[str, Path]) -> None:
    code, out, _ = run(gallery_dir, "verify", str(probe_of[ENROLLED[1]]), ENROLLED[1], "--json")
    assert code == 0
    assert json.loads(out)["decision"] == "same"
    code, out, _ = run(
        gallery_dir, "verify", str(probe_of[ENROLLED[1]]), str(probe_of[ENROLLED[2]]), "--json"
    )
    assert code == 0
    assert json.loads(out)["decision"] == "different"


@pytest.fixture()
def bad_files(tmp_path: Path, faces_dir: Path) -> dict[str, Path]:
    good = faces_dir / "lfw" / "images" / ENROLLED[0] / f"{ENROLLED[0]}_0001.jpg"
    d = tmp_path / "bad"
    d.mkdir()
    files = {
        "empty": d / "empty.jpg",
        "text": d / "notes.jpg",
        "truncated": d / "truncated.jpg",
        "renamed_pdf": d / "doc.png",
        "bomb": d / "bomb.png",
        "noface": d / "wall.png",
    }
    files["empty"].write_bytes(b"")
    files["text"].write_text("this is not a photo\n")
    files["truncated"].write_bytes(good.read_bytes()[:1500])
    files["renamed_pdf"].write_bytes(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<<>>\nendobj\n")
    Image.new("1", (20000, 20000)).save(files["bomb"])
    Image.new("RGB", (320, 240), (200, 190, 180)).save(files["noface"])
    return files


@pytest.mark.parametrize(
    ("kind", "needle"),
    [
        ("empty", "empty"),
        ("text", "notes.jpg"),
        ("truncated", "truncated.jpg"),
        ("renamed_pdf", "doc.png"),
        ("bomb", "pixel"),
        ("noface", "no face"),
    ],
)
def test_bad_probe_refused_and_nothing_changes(
    gallery_dir: Path, bad_files: dict[str, Path], kind: str, needle: str
) -> None:
    db = gallery_dir / "facetrace.db"
    before = db.read_bytes()
    code, out, err = run(gallery_dir, "search", str(bad_files[kind]))
    assert code != 0
    assert needle in err.lower() or needle in err
    assert "Traceback" not in err + out
    assert db.read_bytes() == before


def test_ingest_bad_folder_adds_nothing(gallery_dir: Path, bad_files: dict[str, Path]) -> None:
    root = bad_files["empty"].parent.parent / "tree"
    shutil.copytree(bad_files["empty"].parent, root / "someone")
    _, before, _ = run(gallery_dir, "status", "--json")
    code, out, _ = run(gallery_dir, "ingest", str(root), "--json", "--workers", "1")
    assert code == 0
    summary = json.loads(out)
    assert summary["photos_added"] == 0
    assert summary["skipped"] == len(bad_files)
    assert Path(summary["report"]).is_file()
    _, after, _ = run(gallery_dir, "status", "--json")
    keys = ("photos", "faces", "subjects")
    assert [json.loads(before)[k] for k in keys] == [json.loads(after)[k] for k in keys]


def test_ingest_malformed_manifest_exit_2(gallery_dir: Path, tmp_path: Path) -> None:
    m = tmp_path / "m.jsonl"
    m.write_text('{"path": "a.jpg", "subject_id": "1"}\n[1, 2]\n')
    code, _, err = run(gallery_dir, "ingest", str(m))
    assert code == 2
    assert "m.jsonl:2" in err


def test_delete_then_reingest_refused(gallery_dir: Path, mini_lfw: Path) -> None:
    code, _, err = run(gallery_dir, "delete", "subject", ENROLLED[3], "--yes")
    assert code == 0 and "2 faces removed" in err
    code, out, _ = run(gallery_dir, "ingest", str(mini_lfw), "--json", "--workers", "1")
    assert json.loads(out)["photos_added"] == 0
    assert json.loads(out)["skipped"] == 2
    code, _, err = run(gallery_dir, "delete", "subject", ENROLLED[3], "--yes")
    assert code == 1 and "no subject" in err


def test_embed_prints_vectors(faces_dir: Path, tmp_path: Path) -> None:
    photo = faces_dir / "webphotos13" / "multi_face" / "couple.jpg"
    code, out, _ = run(tmp_path, "embed", str(photo), "--json")
    assert code == 0
    faces = json.loads(out)["faces"]
    assert len(faces) == 2
    assert all(len(f["vector"]) == 128 for f in faces)
    norms = [sum(x * x for x in f["vector"]) for f in faces]
    assert norms == pytest.approx([1.0, 1.0], abs=1e-4)


def test_cli_ingest_and_delete_are_audited(gallery_dir: Path, mini_lfw: Path) -> None:
    """Issue 11 item 11: the shell's ingest and delete write audit entries (the delete in
    the transaction that removes the rows; a refused one writes nothing), keyed like the
    service's."""
    import sqlite3

    code, _, _ = run(gallery_dir, "delete", "subject", ENROLLED[3], "--yes")
    assert code == 0
    code, _, _ = run(gallery_dir, "delete", "subject", "nobody-at-all", "--yes")
    assert code == 1
    code, out, _ = run(gallery_dir, "ingest", str(mini_lfw), "--json", "--workers", "1")
    assert code == 0
    db = sqlite3.connect(gallery_dir / "facetrace.db")
    rows = db.execute("SELECT action, target, detail FROM audit_entry ORDER BY seq").fetchall()
    db.close()
    by_action = {a: (t, json.loads(d)) for a, t, d in rows}
    target, detail = by_action["delete"]
    assert target == f"subject:{ENROLLED[3]}" and detail["via"] == "cli"
    assert detail["faces_removed"] == 2
    assert [a for a, _, _ in rows].count("delete") == 1, "the refused delete left nothing"
    target, detail = by_action["import"]
    assert detail["via"] == "cli" and detail["source"] == str(mini_lfw)
    assert detail["skipped"] == 2 and "import_batch" in by_action
    code, out, _ = run(gallery_dir, "audit", "verify")
    assert code == 0 and out.startswith("ok:")
