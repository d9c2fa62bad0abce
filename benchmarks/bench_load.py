"""The service under load (issue 10): concurrent searches through HTTP, and searches during
an import, on SQLite and on PostgreSQL.

For each database: a fresh data directory (and, for PostgreSQL, a database of its own made
with ``createdb``) gets a gallery of LFW faces (the first photo of every LFW identity,
about 2,800, through ``facetrace ingest``); then the real server (``facetrace serve`` in a
process of its own) is driven with ``POST /api/v1/search`` by 1, 8 and 32 clients for a
bounded time each, with real probe photos (other LFW photos of gallery people and the
full-size webphotos13 photos, interleaved). Reported: searches/s, p50/p95/p99, errors
(any answer but 201, or a dropped connection) and the server's RSS (the server and its
inference workers). Then 8 clients search while a 1,000-photo zip is imported through
``POST /api/v1/collections/{id}/imports``: searches completed per 10 s of the import, the
longest gap between two completions and p95 against the idle 8-client p95.

The yardstick of the issue: ``facetrace ingest`` (all cores) on the same probe photos,
timed in the same run; the 8-client searches/s should be at least 0.7 of its photos/s.

Run: ``python -m benchmarks.bench_load [--seconds 30] [--db sqlite,postgres]`` (part of
``make bench``); appends its section to BENCHMARKS.md. Run it under
``flock /tmp/facetrace-bench.lock`` on a shared machine.
"""

from __future__ import annotations

import argparse
import io
import itertools
import json
import os
import shutil
import subprocess
import sys
import threading
import time
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from benchmarks.common import ROOT, faces_dir, write_section

WORK = ROOT / ".bench" / "load"
PG = "postgresql://postgres@127.0.0.1:5432/{db}"
PG_DB = "ft_perf_load"
PASSWORD = "password-123"


# --- photos --------------------------------------------------------------------------


@dataclass(frozen=True)
class PhotoSets:
    gallery: list[Path]  # the first photo of each LFW identity
    probes: list[tuple[str, Path]]  # (kind, photo): lfw and web, interleaved
    imported: list[Path]  # 1,000 further LFW photos, in none of the above


def photo_sets(faces: Path, *, n_lfw_probes: int = 200, n_import: int = 1000) -> PhotoSets:
    people = sorted(p for p in (faces / "lfw" / "images").iterdir() if p.is_dir())
    gallery, seconds, rest = [], [], []
    for person in people:
        photos = sorted(person.glob("*.jpg"))
        if not photos:
            continue
        gallery.append(photos[0])
        if len(photos) > 1:
            seconds.append(photos[1])
        rest.extend(photos[2:])
    lfw = seconds[:n_lfw_probes]
    rest = seconds[n_lfw_probes:] + rest
    web = sorted((faces / "webphotos13" / "identities").glob("*/*.jpg"))
    probes: list[tuple[str, Path]] = []
    for i in range(max(len(lfw), len(web))):
        if i < len(lfw):
            probes.append(("lfw", lfw[i]))
        if i < len(web):
            probes.append(("web", web[i]))
    if len(rest) < n_import:
        raise SystemExit(f"only {len(rest)} LFW photos left for the import, {n_import} asked")
    return PhotoSets(gallery=gallery, probes=probes, imported=rest[:n_import])


def link_tree(photos: list[Path], dest: Path) -> Path:
    """A folder per subject (LFW layout) of symbolic links to ``photos``."""
    if dest.exists():
        shutil.rmtree(dest)
    for p in photos:
        (dest / p.parent.name).mkdir(parents=True, exist_ok=True)
        (dest / p.parent.name / p.name).symlink_to(p)
    return dest


def import_zip(photos: list[Path]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_STORED) as zf:
        for p in photos:
            zf.write(p, f"export/{p.parent.name}/{p.name}")
    return buf.getvalue()


# --- the server ----------------------------------------------------------------------


def _cli(data: Path, database_url: str | None) -> list[str]:
    cmd = [sys.executable, "-m", "facetrace.cli", "--data", str(data)]
    if database_url:
        cmd += ["--database-url", database_url]
    return cmd


def _env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FACETRACE_")}
    env.update(extra or {})
    return env


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Server:
    proc: subprocess.Popen[bytes]
    base: str


