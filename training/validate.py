"""The validation pass: the generator over every held-out window, scored against the target and
next to the identity baseline (the input itself taken as the answer).

    scores, clips = validate(generator, val_slider, device, amp=False)
"""
from inference.generate import ClipGenerator, generate_windows
from utils.metrics import score_windows


def validate(generator, slider, device, amp, channels_last=False):
    """({"val/l1", "val/psnr", "val/ssim", "val/masked_warp_error", "val/tof", "val/flicker", each
    with _identity, and "val/masked_warp_error_target"}, (inputs, outputs, targets) uint8 windows)."""
    was_training = generator.training
    generator.eval()
    clips = generate_windows(ClipGenerator(generator, device, amp, channels_last), slider)
    generator.train(was_training)
    # A ratio with no reference (a still target has no motion to compare flicker with) is left out, not logged as null.
    return {f"val/{name}": value for name, value in score_windows(*clips).items() if value is not None}, clips
