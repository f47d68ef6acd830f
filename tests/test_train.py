"""Training end to end: it learns, resumes bitwise, runs under torchrun, and refuses what it must."""
import json
import os
import subprocess
import signal
import sys
import time

import numpy as np
import pytest
import torch

from conftest import REPO, TINY, assert_user_error, build, run_cli, run_group, spawn
from cli.train_flags import default_flags
from training.loop import lr_at
from runfolder.metrics import read_metrics
from training.watchdog import Watchdog
from utils.device import native_bf16_cpu



def validation_records(folder):
    return [r for r in read_metrics(folder) if "val/l1" in r]


@pytest.mark.parametrize("amp", [False, True], ids=["fp32", "bf16"])
def test_training_learns_gray_to_colour(tmp_path, gray32, amp):
    if amp and not native_bf16_cpu():
        pytest.skip("this CPU has no native bfloat16: --amp runs float32 here (see the fallback test)")
    result = run_cli("train", "--data", gray32, "--depth", "3", "--channels", "8", "--d-channels", "8", "--lr", "1e-3",
                     "--max-steps", "108", "--epochs", "100", "--log-every", "50", "--seed", "0", "--name", "learn",
                     "--amp", "on" if amp else "off", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    scores = [r for r in validation_records(tmp_path / "checkpoints" / "learn") if r["step"] > 0]  # after training began
    first, last = scores[0]["val/l1"], scores[-1]["val/l1"]
    assert last <= 0.7 * first, (first, last)  # validation L1 fell by at least 30% from the first epoch's (to the sixth's: 38%)
    assert last < scores[-1]["val/l1_identity"]  # and beats taking the gray input as the answer
    assert scores[-1]["val/psnr"] > scores[-1]["val/psnr_identity"]


AVX2_ONLY = {"ONEDNN_MAX_CPU_ISA": "AVX2", "ATEN_CPU_CAPABILITY": "avx2"}  # what a CPU without native bfloat16 offers


def test_amp_without_native_bfloat16_says_so_and_runs_float32(tmp_path, tiny):
    args = ["train", "--data", tiny, *TINY, "--max-steps", "2", "--memory-format", "contiguous", "--device", "cpu", "--amp"]
    emulated = run_cli(*args, "--name", "emulated", cwd=tmp_path, env=AVX2_ONLY)
    assert emulated.returncode == 0, emulated.stderr
    notice = [line for line in emulated.stderr.splitlines() if "no native bfloat16" in line]
    assert len(notice) == 1 and notice[0].startswith("warning: --amp:") and "running in float32" in notice[0]
    assert "computing in float32, contiguous" in emulated.stdout
    plain = run_cli(*args[:-1], "--name", "plain", cwd=tmp_path, env=AVX2_ONLY)
    weights = [torch.load(tmp_path / "checkpoints" / name / "last.pt", weights_only=True)["generator"] for name in ("emulated", "plain")]
    assert plain.returncode == 0 and all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])  # float32, bit for bit


def test_resume_gives_bitwise_the_same_parameters(tmp_path, tiny):
    common = ["--data", tiny, *TINY, "--seed", "3", "--flip", "--crop", "8", "--ema", "0.9", "--device", "cpu"]
    assert run_cli("train", *common, "--epochs", "2", "--name", "straight", cwd=tmp_path).returncode == 0
    assert run_cli("train", *common, "--epochs", "1", "--name", "split", cwd=tmp_path).returncode == 0
    resumed = run_cli("train", "--name", "split", "--resume", "--epochs", "2", cwd=tmp_path)  # other flags come from the run
    assert resumed.returncode == 0, resumed.stderr
    a = torch.load(tmp_path / "checkpoints" / "straight" / "last.pt", weights_only=True)
    b = torch.load(tmp_path / "checkpoints" / "split" / "last.pt", weights_only=True)
    assert a["step"] == b["step"] == 12 and b["finished"]
    for part in ("generator", "discriminator", "opt_g", "ema"):  # the weight average too
        flat_a, flat_b = torch.utils._pytree.tree_flatten(a[part])[0], torch.utils._pytree.tree_flatten(b[part])[0]
        assert all(torch.equal(x, y) if torch.is_tensor(x) else x == y for x, y in zip(flat_a, flat_b))
    assert validation_records(tmp_path / "checkpoints" / "straight")[-1] == validation_records(tmp_path / "checkpoints" / "split")[-1]


