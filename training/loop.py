"""The training loop, top to bottom: open the experiment, load the data, build the networks, then
per step (1) update D, (2) update G; at each epoch's end validation, samples and a checkpoint.
Runs alone or as one rank under torchrun. A `Run` is built whole before the first step; what
changes while it trains is its `Position`, rank 0's `Report` and this invocation's `Clock`, and
each stage below is a plain function of them.

    python main.py train -net unet --data data/sample_gray --epochs 20
"""
import contextlib
import dataclasses
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from torch.nn.parallel import DistributedDataParallel

from cli.train_flags import as_typed
from datasets.build import build_dataset, derived_sources
from datasets.flow import load_flow
from datasets.pipeline import InputPipeline
from datasets.sample import SAMPLE_DATA, ensure_sample
from datasets.slider import training_slider, validation_slider
from datasets.store import fingerprint, load_dataset
from networks.registry import MODES
from networks.layers import SizeError, check_size, clip_mismatch, count_parameters
from training.autotune import choose_compute
from training.distributed import Ranks, any_rank, barrier, elastic_restart, init_distributed, ranks_agree, shutdown
from runfolder.checkpoint import (build_checkpoint, load_checkpoint, restore_networks, restore_random_state, save_checkpoint,
                                  saved_compute, saved_position)
from runfolder.config import resumed_config, write_config, write_network_copy
from runfolder.events import FAILED, FINISHED, INTERRUPTED, RESUMED, STARTED
from runfolder.layout import RunFolder, experiment_folder
from runfolder.lock import ExperimentLock
from runfolder.metrics import MetricsLog
from runfolder.verdicts import DRIVER_SILENCE_S, PRUNED, SILENT, VerdictGate
from training.from_flags import architecture
from training.run_spec import RunSpec, run_spec_on
from training.signals import EXIT_CODES, StopSignals
from training.ema import WeightAverage
from training.step import LossWeights, Nets, NonFiniteGuard, NonFiniteLoss
from training.tally import LossTally
from training.watchdog import Watchdog
from compute.choice import Compute
from compute.determinism import deterministic_algorithms, noting_nondeterministic
from compute.precision import grad_scaler
from utils.device import to_model_input
from utils.errors import CheckpointError, DatasetError, TrainingError, warn
from utils.fsio import remove_partials
from utils.progress import Progress, duration
from utils.size import Size


@dataclass
class Position:
    step: int = 0  # steps done in all
    epoch: int = 0  # epochs finished
    epoch_step: int = 0  # steps done in the current epoch
    saved_step: int = 0  # the step last.pt holds


@dataclass(frozen=True)
class Data:
    dataset: object
    fingerprint: str
    train_windows: object  # datasets/slider.py: a ClipSlider, or an UnpairedSlider
    val: tuple | None  # the validation windows (ClipSlider) of each side (A's, and an unpaired dataset's B's), or None


@dataclass
class Run:
    """What one training run is, built whole before its first step: its spec (the flags with
    --residual decided, resolved once), where it writes, where it runs, its data, its networks and
    how they compute."""

    spec: RunSpec
    folder: RunFolder
    ranks: Ranks
    device: torch.device
    data: Data
    nets: Nets
    compute: Compute  # precision and memory layout
    residual_note: str  # how --residual was decided
    temporal_note: str  # whether the default temporal loss applies
    train_step: object  # the mode's step function (training/modes.py), which may hold state (the history pools)
    on_epoch_end: object = None  # called with the folder after every epoch's report (rank 0): the experiment page

    @property
    def mode(self):
        return self.spec.mode.load()

    @property
    def flags(self):
        return self.spec.flags

    @property
    def steps_per_epoch(self):
        return len(self.data.train_windows)

    @property
    def total_steps(self):
        return self.flags["max_steps"] or self.flags["epochs"] * self.steps_per_epoch

    @property
    def amp(self):
        return self.compute.amp

    @property
    def channels_last(self):
        return self.compute.channels_last


@dataclass
class Clock:
    """This invocation's time: when its first step began, and when --max-seconds ends it."""

    started: float
    deadline: float | None
    out_of_time: bool = False

    @classmethod
    def start(cls, max_seconds):
        now = time.monotonic()
        return cls(now, now + max_seconds if max_seconds else None)

    def late(self):
        return self.deadline is not None and time.monotonic() >= self.deadline


