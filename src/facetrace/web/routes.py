"""All web pages, grouped by area."""

from __future__ import annotations

from fastapi import APIRouter

from facetrace.web import admin, auth, casework, duplicates, images, oversight, persons, videos

router = APIRouter(include_in_schema=False)
for module in (auth, casework, persons, admin, duplicates, oversight, images, videos):
    router.include_router(module.router)
