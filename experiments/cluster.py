"""A sweep's points run on a Dask distributed cluster: one task per point, each running the same
`main.py train` command a local sweep runs, on a worker, writing into a checkpoints folder that every
worker shares. What survives what:
- a worker dies (node lost, process killed): its training child gets SIGTERM, saves and exits; Dask
  reschedules the task on another worker, which waits for that save and resumes from `last.pt`;
- the driver dies: running points go on to the end on their workers; the same `sweep --dask`
  command started again skips finished points and resumes the others;
- Ctrl-C on the driver: every running point saves and exits, as a Ctrl-C'd train does.

    codes = run_points_on_dask(jobs, repo, "checkpoints", "tcp://head:8786", on_done=print)
    codes = run_points_on_dask(jobs, repo, "checkpoints", "local", workers=2, runs_per_worker=1)
"""
import os
import signal
import sys
import uuid
from pathlib import Path

from utils.errors import UserError

INSTALL_HINT = "needs Dask's distributed scheduler; install it with: pip install 'dask[distributed]'"
LOOPBACK = "127.0.0.1"  # a local cluster, its HTTP servers included, is reachable from this machine only
STOP_GRACE_S = 600  # after Ctrl-C, how long the driver waits for running points to save


def import_distributed():
    try:
        import distributed
    except ImportError:
        raise UserError("--dask", INSTALL_HINT) from None
    return distributed


def train_point(repo, cwd, argv, folder, stop_name, gpus=0):
    """On a worker: run one point's training to its end, or on from its last.pt; its exit code.
    A finished point is not run again. The training child shares the worker's CPU cores with the
    worker's other running points, sees `gpus` (at least one, where the worker has any) of the
    worker's GPUs, those no other point of it holds while there are enough, and is stopped (saving)
    when the driver sets `stop_name`."""
    if repo not in sys.path:  # workers started elsewhere than the repository still find it
        sys.path.insert(0, repo)
    from distributed import Event, get_worker

    from experiments.sweep import point_plan, start_training
    from runfolder.lock import wait_until_free

    folder = Path(folder)
    wait_until_free(folder)  # a run of this point still going (a killed worker's, saving; a dead driver's)
    plan = point_plan(folder)
    if plan == "done":
        return 0
    argv = [*argv, *(["--resume"] if plan == "resume" else [])]
    worker = get_worker()
    pool = worker_gpus(worker)
    held = pool.take(max(gpus, 1))  # a GPU of its own where the worker has any, --resources or not ([] where none)
    try:
        child = start_training(Path(repo) / "main.py", argv, sharing_cores_with=worker.state.nthreads, log_for=folder,
                               cwd=cwd if Path(cwd).is_dir() else None, gpus=held)
        stop = Event(stop_name)
        while child.poll() is None:
            if stop.wait(timeout=0.5):
                child.send_signal(signal.SIGINT)  # save and exit, as a Ctrl-C'd train does
                break
        return child.wait()
    finally:
        pool.give_back(held)


LOCAL_GPUS_ENV = "VGAN_LOCAL_CLUSTER_GPUS"  # set by `--dask local` for its workers: the GPUs they split, one each


def worker_gpus(worker):
    """The GpuPool of a Dask worker's GPUs, one per worker process. Dask's resources (--resources
    GPU=N) count how many GPUs a worker's points hold at once, not which: the pool picks them. A
    worker of `--dask local` (named 0, 1, ...) holds its own GPU of those the driver split between
    them, so that no two workers hand out the same one."""
    from utils.gpus import GpuPool, visible_gpus

    split = [gpu for gpu in os.environ.get(LOCAL_GPUS_ENV, "").split(",") if gpu]
    gpus = [split[worker.name % len(split)]] if split and isinstance(worker.name, int) else visible_gpus()
    return vars(worker).setdefault("vgan_gpus", GpuPool(gpus))  # setdefault: one pool, whichever thread comes first


def connect(distributed, address, workers, runs_per_worker, resources=None):
    """(a Client, the cluster it started or None): of the scheduler at `address`, or with "local" of
    a cluster of worker processes on this machine, every one of them (and the scheduler) bound to
    127.0.0.1, dashboards off. `resources` a point will ask for that no worker declares are refused."""
    client, cluster = _connected(distributed, address, workers, runs_per_worker)
    try:
        check_resources(client, resources, address)
    except UserError:
        client.close()
        if cluster is not None:
            cluster.close()
        raise
    return client, cluster


