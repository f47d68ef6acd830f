"""vgan: experiments with 3D-convolutional GANs on video, from one command line.

    python main.py -h              # the commands
    python main.py demo            # the whole pipeline on the built-in sample video
"""
import argparse
import importlib
import sys

from cli.config_file import with_config_file
from utils.errors import UsageError, UserError

# Every command, in the order a user meets them: each is a module commands/NAME.py with HELP,
# add_arguments(parser) and main(args) -> exit code (and optionally HELP_ACTION, its -h).
COMMANDS = ["split", "build_dataset", "inspect_network", "train", "compare", "evaluate", "export", "demo", "runs", "sweep", "verdict"]


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Shows every flag's default and keeps the example commands in descriptions as written."""

    def _get_help_string(self, action):
        return help_with_default(action)


def help_with_default(action):
    """A flag's help ending in its default: as its text words it ("(default: the video's own)"),
    as on or off for a switch, else the value. A positional or required argument has none."""
    text = action.help or ""
    if "default:" in text or not action.option_strings or action.required or argparse.SUPPRESS in (action.help, action.default):
        return text  # -h's default is SUPPRESS
    if action.nargs == 0:  # a switch: --flag, or --flag / --no-flag
        return f"{text} (default: {'on' if action.default else 'off'})"
    if action.default in ([], {}):  # a repeatable flag given no value
        return f"{text} (default: none)"
    return f"{text} (default: %(default)s)"


def build_parser():
    """The root parser with one sub-parser per command."""
    parser = argparse.ArgumentParser(prog="main.py", description=__doc__, formatter_class=HelpFormatter)
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMANDS:
        module = importlib.import_module(f"commands.{name}")
        sub = subparsers.add_parser(name.replace("_", "-"), help=module.HELP, description=module.__doc__,
                                    formatter_class=HelpFormatter, add_help=False)
        # A command may say more in its help once it knows what the flags before -h name (train: a plug-in's arguments).
        sub.add_argument("-h", "--help", action=getattr(module, "HELP_ACTION", "help"), help="show this help message and exit")
        module.add_arguments(sub)
        sub.set_defaults(command_main=module.main)
    return parser, subparsers


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    parser, subparsers = build_parser()
    for token in argv:  # argparse takes "--lr=--" as an empty list instead of refusing it
        if token.startswith("-") and token.endswith("=--"):
            parser.error(f"argument {token[:-3]}: expected a value, not '--'")
    try:
        command = subparsers.choices.get(argv[0]) if argv else None
        if command is not None and any(action.dest == "config" for action in command._actions):
            argv = [argv[0], *with_config_file(argv[1:], command)]
        args = parser.parse_args(argv)
        return args.command_main(args)
    except UsageError as exc:
        subparsers.choices[args.command].error(str(exc))
    except UserError as exc:
        print(f"error: {exc.path}: {exc.message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
