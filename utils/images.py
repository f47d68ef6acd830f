"""Pictures for people: labelled panels side by side, and clip grids (rows of frames).

Labels use OpenCV's built-in Hershey font, so no font file is needed.
    grid = clip_grid([("input", a), ("generated", g), ("target", b)])   # each (T, H, W, 3) uint8
"""
import cv2
import numpy as np

MIN_PANEL = 128  # small frames are enlarged (nearest neighbour) so labels and details stay readable


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


def clip_grid(rows, min_side=96, gap=2):
    """[(label, frames (T, H, W, 3)), ...] -> one image: a row per clip, a column per frame."""
    lines = []
    for label, frames in rows:
        big = enlarge(frames, min_side)
        t, h, w, _ = big.shape
        line = np.full((h, t * (w + gap) - gap, 3), 255, dtype=np.uint8)
        for i, frame in enumerate(big):
            line[:, i * (w + gap): i * (w + gap) + w] = frame
        lines.append(draw_label(line, label))
    spacer = np.full((gap, lines[0].shape[1], 3), 255, dtype=np.uint8)
    return np.concatenate([part for line in lines for part in (line, spacer)][:-1], axis=0)
