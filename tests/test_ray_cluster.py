"""The Ray cluster recipe of docs/evaluation.md on this machine: a head node and a worker node (loopback only), Ray's
token authentication propagated as the recipe says, a sweep through ``minmax bench --backend ray --address``, the
worker node killed mid-sweep: Ray runs the lost task again on the head, and every record equals a local run's.

Each node and the driver get a home directory of their own, as on separate machines: the token the head generated
reaches the others only through ``RAY_AUTH_TOKEN``. The nodes are started with ``ray start --block`` in sessions of
their own and ended by killing exactly those sessions' processes (never ``ray stop``, which stops every Ray on the
machine). The address is 127.0.0.2: Ray replaces 127.0.0.1 and localhost by the machine's network address.

It takes minutes (two Ray nodes and a sweep on two cores: 5.5 minutes on this 2-core machine under load), over
what CI can give one test, so it runs where ``MINMAX_ENVS_RAY_CLUSTER=1`` is set (marker ``ray_cluster``):

    MINMAX_ENVS_RAY_CLUSTER=1 python -m pytest -q tests/test_ray_cluster.py
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from minmax_envs.evaluation import ResultStore, bench, get_suite

pytest.importorskip("ray")
pytestmark = [
    pytest.mark.ray_cluster,
    pytest.mark.skipif(os.environ.get("MINMAX_ENVS_RAY_CLUSTER") != "1",
                       reason="minutes long: set MINMAX_ENVS_RAY_CLUSTER=1 to start a two-node Ray cluster here"),
    pytest.mark.skipif(shutil.which("ray", path=str(Path(sys.executable).parent)) is None,
                       reason="needs the ray command of this environment"),
]

ROOT = Path(__file__).resolve().parent.parent
RAY = str(Path(sys.executable).parent / "ray")
HOST = "127.0.0.2"
TASK = {"name": "two-mode", "env_id": "TwoMode-v0", "steps": 1500, "eval_every": 500, "metric": "mode_alignment",
        "higher_is_better": True, "target": 2.0, "target_metric": "modes_recovered",
        "env_kwargs": {"d": 100, "m_d": 3, "m_g": 3}, "lr_range": [0.01, 1.0], "ratios": [1.0]}
SUITE = {"name": "cluster", "version": 1, "tasks": [TASK], "budget": 6, "tune_seeds": 4, "eval_seeds": 8,
         "seed_block": 4, "agents": ["sgda", "nsgda", "adam"]}
RECORDS = 3 * 6 * 4 + 3 * 8  # agents x budget x tuning seeds, and each agent's tuned configuration on 8 seeds
OUTCOME = ("config", "final", "curve", "success", "diverged", "divergence_step", "seed_block")


def _port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def _env(home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
    return {**env, "HOME": str(home), "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", **extra}


def _node(head: bool) -> list[str]:
    """``ray start`` arguments of a 1-CPU node on HOST with ports of its own (others may run Ray here too)."""
    ports = [f"--node-manager-port={_port()}", f"--object-manager-port={_port()}",
             f"--dashboard-agent-listen-port={_port()}", f"--dashboard-agent-grpc-port={_port()}",
             f"--runtime-env-agent-port={_port()}", f"--metrics-export-port={_port()}"]
    extra = ["--include-dashboard=false", f"--ray-client-server-port={_port()}"] if head else []
    return [f"--node-ip-address={HOST}", "--num-cpus=1", "--object-store-memory=100000000", "--disable-usage-stats",
            *ports, *extra]


def _started(proc: subprocess.Popen, log: Path, seconds: float = 240) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if "Ray runtime started" in log.read_text(errors="replace"):
            return
        assert proc.poll() is None, log.read_text(errors="replace")[-3000:]
        time.sleep(0.5)
    raise AssertionError(f"ray start did not finish in {seconds} s:\n{log.read_text(errors='replace')[-3000:]}")


def _kill_session(proc: subprocess.Popen) -> None:
    """SIGKILL every process of the session ``proc`` leads (a node: raylet, its workers, agents), by pid."""
    listed = subprocess.run(["ps", "-eo", "pid=,sid="], capture_output=True, text=True).stdout.split("\n")
    for line in listed:
        fields = line.split()
        if len(fields) == 2 and fields[1] == str(proc.pid):
            try:
                os.kill(int(fields[0]), signal.SIGKILL)
            except ProcessLookupError:
                pass
    proc.wait(timeout=60)


def _outcomes(directory: Path) -> dict[str, dict]:
    return {r["key"]: {k: r.get(k) for k in OUTCOME} for r in ResultStore(directory).records()}


def test_a_two_node_cluster_with_token_auth_survives_a_lost_worker_and_matches_a_local_run(tmp_path):
    short = Path(tempfile.mkdtemp(prefix="ray", dir="/tmp"))  # Ray's socket paths must stay short
    homes = {name: tmp_path / name for name in ("head", "worker", "stranger", "driver")}
    for home in homes.values():
        home.mkdir()
    (tmp_path / "suite.json").write_text(json.dumps(SUITE))
    nodes: list[subprocess.Popen] = []
    try:
        # the head: a token first (`ray get-auth-token --generate`), so that the cluster starts with token auth
        subprocess.run([RAY, "get-auth-token", "--generate"], env=_env(homes["head"]), check=True,
                       capture_output=True, timeout=120)
        gcs = _port()
        head_log = tmp_path / "head.log"
        nodes.append(subprocess.Popen([RAY, "start", "--head", f"--port={gcs}", f"--temp-dir={short}", "--block",
                                       *_node(head=True)], env=_env(homes["head"], RAY_AUTH_MODE="token"),
                                      stdout=open(head_log, "w"), stderr=subprocess.STDOUT, start_new_session=True))
        _started(nodes[0], head_log)
        token = subprocess.run([RAY, "get-auth-token"], env=_env(homes["head"]), check=True, capture_output=True,
                               text=True, timeout=120).stdout.strip()
        address = f"{HOST}:{gcs}"
        # a node without the token is refused, as the recipe warns
        refused = subprocess.run([RAY, "start", f"--address={address}", *_node(head=False)],
                                 env=_env(homes["stranger"]), capture_output=True, text=True, timeout=300,
                                 start_new_session=True)
        assert refused.returncode != 0 and "InvalidAuthToken" in refused.stdout + refused.stderr
        # the worker node, with the head's token
        worker_log = tmp_path / "worker.log"
        auth = {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": token}
        nodes.append(subprocess.Popen([RAY, "start", f"--address={address}", "--block", *_node(head=False)],
                                      env=_env(homes["worker"], **auth), stdout=open(worker_log, "w"),
                                      stderr=subprocess.STDOUT, start_new_session=True))
        _started(nodes[1], worker_log)
        # the sweep, driven from the command line with the token; the worker node is killed mid-sweep
        out = tmp_path / "ray"
        driver = subprocess.Popen([sys.executable, "-m", "minmax_envs", "bench", "--suite", tmp_path / "suite.json",
                                   "--backend", "ray", "--address", address, "--out", out, "--no-progress",
                                   "--no-report"], env=_env(homes["driver"], **auth), cwd=tmp_path,
                                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        results = out / "results.jsonl"
        end = time.monotonic() + 600
        while not (results.exists() and len(results.read_text().splitlines()) >= 8):
            assert driver.poll() is None and time.monotonic() < end, "the sweep ended before the worker was killed"
            time.sleep(0.2)
        done_before = len(results.read_text().splitlines())
        _kill_session(nodes.pop())
        text, _ = driver.communicate(timeout=900)
        assert driver.returncode == 0, text[-3000:]
        assert done_before < RECORDS
        assert "0 runs failed" in text, text[-3000:]
    finally:
        for node in nodes:
            _kill_session(node)
        shutil.rmtree(short, ignore_errors=True)
    bench(get_suite(tmp_path / "suite.json"), out=tmp_path / "local", progress=False)
    remote, local = _outcomes(out), _outcomes(tmp_path / "local")
    assert len(local) == RECORDS and remote == local
