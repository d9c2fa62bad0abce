"""`make bench`: every benchmark in turn; each writes its own section of BENCHMARKS.md."""

from __future__ import annotations

import importlib
import sys

BENCHES = [
    "benchmarks.bench_engine",
    # issue 10 item 6: facetrace ingest against the plain dlib pipeline in one run
    "benchmarks.bench_ingest_ratio",
    # issue 15: detectors (faces found, cost) and the open-set accuracy levers
    "benchmarks.bench_detect",
    "benchmarks.bench_accuracy",
    "benchmarks.profile_pipeline",
    "benchmarks.bench_embed",
    "benchmarks.bench_index",
    "benchmarks.bench_cli",
    "benchmarks.bench_grouping",
    "benchmarks.bench_video",
    # the real server under 1, 8 and 32 searching clients and during an API import
    "benchmarks.bench_load",
    # the Milvus standalone server next to FAISS at 100k and 1M faces (starts its own server)
    "benchmarks.bench_milvus",
]


def main() -> None:
    for name in BENCHES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError:
            print(f"skipping {name}: not present", file=sys.stderr)
            continue
        print(f"== {name}", file=sys.stderr)
        sys.argv = [name]
        module.main()


if __name__ == "__main__":
    main()
