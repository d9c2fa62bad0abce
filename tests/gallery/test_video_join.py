"""Search by video on a gallery of the video's characters: a person whom the gallery finds
in two appearances is listed once; two faces of one frame stay two people whatever the
gallery says. Real LFW photos, real decode and models, a real gallery."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from facetrace.gallery.directory import Gallery
from facetrace.gallery.ingest import ingest, scan_folder
from facetrace.gallery.video import search_video
from facetrace.video import VideoOptions
from tests.video.synthetic import BLUE, GREEN, GREY, Actor, Shot, lfw_photo, twins, write_video

CAST = "Fernando_Henrique_Cardoso"


@pytest.fixture(scope="module")
def characters(faces_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A gallery of stills of the characters only: one photo each, never one the videos show."""
    tree = tmp_path_factory.mktemp("characters_src")
    stills = {
        CAST: 8,
        "Colin_Powell": 3,
        "Hugo_Chavez": 2,
        "Tony_Blair": 3,
        "Jiang_Zemin": 3,
        "Vicente_Fox": 3,
    }
    for name, number in stills.items():
        (tree / name).mkdir()
        photo = lfw_photo(faces_dir, name, number)
        shutil.copy(photo, tree / name / photo.name)
    data = tmp_path_factory.mktemp("characters")
    with Gallery.open(data) as g:
        summary = ingest(g, scan_folder(tree, collection="stills", legal_basis="test"))
    assert summary.photos_added == len(stills), summary.skipped
    return data


def _firsts(result: object) -> list[str | None]:
    return [
        pr.candidates[0].info.subject_external_id if pr.candidates else None
        for pr in result.persons  # type: ignore[attr-defined]
    ]


def test_a_person_the_gallery_finds_in_two_appearances_is_listed_once(
    characters: Path, faces_dir: Path, tmp_path: Path
) -> None:
    # Cardoso comes back after a cut in another photo of him: his photos 1 and 3 score
    # 0.911, under the fragment merge's 0.928, so the video alone sees two people
    video = tmp_path / "return.mp4"

    def shot(colour: tuple[int, int, int], name: str, photo: int) -> Shot:
        actor = Actor(name, lfw_photo(faces_dir, name, photo), 0, 2.4, (0.45, 0.5), (0.55, 0.5))
        return Shot(2.4, colour, (actor,))

    write_video(video, [shot(GREY, CAST, 1), shot(BLUE, "Colin_Powell", 1), shot(GREEN, CAST, 3)])
    with Gallery.open(characters) as g:
        result = search_video(g, video, options=VideoOptions(workers=1))
    firsts = _firsts(result)
    assert firsts.count(CAST) == 1, firsts  # listed once, not once per appearance
    assert firsts.count("Colin_Powell") == 1
    assert len(result.persons) == 2
    cardoso = next(pr.person for pr in result.persons if _firsts_one(pr) == CAST)
    # on screen in the first and the third shot, not in the second
    assert cardoso.intervals[0][0] < 1.0 and cardoso.intervals[-1][1] > 5.5
    assert all(not (a0 > 2.5 and b0 < 4.7) for a0, b0 in cardoso.intervals)
    assert len(cardoso.tracks) == 2
    assert [pr.person.number for pr in result.persons] == [1, 2]
    assert result.analysis.persons == tuple(pr.person for pr in result.persons)


def _firsts_one(pr: object) -> str | None:
    cands = pr.candidates  # type: ignore[attr-defined]
    return cands[0].info.subject_external_id if cands else None


def test_two_faces_of_one_frame_stay_two_people_when_the_gallery_finds_one_subject(
    characters: Path, faces_dir: Path, tmp_path: Path
) -> None:
    video = tmp_path / "twins.mp4"
    write_video(video, twins(faces_dir))  # Hugo Chavez's photo twice in every frame
    with Gallery.open(characters) as g:
        result = search_video(g, video, options=VideoOptions(workers=1))
    assert _firsts(result) == ["Hugo_Chavez", "Hugo_Chavez"]
    assert len(result.persons) == 2
