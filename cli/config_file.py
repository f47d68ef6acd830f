"""Flags from a file: `--config exp.toml` (or a run's config.json) stands for the flags it holds,
read before the command line so that the flags typed there override it. Keys are the flags'
names (gan_loss or gan-loss); a key that no flag of the command has is an error naming it.

    # exp.toml                                     # grid.toml, for sweep
    network = "examples/factorised.py:Factorised"  network = ["unet", "examples/factorised.py:Factorised"]
    net_args = { width = 16, dilation = 2 }        net_args = { width = [16, 32] }
    crop = "48x48"                                 seeds = 3
    flip = true                                    l1 = [50, 100]

A run's config.json re-runs it as it was: what it learned from, not where it was written (its
--name, --checkpoints and --resume are left to the command line).
"""
import json
import tomllib
from pathlib import Path

from networks.declared import dest_of
from utils.errors import UserError

FLAG = "--config"
WHERE_A_RUN_WAS_WRITTEN = ("name", "checkpoints", "resume", "allow_new_data", "network_source", "disc_source",
                           "allow_changed_network", "dry_run")


def with_config_file(argv, parser):
    """`argv` (a command's arguments) with `--config FILE` replaced by the flags FILE holds, put
    first so that what is typed after overrides them; unchanged when there is no --config."""
    for index, token in enumerate(argv):
        if token == FLAG or token.startswith(FLAG + "="):
            if token == FLAG and index + 1 >= len(argv):
                parser.error(f"argument {FLAG}: expected a file")
            path = token.partition("=")[2] if "=" in token else argv[index + 1]
            rest = argv[:index] + argv[index + (1 if "=" in token else 2):]
            return flags_in_file(path, parser) + rest
    return argv


def read_file(path):
    path = Path(path)
    if not path.is_file():
        raise UserError(path, "no such config file")
    try:
        if path.suffix == ".json":
            data = json.loads(path.read_text(encoding="utf-8"))
        else:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:  # tomllib.TOMLDecodeError and json's errors are ValueErrors
        raise UserError(path, f"is not {'JSON' if path.suffix == '.json' else 'TOML'}: {exc}") from None
    if not isinstance(data, dict):
        raise UserError(path, "does not hold a table of flags")
    if path.suffix == ".json":  # a run's config.json: what it learned, not where it went
        data = {key: value for key, value in data.items() if key not in WHERE_A_RUN_WAS_WRITTEN}
    return data


def flags_in_file(path, parser):
    """The command-line tokens that stand for the flags in the file at `path`, for `parser`."""
    data = read_file(path)
    actions = {action.dest: action for action in parser._actions if action.option_strings and action.dest != "config"}
    unknown = [key for key in data if dest_of(key) not in actions]
    if unknown:
        raise UserError(path, f"{'has keys' if len(unknown) > 1 else 'has a key'} that no flag of this command has: "
                              f"{', '.join(unknown)}")
    tokens = []
    for key, value in data.items():
        tokens += _tokens(actions[dest_of(key)], value, path)
    return tokens


FROM_FILE = "//file"  # in a table handed to a flag whole: the file it came from, for the flag's errors


def _tokens(action, value, path):
    name = max((o for o in action.option_strings if not o.startswith("--no-")), key=len)
    if value is None:
        return []
    if isinstance(value, dict) and getattr(action.type, "takes_table", False):  # a table the flag takes whole (sweep's --space)
        return [name, json.dumps({**value, FROM_FILE: str(path)})]
    if isinstance(value, dict):  # --net-arg NAME=VALUE, one per entry
        return [token for key, item in value.items() for token in (name, f"{key}={_text(item, action)}")]
    if action.nargs == 0:  # a switch: --flag, or --flag / --no-flag
        if isinstance(value, bool):
            negative = next((o for o in action.option_strings if o.startswith("--no-")), None)
            return [name] if value else ([negative] if negative else [])
    return [name, _text(value, action)]


def _text(value, action):
    """A value as the flag takes it: on/off for a switch, WxH for a frame size, a list comma-separated (a sweep's values)."""
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, list):
        sized = getattr(action.type, "__name__", "") == "frame_size"
        if sized and len(value) == 2 and all(isinstance(v, int) for v in value):
            return f"{value[0]}x{value[1]}"
        return ",".join(_text(item, action) for item in value)
    return str(value)
