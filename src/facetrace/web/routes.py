"""All web pages, grouped by area."""

from __future__ import annotations

from fastapi import APIRouter

from facetrace.web import admin, auth, casework, images, oversight

router = APIRouter(include_in_schema=False)
for module in (auth, casework, admin, oversight, images):
    router.include_router(module.router)
