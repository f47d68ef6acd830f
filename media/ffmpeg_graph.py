"""ffmpeg-python's graph builder (`input`, `output`, `filter`, `overlay`), imported by its modules rather than
its package: the unrelated PyPI package `ffmpeg`, which cvvdp (ColorVideoVDP) requires, installs
an empty ffmpeg/__init__.py over ffmpeg-python's when pip happens to install it second, and then
`import ffmpeg; ffmpeg.input` fails. The modules below are ffmpeg-python's alone, so vgan builds its
commands whichever order pip took. Importing _filters and _run also attaches `.filter()`,
`.output()` and `.compile()` to the streams, as the package's own __init__ would.

    from media import ffmpeg_graph as ffmpeg
    ffmpeg.input("in.mp4").video.filter("scale", 64, 64).output("pipe:", format="rawvideo")
"""
from ffmpeg import _run  # noqa: F401 - attaches .compile() and .run() to the graph's nodes
from ffmpeg._ffmpeg import input, output  # noqa: A004 - ffmpeg-python's names
from ffmpeg._filters import filter, overlay  # noqa: A004

__all__ = ["input", "output", "filter", "overlay"]
