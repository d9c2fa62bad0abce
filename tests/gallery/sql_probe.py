"""Run in an ingest pool worker: the worker's analysis of a photo, and the SQL modules the
worker has imported by then (none, for the worker's start-up to stay short)."""

from __future__ import annotations

import sys

from facetrace.engine import FacePipeline
from facetrace.gallery.photo import Analysed, PhotoJob, Refused, analyse_photo
from facetrace.imaging import ImageLimits


def analyse_and_report(
    job: PhotoJob, pipeline: FacePipeline, limits: ImageLimits
) -> tuple[Analysed | Refused, list[str]]:
    result = analyse_photo(job, pipeline, limits)
    sql = sorted(m for m in sys.modules if m.split(".")[0] == "sqlalchemy" or "store" in m)
    return result, sql
