"""The video pipeline as the service uses it: :class:`VideoPort` implements
:class:`facetrace.service.videos.VideoAnalyser` on the gallery's face pipeline, so a
person's template is comparable with the gallery's vectors.

The video path detects with its own CNN detector and landmark predictor, in worker
processes of its own (:class:`~facetrace.video.workers.FrameWorkers`, one per core, kept
between videos and started on the first one; ``FACETRACE_VIDEO__WORKERS=1`` analyses in
the one video worker thread instead), with the gallery's pipeline options, so photo
searches go on while a video is analysed.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from facetrace.config import VideoSettings
from facetrace.errors import Cancelled, ImageError, NoFaceFound
from facetrace.imaging import inspect_video
from facetrace.service.videos import Progress, VideoCheck, VideoPersons, person_face


def _renamed(exc: ImageError, path: Path, source: str) -> ImageError:
    """The error naming the user's file, never the server's temporary one (FFmpeg's own
    messages quote the path they opened)."""
    return type(exc)(source, exc.reason.replace(str(path), source))


class VideoPort:
    """Args: gallery: a callable returning the opened gallery (the service's, shared);
    settings: the installation's video settings (sampling and limits)."""

    def __init__(self, gallery: Callable[[], Any], settings: VideoSettings) -> None:
        self._gallery = gallery
        self.settings = settings
        self._finder: Any = None

    def _limits(self) -> Any:
        from facetrace.video import video_limits

        return video_limits(self.settings)

    def close(self) -> None:
        """Stop the worker processes (a later video starts them again)."""
        if self._finder is not None:
            self._finder.close()

    def check(self, path: Path, *, source: str) -> VideoCheck:
        """Refuse what cannot be analysed: not a video, truncated, no video stream, an
        unsupported codec, over the size, duration or frame-area limits."""
        try:
            info = inspect_video(
                path, limits=self._limits(), max_duration_s=self.settings.max_duration_s
            )
        except ImageError as exc:
            raise _renamed(exc, path, source) from exc
        return VideoCheck(info.width, info.height, info.duration_s, info.codec)

    def persons(
        self,
        path: Path,
        *,
        source: str,
        progress: Callable[[Progress], None],
        cancelled: Callable[[], bool],
    ) -> VideoPersons:
        """Analyse the video; one :class:`FoundFace` per person (template vector, the best
        frame's box, landmarks, quality and time; intervals and key frames in ``extra``)."""
        from facetrace.video import VideoOptions, analyse_video
        from facetrace.video.analyse import make_finder

        pipeline = self._gallery().pipeline
        options = VideoOptions.from_settings(self.settings)
        if self._finder is None:
            self._finder = make_finder(pipeline, options)
        try:
            result = analyse_video(
                path,
                pipeline,
                options=options,
                limits=self._limits(),
                progress=lambda p: progress(Progress(p.video_s, p.duration_s, p.fps, p.eta_s)),
                cancelled=cancelled,
                finder=self._finder,
            )
        except ImageError as exc:
            raise _renamed(exc, path, source) from exc
        except (NoFaceFound, Cancelled) as exc:
            raise type(exc)(str(exc).replace(str(path), source)) from exc
        return VideoPersons(
            result.info.width,
            result.info.height,
            tuple(person_face(p) for p in result.persons),
            people=result.persons,
            options=options,
        )
