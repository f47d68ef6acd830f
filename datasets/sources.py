"""Where pairs of frames come from: two aligned videos, or one video and a derived pair. A source
knows its input files, how many frames it will give (from probing alone), the frames themselves
as aligned uint8 chunks (A, B), and what meta.json says about it. build-dataset and compare use them.

    source = DerivedSource("videos/in.mp4", parse_pair("blur"))
    for a, b in source.chunks(Size(64, 64)): ...          # uint8 (n, H, W, 3) each
"""
import tempfile
from pathlib import Path

import numpy as np

from utils.errors import DatasetError, VideoError
from media.decode import iter_frames
from media.encode import VideoWriter
from media.probe import probe

CHUNK_FRAMES = 64


def lockstep(chunks_a, chunks_b, mismatch):
    """Yield equal-length chunks (A, B) from two chunk streams; call `mismatch()` (which may raise)
    when one stream ends before the other, and stop there."""
    held_b = np.zeros((0,), dtype=np.uint8)
    try:
        for ca in chunks_a:
            while len(held_b) < len(ca):
                cb = next(chunks_b, None)
                if cb is None:
                    break
                held_b = cb if not len(held_b) else np.concatenate([held_b, cb])
            n = min(len(ca), len(held_b))
            if n:
                yield ca[:n], held_b[:n]
            held_b = held_b[n:]
            if n < len(ca):
                mismatch()
                return
        if len(held_b) or next(chunks_b, None) is not None:
            mismatch()
    finally:
        chunks_a.close()
        chunks_b.close()


class Source:
    """What the sources share: probing each input once."""

    paths = ()

    def __init__(self):
        self._infos = {}

    def info(self, path):
        if path not in self._infos:
            self._infos[path] = probe(path)
        return self._infos[path]

    def frames(self, path, size, fps=None):
        return iter_frames(path, size=size, fps=fps, chunk_frames=CHUNK_FRAMES, info=self.info(path))


class PairedSource(Source):
    """Two aligned videos (or frame folders): A from one, B from the other, frame for frame.
    Unequal lengths are an error unless `trim`, which keeps the shorter length."""

    def __init__(self, a, b, trim=False):
        super().__init__()
        self.a, self.b, self.trim = a, b, trim
        self.paths = (a, b)

    def expected_frames(self, fps=None):
        na, nb = self.info(self.a).frames_at(fps), self.info(self.b).frames_at(fps)
        if na != nb and not self.trim:
            raise DatasetError(self.a, f"has {na} frames but B ({self.b}) has {nb}; pass --trim to use the first {min(na, nb)} of each")
        return min(na, nb)

    def chunks(self, size, fps=None):
        yield from lockstep(self.frames(self.a, size, fps), self.frames(self.b, size, fps), self._mismatch)

    def _mismatch(self):
        if not self.trim:
            raise DatasetError(self.a, f"A and B ({self.b}) have different frame counts; pass --trim to use the shorter length")

    def meta(self):
        return {"a": str(self.a), "b": str(self.b)}


class DerivedSource(Source):
    """One video (or frame folder) and a derived pair: A derived from the frames and B the frames
    themselves, or, for future:K, A = frame t and B = frame t + K."""

    def __init__(self, video, pair, rng=None):
        super().__init__()
        self.video, self.pair = video, pair
        self.rng = rng if rng is not None else np.random.default_rng(0)
        self.paths = (video,)

    def expected_frames(self, fps=None):
        return max(0, self.info(self.video).frames_at(fps) - self.pair.lost_frames)

    def chunks(self, size, fps=None):
        if self.pair.kind == "future":
            yield from self._shifted(size, fps)
        elif self.pair.kind == "compress":
            yield from self._compressed(size, fps)
        else:
            for chunk in self.frames(self.video, size, fps):
                yield self.pair.derive(chunk, self.rng), chunk

    def _shifted(self, size, fps):
        k = self.pair.value
        held = None
        for chunk in self.frames(self.video, size, fps):
            held = chunk if held is None else np.concatenate([held, chunk])
            if len(held) > k:
                yield held[:-k], held[k:]
                held = held[-k:]

    def _compressed(self, size, fps):
        """A: the frames encoded with libx264 at the pair's CRF (yuv420p, as delivered video is), then decoded."""
        with tempfile.TemporaryDirectory(prefix="vgan-compress-") as scratch:
            encoded = Path(scratch) / "compressed.mp4"
            with VideoWriter(encoded, fps or self.info(self.video).fps, crf=self.pair.value) as writer:
                for chunk in self.frames(self.video, size, fps):
                    writer.write(chunk)
            height, width = size[1], size[0]  # the writer pads odd sides; crop them back
            decoded = (chunk[:, :height, :width] for chunk in iter_frames(encoded, chunk_frames=CHUNK_FRAMES))

            def mismatch():
                raise VideoError(self.video, "its libx264 re-encode gave another frame count; re-encode the video and try again")

            yield from lockstep(decoded, self.frames(self.video, size, fps), mismatch)

    def meta(self):
        return {"video": str(self.video)}


class InputSource(Source):
    """One video with no target: chunks (A, None)."""

    def __init__(self, video):
        super().__init__()
        self.video = video
        self.paths = (video,)

    def expected_frames(self, fps=None):
        return self.info(self.video).frames_at(fps)

    def chunks(self, size, fps=None):
        for chunk in self.frames(self.video, size, fps):
            yield chunk, None

    def meta(self):
        return {"video": str(self.video)}
