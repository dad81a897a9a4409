"""The smoothing screen: sigma 0 is the official scoring of the run; a Gaussian removes isolated wrong pixels."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tifffile
from skimage.io import imsave


@pytest.fixture(scope="module")
def smooth(example_script):
    return example_script("examples/isbi2012/smooth_probabilities.py")


def _run_dir(tmp_path: Path) -> tuple[Path, int, int]:
    """A run_arm.py-like folder: 4x4 cells of 13x13 px between 3-px membranes; the map flips 2% of cell pixels to 0."""
    cell = np.zeros((64, 64), bool)
    for y in range(4):
        for x in range(4):
            cell[3 + 16 * y:16 + 16 * y, 3 + 16 * x:16 + 16 * x] = True
    rng = np.random.default_rng(0)
    prob = cell.astype(np.float32)
    inner = np.argwhere(cell)
    flips = inner[rng.choice(len(inner), size=len(inner) // 50, replace=False)]
    prob[flips[:, 0], flips[:, 1]] = 0.0
    (tmp_path / "pred_tta_prob").mkdir()
    (tmp_path / "val_labels").mkdir()
    tifffile.imwrite(tmp_path / "pred_tta_prob" / "20.tif", prob)
    imsave(tmp_path / "val_labels" / "20.png", (cell * 255).astype(np.uint8), check_contrast=False)
    return tmp_path, int(cell.sum()), len(flips)  # the folder, cell pixels, flipped pixels


def test_sigma_zero_is_the_official_score_of_the_run(smooth, tmp_path):
    from unetkit.evaluate import evaluate_paths

    run, _, _ = _run_dir(tmp_path)
    official = evaluate_paths(run / "pred_tta_prob", run / "val_labels")
    scores = smooth.smoothed_scores(run, [0.0])[0.0]
    assert scores == {m: official[m] for m in smooth.METRICS}


def test_a_gaussian_restores_isolated_flipped_pixels(smooth, tmp_path):
    run, cells, flips = _run_dir(tmp_path)
    scores = smooth.smoothed_scores(run, [0.0, 1.0])
    # pixel error = 1 - F1 of the cell class; every flipped pixel is a false negative at any t in (0, 1)
    assert scores[0.0]["pixel_error"] == pytest.approx(flips / (2 * cells - flips))
    assert scores[1.0]["pixel_error"] < scores[0.0]["pixel_error"] / 4


def test_a_negative_sigma_is_one_clear_error(smooth, tmp_path):
    import subprocess
    import sys

    done = subprocess.run([sys.executable, smooth.__file__, str(tmp_path), "--sigmas", "0,-1"],
                          capture_output=True, text=True)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines()[-1].endswith("--sigmas: a Gaussian's sigma is >= 0 pixels, got 0,-1")
