"""What vgan does on a GPU, checked on a CPU by standing in for torch.cuda: the device and backend
each rank takes, the precision each GPU generation gets, the thread that feeds a rank's GPU, the
memory probe and budget, the GPUs a sweep hands out, a training step that never waits for the
device, and running out of GPU memory. (bench/gpu.py measures the rest on a real GPU.)"""
import contextlib
import dataclasses
import math
import os
import threading
import time
from datetime import timedelta

import numpy as np
import pytest
import torch
import torch.distributed as dist
from torch.utils._python_dispatch import TorchDispatchMode

from cli.train_flags import default_flags
from compute import choice, precision
from compute.determinism import noting_nondeterministic
from conftest import REPO, TINY
from test_faults import wait_for
from datasets.pipeline import InputPipeline
from datasets.slider import ClipSlider
from inference import generate, tiles
from networks import build_generator
from networks.layers import InstanceNorm3d, group_norm_keeps_layout
from training import distributed, loop
from training import modes
from training.step import gan_step
from utils import device as device_module
from utils.errors import TrainingError, UserError
from utils.gpus import GpuPool, visible_gpus

CUDA = torch.device("cuda", 0)


@pytest.fixture
def gpus(monkeypatch):
    """torch.cuda as on a machine with `count` GPUs of compute capability `capability`: set them on the fixture."""
    class Fake:
        count, capability = 2, (9, 0)

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: Fake.count)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: Fake.capability)
    monkeypatch.setattr(torch.cuda, "set_device", lambda device: None)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)  # as torch says even where it is emulated
    return Fake


def test_each_torchrun_rank_joins_nccl_on_its_own_gpu_with_the_timeout_asked(gpus, monkeypatch):
    joined, groups = [], []
    monkeypatch.setattr(dist, "init_process_group", lambda backend, **options: joined.append((backend, options)))
    monkeypatch.setattr(dist, "new_group", lambda **options: groups.append(options) or "control group")
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("LOCAL_RANK", "1")
    ranks, device = distributed.init_distributed("auto", 45)
    assert device == torch.device("cuda", 1) and ranks.rank == 1 and ranks.control == "control group"
    (backend, options), = joined
    assert backend == "nccl" and options["timeout"] == timedelta(minutes=45)
    assert options.get("device_id", device) == device  # where torch takes device_id, it is this rank's GPU
    assert groups == [{"backend": "gloo", "timeout": timedelta(minutes=45)}]  # host flags never wait for the GPU


def test_a_process_that_sees_one_gpu_takes_it_whatever_its_local_rank(gpus):
    gpus.count = 1  # as Slurm (or a sweep) gives each process its own GPU
    assert device_module.pick_device("auto", local_rank=3) == CUDA
    gpus.count = 2
    with pytest.raises(UserError, match="local rank 3 but it sees only 2 GPUs"):
        device_module.pick_device("auto", local_rank=3)


@pytest.mark.parametrize("capability, auto, dtype", [((7, 0), False, torch.float16), ((7, 5), False, torch.float16),
                                                     ((8, 0), True, torch.bfloat16), ((9, 0), True, torch.bfloat16)])
def test_bfloat16_only_where_the_gpu_has_it_in_hardware_float16_with_a_scaler_before(gpus, capability, auto, dtype, monkeypatch):
    gpus.capability = capability  # V100 7.0, T4 7.5: torch.cuda.is_bf16_supported() says True there, emulated
    made = []
    monkeypatch.setattr(torch.amp, "GradScaler", lambda device_type, enabled: made.append(enabled))
    assert precision.resolve_amp("auto", CUDA) is auto and precision.amp_pays_here(CUDA) is auto
    assert precision.resolve_amp("on", CUDA) is True and precision.amp_dtype(CUDA) == dtype
    precision.grad_scaler(CUDA, amp=True)
    assert made == [dtype == torch.float16]
    assert choice.Compute(True, False).describe(CUDA).startswith(str(dtype).removeprefix("torch."))


