"""The two settings a quick command needs, read without pydantic when that is certain.

:class:`facetrace.config.Settings` validates the whole environment through
pydantic-settings, about a third of a small command's start-up. ``facetrace status``
needs only the data directory and the model. :func:`quick_settings` returns them when
the environment and the command's options set nothing else that ``Settings`` reads, and
``None`` otherwise: then the caller builds ``Settings``, which validates every value
(a bad ``FACETRACE_DETECT__MIN_FACE_PX`` still fails the command, on either route).

Stdlib only (plus platformdirs): ``facetrace status`` imports this, never pydantic.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import platformdirs

ENV_PREFIX = "FACETRACE_"
#: the top-level fields of :class:`facetrace.config.Settings` (tests/test_config.py
#: checks this against the class): a variable under another name is ignored by
#: ``Settings`` (``extra="ignore"``), so here too
SETTINGS_FIELDS = frozenset(
    {"data", "database_url", "audit_key_file", "index_kind", "search_threads", "workers",
     "search", "detect", "pipeline", "video", "milvus"}
)  # fmt: skip
DEFAULT_MODEL = "dlib-resnet-v1"  # PipelineSettings.model's default


def default_data_dir() -> Path:
    """The per-user data directory (``~/.local/share/facetrace`` on Linux)."""
    return Path(platformdirs.user_data_dir("facetrace", appauthor=False))


@dataclass(frozen=True, slots=True)
class QuickSettings:
    """The data directory and the embedding model, as ``Settings`` would give them."""

    data: Path
    model: str


def quick_settings(
    overrides: Mapping[str, Any], environ: Mapping[str, str] | None = None
) -> QuickSettings | None:
    """The data directory and model from ``overrides`` (the CLI options, as handed to
    ``Settings(**overrides)``) and ``environ`` (default ``os.environ``), or ``None`` when
    anything else that ``Settings`` reads is set, or a value is one this reader does not
    validate itself (empty, or given twice in different cases): the caller must then
    build ``Settings``.

    Names match as pydantic-settings matches them: case-insensitively, options winning
    over the environment."""
    env = os.environ if environ is None else environ
    seen: dict[str, str] = {}
    for name, value in env.items():
        upper = name.upper()
        if not upper.startswith(ENV_PREFIX):
            continue
        field = upper[len(ENV_PREFIX) :].lower()
        if field.split("__", 1)[0] not in SETTINGS_FIELDS:
            continue  # Settings ignores it too
        if field not in ("data", "pipeline__model") or not value or field in seen:
            return None
        seen[field] = value
    data = Path(seen["data"]) if "data" in seen else None
    model = seen.get("pipeline__model", DEFAULT_MODEL)
    for key, value in overrides.items():
        if key == "data" and isinstance(value, Path):
            data = value
        elif key == "pipeline" and isinstance(value, Mapping) and set(value) == {"model"}:
            if not isinstance(value["model"], str) or not value["model"]:
                return None
            model = value["model"]
        else:
            return None
    return QuickSettings(data=default_data_dir() if data is None else data, model=model)
