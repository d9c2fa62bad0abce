"""Every REST router under ``/api/v1``, one per resource."""

from __future__ import annotations

from fastapi import APIRouter

from facetrace.api.routes import cases, collections, me, oversight, persons, probes, users, videos

router = APIRouter(prefix="/api/v1")
for module in (me, users, collections, cases, probes, videos, persons, oversight):
    router.include_router(module.router)
