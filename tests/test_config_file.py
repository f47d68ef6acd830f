"""Experiments from a file: train --config (TOML, or a run's config.json to run it again as it was)
and sweep --config (a grid); flags typed on the command line override the file; a key no flag has
is an error naming it."""
import json

import torch

from conftest import TINY, assert_user_error, run_cli


def test_train_takes_its_flags_from_a_toml_file_and_the_command_line_overrides_it(tmp_path, tiny):
    (tmp_path / "exp.toml").write_text(f'data = "{tiny}"\ndepth = 2\nchannels = 4\nd-channels = 4\nd_layers = 2\npool = 4\n'
                                       'step = 2\nflip = true\nspectral-norm = false\nlr = 0.01\nmax_steps = 2\ncrop = "8x8"\n')
    done = run_cli("train", "--config", "exp.toml", "--lr", "0.002", "--name", "x", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    config = json.loads((tmp_path / "checkpoints" / "x" / "config.json").read_text())
    assert (config["depth"], config["d_layers"], config["flip"], config["spectral_norm"], config["crop"]) == (2, 2, True, False, [8, 8])
    assert config["lr"] == 0.002 and config["max_steps"] == 2  # typed beats the file


def test_a_key_that_no_flag_has_is_refused_naming_it(tmp_path, tiny):
    (tmp_path / "exp.toml").write_text(f'data = "{tiny}"\nnetwrok = "unet"\nlearning_rate = 0.1\n')
    assert_user_error(run_cli("train", "--config", "exp.toml", cwd=tmp_path), "exp.toml", "netwrok, learning_rate")
    (tmp_path / "broken.toml").write_text('data = "unclosed\n')
    assert_user_error(run_cli("train", "--config", "broken.toml", cwd=tmp_path), "broken.toml", "is not TOML")
    assert_user_error(run_cli("train", "--config", "nowhere.toml", cwd=tmp_path), "nowhere.toml", "no such config file")
    assert not (tmp_path / "checkpoints").exists()


def test_a_run_s_config_json_runs_it_again_as_it_was(tmp_path, tiny):
    first = run_cli("train", "--data", tiny, *TINY, "--max-steps", "2", "--seed", "5", "--flip", "--name", "first", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    again = run_cli("train", "--config", "checkpoints/first/config.json", "--name", "again", cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    configs = [json.loads((tmp_path / "checkpoints" / name / "config.json").read_text()) for name in ("first", "again")]
    assert {k: v for k, v in configs[0].items() if k != "name"} == {k: v for k, v in configs[1].items() if k != "name"}
    weights = [torch.load(tmp_path / "checkpoints" / name / "last.pt", weights_only=True)["generator"] for name in ("first", "again")]
    assert all(torch.equal(weights[0][key], weights[1][key]) for key in weights[0])


def test_sweep_takes_a_grid_from_a_toml_file(tmp_path, tiny):
    (tmp_path / "grid.toml").write_text(f'data = "{tiny}"\nnetwork = ["unet", "resnet"]\nl1 = [50, 100]\nflip = [true, false]\n'
                                        'seeds = 2\nmax_steps = 2\n')
    listed = run_cli("sweep", "--config", "grid.toml", "--dry-run", "--l1", "10", cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    assert "8 runs (4 points x 2 seeds)" in listed.stdout  # --l1 typed replaces the file's two values
    commands = [line for line in listed.stdout.splitlines() if line.startswith("python main.py train")]
    assert len(commands) == 8 and all("--l1 10" in c and "--max-steps 2" in c for c in commands)
    assert sum("--flip" in c for c in commands) == 4 and sum("--network resnet" in c for c in commands) == 4
    (tmp_path / "bad.toml").write_text("seedz = 2\n")
    assert_user_error(run_cli("sweep", "--config", "bad.toml", "--dry-run", cwd=tmp_path), "bad.toml", "seedz")