@dataclass(frozen=True)
class Report:
    """Rank 0's: metrics.jsonl (with TensorBoard), the progress line and the watchdog."""

    log: MetricsLog
    progress: Progress
    watchdog: Watchdog

    def close(self):
        self.progress.close()
        self.log.close()


def budget_left(run, position, clock):
    return position.step < run.total_steps and not clock.out_of_time


def lr_at(step, base_lr, total_steps, decay_steps):
    """Constant learning rate, then a linear decay to zero over the last `decay_steps` steps."""
    if decay_steps <= 0:
        return base_lr
    return base_lr * min(1.0, max(0.0, (total_steps - step) / decay_steps))


def train(config, explicit=(), defaults=None, on_epoch_end=None):
    """Train as the flags in `config` say; returns the exit code (0, or 130/143 when interrupted).
    `explicit` names the flags the user typed (they override a resumed config); `defaults` are the
    flags' defaults (the start line shows what differs)."""
    ranks, device = init_distributed(config["device"], config["dist_timeout"])
    try:
        with dry_run_folder(config) as config:
            folder = experiment_folder(config)
            with ExperimentLock(folder) if ranks.is_main else contextlib.nullcontext():
                code = run_training(config, set(explicit), defaults or {}, ranks, device, on_epoch_end)
        barrier(ranks)  # tear the group down together: a rank that leaves early can abort in gloo's threads
        return code
    finally:
        shutdown(ranks)


DRY_RUN = {"max_steps": 1, "resume": False}  # what --dry-run sets, besides a temporary --checkpoints
# Flags the start lines say in words: "into FOLDER"; "residual on (...); temporal loss 10 (...)".
SAID_ON_THE_START_LINES = ("resume", "name", "checkpoints", "residual", "temporal")


@contextlib.contextmanager
def dry_run_folder(config):
    """For --dry-run, the config of one step into a temporary folder that is deleted after; otherwise `config`."""
    if not config["dry_run"]:
        yield config
        return
    with tempfile.TemporaryDirectory() as tmp:
        print("dry run: one training step and one validation pass; nothing is kept", flush=True)
        yield {**config, "checkpoints": tmp, **DRY_RUN}


def run_training(config, explicit, defaults, ranks, device, on_epoch_end):
    try:
        run, state = build_run(config, explicit, ranks, device, on_epoch_end)
        try:
            return train_from(run, state, defaults)
        finally:
            run.nets = None  # the DDP wrappers hold the process group: it must be free to go before shutdown() (see there)
    except torch.cuda.OutOfMemoryError:
        raise TrainingError(experiment_folder(config), out_of_memory(config, device)) from None


def out_of_memory(config, device):
    """What to lower when a training step does not fit in the GPU's memory, in one line."""
    size = f"{config['crop'][0]}x{config['crop'][1]} crops" if config["crop"] else "whole frames"
    return (f"{device} ran out of memory training {config['network']} on batches of {config['batch']} clips of {config['pool']} "
            f"frames ({size} of {config['data']}); lower -batch, -pool or --crop, make the network smaller, or try --amp on")


def build_run(config, explicit, ranks, device, on_epoch_end):
    """(the Run, the saved checkpoint or None): the experiment opened, the data loaded, --residual
    decided, the networks built and the compute chosen."""
    folder = experiment_folder(config)
    state, config = open_experiment(config, explicit, folder, ranks)
    if config["deterministic"]:
        deterministic_algorithms()
    dataset = open_dataset(config, ranks)
    spec, notes = run_spec_on(config, dataset, state, temporal_asked="temporal" in explicit or state is not None)
    check_mode(spec, dataset)
    data = load_data(spec, dataset, ranks, state, folder)
    train_step = mode_step(spec, ranks.rank)
    nets, compute = build_networks(spec, data.train_windows, ranks, device, state, train_step)
    if state is not None and state.get("step_state") is not None:
        train_step.load_state_dict(state["step_state"], device)
    return Run(spec, folder, ranks, device, data, nets, compute, notes["residual"], notes["temporal"], train_step, on_epoch_end), state


