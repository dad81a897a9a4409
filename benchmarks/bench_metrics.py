"""Benchmark: the full ISBI 2012 metric sweep on the 25 shared label slices.

Cases (each a P(cell) stack scored against the labels, warping included):

(a) the labels themselves: every error 0, every score 1;
(b) the labels with cells eroded by one pixel (4-connected structure);
(c) an all-cell map (P(cell) = 1 everywhere): pixel error ~0.12;
(d) the labels blurred (Gaussian, sigma = 2 px): a soft, non-binary map. Binary
    maps binarise identically at every t < 1, so (a)-(c) reuse work across
    thresholds; (d) does not and shows the cost of a real probability map.

Prints a table (case x metric: best over the sweep with its threshold, and at
t = 0.5) and the seconds per case; writes ``benchmarks/results/metrics.json``
with the machine it ran on. Run from the repository root::

    python benchmarks/bench_metrics.py [--data DIR] [--out FILE]

The data folder is ``$UNETKIT_DATA`` (else ``../shared/data`` next to the
repository).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import imageio.v3 as iio
import numpy as np
from machine import machine_info as machine  # noqa: E402
from scipy import ndimage as ndi

from unetkit.metrics import METRIC_NAMES, evaluate_probabilities

ROOT = Path(__file__).resolve().parents[1]
TARGET_SECONDS = 60.0


def data_dir(arg: str | None) -> Path:
    if arg:
        return Path(arg)
    if os.environ.get("UNETKIT_DATA"):
        return Path(os.environ["UNETKIT_DATA"])
    return ROOT.parent / "shared" / "data"


def load_labels(folder: Path) -> np.ndarray:
    files = sorted((folder / "isbi2012" / "train" / "labels").glob("*.png"))
    if not files:
        sys.exit(f"no ISBI 2012 labels under {folder}/isbi2012/train/labels (set UNETKIT_DATA or --data)")
    return np.stack([iio.imread(f) for f in files])


def cases(labels: np.ndarray) -> dict[str, np.ndarray]:
    cell = labels > 0
    cross = ndi.generate_binary_structure(2, 1)
    eroded = np.stack([ndi.binary_erosion(c, structure=cross) for c in cell])
    blurred = np.stack([ndi.gaussian_filter(c.astype(np.float32), 2.0) for c in cell])
    return {
        "a_labels": cell.astype(np.float32),
        "b_eroded_1px": eroded.astype(np.float32),
        "c_all_cell": np.ones(cell.shape, np.float32),
        "d_blurred_sigma2": blurred,
    }


def fmt(v) -> str:
    return "   n/a" if v is None else f"{v:.6f}"


def run(quick: bool = False, *, data: str | None = None,
        out: str | Path = ROOT / "benchmarks" / "results" / "metrics.json") -> dict:
    """All metrics with the full sweep (warping included) per case; prints a table, writes JSON.

    ``quick`` skips the blurred case (d); (a)-(c) are binary maps.
    """
    labels = load_labels(data_dir(data))
    report = {"machine": machine(), "n_slices": int(labels.shape[0]), "shape": list(labels.shape[1:]),
              "target_seconds_per_case": TARGET_SECONDS, "cases": {}}
    rows = []
    for name, prob in cases(labels).items():
        if quick and name.startswith("d_"):
            continue
        t0 = time.perf_counter()
        res = evaluate_probabilities(prob, labels)
        seconds = time.perf_counter() - t0
        report["cases"][name] = {"seconds": seconds, "result": res}
        rows.append((name, seconds, res))

    width = max(len(n) for n in METRIC_NAMES)
    for name, seconds, res in rows:
        print(f"\n{name}  ({seconds:.1f} s)")
        print(f"  {'metric':<{width}}  {'best':>9}  {'at t':>5}  {'t = 0.5':>9}")
        for m in METRIC_NAMES:
            t = res["best_threshold"][m]
            print(f"  {m:<{width}}  {fmt(res[m]):>9}  {t if t is not None else '':>5}  {fmt(res['at_0.5'][m]):>9}")
    total = sum(s for _, s, _ in rows)
    slowest = max(s for _, s, _ in rows)
    print(f"\ntotal {total:.1f} s; slowest case {slowest:.1f} s (target < {TARGET_SECONDS:.0f} s per case)")
    print(f"machine: {report['machine']['cpu']}, "
          f"{report['machine']['cpu_count']} CPUs, numpy {np.__version__}")
    report["total_seconds"] = total
    report["slowest_case_seconds"] = slowest

    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(out.suffix + ".tmp")
    tmp.write_text(json.dumps(report, indent=2, default=float, allow_nan=True))
    os.replace(tmp, out)
    print(f"wrote {out}")
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", help="data folder (default $UNETKIT_DATA or ../shared/data)")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "metrics.json"))
    parser.add_argument("--quick", action="store_true", help="skip the blurred-probability case")
    args = parser.parse_args(argv)
    run(args.quick, data=args.data, out=args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
