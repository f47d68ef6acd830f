"""Footage with real texture, made here: slow pans and zooms over scikit-image's sample photographs,
one shot (one video) per photograph, encoded losslessly. The built-in sample is synthetic (flat
gradients and hard edges); restoration needs what cameras see. Used by bench/quality.py and the tests.

    shots = natural_shots("videos/natural", frames=48, size=Size(96, 64))   # [videos/natural/astronaut.mp4, ...]
    python -m bench.footage videos/natural --frames 48 --size 64    # the same from the command line
    python -m bench.footage videos/unseen --photos coffee           # one shot of one photograph
"""
import argparse
from pathlib import Path

import cv2
import numpy as np

from media.encode import VideoWriter
from cli.argtypes import frame_size
from utils.size import Size

PHOTOS = ("astronaut", "coffee", "chelsea", "rocket", "immunohistochemistry", "hubble_deep_field")
ZOOM = 1.35  # the view narrows by this factor over a shot
PAN = 0.3  # and its centre travels this share of the photograph


def camera_path(photo_shape, size, frames, seed):
    """(centre x, centre y, view width) per frame: a smooth pan and zoom inside the photograph."""
    rng = np.random.default_rng(seed)
    height, width = photo_shape[:2]
    view = min(width, height * size.width / size.height) * 0.7  # the widest view, in photograph pixels
    t = np.linspace(0.0, 1.0, frames)
    ease = t * t * (3 - 2 * t)  # smoothstep: the camera starts and stops gently
    start = np.array([width, height]) * 0.5 + rng.uniform(-1, 1, 2) * np.array([width, height]) * PAN / 2
    end = start + rng.uniform(-1, 1, 2) * np.array([width, height]) * PAN
    centres = start + ease[:, None] * (end - start)
    views = view / (1 + (ZOOM - 1) * ease)
    margin = views[:, None] * np.array([0.5, 0.5 * size.height / size.width])
    centres = np.clip(centres, margin, np.array([width, height]) - margin)
    return centres[:, 0], centres[:, 1], views


def render_shot(photo, size, frames, seed):
    """uint8 (frames, H, W, 3): the camera path over `photo`, sampled with area averaging then cubic."""
    xs, ys, views = camera_path(photo.shape, size, frames, seed)
    scale = size.width / views.max()
    shrink = max(1.0, 0.5 / scale)  # pre-shrink with area averaging so the warp never aliases
    small = cv2.resize(photo, None, fx=1 / shrink, fy=1 / shrink, interpolation=cv2.INTER_AREA) if shrink > 1 else photo
    out = np.empty((frames, size.height, size.width, 3), dtype=np.uint8)
    for i, (x, y, view) in enumerate(zip(xs / shrink, ys / shrink, views / shrink)):
        s = size.width / view
        affine = np.array([[s, 0, size.width / 2 - s * x], [0, s, size.height / 2 - s * y]], dtype=np.float64)
        out[i] = cv2.warpAffine(small, affine, (size.width, size.height), flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT)
    return out


def natural_shots(folder, frames=48, size=Size(96, 64), fps=25, photos=PHOTOS):
    """One losslessly encoded video per photograph in `folder` (made once); returns their paths."""
    import skimage.data

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for seed, name in enumerate(photos):
        path = folder / f"{name}_{size}_{frames}.mp4"
        if not path.exists():
            photo = getattr(skimage.data, name)()
            photo = np.repeat(photo[..., None], 3, -1) if photo.ndim == 2 else photo[..., :3]
            with VideoWriter(path, fps, crf=0) as writer:
                writer.write(render_shot(photo, size, frames, seed))
        paths.append(path)
    return paths


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folder", help="where the shots are written (one video per photograph)")
    parser.add_argument("--frames", type=int, default=48, help="frames per shot")
    parser.add_argument("--size", type=frame_size, default=Size(64, 64), help="frame side or WIDTHxHEIGHT")
    parser.add_argument("--photos", default=",".join(PHOTOS), help="scikit-image photographs, one shot each")
    args = parser.parse_args()
    for path in natural_shots(args.folder, frames=args.frames, size=args.size, photos=args.photos.split(",")):
        print(path)


if __name__ == "__main__":
    main()