def train_from(run, state, defaults):
    """The training of a built Run, from the saved checkpoint `state` or the start; the exit code."""
    position = restore_position(run, state)
    if position.step >= run.total_steps:
        if run.ranks.is_main:
            print(f"{run.folder}: already trained for {position.step} steps; raise --epochs or --max-steps to train further")
        return 0
    report = None
    try:
        with StopSignals() as signals:  # from the first save on: a stop while it validates at step 0 still saves
            if run.ranks.is_main:
                report = start_log(run, position, resumed=state is not None, defaults=defaults)
            return train_epochs(run, position, report, signals)
    except NonFiniteLoss as exc:  # every update from exc.step on was skipped: the weights are those of the step before
        if report is not None:
            report.log.write({"step": exc.step - 1, "epoch": position.epoch + 1, "event": FAILED, "reason": str(exc)})
        raise TrainingError(run.folder, f"{exc} at step {exc.step}: training stopped; {run.folder.last.name} keeps step "
                                        f"{position.saved_step}. Lower --lr (now {run.flags['lr']:g}), keep --spectral-norm on, "
                                        f"or try --gan-loss lsgan") from None
    finally:
        if report is not None:
            report.close()


def open_experiment(config, explicit, folder, ranks):
    """(the saved checkpoint or None, the config to train with): --resume continues the experiment's
    last.pt with the typed flags laid over its config, as does a run that torchrun restarted after a
    rank died; a new run into a folder holding one is refused."""
    last = folder.last
    if elastic_restart() and not config["resume"] and last.exists():
        if ranks.is_main:
            print(f"{folder}: torchrun restarted the ranks (restart {elastic_restart()}); resuming from {last.name}", flush=True)
        config = {**config, "resume": True}
    if config["resume"]:
        state = load_checkpoint(last)
        saved = {**LossWeights.before_they_existed(), **state["config"]}  # a run saved before a weight existed
        return state, resumed_config(saved, config, explicit, last, architecture)
    if last.exists():
        raise TrainingError(folder, "already holds a run; add --resume to continue it, or choose another --name")
    return None, config


def open_dataset(config, ranks):
    """The dataset (uint8 frames in RAM, or memory-mapped); the sample's is built on first use."""
    if ranks.is_main and config["data"] == SAMPLE_DATA and not Path(SAMPLE_DATA).exists():
        print(f"no {SAMPLE_DATA} yet: building it from the built-in sample video (gray -> colour, 64x64)", flush=True)
        build_dataset(SAMPLE_DATA, derived_sources([ensure_sample()], "gray"), Size(64, 64))
    barrier(ranks)
    return load_dataset(config["data"], mmap=config["mmap"])


def load_data(spec, dataset, ranks, state, folder):
    """The dataset's windows shared out between ranks, with the target's flow where the temporal loss needs it."""
    config = spec.flags
    data_print = fingerprint(config["data"])
    if state is not None and state["dataset_fingerprint"] != data_print and not config["allow_new_data"]:
        raise CheckpointError(folder.last, f"was trained on other data than {config['data']}; pass --allow-new-data "
                                                  f"to go on with this dataset, or resume with the original --data")
    crop = Size(*config["crop"]) if config["crop"] else None
    motion = load_flow(dataset, mmap=config["mmap"]) if spec.weights.temporal else None
    train_windows = training_slider(dataset, spec.clip_frames, spec.stride, config["batch"], seed=config["seed"], rank=ranks.rank,
                                    world_size=ranks.world_size, crop=crop, flip=config["flip"], source=config["data"],
                                    motion=motion)
    try:
        val = tuple(validation_slider(dataset, spec.clip_frames, config["batch"], config["data"], side)
                    for side in ("ab" if dataset.unpaired else "a"))
    except DatasetError:
        val = None
        if ranks.is_main:
            warn(config["data"], f"its validation part is shorter than --clip-frames {spec.clip_frames}: no validation; "
                                 f"rebuild with a larger --val-fraction")
    return Data(dataset, data_print, train_windows, val)


def check_mode(spec, dataset):
    """A paired mode needs pairs, and the unpaired modes an unpaired dataset; --temporal needs a target."""
    config, unpaired_mode = spec.flags, spec.mode.unpaired
    fitting = " or ".join(f"--mode {name}" for name, mode in MODES.items() if mode.unpaired == dataset.unpaired)
    if dataset.unpaired and not unpaired_mode:
        raise DatasetError(config["data"], f"is unpaired (no target for each input), so --mode {config['mode']} cannot train "
                                           f"on it; use {fitting}")
    if unpaired_mode and not dataset.unpaired:
        raise DatasetError(config["data"], f"is paired, but --mode {config['mode']} trains on unpaired data; build it with "
                                           f"`build-dataset --unpaired --a ... --b ...`, or train it with {fitting}")
    if unpaired_mode and spec.weights.temporal:
        raise DatasetError(config["data"], f"--temporal needs a target's motion, which --mode {config['mode']} has not; "
                                           f"--mode recycle keeps translations steady in time instead")