@contextmanager
def serve(data: Path, database_url: str | None, log: Path) -> Iterator[Server]:
    port = free_port()
    env = _env(
        {
            # one user at one address drives every client here: no per-user or per-address
            # search limit in the way (the decode queue's default, 64, holds 32 clients)
            "FACETRACE_SERVICE__SEARCH_PER_MINUTE": "10000000",
            "FACETRACE_SERVICE__SEARCH_PER_MINUTE_PER_ADDRESS": "10000000",
            "FACETRACE_SERVICE__LOGIN_PER_MINUTE": "1000",
        }
    )
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [*_cli(data, database_url), "serve", "--host", "127.0.0.1", "--port", str(port)],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 600
        while True:
            if proc.poll() is not None:
                raise SystemExit(f"the server exited ({proc.returncode}); see {log}")
            try:
                if httpx.get(f"{base}/readyz", timeout=5).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise SystemExit(f"the server was not ready in 600 s; see {log}")
            time.sleep(0.5)
        yield Server(proc, base)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def tree_rss_mib(pid: int) -> float:
    """RSS of ``pid`` and all its descendants (the inference and import workers)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
        except (OSError, IndexError, ValueError):
            continue
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        todo.extend(children.get(p, []))
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            continue
    return total / 1024


class RssSampler:
    """The largest server tree RSS seen while it runs (one sample a second)."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.peak = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, tree_rss_mib(self.pid))
            self._stop.wait(1.0)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, tree_rss_mib(self.pid))


def make_users(data: Path, database_url: str | None, run: str) -> tuple[str, str]:
    """An administrator and an investigator (Dept A), made in the database; API keys."""
    from facetrace.service import accounts, audit
    from facetrace.service.accounts import Role
    from facetrace.service.audit_key import key_path, load_key
    from facetrace.store.db import Database, sqlite_url

    database = Database.open(database_url or sqlite_url(data))
    audit.bind(database, load_key(key_path(data, None)))
    keys = []
    try:
        for name, roles, dept in (
            (f"bench-admin-{run}", {Role.ADMIN}, None),
            (f"bench-inv-{run}", {Role.INVESTIGATOR}, "Dept A"),
        ):
            with database.sessions.begin() as s:
                user = accounts.create_user(
                    s,
                    actor=accounts.SYSTEM,
                    username=name,
                    password=PASSWORD,
                    roles=frozenset(roles),
                    department=dept,
                )
                _, key = accounts.create_api_key(s, actor=accounts.actor_of(user), name="bench")
            keys.append(key)
    finally:
        database.dispose()
    return keys[0], keys[1]


# --- load ----------------------------------------------------------------------------


@dataclass
class Outcome:
    kind: str
    start: float
    end: float
    status: int  # 0: the connection failed

    @property
    def seconds(self) -> float:
        return self.end - self.start


