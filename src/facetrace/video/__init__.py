"""Search by video: sampled frames -> faces -> tracks -> merged persons -> templates.

One module per stage, each usable alone: :mod:`shots` (cut detection), :mod:`faces`
(detect and embed sampled frames), :mod:`track` (frame-to-frame association),
:mod:`merge` (fragments of one person), :mod:`keyframes` (best frames and the template)
and :mod:`analyse` (the orchestration, with progress and cancel). Nothing here knows of
SQL, the index or HTTP: the gallery and the service search the templates it returns.
"""

from facetrace.video.analyse import (
    Person,
    VideoAnalysis,
    VideoOptions,
    VideoProgress,
    analyse_video,
    video_limits,
)

__all__ = [
    "Person",
    "VideoAnalysis",
    "VideoOptions",
    "VideoProgress",
    "analyse_video",
    "video_limits",
]
