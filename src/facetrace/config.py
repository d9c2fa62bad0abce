"""Settings, read once at the entry point (CLI callback or app lifespan) and passed down.

Environment variables use the prefix ``FACETRACE_`` and ``__`` for nesting, e.g.
``FACETRACE_DATA=/srv/facetrace``, ``FACETRACE_SEARCH__FPIR=0.001`` or, for a gallery
on a Milvus server, ``FACETRACE_INDEX_KIND=milvus FACETRACE_MILVUS__URI=http://host:19530
FACETRACE_MILVUS__TOKEN=user:password`` (dict settings take JSON:
``FACETRACE_MILVUS__INDEX_PARAMS='{"nlist": 4096}'``). The face pipeline is configured
the same way for the CLI and the service (``FACETRACE_PIPELINE__MODEL=/models/arcface.onnx``,
``FACETRACE_DETECT__MIN_FACE_PX=60``) and reaches the engine as :class:`PipelineOptions`,
built by :meth:`Settings.pipeline_options` only.
"""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass, replace
from enum import StrEnum
from pathlib import Path
from typing import Any

from pydantic import (
    BaseModel,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict

from facetrace.config_quick import default_data_dir


def settings_error(exc: ValidationError) -> str:
    """A settings validation error as one line naming the environment variables."""
    parts = []
    for error in exc.errors():
        name = "FACETRACE_" + "__".join(str(part).upper() for part in error["loc"])
        parts.append(f"{name}: {error['msg']}")
    return "invalid settings: " + "; ".join(parts)


class Backend(StrEnum):
    """Which runtime computes the dlib descriptor."""

    DLIB = "dlib"
    ONNX = "onnx"


class DetectorKind(StrEnum):
    """Which face detector a photo goes through: dlib's HOG (fast, frontal faces), dlib's
    CNN (MMOD, ~4.5x HOG's cost, finds turned, tilted and edge faces), or ``auto``: HOG
    first, the CNN only where it pays (no face found, a group photo, or regions HOG
    nearly accepted); see :mod:`facetrace.vision.detect`."""

    HOG = "hog"
    CNN = "cnn"
    AUTO = "auto"


class ScoreKind(StrEnum):
    """How a probe's candidates are scored: the raw cosine, or AS-norm (the index's top
    candidates re-scored against a cohort of strangers, then put on the cosine scale by
    the false-match tables: :mod:`facetrace.scoring.asnorm`)."""

    COSINE = "cosine"
    ASNORM = "asnorm"


@dataclass(frozen=True, slots=True)
class PipelineOptions:
    """The face pipeline's plain values, as :class:`facetrace.engine.FacePipeline` takes
    them: model (a registered id or an ArcFace-style ``.onnx`` path), backend of the dlib
    descriptor, smallest face side and largest image area the detector looks at, chips per
    inference batch, the model cache folder, and inference threads (0: ONNX Runtime's
    default, one per core); the face detector and the largest area the CNN detector looks
    at (it costs far more per pixel than HOG); and how the gallery scores candidates
    (``FACETRACE_SEARCH__SCORE``)."""

    model: str = "dlib-resnet-v1"
    backend: Backend = Backend.ONNX
    min_face_px: int = 40
    max_detect_pixels: int = 16_000_000
    detector: DetectorKind = DetectorKind.AUTO
    max_cnn_pixels: int = 4_000_000
    score: ScoreKind = ScoreKind.COSINE
    batch_size: int = 32
    cache_dir: Path | None = None
    threads: int = 0

    def for_worker(self) -> PipelineOptions:
        """The same options for one process of a pool: one inference thread each."""
        return replace(self, threads=1)


class SearchMode(StrEnum):
    """How a 1:N search answers (NIST's two uses of a face search).

    ``identification``: thresholded; only people scoring at least the threshold for the
    target false-positive identification rate are candidates, and "no candidate" is the
    answer when nobody does. ``investigation``: a fixed-length list of the most similar
    people, whatever their score, for a trained reviewer; no threshold, "no candidate"
    only when the gallery has nobody to list. At a fixed FPIR the threshold rises with the
    gallery, so a large gallery's threshold hides most of the people who are in it: the
    gallery chooses investigation above a size derived from its calibration
    (:func:`facetrace.calibration.choose_mode`).
    """

    IDENTIFICATION = "identification"
    INVESTIGATION = "investigation"


class ModeSetting(StrEnum):
    """``FACETRACE_SEARCH__MODE``: a search's mode (:class:`facetrace.types.SearchMode`),
    or ``auto``: chosen by the gallery's size."""

    AUTO = "auto"
    IDENTIFICATION = "identification"
    INVESTIGATION = "investigation"


@dataclass(frozen=True, slots=True)
class ModePolicy:
    """How the gallery chooses a search's mode, as plain values: ``mode`` forces one
    (None: by size); ``investigation_from`` is the gallery size (subjects) from which
    investigation is chosen (None: derived from the calibration's mated curve, where the
    threshold would miss more than ``max_fnir`` of the people who are in the gallery)."""

    mode: SearchMode | None = None
    investigation_from: int | None = None
    max_fnir: float = 0.85


class SearchSettings(BaseModel):
    """Defaults for searches; each can be overridden per request. ``score``: ``cosine``
    (default) or ``asnorm`` (see :class:`ScoreKind`: it lowers FNIR at FPIR 0.01 on LFW
    but not at 0.1 or 0.001, nor on AT&T; BENCHMARKS.md "accuracy").

    ``mode``: ``auto`` (default) lets the gallery choose identification (thresholded) or
    investigation (the ``k`` most similar people, no threshold) by its size:
    investigation from ``investigation_from_subjects`` subjects on or, when that is not
    set, from the size at which the threshold for ``fpir`` is estimated (the calibration
    table's mated curve) to miss more than ``identification_max_fnir`` of the people who
    are in the gallery. The default 0.85 keeps "no candidate" answers for galleries
    of up to about 16,000 one-photo subjects with the packaged table (the threshold
    then hides 85 % of the people who are there, nearly every one); 0.5 would switch at
    about 2,300 subjects, where a thresholded answer still finds half of them and an
    empty answer still means something."""

    k: int = Field(10, ge=1, le=1000)
    fpir: float = Field(0.01, gt=0, lt=1)
    min_quality: float = Field(0.3, ge=0, le=1)
    score: ScoreKind = ScoreKind.COSINE
    mode: ModeSetting = ModeSetting.AUTO
    investigation_from_subjects: int | None = Field(None, ge=1)
    identification_max_fnir: float = Field(0.85, gt=0, lt=1)

    def mode_policy(self) -> ModePolicy:
        """The settings' mode rules as the gallery takes them."""
        return ModePolicy(
            mode=None if self.mode == ModeSetting.AUTO else SearchMode(self.mode.value),
            investigation_from=self.investigation_from_subjects,
            max_fnir=self.identification_max_fnir,
        )


class DetectSettings(BaseModel):
    """Face detection (``FACETRACE_DETECT__...``): the detector (``hog``, ``cnn`` or
    ``auto``), the smallest face side in pixels, the largest image area looked at (bigger
    photos are scaled down for detection), and the CNN detector's own, smaller area."""

    detector: DetectorKind = DetectorKind.AUTO
    min_face_px: int = Field(40, ge=20, le=400)
    max_detect_pixels: int = Field(16_000_000, ge=100_000)
    max_cnn_pixels: int = Field(4_000_000, ge=100_000)


class PipelineSettings(BaseModel):
    """The embedding model (``FACETRACE_PIPELINE__...``): ``dlib-resnet-v1`` or the path of
    an ArcFace-style ``.onnx`` model (112x112 in, 512-d out), the dlib descriptor's
    runtime, chips per inference batch, and inference threads (0: one per core)."""

    model: str = Field("dlib-resnet-v1", min_length=1)
    backend: Backend = Backend.ONNX
    batch_size: int = Field(32, ge=1, le=1024)
    threads: int = Field(0, ge=0, le=256)


class VideoSettings(BaseModel):
    """Search by video (``FACETRACE_VIDEO__...``): frames looked at per second (3: a 720p
    video is analysed faster than real time on 2 cores; see BENCHMARKS.md), and for
    videos longer than ``long_after_s`` (CCTV) the lower ``long_sample_fps``; the limits
    a video must keep to (file size in MB, duration in seconds, frame area in pixels:
    3840x2160 by default), each refused with a clear error beyond them; how long a face
    may go unseen before its track closes, and the least usable faces a track needs;
    ``workers``: processes that find the frames' faces (0: one per core, 1: the analysing
    process itself)."""

    sample_fps: float = Field(3.0, gt=0, le=60)
    long_after_s: float = Field(600.0, gt=0)
    long_sample_fps: float = Field(1.0, gt=0, le=60)
    max_mb: float = Field(2048.0, gt=0)
    max_duration_s: float = Field(3 * 3600.0, gt=0)
    max_pixels: int = Field(3840 * 2160, ge=10_000)
    max_lost_s: float = Field(1.0, ge=0, le=60)
    min_usable_faces: int = Field(3, ge=1, le=1000)
    workers: int = Field(0, ge=0, le=64)


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
    # the audit chain's HMAC key (FACETRACE_AUDIT_KEY_FILE); default <data>/audit.key.
    # Keep it where the database's administrators cannot read it (docs/audit.md).
    audit_key_file: Path | None = None
    # a recipe of facetrace.index.factory; "auto" picks flat / hnsw / ivf-sq8 by size
    index_kind: str = "auto"
    search_threads: int = Field(1, ge=1, le=256)
    workers: int = 0
    search: SearchSettings = SearchSettings()
    detect: DetectSettings = DetectSettings()
    pipeline: PipelineSettings = PipelineSettings()
    video: VideoSettings = VideoSettings()
    milvus: MilvusSettings = Field(default_factory=MilvusSettings)

    def pipeline_options(self) -> PipelineOptions:
        """The one conversion of settings into the engine's options (CLI and service)."""
        return PipelineOptions(
            model=self.pipeline.model,
            backend=self.pipeline.backend,
            min_face_px=self.detect.min_face_px,
            max_detect_pixels=self.detect.max_detect_pixels,
            detector=self.detect.detector,
            max_cnn_pixels=self.detect.max_cnn_pixels,
            score=self.search.score,
            batch_size=self.pipeline.batch_size,
            cache_dir=self.data / "models",
            threads=self.pipeline.threads,
        )

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
    in ``<data>/service-secret`` (see :mod:`facetrace.service.accounts`).
    """

    environment: str = Field(default="development", pattern="^(development|production)$")
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    secure_cookies: bool = False
    session_hours: float = Field(default=12.0, gt=0, le=24 * 30)
    # POST /login from one client address that did not log anyone in (wrong passwords,
    # token-less posts); successful logins give their count back
    login_per_minute: int = Field(default=30, ge=1)
    # failed passwords for one account from one address before each further attempt
    # waits 1, 2, 4 ... seconds (up to login_backoff_max_s); from addresses the account
    # has not logged in from, login_account_failures failures in all (any address) start
    # the same back-off for the account. Correct passwords never lock anyone out.
    login_free_failures: int = Field(default=5, ge=1)
    login_account_failures: int = Field(default=20, ge=1)
    login_backoff_max_s: float = Field(default=3600.0, gt=0)
    # reverse proxies whose X-Forwarded-For / X-Forwarded-Proto are believed (addresses
    # or networks, e.g. ["10.0.0.5", "10.1.0.0/16"]); none by default, so a client
    # cannot claim another address by sending the header itself
    trusted_proxies: list[str] = Field(default_factory=list)
    search_per_minute: int = Field(default=30, ge=1)
    # every POST that runs the face pipeline or searches counts (an upload that is then
    # searched counts twice): per account, and per client address
    search_per_minute_per_address: int = Field(default=120, ge=1)
    max_upload_mb: float = Field(default=20.0, gt=0)
    # admission control before any photo is decoded (docs/security.md): at most
    # decode_max_photos probe photos decoded or analysed at once (None: one per
    # inference worker, see decode_photos), holding at most decode_max_megapixels
    # decoded pixels together (counted from the header; a JPEG is decoded at 1/2, 1/4 or
    # 1/8 of its side when the detector needs no more); a request that finds
    # decode_max_waiting others waiting, or waits decode_wait_s, gets a 503
    decode_max_photos: int | None = Field(default=None, ge=1)
    decode_max_megapixels: float = Field(default=100.0, gt=0)
    # 64: 32 clients of one office searching at once queue rather than get 503 (issue 10)
    decode_max_waiting: int = Field(default=64, ge=0)
    decode_wait_s: float = Field(default=60.0, gt=0)
    # a video probe is read into memory and kept with its case: well below video.max_mb
    max_video_mb: float = Field(default=500.0, gt=0)
    max_import_mb: float = Field(default=500.0, gt=0)
    max_import_files: int = Field(default=20_000, ge=1)
    # what one department's unfinished imports (queued, running, interrupted) may hold
    # on disk together; an upload is deleted when its import ends
    department_import_mb: float = Field(default=2000.0, gt=0)
    # photos per committed batch of an import: searchable, audited and resumable together
    import_batch: int = Field(default=32, ge=1, le=1000)
    # processes that analyse probes (detection, landmarks, embedding) for searches, each
    # with its own pipeline; None: one per core. 0: in the server process, one at a time
    inference_workers: int | None = Field(default=None, ge=0, le=256)
    # niceness added to an import's pipeline processes: when a search's worker and an
    # import's both want a core, the scheduler gives it to the search (about 9 to 1 at
    # 10), so searches keep their idle latency and an import uses what is left
    import_nice: int = Field(default=10, ge=0, le=19)
    probe_retention_days: int = Field(default=365, ge=1)
    import_root: Path | None = None  # where uploaded manifests may name photos

    def inference_worker_count(self) -> int:
        """Processes that analyse probes: ``inference_workers``, or one per core."""
        if self.inference_workers is None:
            return os.cpu_count() or 1
        return self.inference_workers

    def decode_photos(self) -> int:
        """Probe photos decoded or analysed at once: ``decode_max_photos``, or one per
        inference worker (each analyses one photo at a time: more would wait holding
        their decoded pixels, fewer would leave workers idle), at least one (the
        server's own thread when ``inference_workers`` is 0)."""
        if self.decode_max_photos is not None:
            return self.decode_max_photos
        return max(1, self.inference_worker_count())

    @field_validator("trusted_proxies")
    @classmethod
    def _networks(cls, value: list[str]) -> list[str]:
        for item in value:
            try:
                ipaddress.ip_network(item.strip(), strict=False)
            except ValueError as exc:
                raise ValueError(f"{item!r} is not an IP address or network") from exc
        return [item.strip() for item in value]

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
