"""Argument types shared by the commands: each rejects a bad value with an argparse-style message.

    parser.add_argument("--size", type=frame_size, default="64")   # "64" -> (64, 64), "96x64" -> (96, 64)
"""
import argparse
import re


def _number(text, kind, minimum, inclusive, what):
    try:
        value = kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not {what}") from None
    if value != value or value in (float("inf"), float("-inf")) or (value < minimum if inclusive else value <= minimum):
        raise argparse.ArgumentTypeError(f"{text!r} is not {what}")
    return value


def positive_int(text):
    return _number(text, int, 0, False, "a whole number above 0")


def non_negative_int(text):
    return _number(text, int, 0, True, "a whole number, 0 or more")


def positive_float(text):
    return _number(text, float, 0.0, False, "a number above 0")


def non_negative_float(text):
    return _number(text, float, 0.0, True, "a number, 0 or more")


def fraction(text):
    value = non_negative_float(text)
    if value >= 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a fraction from 0 up to (not including) 1")
    return value


def frame_size(text):
    """'64' -> (64, 64); '96x64' -> (96, 64): (width, height) in pixels."""
    found = re.fullmatch(r"\s*(\d+)\s*(?:[xX]\s*(\d+)\s*)?", str(text))
    if not found or int(found.group(1)) == 0 or (found.group(2) is not None and int(found.group(2)) == 0):
        raise argparse.ArgumentTypeError(f"{text!r} is not a size: give a side (64) or WIDTHxHEIGHT (96x64), above 0")
    width = int(found.group(1))
    return (width, int(found.group(2)) if found.group(2) else width)


def format_size(size):
    return f"{size[0]}x{size[1]}"
