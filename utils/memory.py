"""How much memory this process may still use (so that work too big for it is refused before it starts).

`VGAN_MEMORY_LIMIT` (bytes, or with a K/M/G suffix) overrides what the machine reports, for tests
and for machines shared with other jobs. Example: VGAN_MEMORY_LIMIT=2G python main.py train ...
"""
import os
import resource


def parse_bytes(text):
    text = str(text).strip().upper().removesuffix("B")
    scale = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}.get(text[-1:], 1)
    number = text[:-1] if text[-1:] in "KMGT" else text
    return int(float(number) * scale)


def _read_first_number(path, key=None):
    try:
        with open(path) as f:
            for line in f:
                if key is None:
                    return None if line.strip() == "max" else int(line)
                if line.startswith(key):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError):
        return None
    return None


def available_memory():
    """Bytes this process can still allocate: the smallest of /proc/meminfo, the cgroup and RLIMIT_AS."""
    override = os.environ.get("VGAN_MEMORY_LIMIT")
    if override:
        return parse_bytes(override)
    limits = [_read_first_number("/proc/meminfo", "MemAvailable:")]
    cgroup_max = _read_first_number("/sys/fs/cgroup/memory.max")
    if cgroup_max is not None:
        limits.append(cgroup_max - (_read_first_number("/sys/fs/cgroup/memory.current") or 0))
    soft, _ = resource.getrlimit(resource.RLIMIT_AS)
    if soft != resource.RLIM_INFINITY:
        used = _read_first_number("/proc/self/status", "VmSize:") or 0
        limits.append(soft - used)
    known = [x for x in limits if x is not None]
    return min(known) if known else 1 << 62


def human_bytes(n):
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if abs(n) < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
