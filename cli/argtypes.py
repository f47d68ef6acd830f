"""Argument types shared by the commands: each rejects a bad value with an argparse-style message.

    parser.add_argument("--size", type=frame_size, default="64")   # "64" -> Size(64, 64), "96x64" -> Size(96, 64)
"""
import argparse

from utils.size import Size


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


INTEGER_TYPES = (int, positive_int, non_negative_int)  # a flag of one of these takes whole numbers (a search draws integers)


def positive_float(text):
    return _number(text, float, 0.0, False, "a number above 0")


def non_negative_float(text):
    return _number(text, float, 0.0, True, "a number, 0 or more")


def fraction(text):
    value = non_negative_float(text)
    if value >= 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a fraction from 0 up to (not including) 1")
    return value


def significance(text):
    """A significance level: a probability above 0 and under 0.5 (0.05, say)."""
    value = positive_float(text)
    if value >= 0.5:
        raise argparse.ArgumentTypeError(f"{text!r} is not a probability above 0 and under 0.5")
    return value


def frame_size(text):
    """'64' -> Size(64, 64); '96x64' -> Size(96, 64)."""
    try:
        return Size.parse(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def switch(text):
    """on/off (also true/false, 1/0) -> bool: the values a swept switch takes."""
    values = {"on": True, "off": False, "true": True, "false": False, "1": True, "0": False}
    if str(text).lower() not in values:
        raise argparse.ArgumentTypeError(f"{text!r} is not on or off")
    return values[str(text).lower()]


def byte_size(text):
    """'2G', '512M', '1.5e9' -> bytes (K, M, G, T are powers of 1024)."""
    from utils.memory import parse_bytes

    try:
        value = parse_bytes(text)
    except (ValueError, IndexError):
        raise argparse.ArgumentTypeError(f"{text!r} is not a size in bytes (e.g. 8G, 512M)") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a size in bytes above 0")
    return value


def resource_list(text):
    """'GPU=1,MEMORY=8e9' -> {"GPU": 1.0, "MEMORY": 8e9}: Dask worker resources."""
    resources = {}
    for part in str(text).split(","):
        name, _, amount = part.partition("=")
        try:
            resources[name.strip()] = float(amount)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected NAME=AMOUNT[,NAME=AMOUNT...], like GPU=1, not {text!r}") from None
        if not name.strip() or resources[name.strip()] <= 0:
            raise argparse.ArgumentTypeError(f"expected NAME=AMOUNT with a positive amount, like GPU=1, not {text!r}")
    return resources


def name_list(allowed):
    """The type of a flag that takes names from `allowed`, comma-separated: "jod,lpips" -> ["jod", "lpips"]."""
    def parse(text):
        names = list(dict.fromkeys(part.strip() for part in str(text).split(",") if part.strip()))
        unknown = [name for name in names if name not in allowed] or ([] if names else [repr(text)])
        if unknown:
            raise argparse.ArgumentTypeError(f"{unknown[0]} is not one of {', '.join(allowed)}")
        return names
    return parse
