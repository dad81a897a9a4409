"""Machine description written into every benchmark's JSON (shared by the bench_* scripts)."""

from __future__ import annotations

import datetime
import os
import platform
from pathlib import Path

import numpy as np


def machine_info() -> dict:
    """CPU model, cores, load, library versions and GPU (``"none"`` without CUDA)."""
    cpu = platform.processor() or "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    info = {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "cpu_count": os.cpu_count(),
        "load_average_1min": round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }
    try:
        import scipy

        info["scipy"] = scipy.__version__
    except ImportError:
        pass
    try:
        import torch

        from unetkit.devices import native_bf16

        info.update(torch=str(torch.__version__), torch_threads=torch.get_num_threads(),
                    cpu_capability=torch.backends.cpu.get_cpu_capability(),  # AVX2, AVX512, ...
                    cpu_bf16=native_bf16(torch.device("cpu")),  # whether train.amp / --amp run bf16 on this CPU
                    gpu=torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none")
    except ImportError:
        info["gpu"] = "none"
    return info