@dataclass
class Phase:
    name: str
    clients: int
    wall: float
    outcomes: list[Outcome] = field(default_factory=list)
    rss_mib: float = 0.0

    def ok(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.status == 201]

    def errors(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for o in self.outcomes:
            if o.status != 201:
                key = "dropped" if o.status == 0 else str(o.status)
                out[key] = out.get(key, 0) + 1
        return out


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    s = sorted(values)
    return s[min(len(s) - 1, max(0, round(q / 100 * (len(s) - 1))))]


def drive(
    base: str,
    key: str,
    case_id: int,
    probes: list[tuple[str, bytes, str]],
    *,
    clients: int,
    until: threading.Event | None = None,
    seconds: float | None = None,
    offset: int = 0,
) -> tuple[list[Outcome], float]:
    """``clients`` threads searching probes round-robin until ``seconds`` pass or ``until``
    is set; returns the outcomes and the wall time."""
    stop = until or threading.Event()
    outcomes: list[Outcome] = []
    lock = threading.Lock()
    start_all = threading.Barrier(clients + 1)

    def client(n: int) -> None:
        i = offset + n * 7919
        with httpx.Client(
            base_url=base, headers={"Authorization": f"Bearer {key}"}, timeout=300
        ) as http:
            start_all.wait()
            while not stop.is_set():
                kind, data, name = probes[i % len(probes)]
                i += 1
                t0 = time.monotonic()
                try:
                    r = http.post(
                        "/api/v1/search",
                        data={"case_id": str(case_id), "face": "0", "force": "true"},
                        files={"image": (name, data, "image/jpeg")},
                    )
                    status = r.status_code
                except httpx.HTTPError:
                    status = 0
                with lock:
                    outcomes.append(Outcome(kind, t0, time.monotonic(), status))

    threads = [threading.Thread(target=client, args=(n,), daemon=True) for n in range(clients)]
    for t in threads:
        t.start()
    start_all.wait()
    t0 = time.monotonic()
    if seconds is not None:
        stop.wait(seconds)
        stop.set()
    for t in threads:
        t.join()
    return outcomes, time.monotonic() - t0


def run_db(
    label: str,
    database_url: str | None,
    sets: PhotoSets,
    *,
    seconds: float,
    levels: list[int],
    import_cap_s: float,
    reuse: bool = False,
) -> dict[str, Any]:
    work = WORK / label
    data = work / "data"
    result: dict[str, Any] = {"label": label, "phases": []}
    record = work / "gallery.json"
    if reuse and record.exists():  # the gallery of an earlier run, as it was ingested
        result.update(json.loads(record.read_text()))
        return _serve_and_load(
            work,
            data,
            database_url,
            sets,
            result,
            seconds=seconds,
            levels=levels,
            import_cap_s=import_cap_s,
        )
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)

    t0 = time.monotonic()
    gallery_tree = link_tree(sets.gallery, work / "gallery-photos")
    subprocess.run(
        [
            *_cli(data, database_url),
            "ingest",
            str(gallery_tree),
            "--collection",
            "lfw",
            "--legal-basis",
            "benchmark",
        ],
        env=_env(),
        check=True,
        stdout=subprocess.DEVNULL,
    )
    result["gallery_ingest_s"] = time.monotonic() - t0
    status = subprocess.run(
        [*_cli(data, database_url), "status", "--json"],
        env=_env(),
        check=True,
        capture_output=True,
        text=True,
    )
    result["gallery"] = json.loads(status.stdout)
    record.write_text(json.dumps({k: result[k] for k in ("gallery_ingest_s", "gallery")}))
    return _serve_and_load(
        work,
        data,
        database_url,
        sets,
        result,
        seconds=seconds,
        levels=levels,
        import_cap_s=import_cap_s,
    )


def _serve_and_load(
    work: Path,
    data: Path,
    database_url: str | None,
    sets: PhotoSets,
    result: dict[str, Any],
    *,
    seconds: float,
    levels: list[int],
    import_cap_s: float,
) -> dict[str, Any]:
    run = str(int(time.time()))  # users, case and collection of this run
    admin, inv = make_users(data, database_url, run)
    with serve(data, database_url, work / "server.log") as server:
        h_admin = {"Authorization": f"Bearer {admin}"}
        h_inv = {"Authorization": f"Bearer {inv}"}
        case = httpx.post(
            f"{server.base}/api/v1/cases",
            headers=h_inv,
            json={"number": f"BENCH-{run}", "purpose": "trace_missing", "legal_basis": "benchmark"},
            timeout=60,
        )
        case.raise_for_status()
        case_id = int(case.json()["id"])
        probes = [(kind, p.read_bytes(), p.name) for kind, p in sets.probes]
        # warm-up: every inference worker started and its models loaded (two rounds of
        # 10 s: the first requests also pay the workers' start)
        for _ in range(2):
            drive(server.base, inv, case_id, probes, clients=max(levels), seconds=10)
        for clients in levels:
            with RssSampler(server.proc.pid) as rss:
                outcomes, wall = drive(
                    server.base, inv, case_id, probes, clients=clients, seconds=seconds
                )
            phase = Phase(f"{clients} clients", clients, wall, outcomes, rss.peak)
            result["phases"].append(phase)
            print(f"[{result['label']}] {summary_line(phase)}", file=sys.stderr)

        # 8 clients during an import of 1,000 photos
        coll = httpx.post(
            f"{server.base}/api/v1/collections",
            headers=h_admin,
            json={"name": f"bench-import-{run}", "legal_basis": "benchmark", "retention": "1 year"},
            timeout=60,
        )
        coll.raise_for_status()
        payload = import_zip(sets.imported)
        stop = threading.Event()
        holder: dict[str, Any] = {}

        def searching() -> None:
            holder["outcomes"], holder["wall"] = drive(
                server.base, inv, case_id, probes, clients=8, until=stop
            )

        with RssSampler(server.proc.pid) as rss:
            searchers = threading.Thread(target=searching, daemon=True)
            searchers.start()
            time.sleep(2.0)  # the searches are under way before the import starts
            t_import = time.monotonic()
            job = httpx.post(
                f"{server.base}/api/v1/collections/{coll.json()['id']}/imports",
                headers=h_admin,
                files={"file": ("bench.zip", payload, "application/zip")},
                timeout=600,
            )
            job.raise_for_status()
            job_id = job.json()["id"]
            state: dict[str, Any] = {}
            while time.monotonic() - t_import < import_cap_s:
                state = httpx.get(
                    f"{server.base}/api/v1/imports/{job_id}", headers=h_admin, timeout=60
                ).json()
                if state.get("state") in ("done", "failed", "cancelled"):
                    break
                time.sleep(1.0)
            t_end = time.monotonic()
            stop.set()
            searchers.join()
        result["import"] = {
            "state": state.get("state"),
            "done": state.get("done"),
            "total": state.get("total"),
            "summary": state.get("summary"),
            "seconds": t_end - t_import,
            "start": t_import,
            "end": t_end,
            "outcomes": holder["outcomes"],
            "rss": rss.peak,
        }
    return result


