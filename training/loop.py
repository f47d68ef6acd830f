"""The training loop, top to bottom: data, networks, then per step (1) update D, (2) update G; at
each epoch's end validation, samples and a checkpoint. Runs alone or as one rank under torchrun.

    python main.py train -net unet --data data/sample_gray --epochs 20
"""
import json
import math
import signal
import tempfile
import time
from pathlib import Path

import torch
from torch.nn.parallel import DistributedDataParallel

from datasets.slider import ClipSlider, to_model_input
from datasets.store import build_dataset, fingerprint, load_dataset
from networks import PatchDiscriminator3D, SizeError, build_generator, count_parameters
from training.distributed import any_rank, barrier, init_distributed, ranks_agree, shutdown
from training.experiment import (LAST_NAME, discriminator_args, generator_args, resumed_config, save_state,
                                 write_config, write_samples)
from utils.metrics_log import MetricsLog
from training.progress import Progress
from training.step import Models, gan_step
from training.validate import validate
from training.watchdog import Watchdog
from utils.checkpoint import VERSION, load_checkpoint
from utils.device import grad_scaler, resolve_amp, use_channels_last
from utils.errors import CheckpointError, DatasetError, TrainingError, warn
from utils.fsio import remove_partials
from utils.lock import ExperimentLock
from utils.report import write_report
from utils.sample import ensure_sample

DEFAULT_DATA = "data/sample"
SIGNAL_EXIT = {signal.SIGINT: 130, signal.SIGTERM: 143}


def lr_at(step, base_lr, total_steps, decay_steps):
    """Constant learning rate, then a linear decay to zero over the last `decay_steps` steps."""
    if decay_steps <= 0:
        return base_lr
    return base_lr * min(1.0, max(0.0, (total_steps - step) / decay_steps))


def ensure_default_data(data):
    """A bare `train` trains on data/sample, built from the built-in sample video the first time."""
    if data == DEFAULT_DATA and not Path(DEFAULT_DATA).exists():
        print(f"no {DEFAULT_DATA} yet: building it from the built-in sample video (gray -> colour, 64x64)", flush=True)
        build_dataset(DEFAULT_DATA, videos=[ensure_sample()], pair="gray", size=(64, 64))


class StopSignals:
    """SIGINT and SIGTERM ask the loop to save and exit at the next step boundary; another one a
    second or more later (a deliberate second Ctrl-C) stops at once. Copies of the first signal
    that arrive together (torchrun forwarding a Ctrl-C the worker also got, a parent-death signal
    sent twice) do not cut the save short."""

    REPEAT_AFTER_S = 1.0

    def __init__(self):
        self.signum = None
        self.first_at = None

    def _handle(self, signum, frame):
        if self.signum is not None:
            if time.monotonic() - self.first_at >= self.REPEAT_AFTER_S:
                raise KeyboardInterrupt
            return
        self.signum, self.first_at = signum, time.monotonic()

    def __enter__(self):
        self.previous = {s: signal.signal(s, self._handle) for s in SIGNAL_EXIT}
        return self

    def __exit__(self, *exc):
        for s, handler in self.previous.items():
            signal.signal(s, handler)


class NonFiniteLoss(Exception):
    pass


def rng_state(device):
    state = {"torch": torch.get_rng_state()}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def train(config, explicit=(), defaults=None):
    """Train as the flags in `config` say; returns the exit code (0, or 130/143 when interrupted)."""
    config = json.loads(json.dumps(config))  # plain JSON types only: safe in config.json and in checkpoints
    if config["dry_run"]:
        with tempfile.TemporaryDirectory() as tmp:
            print("dry run: one training step and one validation pass; nothing is kept", flush=True)
            return train({**config, "dry_run": False, "checkpoints": tmp, "max_steps": 1, "resume": False}, explicit)
    ranks, device = init_distributed(config["device"])
    config["amp"] = resolve_amp(config["amp"], device, quiet=not ranks.is_main)
    try:
        code = _train(config, set(explicit), defaults or {}, ranks, device)
        barrier(ranks)  # tear the group down together: a rank that leaves early can abort in gloo's threads
        return code
    finally:
        shutdown(ranks)


def _train(config, explicit, defaults, ranks, device):
    folder = Path(config["checkpoints"]) / config["name"]
    lock = ExperimentLock(folder) if ranks.is_main else None
    try:
        if lock is not None and folder.exists():  # a live run may hold it: refuse before doing any work
            lock.acquire()
        return _train_holding(config, explicit, defaults, ranks, device, folder, lock)
    finally:
        if lock is not None:
            lock.release()


