"""sweep --dask on a real multi-process Dask cluster on this machine: a scheduler and worker
processes started with the `dask` commands, every one bound to 127.0.0.1 with dashboards off."""
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from conftest import REPO, TINY, assert_user_error, run_cli, spawn
from runfolder.metrics import read_metrics

pytest.importorskip("distributed")

LOOPBACK = "127.0.0.1"
QUIET_HTTP = ["--no-dashboard", "--dashboard-address", f"{LOOPBACK}:0"]  # --no-dashboard alone still serves /health on 0.0.0.0
POINT = [*TINY, "--epochs", "1000", "--sample-every", "1000"]


def free_port():
    with socket.socket() as s:
        s.bind((LOOPBACK, 0))
        return s.getsockname()[1]


class Cluster:
    """A `dask scheduler` and `dask worker` processes (run as `python -m dask`, the same commands; no
    nanny: a killed worker stays dead)."""

    def __init__(self, folder):
        self.folder, self.port = folder, free_port()
        self.address = f"tcp://{LOOPBACK}:{self.port}"
        self.env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
        self.scheduler = self.start("scheduler", ["scheduler", "--host", LOOPBACK, "--port", str(self.port), *QUIET_HTTP])
        self.workers = {}

    def start(self, name, args):
        log = open(self.folder / f"{name}.log", "w")
        return subprocess.Popen([sys.executable, "-m", "dask", *args], stdout=log, stderr=subprocess.STDOUT, env=self.env, cwd=self.folder)

    def add_worker(self, name):
        self.workers[name] = self.start(name, ["worker", self.address, "--host", LOOPBACK, "--nthreads", "1", "--no-nanny",
                                               *QUIET_HTTP, "--name", name])
        self.wait_for(len([w for w in self.workers.values() if w.poll() is None]))

    def wait_for(self, count, timeout_s=60):
        from distributed import Client

        with Client(self.address, timeout="30s") as client:
            client.wait_for_workers(count, timeout=timeout_s)

    def close(self):
        for process in [*self.workers.values(), self.scheduler]:
            process.terminate()
        for process in [*self.workers.values(), self.scheduler]:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    made = Cluster(tmp_path_factory.mktemp("dask"))
    try:
        made.add_worker("w1")
        made.add_worker("w2")
        yield made
    finally:
        made.close()


def listening_addresses(pid):
    """The local addresses a process listens on (TCP, from /proc)."""
    inodes = {os.readlink(f"/proc/{pid}/fd/{fd}")[8:-1] for fd in os.listdir(f"/proc/{pid}/fd")
              if os.readlink(f"/proc/{pid}/fd/{fd}").startswith("socket:")}
    found = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == "0A" and fields[9] in inodes:  # LISTEN
                found.append(fields[1].split(":")[0])
    return found


def test_every_cluster_process_listens_on_the_loopback_only(cluster):
    for process in [cluster.scheduler, *cluster.workers.values()]:
        addresses = listening_addresses(process.pid)
        assert addresses and all(a == "0100007F" for a in addresses), addresses  # 127.0.0.1, nothing else


