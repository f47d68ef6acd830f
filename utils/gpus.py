"""The GPUs a process may hand to the processes it starts, found without CUDA (no torch, no context
opened), so that a sweep gives each training its own GPU through CUDA_VISIBLE_DEVICES rather than
every one of them landing on cuda:0.

    pool = GpuPool(visible_gpus()); gpus = pool.take(1); env["CUDA_VISIBLE_DEVICES"] = ",".join(gpus); ...; pool.give_back(gpus)
"""
import os
import threading

NVIDIA_GPUS = "/proc/driver/nvidia/gpus"  # one entry per GPU the NVIDIA driver runs (Linux)


def visible_gpus():
    """The GPUs this process sees, named as CUDA_VISIBLE_DEVICES names them (indices or UUIDs): that
    variable's list when it is set (up to an entry such as -1 that hides the rest, as CUDA reads it),
    else one index per GPU the driver lists; [] without any."""
    listed = os.environ.get("CUDA_VISIBLE_DEVICES")
    if listed is None:
        try:
            return [str(index) for index in range(len(os.listdir(NVIDIA_GPUS)))]
        except OSError:
            return []
    gpus = []
    for entry in (part.strip() for part in listed.split(",")):
        if not entry or entry.startswith("-"):
            break
        gpus.append(entry)
    return gpus


class GpuPool:
    """GPUs shared out between the processes started here: `take(count)` gives the `count` least in
    use (so distinct ones while there are enough; shared, evenly, when there are more processes than
    GPUs), `give_back` returns them. Thread-safe: a Dask worker runs its points on threads."""

    def __init__(self, gpus):
        self.users = {gpu: 0 for gpu in gpus}
        self.lock = threading.Lock()

    def take(self, count=1):
        with self.lock:
            taken = sorted(self.users, key=lambda gpu: self.users[gpu])[:count]  # stable: in order among equals
            for gpu in taken:
                self.users[gpu] += 1
        return taken

    def give_back(self, gpus):
        with self.lock:
            for gpu in gpus:
                self.users[gpu] -= 1
