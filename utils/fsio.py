"""Writing outputs so that nothing half-written is ever left behind.

Every output is written under a temporary name beside its destination and renamed into place
at the end; a failure or a kill leaves the destination as it was. Example:
    with staged_dir("data/sample", overwrite=False) as tmp: np.save(tmp / "a.npy", a)
"""
import contextlib
import errno
import json
import os
import shutil
from pathlib import Path

from utils.errors import UserError


# The file system refusing a write: the user's disk, quota or mount, never a bug of ours.
REFUSED_WRITES = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM, errno.EFBIG}


def describe_os_error(exc):
    """A short human reason for an OSError (permission denied, read-only file system, disk full)."""
    reasons = {
        errno.EACCES: "permission denied",
        errno.EPERM: "operation not permitted",
        errno.EROFS: "read-only file system",
        errno.ENOSPC: "no space left on the device",
        errno.EDQUOT: "disk quota exceeded",
        errno.EFBIG: "file too large for this file system or the process's file-size limit",
        errno.ENOTDIR: "a part of the path is a file, not a folder",
        errno.ENAMETOOLONG: "file name too long",
    }
    return reasons.get(exc.errno, exc.strerror or str(exc))


def refused_write(exc):
    """The OSError of a refused write behind `exc`: itself, or what it was raised during (torch
    reports a failed write as a RuntimeError raised while handling the OSError); else None."""
    while exc is not None:
        if isinstance(exc, OSError) and exc.errno in REFUSED_WRITES:
            return exc
        exc = exc.__cause__ or exc.__context__
    return None


@contextlib.contextmanager
def writing(path, kept="it is left as it was"):
    """Writes in the block that the file system refuses (full disk, read-only, quota) become one
    line naming `path`: what went wrong, and what was kept (`kept`)."""
    try:
        yield
    except (OSError, RuntimeError) as exc:
        refused = refused_write(exc)
        if refused is None:
            raise
        raise UserError(path, f"cannot be written ({describe_os_error(refused)}); {kept}") from None


def make_folder(path):
    """mkdir -p, with a refusal (read-only, full) in one line naming the folder."""
    with writing(path, kept="nothing was written there"):
        Path(path).mkdir(parents=True, exist_ok=True)
    return Path(path)


def ensure_parent(path):
    """Create the folder that will hold `path`, or explain in one line why it cannot be created."""
    parent = Path(path).absolute().parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(path, f"cannot create the folder {parent} ({describe_os_error(exc)}); choose another output path") from None
    if not os.access(parent, os.W_OK):
        raise UserError(path, f"the folder {parent} is not writable; choose another output path")
    return parent


def temp_name(path, suffix=""):
    """A hidden temporary path in the same folder as `path` (so the final rename is atomic)."""
    path = Path(path)
    return path.with_name(f".{path.name}.partial-{os.getpid()}{suffix}")


def remove_partials(folder):
    """Delete temporary files that an interrupted write left in `folder` and its sub-folders."""
    for leftover in Path(folder).rglob(".*.partial-*"):
        if leftover.is_dir():
            shutil.rmtree(leftover, ignore_errors=True)
        else:
            leftover.unlink(missing_ok=True)


def is_nonempty_dir(path):
    path = Path(path)
    return path.is_dir() and any(path.iterdir())


@contextlib.contextmanager
def staged_dir(dest, overwrite=False, what="output folder"):
    """Yield an empty temporary folder; on success it replaces `dest`, on any failure it is removed.

    A non-empty `dest` is refused unless `overwrite`; a file at `dest` is always refused."""
    dest = Path(dest)
    if dest.exists() and not dest.is_dir():
        raise UserError(dest, f"exists and is a file, not a folder; choose another {what}")
    if is_nonempty_dir(dest) and not overwrite:
        raise UserError(dest, f"{what} exists and is not empty; pass --overwrite to replace it or choose another path")
    ensure_parent(dest)
    tmp = temp_name(dest)
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        tmp.mkdir()
    except OSError as exc:
        raise UserError(dest, f"cannot write here ({describe_os_error(exc)}); choose another {what}") from None
    try:
        with writing(dest, kept="nothing was changed there" if not dest.exists() else "the one there is left as it was"):
            yield tmp
            _replace_dir(tmp, dest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _replace_dir(tmp, dest):
    if dest.exists():
        old = temp_name(dest, ".old")
        os.replace(dest, old)
        os.replace(tmp, dest)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, dest)


class StagedFile:
    """A temporary path (`.tmp`, same folder and suffix as `dest`) that `commit()` renames to `dest`
    and `discard()` deletes. As a context manager it commits on success and discards on failure."""

    def __init__(self, dest, overwrite=True, what="output file"):
        self.dest = Path(dest)
        if self.dest.is_dir():
            raise UserError(self.dest, f"is a folder; give a file name for the {what}")
        if self.dest.exists() and not overwrite:
            raise UserError(self.dest, "exists; pass --overwrite to replace it or choose another path")
        ensure_parent(self.dest)
        self.tmp = temp_name(self.dest, self.dest.suffix)

    def commit(self):
        os.replace(self.tmp, self.dest)

    def discard(self):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.tmp)

    def __enter__(self):
        return self.tmp

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            try:
                self.commit()
                return
            except BaseException:
                self.discard()
                raise
        self.discard()


def staged_file(dest, overwrite=True, what="output file"):
    """`with staged_file(dest) as tmp:` write `tmp`; on success it is renamed to `dest`, on failure deleted."""
    return StagedFile(dest, overwrite, what)


def write_bytes_atomic(path, data):
    """Write a small file so that readers see the old or the new content, never a mix."""
    path = Path(path)
    tmp = temp_name(path)
    try:
        with writing(path), open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
            os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_text_atomic(path, text):
    write_bytes_atomic(path, text.encode("utf-8"))


def read_json(path):
    """The JSON in `path`, or None when it is missing or damaged."""
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def write_json_atomic(path, obj):
    write_text_atomic(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")