def test_a_2x2_grid_finishes_with_a_row_per_point_and_a_restart_skips_them(cluster, tiny, tmp_path):
    args = ["sweep", "--dask", cluster.address, "--data", tiny, *POINT, "--max-steps", "3", "--gan-loss", "dcgan,none",
            "--l1", "50,100", "--checkpoints", tmp_path / "grid"]
    result = run_cli(*args, cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    runs = json.loads(run_cli("runs", "--checkpoints", tmp_path / "grid", "--json", cwd=tmp_path).stdout)["runs"]
    assert len(runs) == 4 and {r["status"] for r in runs} == {"finished"} and {r["steps"] for r in runs} == {3}
    again = run_cli(*args, cwd=tmp_path)
    assert again.returncode == 0 and again.stdout.count("  done ") == 4 and "finished (" not in again.stdout


def final_weights(folder):
    return torch.load(folder / "last.pt", weights_only=True)["generator"]


def training_child(name):
    """(pid, parent pid) of the `main.py train --name NAME` process, when it runs."""
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            command = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            continue
        if b"train" in command and name.encode() in command:
            return int(pid), int(next(line for line in status.splitlines() if line.startswith("PPid:")).split()[1])
    return None


def test_a_point_whose_worker_is_killed_finishes_elsewhere_bitwise_as_if_never_stopped(cluster, tiny, tmp_path):
    """The worker is SIGKILLed once its point has logged step 10 of 60, with the point's training
    child held still (SIGSTOP) meanwhile, so the kill lands mid-run however fast this machine is."""
    point = ["--data", tiny, *POINT, "--max-steps", "60", "--log-every", "2", "--seeds", "1"]
    reference = run_cli("sweep", "--dask", cluster.address, *point, "--checkpoints", tmp_path / "reference", cwd=tmp_path)
    assert reference.returncode == 0, reference.stderr
    driver = spawn([sys.executable, REPO / "main.py", "sweep", "--dask", cluster.address, *point, "--checkpoints", tmp_path / "killed"],
                   cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    folder = next((tmp_path / "reference").glob("*_seed0"))
    target = tmp_path / "killed" / folder.name
    deadline = time.monotonic() + 300
    while not [r for r in read_metrics(target) if r.get("step", 0) >= 10 and "loss/g_total" in r]:
        assert time.monotonic() < deadline and driver.poll() is None, driver.stdout.read() if driver.poll() is not None else "slow"
        time.sleep(0.05)
    child, worker_pid = training_child(folder.name)
    victim = next(name for name, process in cluster.workers.items() if process.pid == worker_pid)
    try:
        # Held still while its worker dies, so that the kill lands mid-run however fast this machine trains.
        os.kill(child, signal.SIGSTOP)
        os.kill(worker_pid, signal.SIGKILL)  # the worker process, mid-run
        cluster.workers[victim].wait()
        os.kill(child, signal.SIGCONT)
        output, _ = driver.communicate(timeout=300)
    finally:
        cluster.workers.pop(victim).wait()
        cluster.add_worker(victim + "b")  # the cluster as it was, for the tests after this one
    assert driver.returncode == 0, output
    events = [r["event"] for r in read_metrics(target) if "event" in r]
    assert events[:2] == ["started", "interrupted"] and events[-2:] == ["resumed", "finished"], events
    ours, theirs = final_weights(target), final_weights(folder)
    assert all(torch.equal(ours[k], theirs[k]) for k in theirs)


def test_ctrl_c_on_the_driver_stops_the_running_points_with_a_save(cluster, tiny, tmp_path):
    """Ctrl-C once both points train. The deadlines are generous (300 s) for the slowest CPU known:
    here the driver is back within seconds of the signal."""
    driver = spawn([sys.executable, REPO / "main.py", "sweep", "--dask", cluster.address, "--data", tiny, *POINT,
                    "--max-steps", "100000", "--seeds", "2", "--checkpoints", tmp_path / "c"],
                   cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 300
    while len([f for f in (tmp_path / "c").glob("*_seed*") if any("loss/g_total" in r for r in read_metrics(f))]) < 2:
        assert time.monotonic() < deadline and driver.poll() is None, "the points did not start"
        time.sleep(0.2)
    driver.send_signal(signal.SIGINT)
    output, _ = driver.communicate(timeout=300)
    assert driver.returncode == 130, output
    for folder in (tmp_path / "c").glob("*_seed*"):
        assert [r["event"] for r in read_metrics(folder) if "event" in r][-1] == "interrupted"
        assert (folder / "last.pt").exists()


def test_without_dask_installed_the_flag_says_how_to_install_it(tiny, tmp_path):
    blocker = tmp_path / "blocker"
    (blocker / "distributed").mkdir(parents=True)
    (blocker / "distributed" / "__init__.py").write_text("raise ImportError('No module named distributed')\n")
    result = run_cli("sweep", "--dask", "local", "--data", tiny, *POINT, "--max-steps", "2", "--checkpoints", tmp_path / "n",
                     cwd=tmp_path, env={"PYTHONPATH": str(blocker)})
    assert_user_error(result, "--dask", "pip install 'dask[distributed]'")


def test_a_local_cluster_runs_the_grid_too(tiny, tmp_path):
    result = run_cli("sweep", "--dask", "local", "--jobs", "2", "--data", tiny, *POINT, "--max-steps", "2", "--seeds", "2",
                     "--checkpoints", tmp_path / "l", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert len([f for f in (tmp_path / "l").glob("*_seed*") if (f / "last.pt").exists()]) == 2


def test_a_local_cluster_gives_each_worker_a_gpu_of_its_own_and_refuses_a_gpu_it_lacks(monkeypatch, tiny, tmp_path):
    # Two fake GPUs (CUDA_VISIBLE_DEVICES names them; no CUDA is needed to hand them out): each worker
    # declares one and holds its own, so that --resources GPU=1 schedules and no two points share one.
    import distributed

    from experiments.cluster import connect, worker_gpus

    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3,5")
    client, cluster = connect(distributed, "local", 2, 1, resources={"GPU": 1})
    try:
        assert [w["resources"] for w in client.scheduler_info()["workers"].values()] == [{"GPU": 1}, {"GPU": 1}]
        held = client.run(lambda dask_worker: worker_gpus(dask_worker).take(1))
        assert sorted(gpu for gpus in held.values() for gpu in gpus) == ["3", "5"]
        assert "VGAN_LOCAL_CLUSTER_GPUS" not in os.environ  # the split went to the workers, not into this process
    finally:
        client.close()
        cluster.close()
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")  # no GPU here: a point asking for one would wait forever
    refused = run_cli("sweep", "--data", tiny, *POINT, "--max-steps", "2", "--device", "cpu", "--dask", "local",
                      "--resources", "GPU=1", cwd=tmp_path, env={**os.environ, "CUDA_VISIBLE_DEVICES": ""}, timeout=300)
    assert_user_error(refused, "--resources", "asks for GPU", "no GPU")
