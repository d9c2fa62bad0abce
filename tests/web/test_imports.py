"""Imports that explain themselves, in a real browser: a zip with bad files lists every
file left out with its reason (names as in the upload, never the server's paths) and
offers them as CSV; a manifest with several bad rows lists each by line."""

from __future__ import annotations

import csv
import io
import re
import zipfile
from pathlib import Path
from typing import Any

from PIL import Image

from tests.web.desk import Desk, login, shot


def _jpeg(colour: tuple[int, int, int]) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (200, 200), colour).save(out, format="JPEG")
    return out.getvalue()


def _upload(page: Any, desk: Desk, archive: Path) -> None:
    page.goto(f"{desk.base}/collections/{desk.collection_id}")
    page.set_input_files("#import-form input[type=file]", str(archive))
    page.click("#import-form button")
    page.wait_for_url(re.compile(r".*/imports/.*"))
    page.wait_for_selector("#import-status:has-text('done'), #import-status:has-text('failed')")


def test_bad_files_are_listed_with_reasons(desk: Desk, browser: Any, tmp_path: Path) -> None:
    archive = tmp_path / "gallery.zip"
    good = desk.lfw("Tom_Ridge", 2)
    with zipfile.ZipFile(archive, "w") as zf:
        zf.write(good, f"Tom_Ridge/{good.name}")
        zf.writestr("Tom_Ridge/notes.jpg", b"this is not a photo")
        zf.writestr("Tom_Ridge/cut.jpg", good.read_bytes()[:600])
        zf.writestr("Nobody/wall.jpg", _jpeg((200, 190, 180)))
    page = browser.new_page()
    page.set_default_timeout(120_000)
    login(page, desk.base, "admin")
    _upload(page, desk, archive)
    summary = page.locator("#import-summary").inner_text()
    assert "Photos added: 1" in summary and "Not imported: 3" in summary, summary
    rows = page.locator("#skipped-table tbody tr").all_inner_texts()
    names = sorted(r.split("\t")[0] for r in rows)
    assert names == ["Nobody/wall.jpg", "Tom_Ridge/cut.jpg", "Tom_Ridge/notes.jpg"], rows
    assert any("no face found" in r for r in rows)
    text = page.locator("main").inner_text()
    assert str(desk.state.data_dir) not in text and "/imports/" not in text
    assert "ImageError" not in text
    shot(page, "desk-11-import-skipped")
    resp = page.request.get(desk.base + str(page.locator("#skipped-csv").get_attribute("href")))
    assert resp.ok and resp.headers["content-type"].startswith("text/csv")
    listed = list(csv.reader(io.StringIO(resp.text())))
    assert listed[0] == ["file", "reason"] and sorted(r[0] for r in listed[1:]) == names
    # the list is kept with the job's record; the uploaded files are gone
    job = page.url.split("/imports/")[1].split("?")[0]
    assert not (desk.state.data_dir / "imports" / job).exists()
    page.close()


def test_every_bad_manifest_row_is_listed(desk: Desk, browser: Any, tmp_path: Path) -> None:
    archive = tmp_path / "with-manifest.zip"
    good = desk.lfw("Gray_Davis", 1)
    rows = [
        "path,subject_id,subject_name,metadata",
        f"{good.name},GD-1,Gray Davis,",
        f"{good.name},,Nameless,",
        f"{good.name},GD-2,Bad JSON,{{oops",
        f'{good.name},GD-3,Array,"[1, 2]"',
    ]
    with zipfile.ZipFile(archive, "w") as zf:
        zf.write(good, good.name)
        zf.writestr("my-register.csv", "\n".join(rows) + "\n")
        zf.writestr("manifest.csv", "\n".join(rows) + "\n")
    page = browser.new_page()
    page.set_default_timeout(120_000)
    login(page, desk.base, "admin")
    _upload(page, desk, archive)
    status = page.locator("#import-status").inner_text()
    assert status.startswith("The import failed: manifest.csv: 3 rows are wrong"), status
    problems = page.locator("#problems-table tbody tr").all_inner_texts()
    assert [p.split("\t")[0] for p in problems] == ["3", "4", "5"], problems
    assert "subject_id" in problems[0] and "JSON" in problems[1]
    text = page.locator("main").inner_text()
    assert str(desk.state.data_dir) not in text and "/imports/" not in text
    shot(page, "desk-12-import-manifest-errors")
    page.close()