def _connected(distributed, address, workers, runs_per_worker):
    if address != "local":
        try:
            return distributed.Client(address, timeout="30s"), None
        except (OSError, TimeoutError) as exc:
            raise UserError("--dask", f"no Dask scheduler answers at {address} ({exc}); start one with: dask scheduler") from None
    from utils.gpus import visible_gpus

    gpus = visible_gpus()
    # Each worker declares a GPU (so that --resources GPU=1 schedules) and holds its own (worker_gpus):
    # its nanny hands it the split, also when it restarts a worker that died.
    cluster = distributed.LocalCluster(n_workers=workers, threads_per_worker=runs_per_worker, processes=True, host=LOOPBACK,
                                       dashboard_address=f"{LOOPBACK}:0", worker_dashboard_address=f"{LOOPBACK}:0",
                                       resources={"GPU": 1} if gpus else None, env={LOCAL_GPUS_ENV: ",".join(gpus)})
    return distributed.Client(cluster), cluster


def check_resources(client, resources, address):
    """Refuse, before any point is submitted, a resource no worker declares: its tasks would wait forever."""
    declared = {name for worker in client.scheduler_info()["workers"].values() for name in (worker.get("resources") or {})}
    missing = sorted(set(resources or {}) - declared)
    if missing:
        where = "this machine has no GPU for the local cluster" if address == "local" else f"no worker of {address} declares it"
        raise UserError("--resources", f"asks for {missing[0]}, but {where}; start workers with `dask worker ADDRESS "
                                       f"--resources {missing[0]}=N`, or leave --resources out")


def run_points_on_dask(jobs, repo, checkpoints, address, on_done, workers=1, runs_per_worker=1, resources=None):
    """Run [(name, train argv)] points as Dask tasks; on_done(name, code) as each ends; {name: code}.
    `checkpoints` and the paths in argv must be where every worker sees them (absolute, shared);
    relative ones are taken from this process's folder. `resources`: what each point takes of a
    worker's declared resources, e.g. {"GPU": 1}."""
    distributed = import_distributed()
    import cloudpickle

    cloudpickle.register_pickle_by_value(sys.modules[__name__])  # workers need not import this module to unpickle the task
    client, cluster = connect(distributed, address, workers, runs_per_worker, resources)
    session = uuid.uuid4().hex[:8]
    stop = distributed.Event(f"vgan-stop-{session}", client=client)
    futures = {}
    try:
        for name, argv in jobs:
            future = client.submit(train_point, str(repo), os.getcwd(), argv, str(Path(checkpoints) / name), stop.name,
                                   int((resources or {}).get("GPU", 0)), key=f"vgan-{name}-{session}", resources=resources, pure=False)
            futures[future] = name
        return collect(futures, on_done, distributed)
    except KeyboardInterrupt:
        stop.set()
        distributed.wait(list(futures), timeout=STOP_GRACE_S)
        raise
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


def collect(futures, on_done, distributed):
    codes = {}
    for future in distributed.as_completed(futures):
        name = futures[future]
        try:
            codes[name] = future.result()
        except distributed.KilledWorker:  # the point's worker died again and again: a crash, not bad luck
            codes[name] = 1
        on_done(name, codes[name])
    return codes


class DaskTrials:
    """A search's trials as Dask tasks (train_point, each stoppable on its own: a pruned trial saves
    and exits), for experiments/search.py's driver: start, stop, ended, stop_all and running."""

    def __init__(self, repo, checkpoints, address, workers=1, runs_per_worker=1, resources=None):
        self.distributed = import_distributed()
        import cloudpickle

        cloudpickle.register_pickle_by_value(sys.modules[__name__])
        self.client, self.cluster = connect(self.distributed, address, workers, runs_per_worker, resources)
        self.repo, self.checkpoints, self.resources = str(repo), Path(checkpoints), resources
        self.session, self.futures, self.events = uuid.uuid4().hex[:8], {}, {}

    @property
    def running(self):
        return len(self.futures)

    def start(self, name, argv):
        event = self.distributed.Event(f"vgan-stop-{self.session}-{name}", client=self.client)
        self.events[name] = event
        self.futures[name] = self.client.submit(train_point, self.repo, os.getcwd(), argv, str(self.checkpoints / name), event.name,
                                                int((self.resources or {}).get("GPU", 0)), key=f"vgan-{name}-{self.session}",
                                                resources=self.resources, pure=False)

    def stop(self, name):
        self.events[name].set()

    def ended(self):
        done = []
        for name, future in list(self.futures.items()):
            if future.done():
                try:
                    code = future.result()
                except self.distributed.KilledWorker:
                    code = 1
                done.append((name, code))
                del self.futures[name]
        return done

    def stop_all(self):
        for name in list(self.futures):
            self.stop(name)
        self.distributed.wait(list(self.futures.values()), timeout=STOP_GRACE_S)

    def close(self):
        self.client.close()
        if self.cluster is not None:
            self.cluster.close()
