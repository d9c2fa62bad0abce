"""The figures of an evaluation, written beside its JSON: a DET curve (false negatives
against false positives, both on log axes) and, for 1:N, a CMC curve (hit rate against
rank), each as PNG and SVG, one line per lever (:class:`facetrace.eval.curves.LeverCurves`
as ``levers`` of the result).

matplotlib is imported inside :func:`write_figures` only, with its Agg backend (no display),
so that the CLI's start-up and every other command stay free of it. In the SVG each lever's
line is the group ``<g id="lever-N">`` (N its place in ``levers``), for tools and tests.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from facetrace.errors import InvalidRequest

FORMATS = ("png", "svg")
#: the false-alarm rates investigators are quoted; drawn as dotted guides on the DET
OPERATING_POINTS = (0.1, 0.01, 0.001)
LINESTYLES = ("-", "--", "-.", ":")
MARKERS = ("o", "s", "^", "D")


def figure_paths(output: Path, *, with_cmc: bool) -> list[Path]:
    """The files written beside ``output`` (the JSON): ``NAME-det.png``, ``NAME-det.svg``
    and, with ``with_cmc``, ``NAME-cmc.png`` and ``NAME-cmc.svg``."""
    kinds = ["det", "cmc"] if with_cmc else ["det"]
    return [output.with_name(f"{output.stem}-{k}.{f}") for k in kinds for f in FORMATS]


def check_output(output: Path, *, with_cmc: bool) -> None:
    """Refuse, before an evaluation runs, an output it could not write: a folder, a file
    in a folder that does not exist or cannot be written, or a figure's name taken by a
    folder. Raises :class:`InvalidRequest` naming the path."""
    for path in [output, *figure_paths(output, with_cmc=with_cmc)]:
        if path.is_dir():
            raise InvalidRequest(f"{path}: is a folder; give a file name such as eval.json")
    parent = output.parent
    if not parent.exists():
        raise InvalidRequest(f"{output}: the folder {parent} does not exist")
    if not parent.is_dir():
        raise InvalidRequest(f"{output}: {parent} is not a folder")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise InvalidRequest(f"{output}: the folder {parent} cannot be written")


def write_figures(result: dict[str, Any], output: Path, *, title: str) -> list[Path]:
    """Draw ``result["levers"]`` beside ``output``; returns the files written.

    The DET's axes are FPIR and FNIR for a 1:N result (``protocol`` open-set-1:N), FMR and
    FNMR for 1:1 pairs; a CMC is drawn when the levers have one. A false-negative rate of
    0 cannot sit on a log axis: it is drawn at half of one probe's share (the floor noted
    on the axis). Each file is written to a temporary name and renamed, so a failure
    leaves no half-written figure; raises :class:`InvalidRequest` when one cannot be
    written.
    """
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt
    from matplotlib.ticker import PercentFormatter

    levers: Sequence[dict[str, Any]] = result.get("levers") or []
    one_to_n = str(result.get("protocol", "")).startswith("open-set")
    with_cmc = any(lever.get("cmc") for lever in levers)
    positives = int(result.get("mated_probes") or result.get("pairs") or 1)
    floor = 0.5 / max(1, positives)
    written: list[Path] = []
    paths = iter(figure_paths(output, with_cmc=with_cmc))
    fig, ax = plt.subplots(figsize=(7, 5.5))
    try:
        for i, lever in enumerate(levers):
            det = lever.get("det") or {}
            xs = list(det.get("false_positive") or [])
            ys = [max(floor, y) for y in det.get("false_negative") or []]
            (line,) = ax.step(
                xs,
                ys,
                where="post",
                label=_legend(lever),
                linewidth=2 if lever.get("configured") else 1.3,
            )
            line.set_gid(f"lever-{i}")
        fp, fn = ("FPIR", "FNIR") if one_to_n else ("FMR", "FNMR")
        for point in OPERATING_POINTS:
            ax.axvline(point, color="0.75", linestyle=":", linewidth=1)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel(
            f"{fp}: share of searches of people not in the gallery that return someone"
            if one_to_n
            else f"{fp}: share of different-person pairs accepted"
        )
        ax.set_ylabel(
            f"{fn}: share of people in the gallery missed\n(0 drawn at {floor:.1g})"
            if one_to_n
            else f"{fn}: share of same-person pairs rejected\n(0 drawn at {floor:.1g})"
        )
        ax.set_ylim(top=1.05)
        ax.grid(True, which="major", alpha=0.3)
        ax.set_title(f"DET: {title}", fontsize=10)
        if levers:
            ax.legend(fontsize=8, loc="best")
        fig.tight_layout()
        written += _save(fig, paths)
    finally:
        plt.close(fig)
    if with_cmc:
        fig, ax = plt.subplots(figsize=(7, 5.5))
        try:
            for i, lever in enumerate(levers):
                hits = list(lever.get("cmc") or [])
                (line,) = ax.plot(
                    range(1, len(hits) + 1),
                    hits,
                    marker=MARKERS[i % len(MARKERS)],
                    label=_legend(lever),
                    **_style(i, lever),
                )
                line.set_gid(f"lever-{i}")
            depth = max(len(lever.get("cmc") or []) for lever in levers)
            lowest = min(min(lever.get("cmc") or [1.0]) for lever in levers)
            ax.set_xticks(range(1, depth + 1))
            ax.set_ylim(max(0.0, lowest - 0.05), 1.005)
            ax.yaxis.set_major_formatter(PercentFormatter(1.0))
            ax.set_xlabel("rank: the mate is among the first N candidates")
            ax.set_ylabel("hit rate of people in the gallery")
            ax.grid(True, alpha=0.3)
            ax.set_title(f"CMC: {title}", fontsize=10)
            ax.legend(fontsize=8, loc="lower right")
            fig.tight_layout()
            written += _save(fig, paths)
        finally:
            plt.close(fig)
    return written


def _style(i: int, lever: dict[str, Any]) -> dict[str, Any]:
    """A line style of its own for each lever, so lines that coincide stay visible; the
    configuration the command ran with is drawn thicker."""
    return {
        "linestyle": LINESTYLES[i % len(LINESTYLES)],
        "linewidth": 2.4 if lever.get("configured") else 1.5,
    }


def _legend(lever: dict[str, Any]) -> str:
    label = str(lever.get("label", "?"))
    fnir = lever.get("fnir_at_fpir_0.01")
    extra = [f"FNIR@FPIR 0.01 {100 * fnir:.1f}%"] if isinstance(fnir, float) else []
    if isinstance(lever.get("rank1"), float):
        extra.append(f"rank-1 {100 * lever['rank1']:.1f}%")
    if isinstance(lever.get("accuracy"), float):
        extra.append(f"accuracy {100 * lever['accuracy']:.2f}%")
    mark = " (as run)" if lever.get("configured") else ""
    return f"{label}{mark}" + (f": {', '.join(extra)}" if extra else "")


def _save(fig: Any, paths: Any) -> list[Path]:
    out: list[Path] = []
    for fmt in FORMATS:
        path: Path = next(paths)
        tmp = path.with_name(f".{path.name}.tmp")
        try:
            # no date or software stamp: the same evaluation gives the same files
            meta = {"Date": None} if fmt == "svg" else {"Software": None}
            fig.savefig(tmp, format=fmt, dpi=120, metadata=meta)
            os.replace(tmp, path)
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            raise InvalidRequest(f"cannot write the figure {path}: {exc.strerror or exc}") from exc
        out.append(path)
    return out
