"""Mixed precision: whether `--amp` computes in bfloat16 here, and the autocast and grad scaler
that go with it. bfloat16 only where the hardware has it: on a CPU without it, autocast is
emulated and many times slower than float32; a GPU before compute capability 8.0 (V100, T4)
computes float16 in hardware instead, with a gradient scaler.

    with autocast(device, resolve_amp("auto", device)): y = model(x)
"""
import contextlib

import torch

from utils.device import native_bf16_cpu
from utils.errors import warn


def cuda_bf16_in_hardware(device):
    """Whether this GPU computes bfloat16 in hardware: compute capability 8.0 (Ampere) or later.
    torch.cuda.is_bf16_supported() says yes on older GPUs too, where bfloat16 is emulated and slow."""
    return torch.cuda.get_device_capability(device) >= (8, 0)


def amp_pays_here(device):
    """Whether mixed precision can speed this device up: bfloat16 in hardware (CPU or GPU)."""
    return cuda_bf16_in_hardware(device) if device.type == "cuda" else native_bf16_cpu()


def resolve_amp(choice, device, quiet=False):
    """Whether `--amp CHOICE` (auto, on or off; True and False as on and off) computes in mixed
    precision here. auto: where bfloat16 is in hardware. on: also float16 on an older GPU; but on
    a CPU without native bfloat16, where it would be emulated and many times slower, never, and
    one line says so."""
    choice = {True: "on", False: "off"}.get(choice, choice)
    if choice == "off":
        return False
    if device.type == "cuda":
        return choice == "on" or cuda_bf16_in_hardware(device)
    if native_bf16_cpu():
        return True
    if choice == "on" and not quiet:
        warn("--amp", "this CPU has no native bfloat16 (avx512_bf16 or amx_bf16), where it is emulated and many times "
                      "slower than float32; running in float32")
    return False


def amp_dtype(device):
    """bfloat16 on CPU and on GPUs that support it; float16 (with a grad scaler) on older GPUs."""
    if device.type == "cuda" and not cuda_bf16_in_hardware(device):
        return torch.float16
    return torch.bfloat16


def autocast(device, enabled):
    if not enabled:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=amp_dtype(device))


def grad_scaler(device, amp):
    """A GradScaler that is active only for float16 on CUDA (bfloat16 needs none)."""
    return torch.amp.GradScaler(device.type, enabled=amp and device.type == "cuda" and amp_dtype(device) == torch.float16)
