"""Work on a thread of its own, a few items ahead or behind, so that it overlaps the main thread's
work (torch, OpenCV, numpy and pipe I/O release the GIL). Order is kept, and an error on the
thread is raised in the main thread.

    for batch in ahead(batches(), depth=2): step(batch)             # produced while the step runs
    with Behind(write, depth=2) as behind: behind.put(chunk)         # consumed while the next is made
"""
import queue
import threading

_END = object()


class _Failure:
    def __init__(self, error):
        self.error = error


def ahead(iterable, depth=2, on_start=None):
    """Iterate `iterable` on a background thread, up to `depth` items ahead of the consumer;
    `on_start()` runs first on that thread (a thread's state, such as torch's current CUDA device,
    is its own)."""
    items = queue.Queue(maxsize=depth)
    stop = threading.Event()  # the consumer has left: every put gives up rather than wait for it

    def put(item):
        while not stop.is_set():
            try:
                items.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce():
        try:
            if on_start is not None:
                on_start()
            for item in iterable:
                if not put(item):
                    return
            put(_END)
        except BaseException as exc:  # handed to the consumer, raised there
            put(_Failure(exc))

    thread = threading.Thread(target=produce, daemon=True)
    thread.start()
    try:
        while True:
            item = items.get()
            if item is _END:
                return
            if isinstance(item, _Failure):
                raise item.error
            yield item
    finally:
        stop.set()
        thread.join()


class Behind:
    """`put(item)` hands an item to `consume(item)` on a background thread, at most `depth` waiting.
    Leaving the `with` block waits for every item; the first error of `consume` is raised then, or
    at the next `put`, and the items after it are dropped."""

    def __init__(self, consume, depth=2):
        self.consume, self.error = consume, None
        self.items = queue.Queue(maxsize=depth)
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while (item := self.items.get()) is not _END:
            if self.error is None:
                try:
                    self.consume(item)
                except BaseException as exc:
                    self.error = exc

    def put(self, item):
        if self.error is not None:
            raise self.error
        self.items.put(item)

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        self.items.put(_END)
        self.thread.join()
        if exc_type is None and self.error is not None:
            raise self.error
