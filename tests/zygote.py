"""A test helper: one process that imports vgan and its libraries once, then forks a child for each
`python main.py ARGS` a test runs. Importing torch, OpenCV and TensorBoard takes seconds per
process on a 2-core CPU, and the suite runs main.py a few hundred times; a forked child starts
with all of it imported and nothing computed, as a fresh `python main.py` would be.

    python tests/zygote.py SOCKET    # then, per command, a JSON request on the unix socket SOCKET

Each request is {"argv", "cwd", "env", "stdout", "stderr"} (the last two: files for the child's
output). The reply is the child's pid as one line, then, when it ends, its exit status as
`subprocess` reports it (negative: killed by that signal). Each child leads a process group of
its own, so that a test can kill it and all it started. Only what a fork can share is preloaded:
tests that change how torch is built for the CPU (its kernel caps, its thread count) or where
Python finds modules run `main.py` as a fresh process instead (conftest.run_cli).
"""
import gc
import importlib
import json
import os
import pkgutil
import select
import signal
import socket
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PACKAGES = sorted(p.name for p in REPO.iterdir() if (p / "__init__.py").exists() and p.name not in ("tests", "bench"))
# Imported inside functions by vgan, or by torch on first use: torch._dynamo (and sympy with it) is
# imported by the first optimizer a process makes, seconds on a 2-core CPU.
LIBRARIES = ["numpy", "cv2", "torch", "torch._dynamo", "torch.utils.tensorboard", "scipy.special", "PIL.Image", "imageio_ffmpeg"]


def preload():
    """Import every module of vgan and the libraries it imports lazily; nothing is run."""
    sys.path.insert(0, str(REPO))
    for name in LIBRARIES:
        importlib.import_module(name)
    importlib.import_module("main")
    for package in PACKAGES:
        for module in pkgutil.iter_modules([str(REPO / package)]):
            importlib.import_module(f"{package}.{module.name}")


def run_child(request):
    """In the forked child: become `python main.py ARGV` in its folder and environment, and end as
    that would, through the interpreter's normal exit (SystemExit propagates out of serve)."""
    os.setsid()
    for signum in (signal.SIGTERM, signal.SIGCHLD, signal.SIGPIPE):
        signal.signal(signum, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.default_int_handler)  # Ctrl-C raises KeyboardInterrupt, as in a fresh python
    stdin = os.open(os.devnull, os.O_RDONLY)
    out = os.open(request["stdout"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    err = os.open(request["stderr"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    for fd, target in ((stdin, 0), (out, 1), (err, 2)):
        os.dup2(fd, target)
        os.close(fd)
    os.chdir(request["cwd"])
    os.environ.clear()
    os.environ.update(request["env"])
    sys.argv = [str(REPO / "main.py"), *request["argv"]]
    import main

    sys.exit(main.main(request["argv"]))


def serve(path):
    """Fork a child per request until the socket's parent (the test session) goes away."""
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(path)
    server.listen(16)
    print("ready", flush=True)
    waiting = {}  # child pid -> the connection its exit status goes to
    parent = os.getppid()
    while os.getppid() == parent:
        readable, _, _ = select.select([server], [], [], 0.02)
        if readable:
            connection, _ = server.accept()
            request = json.loads(connection.makefile("r").readline())
            pid = os.fork()
            if pid == 0:
                server.close()
                connection.close()
                run_child(request)
            connection.sendall(f"{pid}\n".encode())
            waiting[pid] = connection
        for pid in list(waiting):
            done, wait_status = os.waitpid(pid, os.WNOHANG)
            if done:
                connection = waiting.pop(pid)
                try:
                    connection.sendall(f"{os.waitstatus_to_exitcode(wait_status)}\n".encode())
                except OSError:  # the test stopped waiting for it
                    pass
                connection.close()


if __name__ == "__main__":
    preload()
    # What was imported lives as long as the process: the garbage collector leaves it alone from
    # here on, in the zygote and in every child, so a child never walks (and copies, page by page)
    # the few hundred MB of objects it shares with the zygote.
    gc.freeze()
    serve(sys.argv[1])
