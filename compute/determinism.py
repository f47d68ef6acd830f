"""Runs that repeat bit for bit. On a CPU they do anyway: its kernels are deterministic, and train
seeds everything. On CUDA they do not by default: cuDNN's benchmark mode picks kernels by timing
them, float32 convolutions run in TF32, and some backward passes (pooling's, grid_sample's) add in
whatever order their threads finish. `train --deterministic` turns all of that off; operations that
have no deterministic version on the device still run, and the first step names them.

    deterministic_algorithms()
    with noting_nondeterministic(found): step()     # found: ["max_pool3d_with_indices_backward_cuda", ...]
"""
import contextlib
import os
import warnings

import torch

TORCH_SAYS = " does not have a deterministic implementation"  # how torch's warning names such an operation


def deterministic_algorithms():
    """Deterministic kernels only from here on (a warning, not an error, for an operation that has
    none), cuDNN's benchmark mode off and no TF32."""
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # what cuBLAS needs to be deterministic
    torch.use_deterministic_algorithms(True, warn_only=True)
    warnings.filterwarnings("ignore", message=f".*{TORCH_SAYS}")  # the first step's one line says it (noting_nondeterministic)
    torch.backends.cudnn.benchmark = False
    torch.backends.cudnn.deterministic = True
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False


@contextlib.contextmanager
def noting_nondeterministic(found):
    """Appends to `found` the name of every operation run inside that has no deterministic version
    here (from torch's warnings, which are kept from the user: one line says it all); other
    warnings pass through."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        yield
    for warning in caught:
        text = str(warning.message)
        if TORCH_SAYS in text:
            name = text.split(TORCH_SAYS)[0].strip()
            if name not in found:
                found.append(name)
        else:
            warnings.warn_explicit(warning.message, warning.category, warning.filename, warning.lineno)
