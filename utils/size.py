"""Frame sizes as one named type, so that no tuple leaves anyone guessing which side comes first.

    size = Size(96, 64); size.width == 96; str(size) == "96x64"; Size.parse("64") == Size(64, 64)
"""
import re
from typing import NamedTuple


class Size(NamedTuple):
    width: int
    height: int

    @classmethod
    def parse(cls, text):
        """'64' -> Size(64, 64); '96x64' -> Size(96, 64). Raises ValueError on anything else."""
        found = re.fullmatch(r"\s*(\d+)\s*(?:[xX]\s*(\d+)\s*)?", str(text))
        if not found or int(found.group(1)) == 0 or (found.group(2) is not None and int(found.group(2)) == 0):
            raise ValueError(f"{text!r} is not a size: give a side (64) or WIDTHxHEIGHT (96x64), above 0")
        width = int(found.group(1))
        return cls(width, int(found.group(2)) if found.group(2) else width)

    @classmethod
    def of(cls, frames):
        """The size of uint8 frames (..., H, W, 3)."""
        return cls(frames.shape[-2], frames.shape[-3])

    def __str__(self):
        return f"{self.width}x{self.height}"
