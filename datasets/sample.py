"""The built-in sample video: colourful, moving and the same on every machine, rendered by ffmpeg's lavfi sources.

It is what `demo` and a bare `train` use, so the platform runs with no video of the user's.
    python -c "from datasets.sample import ensure_sample; ensure_sample()"   # -> videos/sample.mp4
"""
from pathlib import Path

SAMPLE_PATH = Path("videos/sample.mp4")
SAMPLE_DATA = "data/sample"  # train's default --data: gray -> colour at 64x64 from the sample, built when missing
SAMPLE_SECONDS = 12
SAMPLE_FPS = 25
SAMPLE_SIZE = 256


def sample_stream(size=SAMPLE_SIZE, fps=SAMPLE_FPS):
    """Drifting colour gradients, a Game of Life in three colours, and a spinning test card."""
    from media import ffmpeg_graph as ffmpeg  # here, not at import: the flags' schema reads SAMPLE_DATA, and `-h` stays quick

    # Every colour and position is given: the source's defaults are random even with a seed.
    colours = "c0=0xff3355:c1=0x33ccff:c2=0xffcc00:c3=0x22dd66:c4=0x9933ff"
    background = ffmpeg.input(f"gradients=s={size}x{size}:r={fps}:speed=0.03:n=5:seed=7:{colours}:"
                              f"x0=0:y0=0:x1={size - 1}:y1={size - 1}", f="lavfi")
    life = (ffmpeg.input(f"life=s={size // 4}x{size // 4}:r={fps}:mold=10:seed=3:life_color=#ffdd33:"
                         f"death_color=#3322aa:mold_color=#22aa55", f="lavfi")
            .filter("scale", size, size, flags="neighbor")
            .filter("format", "rgba")
            .filter("colorchannelmixer", aa=0.45))
    card = (ffmpeg.input(f"testsrc2=s={size * 3 // 8}x{size * 3 // 8}:r={fps}", f="lavfi")
            .filter("format", "rgba")
            .filter("rotate", a="t", c="none", ow=size // 2, oh=size // 2))
    quarter, swing = size // 4, size * 15 // 64
    return (ffmpeg.overlay(background, life)
            .overlay(card, x=f"{quarter}+{swing}*sin(t)", y=f"{quarter}+{swing}*cos(1.3*t)"))


def ensure_sample(path=SAMPLE_PATH):
    """Render the sample to `path` unless it is there already; return the path."""
    from media.encode import render

    path = Path(path)
    if not path.exists():
        render(sample_stream(), path, duration=SAMPLE_SECONDS)
    return path