def test_two_process_ddp_keeps_ranks_identical_and_only_rank_0_writes(tmp_path, tiny):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", str(REPO / "main.py"),
           "train", "--data", str(tiny), *TINY, "--epochs", "2", "--name", "ddp", "--device", "cpu"]
    result = run_group(cmd, cwd=tmp_path, env=env, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    folder = tmp_path / "checkpoints" / "ddp"
    records = read_metrics(folder)
    finished = [r for r in records if r.get("event") == "finished"]
    assert finished == [{"step": 6, "epoch": 2, "event": "finished", "world_size": 2, "ranks_agree": True}]
    assert [r["event"] for r in records if "event" in r] == ["started", "finished"]  # one writer
    assert len(list(folder.glob("events.out.tfevents*"))) == 1
    assert result.stdout.count("training unet") == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoints"]  # nothing written elsewhere


def test_bare_dry_run_builds_the_sample_data_and_keeps_no_run(tmp_path):
    # A small network with one way to compute: the dry run's step and autotune are not what is tested here
    result = run_cli("train", "-net", "unet", "--depth", "2", "--channels", "4", "--amp", "off", "--memory-format", "contiguous",
                     "--dry-run", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "building it from the built-in sample video" in result.stdout
    assert (tmp_path / "data" / "sample" / "meta.json").exists() and (tmp_path / "videos" / "sample.mp4").exists()
    assert not (tmp_path / "checkpoints").exists()


def test_run_folder_explains_itself(tmp_path, tiny):
    assert run_cli("train", "--data", tiny, *TINY, "--epochs", "2", "--keep", "1", "--name", "x", cwd=tmp_path).returncode == 0
    folder = tmp_path / "checkpoints" / "x"
    config = json.loads((folder / "config.json").read_text())
    assert config["network"] == "unet" and config["depth"] == 2 and config["keep"] == 1
    assert sorted(p.name for p in folder.glob("*.pt")) == ["epoch_0002.pt", "last.pt"]
    assert sorted(p.name for p in (folder / "samples").iterdir()) == ["clip_generated.png", "clip_input.png", "clip_target.png",
                                                                       "epoch_0001.mp4", "epoch_0001.png", "epoch_0002.mp4", "epoch_0002.png", "profile_0001.png", "profile_0002.png"]
    losses = [r for r in read_metrics(folder) if "loss/g_l1" in r]
    assert losses and {"step", "epoch", "loss/g_adv", "loss/d_real", "loss/d_fake", "loss/g_l1", "time/clips_per_s"} <= set(losses[0])
    state = torch.load(folder / "last.pt", weights_only=True)
    assert state["config"] == config and state["version"] == 1 and state["network"] == "unet"


def test_second_run_into_the_same_experiment_needs_resume(tmp_path, tiny):
    assert run_cli("train", "--data", tiny, *TINY, "--epochs", "1", "--name", "x", cwd=tmp_path).returncode == 0
    assert_user_error(run_cli("train", "--data", tiny, *TINY, "--name", "x", cwd=tmp_path), "checkpoints/x", "--resume")


def test_resume_with_other_network_flags_is_refused_naming_them(tmp_path, tiny):
    assert run_cli("train", "--data", tiny, *TINY, "--epochs", "1", "--name", "x", cwd=tmp_path).returncode == 0
    result = run_cli("train", "--name", "x", "--resume", "--channels", "8", "--d-layers", "3", cwd=tmp_path)
    assert_user_error(result, "last.pt", "--channels (4 -> 8)", "--d-layers (2 -> 3)")


def test_resume_on_other_data_needs_allow_new_data(tmp_path, tiny, sample_video):
    other = tmp_path / "other"
    build(other, sample_video, "blur", 16, fps=5)
    assert run_cli("train", "--data", tiny, *TINY, "--epochs", "1", "--name", "x", cwd=tmp_path).returncode == 0
    result = run_cli("train", "--name", "x", "--resume", "--data", other, "--epochs", "2", cwd=tmp_path)
    assert_user_error(result, "last.pt", "other data", "--allow-new-data")
    result = run_cli("train", "--name", "x", "--resume", "--data", other, "--epochs", "2", "--allow-new-data", cwd=tmp_path)
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("damage", ["garbage", "truncated", "not_ours"])
def test_damaged_checkpoint_is_refused_with_one_line(tmp_path, tiny, damage):
    assert run_cli("train", "--data", tiny, *TINY, "--epochs", "1", "--name", "x", cwd=tmp_path).returncode == 0
    last = tmp_path / "checkpoints" / "x" / "last.pt"
    if damage == "garbage":
        last.write_bytes(np.random.default_rng(0).bytes(5000))
    elif damage == "truncated":
        last.write_bytes(last.read_bytes()[: last.stat().st_size // 2])
    else:
        torch.save({"weights": torch.zeros(3)}, last)
    expected = {"garbage": "not a PyTorch checkpoint, or damaged", "truncated": "damaged or truncated",
                "not_ours": "not a vgan checkpoint"}[damage]
    assert_user_error(run_cli("train", "--name", "x", "--resume", cwd=tmp_path), "checkpoints/x/last.pt", expected)


def test_learning_rate_is_constant_then_decays_linearly_to_zero():
    assert [lr_at(s, 1.0, 10, 4) for s in (0, 5, 6, 8, 10)] == [1.0, 1.0, 1.0, 0.5, 0.0]
    assert lr_at(7, 2e-4, 10, 0) == 2e-4


def test_watchdog_warns_once_when_the_gan_fails_and_the_l1_stalls_with_it():
    dog = Watchdog()
    for epoch in range(9):
        messages = dog.end_epoch(0.01, 1.0 + epoch, 0.2)  # D near zero all along, G's adversarial loss climbing, L1 flat
        if epoch == 5:  # the first epoch with two windows of three epochs' L1 to compare
            assert len(messages) == 2 and "discriminator has won" in messages[0] and "stopped falling" in messages[0]
            assert "keeps climbing" in messages[1] and "--spectral-norm" in messages[1]
        else:
            assert messages == []  # not yet known, or already said and not cleared since
    assert Watchdog().end_epoch(0.7, 0.7, 0.2) == []


def test_watchdog_stays_quiet_while_the_l1_falls_however_the_gan_looks():
    dog = Watchdog()
    for epoch in range(8):  # pix2pix as it usually looks: D winning, G's adversarial loss rising, L1 falling
        assert dog.end_epoch(0.01, 1.0 + epoch, 0.3 * 0.9 ** epoch) == []


def test_watchdog_takes_one_flat_epoch_for_noise_not_a_stall():
    # The L1 per epoch of edges -> frames on natural footage (150 steps), flat for one epoch while
    # the discriminator pulled ahead; it fell 8% in the next.
    l1 = [0.532, 0.494, 0.464, 0.438, 0.419, 0.404, 0.385, 0.364, 0.340, 0.323, 0.311, 0.311, 0.285]
    adversarial = [1.11, 1.73, 2.30, 2.01, 1.52, 1.74, 1.32, 2.47, 0.82, 1.13, 1.53, 2.47, 0.93]
    dog = Watchdog()
    for value, adv in zip(l1, adversarial):
        assert dog.end_epoch(0.6, adv, value) == []


def metrics_of(folder):
    return read_metrics(folder)


def decays_over_the_second_half(lrs):
    """The last of two epochs decays linearly towards zero: lr(step s of n) = lr * min(1, (n - s) / (n / 2))."""
    n, lr = len(lrs), default_flags()["lr"]
    return n >= 4 and lrs == pytest.approx([lr * min(1.0, (n - s) / (n / 2)) for s in range(n)])


FLAG_CASES = {  # flags -> what the run must show for them
    "resnet": (["-net", "resnet", "--blocks", "1", "--downsample", "1"],
               lambda state, records: state["network"] == "resnet" and state["model_args"]["blocks"] == 1),
    "se": (["-net", "resnet", "--blocks", "1", "--downsample", "1", "--se"],
           lambda state, records: any(".gate." in key for key in state["generator"])),
    "temporal_pool": (["--temporal-pool"],
                      lambda state, records: state["generator"]["upsample.0.weight"].shape[2] == 2),  # a 2x2x2 up-convolution
    "conv_2plus1d": (["--conv", "2plus1d"], lambda state, records: state["model_args"]["conv"] == "2plus1d"
                     and state["disc_args"]["conv"] == "2plus1d" and "encoder.0.0.1.weight" in state["generator"]),
    "lsgan": (["--gan-loss", "lsgan"], lambda state, records: state["config"]["gan_loss"] == "lsgan"),
    "hinge": (["--gan-loss", "hinge"], lambda state, records: state["config"]["gan_loss"] == "hinge"),
    "none": (["--gan-loss", "none"],
             lambda state, records: state["discriminator"] is None and not any("loss/g_adv" in r for r in records)),
    "spectral_norm": ([], lambda state, records: any("parametrizations" in key for key in state["discriminator"])),  # the default
    "no_spectral_norm": (["--no-spectral-norm"], lambda state, records: state["disc_args"]["spectral_norm"] is False
                         and not any("parametrizations" in key for key in state["discriminator"])),
    "mse": (["--mse", "10"], lambda state, records: all(
        r["loss/g_total"] == pytest.approx(r["loss/g_adv"] + 100 * r["loss/g_l1"] + 10 * r["loss/g_mse"]
                                           + state["config"]["temporal"] * r["loss/g_temporal"], rel=1e-5)
        for r in records if "loss/g_total" in r)),
    "decay_epochs": (["--decay-epochs", "1", "--epochs", "2"], lambda state, records: decays_over_the_second_half(
        [r["lr"] for r in records if "lr" in r])),
}


@pytest.mark.parametrize("case", sorted(FLAG_CASES))
def test_every_network_and_loss_flag_trains(tmp_path, tiny, case):
    flags, check = FLAG_CASES[case]
    budget = [] if "--epochs" in flags else ["--max-steps", "2"]
    # What a flag builds is tested here, not how it computes (test_autotune.py): nothing to measure or try first.
    fixed_compute = ["--amp", "off", "--memory-format", "contiguous"]
    result = run_cli("train", "--data", tiny, *TINY, *budget, *flags, *fixed_compute, "--log-every", "1", "--name", "x", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    folder = tmp_path / "checkpoints" / "x"
    state = torch.load(folder / "last.pt", weights_only=True)
    records = metrics_of(folder)
    losses = [v for r in records for k, v in r.items() if k.startswith("loss/")]
    assert losses and all(np.isfinite(losses))
    assert check(state, records)


def test_resume_after_a_batch_size_change_goes_on_from_the_same_place_or_the_next_epoch(tmp_path, tiny):
    common = ["--data", tiny, *TINY, "--name", "x"]  # 26 training windows
    assert run_cli("train", *common, "-batch", "1", "--max-steps", "8", cwd=tmp_path).returncode == 0  # 8 of 26 steps
    resumed = run_cli("train", "--name", "x", "--resume", "-batch", "6", "--max-steps", "10", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    state = torch.load(tmp_path / "checkpoints" / "x" / "last.pt", weights_only=True)
    assert state["config"]["batch"] == 6 and state["step"] == 10
    assert (state["epoch"], state["epoch_step"]) == (1, 2)  # an epoch of batch 6 has 5 steps: step 8 of it is gone, epoch 2 began
    again = run_cli("train", "--name", "x", "--resume", "-batch", "5", "--max-steps", "11", cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    state = torch.load(tmp_path / "checkpoints" / "x" / "last.pt", weights_only=True)
    assert (state["epoch"], state["epoch_step"], state["step"]) == (1, 3, 11)  # within the epoch: on from where it stood


def test_the_watchdog_warns_from_inside_a_training_run(tmp_path, tiny, monkeypatch, capsys):
    from training import watchdog
    from training.loop import train

    monkeypatch.setattr(watchdog, "D_WON_BELOW", 1e9)  # any discriminator loss counts as "won"
    monkeypatch.setattr(watchdog, "STALL_FACTOR", 0.0)  # and any L1 as stalled
    monkeypatch.setattr(watchdog, "STALL_EPOCHS", 1)  # as soon as there are two epochs to compare
    config = {**default_flags(), "data": str(tiny), "depth": 2, "channels": 4, "d_channels": 4, "d_layers": 2, "pool": 4,
              "step": 2, "epochs": 3, "name": "dog", "checkpoints": str(tmp_path)}
    assert train(config) == 0
    warnings = [line for line in capsys.readouterr().err.splitlines() if "discriminator has won" in line]
    assert len(warnings) == 1 and warnings[0].startswith(f"warning: {tmp_path / 'dog'}")  # once, not again while it lasts


def rank_process(name, rank):
    """The pid of rank `rank` of a torchrun'd `train --name NAME`, when it runs."""
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            command = open(f"/proc/{pid}/cmdline", "rb").read().split(b"\0")
            environ = open(f"/proc/{pid}/environ", "rb").read().split(b"\0")
        except OSError:
            continue
        if b"train" in command and name.encode() in command and f"RANK={rank}".encode() in environ:
            return int(pid)
    return None


def test_torchrun_restarts_after_a_rank_is_killed_and_training_resumes_bitwise(tmp_path, tiny):
    """Rank 1 is SIGKILLed once step 7 of 30 is logged: mid-run, with most of the run still ahead."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}

    def launch(name):
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", "--max-restarts", "1",
               str(REPO / "main.py"), "train", "--data", str(tiny), *TINY, "--epochs", "10", "--log-every", "1", "--name", name,
               "--device", "cpu"]
        return spawn(cmd, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)

    straight = launch("straight")
    assert straight.wait(timeout=300) == 0, straight.stdout.read()[-3000:]
    killed = launch("killed")
    folder = tmp_path / "checkpoints" / "killed"
    deadline = time.monotonic() + 300
    while not [r for r in read_metrics(folder) if r.get("step", 0) >= 7 and "loss/g_total" in r]:
        assert time.monotonic() < deadline and killed.poll() is None, "the run did not get going"
        time.sleep(0.05)
    os.kill(rank_process("killed", 1), signal.SIGKILL)  # one rank, mid-epoch
    output, _ = killed.communicate(timeout=300)
    assert killed.returncode == 0, output[-3000:]
    assert "torchrun restarted the ranks (restart 1); resuming" in output
    events = [r["event"] for r in read_metrics(folder) if "event" in r]
    assert events[0] == "started" and events[-2:] == ["resumed", "finished"], events
    a = torch.load(tmp_path / "checkpoints" / "straight" / "last.pt", weights_only=True)
    b = torch.load(folder / "last.pt", weights_only=True)
    assert a["step"] == b["step"] == 30
    assert all(torch.equal(a["generator"][k], b["generator"][k]) for k in a["generator"])