def build_networks(spec, train_windows, ranks, device, state, train_step):
    """(Nets, Compute): the mode's generator, discriminator (none without an adversarial loss) and
    their optimizers, restored from `state` when resuming, in the precision and layout the run
    computes in (timed with the mode's `train_step` on the first batch of `train_windows`). Every rank seeds alike, so
    they start identical. A network from the user's file is imported from its verified file."""
    config = spec.flags
    torch.manual_seed(config["seed"])
    generator, discriminator = spec.mode.load().networks(lambda: spec.build_generator(device),
                                                         lambda in_channels: spec.build_discriminator(device, in_channels))
    first = generator.ab if spec.mode.unpaired else generator  # the unpaired modes' generators are built alike
    for size in {train_windows.frame_size, train_windows.clip_size}:
        try:
            check_size(first, size.height, size.width)
        except SizeError as exc:
            raise DatasetError(config["data"], f"{exc}; rebuild the dataset with another --size, or change the network flags") from None
    if spec.generator.source is not None:  # a plug-in's promise, checked once before it trains: a clip to a clip
        problem = clip_mismatch(first, to_model_input(train_windows.gather(train_windows.epoch_batches(0)[0], 0, 0)[0][:1], device))
        if problem:
            raise TrainingError(spec.generator.file, f"{spec.generator.spec.class_name} {problem}")
    compute = choose_run_compute(spec, train_windows, generator, discriminator, ranks, device, state)
    nets = Nets.around(generator, discriminator, grad_scaler(device, compute.amp), lr=config["lr"], ema_decay=config["ema"])
    if state is not None:
        restore_networks(nets, state)
        if nets.ema is not None and state.get("ema") is None:  # --ema added on a resume: the average starts here
            nets = dataclasses.replace(nets, ema=WeightAverage(generator, config["ema"]))
    average = nets.ema.module if nets.ema is not None else None
    for module in (generator, discriminator, average):
        if module is not None and compute.channels_last:
            module.to(memory_format=torch.channels_last_3d)  # in place: the optimizers keep their parameters
    if ranks.distributed:
        ids = [device.index] if device.type == "cuda" else None
        nets = nets.wrapped(lambda module: DistributedDataParallel(module, device_ids=ids))
    return nets, compute


def choose_run_compute(spec, train_windows, generator, discriminator, ranks, device, state):
    """The precision and layout: a resumed run keeps those it started with; a new one takes what
    the flags ask, and measures what they leave to auto (training/autotune.py)."""
    saved = saved_compute(state) if state is not None else None
    if saved is not None:
        return Compute(*saved, "as when the run started")
    a, b = train_windows.gather(train_windows.epoch_batches(0)[0], 0, 0)
    # Timed without the temporal loss: it needs the batch's flow, and is cheap next to the networks' passes.
    weights = dataclasses.replace(spec.weights, temporal=0.0)
    return choose_compute(spec, generator, discriminator, a, b, weights, device, ranks, mode_step(spec))


def mode_step(spec, rank=0):
    """A new step of the run's mode, with its own (empty) history pools: a rank's, or one that times ways on copies of its networks."""
    return spec.mode.load().new_train_step(spec.flags["pool_size"], spec.flags["seed"], rank)


def restore_position(run, state):
    """Step 0 for a new run; a resumed run's step, epoch and place in the epoch, and its random state."""
    if state is None:
        return Position()
    restore_random_state(state, run.device)
    step, epoch, epoch_step = saved_position(state)
    if epoch_step > run.steps_per_epoch:  # the batch size or rank count changed mid-epoch
        epoch, epoch_step = epoch + 1, 0
    return Position(step, epoch, epoch_step, saved_step=step)


