"""Where a run's Rand error comes from: cells cut apart, cells merged, or membranes drawn too thick.

No training, no new prediction. For every RUN_DIR (a ``run_arm.py`` output:
``pred_tta_prob/`` holds its 8-fold-TTA P(cell) maps of slices 20-24,
``val_labels/`` their labels; ``--maps`` names another map folder, such as the
peer's ``prob_tta/``), at the threshold where the official sweep finds the
best Rand error:

- the Rand F-score's split part ``C / A`` and merge part ``C / B``
  (:func:`unetkit.metrics.rand_split_merge`);
- the fraction of ground-truth cell pixels that the prediction calls membrane:
  by the metric's definition (``docs/METRICS.md``) each is a region of its own,
  so a membrane drawn thicker than the ground truth's lowers the split part;
- the Rand error once every predicted membrane pixel is given to its nearest
  predicted region (:func:`skimage.segmentation.expand_labels`): what is left
  is cells cut apart and cells merged.

Prints one Markdown table; ``--json`` saves every value. Usage::

    python examples/isbi2012/rand_composition.py runs/s23_base_60m_0 runs/s24_base_60m_1 [--maps pred_tta_prob] \\
        [--json out.json]
"""

from __future__ import annotations

import argparse
from pathlib import Path

COLUMNS = {  # key: (table header, digits)
    "threshold": ("t of the best Rand error", 1),
    "rand_error": ("Rand error", 4),
    "split": ("split part C/A", 4),
    "merge": ("merge part C/B", 4),
    "cell_called_membrane": ("GT cell pixels called membrane", 4),
    "rand_error_membrane_given_away": ("Rand error, membrane pixels given to the nearest region", 4),
}


def rand_composition(run: Path, maps: str = "pred_tta_prob") -> dict[str, float]:
    """The values of :data:`COLUMNS` for ``run/maps`` against ``run/val_labels``, at the sweep's best Rand t."""
    import numpy as np
    from skimage.segmentation import expand_labels

    from unetkit.evaluate import load_pairs
    from unetkit.labels import connected_components
    from unetkit.metrics import as_probability, evaluate_probabilities, rand_split_merge, threshold

    pairs = load_pairs(run / maps, run / "val_labels")
    probs = [as_probability(p.pred, p.name) for p in pairs]
    true = [connected_components(p.gt > 0) for p in pairs]  # GT regions: cell = label > 0
    t = evaluate_probabilities(probs, [p.gt for p in pairs], metrics=["rand_error"])["best_threshold"]["rand_error"]
    pred = [connected_components(threshold(p, t)) for p in probs]
    everywhere = max(max(p.shape) for p in pred)  # a distance that reaches every pixel of a plane
    given_away = [expand_labels(p, distance=everywhere) for p in pred]
    as_scored = rand_split_merge(true, pred)  # lists of planes: pooled over planes like the sweep
    foreground = sum(int(np.count_nonzero(g)) for g in true)
    called_membrane = sum(int(np.count_nonzero((g > 0) & (p == 0))) for g, p in zip(true, pred))
    return {
        "threshold": t,
        "rand_error": 1.0 - as_scored.score,
        "split": as_scored.split,
        "merge": as_scored.merge,
        "cell_called_membrane": called_membrane / max(foreground, 1),
        "rand_error_membrane_given_away": 1.0 - rand_split_merge(true, given_away).score,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path)
    parser.add_argument("--maps", default="pred_tta_prob", help="the folder of P(cell) maps inside each run")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    missing = [str(run / sub) for run in args.runs for sub in (args.maps, "val_labels") if not (run / sub).is_dir()]
    if missing:
        parser.error(f"no such folder: {', '.join(missing)}")
    rows = {str(run): rand_composition(run, args.maps) for run in args.runs}
    print("| run | " + " | ".join(header for header, _ in COLUMNS.values()) + " |")
    print("|---" * (len(COLUMNS) + 1) + "|")
    for run, values in rows.items():
        print(f"| {run} | " + " | ".join(f"{values[k]:.{d}f}" for k, (_, d) in COLUMNS.items()) + " |")
    if args.json:
        from unetkit.io import write_json

        write_json(rows, args.json)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
