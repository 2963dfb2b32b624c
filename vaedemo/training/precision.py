"""Where bfloat16 pays: which devices run it fast, and so which precision ``train.discriminator_precision`` means.

oneDNN runs bfloat16 convolutions fast on CPUs with AVX512_BF16 or AMX and emulates them, many times slower, on
others (an AVX2-only CPU: a bfloat16 matrix product under 1 GFLOP/s); CUDA runs them natively from Ampere on.
"""

from __future__ import annotations

import functools


def fast_cpu_kernels(half: str) -> bool:
    """Whether oneDNN has fast CPU kernels for ``half`` ("bfloat16" or "float16") on this machine."""
    import torch

    mkldnn = torch.ops.mkldnn
    return bool(mkldnn._is_mkldnn_bf16_supported() if half == "bfloat16" else mkldnn._is_mkldnn_fp16_supported())


@functools.lru_cache(maxsize=8)
def fast_bfloat16(device_type: str) -> bool:
    """Whether a device of this type ("cpu", "cuda", ...) runs bfloat16 convolutions natively."""
    import torch

    if device_type == "cuda":
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    return device_type == "cpu" and fast_cpu_kernels("bfloat16")


def discriminator_in_bfloat16(setting: str, device_type: str) -> bool:
    """``train.discriminator_precision``: "bfloat16" always, "auto" where the device runs it natively."""
    return setting == "bfloat16" or (setting == "auto" and fast_bfloat16(device_type))
