"""What the app holds while it runs, built once in the lifespan and kept on ``app.state``."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from fastapi.templating import Jinja2Templates
from sqlalchemy.orm import Session, sessionmaker

from facetrace.config import ServiceConfig
from facetrace.gallery.owner import OwnerLock
from facetrace.imaging import DecodeBudget
from facetrace.inference import ProbeAnalyser
from facetrace.server.proxies import Proxies
from facetrace.server.ratelimit import ClientLimits, LoginThrottle, RateLimiter
from facetrace.service.gallery_port import GalleryPort
from facetrace.service.imports import ImportJobs, ImportLimits
from facetrace.service.searches import Searcher
from facetrace.service.videos import VideoJobs
from facetrace.store.db import Database


@dataclass
class ServiceState:
    """Everything a request needs besides itself."""

    settings: ServiceConfig
    database: Database
    secret: bytes
    gallery: GalleryPort
    analyser: ProbeAnalyser  # the probes' model runs, on the service's worker processes
    imports: ImportJobs
    login_limiter: RateLimiter
    login_throttle: LoginThrottle
    search_limiter: RateLimiter
    search_address_limiter: RateLimiter
    decode_budget: DecodeBudget
    templates: Jinja2Templates
    data_dir: Path
    videos: VideoJobs
    owner: OwnerLock  # held while the service runs: the data directory is its alone
    proxies: Proxies

    def searcher(self) -> Searcher:
        """What a search runs on: the opened gallery (opened here on first use, so call
        it from a worker thread), the probe analyser and the search settings."""
        search = self.settings.search
        return Searcher(
            gallery=self.gallery.gallery(),
            analyser=self.analyser,
            k=search.k,
            fpir=search.fpir,
            min_quality=search.min_quality,
            mode_policy=search.mode_policy(),
        )

    def search_limits(self, client: str) -> ClientLimits:
        """The model-run and search limits for a request from ``client``: per account
        and per address, checked by the service before any photo is decoded."""
        return ClientLimits(self.search_limiter, self.search_address_limiter, client)

    @property
    def sessions(self) -> sessionmaker[Session]:
        """Sessions on the one database the service and the gallery share."""
        return self.database.sessions

    @property
    def max_upload(self) -> int:
        """Largest probe photo, in bytes."""
        return int(self.settings.service.max_upload_mb * 1024 * 1024)

    @property
    def max_video(self) -> int:
        """Largest probe video, in bytes."""
        return int(self.settings.service.max_video_mb * 1024 * 1024)

    @property
    def max_import(self) -> int:
        """Largest import upload (and unpacked size), in bytes."""
        return int(self.settings.service.max_import_mb * 1024 * 1024)

    @property
    def import_limits(self) -> ImportLimits:
        """What an import upload may hold."""
        svc = self.settings.service
        return ImportLimits(
            max_files=svc.max_import_files,
            max_bytes=self.max_import,
            import_root=svc.import_root,
            department_bytes=int(svc.department_import_mb * 1024 * 1024),
        )
