"""The compute cache that every vgan process on a machine shares: an entry, once written, is never
lost to another process's write; a key being measured is measured once; a damaged file is set aside."""
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from conftest import REPO, spawn

# A process that asks the cache for KEY. It leaves a mark MARK.asking as it asks, and its measurement
# leaves MARK.measuring, then, if told to, waits for a file HOLD to appear before it returns VALUE:
# the test decides when each measurement ends.
ASK = """
import json, sys, time
from pathlib import Path
from compute.cache import remembered
key, value, mark, hold = sys.argv[1:5]
def measure():
    Path(mark + ".measuring").touch()
    while hold and not Path(hold).exists():
        time.sleep(0.01)
    return value
Path(mark + ".asking").touch()
print(json.dumps(remembered(key, measure)))
"""


def ask(cache, key, value, mark, hold=""):
    """A process asking `cache` for `key` (its measurement gives `value`, after `hold` exists)."""
    env = {**os.environ, "VGAN_CACHE_DIR": str(cache)}
    return spawn([sys.executable, "-c", ASK, key, value, mark, hold], cwd=REPO, env=env,
                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def answer(proc, warnings=None):
    """What the process got from the cache; its stderr lines go to `warnings` when given."""
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    if warnings is not None:
        warnings.extend(err.strip().splitlines())
    return json.loads(out)


def wait_for(path):
    deadline = time.monotonic() + 300  # generous: only a hung process ever reaches it
    while not Path(path).exists():
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.01)


def cached(cache):
    return json.loads((cache / "compute.json").read_text())


def test_a_process_that_measured_while_another_wrote_keeps_both_entries(tmp_path):
    # The first process reads the cache, then measures until the second has measured, written and
    # ended: a cache that writes back what it read before measuring loses the second's entry.
    cache = tmp_path / "cache"
    slow = ask(cache, "slow", "one", tmp_path / "slow", hold=tmp_path / "quick.done")
    wait_for(tmp_path / "slow.measuring")
    quick = ask(cache, "quick", "two", tmp_path / "quick")
    assert answer(quick) == "two"
    (tmp_path / "quick.done").touch()
    assert answer(slow) == "one"
    assert cached(cache) == {"slow": "one", "quick": "two"}


def test_a_key_being_measured_is_waited_for_and_shared_not_measured_again(tmp_path):
    # Two runs of one configuration start together: the second takes the first's measurement, so
    # both compute the same way (and one job is never timed twice at once).
    cache = tmp_path / "cache"
    first = ask(cache, "job", "first", tmp_path / "first", hold=tmp_path / "release")
    wait_for(tmp_path / "first.measuring")
    second = ask(cache, "job", "second", tmp_path / "second")
    wait_for(tmp_path / "second.asking")
    # The second is asking now. A cache without a key lock lets it measure within this time (a
    # fraction of a second); one with a lock keeps it waiting however long.
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and not (tmp_path / "second.measuring").exists():
        time.sleep(0.01)
    (tmp_path / "release").touch()
    assert answer(first) == answer(second) == "first"
    assert not (tmp_path / "second.measuring").exists()
    assert cached(cache) == {"job": "first"}


def test_a_damaged_cache_is_set_aside_with_a_warning_and_measured_again(tmp_path):
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / "compute.json").write_text('{"job": "half-writ')
    warnings = []
    assert answer(ask(cache, "job", "measured", tmp_path / "job"), warnings) == "measured"
    assert cached(cache) == {"job": "measured"}
    aside = [p for p in cache.iterdir() if p.name.startswith("compute.json.damaged-")]
    assert len(aside) == 1 and aside[0].read_text() == '{"job": "half-writ'
    assert len(warnings) == 1 and warnings[0].startswith("warning: ") and aside[0].name in warnings[0], warnings


def test_an_unwritable_cache_measures_says_so_and_goes_on(tmp_path):
    cache = tmp_path / "cache"
    cache.write_text("a file where the cache folder should be")
    warnings = []
    assert answer(ask(cache, "job", "measured", tmp_path / "job"), warnings) == "measured"
    assert len(warnings) == 1 and warnings[0].startswith("warning: ") and "cannot be written" in warnings[0], warnings
