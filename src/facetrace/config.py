"""Settings, read once at the entry point (CLI callback or app lifespan) and passed down.

Environment variables use the prefix ``FACETRACE_`` and ``__`` for nesting, e.g.
``FACETRACE_DATA=/srv/facetrace`` or ``FACETRACE_SEARCH__FPIR=0.001``.
"""

from __future__ import annotations

from pathlib import Path

import platformdirs
from pydantic import BaseModel, Field
from pydantic_settings import BaseSettings, SettingsConfigDict


def default_data_dir() -> Path:
    """The per-user data directory (``~/.local/share/facetrace`` on Linux)."""
    return Path(platformdirs.user_data_dir("facetrace", appauthor=False))


class SearchSettings(BaseModel):
    """Defaults for searches; each can be overridden per request."""

    k: int = Field(10, ge=1, le=1000)
    fpir: float = Field(0.01, gt=0, lt=1)
    min_quality: float = Field(0.3, ge=0, le=1)


class DetectSettings(BaseModel):
    """Face detection defaults."""

    min_face_px: int = Field(40, ge=20, le=400)
    max_detect_pixels: int = Field(16_000_000, ge=100_000)


class Settings(BaseSettings):
    """All configuration of one facetrace installation."""

    model_config = SettingsConfigDict(
        env_prefix="FACETRACE_", env_nested_delimiter="__", extra="ignore"
    )

    data: Path = Field(default_factory=default_data_dir)
    database_url: str | None = None
    # a recipe of facetrace.index.factory; "auto" picks flat / hnsw / ivf-sq8 by size
    index_kind: str = "auto"
    workers: int = 0
    search: SearchSettings = SearchSettings()
    detect: DetectSettings = DetectSettings()
