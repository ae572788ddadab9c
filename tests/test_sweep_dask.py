"""Sweeps through a Dask scheduler: a real LocalCluster of worker processes on loopback, one of
them killed mid-sweep; the table must be complete and identical to the local run's."""

from __future__ import annotations

import json
import os
import signal
import socket

import pytest
import yaml

from conftest import ROOT
from xsim.cli import main
from xsim.sweep import load_sweep, run_sweep, write_sweep

distributed = pytest.importorskip("distributed")
dask = pytest.importorskip("dask")


@pytest.fixture(scope="module")
def cluster():
    with distributed.LocalCluster(n_workers=3, threads_per_worker=1, processes=True,
                                  host="127.0.0.1", dashboard_address=None) as cluster, \
            distributed.Client(cluster.scheduler_address, set_as_default=False) as client:
        yield cluster, client


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    """12 points of the LeNet-5 scenario, 4 of which fail with an input error (pe_budget > 1)."""
    data = {"name": "lenet5_dask", "arch": str(ROOT / "arch" / "isaac128.yaml"),
            "workload": str(ROOT / "workloads" / "lenet5_mta.json"),
            "grid": {"arch": [str(ROOT / "arch" / "isaac64.yaml"), str(ROOT / "arch" / "isaac128.yaml")],
                     "arch.components.adc.bits": [7, 8],
                     "workload.tasks.1.tier1.pe_budget": [0.25, 0.5, 2.0]}}
    path = tmp_path_factory.mktemp("sweep") / "lenet5_dask.yaml"
    path.write_text(yaml.safe_dump(data))
    return load_sweep(path)


def _kill_a_busy_worker_after_the_first_result(client, killed):
    def progress(items, label):
        for n, item in enumerate(items):
            yield item
            if n == 0:
                busy = [w for w, keys in client.processing().items() if keys]
                pid = client.run(os.getpid, workers=busy[:1])[busy[0]]
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)
    return progress


def test_sweep_on_a_cluster_survives_a_killed_worker(cluster, sweep, tmp_path):
    local_cluster, client = cluster
    spec, points = sweep
    pids = set(client.run(os.getpid).values())
    killed: list[int] = []
    rows, counts = run_sweep(spec, points, tmp_path / "dask", scheduler=local_cluster.scheduler_address,
                             progress=_kill_a_busy_worker_after_the_first_result(client, killed))
    assert killed and killed[0] in pids
    assert counts == {"points": 12, "computed": 12, "reused": 0, "rejected_cache_files": 0,
                      "failed": 4}

    local, local_counts = run_sweep(spec, points, tmp_path / "local", workers=3)
    assert local_counts == counts and rows == local
    write_sweep(spec, rows, tmp_path / "dask")
    write_sweep(spec, local, tmp_path / "local")
    assert (tmp_path / "dask" / "sweep.csv").read_bytes() == (tmp_path / "local" / "sweep.csv").read_bytes()

    # Every point ran in a worker process that had loaded the kernels once, as it joined (the
    # restarted worker too), and compiled nothing itself.
    cached = [(tmp_path / "dask" / "points" / f"{p.key()}.json").read_text() for p in points]
    workers = [json.loads(text)["result"].get("worker") for text in cached]
    assert {(w["warmups"], w["compiled"]) for w in workers if w} == {(1, 0)}

    # A second run through the scheduler reuses everything finished and retries only the failed.
    _, again = run_sweep(spec, points, tmp_path / "dask", scheduler=local_cluster.scheduler_address)
    assert again == {"points": 12, "computed": 4, "reused": 8, "rejected_cache_files": 0,
                     "failed": 4}


def test_cli_takes_the_scheduler_from_the_environment(cluster, tmp_path, monkeypatch, capsys):
    address = cluster[0].scheduler_address
    monkeypatch.setenv("XSIM_SCHEDULER", address)
    assert main(["sweep", str(ROOT / "sweeps" / "lenet5_adc.yaml"), "-o", str(tmp_path)]) == 0
    assert f"4 points (4 computed on {address}, 0 reused" in capsys.readouterr().out


def test_unreachable_scheduler_is_an_input_error(tmp_path, capsys):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        address = f"tcp://127.0.0.1:{s.getsockname()[1]}"
    with dask.config.set({"distributed.comm.timeouts.connect": "1s"}):
        code = main(["sweep", str(ROOT / "sweeps" / "lenet5_adc.yaml"), "-o", str(tmp_path),
                     "--scheduler", address])
    assert code == 2 and f"cannot reach the Dask scheduler at {address}" in capsys.readouterr().err