def _train_holding(config, explicit, defaults, ranks, device, folder, lock):
    state = None
    if config["resume"]:
        state = load_checkpoint(folder / LAST_NAME)
        config = resumed_config(state["config"], config, explicit, folder / LAST_NAME)
    elif (folder / LAST_NAME).exists():
        raise TrainingError(folder, "already holds a run; add --resume to continue it, or choose another --name")
    if ranks.is_main:
        ensure_default_data(config["data"])
    barrier(ranks)

    # Data: uint8 frames in RAM (or memory-mapped), windows shared out between ranks.
    dataset = load_dataset(config["data"], mmap=config["mmap"])
    data_print = fingerprint(config["data"])
    if state is not None and state["dataset_fingerprint"] != data_print and not config["allow_new_data"]:
        raise CheckpointError(folder / LAST_NAME, f"was trained on other data than {config['data']}; pass --allow-new-data "
                                                  f"to go on with this dataset, or resume with the original --data")
    crop = tuple(reversed(config["crop"])) if config["crop"] else None  # (height, width)
    train_slider = ClipSlider(dataset.a, dataset.b, dataset.ranges("train"), config["pool"], config["step"], config["batch"],
                              seed=config["seed"], rank=ranks.rank, world_size=ranks.world_size, crop=crop,
                              flip=config["flip"], source=config["data"])
    try:  # validation takes whole windows, side by side, each held-out frame once
        val_slider = ClipSlider(dataset.a, dataset.b, dataset.ranges("val"), config["pool"], config["pool"], config["batch"],
                                shuffle=False, source=config["data"])
    except DatasetError:
        val_slider = None
        if ranks.is_main:
            warn(config["data"], f"its validation part is shorter than -pool {config['pool']}: no validation; "
                                 f"rebuild with a larger --val-fraction")

    # Networks and optimizers. Every rank seeds alike, so they start identical.
    torch.manual_seed(config["seed"])
    generator = build_generator(config["network"], **generator_args(config)).to(device)
    d_args = discriminator_args(config)
    discriminator = PatchDiscriminator3D(**d_args).to(device) if d_args else None
    height, width = dataset.a.shape[1:3]
    for h, w in {(height, width), crop or (height, width)}:
        try:
            generator.check_size(h, w)
        except SizeError as exc:
            raise DatasetError(config["data"], f"{exc}; rebuild the dataset with another --size, or change the network flags") from None
    opt_g = torch.optim.Adam(generator.parameters(), lr=config["lr"], betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(discriminator.parameters(), lr=config["lr"], betas=(0.5, 0.999)) if discriminator else None
    scaler = grad_scaler(device, config["amp"])
    step, start_epoch, epoch_step = 0, 0, 0
    if state is not None:
        generator.load_state_dict(state["generator"])
        opt_g.load_state_dict(state["opt_g"])
        if discriminator is not None:
            discriminator.load_state_dict(state["discriminator"])
            opt_d.load_state_dict(state["opt_d"])
        scaler.load_state_dict(state["scaler"])
        torch.set_rng_state(state["rng"]["torch"])
        if device.type == "cuda" and "cuda" in state["rng"]:
            torch.cuda.set_rng_state(state["rng"]["cuda"], device)
        step, start_epoch, epoch_step = state["step"], state["epoch"], state["epoch_step"]
        if epoch_step > len(train_slider):  # the batch size or rank count changed mid-epoch
            start_epoch, epoch_step = start_epoch + 1, 0
    channels_last = use_channels_last(config["memory_format"], device, config["amp"])
    if channels_last:
        generator.to(memory_format=torch.channels_last_3d)
        if discriminator is not None:
            discriminator.to(memory_format=torch.channels_last_3d)
    raw_g, raw_d = generator, discriminator  # unwrapped: these are saved and used for validation
    if ranks.distributed:
        generator = DistributedDataParallel(generator, device_ids=[device.index] if device.type == "cuda" else None)
        if discriminator is not None:
            discriminator = DistributedDataParallel(discriminator, device_ids=[device.index] if device.type == "cuda" else None)
    models = Models(generator, discriminator, raw_d)

    steps_per_epoch = len(train_slider)
    total_steps = config["max_steps"] or config["epochs"] * steps_per_epoch
    decay_steps = config["decay_epochs"] * steps_per_epoch
    clips_per_step = config["batch"] * ranks.world_size
    gan = config["gan_loss"]
    if step >= total_steps:
        if ranks.is_main:
            print(f"{folder}: already trained for {step} steps; raise --epochs or --max-steps to train further")
        return 0

    def checkpoint(epoch, epoch_step, finished=False, scores=None):
        return {
            "generator": raw_g.state_dict(), "discriminator": raw_d.state_dict() if raw_d else None,
            "opt_g": opt_g.state_dict(), "opt_d": opt_d.state_dict() if opt_d else None, "scaler": scaler.state_dict(),
            "epoch": epoch, "epoch_step": epoch_step, "step": step, "network": config["network"],
            "model_args": generator_args(config), "disc_args": d_args, "config": config, "rng": rng_state(device),
            "dataset_fingerprint": data_print, "scores": scores or {}, "finished": finished, "version": VERSION,
            "dataset": {key: dataset.meta.get(key) for key in ("pair", "width", "height", "fps")},
        }

    saved_step, epoch = step, start_epoch

    def save(epoch_number, epoch_step, epoch_file=False, finished=False, scores=None):
        nonlocal saved_step
        if ranks.is_main:
            save_state(folder, checkpoint(epoch_number, epoch_step, finished, scores), epoch_file, config["keep"])
        saved_step = step

    values = {}  # the step's losses as floats, read once (one device sync per phase) for the check and the log

    def check_finite(losses):
        """Stop before an update when a loss is NaN or infinite (on any rank)."""
        values.update(zip(losses, torch.stack([v.detach().float() for v in losses.values()]).tolist()))
        bad = [f"loss/{name} became {values[name]}" for name in losses if not math.isfinite(values[name])]
        if any_rank([bool(bad)], ranks, device)[0]:
            raise NonFiniteLoss(", ".join(bad) or "a loss on another rank became non-finite")

    def report(epoch_number, finished):
        """Validation and samples every --sample-every epochs and at the end, and the watchdog (rank 0)."""
        scores = {}
        if not ranks.is_main:
            return scores
        if val_slider is not None and (finished or epoch_number % config["sample_every"] == 0):
            scores, clips = validate(raw_g, val_slider, device, config["amp"], channels_last)
            log.write({"step": step, "epoch": epoch_number, **scores})
            write_samples(folder, epoch_number, clips, dataset.meta.get("fps") or 25, log)
            progress.write(f"epoch {epoch_number}: validation L1 {scores['val/l1']:.4f} (identity {scores['val/l1_identity']:.4f}), "
                           f"PSNR {scores['val/psnr']:.2f} dB (identity {scores['val/psnr_identity']:.2f} dB)")
        for message in watchdog.end_epoch():
            warn(folder, message)
        write_report(folder)
        return scores

    watchdog = Watchdog()

    def run_steps(signals):
        """Every step: (1) update D, (2) update G; log, and stop cleanly on a signal or at the budget."""
        nonlocal step, epoch, epoch_step
        sums, count, data_time, timer = {}, 0, 0.0, time.perf_counter()
        while step < total_steps:
            batches = train_slider.epoch_batches(epoch)
            while epoch_step < steps_per_epoch and step < total_steps:
                started = time.perf_counter()
                a, b = train_slider.gather(batches[epoch_step], epoch, epoch_step)  # uint8 (B, T, H, W, 3)
                x, y = to_model_input(a, device, channels_last), to_model_input(b, device, channels_last)  # (N, C, T, H, W)
                data_time += time.perf_counter() - started
                lr = lr_at(step, config["lr"], total_steps, decay_steps)
                for group in opt_g.param_groups + (opt_d.param_groups if opt_d else []):
                    group["lr"] = lr
                values.clear()
                gan_step(models, opt_g, opt_d, scaler, x, y, gan, config["l1"], config["mse"], device, config["amp"],
                         check=check_finite)
                step, epoch_step = step + 1, epoch_step + 1

                for name, value in values.items():
                    sums[name] = sums.get(name, 0.0) + value
                count += 1
                if ranks.is_main:
                    if raw_d is not None:
                        watchdog.step(0.5 * (values["d_real"] + values["d_fake"]), values["g_adv"])
                    elapsed = time.perf_counter() - timer
                    speed = clips_per_step * count / elapsed
                    text = (f"epoch {epoch + 1} g {values['g_total']:.3f}"
                            + (f" (adv {values['g_adv']:.3f})" if "g_adv" in values else "")
                            + (f" d {0.5 * (values['d_real'] + values['d_fake']):.3f}" if "d_real" in values else "")
                            + f" l1 {values['g_l1']:.4f} | {speed:.2f} clips/s")
                    log_now = step % config["log_every"] == 0 or step == total_steps
                    if log_now:
                        log.write({"step": step, "epoch": epoch + 1, **{f"loss/{k}": v / count for k, v in sums.items()}, "lr": lr,
                                   "time/clips_per_s": speed, "time/data_share": data_time / elapsed})
                        sums, count, data_time, timer = {}, 0, 0.0, time.perf_counter()
                    progress.update(step, text, log_now)
                stop = any_rank([signals.signum is not None], ranks, device)[0]
                if stop or (config["save_every"] and step % config["save_every"] == 0):
                    save(epoch, epoch_step)
                if stop:
                    code = SIGNAL_EXIT.get(signals.signum, 130)
                    if ranks.is_main:
                        log.write({"step": step, "epoch": epoch + 1, "event": "interrupted", "signal": int(signals.signum or 2)})
                        progress.write(f"interrupted: saved step {step} to {folder / LAST_NAME}; continue with --resume")
                    return code
            if epoch_step == steps_per_epoch:
                epoch, epoch_step = epoch + 1, 0
                finished = step >= total_steps
                save(epoch, 0, epoch_file=True, finished=finished, scores=report(epoch, finished))
                barrier(ranks)
        if epoch_step:  # the step budget ended inside an epoch: report it, and keep the position for --resume
            save(epoch, epoch_step, finished=True, scores=report(epoch + 1, True))
        agree = ranks_agree([m for m in (raw_g, raw_d) if m is not None], ranks, device)
        if ranks.is_main:
            log.write({"step": step, "epoch": epoch + (1 if epoch_step else 0), "event": "finished",
                       "world_size": ranks.world_size, "ranks_agree": agree})
            if not agree:
                warn(folder, "the ranks ended with different parameters; DDP did not keep them in step")
            write_report(folder)
            progress.write(f"finished {step} steps; checkpoint: {folder / LAST_NAME}")
        return 0

    log, progress = None, None
    if lock is not None and not lock.held:
        folder.mkdir(parents=True, exist_ok=True)
        lock.acquire()
    if lock is not None:
        remove_partials(folder)  # left by a run that was killed mid-write; the lock says none is writing now
    try:
        if ranks.is_main:
            write_config(folder, config)
            log = MetricsLog(folder, resume_step=step if state is not None else None)
            log.write({"step": step, "epoch": start_epoch + 1, "event": "resumed" if state is not None else "started",
                       "world_size": ranks.world_size, "parameters/generator": count_parameters(raw_g),
                       "parameters/discriminator": count_parameters(raw_d) if raw_d else 0})
            if state is None:
                save_state(folder, checkpoint(0, 0), epoch_file=False, keep=config["keep"])
            changed = {k: v for k, v in config.items() if k in defaults and defaults[k] != v and k not in ("resume", "name")}
            print(f"{'resuming' if state is not None else 'training'} {config['network']} "
                  f"({count_parameters(raw_g) / 1e6:.2f} M parameters) on {config['data']} "
                  f"({train_slider.windows} training windows, {steps_per_epoch} steps per epoch per rank, "
                  f"{ranks.world_size} rank{'s' if ranks.world_size > 1 else ''}, {device}"
                  f"{', amp' if config['amp'] else ''}) into {folder}", flush=True)
            if changed:
                flags = [f"--{k.replace('_', '-')}" + ("" if v is True else f" {v}") for k, v in sorted(changed.items())]
                print("flags: " + " ".join(flags), flush=True)
            progress = Progress(total_steps, initial=step)
        with StopSignals() as signals:
            return run_steps(signals)
    except NonFiniteLoss as exc:
        if log is not None:
            log.write({"step": step, "epoch": epoch + 1, "event": "failed", "reason": str(exc)})
        raise TrainingError(folder, f"{exc} at step {step + 1}: training stopped; {LAST_NAME} keeps step {saved_step}. "
                                    f"Lower --lr (now {config['lr']:g}), or try --gan-loss lsgan or --spectral-norm") from None
    finally:
        if progress is not None:
            progress.close()
        if log is not None:
            log.close()
