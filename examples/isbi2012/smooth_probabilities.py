"""Would smoothing the probability map before the threshold sweep help? Score run_arm.py runs with a Gaussian of sigma.

Post-processing only: no training, no new prediction. For every RUN_DIR (a
``run_arm.py`` output: ``pred_tta_prob/`` holds its 8-fold-TTA P(cell) maps of
slices 20-24, ``val_labels/`` their labels) and every sigma (pixels; 0 = the
map as predicted), the map is smoothed with :func:`scipy.ndimage.gaussian_filter`
and scored with the official sweep (best over t). Prints one Markdown table;
``--json`` saves every value. Usage::

    python examples/isbi2012/smooth_probabilities.py runs/s23_base_60m_0 runs/s24_base_60m_1 \\
        runs/s18_base_60m_2 [--sigmas 0,0.5,1,1.5] [--json out.json]
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from summarize_records import DIGITS, METRICS  # noqa: E402  (the tables' metrics and digits: one home)


def smoothed_scores(run: Path, sigmas: list[float]) -> dict[float, dict[str, float]]:
    """Best-over-t scores of RUN/pred_tta_prob against RUN/val_labels for each sigma (px) of a Gaussian filter."""
    from scipy.ndimage import gaussian_filter

    from unetkit.evaluate import load_pairs
    from unetkit.metrics import as_probability, evaluate_probabilities

    pairs = load_pairs(run / "pred_tta_prob", run / "val_labels")
    probs = [as_probability(p.pred, p.name) for p in pairs]
    out = {}
    for sigma in sigmas:
        maps = [gaussian_filter(p, sigma) for p in probs]  # sigma 0 filters no axis: the map as predicted
        result = evaluate_probabilities(maps, [p.gt for p in pairs], metrics=list(METRICS))
        out[sigma] = {m: result[m] for m in METRICS}
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path)
    parser.add_argument("--sigmas", default="0,0.5,1,1.5", help="comma-separated Gaussian sigmas in pixels")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    sigmas = [float(s) for s in args.sigmas.split(",")]
    if any(s < 0 for s in sigmas):
        parser.error(f"--sigmas: a Gaussian's sigma is >= 0 pixels, got {args.sigmas}")
    scores = {str(run): smoothed_scores(run, sigmas) for run in args.runs}
    print("| sigma (px) | " + " | ".join(f"{m} (per run; mean)" for m in METRICS) + " |")
    print("|---" * (len(METRICS) + 1) + "|")
    for sigma in sigmas:
        cells = []
        for m in METRICS:
            values, d = [scores[run][sigma][m] for run in scores], DIGITS[m]
            cells.append(" / ".join(f"{v:.{d}f}" for v in values) + f"; {statistics.mean(values):.{d}f}")
        print(f"| {sigma:g} | " + " | ".join(cells) + " |")
    if args.json:
        from unetkit.io import write_json

        write_json({run: {str(s): v for s, v in by_sigma.items()} for run, by_sigma in scores.items()}, args.json)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