def test_the_prefetch_thread_records_its_copies_on_the_ranks_own_gpu(monkeypatch):
    """The current CUDA device is per thread: the producer must set it, or it works on GPU 0."""
    current, recorded, rank_gpu = threading.local(), [], torch.device("cuda", 1)
    monkeypatch.setattr(torch.cuda, "set_device", lambda device: setattr(current, "device", device))
    monkeypatch.setattr(torch.cuda, "current_stream", lambda device=None: ("stream of", device))

    class Event:
        def record(self, stream=None):
            recorded.append((threading.current_thread().name, getattr(current, "device", "GPU 0"), stream))

        def synchronize(self):
            pass

    monkeypatch.setattr(torch.cuda, "Event", Event)
    monkeypatch.setattr("datasets.pipeline.to_model_input", lambda clips, device, channels_last: torch.from_numpy(clips))
    frames = np.zeros((30, 8, 8, 3), np.uint8)
    pipeline = InputPipeline(ClipSlider(frames, frames, [(0, 30)], clip_frames=4, stride=2, batch_size=2), torch.device("cpu"), prefetch=True)
    pipeline.device = rank_gpu  # buffers made on the CPU; from here on it feeds cuda:1
    assert len(list(pipeline.epoch(0))) == 7
    main = threading.current_thread().name
    assert recorded and all(thread != main and device == rank_gpu and stream == ("stream of", rank_gpu) for thread, device, stream in recorded)


def test_a_batch_outside_the_pipeline_is_copied_as_it_is_not_pinned_first(monkeypatch):
    copies = []
    monkeypatch.setattr(torch.Tensor, "pin_memory", lambda self, *a: pytest.fail("pinned: one more copy of the batch"))
    real_to = torch.Tensor.to
    monkeypatch.setattr(torch.Tensor, "to", lambda self, *a, **k: copies.append((a, k)) or (self if a and a[0] == CUDA else real_to(self, *a, **k)))
    device_module.to_model_input(np.zeros((1, 2, 4, 4, 3), np.uint8), CUDA)
    assert copies[0] == ((CUDA,), {"non_blocking": False})  # pageable memory: an ordinary copy


def test_the_probe_warms_up_before_it_measures_and_refuses_a_cost_that_does_not_grow(monkeypatch):
    """cuDNN's benchmark mode tries its kernels, each with a workspace, on the first pass at a shape."""
    class Allocator:
        allocated, peak, seen = 100, 100, set()

    def forward(x):  # 1000 bytes per pixel, and a 50 MB trial workspace the first time a shape is seen
        need = 1000 * x.shape[-1] * x.shape[-2] + (0 if x.shape in Allocator.seen else 50 * 2 ** 20)
        Allocator.seen.add(x.shape)
        Allocator.peak = max(Allocator.peak, Allocator.allocated + need)

    monkeypatch.setattr(torch.cuda, "synchronize", lambda device=None: None)
    monkeypatch.setattr(torch.cuda, "reset_peak_memory_stats", lambda device=None: setattr(Allocator, "peak", Allocator.allocated))
    monkeypatch.setattr(torch.cuda, "memory_allocated", lambda device=None: Allocator.allocated)
    monkeypatch.setattr(torch.cuda, "max_memory_allocated", lambda device=None: Allocator.peak)
    assert tiles.peak_bytes(forward, torch.zeros(1, 3, 2, 32, 32), CUDA) == 1000 * 32 * 32  # no trace of the search
    costs = iter([6_000_000, 4_000_000])  # what a probe without its warm-up could report: falling with the frame
    monkeypatch.setattr(tiles, "peak_bytes", lambda network, x, device: next(costs))
    with pytest.raises(tiles.ProbeError, match="says nothing of larger frames; give the tile size yourself with --tile"):
        tiles.forward_cost(build_generator("unet", channels=4, depth=2), 2, torch.device("cpu"))


def test_the_budget_counts_what_torch_holds_cached_as_free(monkeypatch):
    gib = 2 ** 30
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: (4 * gib, 80 * gib))
    monkeypatch.setattr(torch.cuda, "memory_reserved", lambda device=None: 10 * gib)  # training left 8 GB cached, unused
    monkeypatch.setattr(torch.cuda, "memory_allocated", lambda device=None: 2 * gib)
    assert generate.default_budget(CUDA) == generate.BUDGET_SHARE * 12 * gib


def test_on_a_gpu_the_windows_are_checked_against_the_ram_beside_it(monkeypatch):
    monkeypatch.setattr(generate, "available_memory", lambda: 2 ** 30)
    generate.check_host_memory((4, 9, 1080, 1920))  # 2 copies of 4 windows of 1080p: 0.45 GB
    with pytest.raises(UserError, match="of RAM beside the GPU"):
        generate.check_host_memory((4, 9, 2160, 3840))  # 1.8 GB


