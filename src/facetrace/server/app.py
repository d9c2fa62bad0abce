"""The app factory, the composition root: REST API under ``/api/v1`` plus the
server-rendered web UI, with the state built in the lifespan."""

from __future__ import annotations

import logging
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.staticfiles import StaticFiles

import facetrace.web
from facetrace import __version__
from facetrace.api.router import router as api_router
from facetrace.config import ServiceConfig
from facetrace.gallery.owner import SERVICE, OwnerLock
from facetrace.imaging import DecodeBudget
from facetrace.index import set_search_threads
from facetrace.inference import ProbeAnalyser
from facetrace.server import docs, health, problems
from facetrace.server.proxies import Proxies, parse_networks
from facetrace.server.ratelimit import LoginThrottle, RateLimiter
from facetrace.server.state import ServiceState
from facetrace.service import audit
from facetrace.service.accounts import load_secret
from facetrace.service.audit_key import key_path, load_key
from facetrace.service.gallery_port import GalleryPort
from facetrace.service.imports import ImportJobs
from facetrace.service.video_port import VideoPort
from facetrace.service.videos import VideoJobs
from facetrace.store.db import Database, sqlite_url
from facetrace.web.render import make_templates
from facetrace.web.routes import router as web_router

log = logging.getLogger(__name__)

CSP = (
    "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
    "frame-ancestors 'none'; form-action 'self'; base-uri 'none'"
)
HSTS = "max-age=31536000"
WEB_DIR = Path(facetrace.web.__file__).resolve().parent


def build_state(settings: ServiceConfig) -> ServiceState:
    """Take the data directory's owner lock (refused while another service or a writing
    CLI command holds it), open the database (migrating it), the secret and the gallery
    port. The service and the gallery share the one
    :class:`~facetrace.store.db.Database`."""
    data_dir = settings.data
    health.require_data_dir(data_dir)
    owner = OwnerLock(data_dir, command=SERVICE, port=settings.service.port).acquire()
    try:
        return _build_state(settings, owner)
    except BaseException:
        owner.release()
        raise


def _build_state(settings: ServiceConfig, owner: OwnerLock) -> ServiceState:
    data_dir = settings.data
    audit_key = load_key(key_path(data_dir, settings.audit_key_file))
    database = Database.open(settings.database_url or sqlite_url(data_dir))
    try:
        audit.bind(database, audit_key)
    except BaseException:
        database.dispose()
        raise
    svc = settings.service
    budget = DecodeBudget(
        max_pixels=int(svc.decode_max_megapixels * 1_000_000),
        max_photos=svc.decode_photos(),
        max_waiting=svc.decode_max_waiting,
        timeout=svc.decode_wait_s,
    )
    pipeline = settings.pipeline_options()
    gallery = GalleryPort(
        data_dir,
        database=database,
        max_upload_bytes=int(svc.max_upload_mb * 1024 * 1024),
        index_kind=settings.index_kind,
        index_params=settings.index_params(),
        pipeline=pipeline,
        import_nice=svc.import_nice,
    )
    analyser = ProbeAnalyser(
        lambda: gallery.gallery().pipeline,  # the gallery's options, models cache included
        limits=gallery.limits,
        budget=budget,
        workers=svc.inference_worker_count(),
        # a JPEG is decoded no larger than the detector looks at (libjpeg's 1/2, 1/4, 1/8)
        max_decoded_pixels=pipeline.max_detect_pixels,
        lock=gallery.pipeline_lock,
    )
    imports = ImportJobs(
        root=data_dir / "imports",
        sessions=database.sessions,
        gallery=gallery,
        photo_store=data_dir / "photos",
        workers=settings.workers or os.cpu_count() or 1,
        batch_size=svc.import_batch,
    )
    imports.recover()
    videos = VideoJobs(
        sessions=database.sessions,
        analyser=VideoPort(gallery.gallery, settings.video),
        work_dir=data_dir / "video-uploads",
        max_bytes=int(svc.max_video_mb * 1024 * 1024),
    )
    videos.recover()
    return ServiceState(
        settings=settings,
        database=database,
        secret=load_secret(data_dir),
        gallery=gallery,
        analyser=analyser,
        imports=imports,
        login_limiter=RateLimiter(limit=svc.login_per_minute),
        login_throttle=LoginThrottle(
            free=svc.login_free_failures,
            account_free=svc.login_account_failures,
            max_wait=svc.login_backoff_max_s,
        ),
        search_limiter=RateLimiter(limit=svc.search_per_minute),
        search_address_limiter=RateLimiter(limit=svc.search_per_minute_per_address),
        decode_budget=budget,
        templates=make_templates(WEB_DIR / "templates"),
        data_dir=data_dir,
        owner=owner,
        videos=videos,
        proxies=Proxies(parse_networks(svc.trusted_proxies)),
    )


def create_app(settings: ServiceConfig) -> FastAPI:
    """The facetrace service for ``settings``; state is built when the app starts."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        set_search_threads(settings.search_threads)
        state = build_state(settings)
        app.state.service = state
        app.state.index_warmup = health.IndexWarmup(state.gallery.gallery)
        app.state.index_warmup.start()
        log.info("facetrace service ready (data %s)", state.data_dir)
        try:
            yield
        finally:
            state.imports.shutdown()
            state.videos.shutdown()
            state.analyser.close()
            state.gallery.close()
            state.database.dispose()
            state.owner.release()  # last: the index is saved, nobody writes any more

    app = FastAPI(
        title="facetrace",
        version=__version__,
        description="Face search for identifying the dead and tracing the missing. "
        "Results are candidates for human review, never identifications.",
        openapi_url="/api/v1/openapi.json",
        docs_url=None,  # served by server/docs.py from the installed package
        redoc_url=None,
        lifespan=lifespan,
    )
    app.include_router(health.router)
    app.include_router(api_router)
    app.include_router(web_router)
    app.mount("/static", StaticFiles(directory=WEB_DIR / "static"), name="static")
    problems.install(app)
    docs.install(app)

    proxies = Proxies(parse_networks(settings.service.trusted_proxies))

    @app.middleware("http")
    async def security_headers(request: Request, call_next: Any) -> Response:
        # Who is asking and over what, decided once (server/proxies.py) for the rate
        # limits, the audit log and the cookies.
        request.state.client_address = proxies.client(request)
        request.state.https = proxies.https(request)
        # Pages, the API documentation included, carry no inline script and load
        # nothing from elsewhere.
        response: Response = await call_next(request)
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Referrer-Policy", "no-referrer")
        response.headers.setdefault("X-Frame-Options", "DENY")
        response.headers.setdefault("Content-Security-Policy", CSP)
        if request.state.https:  # reached over HTTPS: browsers keep to it from now on
            response.headers.setdefault("Strict-Transport-Security", HSTS)
        return response

    return app
