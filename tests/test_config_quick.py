"""The quick reader answers only what Settings would answer, and steps aside (None)
whenever Settings would read, and so validate, anything more."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from facetrace.config import PipelineSettings, Settings
from facetrace.config_quick import (
    DEFAULT_MODEL,
    SETTINGS_FIELDS,
    QuickSettings,
    default_data_dir,
    quick_settings,
)


def test_it_knows_every_field_of_settings() -> None:
    assert set(Settings.model_fields) == SETTINGS_FIELDS
    assert PipelineSettings.model_fields["model"].default == DEFAULT_MODEL


@pytest.mark.parametrize(
    ("environ", "overrides"),
    [
        ({}, {}),
        ({"FACETRACE_DATA": "/srv/ft"}, {}),
        ({"facetrace_data": "rel/dir", "FACETRACE_PIPELINE__MODEL": "/m/a.onnx"}, {}),
        ({"FACETRACE_DATA": "/srv/ft"}, {"data": Path("/other")}),
        ({"FACETRACE_PIPELINE__MODEL": "x.onnx"}, {"pipeline": {"model": "dlib-resnet-v1"}}),
        # names Settings does not read: ignored by both (extra="ignore")
        ({"FACETRACE_SERVICE__PORT": "not a port", "FACETRACE_NONSENSE": "1", "HOME": "/"}, {}),
    ],
)
def test_same_answer_as_settings(
    environ: dict[str, str], overrides: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in [n for n in os.environ if n.upper().startswith("FACETRACE_")]:
        monkeypatch.delenv(name)
    for name, value in environ.items():
        monkeypatch.setenv(name, value)
    settings = Settings(**overrides)
    assert quick_settings(overrides, environ) == QuickSettings(
        data=settings.data, model=settings.pipeline.model
    )


@pytest.mark.parametrize(
    ("environ", "overrides"),
    [
        ({"FACETRACE_DETECT__MIN_FACE_PX": "5"}, {}),  # a value only Settings validates
        ({"facetrace_detect__min_face_px": "40"}, {}),  # even a valid one, in any case
        ({"FACETRACE_DATABASE_URL": "sqlite:///x.db"}, {}),
        ({"FACETRACE_PIPELINE": '{"model": "x"}'}, {}),  # a nested block as JSON
        ({"FACETRACE_PIPELINE__BACKEND": "dlib"}, {}),
        ({"FACETRACE_DATA": ""}, {}),  # empty: left to Settings
        ({"FACETRACE_PIPELINE__MODEL": ""}, {}),
        ({"FACETRACE_DATA": "/a", "facetrace_data": "/b"}, {}),  # which one wins: Settings
        ({}, {"database_url": "sqlite:///x.db"}),
        ({}, {"pipeline": {"model": "m", "backend": "dlib"}}),
        ({}, {"pipeline": {"model": ""}}),
        ({}, {"detect": {"detector": "cnn"}}),
    ],
)
def test_steps_aside_for_anything_more(environ: dict[str, str], overrides: dict[str, Any]) -> None:
    assert quick_settings(overrides, environ) is None


def test_default_data_dir_is_settings_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FACETRACE_DATA", raising=False)
    assert Settings().data == default_data_dir()