def start_log(run, position, resumed, defaults):
    """Rank 0 before the first step: the folder made ready, the log opened, a first checkpoint for
    a new run, what trains where said, and the step-0 validation; returns the run's Report."""
    prepare_folder(run)
    log = open_log(run, position, resumed)
    if not resumed:
        save(run, position)
    say_what_trains(run, resumed, defaults)
    progress = Progress(None if run.flags["max_seconds"] else run.total_steps, unit="step", what="training",
                        initial=position.step, every_s=None)
    report = Report(log, progress, Watchdog())
    if not resumed and run.data.val is not None:
        validate_at_step_0(run, report)
    return report


def prepare_folder(run):
    """Remove what a run killed mid-write left (the lock says none is writing now), write config.json,
    and keep a copy of each plug-in's file (of each version, should it have changed) for the record."""
    remove_partials(run.folder)
    write_config(run.folder, run.spec.config)
    for role, choice in (("generator", run.spec.generator), ("discriminator", run.spec.discriminator)):
        if choice is not None and choice.source is not None:
            write_network_copy(run.folder, role, choice.source)


def open_log(run, position, resumed):
    """metrics.jsonl and TensorBoard, from the checkpoint's step on a resume, with the start's event logged."""
    resume_step = position.step if resumed else None
    log = MetricsLog(run.folder, resume_step=resume_step, board=tensorboard(run.folder, purge_step=resume_step or 0))
    raw_g, raw_d = run.nets.raw_generator, run.nets.raw_discriminator
    log.write({"step": position.step, "epoch": position.epoch + 1, "event": RESUMED if resumed else STARTED,
                   "world_size": run.ranks.world_size, "precision": "bf16" if run.amp else "fp32",
                   "memory_format": "channels_last" if run.channels_last else "contiguous", "compute_choice": run.compute.note,
                   "parameters/generator": count_parameters(raw_g), "parameters/discriminator": count_parameters(raw_d) if raw_d else 0})
    return log


def say_what_trains(run, resumed, defaults):
    """The start lines: network, data, ranks and device; the compute choice and --residual; the flags that differ."""
    config, ranks = run.flags, run.ranks.world_size
    print(f"{'resuming' if resumed else 'training'} {run.mode.what_trains(config['network'])} ({count_parameters(run.nets.raw_generator) / 1e6:.3g} M "
          f"parameters) on {config['data']} ({run.data.train_windows.windows} training windows, {run.steps_per_epoch} steps per epoch "
          f"per rank, {ranks} rank{'s' if ranks > 1 else ''}, {run.device}) into {run.folder}", flush=True)
    print(f"computing in {run.compute.describe(run.device)}; residual {config['residual']} ({run.residual_note}); "
          f"temporal loss {config['temporal']:g} ({run.temporal_note})", flush=True)
    unsaid = [k for k in defaults if k not in SAID_ON_THE_START_LINES and not (config["dry_run"] and k in DRY_RUN)]
    changed = {k: config[k] for k in unsaid if config[k] != defaults[k]}
    if changed:
        print("flags: " + as_typed(dict(sorted(changed.items()))), flush=True)


def validate_at_step_0(run, report):
    """Where the curves start: a residual generator starts at the identity."""
    scores, _ = validation(run, perceptual=run.flags["perceptual_every"] > 0)
    report.log.write({"step": 0, "epoch": 0, **scores})
    report.progress.write(run.mode.validation_line("step 0", scores))


def tensorboard(folder, purge_step):
    """TensorBoard's writer into the run folder, from `purge_step` on (a resumed run rewrites what followed its checkpoint)."""
    from torch.utils.tensorboard import SummaryWriter  # slow to import: only when a run starts

    return SummaryWriter(str(folder), purge_step=purge_step)


def train_epochs(run, position, report, signals):
    """Epoch after epoch until the step or time budget; returns the exit code. `report` is rank 0's
    Report (None on the other ranks)."""
    inputs = InputPipeline(run.data.train_windows, run.device, run.channels_last,
                           prefetch={"auto": None, "on": True, "off": False}[run.flags["prefetch"]])
    clock = Clock.start(run.flags["max_seconds"])
    tally = LossTally(NonFiniteGuard(run.device, run.ranks, steps_before=position.step))
    # A pruning search's trial waits for a verdict after each validation; a search starts each
    # trial as one process, so no other rank has to hear of it.
    gate = None if run.ranks.distributed else VerdictGate.of(run.folder)
    while budget_left(run, position, clock):
        stopped = run_epoch(run, inputs, position, report, clock, signals, tally)
        if stopped:
            return stopped
        if position.epoch_step == run.steps_per_epoch:
            position.epoch, position.epoch_step = position.epoch + 1, 0
            finished = not budget_left(run, position, clock)
            validated = end_epoch(run, position, report, tally, epoch_number=position.epoch, finished=finished)
            why = gate.stop_at(position.step, lambda: signals.signum is not None) if gate and validated and not finished else None
            if why:
                return stop(run, position, report, signum=None, gate=why)
    if position.epoch_step:  # the step budget ended inside an epoch: report it, and keep the position for --resume
        end_epoch(run, position, report, tally, epoch_number=position.epoch + 1, finished=True)
    finish(run, position, report, clock)
    return 0


