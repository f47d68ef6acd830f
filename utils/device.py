"""Choosing the device, mixed precision and memory layout for training and inference.

    device = pick_device("auto")            # cuda when present, else cpu
    with autocast(device, enabled=True): y = model(x)
"""
import contextlib

import torch

from utils.errors import UserError


def pick_device(choice, local_rank=0):
    """'auto' -> cuda:LOCAL_RANK when CUDA works, else cpu; 'cuda' without CUDA is an error."""
    if choice == "cuda" or (choice == "auto" and torch.cuda.is_available()):
        if not torch.cuda.is_available():
            raise UserError("--device", "cuda was asked for but PyTorch sees no CUDA GPU; use --device cpu or auto")
        torch.backends.cudnn.benchmark = True  # fixed clip shapes: let cuDNN pick its fastest kernels once
        return torch.device("cuda", local_rank)
    return torch.device("cpu")


def native_bf16_cpu():
    """Whether this CPU computes bfloat16 in hardware (AVX512-BF16 or AMX); elsewhere CPU autocast
    is emulated and can be slower than float32."""
    try:
        with open("/proc/cpuinfo") as f:
            flags = f.read()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def amp_dtype(device):
    """bfloat16 on CPU and on GPUs that support it; float16 (with a grad scaler) on older GPUs."""
    if device.type == "cuda" and not torch.cuda.is_bf16_supported():
        return torch.float16
    return torch.bfloat16


def autocast(device, enabled):
    if not enabled:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=amp_dtype(device))


def grad_scaler(device, amp):
    """A GradScaler that is active only for float16 on CUDA (bfloat16 needs none)."""
    return torch.amp.GradScaler(device.type, enabled=amp and device.type == "cuda" and amp_dtype(device) == torch.float16)


def use_channels_last(choice, device, amp):
    """channels_last_3d for 'auto' only on CUDA with mixed precision, where tensor cores take NDHWC.
    On CPU bench/train.py measured no gain (instance norm in that layout costs what the
    convolutions save); on CUDA it has not been measured by this project."""
    if choice == "auto":
        return device.type == "cuda" and amp
    return choice == "channels_last"
