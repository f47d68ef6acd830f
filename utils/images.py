"""Pictures for people: labelled panels side by side, and clip grids (rows of frames).

Labels use OpenCV's built-in Hershey font, so no font file is needed.
    grid = clip_grid([("input", a), ("generated", g), ("target", b)])   # each (T, H, W, 3) uint8
"""
import os

import cv2
import numpy as np

from utils.fsio import write_bytes_atomic

MIN_PANEL = 128  # small frames are enlarged (nearest neighbour) so labels and details stay readable


def save_png(path, image):
    """Write an RGB uint8 image as PNG, atomically (readers never see half a file)."""
    ok, data = cv2.imencode(".png", cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    write_bytes_atomic(path, data.tobytes())


def load_png(path):
    """An RGB uint8 image, or None when the file is missing or unreadable."""
    data = np.fromfile(path, dtype=np.uint8) if os.path.exists(path) else np.zeros(0, np.uint8)
    image = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
    return None if image is None else cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def enlarge(frames, min_side=MIN_PANEL):
    """Scale (..., H, W, 3) frames up by a whole factor until the shorter side reaches `min_side`."""
    factor = max(1, -(-min_side // min(frames.shape[-3:-1])))
    if factor == 1:
        return frames
    return np.repeat(np.repeat(frames, factor, axis=-3), factor, axis=-2)


def draw_label(image, text):
    """Write `text` in the top-left corner of an (H, W, 3) uint8 image, white on a dark outline."""
    scale = max(0.35, image.shape[0] / 250)
    thickness = max(1, int(round(scale * 2)))
    origin = (4, 4 + int(20 * scale))
    cv2.putText(image, text, origin, cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), thickness + 2, cv2.LINE_AA)
    cv2.putText(image, text, origin, cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), thickness, cv2.LINE_AA)
    return image


def side_by_side(panels, min_side=MIN_PANEL):
    """[(label, frames (T, H, W, 3)), ...] -> (T, H', W' * panels, 3) with each panel labelled."""
    labelled = []
    for label, frames in panels:
        big = np.ascontiguousarray(enlarge(frames, min_side))
        for frame in big:
            draw_label(frame, label)
        labelled.append(big)
    return np.concatenate(labelled, axis=2)


def frame_strip(frames, min_side=96, gap=2):
    """(T, H, W, 3) frames -> one (H', T * (W' + gap) - gap, 3) image, enlarged, white between frames."""
    big = enlarge(frames, min_side)
    t, h, w, _ = big.shape
    strip = np.full((h, t * (w + gap) - gap, 3), 255, dtype=np.uint8)
    for i, frame in enumerate(big):
        strip[:, i * (w + gap): i * (w + gap) + w] = frame
    return strip


def stack_labelled(rows, gap=2):
    """[(label, image (H, W, 3)), ...] -> the images one under another, each labelled, padded to one width."""
    width = max(image.shape[1] for _, image in rows)
    parts = []
    for label, image in rows:
        padded = np.full((image.shape[0], width, 3), 255, dtype=np.uint8)
        padded[:, : image.shape[1]] = image
        parts += [draw_label(padded, label), np.full((gap, width, 3), 255, dtype=np.uint8)]
    return np.concatenate(parts[:-1], axis=0)


def clip_grid(rows, min_side=96, gap=2):
    """[(label, frames (T, H, W, 3)), ...] -> one image: a row per clip, a column per frame."""
    return stack_labelled([(label, frame_strip(frames, min_side, gap)) for label, frames in rows], gap)


PROFILE_ROWS = 600  # frames a temporal profile shows at most (the first ones): a few hundred are enough to see flicker


def temporal_profile(panels, switches=(), min_width=160, min_height=160, gap=4, header=18):
    """An x-t slice through videos: [(label, rows (T, W, 3))], each the same image row of T frames
    (see profile_row), -> one image with the panels side by side, time running down. Steady video
    gives smooth vertical lines; flicker shows as horizontal streaks, and a seam between sliding
    windows as a line across. A red tick in the left margin marks each time in `switches` (the
    frame where a window switch lands)."""
    t, w = panels[0][1].shape[:2]
    across, down = max(1, -(-min_width // w)), max(1, -(-min_height // t))
    margin = 6
    image = np.full((header + t * down, margin + len(panels) * (w * across + gap), 3), 255, dtype=np.uint8)
    for frame in switches:
        if frame < t:
            image[header + frame * down: header + (frame + 1) * down, : margin - 2] = (220, 30, 30)
    for i, (label, rows) in enumerate(panels):
        left = margin + i * (w * across + gap)
        image[header:, left: left + w * across] = np.repeat(np.repeat(rows, down, axis=0), across, axis=1)
        cv2.putText(image, label, (left + 2, header - 5), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 0, 0), 1, cv2.LINE_AA)
    return image


def profile_row(frames):
    """The row a temporal profile slices through: the middle one of (..., H, W, 3) frames."""
    return frames[..., frames.shape[-3] // 2, :, :]
