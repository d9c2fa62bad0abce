"""A real two-node Ray cluster on this machine, for the cluster ingest test.

``ray start --head`` and a second ``ray start --address`` joined to it: two raylets,
each with its own object store and worker processes, talking over loopback on ports
the OS handed out. Each node runs with ``--block`` in a process group of its own, so a
node is killed (``kill_node``, SIGKILL to its whole group: raylet, workers, object
store) without touching anyone else's Ray, and everything is stopped at the end even
when a test fails. ``ray stop`` is never used: it stops every Ray on the machine.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path

from tests.milvus_server import free_ports

RAY = str(Path(sys.executable).with_name("ray"))
#: a loopback address Ray keeps: it replaces 127.0.0.1 (and "localhost") by the
#: machine's first network address so that other machines could join, which would
#: send the cluster's traffic over that interface
NODE_IP = "127.0.0.2"


@dataclass
class RayNode:
    """One ``ray start --block`` process (the leader of its process group) and its log."""

    name: str
    proc: subprocess.Popen[bytes]
    log: Path
    node_manager_port: int

    @property
    def alive(self) -> bool:
        return self.proc.poll() is None


@dataclass
class RayCluster:
    """The head's GCS address and the nodes started so far."""

    address: str
    temp_dir: Path
    nodes: list[RayNode] = field(default_factory=list)


def _worker_port_range() -> tuple[int, int]:
    """A block of 40 consecutive free ports for a node's worker processes."""
    for _ in range(50):
        base = free_ports(1)[0]
        if base + 40 >= 65000:
            continue
        try:
            socks = []
            for port in range(base, base + 40):
                s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                socks.append(s)
                s.bind(("127.0.0.1", port))
            return base, base + 39
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
    raise RuntimeError("no block of 40 free ports for Ray workers")


def _start_node(
    name: str, temp_dir: Path, args: list[str], *, cpus: int, object_store_mb: int
) -> RayNode:
    ports = free_ports(7)
    low, high = _worker_port_range()
    cmd = [
        RAY,
        "start",
        "--block",
        f"--node-ip-address={NODE_IP}",
        f"--num-cpus={cpus}",
        f"--object-store-memory={object_store_mb * 2**20}",
        f"--node-manager-port={ports[0]}",
        f"--object-manager-port={ports[1]}",
        f"--dashboard-agent-listen-port={ports[2]}",
        f"--dashboard-agent-grpc-port={ports[3]}",
        f"--metrics-export-port={ports[4]}",
        f"--runtime-env-agent-port={ports[5]}",
        f"--min-worker-port={low}",
        f"--max-worker-port={high}",
        "--disable-usage-stats",
        *args,
    ]
    log = temp_dir / f"{name}.log"
    # token authentication (on by default for `ray start`) would need the driver to be
    # handed the head's token; the cluster listens on loopback only and lives for
    # one test, so it runs without, like the driver's own local Ray
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "RAY_AUTH_MODE": "disabled"}
    with log.open("wb") as out:
        proc = subprocess.Popen(
            cmd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True, env=env
        )
    return RayNode(name, proc, log, ports[0])


def kill_node(node: RayNode) -> None:
    """SIGKILL a node's whole process group: its raylet, object store and workers."""
    with suppress(ProcessLookupError):
        os.killpg(node.proc.pid, signal.SIGKILL)
    with suppress(Exception):
        node.proc.wait(timeout=30)


def _stop_node(node: RayNode, grace: float = 10.0) -> None:
    with suppress(ProcessLookupError):
        os.killpg(node.proc.pid, signal.SIGTERM)
    with suppress(subprocess.TimeoutExpired):
        node.proc.wait(timeout=grace)
    kill_node(node)  # whatever of the group is left


def driver_node(cluster: RayCluster) -> RayNode:
    """The node whose raylet this driver is attached to (it must not be killed)."""
    import ray

    here = ray.get_runtime_context().get_node_id()
    port = next(int(n["NodeManagerPort"]) for n in ray.nodes() if n["NodeID"] == here)
    return next(node for node in cluster.nodes if node.node_manager_port == port)


