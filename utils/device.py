"""The machine: which device to compute on, what its CPU can do, and moving frames to the device and back.

    device = pick_device("auto")            # cuda when present, else cpu
    y = model(to_model_input(clips, device))
"""
import os

import numpy as np
import torch

from utils.errors import UserError


def cpu_flags():
    """The CPU's model name and the flags that decide convolution speed here (from /proc/cpuinfo)."""
    try:
        with open("/proc/cpuinfo") as f:
            text = f.read()
    except OSError:
        return "unknown CPU", []
    model = next((line.split(":", 1)[1].strip() for line in text.splitlines() if line.startswith("model name")), "unknown CPU")
    flags = set(next((line.split(":", 1)[1].split() for line in text.splitlines() if line.startswith("flags")), []))
    return model, [f for f in ("avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile") if f in flags]


def machine_summary():
    """One line on where a measurement ran: CPU, its relevant flags, caps on the kernels, torch, threads, GPU."""
    model, flags = cpu_flags()
    caps = " ".join(f"{name}={os.environ[name]}" for name in ("ONEDNN_MAX_CPU_ISA", "ATEN_CPU_CAPABILITY") if os.environ.get(name))
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    return (f"{model} ({' '.join(flags) or 'no avx2'}{'; ' + caps if caps else ''}; native bf16: "
            f"{'yes' if native_bf16_cpu() else 'no'}), torch {torch.__version__}, {torch.get_num_threads()} threads, {gpu}")


def pick_device(choice, local_rank=0):
    """'auto' -> this process's GPU when CUDA works, else cpu; 'cuda' without CUDA is an error. The
    GPU is cuda:LOCAL_RANK, or cuda:0 when the process sees only one (a scheduler such as Slurm, or
    a sweep, gives each process its own through CUDA_VISIBLE_DEVICES, whatever its local rank)."""
    if choice == "cuda" or (choice == "auto" and torch.cuda.is_available()):
        if not torch.cuda.is_available():
            raise UserError("--device", "cuda was asked for but PyTorch sees no CUDA GPU; use --device cpu or auto")
        count = torch.cuda.device_count()
        if local_rank >= count > 1:
            raise UserError("--device", f"this is local rank {local_rank} but it sees only {count} GPUs "
                                        f"(CUDA_VISIBLE_DEVICES={os.environ.get('CUDA_VISIBLE_DEVICES', 'unset')}); start at "
                                        f"most one process per GPU on each machine, or give each process one GPU")
        torch.backends.cudnn.benchmark = True  # fixed clip shapes: let cuDNN pick its fastest kernels once (--deterministic: off)
        return torch.device("cuda", local_rank if local_rank < count else 0)
    return torch.device("cpu")


# oneDNN's ISA names from which it computes bfloat16 in hardware (ONEDNN_MAX_CPU_ISA may cap it below).
ONEDNN_BF16_ISAS = {"AVX512_CORE_BF16", "AVX512_CORE_FP16", "AVX512_CORE_AMX", "AVX512_CORE_AMX_FP16", "AVX10_1_512",
                    "AVX10_1_512_AMX", "AVX10_1_512_AMX_FP16", "AVX10_2_512", "AVX10_2_512_AMX_2", "ALL", "DEFAULT"}


def native_bf16_cpu():
    """Whether this CPU computes bfloat16 in hardware (AVX512-BF16 or AMX) and the math libraries
    may use it. Elsewhere CPU autocast is emulated: many times slower than float32.
    ONEDNN_MAX_CPU_ISA and ATEN_CPU_CAPABILITY, which cap the kernels torch uses, count too."""
    cpu = getattr(torch, "cpu", None)
    hardware = any(getattr(cpu, name, lambda: False)() for name in ("_is_avx512_bf16_supported", "_is_amx_tile_supported"))
    onednn_cap = os.environ.get("ONEDNN_MAX_CPU_ISA", "DEFAULT").upper()
    aten_cap = torch.backends.cpu.get_cpu_capability()
    return hardware and onednn_cap in ONEDNN_BF16_ISAS and aten_cap.startswith("AVX512")


def to_model_input(clips, device, channels_last=False):
    """uint8 (B, T, H, W, 3) -> float (N, C, T, H, W) in [-1, 1] on `device`; the conversion runs there.

    The permuted view already has channels_last_3d strides; `channels_last=False` makes it contiguous."""
    tensor = torch.from_numpy(np.ascontiguousarray(clips)) if isinstance(clips, np.ndarray) else clips
    if device.type == "cuda":  # asynchronous from the training pipeline's pinned buffers; pinning anything else is one more copy
        tensor = tensor.to(device, non_blocking=tensor.is_pinned())
    tensor = tensor.permute(0, 4, 1, 2, 3).float().div_(127.5).sub_(1.0)  # (N, C, T, H, W)
    return tensor if channels_last else tensor.contiguous()


def to_uint8_frames(clips):
    """float (N, C, T, H, W) in [-1, 1] -> uint8 (N, T, H, W, C) numpy, rounded like an 8-bit video."""
    return ((clips.float() + 1.0) * 127.5).round_().clamp_(0, 255).to(torch.uint8).permute(0, 2, 3, 4, 1).cpu().numpy()
