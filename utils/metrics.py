"""Image quality metrics on uint8 frames, following their standard definitions.

    psnr(generated, target)            # per frame, dB; frames are (..., H, W, 3) uint8
"""
import numpy as np

PSNR_CAP_DB = 100.0  # identical frames have infinite PSNR; averages cap each frame here


def psnr(generated, target):
    """Peak signal-to-noise ratio per frame, 10 log10(255^2 / MSE), over all pixels and channels."""
    diff = generated.astype(np.float64) - target.astype(np.float64)
    mse = np.mean(diff * diff, axis=(-3, -2, -1))
    with np.errstate(divide="ignore"):
        return 10.0 * np.log10(255.0 ** 2 / mse)


def mean_psnr(generated, target):
    """Mean PSNR over frames, each capped at PSNR_CAP_DB."""
    return float(np.mean(np.minimum(psnr(generated, target), PSNR_CAP_DB)))


def mean_l1(generated, target):
    """Mean absolute error in [0, 1] units (255 = 1)."""
    return float(np.mean(np.abs(generated.astype(np.float32) - target.astype(np.float32))) / 255.0)