def summary_line(p: Phase) -> str:
    ok = [o.seconds * 1000 for o in p.ok()]
    return (
        f"{p.name}: {len(ok) / p.wall:.2f} searches/s, p50 {pct(ok, 50):.0f} ms, "
        f"p95 {pct(ok, 95):.0f} ms, p99 {pct(ok, 99):.0f} ms, errors {p.errors() or 0}, "
        f"RSS {p.rss_mib:.0f} MiB"
    )


def import_figures(imp: dict[str, Any], idle_p95_ms: float) -> dict[str, Any]:
    start, end = imp["start"], imp["end"]
    during = [o for o in imp["outcomes"] if start <= o.end <= end and o.status == 201]
    ends = sorted(o.end for o in during)
    windows = []
    w = start
    while w < end:
        windows.append(sum(1 for t in ends if w <= t < min(w + 10, end)))
        w += 10
    marks = [start, *ends, end]
    gap = max(b - a for a, b in itertools.pairwise(marks))
    lat = [o.seconds * 1000 for o in during]
    errors = sum(1 for o in imp["outcomes"] if start <= o.end <= end and o.status != 201)
    return {
        "windows": windows,
        "gap": gap,
        "p50": pct(lat, 50),
        "p95": pct(lat, 95),
        "ratio": pct(lat, 95) / idle_p95_ms if idle_p95_ms else float("nan"),
        "rate": len(during) / max(end - start, 1e-9),
        "errors": errors,
        "photos_per_s": (imp.get("done") or 0) / max(imp["seconds"], 1e-9),
    }


def ingest_yardstick(sets: PhotoSets) -> tuple[int, float]:
    """``facetrace ingest`` (all cores) on the probe photos: (photos, photos/s)."""
    work = WORK / "yardstick"
    if work.exists():
        shutil.rmtree(work)
    tree = work / "probes"
    for kind, p in sets.probes:
        dest = tree / f"{kind}-{p.parent.name}"
        dest.mkdir(parents=True, exist_ok=True)
        (dest / p.name).symlink_to(p)
    data = work / "data"
    # models converted and cached first, so the timing is the ingest itself
    warm = link_tree(sets.gallery[:4], work / "warm")
    subprocess.run(
        [*_cli(data, None), "ingest", str(warm)], env=_env(), check=True, stdout=subprocess.DEVNULL
    )
    t0 = time.monotonic()
    out = subprocess.run(
        [*_cli(data, None), "ingest", str(tree), "--json"],
        env=_env(),
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    wall = time.monotonic() - t0
    summary = json.loads(out[out.index("{") :])
    # the ingest's own clock (pool start-up included, the CLI's imports not)
    return len(sets.probes), len(sets.probes) / float(summary.get("seconds") or wall)


def pg_database() -> str:
    """A fresh PostgreSQL database of this benchmark's own."""
    subprocess.run(
        ["dropdb", "--if-exists", "-h", "127.0.0.1", "-U", "postgres", PG_DB], check=True
    )
    subprocess.run(["createdb", "-h", "127.0.0.1", "-U", "postgres", PG_DB], check=True)
    return PG.format(db=PG_DB)


def uptime() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True, check=False).stdout.strip()