def test_a_gpu_way_is_timed_over_repeated_runs_long_enough_to_mean_something(monkeypatch):
    clock = [0.0]  # a run takes 10 ms of a clock the test moves, so no figure depends on this machine
    monkeypatch.setattr(torch.cuda, "synchronize", lambda device=None: None)
    monkeypatch.setattr(choice.time, "perf_counter", lambda: clock[0])
    runs = []

    def run():
        runs.append(1)
        clock[0] += 0.01

    seconds = choice.way_timer([choice.Compute(False, False)], lambda way: run, CUDA)(0)
    assert len(runs) == math.ceil(choice.CUDA_SECONDS / 0.01 - 1e-9)  # runs until they fill CUDA_SECONDS
    assert seconds == pytest.approx(0.01)  # a mean over the runs, not one launch
    runs.clear()
    choice.way_timer([choice.Compute(False, False)], lambda way: run, torch.device("cpu"))(0)
    assert runs == [1]  # a CPU step is long already


def test_cuda_visible_devices_is_read_as_cuda_reads_it(monkeypatch, tmp_path):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2, GPU-5f3a,-1,3")
    assert visible_gpus() == ["2", "GPU-5f3a"]  # -1 hides what follows
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES")
    (tmp_path / "0000:17:00.0").mkdir()
    (tmp_path / "0000:65:00.0").mkdir()
    monkeypatch.setattr("utils.gpus.NVIDIA_GPUS", str(tmp_path))
    assert visible_gpus() == ["0", "1"]
    monkeypatch.setattr("utils.gpus.NVIDIA_GPUS", str(tmp_path / "none"))
    assert visible_gpus() == []


def test_sweep_points_each_see_a_gpu_of_their_own_and_share_evenly_when_there_are_more(tmp_path):
    from experiments.sweep import run_points

    fake_main = tmp_path / "main.py"  # writes what the point's training saw
    fake_main.write_text("import os, sys, time\ntime.sleep(0.3)\n"
                         "open(sys.argv[-1], 'w').write(os.environ.get('CUDA_VISIBLE_DEVICES', 'unset'))\n")
    jobs = [(f"p{i}", [str(tmp_path / f"p{i}.seen")]) for i in range(4)]
    codes = run_points(jobs, fake_main, tmp_path, parallel=2, on_done=lambda *a: None, gpus=["3", "5"])
    assert set(codes.values()) == {0}
    seen = [(tmp_path / f"p{i}.seen").read_text() for i in range(4)]
    assert seen[:2] == ["3", "5"] and sorted(seen) == ["3", "3", "5", "5"]  # two at a time, never both on one GPU
    run_points(jobs[:1], fake_main, tmp_path, parallel=1, on_done=lambda *a: None, gpus=[])
    assert (tmp_path / "p0.seen").read_text() == os.environ.get("CUDA_VISIBLE_DEVICES", "unset")  # no GPU: left as it was
    pool = GpuPool(["0", "1"])
    held = [pool.take(1) for _ in range(3)]
    assert held == [["0"], ["1"], ["0"]]  # three points, two GPUs: the least used each time
    pool.give_back(held[1])
    assert pool.take(2) == ["1", "0"]


def test_a_dask_worker_hands_each_point_gpus_no_other_point_holds(monkeypatch):
    from experiments.cluster import worker_gpus

    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1,2,3")
    worker = type("Worker", (), {})()
    first, second = worker_gpus(worker).take(2), worker_gpus(worker).take(2)
    assert first == ["0", "1"] and second == ["2", "3"]  # one pool per worker, kept between its points


class HostSyncSpy(TorchDispatchMode):
    """Fails on anything that reads a tensor's value on the host: .item(), bool(), float() (through
    aten._local_scalar_dense), .tolist(), .numpy() and .cpu(). On a GPU each of these waits for the
    device; on a CPU they are free, so the spy stands in for CUDA's sync checker."""

    active = False

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if func is torch.ops.aten._local_scalar_dense.default:
            raise AssertionError("a tensor was read on the host (.item(), bool() or float())")
        return func(*args, **(kwargs or {}))


@contextlib.contextmanager
def host_reads_fail(monkeypatch):
    for name in ("tolist", "numpy", "cpu"):
        original = getattr(torch.Tensor, name)

        def guarded(self, *a, _original=original, _name=name, **k):
            if HostSyncSpy.active:
                raise AssertionError(f"a tensor was read on the host (.{_name}())")
            return _original(self, *a, **k)

        monkeypatch.setattr(torch.Tensor, name, guarded)
    HostSyncSpy.active = True
    try:
        with HostSyncSpy():
            yield
    finally:
        HostSyncSpy.active = False


