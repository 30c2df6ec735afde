"""What this machine can run models on, judged without importing torch where possible.

:func:`device_problem` says why a ``device`` (cuda, cuda:N, mps) is unavailable, from
``torch/version.py`` and ``/dev`` alone (validate, and :attr:`ModelSpec.precision`);
:func:`torch_device_problem` asks torch itself (run imports it anyway); :func:`ram_bytes` is the
physical memory the memory estimates are compared with. Non-goals: GPU memory, remote machines.
"""
from __future__ import annotations

import os
import platform
import re
from pathlib import Path

def _torch_build() -> tuple[str, bool]:
    """(torch version, has CUDA or ROCm) from torch/version.py, without importing torch."""
    import importlib.util

    try:
        spec = importlib.util.find_spec("torch")
        text = (Path(list(spec.submodule_search_locations)[0]) / "version.py").read_text()
    except (AttributeError, ImportError, OSError, TypeError, IndexError):
        return "?", True  # unknown: let run's check decide
    version = re.search(r"^__version__\s*=\s*'([^']*)'", text, re.M)
    gpu = re.search(r"^(cuda|hip)\s*(:[^=]*)?=\s*'", text, re.M)
    return (version.group(1) if version else "?"), gpu is not None


def _nvidia_build() -> bool:
    """ROCm builds also answer to "cuda" but expose /dev/kfd, not /dev/nvidiaN: count only for CUDA."""
    version, _ = _torch_build()
    return "rocm" not in version


def _visible_cuda_devices() -> int | None:
    env = os.environ.get("CUDA_VISIBLE_DEVICES")
    if env is not None:
        return len([x for x in env.split(",") if x.strip() and not x.strip().startswith("-")])
    if not Path("/dev").is_dir():
        return None
    return len([p for p in Path("/dev").iterdir() if re.fullmatch(r"nvidia\d+", p.name)])


def device_problem(device: str) -> str | None:
    """Why ``device`` is unavailable here, judged without importing torch (validate), or None."""
    if device.startswith("cuda"):
        version, gpu_build = _torch_build()
        if not gpu_build:
            return f"this torch build ({version}) has no CUDA support; allowed here: auto, cpu"
        count = _visible_cuda_devices() if _nvidia_build() else None
        index = int(device.split(":")[1]) if ":" in device else 0
        if count is not None and count == 0 and Path("/dev").is_dir() and not Path("/dev/dxg").exists():
            return "this machine has no CUDA device; allowed here: auto, cpu"
        if count is not None and index >= count > 0:
            return f"this machine has {count} CUDA device(s); allowed: cuda:0..cuda:{count - 1}, auto, cpu"
    if device == "mps" and not (platform.system() == "Darwin" and platform.machine() == "arm64"):
        return "mps is Apple silicon's GPU and this is not an Apple silicon Mac; allowed here: auto, cpu"
    return None


def torch_device_problem(device: str) -> str | None:
    """The same question asked of torch itself (run imports torch anyway)."""
    import torch

    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            return f"torch {torch.__version__} reports no usable CUDA device; allowed here: auto, cpu"
        index = int(device.split(":")[1]) if ":" in device else 0
        if index >= torch.cuda.device_count():
            n = torch.cuda.device_count()
            return f"this machine has {n} CUDA device(s); allowed: cuda:0..cuda:{n - 1}, auto, cpu"
    if device == "mps":
        mps = getattr(torch.backends, "mps", None)
        if mps is None or not mps.is_available():
            return f"torch {torch.__version__} reports MPS unavailable; allowed here: auto, cpu"
    return None


def ram_bytes() -> int | None:
    """Physical memory (MemTotal): an estimate above it cannot fit, whatever else is running."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None
