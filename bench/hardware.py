"""What the benchmarks ran on: device, precision, GPU name, torch/CUDA versions, and a GPU's peak FLOP/s.

Shared by the benchmark scripts so every results file says where its figures come from. The device
and precision are the ones the app itself would pick (backend.training.devices), so a benchmark runs on the
GPU whenever there is one, in bf16 where the GPU supports it, exactly as a user's run would.
"""

from __future__ import annotations

import os
import platform
from pathlib import Path

# Dense bf16 tensor-core peak from each vendor's data sheet (no sparsity), for model FLOPs
# utilisation (MFU). Matched against torch.cuda.get_device_name(); MODELSMITH_PEAK_TFLOPS overrides.
BF16_PEAK_TFLOPS = {"H200": 989.0, "H100": 989.0, "A100": 312.0, "L40S": 362.0, "A10": 125.0, "L4": 121.0,
                    "RTX 4090": 165.0, "RTX 3090": 71.0, "T4": 65.0, "V100": 125.0}


def device_facts() -> dict:
    """Device, precision and versions that a run in this process would use."""
    import torch

    from backend.training.devices import resolve_device, resolve_precision

    device = resolve_device("auto")
    facts = {"device": device, "precision": resolve_precision(device, "auto"), "torch": torch.__version__,
             "cuda": torch.version.cuda, "python": platform.python_version(), "nproc": os.cpu_count(),
             "cpu_model": _cpu_model()}
    if device == "cuda":
        facts |= {"gpu_name": torch.cuda.get_device_name(0), "gpu_count": torch.cuda.device_count(),
                  "gpu_memory_gib": round(torch.cuda.get_device_properties(0).total_memory / 2**30, 1),
                  "bf16_peak_tflops": peak_tflops(torch.cuda.get_device_name(0))}
    return facts


def peak_tflops(gpu_name: str) -> float | None:
    """The GPU's dense bf16 peak in TFLOP/s (data sheet), or None when unknown."""
    if os.environ.get("MODELSMITH_PEAK_TFLOPS"):
        return float(os.environ["MODELSMITH_PEAK_TFLOPS"])
    for key, value in BF16_PEAK_TFLOPS.items():
        if key in gpu_name:
            return value
    return None


def transformer_flops_per_token(parameters: int, num_layers: int, hidden_size: int, block_size: int) -> float:
    """Training FLOPs per token of a decoder: 6N for the weights plus attention (PaLM appendix B, as nanoGPT)."""
    return 6 * parameters + 12 * num_layers * hidden_size * block_size


def _cpu_model() -> str:
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return platform.processor()
    return next((line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")),
                platform.processor())
