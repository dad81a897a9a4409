"""ONNX Runtime beside PyTorch as the backend of ``unetkit predict``: time and equality, side by side.

Both run the same overlap-tile prediction (same tiles, same normalisation);
only the forward pass of each tile differs. Repetitions alternate between the
two backends so that machine noise hits both alike. Prints a table and writes
``benchmarks/results/onnx.json``::

    python benchmarks/bench_onnx.py [--quick]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from machine import machine_info  # noqa: E402

RESULTS = HERE / "results" / "onnx.json"


def run(quick: bool = False) -> dict:
    from unetkit import UNet, predict
    from unetkit.export.runtime import OnnxUNet

    cases = [(512, 16), (512, 64), (2048, 16)] if not quick else [(512, 16), (1024, 16)]
    reps = 2 if quick else 3
    rows = []
    for size, width in cases:
        torch.manual_seed(0)
        model = UNet(1, 2, base_features=width).eval()
        t0 = time.perf_counter()
        runner = OnnxUNet.from_model(model)
        export_s = time.perf_counter() - t0
        image = (np.random.default_rng(0).random((size, size)) * 255).astype(np.uint8)
        ref, got = predict(model, image), predict(runner, image)  # warm-up, and the equality check
        times = {"torch": [], "onnxruntime": []}
        for _ in range(reps):
            for name, m in (("torch", model), ("onnxruntime", runner)):
                t = time.perf_counter()
                predict(m, image)
                times[name].append(time.perf_counter() - t)
        row = {"size": size, "width": width, "torch_s": float(np.median(times["torch"])),
               "onnxruntime_s": float(np.median(times["onnxruntime"])), "max_abs_diff": float(np.abs(ref - got).max()),
               "export_s": export_s, "reps": reps, "all_s": times}
        row["ratio"] = row["onnxruntime_s"] / row["torch_s"]
        rows.append(row)
        print(f"{size:>5}^2 w{width:<3} torch {row['torch_s']:7.2f} s   onnxruntime {row['onnxruntime_s']:7.2f} s   "
              f"ratio {row['ratio']:.2f}   max |diff| {row['max_abs_diff']:.1e}", flush=True)
    import onnxruntime

    result = {"machine": machine_info(), "onnxruntime": onnxruntime.__version__, "torch_threads": torch.get_num_threads(),
              "quick": quick, "rows": rows}
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    return result


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    run(parser.parse_args().quick)
