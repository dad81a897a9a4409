"""Speed of the border weight map: fast (exact) vs brute force.

Labels: ISBI 2012 training label 00 (instances = 4-connected components of
``label > 0``, ~136 cells) and the DSB 2018 nuclei label image (~125 nuclei,
many touching), both 512x512. For each: the median time of
``unetkit.weights.border_weight_map`` over several calls, the time of one
call of ``brute_force_border_weight_map`` (one full Euclidean distance
transform per instance), the speedup and the largest absolute difference
between the two maps (float32). Defaults of the paper: w0 = 10, sigma = 5 px,
class balance on. The full run also times the fast map on all 25 ISBI
training labels.

Run from the repository root: ``python benchmarks/bench_weights.py [--quick]``.
Prints a table and writes ``benchmarks/results/weights.json`` with the
machine it ran on. ``run(quick)`` is the entry point for ``benchmarks/run.py``.
The data folder is ``$UNETKIT_DATA``, else ``../shared/data`` next to the
repository. Timings on a shared 2-core machine move by 10-20 % between runs:
compare the speedup measured in one run, not absolute times across runs.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np
from machine import machine_info  # noqa: E402
from scipy import ndimage as ndi

from unetkit.weights import border_weight_map, brute_force_border_weight_map

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "weights.json"
TARGET_MS = 30.0  # goal for one 512x512 label on the 2-core development machine


def data_dir() -> Path:
    root = os.environ.get("UNETKIT_DATA")
    return Path(root) if root else ROOT.parent / "shared" / "data"


def load_labels(folder: Path) -> dict[str, np.ndarray]:
    """Instance labels by name; missing files are left out."""
    import imageio.v3 as iio

    labels = {}
    isbi = folder / "isbi2012" / "train" / "labels" / "00.png"
    if isbi.is_file():
        labels["isbi2012/train/00"], _ = ndi.label(iio.imread(isbi) > 0)
    dsb = folder / "dsb2018_nuclei" / "labels.tif"
    if dsb.is_file():
        import tifffile

        labels["dsb2018_nuclei"] = tifffile.imread(dsb)
    return labels


def time_ms(fn, repeats: int) -> list[float]:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1e3)
    return times


def measure(name: str, instances: np.ndarray, repeats: int) -> dict:
    fast = border_weight_map(instances)  # also warms up
    fast_times = time_ms(lambda: border_weight_map(instances), repeats)
    start = time.perf_counter()
    brute = brute_force_border_weight_map(instances)
    brute_ms = (time.perf_counter() - start) * 1e3
    fast_ms = float(np.median(fast_times))
    return {
        "label": name,
        "shape": list(instances.shape),
        "instances": int(len(np.unique(instances)) - (instances == 0).any()),
        "fast_ms_median": fast_ms,
        "fast_ms_min": float(np.min(fast_times)),
        "fast_repeats": repeats,
        "brute_ms": brute_ms,
        "speedup": brute_ms / fast_ms,
        "max_abs_diff": float(np.abs(fast.astype(np.float64) - brute.astype(np.float64)).max()),
    }


def isbi_sweep(folder: Path, repeats: int) -> dict | None:
    """Median fast time per label over all ISBI training labels (median of ``repeats`` calls each)."""
    import imageio.v3 as iio

    files = sorted((folder / "isbi2012" / "train" / "labels").glob("*.png"))
    if not files:
        return None
    per_label, counts = [], []
    for f in files:
        instances, n = ndi.label(iio.imread(f) > 0)
        border_weight_map(instances)
        per_label.append(float(np.median(time_ms(lambda: border_weight_map(instances), repeats))))
        counts.append(n)
    return {
        "labels": len(files),
        "instances_min_mean_max": [int(min(counts)), float(np.mean(counts)), int(max(counts))],
        "fast_ms_median": float(np.median(per_label)),
        "fast_ms_max": float(np.max(per_label)),
    }


def format_table(result: dict) -> str:
    lines = [
        f"border weight map (w0 = 10, sigma = 5 px), {result['machine']['cpu']}, "
        f"{result['machine']['cpu_count']} cores, load {result['machine']['load_average_1min']}",
        f"{'label':22s} {'n inst':>7s} {'fast ms':>9s} {'brute ms':>9s} {'speedup':>8s} {'max |diff|':>11s}",
    ]
    for r in result["results"]:
        lines.append(
            f"{r['label']:22s} {r['instances']:7d} {r['fast_ms_median']:9.1f} {r['brute_ms']:9.0f} "
            f"{r['speedup']:7.0f}x {r['max_abs_diff']:11.2g}"
        )
    sweep = result.get("isbi_sweep")
    if sweep:
        lines.append(
            f"all {sweep['labels']} ISBI labels (fast only): median {sweep['fast_ms_median']:.1f} ms, "
            f"slowest {sweep['fast_ms_max']:.1f} ms"
        )
    return "\n".join(lines)


def run(quick: bool = False) -> dict:
    """Measure, print a table, write the JSON; return the results."""
    folder = data_dir()
    labels = load_labels(folder)
    if not labels:
        result = {"benchmark": "weights", "status": f"skipped: no labels under {folder} (set UNETKIT_DATA)"}
        print(result["status"])
        return result
    repeats = 5 if quick else 21
    rows = [measure(name, instances, repeats) for name, instances in labels.items()]
    result = {
        "benchmark": "weights",
        "status": "ok",
        "task": "border_weight_map of one 512x512 instance label image, w0 = 10, sigma = 5 px, class balance",
        "quick": quick,
        "target_ms": TARGET_MS,
        "machine": machine_info(),
        "results": rows,
    }
    if not quick:
        result["isbi_sweep"] = isbi_sweep(folder, repeats=5)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(format_table(result))
    return result


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repetitions, no sweep over all ISBI labels")
    run(parser.parse_args().quick)