def with_paired_step(monkeypatch, train_step):
    """The paired mode, with `train_step` as its step, for this test."""
    monkeypatch.setattr(modes, "PAIRED", dataclasses.replace(modes.PAIRED, new_train_step=lambda *args, **kwargs: train_step))


def test_a_training_step_never_waits_for_the_device_between_log_steps(tiny, tmp_path, monkeypatch):
    """Every step's own work (the step, the loss tally, the weight average, the stop check) runs
    under the spy; the reads at log steps, saves and epoch ends do not."""
    spied = []

    def spying(function):
        def wrapped(*args, **kwargs):
            with host_reads_fail(monkeypatch):
                result = function(*args, **kwargs)
            spied.append(function.__name__)
            return result
        return wrapped

    with_paired_step(monkeypatch, spying(gan_step))  # the paired mode's step
    monkeypatch.setattr(loop.LossTally, "add", spying(loop.LossTally.add))
    monkeypatch.setattr(loop.WeightAverage, "update", spying(loop.WeightAverage.update))
    monkeypatch.setattr(loop, "any_rank", spying(loop.any_rank))
    config = {**default_flags(), "data": str(tiny), "depth": 2, "channels": 4, "d_channels": 4, "d_layers": 2, "pool": 4,
              "step": 2, "max_steps": 8, "log_every": 4, "ema": 0.9, "temporal": 0.0, "amp": "off", "memory_format": "contiguous",
              "device": "cpu", "name": "spied", "checkpoints": str(tmp_path)}
    assert loop.train(config) == 0
    assert spied.count("gan_step") == spied.count("add") == spied.count("update") == spied.count("any_rank") == 8
    with pytest.raises(AssertionError, match="read on the host"), host_reads_fail(monkeypatch):
        torch.zeros(2).sum().item()  # the spy catches what the step used to do


def test_running_out_of_gpu_memory_in_training_is_one_line_naming_what_to_lower(tiny, tmp_path, monkeypatch):
    def out_of_memory(*args, **kwargs):
        raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    with_paired_step(monkeypatch, out_of_memory)
    config = {**default_flags(), "data": str(tiny), "depth": 2, "channels": 4, "d_channels": 4, "d_layers": 2, "pool": 4,
              "step": 2, "max_steps": 2, "amp": "off", "memory_format": "contiguous", "device": "cpu", "name": "oom",
              "checkpoints": str(tmp_path)}
    with pytest.raises(TrainingError) as raised:
        loop.train(config)
    message = str(raised.value)
    assert "ran out of memory training unet on batches of 5 clips of 4 frames (whole frames of" in message
    assert "lower -batch, -pool or --crop" in message and "\n" not in message


def test_compare_goes_on_in_tiles_when_the_gpu_runs_out_of_memory(capsys):
    torch.manual_seed(0)
    network = build_generator("unet", channels=4, depth=2).eval()
    clips = np.random.default_rng(0).integers(0, 256, (1, 4, 64, 64, 3), dtype=np.uint8)
    expected = generate.ClipGenerator(network, torch.device("cpu"))(clips)
    plans = generate.HalvedPlans(network, clips.shape[:4], 4 * 2 ** 20, torch.device("cpu"), halo=None,
                                 cost=tiles.forward_cost(network, 4, torch.device("cpu")))
    fallback = generate.ClipGenerator(network, torch.device("cpu"), smaller_plan=plans)
    real_generate, calls = fallback.generate, []

    def whole_frames_do_not_fit(batch):
        calls.append(batch.shape)
        if batch.shape[2:4] == (64, 64):
            raise torch.cuda.OutOfMemoryError("CUDA out of memory")
        return real_generate(batch)

    fallback.generate = whole_frames_do_not_fit
    out = fallback(clips)
    assert "the GPU ran out of memory; running 64x64 frames in" in capsys.readouterr().err
    assert fallback.tiling is not None and not fallback.tiling.covers(64, 64)
    assert 10 * np.log10(255 ** 2 / np.mean((out.astype(float) - expected) ** 2 + 1e-12)) >= 45  # tiles are exact


