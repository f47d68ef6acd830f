"""The documentation and `-h` tell the truth: every flag's default is shown and reads right, every
relative link resolves, and the docs name every choice the code offers."""
import argparse
import re

from main import build_parser

def documented_flags():
    """(command, flag, its help as -h prints it) for every optional flag of every command."""
    _, commands = build_parser()
    for name, parser in commands.choices.items():
        formatter = parser._get_formatter()
        for action in parser._actions:
            if action.option_strings and not action.required and action.default is not argparse.SUPPRESS:  # not -h
                yield name, action.option_strings[-1], formatter._expand_help(action)


def test_every_flag_in_help_shows_a_default_that_reads_right():
    unclear = [(name, flag, text[-60:]) for name, flag, text in documented_flags()
               if "default" not in text or re.search(r"default: (None|True|False|\[\]|\{\})", text)]
    assert not unclear, unclear


def test_a_switch_that_is_on_by_default_reads_as_on():
    helps = {(name, flag): text for name, flag, text in documented_flags()}
    assert helps["compare", "--no-blend"].endswith("(default: on)")
    assert helps["inspect-network", "--no-timing"].endswith("(default: on)")
    assert helps["train", "--temporal"].endswith("(default: 10.0)")
    assert helps["train", "--flip"].endswith("(default: off)")
    assert helps["build-dataset", "--video"].endswith("(default: none)")
    assert "(default: train's, 10.0)" in helps["sweep", "--temporal"]