def run_epoch(run, inputs, position, report, clock, signals, tally):
    """The steps of the current epoch from where it stands, until its end or the budget. Returns the
    exit code when a signal stopped it (after saving), else None. The losses stay on the device in
    `tally` and are read every --log-every steps, on every rank alike (a loss gone NaN stops them all)."""
    config, nets, weights = run.flags, run.nets, run.spec.weights
    decay_steps = config["decay_epochs"] * run.steps_per_epoch
    clips_per_step = config["batch"] * run.ranks.world_size
    batches = inputs.epoch(position.epoch, first=position.epoch_step)  # prepared a batch ahead, during each step
    count, data_time, timer = 0, 0.0, time.perf_counter()
    while position.epoch_step < run.steps_per_epoch and budget_left(run, position, clock):
        started = time.perf_counter()
        x, y, motion = next(batches)  # (N, C, T, H, W) on the device, and the target's flow for --temporal
        data_time += time.perf_counter() - started  # time the step waited for its data
        lr = lr_at(position.step, config["lr"], run.total_steps, decay_steps)
        for group in nets.opt_g.param_groups + (nets.opt_d.param_groups if nets.opt_d else []):
            group["lr"] = lr
        with naming_nondeterministic(run, first=position.step == tally.guard.steps_before):
            tally.add(run.train_step(nets, x, y, weights, run.device, run.amp, tally.guard, run.ranks, motion))
        if nets.ema is not None:
            nets.ema.update(nets.raw_generator, position.step)
        position.step, position.epoch_step = position.step + 1, position.epoch_step + 1
        count += 1
        stopped, clock.out_of_time = any_rank([signals.signum is not None, clock.late()], run.ranks)  # every rank alike
        if position.step % config["log_every"] == 0 or not budget_left(run, position, clock):
            means = tally.read_log()
            if report is not None:
                elapsed = time.perf_counter() - timer
                report.log.write({"step": position.step, "epoch": position.epoch + 1, **{f"loss/{k}": v for k, v in means.items()},
                                  "lr": lr, "time/clips_per_s": clips_per_step * count / elapsed, "time/data_share": data_time / elapsed})
                report.progress.update(position.step, progress_text(position, means, clips_per_step * count / elapsed,
                                                                    run.mode.reconstruction_loss), line=True)
            count, data_time, timer = 0, 0.0, time.perf_counter()
        elif report is not None:
            report.progress.update(position.step, None, line=False)
        if stopped or (config["save_every"] and position.step % config["save_every"] == 0):
            save(run, position, tally)
        if stopped:
            batches.close()
            return stop(run, position, report, signals.signum)
    batches.close()
    return None


@contextlib.contextmanager
def naming_nondeterministic(run, first):
    """Around the first step of a --deterministic run: one line naming the operations it ran that
    have no deterministic version on this device (on CUDA: pooling's backward passes, say)."""
    if not (first and run.flags["deterministic"]):
        yield
        return
    found = []
    with noting_nondeterministic(found):
        yield
    if found and run.ranks.is_main:
        warn("--deterministic", f"on {run.device} these operations have no deterministic version, so two runs may still "
                                f"differ: {', '.join(found)}")


def progress_text(position, means, speed, name):
    """The progress line's losses: the means since the last log step; `name` is the mode's reconstruction loss."""
    d = 0.5 * (means["d_real"] + means["d_fake"]) if "d_real" in means else None
    return (f"epoch {position.epoch + 1} g {means['g_total']:.3f}" + (f" (adv {means['g_adv']:.3f})" if "g_adv" in means else "")
            + (f" d {d:.3f}" if d is not None else "") + f" {name[2:]} {means[name]:.4f} | {speed:.2f} clips/s")