def wait_for_nodes(n: int, *, timeout: float, interval: float = 0.5) -> None:
    """Poll the connected cluster until ``n`` nodes are alive (after ``ray.init``)."""
    import ray

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if sum(1 for node in ray.nodes() if node.get("Alive")) >= n:
            return
        time.sleep(interval)
    raise TimeoutError(f"fewer than {n} Ray nodes alive after {timeout:.0f} s")


@contextmanager
def ray_cluster(
    temp_dir: Path,
    *,
    workers: int = 1,
    cpus_per_node: int = 1,
    object_store_mb: int = 128,
    start_timeout: float = 120.0,
    attempts: int = 3,
) -> Iterator[RayCluster]:
    """A head and ``workers`` joined nodes on :data:`NODE_IP`; the driver connects with
    ``connect_ray(cluster.address, node_ip_address=NODE_IP)``. A head that does not
    come up within ``start_timeout`` seconds (a loaded machine) is stopped and tried
    again with new ports, up to ``attempts`` times. Every node is stopped on the way
    out."""
    temp_dir.mkdir(parents=True, exist_ok=True)
    short = Path("/tmp") / f"rt{os.getpid()}_{int(time.time() * 1000) % 100000}"
    cluster: RayCluster | None = None
    try:
        for attempt in range(1, attempts + 1):
            gcs = free_ports(2)
            cluster = RayCluster(address=f"{NODE_IP}:{gcs[0]}", temp_dir=temp_dir)
            head = _start_node(
                "head",
                temp_dir,
                [
                    "--head",
                    f"--port={gcs[0]}",
                    f"--ray-client-server-port={gcs[1]}",
                    "--include-dashboard=false",
                    f"--temp-dir={short}-{attempt}",  # short: Unix socket paths are limited
                ],
                cpus=cpus_per_node,
                object_store_mb=object_store_mb,
            )
            cluster.nodes.append(head)
            if _gcs_up(cluster.address, head, start_timeout):
                break
            for node in cluster.nodes:
                _stop_node(node)
            if attempt == attempts:
                raise RuntimeError(f"Ray head did not start: see {head.log}")
        assert cluster is not None
        for i in range(workers):
            cluster.nodes.append(
                _join_node(
                    cluster,
                    f"worker{i + 1}",
                    cpus=cpus_per_node,
                    object_store_mb=object_store_mb,
                    start_timeout=start_timeout,
                    attempts=attempts,
                )
            )
        yield cluster
    finally:
        if cluster is not None:
            for node in reversed(cluster.nodes):
                _stop_node(node)
        for used in Path("/tmp").glob(f"{short.name}-*"):  # the head's sockets and logs
            shutil.rmtree(used, ignore_errors=True)


def _join_node(
    cluster: RayCluster,
    name: str,
    *,
    cpus: int,
    object_store_mb: int,
    start_timeout: float,
    attempts: int,
) -> RayNode:
    """Start a node joined to the head; Ray gives a joining raylet a fixed 30 s to
    register with the GCS and the node exits when it misses that (seen on a loaded
    machine), so a node that exits before saying it started is started again."""
    for attempt in range(1, attempts + 1):
        node = _start_node(
            f"{name}-{attempt}",
            cluster.temp_dir,
            [f"--address={cluster.address}"],
            cpus=cpus,
            object_store_mb=object_store_mb,
        )
        deadline = time.monotonic() + start_timeout
        while time.monotonic() < deadline and node.alive:
            if b"Ray runtime started" in node.log.read_bytes():
                return node
            time.sleep(0.5)
        _stop_node(node)
    raise RuntimeError(f"Ray node {name} did not join after {attempts} attempts")


def _gcs_up(address: str, head: RayNode, timeout: float) -> bool:
    host, port = address.rsplit(":", 1)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and head.alive:
        with suppress(OSError), socket.create_connection((host, int(port)), timeout=1):
            return True
        time.sleep(0.5)
    return False
