"""Settings, read once at the entry point (CLI callback or app lifespan) and passed down.

Environment variables use the prefix ``FACETRACE_`` and ``__`` for nesting, e.g.
``FACETRACE_DATA=/srv/facetrace``, ``FACETRACE_SEARCH__FPIR=0.001`` or, for a gallery
on a Milvus server, ``FACETRACE_INDEX_KIND=milvus FACETRACE_MILVUS__URI=http://host:19530
FACETRACE_MILVUS__TOKEN=user:password`` (dict settings take JSON:
``FACETRACE_MILVUS__INDEX_PARAMS='{"nlist": 4096}'``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import platformdirs
from pydantic import BaseModel, Field, SecretStr, ValidationError, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


def settings_error(exc: ValidationError) -> str:
    """A settings validation error as one line naming the environment variables."""
    parts = []
    for error in exc.errors():
        name = "FACETRACE_" + "__".join(str(part).upper() for part in error["loc"])
        parts.append(f"{name}: {error['msg']}")
    return "invalid settings: " + "; ".join(parts)


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


class MilvusSettings(BaseModel):
    """Where the vectors live when ``index_kind`` is ``milvus`` (``FACETRACE_MILVUS__...``).

    ``uri`` is a Milvus Lite file (``/srv/facetrace/vectors.db``) or a server
    (``http://host:19530``); ``token`` is ``user:password`` or an API key: it is kept
    secret in memory (never printed, never written to the index manifest), so supply it
    at every start. ``index_type``, ``index_params``, ``num_partitions`` and
    ``shards_num`` apply when the collection is created; ``search_params`` and
    ``consistency_level`` go with every search; ``timeout`` bounds every request. See
    ``docs/milvus.md`` for values at 10^9 faces.
    """

    uri: str | None = None
    token: SecretStr | None = None
    db_name: str = ""
    collection: str = Field("faces", pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    index_type: str = "FLAT"
    index_params: dict[str, Any] = Field(default_factory=dict)
    search_params: dict[str, Any] = Field(default_factory=dict)
    num_partitions: int = Field(64, ge=1, le=1024)
    shards_num: int = Field(1, ge=1, le=16)
    consistency_level: str = Field("Strong", pattern="^(Strong|Bounded|Session|Eventually)$")
    timeout: float = Field(10.0, gt=0, le=600)
    # TLS (pymilvus's names): one-way with secure + server_pem_path or ca_pem_path,
    # two-way with client_pem_path + client_key_path as well
    secure: bool = False
    server_pem_path: str = ""
    server_name: str = ""
    ca_pem_path: str = ""
    client_pem_path: str = ""
    client_key_path: str = ""

    def index_params_for_gallery(self) -> dict[str, Any]:
        """The :class:`~facetrace.index.milvus.MilvusIndex` parameters (``uri`` only if set)."""
        params: dict[str, Any] = {
            "collection": self.collection,
            "db_name": self.db_name,
            "index_type": self.index_type,
            "index_params": dict(self.index_params),
            "search_params": dict(self.search_params),
            "num_partitions": self.num_partitions,
            "shards_num": self.shards_num,
            "consistency_level": self.consistency_level,
            "timeout": self.timeout,
        }
        for name in (
            "secure",
            "server_pem_path",
            "server_name",
            "ca_pem_path",
            "client_pem_path",
            "client_key_path",
        ):
            if getattr(self, name):
                params[name] = getattr(self, name)
        if self.uri:
            params["uri"] = self.uri
        if self.token is not None:
            params["token"] = self.token.get_secret_value()
        return params


class Settings(BaseSettings):
    """All configuration of one facetrace installation."""

    model_config = SettingsConfigDict(
        env_prefix="FACETRACE_", env_nested_delimiter="__", extra="ignore"
    )

    data: Path = Field(default_factory=default_data_dir)
    database_url: str | None = None
    # a recipe of facetrace.index.factory; "auto" picks flat / hnsw / ivf-sq8 by size
    index_kind: str = "auto"
    search_threads: int = Field(1, ge=1, le=256)
    workers: int = 0
    search: SearchSettings = SearchSettings()
    detect: DetectSettings = DetectSettings()
    milvus: MilvusSettings = Field(default_factory=MilvusSettings)

    def index_params(self) -> dict[str, Any]:
        """Parameters for the configured ``index_kind`` (the Milvus connection for
        ``milvus``; the FAISS kinds take theirs from the recipe name)."""
        if self.index_kind.strip().lower() == "milvus":
            return self.milvus.index_params_for_gallery()
        return {}


# --- investigator service (issue 4) ---------------------------------------------------


class ServiceSettings(BaseModel):
    """The web service: where it listens, how it limits abuse, how long probes are kept.

    The session secret is not configured here: it is generated on first start and kept
    in ``<data>/service-secret`` (see :mod:`facetrace.accounts`).
    """

    environment: str = Field(default="development", pattern="^(development|production)$")
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    secure_cookies: bool = False
    session_hours: float = Field(default=12.0, gt=0, le=24 * 30)
    login_per_minute: int = Field(default=10, ge=1)
    search_per_minute: int = Field(default=30, ge=1)
    max_upload_mb: float = Field(default=20.0, gt=0)
    max_import_mb: float = Field(default=500.0, gt=0)
    max_import_files: int = Field(default=20_000, ge=1)
    probe_retention_days: int = Field(default=365, ge=1)
    import_root: Path | None = None  # where uploaded manifests may name photos

    @model_validator(mode="after")
    def _safe_outside_development(self) -> ServiceSettings:
        # Plain-HTTP cookies or a public bind without TLS leak sessions; refuse them in production.
        if self.environment == "production" and not self.secure_cookies:
            raise ValueError(
                "FACETRACE_SERVICE__SECURE_COOKIES must be true in production (serve behind HTTPS)"
            )
        return self


class ServiceConfig(Settings):
    """:class:`Settings` plus the service block (``FACETRACE_SERVICE__...``)."""

    service: ServiceSettings = Field(default_factory=ServiceSettings)