def stop(run, position, report, signum, gate=None):
    """After a stop signal (`signum`, None on a rank that only heard of another's), or at a search's
    gate (`gate`: PRUNED by its verdict, or SILENT, its driver gone): the state is saved; say so and
    return the exit code (a Ctrl-C's for the gate)."""
    if report is not None:
        by = {PRUNED: "the search's pruner", SILENT: f"its search driver, silent for {DRIVER_SILENCE_S:.0f} s"}.get(gate)
        cause = {"by": by} if by else {"signal": int(signum or 2)}
        report.log.write({"step": position.step, "epoch": position.epoch + 1, "event": INTERRUPTED, **cause})
        why = f"stopped by {by}" if by else "interrupted"
        report.progress.write(f"{why}: saved step {position.step} to {run.folder.last}; continue with --resume")
    return EXIT_CODES.get(signum, 130)


def end_epoch(run, position, report, tally, epoch_number, finished):
    """Validation and samples every --sample-every epochs and at the end, the watchdog, the
    experiment page, and a checkpoint (kept as epoch_NNNN.pt at an epoch's end). Returns whether
    it validated (on rank 0)."""
    scores = {}
    losses = tally.read_epoch()  # on every rank: a loss gone NaN stops them all here
    if report is not None:
        if run.data.val is not None and (finished or epoch_number % run.flags["sample_every"] == 0):
            every = run.flags["perceptual_every"]
            perceptual = every > 0 and (finished or (epoch_number // run.flags["sample_every"]) % every == 0)
            scores, clips = validation(run, perceptual)
            report.log.write({"step": position.step, "epoch": epoch_number, **scores})
            fps = run.data.dataset.meta.get("fps") or 25
            run.mode.write_samples(run.folder, epoch_number, clips, fps, report.log)
            report.progress.write(run.mode.validation_line(f"epoch {epoch_number}", scores))
        if "d_real" in losses.means:  # the watchdog watches the adversarial game
            for message in report.watchdog.end_epoch(losses.d_max, losses.means["g_adv"], losses.means[run.mode.reconstruction_loss]):
                warn(run.folder, message)
        if run.on_epoch_end is not None:
            run.on_epoch_end(run.folder)
    save(run, position, tally, epoch_file=position.epoch_step == 0, finished=finished, scores=scores)
    barrier(run.ranks)
    return bool(scores)


def validation(run, perceptual=False):
    """(scores, clips) of the inference generator (the weight average when kept) on the held-out
    windows; with `perceptual`, the perceptual scores too (JOD)."""
    return run.mode.validate(run.nets.inference_generator, run.data.val, run.device, run.amp, run.channels_last,
                             perceptual=perceptual, fps=run.data.dataset.meta.get("fps") or 25)


def save(run, position, tally=None, epoch_file=False, finished=False, scores=None):
    """Write last.pt (rank 0): everything needed to continue exactly from `position`; never once a
    loss of the steps in `tally` went NaN (the weights then stopped at an earlier step)."""
    if tally is not None:
        tally.guard.raise_if_tripped()
    if run.ranks.is_main:
        state = build_checkpoint(run.nets, position, described=run.spec.described(), data=run.data, compute=run.compute,
                                 device=run.device, finished=finished, scores=scores,
                                 step_state=run.train_step.state_dict() if hasattr(run.train_step, "state_dict") else None)
        save_checkpoint(run.folder, state, keep_epoch=epoch_file, keep=run.flags["keep"])
    position.saved_step = position.step


def finish(run, position, report, clock):
    """After the last step: check that the ranks agree, and log the end."""
    agree = ranks_agree([m for m in (run.nets.raw_generator, run.nets.raw_discriminator) if m is not None], run.ranks, run.device)
    if report is not None:
        report.log.write({"step": position.step, "epoch": position.epoch + (1 if position.epoch_step else 0), "event": FINISHED,
                          "world_size": run.ranks.world_size, "ranks_agree": agree})
        if not agree:
            warn(run.folder, "the ranks ended with different parameters; DDP did not keep them in step")
        if run.on_epoch_end is not None:
            run.on_epoch_end(run.folder)
        report.progress.write(f"finished {position.step} steps (this run: {duration(time.monotonic() - clock.started)}"
                              f"{', the time budget' if clock.out_of_time else ''}); checkpoint: {run.folder.last}")