def test_instance_norm_off_the_cpu_keeps_layout_and_dtype_and_matches_group_norm(monkeypatch):
    torch.manual_seed(0)
    norm = InstanceNorm3d(6)
    torch.nn.init.normal_(norm.weight)
    torch.nn.init.normal_(norm.bias)
    x = torch.randn(2, 6, 3, 5, 7).to(memory_format=torch.channels_last_3d).requires_grad_()
    expected = norm(x)  # F.group_norm, as on a CPU
    grads = torch.autograd.grad(expected.square().sum(), [x, norm.weight, norm.bias])
    assert group_norm_keeps_layout(x)
    monkeypatch.setattr("networks.layers.group_norm_keeps_layout", lambda x: False)  # the path CUDA takes
    y = norm(x)
    assert y.is_contiguous(memory_format=torch.channels_last_3d)  # F.group_norm on CUDA returns it contiguous
    assert torch.allclose(y, expected, atol=1e-5)
    for got, want in zip(torch.autograd.grad(y.square().sum(), [x, norm.weight, norm.bias]), grads):
        assert torch.allclose(got, want, atol=1e-4)
    assert torch.autograd.gradcheck(lambda x: InstanceNorm3d(2).double()(x), torch.randn(1, 2, 2, 3, 3, dtype=torch.float64,
                                                                                     requires_grad=True))
    half = norm(x.detach().bfloat16())
    assert half.dtype == torch.bfloat16  # CUDA's autocast runs group_norm in float32 and returns float32
    norm.shared = (torch.zeros(1, 6, 1, 1, 1), torch.ones(1, 6, 1, 1, 1))  # the tiles' path
    assert norm(x.detach().bfloat16()).dtype == torch.bfloat16


def test_deterministic_names_the_operations_that_have_no_deterministic_version(tiny, tmp_path, monkeypatch, capsys):
    found = []
    with noting_nondeterministic(found):
        torch.use_deterministic_algorithms(True, warn_only=True)
        try:
            torch.zeros(4).put_(torch.tensor([1, 1]), torch.tensor([1.0, 2.0]))  # no deterministic version on a CPU either
        finally:
            torch.use_deterministic_algorithms(False)
    assert found == ["put_"]
    def step_with_put(*args, **kwargs):
        torch.zeros(4).put_(torch.tensor([1, 1]), torch.tensor([1.0, 2.0]))
        return gan_step(*args, **kwargs)

    with_paired_step(monkeypatch, step_with_put)
    config = {**default_flags(), "data": str(tiny), "depth": 2, "channels": 4, "d_channels": 4, "d_layers": 2, "pool": 4,
              "step": 2, "max_steps": 3, "amp": "off", "memory_format": "contiguous", "device": "cpu", "deterministic": True,
              "name": "det", "checkpoints": str(tmp_path)}
    try:
        assert loop.train(config) == 0
    finally:
        torch.use_deterministic_algorithms(False)
    lines = [line for line in capsys.readouterr().err.splitlines() if "--deterministic" in line]
    assert len(lines) == 1 and "no deterministic version, so two runs may still differ: put_" in lines[0]  # once, at the first step


def test_search_trials_each_see_a_gpu_of_their_own(tmp_path):
    # As a grid's points do: two trials at a time on two GPUs never share one (they all landed on cuda:0).
    from experiments.search import LocalTrials

    fake_main = tmp_path / "main.py"  # writes what the trial's training saw, then waits to be let go
    fake_main.write_text("import os, sys, time\nopen(sys.argv[-1], 'w').write(os.environ.get('CUDA_VISIBLE_DEVICES', 'unset'))\n"
                         "while not os.path.exists(sys.argv[-1] + '.go'): time.sleep(0.05)\n")
    trials = LocalTrials(fake_main, tmp_path, parallel=2, gpus=["3", "5"])
    seen = {name: tmp_path / f"{name}.seen" for name in ("t0", "t1", "t2")}
    trials.start("t0", [str(seen["t0"])])
    trials.start("t1", [str(seen["t1"])])
    wait_for(lambda: seen["t0"].exists() and seen["t1"].exists(), timeout=60, what="both trials started")
    assert sorted([seen["t0"].read_text(), seen["t1"].read_text()]) == ["3", "5"]
    first = seen["t0"].read_text()
    (tmp_path / "t0.seen.go").write_text("")
    wait_for(lambda: trials.ended() == [("t0", 0)], timeout=60, what="the first trial's end")
    trials.start("t2", [str(seen["t2"])])  # the GPU the first trial gave back
    wait_for(lambda: seen["t2"].exists(), timeout=60, what="the third trial started")
    assert seen["t2"].read_text() == first
    for name in ("t1", "t2"):
        (tmp_path / f"{name}.seen.go").write_text("")
    wait_for(lambda: (trials.ended(), trials.running == 0)[1], timeout=60, what="the trials' end")