def report(
    sets: PhotoSets,
    results: list[dict[str, Any]],
    yard: tuple[int, float],
    args: argparse.Namespace,
    before: str,
    after: str,
) -> str:
    n_probes, ingest_rate = yard
    lines = [
        f"Gallery: the first photo of every LFW identity, `facetrace ingest` into a fresh data "
        f"directory; probes: {n_probes} photos (LFW photos of gallery people not in it, and "
        "the 61 full-size webphotos13 photos, interleaved), `POST /api/v1/search` with "
        f"`face=0`, {args.seconds:.0f} s per level after a warm-up; the server is "
        "`facetrace serve` (inference workers: one per core). RSS: the server and its worker "
        "processes, peak.",
        "",
        f"Load before: `{before}`  ",
        f"Load after: `{after}`",
        "",
        f"Yardstick: `facetrace ingest` (all cores) on the same {n_probes} probe photos: "
        f"**{ingest_rate:.1f} photos/s**.",
        "",
        "| database | clients | searches/s | vs ingest | p50 ms | p95 ms | p99 ms | "
        "p50 web ms | errors | RSS MiB |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        for p in r["phases"]:
            ok = [o.seconds * 1000 for o in p.ok()]
            web = [o.seconds * 1000 for o in p.ok() if o.kind == "web"]
            rate = len(ok) / p.wall
            lines.append(
                f"| {r['label']} | {p.clients} | {rate:.2f} | {rate / ingest_rate:.2f} | "
                f"{pct(ok, 50):.0f} | {pct(ok, 95):.0f} | {pct(ok, 99):.0f} | "
                f"{pct(web, 50):.0f} | {p.errors() or 0} | {p.rss_mib:.0f} |"
            )
    lines += [
        "",
        f"During an import of {len(sets.imported):,} LFW photos through the API "
        "(8 clients searching):",
        "",
        "| database | gallery | import | photos/s | searches/s | completions per 10 s | "
        "longest gap s | p50 ms | p95 ms | p95 / idle p95 | errors | RSS MiB |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        idle = next((p for p in r["phases"] if p.clients == 8), None)
        idle_p95 = pct([o.seconds * 1000 for o in idle.ok()], 95) if idle else float("nan")
        f = import_figures(r["import"], idle_p95)
        imp = r["import"]
        faces = (r.get("gallery") or {}).get("indexed_faces", "?")
        lines.append(
            f"| {r['label']} | {faces} faces indexed ({r['gallery_ingest_s']:.0f} s to ingest) | "
            f"{imp['state']}, {imp['done']} of {imp['total']} in {imp['seconds']:.0f} s | "
            f"{f['photos_per_s']:.1f} | {f['rate']:.2f} | {', '.join(map(str, f['windows']))} | "
            f"{f['gap']:.1f} | {f['p50']:.0f} | {f['p95']:.0f} | {f['ratio']:.2f} | "
            f"{f['errors']} | {imp['rss']:.0f} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=30.0, help="per client level")
    parser.add_argument("--clients", default="1,8,32")
    parser.add_argument("--db", default="sqlite,postgres")
    parser.add_argument("--import-cap", type=float, default=900.0, help="seconds at most")
    parser.add_argument("--gallery", type=int, default=0, help="gallery photos (0: all)")
    parser.add_argument("--import-photos", type=int, default=1000)
    parser.add_argument("--probes", type=int, default=0, help="smoke runs: fewer probes")
    parser.add_argument(
        "--reuse", action="store_true", help="serve the galleries an earlier run ingested"
    )
    args = parser.parse_args()
    levels = [int(c) for c in args.clients.split(",")]
    before = uptime()
    sets = photo_sets(faces_dir(), n_import=args.import_photos)
    if args.gallery:  # a smoke run of the benchmark itself
        probes = sets.probes[: args.probes or None]
        sets = PhotoSets(sets.gallery[: args.gallery], probes, sets.imported)
    print(f"gallery {len(sets.gallery)} photos, {len(sets.probes)} probes", file=sys.stderr)
    yard = ingest_yardstick(sets)
    print(f"yardstick: ingest {yard[1]:.1f} photos/s", file=sys.stderr)
    results = []
    command = " ".join(["python -m benchmarks.bench_load", *sys.argv[1:]])
    for db in args.db.split(","):
        reuse = args.reuse and (WORK / db / "gallery.json").exists()
        url = (PG.format(db=PG_DB) if reuse else pg_database()) if db == "postgres" else None
        results.append(
            run_db(
                db,
                url,
                sets,
                seconds=args.seconds,
                levels=levels,
                import_cap_s=args.import_cap,
                reuse=reuse,
            )
        )
        body = report(sets, results, yard, args, before, uptime())
        print(body)
        if not args.gallery:  # a smoke run is not recorded; a real one after each database
            write_section(
                "load",
                "Service under load: concurrent searches and searches during an import",
                command,
                body,
            )


if __name__ == "__main__":
    main()
